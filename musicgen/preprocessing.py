"""From music files to token arrays: read (in parallel, cached), quantize, split, encode, write."""

import dataclasses
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from musicgen import labels as piece_labels
from musicgen import readers, splits
from musicgen.cache import CACHE_FOLDER, read_cached
from musicgen.dataset import (DEFAULT_SHARD_TOKENS, MANIFEST_FILE, SPLITS, TRANSPOSED_MARK, ShardWriter, load_processed,
                              remove_other_shards, write_folds, write_index, write_vocabulary)
from musicgen.encoding import EncodingSettings, count_chords, event_table
from musicgen.encoding_choice import EncodingRequest, describe_traits, piece_traits
from musicgen.errors import UserError
from musicgen.limits import FileLimits
from musicgen.manifest import STATUSES, Manifest
from musicgen.merges import learn_merges
from musicgen.parallel import map_files
from musicgen.notes import DRUMS, PITCH, PROGRAM
from musicgen.recipe import SECONDS_TIMING_BPM, Recipe
from musicgen.tokens import control_token
from musicgen.spelling import ABSENT
from musicgen.vocabulary import Vocabulary

DEFAULT_MERGES = 0  # merged tokens in a vocabulary made from the corpus (preprocess.py --merges)
SURVEY_FILES = 2000  # at most this many files decide an encoding left to the corpus (survey_sample)
LEFT_OUT = ("labels_not_in_vocabulary", "chord_symbols_not_in_vocabulary")  # manifest columns with --vocab
REPORT_FILE = "report.png"


@dataclasses.dataclass
class PreprocessJob:
    """What preprocess.py is asked to do: which files, where to, encoded how, split how, within which limits."""

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
    max_chords: int = 0  # every chord note by note (docs/preprocess.md, "The encoding of harmony")
    merges: int = 0  # at most this many merged tokens (musicgen/merges.py); 0: none
    min_chord_count: int = 2
    limits: FileLimits = FileLimits()  # what one file may cost (musicgen/limits.py)
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


def run(job):
    """Process job.files into job.output; returns the summary dict.

    Two passes over the files, each spread over job.workers processes. The
    first reads every file (or its cached reading), decides each piece's fate and
    split, and counts the training chords that make the vocabulary; the second
    encodes the kept pieces, read again (musicgen/cache.py), into shards. Neither holds the corpus
    in memory: the manifest's rows go to disk as they come (musicgen/manifest.py), and only the chord counts,
    a few numbers per piece and one shard per split stay.
    """
    started = time.time()
    splits.check_fractions(job.val_fraction, job.test_fraction)
    job = resolve_encoding(job)
    output = Path(job.output)
    context = _context_of(job)

    manifest = Manifest(output, len(job.files), job.split_seed, job.dedupe,
                        LEFT_OUT if job.vocabulary is not None else ())
    try:
        return _process(job, context, manifest, started)
    finally:
        manifest.close()


