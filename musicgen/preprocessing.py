"""From music files to token arrays: read (in parallel, cached), quantize, split, encode, write."""

import contextlib
import dataclasses
import hashlib
import json
import signal
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from musicgen import readers
from musicgen.dataset import MANIFEST_FILE, SPLITS, TRANSPOSED_MARK, Split, load_processed, write_split, write_vocabulary
from musicgen.encoding import EncodingSettings, Vocabulary, count_chords, quantize, shorten_silences
from musicgen.errors import UserError
from musicgen.files import atomic_path

CACHE_FOLDER = ".cache"
REPORT_FILE = "report.png"
_CACHE_VERSION = 1


@dataclasses.dataclass
class PreprocessConfig:
    files: list
    output: Path
    settings: EncodingSettings = dataclasses.field(default_factory=EncodingSettings)
    selection: readers.TrackSelection = dataclasses.field(default_factory=readers.TrackSelection)
    melody_only: bool = False
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    transpositions: tuple = (0,)  # semitone shifts applied to the training split
    workers: int = 1
    min_notes: int = 8
    max_chords: int = 1024
    min_chord_count: int = 2
    limits: "ReadLimits" = None  # per-file size and time limits; None: the defaults
    max_notes: int = 500_000  # larger pieces are skipped, not read into the corpus
    max_silence_quarters: int = 16  # longer silences inside a piece are shortened to this


@dataclasses.dataclass(frozen=True)
class ReadLimits:
    """What one file may cost: a pathological file is skipped, never allowed to stall or sink the run."""

    max_file_mb: float = 64.0
    timeout_seconds: float = 60.0


class FileTimeout(BaseException):
    """A BaseException, like KeyboardInterrupt, so a parser's broad `except Exception` cannot swallow it."""


def parse_transpose(text):
    """'-5..6' -> (-5, ..., 6); '3' -> (0, 3); the original (0) is always included."""
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split(".."))
        else:
            low = high = int(text)
    except ValueError:
        raise UserError(f"--transpose takes LOW..HIGH semitones like -5..6, got {text!r}") from None
    if not -12 <= low <= high <= 12:
        raise UserError(f"--transpose must lie within -12..12 with LOW <= HIGH, got {text!r}")
    return tuple(sorted(set(range(low, high + 1)) | {0}))


def run(config, log=print):
    """Process config.files into config.output; returns the summary dict."""
    started = time.time()
    output = Path(config.output)
    cache = output / CACHE_FOLDER
    cache.mkdir(parents=True, exist_ok=True)
    results = _read_all(config.files, config.selection, cache, config.workers, config.limits or ReadLimits())
    spq = config.settings.steps_per_quarter

    rows, kept = [], []
    for result in results:
        row = {"source": result.source, "status": "", "reason": "", "notes": 0, "events": 0, "clipped_notes": 0,
               "silences_shortened": 0, "duration_quarters": 0.0, "tempo_bpm": None, "time_signature": "", "split": ""}
        if isinstance(result, readers.ReadFailure):
            row.update(status=result.status, reason=result.reason)
        elif len(result.pitches) > config.max_notes:
            row.update(status="skipped", notes=len(result.pitches),
                       reason=f"{len(result.pitches):,} notes, more than --max-notes {config.max_notes:,}")
        else:
            notes = quantize(result.onsets, result.durations, result.pitches, spq, config.melody_only)
            notes, shortened = shorten_silences(notes, config.max_silence_quarters * spq)
            row.update(notes=len(notes), tempo_bpm=round(result.tempo_bpm, 2), time_signature=result.time_signature,
                       silences_shortened=shortened, duration_quarters=float((notes[:, 0] + notes[:, 1]).max() / spq))
            if len(notes) < config.min_notes:
                row.update(status="skipped", reason=f"only {len(notes)} notes (--min-notes is {config.min_notes})")
            else:
                row["status"] = "kept"
                kept.append((len(rows), notes, result.tempo_bpm))
        rows.append(row)
    if not kept:
        _write_manifest(output, rows)
        raise UserError(f"none of the {len(results)} pieces could be used; see {output / MANIFEST_FILE} for why")

    assignment = assign_splits(len(kept), config.val_fraction, config.test_fraction, config.split_seed)
    for (row_index, _, _), split in zip(kept, assignment):
        rows[row_index]["split"] = split

    chord_counts = Counter()
    for (_, notes, _), split in zip(kept, assignment):
        if split == "train":
            for _, transposed in _transpositions(notes, config.transpositions):
                chord_counts.update(count_chords(transposed))
    vocabulary = Vocabulary.build(config.settings, chord_counts, config.max_chords, config.min_chord_count)

    pieces = {name: ([], [], []) for name in SPLITS}
    for (row_index, notes, tempo), split in zip(kept, assignment):
        row = rows[row_index]
        copies = _transpositions(notes, config.transpositions) if split == "train" else [(0, notes)]
        for shift, copy in copies:
            tokens, events, clipped = vocabulary.encode_notes(copy)
            tokens_list, sources, tempos = pieces[split]
            tokens_list.append(tokens)
            sources.append(row["source"] if shift == 0 else f"{row['source']} {TRANSPOSED_MARK} {shift:+d})")
            tempos.append(tempo)
            if shift == 0:
                row.update(events=events, clipped_notes=clipped)

    vocabulary_hash = vocabulary.hash()
    for name in SPLITS:
        write_split(output, name, Split.from_pieces(*pieces[name]), vocabulary_hash)
    _write_manifest(output, rows)
    write_vocabulary(output, vocabulary)  # last: its hash vouches for the split files written before it

    statuses = pd.Series([row["status"] for row in rows]).value_counts()
    return {
        "files": len(config.files),
        "pieces": len(rows),
        "kept": int(statuses.get("kept", 0)),
        "skipped": int(statuses.get("skipped", 0)),
        "failed": int(statuses.get("failed", 0)),
        "pieces_per_split": {name: len(pieces[name][0]) for name in SPLITS},
        "events": int(sum(row["events"] for row in rows)),
        "clipped_notes": int(sum(row["clipped_notes"] for row in rows)),
        "tokens_per_split": {name: int(sum(len(t) for t in pieces[name][0])) for name in SPLITS},
        "vocabulary_size": len(vocabulary),
        "chords_in_vocabulary": len(vocabulary.chords),
        "seconds": round(time.time() - started, 1),
    }


