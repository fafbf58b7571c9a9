"""Does conditioning steer the music? Key, density and a style (or composer) label, measured on generated pieces.

    python benchmarks/control.py checkpoints/bach-melody-keys-transformer
    python benchmarks/control.py checkpoints/nott-labels-transformer --label style --keys 6

For a run trained on labelled data (preprocess.py --compute-labels key,density,
--label-from, --label-pattern or --labels), each test generates pieces from a
prompt of <start> and one control token, with nothing else to go on:

- key: for each of the most common training keys, the share of pieces whose
  estimated key (musicgen.labels.estimate_key, the estimator that labelled the
  training data) is the one asked for; against unconditioned pieces (chance:
  the same keys asked of pieces generated without any label) and against real
  held-out pieces (their first --length events against their whole piece's key).
- density: notes per quarter of pieces asked for each bin, against real
  held-out openings of that bin.
- --label NAME: a logistic regression on pitch-class, interval and
  onset-gap histograms, trained on the real training pieces, names the label of real held-out pieces
  and of pieces generated with each value; its accuracy on both, and the confusion table of the
  generated pieces (what it names those asked for each value), with each value's real accuracy beside.
"""

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from models import registry  # noqa: E402
from musicgen import labels, sampling  # noqa: E402
from musicgen.dataset import load_processed  # noqa: E402
from musicgen.encoding import events_to_notes  # noqa: E402
from musicgen.evaluation import generate_pieces  # noqa: E402
from musicgen.guidance import guided  # noqa: E402
from musicgen.notes import ONSET, PITCH  # noqa: E402


def piece_labels(split, vocabulary, index):
    piece = split.piece(index)
    opening = piece[1:vocabulary.opening_length(piece)]
    return dict(vocabulary.labels[i] for i in opening)


def opening_notes(split, vocabulary, index, length):
    """The notes of a piece's first `length` events."""
    return events_to_notes(vocabulary.decode(split.piece(index))[:length])


def generator(run, strategy, length, guidance=1.0):
    """prompts -> the notes of each prompt's `length`-event continuation; one decoder, traced once."""
    decoder = guided(run, run.vocabulary, guidance)
    return lambda prompts: [events_to_notes(events)
                            for events in generate_pieces(decoder, run.vocabulary, prompts, length, strategy)]


def prompt(vocabulary, conditions=None):
    return np.array([vocabulary.start_id] + (vocabulary.control_ids(conditions) if conditions else []), np.int32)


def spread(values):
    """Mean (10th to 90th percentile)."""
    return f"{np.mean(values):.2f} ({np.percentile(values, 10):.2f} to {np.percentile(values, 90):.2f})"


def key_test(run, splits, generate, args):
    vocabulary = run.vocabulary
    train, test = splits["train"], splits["test"]
    counts = Counter(piece_labels(train, vocabulary, i).get("key") for i in range(len(train)))
    keys = [key for key, _ in counts.most_common() if key][: args.keys]
    asked = [key for key in keys for _ in range(args.pieces)]
    conditioned = generate([prompt(vocabulary, {"key": key}) for key in asked])
    free = generate([prompt(vocabulary) for _ in asked])
    hits = [labels.estimate_key(notes) == key for notes, key in zip(conditioned, asked)]
    chance = [labels.estimate_key(notes) == key for notes, key in zip(free, asked)]
    real = [labels.estimate_key(opening_notes(test, vocabulary, i, args.length)) == piece_labels(test, vocabulary, i)["key"]
            for i in range(len(test)) if "key" in piece_labels(test, vocabulary, i)]
    print(f"\nkey: {len(keys)} keys ({', '.join(keys)}), {args.pieces} pieces each of {args.length} events")
    print("| pieces | in the key asked for |\n|---|---|")
    print(f"| generated with --condition key=... | {np.mean(hits):.0%} ({sum(hits)} of {len(hits)}) |")
    print(f"| generated without a label (chance) | {np.mean(chance):.0%} ({sum(chance)} of {len(chance)}) |")
    print(f"| real held-out openings, against their piece's key | {np.mean(real):.0%} ({sum(real)} of {len(real)}) |")
    for key in keys:
        share = np.mean([hit for hit, asked_key in zip(hits, asked) if asked_key == key])
        print(f"  {key}: {share:.0%}")


def density_test(run, splits, generate, args):
    vocabulary = run.vocabulary
    test = splits["test"]
    spq = vocabulary.settings.steps_per_quarter
    print(f"\ndensity: notes per quarter, mean (10th to 90th percentile), {args.pieces * 2} pieces of {args.length} "
          "events per bin")
    print("| bin | generated with --condition density=... | real held-out openings of that bin |\n|---|---|---|")
    for value in labels.DENSITY_BINS:
        made = generate([prompt(vocabulary, {"density": value})] * (args.pieces * 2))
        real = [labels.notes_per_quarter(opening_notes(test, vocabulary, i, args.length), spq)
                for i in range(len(test)) if piece_labels(test, vocabulary, i).get("density") == value]
        made_density = [labels.notes_per_quarter(notes, spq) for notes in made]
        real_text = spread(real) + f", {len(real)} pieces" if real else "none"
        print(f"| {value} | {spread(made_density)} | {real_text} |")


