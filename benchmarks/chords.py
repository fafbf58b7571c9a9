"""Does music written over given chords (generate.py --chords) fit them? Held-out tunes' own progressions.

    python benchmarks/chords.py checkpoints/nott-chords-transformer checkpoints/nott-chords-ngram --pieces 40

The runs must share data preprocessed with chord symbols (preprocess.py
--chord-symbols). For each of the first --pieces test tunes with chord symbols,
its first --bars bars of chords are given to every run (ChordConstraint, top-p
decoding, --samples pieces each), and the table gives the share of strong beats
whose top note belongs to the chord sounding (harmonize.chord_tone_share):

- for the music each run wrote over the tune's chords;
- for the real tune over its own chords (what the runs should reach);
- for the real tune over the chords of the next test tune in the same meter,
  a melody that was not written for them: the share that fitting no chord gives.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from models import registry  # noqa: E402
from musicgen import sampling  # noqa: E402
from musicgen.chords import ChordSymbols  # noqa: E402
from musicgen.meters import bar_quarters  # noqa: E402
from musicgen.dataset import MANIFEST_FILE, load_processed  # noqa: E402
from musicgen.encoding import event_symbols, events_to_notes  # noqa: E402
from musicgen.harmonize import ChordConstraint, chord_tone_share  # noqa: E402


def opening(notes, symbols, steps):
    """The notes and symbols of a piece's first `steps` grid steps, the last ones cut at the end."""
    notes = notes[notes[:, 0] < steps].copy()
    notes[:, 1] = np.minimum(notes[:, 1], steps - notes[:, 0])
    symbols = symbols.where(symbols.onsets < steps)
    return notes, ChordSymbols(symbols.onsets, np.minimum(symbols.durations, steps - symbols.onsets), symbols.codes)


def interval(values, rng, draws=2000):
    """The mean of `values` and its 95% bootstrap interval over pieces."""
    values = np.asarray(values, dtype=np.float64)
    means = rng.choice(values, size=(draws, len(values))).mean(axis=1)
    return f"{values.mean():.2f} [{np.percentile(means, 2.5):.2f}, {np.percentile(means, 97.5):.2f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of the same data")
    parser.add_argument("--pieces", type=int, default=40, help="test tunes (default: 40)")
    parser.add_argument("--bars", type=int, default=8, help="bars of each tune's chords given (default: 8)")
    parser.add_argument("--samples", type=int, default=2, help="pieces written over each progression (default: 2)")
    parser.add_argument("--random-seed", type=int, default=0)
    args = parser.parse_args()
    runs = [registry.load_run(path) for path in args.runs]
    vocabulary = runs[0].vocabulary
    data = Path(runs[0].run_config["data"])
    _, splits = load_processed(data, ("test",))
    meters = pd.read_csv(data / MANIFEST_FILE, keep_default_na=False).set_index("source")["time_signature"]
    test = splits["test"]
    spq = vocabulary.settings.steps_per_quarter
    tunes = []  # (meter, notes, symbols) of each tune's opening
    for index in test.original_indices():
        events = vocabulary.decode(test.piece(index))
        meter = meters[str(test.sources[index])]
        notes, symbols = opening(events_to_notes(events), event_symbols(events),
                                 int(round(args.bars * bar_quarters(meter) * spq)))
        if len(symbols) >= 2:
            tunes.append((meter, notes, symbols))
    tunes = tunes[: args.pieces]
    print(f"{len(tunes)} test tunes of {data}, their first {args.bars} bars of chords; "
          f"{args.samples} pieces per run and tune")
    print("| melody | strong beats on the chord |")
    print("|---|---|")
    rng = np.random.default_rng(args.random_seed)
    for run in runs:
        strategy = sampling.get("top-p", seed=args.random_seed)
        shares = []
        for meter, _, symbols in tunes:
            prompt = np.full((args.samples, 1), run.vocabulary.start_id, np.int32)
            constraint = ChordConstraint(run.vocabulary, symbols, args.samples)
            cap = int(constraint.end // spq + 1) * 16 + 64
            for tokens in strategy.generate(run.spec.decoder(run.model), run.vocabulary, prompt, cap,
                                            constraint=constraint):
                notes = events_to_notes(run.vocabulary.decode(tokens))
                shares.append(chord_tone_share(notes, symbols, spq, meter))
        print(f"| {run.name}, over the tune's chords | {interval(shares, rng)} |")
    real = [chord_tone_share(notes, symbols, spq, meter) for meter, notes, symbols in tunes]
    print(f"| the real tune, over its own chords | {interval(real, rng)} |")
    other = []
    for position, (meter, notes, _) in enumerate(tunes):
        later = [symbols for m, _, symbols in tunes[position + 1:] + tunes[:position] if m == meter]
        if later:
            other.append(chord_tone_share(notes, later[0], spq, meter))
    print(f"| the real tune, over another tune's chords | {interval(other, rng)} |")


if __name__ == "__main__":
    main()
