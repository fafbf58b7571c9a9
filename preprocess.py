"""Turn MIDI, ABC, MusicXML and Humdrum files into note-and-chord token sequences.

    python preprocess.py                                  # data/ (or music21's Bach chorales if empty)
    python preprocess.py --input ../my_midi --workers 4
    python preprocess.py --corpus essenFolksong --melody-only --transpose -5..6
    python preprocess.py --report                         # also report.png, an overview of the corpus
    python preprocess.py --corpus bach --melody-only --folds 10 --output data/bach-folds  # for crossval.py
    python preprocess.py --input ../maestro --timing seconds --velocity-bins 16   # override the corpus' choice
    python preprocess.py --input ../by_composer --label-from folders=composer --compute-labels key,density
    python preprocess.py --input ../nottingham --melody-only --chord-symbols infer   # melodies over their chords

With no encoding flags the corpus decides (musicgen/encoding_choice.py):
performances (most onsets off the beat grid) get 10 ms steps, shifts up to 1 s
and velocities; multitrack songs their instruments and velocities; scores the
compact beat grid. The summary line and vocab.json say what was chosen.
"""

import argparse
import os
import sys
from pathlib import Path

from musicgen import readers
from musicgen.chords import CHORD_SYMBOL_MODES
from musicgen.dataset import DEFAULT_SHARD_TOKENS
from musicgen.encoding_choice import EncodingRequest
from musicgen.errors import UserError, run_cli
from musicgen.limits import FileLimits
from musicgen.preprocessing import DEFAULT_MERGES, PreprocessJob, run, run_folds, write_report
from musicgen.recipe import Recipe

