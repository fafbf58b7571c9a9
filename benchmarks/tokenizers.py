"""Our tokenization against MidiTok's REMI, TSD and MMM, side by side in one run, on the shared real MIDI files.

    pip install -r benchmarks/requirements.txt
    python benchmarks/tokenizers.py --output /tmp/tokenizers.md

Each folder (piano-performance: 5 MAESTRO and 2 POP909 performances; pop-multitrack: 6 pop songs, one from
Lakh) is one corpus. Ours gets the encoding preprocess.py would choose for the folder (performances: 10 ms
steps, notes up to 4 s, 32 velocity bins; songs: 4 steps per quarter, notes up to 8 quarters, 32 velocity
bins, instruments), twice: every chord note by note, as preprocess.py writes it by default, and with up to
--chord-tokens chord tokens (preprocess.py --max-chords), built from the chords of all its files. MidiTok (miditok==3.1.0) gets
one configuration per folder, shared by its three tokenizers and chosen to keep what ours keeps:

    pitch_range=(0, 127), drums_pitch_range=(0, 127)   every note (its defaults drop pitches outside 21-108)
    num_velocities=32                                   32 velocities 4 apart: within 2 of any velocity
    use_tempos=True, tempo_range=(30, 250)              the Lakh file goes down to 33 bpm
    use_time_signatures=True                            REMI's bars follow them (POP909 has 2/4 and 1/4)
    use_sustain_pedals=True                             pedal presses kept as Pedal/PedalOff tokens
    remove_duplicated_notes=True                        a key struck twice at once is one note, as in ours
    use_programs=True for the songs (one_token_stream_for_programs=True), False for the performances, whose
                  programs ours does not keep either
    performances: beat_res={(0, 8): 64}, num_tempos=2201   1/64 beat (7.8 ms at MAESTRO's 120 bpm), up to
                  8 beats (4 s there, ours' longest note), tempos in 0.1 bpm (POP909's tempo maps have
                  fractional tempos; 1 bpm bins put its notes up to 15 ms off)
    songs:        beat_res={(0, 8): 4}, num_tempos=221         ours' grid and longest note; 1 bpm tempos
    MMM:          the same, with base_tokenizer="TSD" (MMM always starts each track with its program)

What a listener hears is the yardstick for both: each track's notes with its sustain pedal applied (a note
held by the pedal sounds until pedal-up or until its key is struck again, musicgen.readers.sustained_ends),
then one note per instrument, key and step, ending where its key is struck again at a later step. Ours bakes
the pedal into the note ends when reading; MidiTok keeps the pedal as tokens, so the same pedal rule is
applied to what it decodes, and both decoded outputs go through the same listener rule. A key doubled within
a step (POP909's melody and piano parts) is one note that may come back with any of its lengths and
velocities (ours keeps the longest, MidiTok the shortest). A decoded note is paired with the nearest note of
the same pitch (the same instrument first) within 5 steps of its onset; reference notes left unpaired are
lost, decoded ones added. Shares are of the reference notes:

    onset ok     performances: within 10 ms; songs: on the same sixteenth (4 steps per quarter)
    end ok       within 10 ms / a sixteenth of the end the tokenizer can hold at best: ours clips a note as
                 heard to its longest duration, MidiTok clips the key (8 beats) before the pedal applies
    clipped      notes whose heard end the tokenizer cannot hold by design (counted apart from end ok)
    velocity ok  within 2 MIDI velocities (half a bin of 32)
    program ok   the same instrument (drums as drums)
    tempo ok     songs: the tempo at each note's sixteenth within 1 bpm of the file's (tempo changes moved to
                 the grid, as the notes are). Ours keeps the tempo map BESIDE its tokens, not in them (the
                 training shards keep the first tempo only; a line under the table says what that keeps);
                 performances: in seconds timing ours has no tempo, so it is not compared, though MidiTok's
                 tempo tokens move its notes in time (and count in onset ok).

Size: tokens per note (reference notes) and per second of music (to the last note's end). Speed: the
three MidiTok tokenizers and ours timed in the same run, interleaved, best of --repeats. Encode goes from
the file path to token ids, parsing included for both (ours: readers.read_file, which applies the pedal,
then Recipe.grid_notes and Vocabulary.encode_notes; MidiTok: symusic.Score, then tokenizer.encode).
Decode goes from token ids to notes in memory (ours: Vocabulary.decode and events_to_notes; MidiTok:
tokenizer.decode to a symusic Score), no MIDI written. Building vocabularies and tokenizers is not timed.
"""