def features(notes):
    """Shares of pitch classes, of melodic intervals (-12..12 semitones, wider ones at the ends) and of the gaps
    between onsets (1..16 grid steps, longer ones in the last): what is played, and in what rhythm."""
    def shares(values, size):
        counts = np.bincount(values, minlength=size).astype(np.float64)
        return counts / max(counts.sum(), 1)

    intervals = np.clip(np.diff(notes[:, PITCH]), -12, 12) + 12 if len(notes) > 1 else np.zeros(0, np.int64)
    gaps = np.clip(np.diff(np.unique(notes[:, ONSET])), 1, 16) - 1
    return np.concatenate([shares(notes[:, PITCH] % 12, 12), shares(intervals, 25), shares(gaps, 16)])


def fit_logistic_regression(x, y, classes, l2=1e-3, steps=2000, rate=0.5):
    """Multinomial logistic regression by gradient descent on standardised features: (weights, mean, scale)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    x = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    targets = np.eye(classes)[y]
    weights = np.zeros((x.shape[1], classes))
    for _ in range(steps):
        logits = x @ weights
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        weights -= rate * (x.T @ (probabilities - targets) / len(x) + l2 * weights)
    return weights, mean, scale


def predict(model, x):
    weights, mean, scale = model
    return np.argmax(np.column_stack([(x - mean) / scale, np.ones(len(x))]) @ weights, axis=1)


def label_test(run, splits, generate, args):
    vocabulary = run.vocabulary
    values = vocabulary.controls.get(args.label)
    if not values:
        raise SystemExit(f"the run has no label {args.label!r}; it has: {', '.join(vocabulary.controls)}")
    examples = {}
    for name in ("train", "test"):
        split = splits[name]
        rows = [(features(opening_notes(split, vocabulary, i, args.length)), values.index(value))
                for i in split.original_indices()
                for value in [piece_labels(split, vocabulary, i).get(args.label)] if value in values]
        examples[name] = (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]))
    model = fit_logistic_regression(*examples["train"], classes=len(values))
    test_x, test_y = examples["test"]
    asked = [index for index in range(len(values)) for _ in range(args.pieces)]
    made = generate([prompt(vocabulary, {args.label: values[i]}) for i in asked])
    named = predict(model, np.array([features(notes) for notes in made]))
    made_hits = named == np.array(asked)
    majority = np.bincount(examples["train"][1], minlength=len(values)).argmax()
    print(f"\n{args.label}: {len(values)} values; logistic regression on pitch-class, interval and onset-gap shares of "
          f"{len(examples['train'][1])} training openings of {args.length} events")
    print("| pieces | classified as their label |\n|---|---|")
    print(f"| real held-out openings | {np.mean(predict(model, test_x) == test_y):.0%} ({len(test_y)} pieces; "
          f"always guessing the commonest, {values[majority]}: {np.mean(test_y == majority):.0%}) |")
    print(f"| generated with --condition {args.label}=... | {np.mean(made_hits):.0%} ({len(made_hits)} pieces, "
          f"{args.pieces} per value; a uniform guess: {1 / len(values):.0%}) |")
    print(f"\nwhat the classifier names (columns) the generated pieces asked for each {args.label} (rows), and how "
          "often it names real held-out openings right:")
    print(confusion_table(values, np.array(asked), named, predict(model, test_x), test_y))


def confusion_table(values, asked, named, real_named, real_truth):
    """Markdown: a row per value asked for, the count of generated pieces named each value, the share named
    right, and the share of that value's real held-out openings named right."""
    lines = ["| asked for | " + " | ".join(values) + " | right | real held-out right |",
             "|---|" + "---:|" * (len(values) + 2)]
    for index, value in enumerate(values):
        counts = np.bincount(named[asked == index], minlength=len(values))
        real = real_named[real_truth == index] == index
        real_text = f"{real.mean():.0%} of {len(real)}" if len(real) else "none held out"
        lines.append(f"| {value} | " + " | ".join(str(count) for count in counts)
                     + f" | {counts[index] / max(counts.sum(), 1):.0%} | {real_text} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run trained on labelled data")
    parser.add_argument("--keys", type=int, default=8, help="the most common training keys to ask for (default: 8)")
    parser.add_argument("--pieces", type=int, default=8, help="pieces generated per key, bin or value (default: 8)")
    parser.add_argument("--length", type=int, default=64, help="events per piece (default: 64)")
    parser.add_argument("--label", help="also test this label (a folder, pattern or CSV label) with a classifier")
    parser.add_argument("--guidance", type=float, default=1.0,
                        help="classifier-free guidance weight of the labels, as generate.py's (default: 1)")
    parser.add_argument("--random-seed", type=int, default=0)
    args = parser.parse_args()
    run = registry.load_run(args.run)
    _, splits = load_processed(run.run_config["data"], ("train", "test"))
    generate = generator(run, sampling.get("top-p", seed=args.random_seed), args.length, args.guidance)
    print(f"{args.run}: labels {', '.join(f'{k} ({len(v)})' for k, v in run.vocabulary.controls.items())}")
    if "key" in run.vocabulary.controls:
        key_test(run, splits, generate, args)
    if "density" in run.vocabulary.controls:
        density_test(run, splits, generate, args)
    if args.label:
        label_test(run, splits, generate, args)


if __name__ == "__main__":
    main()
