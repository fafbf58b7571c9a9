"""Train every model briefly on the same data and compare them in one table.

    python benchmarks/compare_models.py --data data/processed --epochs 3

For the n-gram, "parameters" counts stored n-grams. For the likelihood models the table gives the best validation loss (nats per token) next to that of a
unigram model of the training tokens: a model that learned anything beats it clearly. For every model,
pieces are generated from the same validation seeds (top-p 0.9, fixed random seed) and their pitch-class
and duration histograms are compared with the training data's by total-variation distance (0 = the same
distribution, 1 = disjoint), next to uniformly random tokens under the same grammar.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from models import registry  # noqa: E402
from musicgen import sampling, training  # noqa: E402
from musicgen.dataset import load_processed  # noqa: E402
from musicgen.decoders import Decoder  # noqa: E402
from musicgen.evaluation import generate_pieces, seed_prompts  # noqa: E402
from musicgen.hyperparameters import resolve_config  # noqa: E402
from musicgen.metrics import corpus_histograms, total_variation  # noqa: E402


class FixedLogitsDecoder(Decoder):
    """The same logits at every step: a unigram model, or uniform ones."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, dtype=np.float64)

    def start(self, prompt):
        return np.tile(self.logits, (len(prompt), 1)), None

    def step(self, tokens, state):
        return np.tile(self.logits, (len(tokens), 1)), None


def unigram_log_probabilities(train_tokens, vocabulary_size):
    counts = np.bincount(train_tokens, minlength=vocabulary_size) + 1.0  # add-one smoothing
    return np.log(counts / counts.sum())


def sample_distances(decoder, vocabulary, prompts, length, reference):
    new = generate_pieces(decoder, vocabulary, prompts, length, sampling.get("top-p", top_p=0.9, seed=0))
    pitch_classes, durations = corpus_histograms(new, vocabulary.settings.max_duration_steps)
    return total_variation(pitch_classes, reference[0]), total_variation(durations, reference[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/processed"))
    parser.add_argument("--models", default=",".join(registry.REGISTRY), help="comma-separated (default: all)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8, help="pieces generated per model")
    parser.add_argument("--length", type=int, default=64, help="events per generated piece")
    parser.add_argument("--keep", type=Path, help="keep the trained runs in this folder (default: a temporary one)")
    args = parser.parse_args()

    vocabulary, splits = load_processed(args.data)
    train_events = [vocabulary.decode(splits["train"].piece(i)) for i in range(len(splits["train"]))]
    reference = corpus_histograms(train_events, vocabulary.settings.max_duration_steps)
    prompts, _ = seed_prompts(splits["validation"], vocabulary, args.samples)
    log_p = unigram_log_probabilities(splits["train"].tokens, len(vocabulary))
    validation = splits["validation"].tokens
    rows = [("random tokens", "-", "-", "-", "-",
             *sample_distances(FixedLogitsDecoder(np.zeros(len(vocabulary))), vocabulary, prompts, args.length, reference)),
            ("unigram", f"{len(vocabulary):,}", "-", "-", f"{-log_p[validation].mean():.3f}",
             *sample_distances(FixedLogitsDecoder(log_p), vocabulary, prompts, args.length, reference))]
    with tempfile.TemporaryDirectory() as temporary:
        checkpoints = args.keep or Path(temporary)
        for name in args.models.split(","):
            spec = registry.get(name)
            config = resolve_config(spec, overrides={"epochs": args.epochs, "patience": args.epochs})
            started = time.time()
            run_config = training.train(spec, config, args.data, Path(checkpoints) / name, log=lambda *_: None, verbose=0)
            progress = run_config["progress"]
            seconds_per_epoch = (time.time() - started) / max(progress["epochs_completed"], 1)
            model = registry.load_run(Path(checkpoints) / name).model
            parameters = model.count_params() if spec.build is not None else sum(len(k) for k in model.keys)
            likelihood = f"{progress['best_val_loss']:.3f}" if spec.likelihood else "n/a"
            rows.append((name, f"{parameters:,}", str(progress["epochs_completed"]), f"{seconds_per_epoch:.0f}",
                         likelihood, *sample_distances(spec.decoder(model, seed=0), vocabulary, prompts, args.length, reference)))
            print(f"{name}: done in {time.time() - started:.0f} s", file=sys.stderr)
    print(f"data: {args.data} ({len(splits['train'].tokens):,} training tokens, vocabulary {len(vocabulary)}); "
          f"{args.samples} pieces x {args.length} events per model")
    header = ("model", "parameters", "epochs", "s/epoch", "val loss", "pitch-class TV", "duration TV")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row[:5]) + f" | {row[5]:.3f} | {row[6]:.3f} |")


if __name__ == "__main__":
    main()