import argparse
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts this file's folder first on sys.path, where this file would shadow the `tokenizers` package that
# MidiTok imports: the repository root takes its place.
sys.path = [str(ROOT)] + [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]

from musicgen import readers  # noqa: E402
from musicgen.encoding import count_chords, events_to_notes  # noqa: E402
from musicgen.encoding_choice import EncodingRequest, piece_traits  # noqa: E402
from musicgen.notes import DRUMS  # noqa: E402
from musicgen.recipe import SECONDS_TIMING_BPM, Recipe  # noqa: E402
from musicgen.vocabulary import Vocabulary  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real-midi"
FOLDERS = ("piano-performance", "pop-multitrack")
WHOLE_PIECE = Recipe(readers.TrackSelection(keep_drums=True), max_silence_quarters=96)  # no silence here is shortened
PAIRING_STEPS = 5  # a decoded note further than this many steps from every reference note of its pitch is added
VELOCITY_TOLERANCE = 2  # half a bin of 32
BPM_TOLERANCE = 1
MIDITOK_TOKENIZERS = ("REMI", "TSD", "MMM")
MIDITOK_COMMON = dict(pitch_range=(0, 127), drums_pitch_range=(0, 127), num_velocities=32, use_tempos=True,
                      tempo_range=(30, 250), use_time_signatures=True, use_sustain_pedals=True,
                      remove_duplicated_notes=True, one_token_stream_for_programs=True)
MIDITOK_PERFORMANCES = dict(beat_res={(0, 8): 64}, num_tempos=2201)
MIDITOK_SONGS = dict(beat_res={(0, 8): 4}, num_tempos=221)


class Notes(NamedTuple):
    start: np.ndarray  # seconds (performances) or quarter notes (songs)
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    program: np.ndarray  # DRUMS for drum-kit notes

    def take(self, index):
        return Notes(*(column[index] for column in self))


class Timing(NamedTuple):
    """How a folder's times are compared: onsets in seconds to within a step, or in quarter notes on the same step;
    ends to within a step."""

    in_seconds: bool
    step: float  # 0.01 s, or a sixteenth (0.25 quarter)

    def same_onset(self, a, b):
        if self.in_seconds:
            return self.within_a_step(a, b)
        return np.rint(a / self.step) == np.rint(b / self.step)

    def within_a_step(self, a, b):
        return np.abs(a - b) <= self.step + 1e-9


PERFORMANCE_TIMING = Timing(in_seconds=True, step=0.01)
SONG_TIMING = Timing(in_seconds=False, step=0.25)


def score_notes(score, timing, longest_key_quarters=None):
    """A symusic Score's notes with each track's sustain pedal applied, as Notes; with `longest_key_quarters`,
    each key is first held at most that long (MidiTok's clipping, before its pedal)."""
    tpq = score.ticks_per_quarter
    columns = []
    for track in score.tracks:
        notes = track.notes.numpy()
        if len(notes["time"]) == 0:
            continue
        starts = notes["time"].astype(np.int64)
        ends = starts + notes["duration"]
        if longest_key_quarters:
            ends = np.minimum(ends, starts + round(longest_key_quarters * tpq))
        pedals = track.pedals.numpy()
        if len(pedals["time"]):
            pedal_ends = pedals["time"] + pedals["duration"]
            ends = readers.sustained_ends(starts, ends, notes["pitch"], pedals["time"], pedal_ends)
        program = DRUMS if track.is_drum else track.program
        columns.append((starts, ends, notes["pitch"], notes["velocity"], np.full(len(starts), program)))
    starts, ends, pitches, velocities, programs = (np.concatenate(parts) for parts in zip(*columns))
    tempo_changes = score_tempo_changes(score)
    start, end = starts / tpq, ends / tpq
    if timing.in_seconds:
        start, end = (readers.quarters_to_seconds(quarters, tempo_changes) for quarters in (start, end))
    return Notes(start, end, pitches.astype(np.int64), velocities.astype(np.int64), programs.astype(np.int64))


