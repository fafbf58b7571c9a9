"""Model steps per note: ours, with and without merged tokens, against MidiTok's REMI, TSD, CPWord, Octuple and
REMI with BPE, side by side in one run, on the same MIDI files.

    pip install -r benchmarks/requirements.txt
    python benchmarks/steps_per_note.py --output /tmp/steps_per_note.md
    python benchmarks/steps_per_note.py --skip-miditok          # ours alone

A model predicts one token per step, so the steps a note costs say how much music a window of a given length
holds. Four corpora, each given to ours and to MidiTok as the same MIDI files:

    Bach chorales       music21's bundled chorales, preprocess.py's default corpus, each written to a MIDI file
                        once with music21 (a score music21 cannot write as MIDI is left out and named)
    Nottingham          the first --limit files by name of ../shared/data/nottingham (melody and chords)
    piano performances  ../shared/data/real-midi/piano-performance (5 MAESTRO, 2 POP909)
    pop multitrack      ../shared/data/real-midi/pop-multitrack (6 songs, drums)

A corpus whose folder is missing is skipped with a line saying so.

Ours: python preprocess.py on the files (--workers processes, output to a temporary folder) with --merges 0,
250, 1000 and 4000. The encoding is left to the corpus for the chorales and Nottingham, and is the one
benchmarks/tokenizers.py measures for the other two (performances: --timing seconds --velocity-bins 32; songs:
--velocity-bins 32 --instruments --keep-drums). Every file counts (--min-notes 1) and no silence is shortened
(--max-silence 96), as MidiTok shortens none; the chorales are split as preprocess.py splits music21's corpus
(--dedupe). Steps per note is the figure preprocess.py prints: the tokens the model predicts for the music (all
but <start>, the labels and <end>) over the notes it encodes (the notes of manifest.csv's kept pieces). Merged
tokens are learned from the training split only (about 80 % of the pieces) and counted on every piece; learning
stops at pairs seen once, so a corpus may hold fewer merged tokens than asked for (the vocabulary table says how
many it got).

MidiTok (miditok==3.1.0): benchmarks/tokenizers.py's configuration (MIDITOK_COMMON, with MIDITOK_PERFORMANCES in
seconds timing and MIDITOK_SONGS on the beat grid), set to keep what ours keeps for the corpus:

    use_programs    as ours keeps instruments (then one_token_stream_for_programs=True). Where ours keeps none
                    it writes every instrument into one stream, so a file of several tracks is merged into one
                    (miditok.utils.merge_tracks, written to a temporary folder) before MidiTok reads it;
                    otherwise MidiTok would tokenize each track apart, with a bar and position tokens of its own
    use_velocities  as ours keeps velocities (music21 writes the chorales at one velocity, Nottingham has one)

MidiTok turns the sustain pedal off for CPWord and Octuple. Octuple's bar embedding (by default 60 bars, which
clips longer files) is raised to the most bars a file of the corpus holds, so its Bar sub-vocabulary grows with
the corpus. Steps are the ids MidiTok encodes: one per token for REMI and TSD, one per compound token (a time
step of the sequence, however many sub-tokens it holds) for CPWord and Octuple, whose vocabulary size is the sum
of their sub-vocabularies. Notes are those of each file after the tokenizer's own preprocess_score (quantized,
duplicated notes removed). REMI+BPE: REMI trained with tokenizer.train(vocab_size=its base size + 1000 or
+ 4000, files_paths=the corpus), on all the files it is then measured on (ours learns from the training split
only), merging within a bar (MidiTok's default encode_ids_split); the vocabulary table gives the size reached.

The notes column counts the notes of MidiTok's REMI (ours' where MidiTok is skipped); where another column
counts more than 2 % more or fewer, a line under the tables gives both counts.
"""

import argparse
import contextlib
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts this file's folder first on sys.path, where benchmarks/tokenizers.py would shadow the `tokenizers`
# package that MidiTok imports: the repository root takes its place.
sys.path = [str(ROOT)] + [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]