DEFAULT_INPUT = Path("data")
DEFAULT_CORPUS = "bach"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sources = parser.add_argument_group("sources")
    sources.add_argument("--input", action="append", type=Path, metavar="PATH",
                         help="file or folder to read, recursively (repeatable; default: data/)")
    sources.add_argument("--corpus", action="append", metavar="NAME",
                         help="a music21 bundled corpus: bach, essenFolksong, ryansMammoth, palestrina, ... (repeatable)")
    sources.add_argument("--output", type=Path, default=Path("data/processed"),
                         help="where the token arrays, vocab.json and manifest.csv go (default: data/processed)")
    tracks = parser.add_argument_group("what to take from each file")
    tracks.add_argument("--keep-drums", action="store_true", help="keep drum tracks (left out by default)")
    tracks.add_argument("--skip-drums", dest="keep_drums", action="store_false", help="leave drum tracks out (default)")
    tracks.add_argument("--programs", metavar="LIST",
                        help="only these General MIDI programs (0-127), e.g. '0-7,40' for pianos and violin")
    tracks.add_argument("--no-sustain-pedal", dest="sustain_pedal", action="store_false",
                        help="take MIDI notes as the keys were released, ignoring the sustain pedal "
                             "(by default a note held by the pedal lasts until the pedal comes up)")
    tracks.add_argument("--melody-only", action="store_true", help="keep only the top voice (highest note at each onset)")
    tracks.add_argument("--min-notes", type=int, default=8, help="skip pieces with fewer notes (default: 8)")
    tracks.add_argument("--chord-symbols", choices=CHORD_SYMBOL_MODES, default="keep",
                        help="chord symbols (ABC's \"G\" \"D7\", MusicXML harmony) become tokens: keep those a file "
                             "names, infer them from the notes of each bar or half bar where it names none (MIDI), "
                             "or none (default: keep)")
    encoding = parser.add_argument_group("encoding (by default chosen from the corpus; each flag overrides its part)")
    encoding.add_argument("--vocab", type=Path, metavar="PATH",
                          help="encode with this vocabulary (a vocab.json, or a run or data folder holding one), so "
                               "a run trained on it can fine-tune on this corpus (train.py --init-from); what it has "
                               "no token for is counted in the summary and the manifest")
    encoding.add_argument("--timing", choices=("auto", "beats", "seconds"), default="auto",
                          help="beats: a grid of quarter notes; seconds: real time, a 'quarter' being half a second "
                               "(default auto: seconds when most pieces are performances off the beat grid)")
    encoding.add_argument("--velocity-bins", type=int, metavar="N",
                          help="keep dynamics in N velocity bins, 0 for none (default: 32 when most pieces have "
                               "varied velocities, else 0)")
    encoding.add_argument("--instruments", action="store_true", default=None,
                          help="each note names its instrument (default: when most pieces have two or more)")
    encoding.add_argument("--no-instruments", dest="instruments", action="store_false",
                          help="merge every instrument into one stream")
    encoding.add_argument("--meters", action="store_true", default=None,
                          help="keep time signatures and their changes as tokens at the bar lines, so generated "
                               "music has its bars (default in beat timing)")
    encoding.add_argument("--no-meters", dest="meters", action="store_false",
                          help="leave time signatures out: every bar counts as 4/4, as before meters were kept")
    encoding.add_argument("--steps-per-quarter", type=int,
                          help="grid resolution: 4 = sixteenth notes (default in beat timing), 12 also holds triplets; "
                               "in seconds timing 50 (10 ms steps, the default)")
    encoding.add_argument("--max-duration", type=int, metavar="QUARTERS",
                          help="longest note duration in quarter notes (half seconds in seconds timing); longer ones "
                               "are clipped (default: 8)")
    encoding.add_argument("--max-shift", type=int, metavar="QUARTERS",
                          help="largest time step between events; longer gaps become rests (default: 8 quarters, "
                               "in seconds timing 2, i.e. 1 s)")
    encoding.add_argument("--max-chords", type=int, default=0,
                          help="at most this many chord tokens, the most common ones; other chords are written "
                               "note by note, highest first (default: 0, every chord note by note: measured "
                               "better for the transformer on the Bach chorales; 1024 was the default before)")
    encoding.add_argument("--merges", type=int, metavar="N",
                          help=f"at most N merged tokens, each a run of tokens within one event that the training "
                               f"pieces often hold (a note with its duration and shift, say), so a note costs the "
                               f"model about one step instead of three; 0 for none (default: {DEFAULT_MERGES})")
    encoding.add_argument("--min-chord-count", type=int, default=2,
                          help="a chord needs this many occurrences in training data to get a token (default: 2)")
    labels = parser.add_argument_group("labels: control tokens at the start of each piece, for generate.py --condition")
    labels.add_argument("--label-from", metavar="folders[=NAME]",
                        help="label each file by the first folder below its --input: data/chopin/x.mid -> "
                             "folder=chopin (or NAME=chopin)")
    labels.add_argument("--label-pattern", action="append", default=[], metavar="NAME=REGEX",
                        help="label each file by the start of its name that REGEX matches (its first group if it "
                             "has one), e.g. 'style=^(jigs|reels|waltzes)' (repeatable)")
    labels.add_argument("--labels", type=Path, metavar="CSV",
                        help="a CSV with a column naming each file (midi_filename, filename, file or path) and "
                             "label columns, e.g. MAESTRO's maestro-v3.0.0.csv")
    labels.add_argument("--label-columns", metavar="LIST", help="the --labels columns to use, e.g. canonical_composer")
    labels.add_argument("--label-file-column", metavar="NAME", help="the --labels column naming each file")
    labels.add_argument("--compute-labels", metavar="LIST",
                        help="labels measured on the music: any of key (estimated from the notes), tempo (slow "
                             "below 76 bpm, moderate, fast from 120), density (thirds of the training pieces' "
                             "notes per quarter)")
    parser.add_argument("--infilling", action="store_true",
                        help="add the fill-in-the-middle markers to the vocabulary, so that models trained on it "
                             "learn to fill in bars (generate.py --infill); most training windows (the "
                             "infill_rate setting, 0.8) are then shown in that order")
    split = parser.add_argument_group("splits and augmentation")
    split.add_argument("--val-fraction", type=float, help="share of pieces for validation (default: 0.1)")
    split.add_argument("--test-fraction", type=float, help="share of pieces for test (default: 0.1)")
    split.add_argument("--folds", type=int, metavar="K",
                       help="instead of one split, K cross-validation folds in <output>/fold-0 .. fold-K-1, "
                            "each piece tested in one of them (for crossval.py)")
    split.add_argument("--split-seed", type=int, default=0, help="seed of the random split (default: 0)")
    split.add_argument("--split-from", metavar="CSV|folders",
                       help="keep the split the dataset comes with: a CSV with a split column (train, validation, "
                            "test) and a column naming each file (MAESTRO's maestro-v3.0.0.csv), or folders: "
                            "train/, valid/ or validation/, test/ under --input; files it does not place are "
                            "reported and left out")
    split.add_argument("--dedupe", action="store_true", default=None,
                       help="keep pieces whose openings are the same melody (in any key) in one split "
                            "(default: on for music21's bundled corpora, off otherwise)")
    split.add_argument("--no-dedupe", dest="dedupe", action="store_false", help="split every piece on its own")
    split.add_argument("--transpose", default="0", metavar="LOW..HIGH",
                       help="add training copies transposed by each shift in LOW..HIGH semitones, e.g. -5..6 (default: 0)")
    limits = parser.add_argument_group("limits (a file over a limit is skipped and reported, never fatal)")
    limits.add_argument("--timeout", type=float, default=60, metavar="SECONDS", help="per file (default: 60)")
    limits.add_argument("--max-file-mb", type=float, default=64, help="larger files are not read (default: 64)")
    limits.add_argument("--max-notes", type=int, default=500_000, help="pieces with more notes are skipped (default: 500000)")
    limits.add_argument("--max-silence", type=int, default=16, metavar="QUARTERS",
                        help="longer silences inside a piece are shortened to this (default: 16)")
    parser.add_argument("--workers", type=int, default=available_cores(),
                        help=f"processes reading and encoding files in parallel (default: the {available_cores()} "
                             "cores this process may use)")
    parser.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, metavar="N",
                        help=f"tokens per shard file of the output (default: {DEFAULT_SHARD_TOKENS:,})")
    parser.add_argument("--report", action="store_true",
                        help="also draw a one-page overview of the corpus, <output>/report.png")
    return parser.parse_args(_attach_negative_ranges(sys.argv[1:] if argv is None else argv))


