"""Generation speed: cached decoders against rerunning the window, long contexts, and batches.

    python preprocess.py --input ../shared/data/nottingham --output /tmp/bench-nott --workers 2
    python benchmarks/generation_speed.py --data /tmp/bench-nott

The models are built from the registry with their default sizes and are NOT trained: their weights are
random, which does not change the work done per token (every decoder step costs the same whatever
the weights say). Tokens are chosen greedily through musicgen.sampling.GreedySampler.generate, so the event grammar
and the sampler cost the same for every approach; an event is 3 tokens (pitch, duration, shift), so one
event is 3 decoder steps. Every timing is repeated (--repeats) with the approaches interleaved, and the
median is reported; each approach runs once untimed first, so tf.function traces are not counted.

  (a) LSTM (registry defaults: embedding 128, 2 x 256 units), one piece after a prompt of 100 events:
      our RecurrentDecoder carries the LSTM state, one cell step per token (128 events, generate.py's
      default length); against the common approach (Skuldur's Classical-Piano-Composer) of running
      `model.predict` on the whole window of the last 100 events (300 tokens) for every new token, with
      a model that, like Skuldur's, computes logits for the last step only (the same weights); and
      against the library's WindowDecoder (the same rerun through an eager `model(window)` call instead
      of `predict`). The baselines make fewer events per run (their cost per event is constant). Events
      per second are given with the time spent reading the prompt (decoder.start) and without it.
  (b) Transformer with its key/value cache, built with seq_len (its context, the cache size) = --context
      so that position 1024 fits: the time of one decoder step at position 1024 against position 64,
      each measured again and again from the same cached state. For scale: the default transformer
      (context 128) at position 64, and a full rerun of the model over the 1025 tokens (no cache).
  (c) 16 pieces in one batch against the same 16 pieces one at a time, each continuing the opening 16
      events of a validation piece by --batch-events events: the lstm, and the default transformer
      (context 128, so it re-primes its cache when full, as generate.py does).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import registry  # noqa: E402
from musicgen import sampling  # noqa: E402
from musicgen.dataset import load_processed  # noqa: E402
from musicgen.decoders import Decoder, WindowDecoder  # noqa: E402
from musicgen.hyperparameters import resolve_config
from musicgen.tokens import KINDS  # noqa: E402


class PredictWindowDecoder(WindowDecoder):
    """The common approach: `model.predict` on the last `context` tokens for every new token."""

    def _logits(self, window):
        return self.model.predict(window[:, -self.context:], verbose=0).astype(np.float64)


class TimedDecoder(Decoder):
    """Any decoder, adding up the seconds spent in start() (reading the prompt) in `start_seconds`."""

    def __init__(self, decoder):
        self.decoder, self.start_seconds = decoder, 0.0

    def start(self, prompt):
        started = time.perf_counter()
        result = self.decoder.start(prompt)
        self.start_seconds += time.perf_counter() - started
        return result

    def step(self, tokens, state):
        return self.decoder.step(tokens, state)


def last_step_model(model):
    """The same weights as a registry recurrent model, with logits for the last step only (Skuldur's shape)."""
    hidden = model.get_layer("logits").input
    return keras.Model(model.inputs, model.get_layer("logits")(hidden[:, -1]), name=f"{model.name}_last_step")


def median_seconds(runs, repeats):
    """Median seconds of each named callable, run `repeats` times round-robin after one untimed run each."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def event_starts(split, count, events):
    """The opening `events` events of the first `count` pieces long enough, without <start>: (count, 3 * events)."""
    tokens = 3 * events
    rows = [split.piece(i)[1: 1 + tokens] for i in range(len(split)) if len(split.piece(i)) > tokens + 1]
    if len(rows) < count:
        raise SystemExit(f"error: fewer than {count} validation pieces have {events} events")
    return np.stack(rows[:count]).astype(np.int32)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/bench-nott"),
                        help="output of preprocess.py: its vocabulary and validation prompts (default: /tmp/bench-nott)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each approach (default: 5)")
    parser.add_argument("--window-events", type=int, default=100, help="window of the rerun baselines (default: 100)")
    parser.add_argument("--events", type=int, default=128,
                        help="events generated with carried state in (a) (default: 128, generate.py's --length)")
    parser.add_argument("--baseline-events", type=int, default=8,
                        help="events generated by model.predict on the window in (a) (default: 8)")
    parser.add_argument("--eager-events", type=int, default=1,
                        help="events generated by model(window) on the window in (a) (default: 1)")
    parser.add_argument("--context", type=int, default=1152, help="the long transformer's context in (b) (default: 1152)")
    parser.add_argument("--steps", type=int, default=30, help="timed decoder steps per position in (b) (default: 30)")
    parser.add_argument("--pieces", type=int, default=16, help="pieces in (c) (default: 16)")
    parser.add_argument("--batch-events", type=int, default=32, help="events per piece in (c) (default: 32)")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")  # retracing notices: every approach is warmed up before timing
    if args.context < 1025:
        parser.error("--context must be at least 1025 tokens, so that position 1024 fits in the cache")

    vocabulary, splits = load_processed(args.data, ("validation",))
    validation = splits["validation"]
    greedy = sampling.get("greedy")
    shift = KINDS.index("shift")
    keras.utils.set_random_seed(0)

    # (a) LSTM: carried state against rerunning the 100-event window for every token.
    lstm_config = resolve_config(registry.get("lstm"))
    lstm = registry.get("lstm").build(len(vocabulary), lstm_config)
    window = 3 * args.window_events
    prompt = event_starts(validation, 1, args.window_events)
    decoders = {
        "carried state (RecurrentDecoder)": (TimedDecoder(registry.get("lstm").decoder(lstm)), args.events),
        f"model.predict on the {window}-token window per token": (
            TimedDecoder(PredictWindowDecoder(last_step_model(lstm), window)), args.baseline_events),
        f"model(window) on the {window}-token window per token": (
            TimedDecoder(WindowDecoder(lstm, window)), args.eager_events),
    }
    made, prompt_seconds = {}, {name: [] for name in decoders}

    def generator(name):
        decoder, events = decoders[name]

        def run():
            decoder.start_seconds = 0.0
            made[name] = greedy.generate(decoder, vocabulary, prompt, events)
            prompt_seconds[name].append(decoder.start_seconds)
        return run

    seconds = median_seconds({name: generator(name) for name in decoders}, args.repeats)
    print(f"vocabulary {len(vocabulary)} tokens ({args.data}); untrained models (random weights); greedy; "
          f"median of {args.repeats} runs")
    print()
    print(f"(a) lstm ({lstm.count_params():,} parameters), one piece, prompt of {args.window_events} events "
          f"({window} tokens); 'after the prompt' leaves out decoder.start (reading the prompt)")
    header = (f"{'approach':<50} {'events':>6} {'s per run':>9} {'of which prompt':>15} {'events/s':>9} "
              f"{'x predict':>9} {'events/s after the prompt':>25} {'x predict':>9}")
    print(header)
    print("-" * len(header))
    baseline = list(decoders)[1]
    rates, rates_after = {}, {}
    for name in decoders:
        events = int((vocabulary.kinds[made[name]] == shift).sum())
        prompt_time = statistics.median(prompt_seconds[name][1:])  # the untimed first run left out
        rates[name] = events / seconds[name]
        rates_after[name] = events / (seconds[name] - prompt_time)
    for name in decoders:
        print(f"{name:<50} {decoders[name][1]:>6} {seconds[name]:>9.3f} "
              f"{statistics.median(prompt_seconds[name][1:]):>15.3f} {rates[name]:>9.2f} "
              f"{rates[name] / rates[baseline]:>9.1f} {rates_after[name]:>25.2f} "
              f"{rates_after[name] / rates_after[baseline]:>9.1f}")

    # (b) Transformer: one cached step at position 1024 against position 64.
    long_config = resolve_config(registry.get("transformer"), overrides={"seq_len": args.context})
    long_transformer = registry.get("transformer").build(len(vocabulary), long_config)
    long_decoder = registry.get("transformer").decoder(long_transformer)
    default_config = resolve_config(registry.get("transformer"))
    default_transformer = registry.get("transformer").build(len(vocabulary), default_config)
    default_decoder = registry.get("transformer").decoder(default_transformer)
    tokens = validation.tokens[None, :1025].astype(np.int32)
    next_token = tokens[:, -1]
    states = {
        f"cache, position 64 (context {args.context})": (long_decoder, long_decoder.start(tokens[:, :64])[1]),
        f"cache, position 1024 (context {args.context})": (long_decoder, long_decoder.start(tokens[:, :1024])[1]),
        f"cache, position 64 (default context {default_config['seq_len']})": (
            default_decoder, default_decoder.start(tokens[:, :64])[1]),
    }
    runs = {name: (lambda decoder=decoder, state=state: decoder.step(next_token, state))
            for name, (decoder, state) in states.items()}
    full_rerun = WindowDecoder(long_transformer, args.context)
    runs["no cache: the model over all 1025 tokens"] = lambda: full_rerun.start(tokens)
    step_seconds = median_seconds(runs, args.steps)
    reference = step_seconds[list(states)[0]]
    print()
    print(f"(b) transformer ({long_transformer.count_params():,} parameters; {default_config['layers']} blocks of "
          f"width {default_config['embedding_dim']}), one piece: time of one new token, median of {args.steps}")
    header = f"{'approach':<50} {'ms/token':>9} {'x position 64':>13}"
    print(header)
    print("-" * len(header))
    for name, value in step_seconds.items():
        print(f"{name:<50} {value * 1000:>9.2f} {value / reference:>13.2f}")

    # (c) 16 pieces in one batch against one at a time.
    prompts = event_starts(validation, args.pieces, 16)
    print()
    print(f"(c) {args.pieces} pieces of {args.batch_events} events after 16-event prompts: one batch against one "
          f"at a time (events/s counts the events of all {args.pieces} pieces; 'prompt' = time in decoder.start)")
    header = (f"{'model':<12} {'batched s':>9} {'prompt':>7} {'events/s':>9} {'one-by-one s':>12} {'prompt':>7} "
              f"{'events/s':>9} {'x one-by-one':>12}")
    print(header)
    print("-" * len(header))
    for name, model in (("lstm", lstm), ("transformer", default_transformer)):
        decoder = TimedDecoder(registry.get(name).decoder(model))
        total = args.pieces * args.batch_events
        spent = {"batch": [], "single": []}

        def run(kind):
            def timed():
                decoder.start_seconds = 0.0
                rows = [prompts] if kind == "batch" else [row[None] for row in prompts]
                for row in rows:
                    greedy.generate(decoder, vocabulary, row, args.batch_events)
                spent[kind].append(decoder.start_seconds)
            return timed

        times = median_seconds({"batch": run("batch"), "single": run("single")}, max(1, args.repeats // 2))
        print(f"{name:<12} {times['batch']:>9.2f} {statistics.median(spent['batch'][1:]):>7.2f} "
              f"{total / times['batch']:>9.1f} {times['single']:>12.2f} {statistics.median(spent['single'][1:]):>7.2f} "
              f"{total / times['single']:>9.1f} {times['single'] / times['batch']:>12.1f}")

if __name__ == "__main__":
    main()