def score_tempo_changes(score):
    return readers.tempo_map([(tempo.time / score.ticks_per_quarter, tempo.qpm) for tempo in score.tempos])


def heard(notes, timing):
    """What a listener hears: (every note, sorted by instrument, key and step, the longest then the loudest first,
    each ending where its key is struck again at a later step; the index of the first note of each of these groups).

    A key struck twice within one step of an instrument (two parts doubling it) is heard as one note; which of
    its lengths and velocities that note has is moot, so a decoded note may match any of them.
    """
    steps = np.rint(notes.start / timing.step)
    order = np.lexsort((-notes.velocity, notes.start - notes.end, steps, notes.pitch, notes.program))
    notes, steps = notes.take(order), steps[order]
    keys = notes.program * 128 + notes.pitch
    is_first = np.append(True, (keys[1:] != keys[:-1]) | (steps[1:] != steps[:-1]))
    firsts = np.flatnonzero(is_first)
    group_keys = keys[firsts]
    next_strike = np.append(np.where(group_keys[1:] == group_keys[:-1], notes.start[firsts[1:]], np.inf), np.inf)
    return notes._replace(end=np.minimum(notes.end, next_strike[np.cumsum(is_first) - 1])), firsts


def heard_once(notes, timing):
    """The notes a listener hears, one per group (see heard)."""
    notes, firsts = heard(notes, timing)
    return notes.take(firsts)


def pair_notes(reference, decoded, timing):
    """One-to-one (reference index, decoded index) pairs of the same pitch with onsets at most PAIRING_STEPS steps
    apart: the same instrument first, then the nearest onsets."""
    window = PAIRING_STEPS * timing.step
    span = max(reference.end.max(), decoded.end.max()) + 2 * window + 1  # no two pitches' keys within a window
    order = np.lexsort((decoded.start, decoded.pitch))
    keys = decoded.pitch[order] * span + decoded.start[order]
    reference_keys = reference.pitch * span + reference.start
    low = np.searchsorted(keys, reference_keys - window, "left")
    counts = np.searchsorted(keys, reference_keys + window, "right") - low
    reference_index = np.repeat(np.arange(len(reference_keys)), counts)
    decoded_index = order[np.repeat(low - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())]
    distance = np.abs(reference.start[reference_index] - decoded.start[decoded_index])
    other_program = reference.program[reference_index] != decoded.program[decoded_index]
    pairs, taken_reference, taken_decoded = [], set(), set()
    for candidate in np.lexsort((distance, other_program)).tolist():
        r, d = int(reference_index[candidate]), int(decoded_index[candidate])
        if r not in taken_reference and d not in taken_decoded:
            taken_reference.add(r)
            taken_decoded.add(d)
            pairs.append((r, d))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def tempo_at(tempo_changes, quarters, steps_per_quarter):
    """The bpm sounding at each position, tempo changes (quarter, bpm) moved to the grid as the notes are."""
    change_steps = np.rint(tempo_changes[:, 0] * steps_per_quarter)
    found = np.searchsorted(change_steps, np.rint(quarters * steps_per_quarter), side="right") - 1
    return tempo_changes[np.maximum(found, 0), 1]