def write_report(output):
    """Draw <output>/report.png, a one-page overview of the processed corpus; returns its path."""
    from musicgen.plots import plot_corpus_overview

    vocabulary, splits = load_processed(output)
    manifest = pd.read_csv(Path(output) / MANIFEST_FILE, keep_default_na=False)
    path = Path(output) / REPORT_FILE
    plot_corpus_overview(path, vocabulary, splits, manifest, title=f"corpus overview: {output}")
    return path


def assign_splits(count, val_fraction, test_fraction, seed):
    """Seeded random split of `count` pieces; each held-out split gets at least one piece when there are 3+."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError("--val-fraction and --test-fraction must each be in [0, 1) and sum to less than 1")
    n_test = round(test_fraction * count)
    n_val = round(val_fraction * count)
    if count >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    order = np.random.default_rng(seed).permutation(count)
    assignment = np.array(["train"] * count, dtype=object)
    assignment[order[:n_test]] = "test"
    assignment[order[n_test:n_test + n_val]] = "validation"
    return list(assignment)


def _transpositions(notes, shifts):
    """[(shift, transposed notes)] for each shift that keeps every pitch within 0..127."""
    copies = []
    for shift in shifts:
        pitches = notes[:, 2] + shift
        if pitches.min() >= 0 and pitches.max() <= 127:
            copy = notes.copy()
            copy[:, 2] = pitches
            copies.append((shift, copy))
    return copies


def _write_manifest(output, rows):
    with atomic_path(Path(output) / MANIFEST_FILE) as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False)


def _read_all(files, selection, cache, workers, limits):
    jobs = [(path, selection, cache, limits) for path in files]
    progress = dict(total=len(jobs), unit="file", desc="reading", dynamic_ncols=True)
    if workers <= 1:
        return [result for job in tqdm(jobs, **progress) for result in _read_cached(job)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        batches = pool.map(_read_cached, jobs, chunksize=4)
        return [result for batch in tqdm(batches, **progress) for result in batch]


def _cache_key(path, selection):
    stat = Path(path).stat()
    identity = json.dumps([_CACHE_VERSION, str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns,
                           selection.keep_drums, sorted(selection.programs) if selection.programs else None])
    return hashlib.sha1(identity.encode()).hexdigest()


def _read_cached(job):
    """Read one file within its limits, or reuse what an earlier run read from the unchanged file."""
    path, selection, cache, limits = job
    try:
        cache_file = Path(cache) / f"{_cache_key(path, selection)}.npz"
        size_mb = Path(path).stat().st_size / 2**20
    except OSError as error:
        return [readers.ReadFailure(str(path), "failed", f"cannot read file: {error.strerror or error}")]
    if cache_file.exists():
        try:
            return _load_cached(cache_file)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is read again from the source
    if size_mb > limits.max_file_mb:
        return [readers.ReadFailure(str(path), "skipped",
                                    f"file is {size_mb:.0f} MB, over the --max-file-mb limit of {limits.max_file_mb:g}")]
    try:
        with _time_limit(limits.timeout_seconds):
            results = readers.read_file(path, selection)
    except FileTimeout:
        return [readers.ReadFailure(str(path), "failed",
                                    f"reading took longer than the --timeout of {limits.timeout_seconds:g} s")]
    _save_cached(cache_file, results)
    return results


@contextlib.contextmanager
def _time_limit(seconds):
    """Raise FileTimeout in this (main) thread after `seconds`: reading runs in the main thread of each worker."""
    def expire(signum, frame):
        raise FileTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _save_cached(cache_file, results):
    meta, arrays = [], {}
    for i, result in enumerate(results):
        if isinstance(result, readers.RawPiece):
            meta.append({"source": result.source, "tempo_bpm": result.tempo_bpm, "time_signature": result.time_signature})
            arrays[f"notes_{i}"] = np.stack([result.onsets, result.durations, result.pitches.astype(np.float64)], axis=1)
        else:
            meta.append(dataclasses.asdict(result))
    with atomic_path(cache_file) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def _load_cached(cache_file):
    with np.load(cache_file, allow_pickle=False) as arrays:
        results = []
        for i, meta in enumerate(json.loads(str(arrays["meta"]))):
            if "reason" in meta:
                results.append(readers.ReadFailure(**meta))
            else:
                notes = arrays[f"notes_{i}"]
                results.append(readers.RawPiece(onsets=notes[:, 0], durations=notes[:, 1],
                                                pitches=notes[:, 2].astype(np.int64), **meta))
        return results