def available_cores():
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity
        return os.cpu_count() or 1


def _attach_negative_ranges(argv):
    """Let '--transpose -5..6' through: argparse would take '-5..6' for an option."""
    argv = list(argv)
    for i, item in enumerate(argv[:-1]):
        if item == "--transpose" and argv[i + 1].startswith("-"):
            argv[i: i + 2] = [f"--transpose={argv[i + 1]}"]
            break
    return argv


def parse_programs(text):
    """'0-7,40' -> frozenset({0, ..., 7, 40})."""
    programs = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            programs.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise UserError(f"--programs takes numbers and ranges like '0-7,40', got {text!r}") from None
    if not programs or min(programs) < 0 or max(programs) > 127:
        raise UserError(f"--programs must name General MIDI programs 0..127, got {text!r}")
    return frozenset(programs)


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


def collect_files(args):
    """(files to read, whether they are music21's bundled corpus); with no source given, data/ or else the
    default music21 corpus."""
    files, ignored = [], 0
    for path in args.input or []:
        if not path.exists():
            raise UserError(f"--input {path} does not exist")
        found, passed_over = readers.find_music_files(path, exclude=[args.output])
        files += found
        ignored += passed_over
    for name in args.corpus or []:
        found = readers.music21_corpus_files(name)
        if not found:
            raise UserError(f"music21 has no bundled corpus named {name!r} (try bach, essenFolksong, ryansMammoth)")
        files += found
    if not args.input and not args.corpus:
        if DEFAULT_INPUT.is_dir():
            files, ignored = readers.find_music_files(DEFAULT_INPUT, exclude=[args.output])
        if not files:
            files = readers.music21_corpus_files(DEFAULT_CORPUS)
            print(f"no music files in {DEFAULT_INPUT}/; using music21's bundled Bach chorales ({len(files)} scores)")
            return files, True
    if ignored:
        print(f"passed over {ignored} files that are not MIDI, ABC, MusicXML or Humdrum")
    if not files:
        raise UserError("no MIDI, ABC, MusicXML or Humdrum files found in the given inputs")
    return files, bool(args.corpus) and not args.input


