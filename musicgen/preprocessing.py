"""From music files to token arrays: read (in parallel, cached), quantize, split, encode, write."""

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from musicgen import readers
from musicgen.dataset import (DEFAULT_SHARD_TOKENS, MANIFEST_FILE, SPLITS, TRANSPOSED_MARK, ShardWriter, load_processed,
                              remove_other_shards, write_folds, write_index, write_vocabulary)
from musicgen import labels as piece_labels
from musicgen.chords import transpose_symbols
from musicgen.encoding import DRUMS, PITCH, PROGRAM, EncodingSettings, Vocabulary, control_token, count_chords
from musicgen.encoding_choice import EncodingRequest, describe_traits, piece_traits
from musicgen.errors import UserError
from musicgen.files import atomic_path
from musicgen.recipe import SECONDS_TIMING_BPM, Recipe
from musicgen.splits import duplicate_leaders, opening_fingerprint

CACHE_FOLDER = ".cache"
LEFT_OUT = ("labels_not_in_vocabulary", "chord_symbols_not_in_vocabulary")  # manifest columns with --vocab
REPORT_FILE = "report.png"
_CACHE_VERSION = 4  # 2: the sustain pedal applied when reading MIDI; 3: velocities, programs, tempo maps; 4: chord symbols
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


@dataclasses.dataclass
class PreprocessConfig:
    files: list
    output: Path
    # An EncodingRequest is decided on the corpus by resolve_encoding (run and run_folds do it first).
    settings: EncodingSettings | EncodingRequest = dataclasses.field(default_factory=EncodingSettings)
    recipe: Recipe = Recipe()  # track selection, melody only, silence shortening
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    folds: int = 0  # K > 0: the pieces are dealt into K folds (fold_split) instead of split by the fractions
    test_fold: int = 0  # with folds: the fold held out for testing; the next one validates
    cache: Path = None  # where readings are cached; None: <output>/.cache
    transpositions: tuple = (0,)  # semitone shifts applied to the training split
    workers: int = 1
    min_notes: int = 8
    max_chords: int = 0  # every chord note by note (README, "The encoding of harmony")
    min_chord_count: int = 2
    limits: "ReadLimits" = None  # per-file size and time limits; None: the defaults
    max_notes: int = 500_000  # larger pieces are skipped, not read into the corpus
    shard_tokens: int = DEFAULT_SHARD_TOKENS  # tokens per shard file
    encoding_reason: str = "as asked"  # why the settings are what they are, for the summary
    labels: dict = dataclasses.field(default_factory=dict)  # {file path: {label: value}} (musicgen/labels.py)
    computed_labels: tuple = ()  # any of labels.COMPUTED_LABELS, measured on each piece
    infilling: bool = False  # the vocabulary gets the fill-in-the-middle markers (musicgen/infilling.py)
    split_from: dict = None  # {file path: split} that the dataset brings (musicgen/splits.py); None: split_of
    dedupe: bool = False  # pieces whose openings are one melody share a split (musicgen/splits.py)
    # A vocabulary to encode with (preprocess.py --vocab), so a run trained on it can fine-tune on this corpus;
    # None: one made from this corpus. Its settings replace `settings`.
    vocabulary: Vocabulary = None


@dataclasses.dataclass(frozen=True)
class ReadLimits:
    """What one file may cost: a pathological file is skipped, never allowed to stall or sink the run."""

    max_file_mb: float = 64.0
    timeout_seconds: float = 60.0


class FileTimeout(BaseException):
    """A BaseException, like KeyboardInterrupt, so a parser's broad `except Exception` cannot swallow it."""


