"""MIDI readers side by side on the same files: symusic (our default), pretty_midi (our fallback), music21.

    python benchmarks/midi_readers.py ../shared/data/nottingham --limit 200 --repeats 5

Each reader parses the same files in the same run: one untimed pass each first (imports, first calls and the
operating system's file cache then weigh on none of the timed passes), then --repeats timed passes, the readers
taking turns (symusic, pretty_midi, music21, symusic, ...) so that other load on the machine falls on all of
them alike. music21 parses from the source every time (forceSource): its own cache of parsed files would
otherwise serve every pass after the first. The table gives the median milliseconds per file with the fastest
and slowest pass, and the speed relative to music21 (the reader of Skuldur's Classical-Piano-Composer and its
many descendants): the median of the per-pass ratios, with their range.
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path


def seconds_per_file(read, files):
    started = time.perf_counter()
    for path in files:
        read(str(path))
    return (time.perf_counter() - started) / len(files)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=200, help="files to read (default: 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes of each reader (default: 5)")
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))[: args.limit]
    if not files:
        sys.exit(f"error: no MIDI files in {args.folder}")
    if args.repeats < 1:
        sys.exit(f"error: --repeats must be at least 1, got {args.repeats}")
    import music21
    import pretty_midi
    import symusic

    warnings.filterwarnings("ignore")
    readers = {"symusic": symusic.Score, "pretty_midi": pretty_midi.PrettyMIDI,
               "music21": lambda path: music21.converter.parse(path, forceSource=True)}
    for read in readers.values():
        seconds_per_file(read, files)
    passes = {name: [] for name in readers}
    for _ in range(args.repeats):
        for name, read in readers.items():
            passes[name].append(seconds_per_file(read, files))
    print(f"{len(files)} files from {args.folder}; {args.repeats} timed passes of each reader, taking turns")
    print(f"{'reader':<12} {'ms per file (fastest-slowest)':>30} {'x music21 (range)':>24}")
    for name, values in passes.items():
        ratios = [slow / fast for slow, fast in zip(passes["music21"], values)]
        print(f"{name:<12} {statistics.median(values) * 1000:>10.3f} ({min(values) * 1000:.3f}-{max(values) * 1000:.3f})"
              f"{statistics.median(ratios):>14.0f} ({min(ratios):.0f}-{max(ratios):.0f})")


if __name__ == "__main__":
    main()