def fidelity(reference, unclipped, decoded, timing):
    """Counts of what came back. `reference`: heard() of the notes the tokenizer can give back at best,
    `unclipped`: heard() of the file's notes, `decoded`: heard_once() of what the tokenizer gave back."""
    notes, firsts = reference
    pairs = pair_notes(notes.take(firsts), decoded, timing)
    partner = np.full(len(firsts), -1)
    partner[pairs[:, 0]] = pairs[:, 1]
    partner = np.repeat(partner, np.diff(np.append(firsts, len(notes.start))))  # for every note of each group
    found = decoded.take(np.maximum(partner, 0))

    def groups_with_a_match(matches):
        return int(np.logical_or.reduceat((partner >= 0) & matches, firsts).sum())

    def longest_in_group(ends):
        return np.maximum.reduceat(ends, firsts)

    return Counter(notes=len(firsts), lost=len(firsts) - len(pairs), added=len(decoded.start) - len(pairs),
                   onset_ok=groups_with_a_match(timing.same_onset(notes.start, found.start)),
                   end_ok=groups_with_a_match(timing.within_a_step(notes.end, found.end)),
                   velocity_ok=groups_with_a_match(np.abs(notes.velocity - found.velocity) <= VELOCITY_TOLERANCE),
                   program_ok=groups_with_a_match(notes.program == found.program),
                   clipped=int((longest_in_group(notes.end) < longest_in_group(unclipped[0].end) - 1e-9).sum()))


def tempo_fidelity(file_tempo_changes, decoded_tempo_changes, onsets, timing):
    """How many of the notes (`onsets`, in quarters) sound at the file's tempo, within BPM_TOLERANCE."""
    steps_per_quarter = round(1 / timing.step)
    wanted = tempo_at(file_tempo_changes, onsets, steps_per_quarter)
    return int((np.abs(tempo_at(decoded_tempo_changes, onsets, steps_per_quarter) - wanted) < BPM_TOLERANCE).sum())


class Ours:
    """Our encoding as preprocess.py would choose it for the folder, with a vocabulary from all its files."""

    def __init__(self, paths, max_chords):
        self.name = f"ours, {max_chords} chord tokens" if max_chords else "ours"
        pieces = {path: readers.read_file(path, WHOLE_PIECE.selection)[0] for path in paths}
        self.settings = EncodingRequest().settings([piece_traits(piece) for piece in pieces.values()])
        self.grids = {path: WHOLE_PIECE.grid_notes(piece, self.settings) for path, piece in pieces.items()}
        chords = sum((count_chords(grid.notes, self.settings) for grid in self.grids.values()), Counter())
        self.vocabulary = Vocabulary.build(self.settings, chords, max_chords)
        self.first_steps = {path: self.first_step(piece) for path, piece in pieces.items()}
        self.timing = PERFORMANCE_TIMING if self.settings.timing == "seconds" else SONG_TIMING

    def first_step(self, piece):
        """The grid step Recipe.grid_notes moved the piece's first onset from (to 0)."""
        onsets = piece.onsets
        if self.settings.timing == "seconds":
            onsets = piece.seconds(onsets) * SECONDS_TIMING_BPM / 60
        return np.rint(onsets.min() * self.settings.steps_per_quarter)

    def quarters(self, steps, path):
        """Grid steps of a decoded piece -> quarter notes of the file (in seconds timing, of 120 bpm)."""
        return (steps + self.first_steps[path]) / self.settings.steps_per_quarter

    def encode(self, path):
        piece = readers.read_file(path, WHOLE_PIECE.selection)[0]
        return self.vocabulary.encode_notes(WHOLE_PIECE.grid_notes(piece, self.settings).notes)[0]

    def decode(self, ids):
        return events_to_notes(self.vocabulary.decode(ids))

    def decoded_notes(self, decoded, path):
        start = self.quarters(decoded[:, 0], path)
        end = self.quarters(decoded[:, 0] + decoded[:, 1], path)
        if self.timing.in_seconds:
            start, end = start * 60 / SECONDS_TIMING_BPM, end * 60 / SECONDS_TIMING_BPM
        return Notes(start, end, decoded[:, 2], decoded[:, 3], decoded[:, 4])

    def decoded_tempo_changes(self, decoded, path):
        """The tempo map as written beside the tokens (Recipe.grid_notes' tempo changes), in the file's quarters."""
        tempo_changes = self.grids[path].tempo_changes
        return np.column_stack([self.quarters(tempo_changes[:, 0], path), tempo_changes[:, 1]])

    def best_notes(self, score):
        """The file's notes as heard, each at most as long as our longest duration (longer ones are clipped)."""
        longest = self.settings.max_duration_quarters * (60 / SECONDS_TIMING_BPM if self.timing.in_seconds else 1)
        notes = score_notes(score, self.timing)
        return notes._replace(end=np.minimum(notes.end, notes.start + longest))

    def vocabulary_size(self):
        return len(self.vocabulary)