def run(config):
    """Process config.files into config.output; returns the summary dict.

    Two passes over the files, each spread over config.workers processes. The
    first reads every file (or its cached reading), decides each piece's fate and
    split, and counts the training chords that make the vocabulary; the second
    encodes the kept pieces from the cache into shards. Neither holds the corpus
    in memory: only the manifest's rows, the chord counts and one shard per split.
    """
    started = time.time()
    check_fractions(config.val_fraction, config.test_fraction)
    config = resolve_encoding(config)
    output = Path(config.output)
    context = _context_of(config)

    rows_per_file, chord_counts, controls, symbols = [None] * len(config.files), Counter(), set(), set()
    for file_index, file_rows, file_chord_counts, file_controls, file_symbols in _map_files(
            _survey, list(enumerate(config.files)), context, config.workers, "reading"):
        rows_per_file[file_index] = file_rows
        chord_counts.update(file_chord_counts)
        controls |= file_controls
        symbols |= file_symbols
    rows = [row for file_rows in rows_per_file for row in file_rows]
    if not any(row["status"] == "kept" for row in rows):
        _write_manifest(output, rows)
        raise UserError(f"none of the {len(rows)} pieces could be used; see {output / MANIFEST_FILE} for why")
    grouped = _keep_duplicates_together(rows) if config.dedupe else 0
    if config.folds:
        _check_folds(rows, config)
    moved = _fill_empty_held_out_splits(rows, config) if not (config.folds or config.split_from) else False
    if grouped or moved:
        chord_counts, symbols = Counter(), set()
        for file_chords, file_symbols in _map_files(_count_training, _encoding_jobs(config.files, rows_per_file),
                                                    context, config.workers, "recounting"):
            chord_counts.update(file_chords)
            symbols |= file_symbols
    if "density" in config.computed_labels:
        context.density_edges = piece_labels.density_edges(
            [row["notes_per_quarter"] for row in rows if row["split"] == "train"])
        for row in rows:
            if row["status"] == "kept":
                row["density"] = piece_labels.density_label(row["notes_per_quarter"], context.density_edges)
        controls |= {control_token("density", value) for value in piece_labels.DENSITY_BINS}
    vocabulary = config.vocabulary or Vocabulary.build(config.settings, chord_counts, config.max_chords,
                                                       config.min_chord_count, controls, config.infilling, symbols)

    context.vocabulary = vocabulary
    run_id = uuid.uuid4().hex[:8]
    writers = {name: ShardWriter(output, name, run_id, vocabulary.hash(), config.shard_tokens) for name in SPLITS}
    for file_index, pieces in _map_files(_encode_file, _encoding_jobs(config.files, rows_per_file), context,
                                         config.workers, "encoding"):
        for piece in pieces:
            writers[piece.split].add(piece.tokens, piece.source, piece.tempo)
            if piece.shift == 0:
                rows_per_file[file_index][piece.result_index].update(events=piece.events,
                                                                     clipped_notes=piece.clipped_notes)
                if config.vocabulary is not None:
                    rows_per_file[file_index][piece.result_index].update(piece.left_out)
    index = {name: writer.close() for name, writer in writers.items()}
    write_index(output, vocabulary.hash(), index, config.recipe)
    _write_manifest(output, rows)
    write_vocabulary(output, vocabulary)  # last: its hash vouches for the index and shards written before it
    remove_other_shards(output, index)

    statuses = pd.Series([row["status"] for row in rows]).value_counts()
    return {
        "files": len(config.files),
        "pieces": len(rows),
        "kept": int(statuses.get("kept", 0)),
        "skipped": int(statuses.get("skipped", 0)),
        "failed": int(statuses.get("failed", 0)),
        "pieces_per_split": {name: sum(entry["pieces"] for entry in index[name]) for name in SPLITS},
        "events": int(sum(row["events"] for row in rows)),
        "clipped_notes": int(sum(row["clipped_notes"] for row in rows)),
        "tokens_per_split": {name: sum(entry["tokens"] for entry in index[name]) for name in SPLITS},
        "shards": sum(len(entries) for entries in index.values()),
        "vocabulary_size": len(vocabulary),
        "chords_in_vocabulary": len(vocabulary.chords),
        "chord_symbols_in_vocabulary": len(vocabulary.symbols),
        "encoding": config.settings.describe(),
        "encoding_reason": config.encoding_reason,
        "labels": {name: len(values) for name, values in vocabulary.controls.items()},
        "density_edges": context.density_edges,
        "duplicates_grouped": grouped,
        "not_in_vocabulary": {name: int(sum(row.get(name, 0) for row in rows)) for name in LEFT_OUT},
        "seconds": round(time.time() - started, 1),
    }