from benchmarks.tokenizers import MIDITOK_COMMON, MIDITOK_PERFORMANCES, MIDITOK_SONGS
from musicgen import readers
from musicgen.dataset import MANIFEST_FILE, VOCABULARY_FILE, read_vocabulary
from preprocess import DEFAULT_CORPUS

DEFAULT_DATA = ROOT.parent / "shared" / "data"
OUR_MERGES = (0, 250, 1000, 4000)
OUR_FLAGS = ("--min-notes", "1", "--max-silence", "96")  # every file counts, no silence shortened
PERFORMANCE_FLAGS = ("--timing", "seconds", "--velocity-bins", "32")
SONG_FLAGS = ("--velocity-bins", "32", "--instruments", "--keep-drums")
BPE_ADDED_TOKENS = (1000, 4000)
NOTE_COUNT_TOLERANCE = 0.02


class Corpus(NamedTuple):
    name: str
    paths: list  # MIDI files
    flags: tuple = ()  # preprocess.py's encoding flags for ours
    remark: str = ""  # which files it holds, where not all of them


class Measure(NamedTuple):
    steps_per_note: float
    notes: int
    vocabulary_size: int
    vocabulary_remark: str = ""  # merged tokens, sub-vocabularies


def midi_files(folder):
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in readers.MIDI_SUFFIXES)


def chorales(folder):
    """music21's Bach chorales (preprocess.py's default corpus), each written to a MIDI file in `folder`."""
    import music21

    sources = readers.music21_corpus_files(DEFAULT_CORPUS)
    paths, left_out = [], []
    for source in sources:
        path = folder / f"{source.name}.mid"  # the full name: bwv277.krn and bwv277.mxl are both there
        try:
            music21.converter.parse(source).write("midi", fp=path)
        except music21.exceptions21.Music21Exception as error:
            left_out.append(f"{source.name} ({type(error).__name__}: {error})")
            continue
        paths.append(path)
    remark = f"{len(paths)} of the {len(sources)} scores"
    if left_out:
        remark += "; music21 could not write " + ", ".join(left_out)
    return Corpus("Bach chorales", paths, ("--dedupe",), remark)  # split as preprocess.py splits music21's corpora


def shared_corpora(data, limit):
    """(the corpora of ../shared/data that are there, a line for each that is not)."""
    wanted = (("Nottingham", data / "nottingham", (), limit),
              ("piano performances", data / "real-midi" / "piano-performance", PERFORMANCE_FLAGS, None),
              ("pop multitrack", data / "real-midi" / "pop-multitrack", SONG_FLAGS, None))
    corpora, skipped = [], []
    for name, folder, flags, most in wanted:
        if not folder.is_dir():
            skipped.append(f"{name}: skipped, {folder} not found")
            continue
        paths = midi_files(folder)
        remark = f"the first {most} of {len(paths)} files by name" if most and most < len(paths) else ""
        corpora.append(Corpus(name, paths[:most], flags, remark))
    return corpora, skipped


def run_ours(corpus, merges, output, workers):
    """(Measure, EncodingSettings) of preprocess.py on the corpus' files with up to `merges` merged tokens."""
    command = [sys.executable, str(ROOT / "preprocess.py"), "--output", str(output), "--merges", str(merges),
               "--workers", str(workers), *OUR_FLAGS, *corpus.flags]
    for path in corpus.paths:
        command += ["--input", str(path)]
    result = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"error: preprocess.py failed on {corpus.name}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    steps_per_note = float(re.search(r"^([\d.]+) model steps per note", result.stdout, re.MULTILINE).group(1))
    vocabulary = read_vocabulary(output / VOCABULARY_FILE)
    with open(output / MANIFEST_FILE, newline="") as manifest:
        notes = sum(int(row["notes"]) for row in csv.DictReader(manifest) if row["status"] == "kept")
    remark = f"{vocabulary.merged} merged" if merges else ""
    return Measure(steps_per_note, notes, len(vocabulary), remark), vocabulary.settings