def _process(job, context, manifest, started):
    """run()'s passes over the files, each piece's fate recorded in `manifest`."""
    output = Path(job.output)
    chord_counts, controls, symbols, meters = Counter(), set(), set(), set()
    for file_index, file_rows, file_chord_counts, file_controls, file_symbols, file_meters in _map_files(
            _survey, _FileTasks(job.files), context, job.workers, "reading"):
        manifest.add(file_index, file_rows)
        chord_counts.update(file_chord_counts)
        controls |= file_controls
        symbols |= file_symbols
        meters |= file_meters
    if not manifest.kept.any():
        manifest.write()
        raise UserError(f"none of the {len(manifest)} pieces could be used; see {output / MANIFEST_FILE} for why")
    grouped, moved = _settle_splits(job, manifest)
    if grouped or moved:
        chord_counts, symbols, meters = Counter(), set(), set()
        for file_chords, file_symbols, file_meters in _map_files(
                _count_training, _EncodingTasks(job.files, manifest), context, job.workers, "recounting"):
            chord_counts.update(file_chords)
            symbols |= file_symbols
            meters |= file_meters
    if "density" in job.computed_labels:
        context.density_edges = piece_labels.density_edges(manifest.training_notes_per_quarter().tolist())
        manifest.density = [piece_labels.density_label(value, context.density_edges) if kept else None
                            for value, kept in zip(manifest.notes_per_quarter.tolist(), manifest.kept.tolist())]
        controls |= {control_token("density", value) for value in piece_labels.DENSITY_BINS}
    vocabulary = job.vocabulary or Vocabulary.build(job.settings, chord_counts, job.max_chords,
                                                       job.min_chord_count, controls, job.infilling, symbols,
                                                       meters=meters)
    context.vocabulary = vocabulary
    if job.merges and job.vocabulary is None:
        event_counts = Counter()
        for file_events in _map_files(_count_events, _EncodingTasks(job.files, manifest), context,
                                      job.workers, "merging"):
            event_counts.update(file_events)
        merges = learn_merges({tuple(vocabulary.tokens[i] for i in event): times
                               for event, times in event_counts.items()}, job.merges)
        vocabulary = Vocabulary.build(job.settings, chord_counts, job.max_chords, job.min_chord_count, controls,
                                      job.infilling, symbols, merges, meters)
        context.vocabulary = vocabulary

    run_id = uuid.uuid4().hex[:8]
    writers = {name: ShardWriter(output, name, run_id, vocabulary.hash(), job.shard_tokens) for name in SPLITS}
    steps, notes = 0, 0  # model steps of the music and its notes, in the pieces as read (not transposed)
    manifest.start_counts()
    for file_index, pieces in _map_files(_encode_file, _EncodingTasks(job.files, manifest), context,
                                         job.workers, "encoding"):
        for piece in pieces:
            writers[piece.split].add(piece.tokens, piece.source, piece.tempo)
            if piece.shift == 0:
                steps += piece.steps
                notes += piece.notes
                number = manifest.first_piece[file_index] + piece.result_index
                manifest.events[number], manifest.clipped_notes[number] = piece.events, piece.clipped_notes
                for name, values in manifest.counted.items():
                    values[number] = piece.left_out[name]
    index = {name: writer.close() for name, writer in writers.items()}
    write_index(output, vocabulary.hash(), index, job.recipe)
    manifest.write()
    write_vocabulary(output, vocabulary)  # last: its hash vouches for the index and shards written before it
    remove_other_shards(output, index)

    statuses = np.bincount(manifest.statuses, minlength=len(STATUSES))
    return {
        "files": len(job.files),
        "pieces": len(manifest),
        **{status: int(count) for status, count in zip(STATUSES, statuses)},
        "pieces_per_split": {name: sum(entry["pieces"] for entry in index[name]) for name in SPLITS},
        "events": int(manifest.events.sum()),
        "clipped_notes": int(manifest.clipped_notes.sum()),
        "tokens_per_split": {name: sum(entry["tokens"] for entry in index[name]) for name in SPLITS},
        "shards": sum(len(entries) for entries in index.values()),
        "vocabulary_size": len(vocabulary),
        "chords_in_vocabulary": len(vocabulary.chords),
        "merged_tokens": vocabulary.merged,
        "steps_per_note": round(steps / notes, 3) if notes else None,
        "chord_symbols_in_vocabulary": len(vocabulary.symbols),
        "encoding": job.settings.describe(),
        "encoding_reason": job.encoding_reason,
        "labels": {name: len(values) for name, values in vocabulary.controls.items()},
        "density_edges": context.density_edges,
        "duplicates_grouped": grouped,
        "not_in_vocabulary": {name: int(manifest.counted[name].sum()) if name in manifest.counted else 0
                              for name in LEFT_OUT},
        "seconds": round(time.time() - started, 1),
    }


def resolve_encoding(job):
    """`job` with its settings decided: an EncodingRequest left to the corpus is settled on the traits of every
    piece read (musicgen/encoding_choice.py); EncodingSettings stay as they are."""
    if job.vocabulary is not None:
        return dataclasses.replace(job, settings=job.vocabulary.settings,
                                   encoding_reason="the vocabulary's, from --vocab")
    request = job.settings
    if isinstance(request, EncodingSettings):
        return job
    if not request.needs_corpus:
        return dataclasses.replace(job, settings=request.settings())
    surveyed = survey_sample(job.files)
    traits = []
    for file_traits in _map_files(_piece_traits, _FileTasks(surveyed), _context_of(job),
                                  job.workers, "surveying"):
        traits += file_traits
    reason = describe_traits(traits)
    if len(surveyed) < len(job.files):
        reason += f", in {len(surveyed):,} of the {len(job.files):,} files"
    return dataclasses.replace(job, settings=request.settings(traits), encoding_reason=reason)


