"""The transformer's training speed and peak memory at windows of 128, 512, 1024 and 2048 tokens.

    python benchmarks/window_lengths.py                      # the default transformer, on this machine
    python benchmarks/window_lengths.py --lengths 128 512 --repeats 3 --steps 5

Each window length trains the registry's default transformer (4 blocks of width 128, 4 heads, feed-forward
512; its attention is keras.ops.dot_product_attention) with the default optimizer, on batches of the same
number of tokens (--batch-tokens, 4096 by default: 32 windows of 128, 2 of 2048), so the work per step
differs only by what attention over a longer window costs. The tokens are random ids of a vocabulary of
--vocabulary tokens: the cost of a step does not depend on what the tokens say.

Every measurement runs in a fresh child process (this script with --child), so that one length's memory
does not carry into the next: the child builds the model, takes two untimed steps (tracing the graph), then
times --steps steps, and reports training tokens per second and its peak resident memory (ru_maxrss). The
peak of a child that builds the model and stops there is measured the same way and subtracted, so "training
memory" is what the steps add (activations, gradients, optimizer slots, attention scores). Lengths run
interleaved, --repeats times over (128, 512, ..., 128, 512, ...), and the median of each is reported, with
tokens per second relative to 128.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(length, batch_tokens, vocabulary, steps):
    """Train for `steps` timed steps at one window length (0: build only) and print a JSON line."""
    import numpy as np

    from models import registry
    from musicgen.backend import import_tensorflow
    from musicgen.hyperparameters import resolve_config
    from musicgen.optimizer import OptimizerSettings

    import_tensorflow()
    spec = registry.get("transformer")
    hp = resolve_config(spec, overrides={"seq_len": max(length, 128)})
    model = spec.build(vocabulary, hp)
    spec.compile_model(model, OptimizerSettings.from_config(hp, steps_per_epoch=100))
    result = {"length": length, "parameters": model.count_params()}
    if length:
        rng = np.random.default_rng(0)
        batch = max(1, batch_tokens // length)
        x = rng.integers(1, vocabulary, (batch, length + 1)).astype("int32")
        for _ in range(2):
            model.train_on_batch(x[:, :-1], x[:, 1:])
        begin = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x[:, :-1], x[:, 1:])
        result["tokens_per_second"] = batch * length * steps / (time.perf_counter() - begin)
        result["batch"] = batch
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(length, args):
    command = [sys.executable, __file__, "--child", str(length), "--batch-tokens", str(args.batch_tokens),
               "--vocabulary", str(args.vocabulary), "--steps", str(args.steps)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024, 2048])
    parser.add_argument("--batch-tokens", type=int, default=4096, help="tokens per training batch (default: 4096)")
    parser.add_argument("--vocabulary", type=int, default=400, help="vocabulary size (default: 400)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement (default: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements per length (default: 3)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.batch_tokens, args.vocabulary, args.steps)
    runs = {length: [] for length in [0, *args.lengths]}
    for repeat in range(args.repeats):
        for length in runs:
            runs[length].append(measure(length, args))
            print(f"repeat {repeat + 1}: {runs[length][-1]}", file=sys.stderr)
    base_memory = statistics.median(r["peak_mib"] for r in runs[0])
    speed = {length: statistics.median(r["tokens_per_second"] for r in runs[length]) for length in args.lengths}
    print(f"default transformer, {runs[0][0]['parameters']:,} parameters; {args.batch_tokens} tokens a batch; "
          f"medians of {args.repeats} interleaved runs; a model built but not trained peaks at {base_memory:.0f} MiB")
    print("| window | windows a batch | training tokens/s | relative to 128 | training memory (MiB) |")
    print("|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        memory = statistics.median(r["peak_mib"] for r in runs[length]) - base_memory
        print(f"| {length} | {runs[length][0]['batch']} | {speed[length]:,.0f} | "
              f"{speed[length] / speed[args.lengths[0]]:.2f} | {memory:,.0f} |")


if __name__ == "__main__":
    main()