def measure_ours(corpus, workers):
    """({column: Measure} for each merge count, the encoding preprocess.py chose), in one temporary folder so
    that the later runs read the files from the first one's cache."""
    measures = {}
    with tempfile.TemporaryDirectory() as output:
        for merges in OUR_MERGES:
            column = f"ours +{merges}" if merges else "ours"
            measures[column], settings = run_ours(corpus, merges, Path(output), workers)
    return measures, settings


def miditok_config(settings, **extra):
    """benchmarks/tokenizers.py's MidiTok configuration for ours' encoding `settings`, keeping what ours keeps."""
    import miditok

    per_timing = MIDITOK_PERFORMANCES if settings.timing == "seconds" else MIDITOK_SONGS
    return miditok.TokenizerConfig(**MIDITOK_COMMON, **per_timing, use_programs=settings.instruments,
                                   use_velocities=bool(settings.velocity_bins), **extra)


def one_stream_files(paths, folder):
    """The files as MidiTok is to read them where ours writes every instrument into one stream: a file of several
    tracks merged into one track, written to `folder`; a file of one track as it is."""
    import symusic
    from miditok.utils import merge_tracks

    inputs = []
    for path in paths:
        score = symusic.Score(str(path))
        if len(score.tracks) > 1:
            merge_tracks(score)
            path = folder / path.name
            score.dump_midi(str(path))
        inputs.append(path)
    return inputs


def most_bars(tokenizer, paths):
    """The most bars (up to the last note onset) any of the files holds after the tokenizer's preprocessing."""
    import symusic
    from miditok.utils import get_bars_ticks

    return max(len(get_bars_ticks(tokenizer.preprocess_score(symusic.Score(str(path))), only_notes_onsets=True))
               for path in paths)


def count_steps(tokenizer, paths):
    """(steps, notes) of the files: the ids the tokenizer encodes (one per compound token) and the notes left after
    its preprocessing."""
    import symusic

    steps = notes = 0
    for path in paths:
        score = tokenizer.preprocess_score(symusic.Score(str(path)))
        sequences = tokenizer.encode(score, no_preprocess_score=True)  # one per track without programs
        steps += sum(len(sequence.ids) for sequence in (sequences if isinstance(sequences, list) else [sequences]))
        notes += score.note_num()
    return steps, notes


def miditok_tokenizers(settings, paths):
    """{column: tokenizer}: MidiTok's tokenizers configured for ours' encoding `settings`, REMI with BPE trained
    on `paths`."""
    import miditok

    tokenizers = {name: getattr(miditok, name)(miditok_config(settings)) for name in ("REMI", "TSD", "CPWord")}
    tokenizers["Octuple"] = miditok.Octuple(miditok_config(
        settings, max_bar_embedding=most_bars(tokenizers["REMI"], paths)))
    for added in BPE_ADDED_TOKENS:
        remi = miditok.REMI(miditok_config(settings))
        with stdout_to_stderr():
            remi.train(vocab_size=len(remi) + added, files_paths=paths)
        tokenizers[f"REMI+BPE {added // 1000}k"] = remi
    return tokenizers


