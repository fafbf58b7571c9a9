"""Which pieces train, validate and test: the split drawn from file names, cross-validation folds, the split a
dataset brings with it, and near-duplicate pieces kept on one side of a split.

The default split is drawn from a hash of each file's name (split_of), and
`--folds K` deals the pieces into K folds the same way (fold_split).
A collection that comes with its own split keeps it, so results compare with
published ones: `--split-from FILE.csv` (MAESTRO's maestro-v3.0.0.csv: columns
`split` and `midi_filename`) or `--split-from folders` (train/, valid/ or
validation/, test/ under each --input).

`--dedupe` groups pieces whose openings are the same melody (music21 holds some
chorales twice under different numbers, harmonized a little differently) and
puts each group in the split of its first member, so a held-out piece is not
also learned from a copy of it.
"""

import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from musicgen.errors import UserError
from musicgen.labels import FILE_COLUMNS, csv_labels, folder_labels
from musicgen.notes import ONSET, PITCH

SPLIT_NAMES = {"train": "train", "training": "train", "valid": "validation", "validation": "validation",
               "val": "validation", "dev": "validation", "test": "test"}
OPENING_ONSETS = 16  # how much of a piece's top voice its fingerprint covers


def check_fractions(val_fraction, test_fraction):
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError("the validation and test fractions must each be in [0, 1) and sum to less than 1")


def split_of(source, val_fraction, test_fraction, seed):
    """The split of the piece read from `source`, drawn from a hash of its file name (and tune) and the seed.

    Not from a shuffle of the whole corpus: a piece keeps its split when files are
    added or removed, or the collection moves, so a rerun on a grown collection
    never moves a piece from validation into training. The name is taken without
    its extension, so files of the same name in different folders or formats
    (often copies of one piece: song.mid and song.musicxml) share a split.
    """
    position = hash_position(source, seed)
    if position < test_fraction:
        return "test"
    return "validation" if position < test_fraction + val_fraction else "train"


def fold_split(source, folds, test_fold, seed):
    """The split of a piece in cross-validation fold `test_fold` of `folds`: its fold drawn like split_of's split.

    The same hash deals the pieces into `folds` folds of about equal size; the
    test fold tests, the one after it validates, the others train.
    """
    fold = fold_of(hash_position(source, seed), folds)
    if fold == test_fold:
        return "test"
    return "validation" if fold == (test_fold + 1) % folds else "train"


def fold_of(position, folds):
    return min(int(position * folds), folds - 1)


def check_folds(positions, folds):
    """Refuse `folds` folds of which some would hold none of the kept pieces, whose hash positions
    (hash_position) are `positions`."""
    held = {fold_of(position, folds) for position in positions.tolist()}
    if len(held) < folds:
        raise UserError(f"only {len(held)} of the {folds} folds hold a piece of the {len(positions)} kept; "
                        "use fewer --folds (or another --split-seed)")


def keep_duplicates_together(splits, openings):
    """Give each kept piece whose opening repeats an earlier piece's (duplicate_leaders) that piece's split.

    `splits` holds every piece's split (any array, changed in place); `openings` is [(piece, source, opening
    fingerprint)] of the kept pieces that have one. Returns how many pieces were grouped with another.
    """
    leaders = duplicate_leaders(openings)
    for piece, leader in leaders.items():
        splits[piece] = splits[leader]
    return len(leaders)


def fill_empty_held_out_splits(splits, positions, val_fraction, test_fraction):
    """In a corpus of 3+ pieces, give an empty held-out split (whose fraction is not 0) one training piece.

    A small corpus can draw no piece for validation or test; this moves the
    training piece whose hash lies nearest the held-out range. `splits` are the
    kept pieces' split names (a NumPy array of objects, changed in place) and `positions`
    their hash positions (hash_position). Returns whether any moved.
    """
    moved = False
    for name, fraction in (("test", test_fraction), ("validation", val_fraction)):
        training = np.flatnonzero(splits == "train")
        if fraction > 0 and len(splits) >= 3 and len(training) > 1 and not (splits == name).any():
            splits[training[np.argmin(positions[training])]] = name
            moved = True
    return moved