def survey_sample(files):
    """The files whose pieces decide an encoding left to the corpus: all of them, or SURVEY_FILES spread evenly
    over a larger corpus. Each trait is chosen by the share of pieces that have it, which 2,000 files tell within
    about 2 % (one standard error at most 1.1 %), and Lakh would otherwise be read once more for it."""
    if len(files) <= SURVEY_FILES:
        return files
    return [files[index * len(files) // SURVEY_FILES] for index in range(SURVEY_FILES)]


def _context_of(job):
    cache = Path(job.cache or Path(job.output) / CACHE_FOLDER)
    cache.mkdir(parents=True, exist_ok=True)
    return _Context(job, cache)


def _piece_traits(task):
    return [piece_traits(result) for result in _read(task[1]) if isinstance(result, readers.RawPiece)]


def write_report(output):
    """Draw <output>/report.png, a one-page overview of the processed corpus; returns its path."""
    from musicgen.plots import plot_corpus_overview

    vocabulary, data = load_processed(output)
    manifest = pd.read_csv(Path(output) / MANIFEST_FILE, keep_default_na=False)
    path = Path(output) / REPORT_FILE
    plot_corpus_overview(path, vocabulary, data, manifest, title=f"corpus overview: {output}")
    return path


def run_folds(job):
    """Process job.files into job.folds cross-validation folds; returns the summary of each fold.

    Fold i is <output>/fold-<i>, a complete processed data set (train.py and
    evaluate.py take it as --data) whose test split is fold i and validation split
    fold i + 1; the rest train, with their own chord vocabulary and transposed
    copies, so nothing about a fold's test pieces leaks into its training. The
    files music21 reads are read once: every fold reads them from the same cache. folds.json,
    written last, names the folds for crossval.py.
    """
    if job.folds < 3:
        raise UserError(f"--folds must be at least 3 (one to test, one to validate, one to train), got {job.folds}")
    output = Path(job.output)
    job = resolve_encoding(dataclasses.replace(job, cache=job.cache or output / CACHE_FOLDER))
    summaries = [run(dataclasses.replace(job, output=output / f"fold-{fold}", test_fold=fold))
                 for fold in range(job.folds)]
    write_folds(output, [f"fold-{fold}" for fold in range(job.folds)], job.split_seed)
    return summaries


def _copies(grid, split, shifts):
    """[(shift, notes, ChordSymbols)] of a recipe.GridPiece in `split`: a training piece transposed by each of
    `shifts` that keeps every pitch within 0..127 (drums are not transposed), a held-out piece as it is. Every
    copy keeps the piece's meters."""
    if split != "train":
        return [(0, grid.notes, grid.chord_symbols)]
    copies = []
    notes = grid.notes
    pitched = notes[:, PROGRAM] != DRUMS
    for shift in shifts:
        pitches = notes[pitched, PITCH] + shift
        if not len(pitches) or (pitches.min() >= 0 and pitches.max() <= 127):
            copy = notes.copy()
            copy[pitched, PITCH] = pitches
            copies.append((shift, copy, grid.chord_symbols.transposed(shift)))
    return copies


def _settle_splits(job, manifest):
    """(pieces grouped by --dedupe, whether a small corpus' empty held-out split took a training piece): the
    survey's splits moved where they must be, in the manifest."""
    codes, kept = manifest.splits, manifest.kept
    grouped = splits.keep_duplicates_together(codes, manifest.openings) if job.dedupe else 0
    if job.folds:
        splits.check_folds(manifest.positions[kept], job.folds)
    if job.folds or job.split_from:
        return grouped, False
    names = np.array(SPLITS, dtype=object)[codes[kept]]
    moved = splits.fill_empty_held_out_splits(names, manifest.positions[kept], job.val_fraction, job.test_fraction)
    codes[kept] = [SPLITS.index(name) for name in names.tolist()]
    return grouped, moved


@dataclasses.dataclass
class _Context:
    """What every file's task needs, handed to each worker process once rather than with every file."""

    job: PreprocessJob
    cache: Path
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
    notes: int
    steps: int  # the tokens a model predicts for the music: all but <start>, the labels and <end>


_context = None  # this process's _Context, set by _set_context


def _set_context(context):
    global _context
    _context = context


def _map_files(function, tasks, context, workers, description):
    """function(task) for each task, in `workers` processes (or this one), each given the context once."""
    return map_files(function, tasks, workers, description, _set_context, context)


def _survey(task):
    """(file index, manifest rows, training chord counts, control tokens, chord symbol codes, meters) of one file:
    what it holds, what is kept, where, the labels of its kept pieces (and of their transposed copies), and the
    chord symbols and meters ((numerator, denominator)) of its training pieces."""
    file_index, path = task
    job = _context.job
    rows, chord_counts, controls, symbols, meters = [], Counter(), set(), set(), set()
    for result in _read(path):
        row = {"source": result.source, "status": "", "reason": "", "notes": 0, "events": 0, "clipped_notes": 0,
               "silences_shortened": 0, "chord_symbols": 0, "duration_quarters": 0.0, "tempo_bpm": None,
               "time_signature": "", "split": ""}
        if isinstance(result, readers.ReadFailure):
            row.update(status=result.status, reason=result.reason)
        elif job.limits.refusal(result):
            row.update(status="skipped", notes=len(result.pitches), reason=job.limits.refusal(result))
        else:
            grid = job.recipe.grid_notes(result, job.settings)
            notes = grid.notes
            row.update(notes=len(notes), tempo_bpm=round(result.tempo_bpm, 2), time_signature=result.time_signature,
                       silences_shortened=grid.silences_shortened, chord_symbols=len(grid.chord_symbols),
                       duration_quarters=float((notes[:, 0] + notes[:, 1]).max() / job.settings.steps_per_quarter))
            split = _split_of_piece(path, result.source, job)
            if len(notes) < job.min_notes:
                row.update(status="skipped", reason=f"only {len(notes)} notes (--min-notes is {job.min_notes})")
            elif split is None:
                row.update(status="skipped", reason="not in a split of --split-from")
            else:
                row.update(status="kept", split=split)
                if split == "train":
                    meters |= set(map(tuple, grid.meters[:, 1:].tolist()))
                if job.dedupe:
                    row["opening"] = splits.opening_fingerprint(notes)
                for shift, copy, copy_symbols in _copies(grid, split, job.transpositions):
                    if split == "train":
                        if job.max_chords and job.vocabulary is None:  # chord tokens are to be chosen
                            chord_counts.update(count_chords(copy, job.settings))
                        symbols |= set(copy_symbols.codes.tolist())
                    copy_labels = _labels_of(path, result, copy, density_edges=None)
                    controls |= {control_token(name, value) for name, value in copy_labels.items()}
                    if shift == 0:
                        row.update(copy_labels)
                if "density" in job.computed_labels:
                    row["notes_per_quarter"] = round(piece_labels.notes_per_quarter(
                        notes, job.settings.steps_per_quarter), 4)
        rows.append(row)
    return file_index, rows, chord_counts, controls, symbols, meters


def _split_of_piece(path, source, job):
    """The split of the piece read from `source` in the file `path`: the dataset's own (None where it has none
    for the file), the fold's, or the one drawn from the hash of its name."""
    if job.split_from is not None:
        return job.split_from.get(str(path))
    if job.folds:
        return splits.fold_split(source, job.folds, job.test_fold, job.split_seed)
    return splits.split_of(source, job.val_fraction, job.test_fraction, job.split_seed)


def _labels_of(path, result, notes, density_edges):
    """{label: value} of one piece (or transposed copy): its file's labels, then those computed from `notes`
    (density only once `density_edges` are known)."""
    job = _context.job
    names = [name for name in job.computed_labels if name != "density" or density_edges is not None]
    computed = piece_labels.computed_labels(names, notes, job.settings.steps_per_quarter, result.tempo_bpm,
                                            density_edges)
    return {**job.labels.get(str(path), {}), **computed}


class _FileTasks:
    """The tasks (file index, path) of every file, made as they are asked for (parallel.map_files)."""

    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        return index, self.files[index]


class _EncodingTasks:
    """The tasks (file index, path, split of each of its readings or '') of the files with a kept piece, made as
    they are asked for."""

    def __init__(self, files, manifest):
        self.files, self.manifest = files, manifest
        self.readings = manifest.readings_of_files()
        first = np.maximum(manifest.first_piece, 0)
        kept = np.concatenate([[0], np.cumsum(manifest.kept)])
        self.indices = np.flatnonzero(kept[first + self.readings] > kept[first])  # files holding a kept piece

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, position):
        index = int(self.indices[position])
        return index, self.files[index], self.manifest.splits_of_file(index, int(self.readings[index]))


def _kept_copies(task):
    """(reading index, split, shift, source, tempo, notes, chord symbols, meters, labels) of a file's kept pieces;
    training ones transposed."""
    _, path, file_splits = task
    job = _context.job
    seconds = job.settings.timing == "seconds"
    for result_index, (result, split) in enumerate(zip(_read(path), file_splits)):
        if not split:
            continue
        grid = job.recipe.grid_notes(result, job.settings)
        tempo = SECONDS_TIMING_BPM if seconds else result.tempo_bpm  # what plays the steps at their length
        for shift, copy, symbols in _copies(grid, split, job.transpositions):
            source = result.source if shift == 0 else f"{result.source} {TRANSPOSED_MARK} {shift:+d})"
            yield (result_index, split, shift, source, tempo, copy, symbols, grid.meters,
                   _labels_of(path, result, copy, _context.density_edges))


def _count_training(task):
    """(chord counts, chord symbol codes, meters) of a file's training pieces and their transposed copies."""
    counts, symbols, meters = Counter(), set(), set()
    for _, split, _, _, _, notes, piece_symbols, piece_meters, _ in _kept_copies(task):
        if split == "train":
            if _context.job.max_chords and _context.job.vocabulary is None:
                counts.update(count_chords(notes, _context.job.settings))
            symbols |= set(piece_symbols.codes.tolist())
            meters |= set(map(tuple, piece_meters[:, 1:].tolist()))
    return counts, symbols, meters


def _encode_file(task):
    """(file index, [_EncodedPiece]) for one file's kept pieces and their transposed copies."""
    pieces = []
    vocabulary = _context.vocabulary
    for result_index, split, shift, source, tempo, notes, symbols, meters, labels in _kept_copies(task):
        # Labels and chord symbols the vocabulary lacks (unseen in training, or absent from a --vocab) are left out.
        controls = [vocabulary.control_id(name, value) for name, value in labels.items()]
        known_symbols = vocabulary.known_symbols(symbols)
        left_out = {"labels_not_in_vocabulary": controls.count(None),
                    "chord_symbols_not_in_vocabulary": len(symbols) - len(known_symbols)}
        tokens, events, clipped = vocabulary.encode_notes(notes, [c for c in controls if c is not None],
                                                          known_symbols, meters)
        steps = len(tokens) - vocabulary.opening_length(tokens) - 1
        pieces.append(_EncodedPiece(result_index, split, shift, source, tempo, tokens, events, clipped, left_out,
                                    len(notes), steps))
    return task[0], pieces


def _count_events(task):
    """{event (a tuple of base token ids): times} of a file's training pieces and their transposed copies, for
    learning the merged tokens (musicgen/merges.py)."""
    counts = Counter()
    vocabulary = _context.vocabulary
    for _, split, _, _, _, notes, symbols, meters, _ in _kept_copies(task):
        if split != "train":
            continue
        table = event_table(notes, vocabulary.settings, vocabulary.chords, vocabulary.known_symbols(symbols),
                            vocabulary.known_meters(meters))
        rows = vocabulary.event_columns(table).tolist()
        counts.update(tuple(token for token in row if token != ABSENT) for row in rows)
    return counts


def _read(path):
    """The pieces of one file, read within the job's limits or from the cache."""
    return read_cached(path, _context.job.recipe.selection, _context.cache, _context.job.limits)