class MidiTok:
    """One of MidiTok's tokenizers, configured (see the module docstring) to keep what ours keeps."""

    def __init__(self, name, ours):
        import miditok

        self.name = f"MidiTok {name}"
        self.timing = ours.timing
        per_folder = MIDITOK_PERFORMANCES if ours.timing.in_seconds else MIDITOK_SONGS
        extra = {"base_tokenizer": "TSD"} if name == "MMM" else {}
        config = miditok.TokenizerConfig(**MIDITOK_COMMON, **per_folder, use_programs=ours.settings.instruments,
                                         **extra)
        self.tokenizer = getattr(miditok, name)(config)
        self.longest_key_quarters = max(end for _, end in per_folder["beat_res"])  # beats; these files are in x/4

    def encode(self, path):
        import symusic

        tokens = self.tokenizer.encode(symusic.Score(str(path)))
        return tokens.ids if not isinstance(tokens, list) else [sequence.ids for sequence in tokens]

    def decode(self, ids):
        return self.tokenizer.decode(ids)

    def decoded_notes(self, decoded, path):
        return score_notes(decoded, self.timing)

    def decoded_tempo_changes(self, decoded, path):
        return score_tempo_changes(decoded)

    def best_notes(self, score):
        """The file's notes as heard when each key is held at most MidiTok's longest duration (longer ones are
        clipped), then the pedal applies."""
        return score_notes(score, self.timing, self.longest_key_quarters)

    def vocabulary_size(self):
        return len(self.tokenizer)


def token_count(ids):
    return sum(map(len, ids)) if isinstance(ids[0], list) else len(ids)


def time_tokenizers(tokenizers, paths, repeats):
    """({name: best encode seconds}, {name: best decode seconds}, {name: {path: ids}}), interleaved."""
    encode_seconds, decode_seconds, tokens = {}, {}, {}
    for _ in range(repeats):
        for tokenizer in tokenizers:
            started = time.perf_counter()
            ids = {path: tokenizer.encode(path) for path in paths}
            encoded = time.perf_counter()
            for path in paths:
                tokenizer.decode(ids[path])
            decoded = time.perf_counter()
            name = tokenizer.name
            encode_seconds[name] = min(encode_seconds.get(name, np.inf), encoded - started)
            decode_seconds[name] = min(decode_seconds.get(name, np.inf), decoded - encoded)
            tokens[name] = ids
    return encode_seconds, decode_seconds, tokens


def measure_folder(folder, repeats, chord_token_counts):
    """(number of MIDI files in `folder`, a table row (dict) per tokenizer)."""
    import symusic

    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in readers.MIDI_SUFFIXES)
    ours, *others = [Ours(paths, max_chords) for max_chords in chord_token_counts]
    tokenizers = [ours, *others] + [MidiTok(name, ours) for name in MIDITOK_TOKENIZERS]
    encode_seconds, decode_seconds, tokens = time_tokenizers(tokenizers, paths, repeats)
    timing = ours.timing
    scores = {path: symusic.Score(str(path)) for path in paths}
    unclipped = {path: heard(score_notes(score, timing), timing) for path, score in scores.items()}
    music_seconds = sum(score_notes(score, PERFORMANCE_TIMING).end.max() for score in scores.values())
    rows = []
    for tokenizer in tokenizers:
        counts = Counter()
        for path, score in scores.items():
            ids = tokens[tokenizer.name][path]
            decoded = tokenizer.decode(ids)
            reference = heard(tokenizer.best_notes(score), timing)
            decoded_heard = heard_once(tokenizer.decoded_notes(decoded, path), timing)
            counts.update(fidelity(reference, unclipped[path], decoded_heard, timing))
            counts["tokens"] += token_count(ids)
            if not timing.in_seconds:
                onsets = reference[0].start[reference[1]]
                written = tokenizer.decoded_tempo_changes(decoded, path)
                counts["tempo_ok"] += tempo_fidelity(score_tempo_changes(score), written, onsets, timing)
                if tokenizer is ours:  # as the training shards keep it: one tempo per piece
                    counts["one_tempo_ok"] += tempo_fidelity(score_tempo_changes(score), written[:1], onsets, timing)
        notes = counts["notes"]
        rows.append(dict(counts, tokenizer=tokenizer.name, vocabulary=tokenizer.vocabulary_size(),
                         seconds=music_seconds, encode_rate=notes / encode_seconds[tokenizer.name],
                         decode_rate=notes / decode_seconds[tokenizer.name]))
    return len(paths), rows


