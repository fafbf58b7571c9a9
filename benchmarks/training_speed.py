"""Training speed: a target at every position (our way) against one target per window (Skuldur's way).

    python preprocess.py --input ../shared/data/nottingham --output /tmp/bench-nott --workers 2
    python benchmarks/training_speed.py --data /tmp/bench-nott --seconds 120

Three LSTMs of the same size (embedding 128, two LSTM layers of 256 units, dropout 0.2 after each, a
Dense layer to the vocabulary: the registry's `lstm` defaults; 1.1 M parameters on Nottingham), all
trained with Adam at 1e-3 on next-token cross-entropy from the same training split, for the same
wall-clock budget each:

  ours            `registry.get("lstm")` fed by `windows`: windows of 128 tokens cut at random
                  offsets, every position a target (what `train.py --model lstm` does, batch 16)
  ours, 300x64    the same, with the baseline's window and batch (300 tokens, 64 windows): isolates the
                  effect of "every position a target" from the choice of window and batch
  one per window  the Classical-Piano-Composer way, in plain Keras: the second LSTM returns only its
                  last step and a Dense layer predicts what follows a window of 100 events (300 tokens);
                  batch 64. Its target is the next TOKEN (not the next event's first token), so both
                  models learn the same thing (pitches, durations and shifts) and their losses can be
                  compared on the same positions; the cost per target is the same either way. It gets
                  the same streamed random-offset windows (no precomputed window array), so its input
                  pipeline does not slow it down.

The budgets are run interleaved, in slices (ours, baseline, ours 300x64, ours, ...), so that the load
of other jobs on the machine falls on all of them alike; a first step of each, which traces the graph,
is not counted. Targets per second = windows x targets per window / seconds in `fit`.

Validation loss is in nats per token, measured the same way for every model: the mean cross-entropy of
the token that follows each 300-token validation window (windows every --eval-stride tokens), so the
models predict the same tokens from the same context. Our models' loss over all positions of the
validation windows (what train.py reports as val_loss, in each model's own window length) is given
too, with a unigram model of the training tokens for scale.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models import registry  # noqa: E402
from musicgen.dataset import load_processed, read_index, shard_files, windows  # noqa: E402
from musicgen.hyperparameters import resolve_config
from musicgen.optimizer import OptimizerSettings, compile_model


class StopAfter(keras.callbacks.Callback):
    """Ends `fit` after the batch during which `seconds` have passed; counts the steps."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.started >= self.seconds:
            self.model.stop_training = True