def shared_vocabulary(args):
    """The --vocab vocabulary, checked against the flags: it decides the encoding, so they may not."""
    from musicgen.dataset import read_vocabulary

    path = args.vocab / "vocab.json" if args.vocab.is_dir() else args.vocab
    if not path.is_file():
        raise UserError(f"--vocab {args.vocab} is neither a vocab.json nor a folder holding one")
    vocabulary = read_vocabulary(path)
    given = [flag for flag, value in (("--timing", args.timing != "auto"), ("--velocity-bins", args.velocity_bins),
                                      ("--instruments/--no-instruments", args.instruments is not None),
                                      ("--meters/--no-meters", args.meters is not None),
                                      ("--steps-per-quarter", args.steps_per_quarter),
                                      ("--max-duration", args.max_duration), ("--max-shift", args.max_shift),
                                      ("--max-chords", args.max_chords), ("--merges", args.merges is not None))
             if value]
    if given:
        raise UserError(f"--vocab decides the encoding ({vocabulary.settings.describe()}); leave out {', '.join(given)}")
    if args.infilling and not vocabulary.infilling:
        raise UserError(f"--vocab {args.vocab} has no infilling markers; leave out --infilling")
    return vocabulary


def collect_split(args, files):
    """{file: split} from --split-from (musicgen/splits.py), or None for the split drawn from file names."""
    if not args.split_from:
        return None
    from musicgen import splits

    if args.folds is not None:
        raise UserError("--split-from keeps the dataset's split; it does not go with --folds")
    if args.val_fraction is not None or args.test_fraction is not None:
        raise UserError("--split-from decides the validation and test pieces; leave out --val-fraction and "
                        "--test-fraction")
    if args.split_from == "folders":
        if not args.input:
            raise UserError("--split-from folders needs --input folders holding train/, validation/ and test/")
        found, unplaced = splits.splits_from_folders(files, args.input)
    else:
        found, unplaced = splits.splits_from_csv(files, Path(args.split_from))
    for name in ("validation", "test"):
        if name not in found.values():
            print(f"warning: --split-from {args.split_from} places no file in the {name} split")
    if unplaced:
        print(f"{len(unplaced)} files are in no split of --split-from {args.split_from} and are left out "
              f"(the manifest lists them), e.g. {unplaced[0]}")
    return found


def collect_labels(args, files):
    """{file: {label: value}} from --label-from, --label-pattern and --labels (musicgen/labels.py)."""
    from musicgen import labels

    sources = []
    if args.label_from:
        kind, _, name = args.label_from.partition("=")
        if kind != "folders":
            raise UserError(f"--label-from takes folders or folders=NAME, got {args.label_from!r}")
        if not args.input:
            raise UserError("--label-from folders needs --input folders to name the labels after")
        sources.append(labels.folder_labels(files, args.input, labels.check_name(name or "folder", "--label-from")))
    sources += [labels.pattern_labels(files, spec) for spec in args.label_pattern]
    if args.labels or args.label_columns:
        if not (args.labels and args.label_columns):
            raise UserError("--labels and --label-columns go together: the CSV and which of its columns to use")
        columns = [labels.check_name(c.strip(), "--label-columns") for c in args.label_columns.split(",") if c.strip()]
        found, unlisted = labels.csv_labels(files, args.labels, columns, args.label_file_column)
        if unlisted:
            print(f"{len(unlisted)} files are not listed in {args.labels} and get no label from it, e.g. {unlisted[0]}")
        sources.append(found)
    return labels.merge(*sources)


