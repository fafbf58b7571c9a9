"""MIDI readers side by side on the same files: symusic (our default), pretty_midi (our fallback), music21.

    python benchmarks/midi_readers.py ../shared/data/nottingham --limit 200

Each reader parses the same files in the same run; the table gives milliseconds per file and the speed
relative to music21 (the reader of Skuldur's Classical-Piano-Composer and its many descendants).
"""

import argparse
import sys
import time
import warnings
from pathlib import Path


def time_reader(read, files):
    started = time.perf_counter()
    for path in files:
        read(str(path))
    return (time.perf_counter() - started) / len(files)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=200, help="files to read (default: 200)")
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".mid", ".midi"))[: args.limit]
    if not files:
        sys.exit(f"error: no MIDI files in {args.folder}")
    import music21
    import pretty_midi
    import symusic

    warnings.filterwarnings("ignore")
    readers = {"symusic": symusic.Score, "pretty_midi": pretty_midi.PrettyMIDI, "music21": music21.converter.parse}
    seconds = {name: time_reader(read, files) for name, read in readers.items()}
    print(f"{len(files)} files from {args.folder}")
    print(f"{'reader':<12} {'ms per file':>12} {'x music21':>10}")
    for name, value in seconds.items():
        print(f"{name:<12} {value * 1000:>12.3f} {seconds['music21'] / value:>10.1f}")


if __name__ == "__main__":
    main()