@contextlib.contextmanager
def stdout_to_stderr():
    """The process' stdout sent to stderr: Hugging Face tokenizers' training writes its progress to file
    descriptor 1, past sys.stdout, which is to hold the tables alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def measure_miditok(corpus, settings):
    """({column: Measure} of MidiTok's tokenizers on the corpus, how many files had their tracks merged into one,
    {first line of a warning MidiTok gave: times})."""
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = corpus.paths if settings.instruments else one_stream_files(corpus.paths, Path(folder))
        measures = {}
        for column, tokenizer in miditok_tokenizers(settings, paths).items():
            steps, notes = count_steps(tokenizer, paths)
            remark = f"{len(tokenizer.len)} sub-vocabularies" if tokenizer.is_multi_voc else ""
            measures[column] = Measure(steps / notes, notes, len(tokenizer), remark)
    merged_files = sum(path != original for path, original in zip(paths, corpus.paths))
    return measures, merged_files, Counter(str(warning.message).strip().splitlines()[0] for warning in caught)


class Result(NamedTuple):
    corpus: Corpus
    measures: dict  # {column: Measure}
    lines: list  # what a reader of the tables should know about this corpus


def measure_corpus(corpus, workers, skip_miditok):
    print(f"{corpus.name}: {len(corpus.paths)} files", file=sys.stderr)
    measures, settings = measure_ours(corpus, workers)
    lines = [f"{corpus.name}: {corpus.remark + '; ' if corpus.remark else ''}ours {settings.describe()}"]
    if not skip_miditok:
        miditok_measures, merged_files, warned = measure_miditok(corpus, settings)
        measures.update(miditok_measures)
        lines[0] += (f"; MidiTok use_programs={settings.instruments}, use_velocities={bool(settings.velocity_bins)}"
                     + (f", {merged_files} files' tracks merged into one" if merged_files else ""))
        lines += [f"{corpus.name}: MidiTok warned {times} times: {message}" for message, times in warned.items()]
    lines += note_count_lines(corpus.name, measures)
    return Result(corpus, measures, lines)


def reference_notes(measures):
    return measures["REMI" if "REMI" in measures else "ours"].notes


def note_count_lines(name, measures):
    """A line for each column (ours' merge counts as one) whose notes differ from the notes column by over 2 %."""
    reference = reference_notes(measures)
    return [f"{name}: {column} counts {measure.notes:,} notes, the notes column {reference:,}"
            for column, measure in measures.items()
            if not column.startswith("ours +") and abs(measure.notes - reference) > NOTE_COUNT_TOLERANCE * reference]


def markdown_tables(results):
    columns = list(results[0].measures)
    lines = ["Model steps per note:", "", "| corpus | notes | " + " | ".join(columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for result in results:
        cells = [f"{result.measures[column].steps_per_note:.3f}" for column in columns]
        lines.append(f"| {result.corpus.name} ({len(result.corpus.paths)} files) "
                     f"| {reference_notes(result.measures):,} | " + " | ".join(cells) + " |")
    lines += ["", "Vocabulary size:", "", "| corpus | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for result in results:
        cells = [vocabulary_cell(result.measures[column]) for column in columns]
        lines.append(f"| {result.corpus.name} | " + " | ".join(cells) + " |")
    return lines


def vocabulary_cell(measure):
    remark = f" ({measure.vocabulary_remark})" if measure.vocabulary_remark else ""
    return f"{measure.vocabulary_size:,}{remark}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder holding nottingham/ and real-midi/ (default: ../shared/data)")
    parser.add_argument("--limit", type=int, default=300,
                        help="Nottingham files to take, the first by name (default: 300)")
    parser.add_argument("--workers", type=int, default=2, help="preprocess.py's --workers (default: 2)")
    parser.add_argument("--output", type=Path, metavar="FILE.md", help="also write the tables to this file")
    parser.add_argument("--skip-miditok", action="store_true", help="measure ours alone")
    args = parser.parse_args()
    if args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if not args.skip_miditok:
        try:
            import miditok  # noqa: F401
        except ModuleNotFoundError:
            sys.exit("error: MidiTok is not installed: pip install -r benchmarks/requirements.txt")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        print("writing the Bach chorales to MIDI files", file=sys.stderr)
        shared, skipped = shared_corpora(args.data, args.limit)
        results = [measure_corpus(corpus, args.workers, args.skip_miditok)
                   for corpus in [chorales(Path(folder)), *shared]]
    versions = "" if args.skip_miditok else f"miditok {version('miditok')}, tokenizers {version('tokenizers')}; "
    report = "\n".join([*markdown_tables(results), "", *(line for result in results for line in result.lines),
                        *skipped, f"{versions}total wall time {time.perf_counter() - started:.0f} s."])
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")


if __name__ == "__main__":
    main()
