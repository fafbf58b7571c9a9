"""The manifest: a row for every piece read (kept, skipped or failed, and why), streamed to disk as it is read.

preprocess.py reads corpora of a million files. Their rows (a dozen columns,
a path, a reason) would be held until the end, growing with the corpus; so each
file's rows go to a spool file beside the output as its survey arrives, and
only what later steps decide or count stays in memory, a few numbers per piece
in typed arrays: the file, the status, the split (which --dedupe and small
corpora may still move), the hash position the split was drawn from, notes per
quarter (for the density label) and what encoding counts. The final
manifest.csv is written from the spool in file order, then the spool is removed.
"""

import array
import csv
import json
import math
from pathlib import Path

import numpy as np

from musicgen.dataset import MANIFEST_FILE, SPLITS
from musicgen.files import atomic_path
from musicgen.splits import hash_position

SPOOL_FILE = ".manifest-spool.jsonl"
STATUSES = ("kept", "skipped", "failed")
NO_SPLIT = -1


class Manifest:
    """The rows of one preprocessing run: add() each file's as they come, write() at the end.

    Pieces are numbered in the order they are added; a file's pieces are consecutive, so piece
    first_piece[file] + i is its file's i-th reading.
    """

    def __init__(self, output, files, seed, dedupe=False, extra_columns=()):
        self.path = Path(output) / MANIFEST_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool_path = self.path.with_name(SPOOL_FILE)
        self._spool = open(self._spool_path, "w+", encoding="utf-8")
        self._seed = seed
        self._columns = {}  # every column a row has had, in the order first met
        self.first_piece = np.full(files, -1, dtype=np.int64)
        self._file, self._offset = array.array("q"), array.array("q")
        self._status, self._split = array.array("b"), array.array("b")
        self._position, self._notes_per_quarter = array.array("d"), array.array("d")
        self.events, self.clipped_notes = None, None  # per piece, once encoding begins (start_counts)
        self.counted = {name: None for name in extra_columns}  # more counts per piece, written where kept
        self.density = None  # per piece: the density label, once decided
        # With --dedupe, (piece, source, opening) of each kept piece with an opening fingerprint.
        self.openings = [] if dedupe else None

    def __len__(self):
        return len(self._file)

    def add(self, file_index, rows):
        """Spool one file's rows (dicts, as preprocessing._survey makes them)."""
        self.first_piece[file_index] = len(self)
        for row in rows:
            piece = len(self)
            for column in row:
                self._columns.setdefault(column, None)
            self._offset.append(self._spool.tell())
            self._spool.write(json.dumps(row) + "\n")
            self._file.append(file_index)
            kept = row["status"] == "kept"
            self._status.append(STATUSES.index(row["status"]))
            self._split.append(SPLITS.index(row["split"]) if row["split"] else NO_SPLIT)
            self._position.append(hash_position(row["source"], self._seed) if kept else math.nan)
            self._notes_per_quarter.append(row.get("notes_per_quarter", math.nan))
            if self.openings is not None and kept and row.get("opening"):
                self.openings.append((piece, row["source"], row["opening"]))

    @property
    def statuses(self):
        """Each piece's status, as an index into STATUSES."""
        return np.frombuffer(self._status, dtype=np.int8)

    @property
    def kept(self):
        return self.statuses == STATUSES.index("kept")

    @property
    def splits(self):
        """Each piece's split, as an index into dataset.SPLITS (NO_SPLIT where not kept); a view to change."""
        return np.frombuffer(self._split, dtype=np.int8)

    @property
    def positions(self):
        """Each kept piece's hash position (splits.hash_position), NaN for the others."""
        return np.frombuffer(self._position, dtype=np.float64)

    @property
    def notes_per_quarter(self):
        """Each kept piece's notes per quarter where density is a label, NaN for the others."""
        return np.frombuffer(self._notes_per_quarter, dtype=np.float64)

    def training_notes_per_quarter(self):
        return self.notes_per_quarter[self.splits == SPLITS.index("train")]

    def start_counts(self):
        """Room for what encoding counts per piece: events, clipped notes and the extra columns."""
        self.events = np.zeros(len(self), dtype=np.int64)
        self.clipped_notes = np.zeros(len(self), dtype=np.int64)
        self.counted = {name: np.zeros(len(self), dtype=np.int64) for name in self.counted}

    def splits_of_file(self, file_index, readings):
        """The split name of each of a file's `readings` ('' where not kept)."""
        first = self.first_piece[file_index]
        return [SPLITS[code] if code != NO_SPLIT else "" for code in self.splits[first: first + readings].tolist()]

    def readings_of_files(self):
        """How many pieces each file holds."""
        return np.bincount(np.frombuffer(self._file, dtype=np.int64), minlength=len(self.first_piece))

    def write(self):
        """manifest.csv from the spool, in file order, with the splits, labels and counts decided since; the
        spool is then removed."""
        self._spool.flush()
        split_names = ("",) + SPLITS  # NO_SPLIT is -1: index 0 after adding 1
        columns = list(self._columns) + [name for name in ("density", *self.counted)
                                         if (self.density if name == "density" else self.counted[name]) is not None
                                         and name not in self._columns]
        order = np.lexsort((np.arange(len(self)), np.frombuffer(self._file, dtype=np.int64)))
        kept, splits = self.kept, self.splits
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns, restval="")
            writer.writeheader()
            offsets = np.frombuffer(self._offset, dtype=np.int64)
            for piece in order.tolist():
                self._spool.seek(offsets[piece])
                row = json.loads(self._spool.readline())
                row["split"] = split_names[splits[piece] + 1]
                if self.events is not None:
                    row.update(events=int(self.events[piece]), clipped_notes=int(self.clipped_notes[piece]))
                if kept[piece]:
                    if self.density is not None:
                        row["density"] = self.density[piece]
                    row.update({name: int(values[piece]) for name, values in self.counted.items()
                                if values is not None})
                writer.writerow({name: "" if value is None else value for name, value in row.items()})
        self.close()

    def close(self):
        """Remove the spool (also where the run stops before writing)."""
        if not self._spool.closed:
            self._spool.close()
        self._spool_path.unlink(missing_ok=True)