def share(count, total):
    """A percentage with two decimals that reads 100% only when nothing is missing."""
    return "100%" if count == total else f"{min(100 * count / total, 99.99):.2f}%"


COLUMNS = ("music", "tokenizer", "vocabulary", "onset ok", "end ok", "clipped", "velocity ok", "program ok", "tempo ok",
           "lost", "added", "tokens/note", "tokens/s", "encode notes/s", "decode notes/s", "encode x ours",
           "decode x ours")


def markdown_table(results):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for folder, (files, rows) in results.items():
        ours = rows[0]
        music = f"{folder} ({files} files, {ours['notes']:,} notes, {ours['seconds'] / 60:.0f} min)"
        for row in rows:
            notes = row["notes"]
            tempo = share(row["tempo_ok"], notes) if "tempo_ok" in row else "-"
            lines.append(
                f"| {music} | {row['tokenizer']} | {row['vocabulary']:,} | {share(row['onset_ok'], notes)} "
                f"| {share(row['end_ok'], notes)} | {share(row['clipped'], notes)} "
                f"| {share(row['velocity_ok'], notes)} | {share(row['program_ok'], notes)} | {tempo} "
                f"| {row['lost']} | {row['added']} "
                f"| {row['tokens'] / notes:.2f} | {row['tokens'] / row['seconds']:.1f} | {row['encode_rate']:,.0f} "
                f"| {row['decode_rate']:,.0f} | {row['encode_rate'] / ours['encode_rate']:.2f} "
                f"| {row['decode_rate'] / ours['decode_rate']:.2f} |")
            music = ""
    return "\n".join(lines)


def tempo_notes(results):
    """A line per folder where tempos were compared: what ours' tempo column owes to the map beside its tokens."""
    return [f"{folder}: ours' tempo map is written beside its tokens, not in them; with one tempo per piece (the "
            f"first), as the training shards keep it, {share(rows[0]['one_tempo_ok'], rows[0]['notes'])} of the "
            "notes keep their tempo."
            for folder, (_, rows) in results.items() if "tempo_ok" in rows[0]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder holding {' and '.join(FOLDERS)} (default: ../shared/data/real-midi)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of each tokenizer, interleaved; the fastest counts (default: 5)")
    parser.add_argument("--chord-tokens", type=int, default=1024,
                        help="ours is measured as preprocess.py writes it by default (every chord note by note) "
                             "and with this many chord tokens, as --max-chords N (default: 1024)")
    parser.add_argument("--output", type=Path, metavar="FILE.md", help="also write the table to this file")
    args = parser.parse_args()
    missing = [name for name in FOLDERS if not (args.data / name).is_dir()]
    if missing:
        sys.exit(f"error: {' and '.join(missing)} not found in {args.data} (the shared real MIDI files)")
    try:
        import miditok  # noqa: F401 - imported before any timing
    except ModuleNotFoundError:
        sys.exit("error: MidiTok is not installed: pip install -r benchmarks/requirements.txt")
    started = time.perf_counter()
    results = {name: measure_folder(args.data / name, args.repeats, (0, args.chord_tokens)) for name in FOLDERS}
    report = "\n".join([markdown_table(results), "", *tempo_notes(results),
                        f"miditok {version('miditok')}, symusic {version('symusic')}; speeds: best of {args.repeats} "
                        f"interleaved runs; {time.perf_counter() - started:.0f} s in all."])
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")


if __name__ == "__main__":
    main()
