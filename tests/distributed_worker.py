"""One worker of tests/test_distributed.py: `python distributed_worker.py OUTPUT MODEL SETTINGS_JSON`, with TF_CONFIG.

Trains a tiny model on random tokens through choose_strategy and
fit_multi_worker, the chief alone keeping a run folder (OUTPUT/run) and asking
to stop after the first of two epochs. Writes OUTPUT/worker_<index>.json
(strategy, history) and OUTPUT/worker_<index>.npz (weights before and after).
"""

import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models import registry  # noqa: E402
from musicgen import distributed  # noqa: E402
from musicgen.callbacks import RunCheckpoint
from musicgen.dataset import windows
from musicgen.hyperparameters import TRAINING_DEFAULTS
from musicgen.optimizer import OptimizerSettings

VOCABULARY_SIZE = 50
TRAINING_WINDOWS = 67  # 5 global batches of 16, the last holding 3 windows: 2 once cut to whole shares
VALIDATION_WINDOWS = 3  # one global batch, cut to 2 windows: one for each worker


def settings(model_name, changes):
    return {**TRAINING_DEFAULTS, **registry.get(model_name).defaults, **changes}


def split_tokens(seq_len):
    """(training tokens, validation tokens): random ids, 0 being padding."""
    train_length, validation_length = TRAINING_WINDOWS * seq_len + 1, VALIDATION_WINDOWS * seq_len + 1
    tokens = np.random.default_rng(0).integers(1, VOCABULARY_SIZE, train_length + validation_length)
    return tokens[:train_length], tokens[train_length:]


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def main(output, model_name, changes):
    strategy, description = distributed.choose_strategy()  # before any tensor exists
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    hp = settings(model_name, changes)
    batch_size = distributed.global_batch_size(hp["batch_size"], strategy)
    train_tokens, validation_tokens = split_tokens(hp["seq_len"])
    train_data = windows([train_tokens], hp["seq_len"], batch_size, pad_id=0, shuffle=True, seed=0)
    validation_data = windows([validation_tokens], hp["seq_len"], batch_size, pad_id=0, shuffle=False)
    with strategy.scope():
        keras.utils.set_random_seed(index)  # a seed of its own: the chief's initial weights must reach every worker
        spec = registry.get(model_name)
        model = spec.build(VOCABULARY_SIZE, hp)
        spec.compile_model(model, OptimizerSettings(learning_rate=0.01))
    initial_weights = model.get_weights()

    callbacks = []
    chief = distributed.is_chief(strategy)
    if chief:
        progress = {"epochs_completed": 0, "best_val_loss": math.inf, "best_val_accuracy": None, "best_epoch": 0,
                    "epochs_without_improvement": 0, "stopped_early": False, "history": []}
        run_dir = Path(output) / "run"
        run_dir.mkdir()
        callbacks = [RunCheckpoint(run_dir, {"config": hp, "progress": progress}), StopAfterFirstEpoch()]
    history = distributed.fit_multi_worker(model, strategy, train_data, validation_data, epochs=2,
                                           callbacks=callbacks)

    np.savez(Path(output) / f"worker_{index}.npz",
             **{f"initial_{i}": w for i, w in enumerate(initial_weights)},
             **{f"final_{i}": w for i, w in enumerate(model.get_weights())})
    report = {"description": description, "replicas": strategy.num_replicas_in_sync, "is_chief": chief,
              "history": history}
    (Path(output) / f"worker_{index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
