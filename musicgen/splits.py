"""Splits a dataset brings with it, and near-duplicate pieces kept on one side of a split.

The default split is drawn from a hash of each file's name (preprocessing.split_of).
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
from pathlib import Path

import numpy as np

from musicgen.encoding import ONSET, PITCH
from musicgen.errors import UserError
from musicgen.labels import FILE_COLUMNS, csv_labels, folder_labels

SPLIT_NAMES = {"train": "train", "training": "train", "valid": "validation", "validation": "validation",
               "val": "validation", "dev": "validation", "test": "test"}
OPENING_ONSETS = 16  # how much of a piece's top voice its fingerprint covers


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


def duplicate_leaders(rows):
    """{source: the source whose split it takes} for kept rows that share an opening fingerprint with an
    earlier one (by source name); the first of each group leads it."""
    leaders, first_of = {}, {}
    for row in sorted((r for r in rows if r["status"] == "kept" and r.get("opening")), key=lambda r: r["source"]):
        leader = first_of.setdefault(row["opening"], row["source"])
        if leader != row["source"]:
            leaders[row["source"]] = leader
    return leaders
