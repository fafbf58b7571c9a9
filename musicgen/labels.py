"""Labels of pieces, which become control tokens: from folders, file names or a CSV, or computed from the music.

    --label-from folders             data/chopin/*.mid        -> folder=chopin
    --label-from folders=composer    the same, named          -> composer=chopin
    --label-pattern style=^[a-z]+    the file name's match    -> style=jigs (the first group, if the pattern has one)
    --labels maestro.csv --label-columns canonical_composer   -> canonical_composer=Frédéric Chopin
    --compute-labels key,tempo,density                        -> key=D minor, tempo=fast, density=low

Computed labels are measured on each piece as it is encoded, so a transposed
training copy gets its own key. The key is estimated from the notes
(Krumhansl-Schmuckler), never read from a key signature: generated music has
none, and the control benchmark must judge generated and real pieces alike.
Density bins are the thirds of the training pieces' notes per quarter note.
"""

import csv
import os
import re
from pathlib import Path

import numpy as np

from musicgen.errors import UserError
from musicgen.key_value import key_value
from musicgen.notes import DRUMS, DURATION, PITCH, PROGRAM
from musicgen.tokens import CONTROL_SEPARATOR

COMPUTED_LABELS = ("key", "tempo", "density")
STYLE_LABEL = "style"  # the kind of music; a model that knows it plays one style at a time (generate.py)
TEMPO_BINS = (("slow", 76.0), ("moderate", 120.0), ("fast", float("inf")))  # (name, up to this many bpm)
DENSITY_BINS = ("low", "medium", "high")
# The 24 keys by tonic pitch class, spelled as musicians usually name them.
KEYS = ([f"{name} major" for name in ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")]
        + [f"{name} minor" for name in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")])
# Krumhansl and Kessler's probe-tone ratings of the twelve degrees of C major and C minor.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PROFILES = np.stack([np.roll(profile, tonic) for profile in (_MAJOR_PROFILE, _MINOR_PROFILE) for tonic in range(12)])
# Manifest columns a label may not take the name of.
RESERVED_NAMES = {"source", "status", "reason", "notes", "events", "clipped_notes", "silences_shortened",
                  "duration_quarters", "tempo_bpm", "time_signature", "split", "notes_per_quarter", "chord_symbols",
                  "opening"}
FILE_COLUMNS = ("midi_filename", "filename", "file", "path")  # a CSV's column naming each file, the first it has
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def estimate_key(notes):
    """The key of int notes (onset, duration, pitch, ...): the major or minor key whose profile correlates best
    with the pitch classes weighted by duration (Krumhansl-Schmuckler), e.g. 'D minor'; None without pitched notes."""
    notes = np.asarray(notes)
    pitched = notes[notes[:, PROGRAM] != DRUMS] if len(notes) and notes.shape[1] > PROGRAM else notes
    if not len(pitched):
        return None
    weights = np.bincount(pitched[:, PITCH] % 12, weights=pitched[:, DURATION], minlength=12)
    if not weights.any() or np.ptp(weights) == 0:
        return None
    correlations = [np.corrcoef(weights, profile)[0, 1] for profile in _PROFILES]
    return KEYS[int(np.argmax(correlations))]


def tempo_label(bpm):
    return next(name for name, upper in TEMPO_BINS if bpm < upper)


def notes_per_quarter(notes, steps_per_quarter):
    """Notes per quarter note of a piece (per half second in seconds timing)."""
    if not len(notes):
        return 0.0
    quarters = (notes[:, 0] + notes[:, DURATION]).max() / steps_per_quarter
    return len(notes) / max(quarters, 1e-9)


def density_edges(densities):
    """The two notes-per-quarter values that part the given (training) densities into thirds."""
    if not len(densities):
        return (0.0, 0.0)
    low, high = np.quantile(np.asarray(densities, dtype=np.float64), [1 / 3, 2 / 3])
    return (float(low), float(high))


def density_label(density, edges):
    return DENSITY_BINS[int(np.searchsorted(edges, density, side="right"))]


def computed_labels(names, notes, steps_per_quarter, bpm, edges):
    """{label: value} of the COMPUTED_LABELS in `names` for one piece's int notes."""
    labels = {}
    if "key" in names:
        key = estimate_key(notes)
        if key:
            labels["key"] = key
    if "tempo" in names:
        labels["tempo"] = tempo_label(bpm)
    if "density" in names:
        labels["density"] = density_label(notes_per_quarter(notes, steps_per_quarter), edges)
    return labels


def parse_computed(text):
    """'key,tempo' -> ('key', 'tempo'), refusing unknown names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in COMPUTED_LABELS]
    if unknown or not names:
        raise UserError(f"--compute-labels takes any of {', '.join(COMPUTED_LABELS)}, got {text!r}")
    return names


def check_name(name, flag):
    if not _NAME.match(name) or name in RESERVED_NAMES or name in COMPUTED_LABELS:
        raise UserError(f"{flag}: a label name must be a word (letters, digits, _) and not one of "
                        f"{', '.join(sorted(RESERVED_NAMES | set(COMPUTED_LABELS)))}; got {name!r}")
    return name


def _clean(value):
    """A label value as a token may hold it: trimmed, one line, no '='."""
    return " ".join(str(value).replace(CONTROL_SEPARATOR, "-").split())


def folder_labels(files, roots, name):
    """{file: {name: the first folder below its --input root}}; files directly in a root get none."""
    labels = {}
    for path in files:
        for root in roots:
            try:  # not resolved: a file that is a link takes the folder it is linked from
                relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
            except ValueError:
                continue
            if len(relative.parts) > 1:
                labels[str(path)] = {name: _clean(relative.parts[0])}
            break
    return labels


def pattern_labels(files, spec):
    """{file: {name: value}} from `name=REGEX` matched at the start of each file name (without its extension):
    the first group if the pattern has one, else the whole match. Files that do not match get none."""
    name, pattern = key_value(spec, "--label-pattern", "NAME=REGEX", "style=^[a-z]+")
    check_name(name, "--label-pattern")
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise UserError(f"--label-pattern {spec!r}: not a regular expression ({error})") from None
    labels = {}
    for path in files:
        match = regex.match(Path(path).stem)
        if match:
            value = match.group(1) if regex.groups else match.group(0)
            if value:
                labels[str(path)] = {name: _clean(value)}
    return labels


def csv_labels(files, csv_path, columns, file_column=None, flag="--labels"):
    """{file: {column: value}} from a CSV with a column naming each file (a path relative to anywhere, or a name).

    Returns (labels, files the CSV does not list). The file column is `file_column`, else the first of
    midi_filename, filename, file, path that the CSV has.
    """
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise UserError(f"{flag} {csv_path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{flag} {csv_path} cannot be read as CSV ({error})") from None
    header = list(rows[0]) if rows else []
    if file_column is None:
        file_column = next((c for c in FILE_COLUMNS if c in header), None)
    if file_column not in header:
        raise UserError(f"{flag} {csv_path} needs a column naming each file (midi_filename, filename, file or "
                        f"path, or say which with --label-file-column); its columns: {', '.join(header) or 'none'}")
    missing = [c for c in columns if c not in header]
    if missing:
        raise UserError(f"{flag} {csv_path} has no column {', '.join(missing)}; its columns: {', '.join(header)}")
    by_path = {}
    for row in rows:
        key = Path(str(row[file_column]).strip()).as_posix()
        by_path[key] = {c: _clean(row[c]) for c in columns if str(row[c] or "").strip()}
    labels, unlisted = {}, []
    for path in files:
        found = _lookup(Path(path), by_path)
        if found is None:
            unlisted.append(str(path))
        elif found:
            labels[str(path)] = found
    return labels, unlisted


def _lookup(path, by_path):
    """The CSV row of a file: the longest trailing part of its path that the CSV names."""
    parts = path.resolve().parts
    for begin in range(len(parts)):
        found = by_path.get(Path(*parts[begin:]).as_posix())
        if found is not None:
            return found
    return None


def merge(*sources):
    """One {file: {label: value}} from several, later ones adding labels."""
    merged = {}
    for source in sources:
        for path, labels in source.items():
            merged.setdefault(path, {}).update(labels)
    return merged
