"""Lay out the corpus of the shipped model that knows many styles: a folder per style, of links to its files.

    python -m musicgen.styles data/styles              # then:
    python preprocess.py --input data/styles --label-from folders=style --compute-labels key,density --dedupe

Every file comes from music21's bundled corpus (installed with music21, no download) or, where the folder
is found (--shared, default ../shared/data), from this project's shared data: the Nottingham tunes and the
Irish tunes of the MIT deep-learning music lab. Each style is a folder of links, named after the path of
the file it points to within its collection, so a style is a label (`style=palestrina`) that
preprocess.py --label-from folders reads. Where the files come from and under which licences:
docs/pretrained.md, "What the styles model learned from".
"""

import argparse
import os
import sys
from pathlib import Path

import music21

from musicgen.readers import SUPPORTED_SUFFIXES

MUSIC21_CORPUS = Path(music21.__file__).parent / "corpus"
DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# style: [(a folder of music21's corpus, which of its files: a glob pattern, or one to leave out with "!")]
MUSIC21_STYLES = {
    "bach": [("bach", "*")],  # chorales, harmonized in four parts
    "palestrina": [("palestrina", "*")],  # mass movements
    "monteverdi": [("monteverdi", "*")],  # madrigals
    "trecento": [("trecento", "*")],  # fourteenth-century Italian songs
    "string-quartet": [("beethoven", "*"), ("haydn", "*"), ("mozart", "*")],
    "german-folk": [("essenFolksong", "*"), ("essenFolksong", "!han*"), ("essenFolksong", "!test*")],  # Essen
    "chinese-folk": [("essenFolksong", "han*")],  # the Essen collection's Han songs
    "irish": [("oneills1850", "*")],  # O'Neill's Music of Ireland
    "scottish": [("airdsAirs", "*")],  # Aird's Selection of Scotch, English, Irish and Foreign Airs
    "fiddle": [("ryansMammoth", "*")],  # Ryan's Mammoth Collection: reels, jigs, hornpipes
}
# style: a folder or file of the shared data
SHARED_STYLES = {"english-folk": "nottingham", "irish": "abc/irish.abc"}


def style_files(shared):
    """{style: [files]}, each list sorted; the shared data's styles only where `shared` holds them."""
    styles = {}
    for style, sources in MUSIC21_STYLES.items():
        files = set()
        for folder, pattern in sources:
            if not pattern.startswith("!"):
                files |= set(_music_files(MUSIC21_CORPUS / folder, pattern))
        for folder, pattern in sources:
            if pattern.startswith("!"):
                files -= set(_music_files(MUSIC21_CORPUS / folder, pattern[1:]))
        styles[style] = sorted(files)
    for style, name in SHARED_STYLES.items():
        path = Path(shared) / name
        if path.exists():
            styles.setdefault(style, [])
            styles[style] = sorted(styles[style] + ([path] if path.is_file() else _music_files(path, "*")))
    return styles


def _music_files(folder, pattern):
    return [path for path in folder.rglob(pattern) if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES]


def lay_out(output, styles):
    """Links output/<style>/<name> -> each file; returns the number of links. An existing layout is replaced."""
    output = Path(output)
    count = 0
    for style, files in styles.items():
        folder = output / style
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            stale.unlink()
        for path in files:
            parts = path.parts[-3:] if len(path.parts) >= 3 else path.parts
            (folder / "__".join(parts)).symlink_to(os.path.abspath(path))
            count += 1
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="the folder to lay the styles out in, e.g. data/styles")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                        help=f"the shared data folder (default: {DEFAULT_SHARED}); its styles are left out where "
                             "it is absent")
    args = parser.parse_args()
    styles = style_files(args.shared)
    links = lay_out(args.output, styles)
    for style, files in styles.items():
        print(f"{style}: {len(files)} files")
    print(f"{links} links in {args.output}")
    if not any(styles.values()):
        sys.exit("error: no files found: is music21 installed with its corpus?")


if __name__ == "__main__":
    main()
