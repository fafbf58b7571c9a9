"""Held-out chorales scored in the unit of the JSB chorale results: nats per voice per sixteenth.

The Music Transformer paper (Huang et al., 2018) reports 0.407 for a plain transformer and 0.335 with
relative attention on the JSB chorales' official split (four voices on a sixteenth-note grid, a pitch or a
rest for every voice at every sixteenth, a held note repeated). That split is a download, so this scores the
four-part pieces of our own test split in the same unit: each piece's total nats (evaluate.py --per-piece)
over four voices times its length in sixteenths. Pieces with other than four parts are left out, as JSB
leaves them out.

A near comparison, not an equal one: other test pieces, and where two voices sing one pitch our encoding
holds one note, not two.

    python evaluate.py --checkpoint checkpoints/bach --likelihood-only --per-piece /tmp/pieces.csv
    python benchmarks/voice_sixteenths.py /tmp/pieces.csv
"""

import argparse

import music21
import pandas as pd

VOICES = 4
SIXTEENTHS_PER_QUARTER = 4


def parts_in(source):
    """How many parts the score read from `source` (a file path, maybe with #tune) has."""
    return len(music21.converter.parse(source.partition("#")[0]).parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("per_piece", help="the CSV of evaluate.py --per-piece")
    pieces = pd.read_csv(parser.parse_args().per_piece)
    parts = {source: parts_in(source) for source in pieces["source"].unique()}
    four_parts = pieces[pieces["source"].map(parts) == VOICES]
    print(f"{four_parts['source'].nunique()} of {len(parts)} held-out pieces have four parts")
    totals = four_parts.groupby("model")[["nll_nats", "notes", "quarters"]].sum()
    table = pd.DataFrame({
        "nats per note": totals["nll_nats"] / totals["notes"],
        "nats per voice per sixteenth": totals["nll_nats"] / (VOICES * SIXTEENTHS_PER_QUARTER * totals["quarters"]),
    })
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