def resolve_encoding(config):
    """`config` with its settings decided: an EncodingRequest left to the corpus is settled on the traits of every
    piece read (musicgen/encoding_choice.py); EncodingSettings stay as they are."""
    if config.vocabulary is not None:
        return dataclasses.replace(config, settings=config.vocabulary.settings,
                                   encoding_reason="the vocabulary's, from --vocab")
    request = config.settings
    if isinstance(request, EncodingSettings):
        return config
    if not request.needs_corpus:
        return dataclasses.replace(config, settings=request.settings())
    traits = []
    for file_traits in _map_files(_piece_traits, list(enumerate(config.files)), _context_of(config),
                                  config.workers, "surveying"):
        traits += file_traits
    return dataclasses.replace(config, settings=request.settings(traits), encoding_reason=describe_traits(traits))


def _context_of(config):
    cache = Path(config.cache or Path(config.output) / CACHE_FOLDER)
    cache.mkdir(parents=True, exist_ok=True)
    return _Context(config, cache, config.limits or ReadLimits())


def _piece_traits(job):
    return [piece_traits(result) for result in _read_cached(job[1], _context) if isinstance(result, readers.RawPiece)]


def write_report(output):
    """Draw <output>/report.png, a one-page overview of the processed corpus; returns its path."""
    from musicgen.plots import plot_corpus_overview

    vocabulary, splits = load_processed(output)
    manifest = pd.read_csv(Path(output) / MANIFEST_FILE, keep_default_na=False)
    path = Path(output) / REPORT_FILE
    plot_corpus_overview(path, vocabulary, splits, manifest, title=f"corpus overview: {output}")
    return path


def run_folds(config):
    """Process config.files into config.folds cross-validation folds; returns the summary of each fold.

    Fold i is <output>/fold-<i>, a complete processed data set (train.py and
    evaluate.py take it as --data) whose test split is fold i and validation split
    fold i + 1; the rest train, with their own chord vocabulary and transposed
    copies, so nothing about a fold's test pieces leaks into its training. The
    files are read once: every fold encodes from the same cache. folds.json,
    written last, names the folds for crossval.py.
    """
    if config.folds < 3:
        raise UserError(f"--folds must be at least 3 (one to test, one to validate, one to train), got {config.folds}")
    output = Path(config.output)
    config = resolve_encoding(dataclasses.replace(config, cache=config.cache or output / CACHE_FOLDER))
    summaries = [run(dataclasses.replace(config, output=output / f"fold-{fold}", test_fold=fold))
                 for fold in range(config.folds)]
    write_folds(output, [f"fold-{fold}" for fold in range(config.folds)], config.split_seed)
    return summaries


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
    position = _hash_position(source, seed)
    if position < test_fraction:
        return "test"
    return "validation" if position < test_fraction + val_fraction else "train"


def fold_split(source, folds, test_fold, seed):
    """The split of a piece in cross-validation fold `test_fold` of `folds`: its fold drawn like split_of's split.

    The same hash deals the pieces into `folds` folds of about equal size; the
    test fold tests, the one after it validates, the others train.
    """
    fold = fold_of(_hash_position(source, seed), folds)
    if fold == test_fold:
        return "test"
    return "validation" if fold == (test_fold + 1) % folds else "train"


def fold_of(position, folds):
    return min(int(position * folds), folds - 1)