def main(argv=None):
    args = parse_args(argv)
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.shard_tokens < 1000:
        raise UserError(f"--shard-tokens must be at least 1000, got {args.shard_tokens}")
    if not (args.timeout > 0 and args.max_file_mb > 0 and args.max_notes > 0 and args.max_silence > 0):
        raise UserError("--timeout, --max-file-mb, --max-notes and --max-silence must be positive")
    if args.folds is not None and (args.val_fraction is not None or args.test_fraction is not None):
        raise UserError("--folds decides the validation and test pieces; leave out --val-fraction and --test-fraction")
    if args.merges is not None and not 0 <= args.merges <= 100_000:
        raise UserError(f"--merges must be in 0..100000, got {args.merges}")
    if args.folds is not None and args.report:
        raise UserError("--report draws one data set: run it without --folds")
    request = EncodingRequest(args.timing, args.velocity_bins, args.instruments, args.steps_per_quarter,
                              args.max_duration, args.max_shift, args.meters)
    request.settings()  # a bad flag is reported before any file is read
    vocabulary = shared_vocabulary(args) if args.vocab else None
    recipe = Recipe(readers.TrackSelection(args.keep_drums, parse_programs(args.programs) if args.programs else None,
                                           args.sustain_pedal),
                    args.melody_only, args.max_silence, args.chord_symbols)
    computed = ()
    if args.compute_labels:
        from musicgen.labels import parse_computed

        computed = parse_computed(args.compute_labels)
    files, bundled = collect_files(args)
    split_from, labels = collect_split(args, files), collect_labels(args, files)
    files = [str(path) for path in files]  # a Path costs some 300 bytes more than its string: 0.4 GB on GigaMIDI
    job = PreprocessJob(
        files=files, output=args.output, settings=request, recipe=recipe,
        labels=labels, computed_labels=computed, infilling=args.infilling,
        val_fraction=0.1 if args.val_fraction is None else args.val_fraction,
        test_fraction=0.1 if args.test_fraction is None else args.test_fraction,
        split_seed=args.split_seed, folds=args.folds or 0, transpositions=parse_transpose(args.transpose), workers=args.workers,
        min_notes=args.min_notes, max_chords=args.max_chords, min_chord_count=args.min_chord_count,
        merges=DEFAULT_MERGES if args.merges is None else args.merges,
        limits=FileLimits(args.max_file_mb, args.timeout, args.max_notes), shard_tokens=args.shard_tokens,
        split_from=split_from, dedupe=bundled if args.dedupe is None else args.dedupe, vocabulary=vocabulary,
    )
    if args.folds is not None:
        for fold, summary in enumerate(run_folds(job)):
            counts = summary["pieces_per_split"]
            print(f"fold {fold}: {counts['test']} test, {counts['validation']} validation and {counts['train']} "
                  f"training pieces, vocabulary {summary['vocabulary_size']} tokens in {args.output / f'fold-{fold}'}")
        print(f"encoding: {summary['encoding']} ({summary['encoding_reason']})")
        print(f"{summary['kept']} of {summary['pieces']} pieces kept (reasons in each fold's manifest.csv); "
              f"cross-validate with: python crossval.py --data {args.output}")
        return
    summary = run(job)
    print(f"encoding: {summary['encoding']} ({summary['encoding_reason']})")
    print(f"{summary['files']} files, {summary['pieces']} pieces: {summary['kept']} kept, "
          f"{summary['skipped']} skipped, {summary['failed']} failed (reasons in {args.output / 'manifest.csv'})")
    splits = ", ".join(f"{name} {count}" for name, count in summary["pieces_per_split"].items())
    print(f"{summary['events']} events; pieces per split: {splits}; vocabulary {summary['vocabulary_size']} tokens "
          f"({summary['chords_in_vocabulary']} chords); {summary['clipped_notes']} notes clipped to --max-duration; "
          f"{summary['shards']} shard files; {summary['seconds']} s")
    print(f"{summary['steps_per_note']} model steps per note"
          + (f" ({summary['merged_tokens']} merged tokens)" if summary["merged_tokens"] else ""))
    left_out = {name.replace("_", " "): count for name, count in summary["not_in_vocabulary"].items() if count}
    if args.vocab:
        print(f"encoded with {args.vocab}'s vocabulary"
              + (": " + ", ".join(f"{count} {name}" for name, count in left_out.items()) + " (the manifest counts them "
                 "per piece)" if left_out else "; everything fit"))
    if summary["duplicates_grouped"]:
        print(f"{summary['duplicates_grouped']} pieces open with the same melody as another and share its split "
              "(--dedupe)")
    if summary["chord_symbols_in_vocabulary"]:
        print(f"chord symbols: {summary['chord_symbols_in_vocabulary']} in the vocabulary (a token each), "
              "counted per piece in the manifest's chord_symbols column")
    if summary["labels"]:
        print("labels (values): " + ", ".join(f"{name} ({count})" for name, count in summary["labels"].items())
              + ("; density: low below {:.2f}, high from {:.2f} notes per quarter".format(*summary["density_edges"])
                 if summary["density_edges"] else ""))
    if args.report:
        print(f"corpus overview in {write_report(args.output)}")
    if summary["pieces_per_split"]["validation"] == 0:
        print("warning: the validation split is empty; train.py needs one (add files or raise --val-fraction)")

if __name__ == "__main__":
    run_cli(main)