def hash_position(source, seed):
    """Where the piece read from `source` falls in [0, 1), from a hash of its file name (and tune) and the seed:
    what split_of and fold_split deal the pieces by."""
    path, mark, tune = source.partition("#")
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(f"{seed}:{stem}{mark}{tune}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def splits_from_csv(files, csv_path, file_column=None):
    """{file: split} from a CSV's `split` column; every file must be listed, and every row name a file."""
    found, unlisted = csv_labels(files, csv_path, ["split"], file_column, flag="--split-from")
    splits = {}
    for path, values in found.items():
        value = values.get("split", "").lower()
        if value not in SPLIT_NAMES:
            raise UserError(f"--split-from {csv_path}: {path} has split {value!r}; the splits are "
                            f"{', '.join(sorted(SPLIT_NAMES))}")
        splits[path] = SPLIT_NAMES[value]
    if not splits:
        raise UserError(f"--split-from {csv_path} lists none of the {len(files)} files found")
    missing = _rows_naming_no_file(csv_path, files, file_column)
    if missing:
        raise UserError(f"--split-from {csv_path} names {len(missing)} files that are not under --input, e.g. "
                        f"{missing[0]} (give the whole collection, or a CSV of the files at hand)")
    return splits, unlisted


def _rows_naming_no_file(csv_path, files, file_column):
    """The file names of the CSV rows that name none of `files` (by a trailing part of its path)."""
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    file_column = file_column or next(c for c in FILE_COLUMNS if c in rows[0])
    known = {Path(*path.parts[begin:]).as_posix() for path in (Path(f).resolve() for f in files)
             for begin in range(len(path.parts))}
    return [row[file_column] for row in rows if Path(str(row[file_column]).strip()).as_posix() not in known]


def splits_from_folders(files, roots):
    """{file: split} from the first folder under its --input root: train/, valid/ or validation/, test/."""
    folders = folder_labels(files, roots, "split")
    splits, unlisted = {}, []
    for path in map(str, files):
        split = SPLIT_NAMES.get(folders.get(path, {}).get("split", "").lower())
        if split is None:
            unlisted.append(path)
        else:
            splits[path] = split
    for root in roots:
        for folder in Path(root).iterdir() if Path(root).is_dir() else ():
            if folder.is_dir() and folder.name.lower() in SPLIT_NAMES and not any(
                    Path(path).resolve().is_relative_to(folder.resolve()) for path in splits):
                raise UserError(f"--split-from folders: {folder} holds no music files")
    held = set(splits.values())
    if "train" not in held:
        raise UserError("--split-from folders needs a train/ folder with music files under --input "
                        "(and valid/ or validation/, and test/)")
    return splits, unlisted


def opening_fingerprint(notes):
    """A short hash of a piece's opening melody, the same in any key: the intervals and onset gaps of the
    highest note at each of its first OPENING_ONSETS onsets (grid notes)."""
    notes = np.asarray(notes)
    if len(np.unique(notes[:, ONSET])) < OPENING_ONSETS:
        return ""  # too short to tell a copy from a piece that merely opens alike
    order = np.lexsort((-notes[:, PITCH], notes[:, ONSET]))
    onsets, pitches = notes[order, ONSET], notes[order, PITCH]
    first = np.ones(len(onsets), dtype=bool)
    first[1:] = onsets[1:] != onsets[:-1]
    onsets, pitches = onsets[first][:OPENING_ONSETS], pitches[first][:OPENING_ONSETS]
    shape = np.stack([np.diff(pitches), np.diff(onsets)]).astype(np.int64)
    return hashlib.sha1(shape.tobytes()).hexdigest()[:16]


def duplicate_leaders(openings):
    """{piece: the piece whose split it takes} for the [(piece, source, opening fingerprint)] that share a
    fingerprint with another: of each group, the first by source name leads it."""
    leaders, first_of = {}, {}
    for piece, _, opening in sorted(openings, key=lambda entry: entry[1]):
        leader = first_of.setdefault(opening, piece)
        if leader != piece:
            leaders[piece] = leader
    return leaders