def _check_folds(rows, config):
    sources = [row["source"] for row in rows if row["status"] == "kept"]
    held = {fold_of(_hash_position(source, config.split_seed), config.folds) for source in sources}
    if len(held) < config.folds:
        raise UserError(f"only {len(held)} of the {config.folds} folds hold a piece of the {len(sources)} kept; "
                        "use fewer --folds (or another --split-seed)")


def _keep_duplicates_together(rows):
    """Give each piece whose opening repeats an earlier piece's (splits.duplicate_leaders) that piece's split;
    returns how many pieces were grouped with another."""
    split_of_source = {row["source"]: row["split"] for row in rows if row["status"] == "kept"}
    leaders = duplicate_leaders(rows)
    for row in rows:
        if row["source"] in leaders:
            row["split"] = split_of_source[leaders[row["source"]]]
    return len(leaders)


def _fill_empty_held_out_splits(rows, config):
    """In a corpus of 3+ pieces, give an empty held-out split (whose fraction is not 0) one training piece.

    A small corpus can draw no piece for validation or test; this moves the
    training piece whose hash lies nearest the held-out range. Returns whether any moved.
    """
    kept = [row for row in rows if row["status"] == "kept"]
    moved = False
    for name, fraction in (("test", config.test_fraction), ("validation", config.val_fraction)):
        training = [row for row in kept if row["split"] == "train"]
        if fraction > 0 and len(kept) >= 3 and len(training) > 1 and all(row["split"] != name for row in kept):
            nearest = min(training, key=lambda row: _hash_position(row["source"], config.split_seed))
            nearest["split"] = name
            moved = True
    return moved


def _hash_position(source, seed):
    path, mark, tune = source.partition("#")
    digest = hashlib.sha1(f"{seed}:{Path(path).stem}{mark}{tune}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _transpositions(notes, shifts):
    """[(shift, transposed notes)] for each shift that keeps every pitch within 0..127; drums are not transposed."""
    copies = []
    pitched = notes[:, PROGRAM] != DRUMS
    for shift in shifts:
        pitches = notes[pitched, PITCH] + shift
        if not len(pitches) or (pitches.min() >= 0 and pitches.max() <= 127):
            copy = notes.copy()
            copy[pitched, PITCH] = pitches
            copies.append((shift, copy))
    return copies


def _write_manifest(output, rows):
    with atomic_path(Path(output) / MANIFEST_FILE) as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False)


@dataclasses.dataclass
class _Context:
    """What every file's job needs, handed to each worker process once rather than with every file."""

    config: PreprocessConfig
    cache: Path
    limits: ReadLimits
    vocabulary: Vocabulary = None  # for the encoding pass
    density_edges: tuple = None  # notes per quarter parting the density labels, from the training pieces


@dataclasses.dataclass
class _EncodedPiece:
    result_index: int  # which of its file's readings (an ABC file holds many tunes)
    split: str
    shift: int  # semitones transposed; 0 for the original
    source: str
    tempo: float
    tokens: np.ndarray
    events: int
    clipped_notes: int
    left_out: dict  # {LEFT_OUT name: count} of what the vocabulary has no token for


_context = None  # this process's _Context, set by _set_context


def _set_context(context):
    global _context
    _context = context


def _map_files(function, jobs, context, workers, description):
    """function(job) for each job (file index, path, ...), in `workers` processes (or this one), with a progress bar.

    The largest files go first, in every pass and whatever the worker count (so
    the output does not depend on it): a large file met last would keep one worker
    busy while the others wait.
    """
    jobs = sorted(jobs, key=lambda job: _file_size(job[1]), reverse=True)
    progress = dict(total=len(jobs), unit="file", desc=description, dynamic_ncols=True)
    if workers <= 1:
        _set_context(context)
        yield from tqdm(map(function, jobs), **progress)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(context,)) as pool:
        yield from tqdm(pool.map(function, jobs), **progress)  # one file at a time, so large ones are not bunched


def _start_worker(context):
    """A worker process's start: it is to die with the main process, then it takes the context.

    Killed outright (SIGKILL), the main process cannot stop its workers, and they
    would wait forever for files that never come. Linux's PR_SET_PDEATHSIG has the
    kernel kill them with it; elsewhere they end with the pool, as usual.
    """
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass
    _set_context(context)


