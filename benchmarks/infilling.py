"""Does the music after a gap help fill it? Held-out likelihood of a missing passage, with and without it.

    python benchmarks/infilling.py checkpoints/bach-infill-transformer --plain checkpoints/bach-notes-transformer

For each held-out test piece, a passage of --middle events (cut where an onset
ends, so no chord is split) after --before events is taken out, and the model
trained with preprocess.py --infilling scores it twice:

- filled in: <start> <hole> gap after <fill> before middle, where `gap` is the
  middle's length and `after` the next --after events (what generate.py
  --infill gives the model);
- left only: <start> before middle, as plain continuation.

The table gives nats per note of the middle passages, with 95 % bootstrap
intervals over the pieces, and the paired difference. With --plain, a run of
the same corpus without the markers scores the left-only order as well: what
training for infilling costs plain continuation.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from models import registry  # noqa: E402
from musicgen.dataset import load_processed  # noqa: E402
from musicgen.evaluation import score_pieces  # noqa: E402
from musicgen.tokens import FILL, HOLE  # noqa: E402


def onset_cut(events, at_least):
    """The first index >= at_least where a new onset begins (the event before it moves time on)."""
    for index in range(max(at_least, 1), len(events)):
        if events[index - 1].shift > 0:
            return index
    return None


def passages(split, vocabulary, before, middle, after):
    """(source, before, middle, after) events of each original piece long enough for all three."""
    found = []
    for index in split.original_indices():
        piece = split.piece(index)
        events = vocabulary.decode(piece[vocabulary.opening_length(piece):])
        first = onset_cut(events, before)
        second = onset_cut(events, first + middle) if first else None
        if second and second + after <= len(events):
            found.append((str(split.sources[index]), events[:first], events[first:second],
                          events[second:second + after]))
    return found


def middle_nll(run, layouts):
    """Per layout (tokens, where the middle begins): the middle's total negative log-likelihood in nats."""
    scores = score_pieces(run.spec.decoder(run.model), [tokens for tokens, _ in layouts], run.vocabulary.pad_id)
    return np.array([-log_probabilities[begin - 1:].sum() for (_, begin), (log_probabilities, _) in
                     zip(layouts, scores)])


def layouts(vocabulary, found, fill_in):
    encode = vocabulary.encode
    result = []
    for _, before, middle, after in found:
        head = [vocabulary.start_id]
        if fill_in:
            gap = vocabulary.gap_tokens(sum(event.shift for event in middle))
            head += [vocabulary.index[HOLE], *gap, *encode(after, start=False, end=False), vocabulary.index[FILL]]
        head += list(encode(before, start=False, end=False))
        result.append((np.array(head + list(encode(middle, start=False, end=False)), np.int32), len(head)))
    return result


def bootstrap(values, notes, draws=2000, seed=0):
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), (draws, len(values)))
    ratios = values[picks].sum(axis=1) / notes[picks].sum(axis=1)
    return values.sum() / notes.sum(), np.percentile(ratios, 2.5), np.percentile(ratios, 97.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run trained on preprocess.py --infilling data")
    parser.add_argument("--plain", type=Path, help="a run of the same corpus without the markers, for comparison")
    parser.add_argument("--before", type=int, default=24, help="events before the gap (default: 24)")
    parser.add_argument("--middle", type=int, default=8, help="events taken out, at least (default: 8)")
    parser.add_argument("--after", type=int, default=8, help="events after the gap given (default: 8)")
    parser.add_argument("--split", default="test", help="the split whose pieces are cut (default: test)")
    parser.add_argument("--pieces", type=int, default=40, help="at most this many pieces (default: 40)")
    args = parser.parse_args()
    run = registry.load_run(args.run)
    vocabulary = run.vocabulary
    if not vocabulary.infilling:
        raise SystemExit(f"{args.run} was not trained on --infilling data")
    _, splits = load_processed(run.run_config["data"], (args.split,))
    found = passages(splits[args.split], vocabulary, args.before, args.middle, args.after)[: args.pieces]
    notes = np.array([sum(len(event.pitches) for event in middle) for _, _, middle, _ in found], np.float64)
    rows = {"filled in (before and after)": middle_nll(run, layouts(vocabulary, found, fill_in=True)),
            "left only (before)": middle_nll(run, layouts(vocabulary, found, fill_in=False))}
    if args.plain:
        plain = registry.load_run(args.plain)
        rows[f"left only, {args.plain.name} (no infilling training)"] = middle_nll(
            plain, layouts(plain.vocabulary, found, fill_in=False))
    print(f"{len(found)} {args.split} pieces; middles of {int(notes.sum())} notes after {args.before} events, "
          f"{args.after} events after them given")
    print("| context | nats per note of the middle |\n|---|---|")
    for name, values in rows.items():
        value, low, high = bootstrap(values, notes)
        print(f"| {name} | {value:.3f} [{low:.3f}, {high:.3f}] |")
    difference, low, high = bootstrap(rows["left only (before)"] - rows["filled in (before and after)"], notes)
    print(f"\nwhat the music after the gap is worth: {difference:.3f} [{low:.3f}, {high:.3f}] nats per note")


if __name__ == "__main__":
    main()
