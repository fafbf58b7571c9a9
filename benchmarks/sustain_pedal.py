"""What the sustain pedal does to performance MIDI: each file read with the pedal applied and without it.

    python benchmarks/sustain_pedal.py ../shared/data/real-midi/piano-performance

A row per file: its notes, the share the pedal makes longer, the mean note length in quarter notes as the keys
were released and as it is heard, and the share of heard notes longer than the encoding's longest duration
(8 quarters by default), which preprocessing clips and counts. The last columns price the other way to keep
the pedal, as events of its own: the file's pedal presses per note, and the tokens per note they would add
at the least (a pedal-down and a pedal-up event, each a pedal token and a shift: 4 tokens a press).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import symusic  # noqa: E402

from musicgen import readers  # noqa: E402

TOKENS_PER_PRESS = 4


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--max-duration", type=float, default=8, metavar="QUARTERS")
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in readers.MIDI_SUFFIXES)
    if not files:
        sys.exit(f"error: no MIDI files in {args.folder}")
    print("| file | notes | longer with the pedal | mean length, keys (quarters) | mean length, heard "
          "| heard over the longest duration | pedal presses per note | tokens per note as pedal events |")
    print("|---|---|---|---|---|---|---|---|")
    for path in files:
        played = readers.read_midi(path, readers.TrackSelection(sustain_pedal=False))
        heard = readers.read_midi(path, readers.TrackSelection())
        if not isinstance(heard, readers.RawPiece):
            print(f"| {path.name} | {heard.status}: {heard.reason} | | | | | | |")
            continue
        longer = (heard.durations > played.durations + 1e-9).mean()
        over = (heard.durations > args.max_duration).mean()
        presses = sum(len(track.pedals) for track in symusic.Score(str(path)).tracks) / len(heard.pitches)
        print(f"| {path.name} | {len(heard.pitches)} | {longer:.0%} | {played.durations.mean():.2f} | "
              f"{heard.durations.mean():.2f} | {over:.1%} | {presses:.3f} | +{TOKENS_PER_PRESS * presses:.2f} |")


if __name__ == "__main__":
    main()