def _file_size(path):
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0  # its job reports the problem


def _survey(job):
    """(file index, manifest rows, training chord counts, control tokens, chord symbol codes) of one file: what it
    holds, what is kept, where, the labels of its kept pieces (and of their transposed copies), and the chord
    symbols of its training pieces."""
    file_index, path = job
    config = _context.config
    rows, chord_counts, controls, symbols = [], Counter(), set(), set()
    for result in _read_cached(path, _context):
        row = {"source": result.source, "status": "", "reason": "", "notes": 0, "events": 0, "clipped_notes": 0,
               "silences_shortened": 0, "chord_symbols": 0, "duration_quarters": 0.0, "tempo_bpm": None,
               "time_signature": "", "split": ""}
        if isinstance(result, readers.ReadFailure):
            row.update(status=result.status, reason=result.reason)
        elif len(result.pitches) > config.max_notes:
            row.update(status="skipped", notes=len(result.pitches),
                       reason=f"{len(result.pitches):,} notes, more than --max-notes {config.max_notes:,}")
        else:
            grid = config.recipe.grid_notes(result, config.settings)
            notes = grid.notes
            row.update(notes=len(notes), tempo_bpm=round(result.tempo_bpm, 2), time_signature=result.time_signature,
                       silences_shortened=grid.silences_shortened, chord_symbols=len(grid.chord_symbols),
                       duration_quarters=float((notes[:, 0] + notes[:, 1]).max() / config.settings.steps_per_quarter))
            split = _split_of_piece(path, result.source, config)
            if len(notes) < config.min_notes:
                row.update(status="skipped", reason=f"only {len(notes)} notes (--min-notes is {config.min_notes})")
            elif split is None:
                row.update(status="skipped", reason="not in a split of --split-from")
            else:
                row.update(status="kept", split=split)
                if config.dedupe:
                    row["opening"] = opening_fingerprint(notes)
                copies = _transpositions(notes, config.transpositions) if split == "train" else [(0, notes)]
                for shift, copy in copies:
                    if split == "train":
                        chord_counts.update(count_chords(copy, config.settings))
                        symbols |= set(transpose_symbols(grid.chord_symbols, shift)[:, 2].tolist())
                    copy_labels = _labels_of(path, result, copy, density_edges=None)
                    controls |= {control_token(name, value) for name, value in copy_labels.items()}
                    if shift == 0:
                        row.update(copy_labels)
                if "density" in config.computed_labels:
                    row["notes_per_quarter"] = round(piece_labels.notes_per_quarter(
                        notes, config.settings.steps_per_quarter), 4)
        rows.append(row)
    return file_index, rows, chord_counts, controls, symbols


def _split_of_piece(path, source, config):
    """The split of the piece read from `source` in the file `path`: the dataset's own (None where it has none
    for the file), the fold's, or the one drawn from the hash of its name."""
    if config.split_from is not None:
        return config.split_from.get(str(path))
    if config.folds:
        return fold_split(source, config.folds, config.test_fold, config.split_seed)
    return split_of(source, config.val_fraction, config.test_fraction, config.split_seed)


def _labels_of(path, result, notes, density_edges):
    """{label: value} of one piece (or transposed copy): its file's labels, then those computed from `notes`
    (density only once `density_edges` are known)."""
    config = _context.config
    names = [name for name in config.computed_labels if name != "density" or density_edges is not None]
    computed = piece_labels.computed_labels(names, notes, config.settings.steps_per_quarter, result.tempo_bpm,
                                            density_edges)
    return {**config.labels.get(str(path), {}), **computed}


def _encoding_jobs(files, rows_per_file):
    """(file index, path, split of each of its readings or '') for every file with a kept piece."""
    return [(index, path, [row["split"] for row in rows]) for index, (path, rows) in enumerate(zip(files, rows_per_file))
            if any(row["split"] for row in rows)]