def one_target_per_window_lstm(vocabulary_size, hp):
    """The baseline: the registry lstm's layers and sizes, but the last LSTM returns only its last step."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, hp["embedding_dim"])(tokens)
    for i in range(hp["layers"]):
        x = keras.layers.LSTM(hp["units"], return_sequences=i < hp["layers"] - 1)(x)
        x = keras.layers.Dropout(hp["dropout"])(x)
    logits = keras.layers.Dense(vocabulary_size)(x)
    return keras.Model(tokens, logits, name="one_target_per_window")


class Contender:
    """A model, its endless stream of training batches, and the training time and targets it has had."""

    def __init__(self, name, model, batches, targets_per_step):
        self.name, self.model, self.targets_per_step = name, model, targets_per_step
        self.batches = batches.repeat()  # each fit() iterates it afresh, at new random offsets
        self.seconds, self.steps = 0.0, 0

    def fit(self, seconds):
        stop = StopAfter(seconds)
        started = time.perf_counter()
        self.model.fit(self.batches, epochs=1, steps_per_epoch=10**9, shuffle=False, callbacks=[stop], verbose=0)
        return time.perf_counter() - started, stop.steps

    def train(self, seconds):
        elapsed, steps = self.fit(seconds)
        self.seconds += elapsed
        self.steps += steps

    @property
    def targets_per_second(self):
        return self.steps * self.targets_per_step / self.seconds


def last_token_losses(model, inputs, targets, batch_size=64):
    """Cross-entropy (nats) of each window's next token, from the model's logits at the window's last position."""
    losses = []
    for begin in range(0, len(inputs), batch_size):
        logits = keras.ops.convert_to_numpy(model(inputs[begin: begin + batch_size], training=False))
        if logits.ndim == 3:  # a model with an output at every position
            logits = logits[:, -1]
        logits = logits.astype(np.float64)
        log_normalizer = np.logaddexp.reduce(logits, axis=1)
        losses.append(log_normalizer - logits[np.arange(len(logits)), targets[begin: begin + batch_size]])
    return np.concatenate(losses)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/bench-nott"),
                        help="output of preprocess.py (default: /tmp/bench-nott)")
    parser.add_argument("--seconds", type=float, default=120, help="training budget of each model (default: 120)")
    parser.add_argument("--slice", type=float, default=30, help="seconds per turn when interleaving (default: 30)")
    parser.add_argument("--window-events", type=int, default=100, help="baseline window in events (default: 100)")
    parser.add_argument("--baseline-batch-size", type=int, default=64,
                        help="baseline windows per step (default: 64; Skuldur's forks use 64 or 128)")
    parser.add_argument("--eval-stride", type=int, default=120,
                        help="tokens between validation windows (default: 120)")
    parser.add_argument("--no-control", action="store_true", help="skip 'ours' at the baseline's window and batch")
    parser.add_argument("--random-seed", type=int, default=0)
    args = parser.parse_args()

    vocabulary, splits = load_processed(args.data, ("train", "validation"))
    train_tokens, validation_tokens = splits["train"].tokens, splits["validation"].tokens
    train_shards = shard_files(args.data, read_index(args.data)[1]["train"])  # streamed, as train.py does
    window = 3 * args.window_events  # 3 tokens per event
    hp = resolve_config(registry.get("lstm"))  # registry defaults: embedding 128, 2 x 256 units, batch 16, 128 tokens
    keras.utils.set_random_seed(args.random_seed)

    def ours(seq_len, batch_size, name):
        model = registry.get("lstm").build(len(vocabulary), hp)
        compile_model(model, OptimizerSettings(hp["learning_rate"]))
        batches = windows(train_shards, seq_len, batch_size, vocabulary.pad_id, shuffle=True, seed=args.random_seed)
        contender = Contender(name, model, batches, seq_len * batch_size)
        contender.seq_len, contender.batch_size = seq_len, batch_size
        return contender

    contenders = [ours(hp["seq_len"], hp["batch_size"], f"ours ({hp['seq_len']}-token windows, batch {hp['batch_size']})")]
    baseline_model = one_target_per_window_lstm(len(vocabulary), hp)
    compile_model(baseline_model, OptimizerSettings(hp["learning_rate"]))
    baseline_batches = windows(train_shards, window, args.baseline_batch_size, vocabulary.pad_id,
                                        shuffle=True, seed=args.random_seed).map(lambda x, y, w: (x, y[:, -1]))
    baseline = Contender(f"one target per window ({window} tokens, batch {args.baseline_batch_size})",
                         baseline_model, baseline_batches, args.baseline_batch_size)
    baseline.seq_len, baseline.batch_size = window, args.baseline_batch_size
    contenders.append(baseline)
    if not args.no_control:
        contenders.append(ours(window, args.baseline_batch_size,
                               f"ours ({window}-token windows, batch {args.baseline_batch_size})"))

    print(f"data: {args.data}: {len(train_tokens):,} training and {len(validation_tokens):,} validation tokens, "
          f"vocabulary {len(vocabulary)}")
    print(f"every model: embedding {hp['embedding_dim']}, {hp['layers']} x LSTM {hp['units']}, dropout "
          f"{hp['dropout']}, Adam {hp['learning_rate']}; {contenders[0].model.count_params():,} parameters (ours), "
          f"{baseline_model.count_params():,} (baseline)")
    for contender in contenders:  # trace the train step outside the budget
        contender.fit(0)

    left = {contender.name: args.seconds for contender in contenders}
    while any(value > 0 for value in left.values()):
        for contender in contenders:
            if left[contender.name] > 0:
                before = contender.seconds
                contender.train(min(args.slice, left[contender.name]))
                left[contender.name] -= contender.seconds - before
                print(f"  {contender.name}: {contender.seconds:.0f} s, {contender.steps} steps", flush=True)

    starts = np.arange(0, len(validation_tokens) - window - 1, args.eval_stride)
    eval_inputs = validation_tokens[starts[:, None] + np.arange(window)[None, :]]
    eval_targets = validation_tokens[starts + window]
    counts = np.bincount(train_tokens, minlength=len(vocabulary)) + 1.0  # add-one smoothing
    unigram_loss = -np.log(counts / counts.sum())[eval_targets].mean()

    print()
    print(f"Training for {args.seconds:.0f} s each, interleaved in {args.slice:.0f}-s slices. Validation loss in nats "
          f"per token: 'next token' = the token after each of {len(starts)} validation windows of {window} tokens "
          "(the same for every model); 'all positions' = train.py's val_loss (every position of the "
          "validation split's windows, in the model's own window length).")
    header = (f"{'approach':<44} {'steps':>6} {'targets/step':>12} {'targets/s':>10} {'x baseline':>10} "
              f"{'val loss, next token':>21} {'val loss, all positions':>24}")
    print(header)
    print("-" * len(header))
    for contender in contenders:
        next_token = last_token_losses(contender.model, eval_inputs, eval_targets).mean()
        if contender is baseline:
            all_positions = "-"
        else:
            validation = windows([validation_tokens], contender.seq_len, contender.batch_size,
                                          vocabulary.pad_id, shuffle=False)
            all_positions = f"{contender.model.evaluate(validation, verbose=0, return_dict=True)['loss']:.3f}"
        print(f"{contender.name:<44} {contender.steps:>6} {contender.targets_per_step:>12,} "
              f"{contender.targets_per_second:>10,.0f} "
              f"{contender.targets_per_second / baseline.targets_per_second:>10.1f} "
              f"{next_token:>21.3f} {all_positions:>24}")
    print(f"{'unigram of the training tokens':<44} {'':>6} {'':>12} {'':>10} {'':>10} {unigram_loss:>21.3f} {'':>24}")
    print(f"{'uniform over the vocabulary':<44} {'':>6} {'':>12} {'':>10} {'':>10} "
          f"{np.log(len(vocabulary)):>21.3f} {'':>24}")


if __name__ == "__main__":
    main()