def _kept_copies(job):
    """(reading index, split, shift, source, tempo, notes, chord symbols, labels) of a file's kept pieces; training
    ones transposed."""
    _, path, splits = job
    config = _context.config
    seconds = config.settings.timing == "seconds"
    for result_index, (result, split) in enumerate(zip(_read_cached(path, _context), splits)):
        if not split:
            continue
        grid = config.recipe.grid_notes(result, config.settings)
        notes = grid.notes
        tempo = SECONDS_TIMING_BPM if seconds else result.tempo_bpm  # what plays the steps at their length
        copies = _transpositions(notes, config.transpositions) if split == "train" else [(0, notes)]
        for shift, copy in copies:
            source = result.source if shift == 0 else f"{result.source} {TRANSPOSED_MARK} {shift:+d})"
            yield (result_index, split, shift, source, tempo, copy, transpose_symbols(grid.chord_symbols, shift),
                   _labels_of(path, result, copy, _context.density_edges))


def _count_training(job):
    """(chord counts, chord symbol codes) of a file's training pieces and their transposed copies."""
    counts, symbols = Counter(), set()
    for _, split, _, _, _, notes, piece_symbols, _ in _kept_copies(job):
        if split == "train":
            counts.update(count_chords(notes, _context.config.settings))
            symbols |= set(piece_symbols[:, 2].tolist())
    return counts, symbols


def _encode_file(job):
    """(file index, [_EncodedPiece]) for one file's kept pieces and their transposed copies."""
    pieces = []
    vocabulary = _context.vocabulary
    for result_index, split, shift, source, tempo, notes, symbols, labels in _kept_copies(job):
        # Labels and chord symbols the vocabulary lacks (unseen in training, or absent from a --vocab) are left out.
        controls = [vocabulary.index.get(control_token(name, value)) for name, value in labels.items()]
        known_symbols = vocabulary.known_symbols(symbols)
        left_out = {"labels_not_in_vocabulary": controls.count(None),
                    "chord_symbols_not_in_vocabulary": len(symbols) - len(known_symbols)}
        tokens, events, clipped = vocabulary.encode_notes(notes, [c for c in controls if c is not None],
                                                          known_symbols)
        pieces.append(_EncodedPiece(result_index, split, shift, source, tempo, tokens, events, clipped, left_out))
    return job[0], pieces


def _cache_key(path, selection):
    stat = Path(path).stat()
    identity = json.dumps([_CACHE_VERSION, str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns,
                           selection.keep_drums, sorted(selection.programs) if selection.programs else None,
                           selection.sustain_pedal])
    return hashlib.sha1(identity.encode()).hexdigest()


def _read_cached(path, context):
    """Read one file within its limits, or reuse what an earlier run read from the unchanged file."""
    selection, cache, limits = context.config.recipe.selection, context.cache, context.limits
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
            meta.append({"source": result.source, "tempo_bpm": result.tempo_bpm, "time_signature": result.time_signature,
                         "velocities": result.velocities is not None})
            velocities = result.velocities if result.velocities is not None else np.zeros(len(result.pitches))
            arrays[f"notes_{i}"] = np.stack([result.onsets, result.durations, result.pitches, velocities,
                                             result.programs], axis=1).astype(np.float64)
            arrays[f"tempo_{i}"] = result.tempo_changes
            arrays[f"symbols_{i}"] = result.chord_symbols
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
                velocities = notes[:, 3].astype(np.int64) if meta.pop("velocities") else None
                results.append(readers.RawPiece(onsets=notes[:, 0], durations=notes[:, 1],
                                                pitches=notes[:, 2].astype(np.int64), velocities=velocities,
                                                programs=notes[:, 4].astype(np.int64),
                                                tempo_changes=arrays[f"tempo_{i}"],
                                                chord_symbols=arrays[f"symbols_{i}"], **meta))
        return results
