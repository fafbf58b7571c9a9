"""Reading music files into notes measured in quarter notes.

MIDI is read with symusic (a C++ parser, over 100x faster than pretty_midi on
the Nottingham files), falling back to pretty_midi for files symusic refuses.
Both give times in ticks, which divided by ticks-per-quarter put every note on
the file's own beat grid, whatever its tempo map. MusicXML, Humdrum and ABC are
read with music21; an ABC file is split into its tunes first, and each tune is
parsed on its own so a malformed tune loses nothing but itself.
"""

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from musicgen.chords import parse_symbol
from musicgen.meters import DEFAULT_METER, meter_map, meter_name, parse_meter
from musicgen.midi import BPM_RANGE
from musicgen.notes import DRUMS

MIDI_SUFFIXES = (".mid", ".midi")
NOTATION_SUFFIXES = (".xml", ".mxl", ".musicxml", ".krn")
ABC_SUFFIXES = (".abc",)
SUPPORTED_SUFFIXES = MIDI_SUFFIXES + NOTATION_SUFFIXES + ABC_SUFFIXES
DEFAULT_TEMPO_BPM = 120.0


@dataclasses.dataclass(frozen=True)
class TrackSelection:
    """Which MIDI tracks contribute notes, and how. Notation formats have no programs or pedal; drums apply to both."""

    keep_drums: bool = False
    programs: frozenset = None  # General MIDI program numbers 0..127; None keeps all
    sustain_pedal: bool = True  # notes held by the sustain pedal (CC 64) last as long as a listener hears them


@dataclasses.dataclass
class RawPiece:
    """One piece as read: notes in quarter notes, before quantization."""

    source: str
    onsets: np.ndarray  # quarter notes from the start, float
    durations: np.ndarray  # quarter notes, float
    pitches: np.ndarray  # MIDI pitch numbers
    tempo_bpm: float  # the first tempo
    time_signature: str  # the first time signature
    velocities: np.ndarray = None  # MIDI velocities 1..127; None: the piece has none (a score)
    programs: np.ndarray = None  # General MIDI program of each note, encoding.DRUMS for drum-kit notes
    tempo_changes: np.ndarray = None  # (k, 2) float: (quarter note, bpm) of each tempo, the first at 0
    chord_onsets: np.ndarray = None  # quarter notes at which the score names a chord symbol, float
    chord_codes: np.ndarray = None  # the code of each of those symbols (musicgen/chords.py), int
    # (k, 3) float: (quarter note of a bar line, numerator, denominator) of each meter, as meters.meter_map makes
    # them; the first may stand before 0, where the bar an upbeat leads into would have begun
    meter_changes: np.ndarray = None

    def __post_init__(self):
        count = len(self.pitches)
        if self.programs is None:
            self.programs = np.zeros(count, dtype=np.int64)
        if self.tempo_changes is None:
            self.tempo_changes = np.array([[0.0, self.tempo_bpm]])
        if self.chord_onsets is None:
            self.chord_onsets, self.chord_codes = np.zeros(0), np.zeros(0, np.int64)
        if self.meter_changes is None:
            self.meter_changes = meter_map([(0.0, *_meter_or_default(self.time_signature))])

    def seconds(self, quarters):
        """Quarter-note positions -> seconds from the start, through the tempo map."""
        return quarters_to_seconds(quarters, self.tempo_changes)


def quarters_to_seconds(quarters, tempo_changes):
    """Quarter-note positions -> seconds, where tempo_changes[i] = (quarter it starts at, bpm), sorted, first at 0."""
    starts, bpms = tempo_changes[:, 0], tempo_changes[:, 1]
    seconds_at_start = np.concatenate([[0.0], np.cumsum(np.diff(starts) * 60.0 / bpms[:-1])])
    segment = np.maximum(np.searchsorted(starts, quarters, side="right") - 1, 0)
    return seconds_at_start[segment] + (np.asarray(quarters) - starts[segment]) * 60.0 / bpms[segment]


@dataclasses.dataclass
class ReadFailure:
    source: str
    status: str  # "skipped" (nothing to learn from) or "failed" (could not be read)
    reason: str


def find_music_files(folder, exclude=()):
    """Supported files under `folder`, sorted; plus the number of other files passed over.

    Symbolic links to folders are not followed, so a link pointing back up the
    tree cannot make the walk endless; hidden folders and `exclude` are skipped.
    """
    folder = Path(folder)
    if folder.is_file():
        return ([folder], 0) if folder.suffix.lower() in SUPPORTED_SUFFIXES else ([], 1)
    excluded = {Path(p).resolve() for p in exclude}
    found, ignored = [], 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() not in excluded)
        for name in sorted(files):
            if name.lower().endswith(SUPPORTED_SUFFIXES):
                found.append(Path(root) / name)
            elif not name.startswith("."):
                ignored += 1
    return found, ignored


def read_file(path, selection):
    """Read one file -> list of RawPiece or ReadFailure (ABC files may hold many tunes)."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix in MIDI_SUFFIXES:
            return [read_midi(path, selection)]
        path = Path(path)
        if suffix in ABC_SUFFIXES:
            return read_abc_file(path)
        return [read_notation(path, str(path), source_format=None)]
    except OSError as error:
        return [ReadFailure(str(path), "failed", f"cannot read file: {error.strerror or error}")]


def read_midi(path, selection):
    import symusic

    source = str(path)
    try:
        score = symusic.Score(source)
        tracks = [(t.program, t.is_drum, _held_notes(t.notes.numpy(), _symusic_pedals(t), selection))
                  for t in score.tracks]
        ticks_per_quarter = score.tpq
        tempos = [(tempo.time, tempo.qpm) for tempo in score.tempos]
        signatures = [(signature.time, signature.numerator, signature.denominator)
                      for signature in score.time_signatures]
    except Exception as symusic_error:  # noqa: BLE001 - any parser failure means: try the other reader
        try:
            tracks, ticks_per_quarter, tempos, signatures = _read_midi_with_pretty_midi(source, selection)
        except Exception:  # noqa: BLE001
            return ReadFailure(source, "failed", _explain_midi_error(path, symusic_error))
    if ticks_per_quarter <= 0:
        return ReadFailure(source, "failed", "MIDI file has no ticks-per-quarter (SMPTE timing is not supported)")
    chosen = [(notes["time"], notes["duration"], notes["pitch"], notes["velocity"],
               np.full(len(notes["time"]), DRUMS if is_drum else program))
              for program, is_drum, notes in tracks
              if (selection.keep_drums or not is_drum) and (selection.programs is None or is_drum or program in selection.programs)]
    chosen = [columns for columns in chosen if len(columns[0])]
    if not chosen:
        all_notes = sum(len(notes["time"]) for _, _, notes in tracks)
        drum_notes = sum(len(notes["time"]) for _, is_drum, notes in tracks if is_drum)
        if all_notes == 0:
            reason = "no notes"
        elif drum_notes == all_notes:
            reason = "only drum notes (use --keep-drums to keep them)"
        else:
            reason = "no notes in the selected programs"
        return ReadFailure(source, "skipped", reason)
    times, durations, pitches, velocities, programs = (np.concatenate(parts) for parts in zip(*chosen))
    tempo_changes = tempo_map([(tick / ticks_per_quarter, bpm) for tick, bpm in tempos])
    meter_changes = meter_map([(tick / ticks_per_quarter, numerator, denominator)
                               for tick, numerator, denominator in signatures])
    return RawPiece(
        source=source,
        onsets=times / ticks_per_quarter,
        durations=durations / ticks_per_quarter,
        pitches=pitches.astype(np.int64),
        tempo_bpm=float(tempo_changes[0, 1]),
        time_signature=_first_meter(meter_changes),
        velocities=velocities.astype(np.int64),
        programs=programs.astype(np.int64),
        tempo_changes=tempo_changes,
        meter_changes=meter_changes,
    )


def tempo_map(changes):
    """[(quarter, bpm)] as a file states them -> (k, 2) array: sorted, tempos outside BPM_RANGE dropped, one per
    position (the last stated), repeats of the tempo before merged, and the first at 0 (120 bpm until a file's
    first tempo, as MIDI has it)."""
    rows = []
    for quarter, bpm in sorted(((float(q), float(b)) for q, b in changes if BPM_RANGE[0] <= b <= BPM_RANGE[1]),
                               key=lambda change: change[0]):
        if rows and rows[-1][0] == quarter:
            rows.pop()
        if not rows or rows[-1][1] != bpm:
            rows.append((quarter, bpm))
    if not rows or rows[0][0] > 0:
        rows.insert(0, (0.0, DEFAULT_TEMPO_BPM))
    return np.array(rows, dtype=np.float64)


def _read_midi_with_pretty_midi(source, selection):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(source)
    tracks = []
    for instrument in midi.instruments:
        starts = np.array([midi.time_to_tick(n.start) for n in instrument.notes], dtype=np.int64)
        ends = np.array([midi.time_to_tick(n.end) for n in instrument.notes], dtype=np.int64)
        pitches = np.array([n.pitch for n in instrument.notes], dtype=np.int64)
        velocities = np.array([n.velocity for n in instrument.notes], dtype=np.int64)
        pedal = [(midi.time_to_tick(c.time), c.value >= SUSTAIN_DOWN_VALUE)
                 for c in instrument.control_changes if c.number == SUSTAIN_CONTROLLER]
        notes = {"time": starts, "duration": ends - starts, "pitch": pitches, "velocity": velocities}
        tracks.append((instrument.program, instrument.is_drum, _held_notes(notes, pedal_intervals(pedal), selection)))
    times, bpms = midi.get_tempo_changes()
    tempos = [(midi.time_to_tick(time), bpm) for time, bpm in zip(times, bpms)]
    signatures = [(midi.time_to_tick(signature.time), signature.numerator, signature.denominator)
                  for signature in midi.time_signature_changes]
    return tracks, midi.resolution, tempos, signatures


SUSTAIN_CONTROLLER = 64
SUSTAIN_DOWN_VALUE = 64  # as the General MIDI spec and symusic read it: 0-63 up, 64-127 down


def _symusic_pedals(track):
    """(starts, ends) in ticks of a symusic track's sustain-pedal presses."""
    pedals = track.pedals.numpy()
    return pedals["time"].astype(np.int64), (pedals["time"] + pedals["duration"]).astype(np.int64)


def pedal_intervals(changes):
    """[(tick, pedal down?)] in file order -> (starts, ends) of the presses; a press still down at the end is dropped."""
    starts, ends, down_since = [], [], None
    for tick, down in sorted(changes, key=lambda change: change[0]):
        if down and down_since is None:
            down_since = tick
        elif not down and down_since is not None:
            starts.append(down_since)
            ends.append(tick)
            down_since = None
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def _held_notes(notes, pedals, selection):
    """A track's notes ({time, duration, pitch} in ticks), with the pedal applied when the selection asks for it."""
    if not selection.sustain_pedal or len(pedals[0]) == 0 or len(notes["time"]) == 0:
        return notes
    starts = np.asarray(notes["time"], dtype=np.int64)
    ends = sustained_ends(starts, starts + np.asarray(notes["duration"], dtype=np.int64), notes["pitch"], *pedals)
    return {"time": starts, "duration": ends - starts, "pitch": np.asarray(notes["pitch"]),
            "velocity": np.asarray(notes["velocity"])}


def sustained_ends(starts, ends, pitches, pedal_starts, pedal_ends):
    """Note ends as a listener hears them: a key released while the pedal is down sounds until the pedal comes up,
    or until the same key is struck again, whichever is first. A note never gets shorter than it was played.

    This is why MAESTRO and other performance MIDI need it: pianists hold notes with the pedal, not the keys, so
    the key releases alone make legato passages staccato. Baked into the note lengths (rather than kept as pedal
    events) so every model and every output format gets it with no new token kinds.
    """
    starts, ends, pitches = (np.asarray(column, dtype=np.int64) for column in (starts, ends, pitches))
    order = np.argsort(pedal_starts, kind="stable")
    pedal_starts, pedal_ends = np.asarray(pedal_starts)[order], np.asarray(pedal_ends)[order]
    press = np.searchsorted(pedal_starts, ends, side="right") - 1  # the last press begun by each key release
    release = pedal_ends[np.maximum(press, 0)]
    sustained = np.where((press >= 0) & (ends < release), release, ends)
    # The next strike of the same key: sort by (pitch, start) and look one row ahead.
    by_key = np.lexsort((starts, pitches))
    next_strike = np.full(len(starts), np.iinfo(np.int64).max)
    same_key = pitches[by_key][1:] == pitches[by_key][:-1]
    next_strike[by_key[:-1][same_key]] = starts[by_key][1:][same_key]
    return np.maximum(ends, np.minimum(sustained, next_strike))


_MIDI_ERRORS = [  # what the parsers say -> what a person understands
    ("File size is less than", "too short to be a MIDI file"),
    ("header is not MThd", "not a MIDI file (no MThd header)"),
    ("Division type is not ticks per quarter", "SMPTE time division (frames per second) is not supported"),
    ("Invalid chunk length", "truncated or damaged MIDI file (a chunk is longer than the file)"),
    ("iostream error", "truncated or damaged MIDI file"),
]


def _explain_midi_error(path, error):
    if Path(path).stat().st_size == 0:
        return "empty file (0 bytes)"
    message = _first_line(error)
    for fragment, explanation in _MIDI_ERRORS:
        if fragment in message:
            return explanation
    return f"not a readable MIDI file ({message.removeprefix('MiniMidi: ')})"


def split_abc_tunes(text):
    """ABC text -> [(tune label, tune text)]. Lines before the first X: are a shared file header."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\s*X:", line)]
    if not starts:
        return [("tune 1", text)] if text.strip() else []
    # The file header's fields hold for every tune; its remarks (r:) and macros (m:) are left out, since music21
    # reads those lines as notes and would refuse every tune.
    header = [line for line in lines[: starts[0]] if re.match(r"^[A-Z]:", line)]
    tunes = []
    for number, (begin, end) in enumerate(zip(starts, starts[1:] + [len(lines)]), start=1):
        body = lines[begin:end]
        title = next((line[2:].strip() for line in body if line.startswith("T:")), "")
        label = f"{body[0].strip()} {title}".strip() if title else body[0].strip()
        tunes.append((label or f"tune {number}", "\n".join(header + body) + "\n"))
    return tunes


def read_abc_file(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    tunes = split_abc_tunes(text)
    if not tunes:
        return [ReadFailure(str(path), "skipped", "no ABC tunes in file")]
    return [read_notation(tune_text, f"{path}#{label}", source_format="abc") for label, tune_text in tunes]


def read_notation(data, source, source_format):
    """Parse a notation file (or ABC tune text) with music21 into a RawPiece."""
    import music21

    try:
        score = music21.converter.parse(data, format=source_format)
        rows = [row for part in (score.parts or [score]) for row in _join_ties(part.flatten().notes)]
    except Exception as error:  # noqa: BLE001 - music21 raises many types for bad input
        return ReadFailure(source, "failed", f"music21 could not parse it ({_first_line(error)})")
    if not rows:
        return ReadFailure(source, "skipped", "no notes")
    onsets, durations, pitches = (np.array(column) for column in zip(*rows))
    marks = list(score.recurse().getElementsByClass("MetronomeMark"))
    tempo = marks[0].getQuarterBPM() if marks else None
    meter_changes = meter_map(_meters_of(score))
    return RawPiece(
        source=source,
        onsets=onsets,
        durations=durations,
        pitches=pitches.astype(np.int64),
        tempo_bpm=_sane_tempo(tempo),
        time_signature=_first_meter(meter_changes),
        meter_changes=meter_changes,
        **_chord_symbols(score),
    )


def _meters_of(score):
    """[(quarter note of a bar line, numerator, denominator)] of each time signature in the score's first part, at
    the start of its bar. A first bar with an upbeat (music21's paddingLeft, or simply shorter than its meter's
    bar) names its meter at the bar line it leads to, less a bar."""
    part = score.parts[0] if score.parts else score
    changes = []
    for index, measure in enumerate(part.getElementsByClass("Measure")):
        signature = measure.timeSignature
        if signature is None:
            continue
        start = float(measure.offset)
        if index == 0:
            bar, filled = float(signature.barDuration.quarterLength), float(measure.duration.quarterLength)
            start -= float(measure.paddingLeft) or (bar - filled if 0 < filled < bar else 0.0)
        changes.append((start, signature.numerator, signature.denominator))
    if not changes:  # a score without measures
        changes = [(float(signature.getOffsetInHierarchy(part)), signature.numerator, signature.denominator)
                   for signature in part.recurse().getElementsByClass("TimeSignature")]
    return changes


def _first_meter(meter_changes):
    """The manifest's time signature: the meter at the piece's start, '3/4'."""
    sounding = max(int(np.searchsorted(meter_changes[:, 0], 0.0, side="right")) - 1, 0)
    return meter_name(*(int(value) for value in meter_changes[sounding, 1:]))


def _meter_or_default(time_signature):
    try:
        return parse_meter(time_signature)
    except ValueError:
        return DEFAULT_METER


def _chord_symbols(score):
    """{chord_onsets, chord_codes} of the chord symbols a score names (ABC's "G", MusicXML's harmony), in time
    order; a symbol musicgen.chords cannot read is passed over."""
    found = []
    for symbol in score.flatten().getElementsByClass("ChordSymbol"):
        try:
            found.append((float(symbol.offset), parse_symbol(symbol.figure)))
        except (ValueError, AttributeError):
            continue
    found.sort()
    return {"chord_onsets": np.array([onset for onset, _ in found], dtype=np.float64),
            "chord_codes": np.array([code for _, code in found], dtype=np.int64)}


def _join_ties(elements):
    """(onset, duration, MIDI pitch) in quarter notes, tied segments joined into one note.

    Ties are paired by pitch, not by voice: music21's own stripTies() pairs them
    by voice number, which MusicXML writers renumber from bar to bar, so a note
    held over a bar line in the lower voice would be cut or joined to another.
    `elements`: a part's notes and chords, flattened (in time order).
    """
    rows, held = [], {}  # held: pitch -> [onset, end] of a note whose tie goes on
    for element in elements:
        if element.quarterLength <= 0 or "Unpitched" in element.classes or "PercussionChord" in element.classes:
            continue  # grace notes and unpitched percussion
        onset, end = float(element.offset), float(element.offset + element.quarterLength)
        components = element.notes if element.isChord else (element,)
        for component in components:
            pitch = component.pitch.midi
            tie = component.tie.type if component.tie else None
            previous = held.pop(pitch, None)
            if previous and tie in ("stop", "continue") and abs(previous[1] - onset) < 1e-6:
                previous[1] = end
            else:
                if previous:
                    rows.append((previous[0], previous[1] - previous[0], pitch))
                previous = [onset, end]
            if tie in ("start", "continue"):
                held[pitch] = previous
            else:
                rows.append((previous[0], previous[1] - previous[0], pitch))
    rows.extend((onset, end - onset, pitch) for pitch, (onset, end) in held.items())
    return rows


def music21_corpus_files(name):
    """Files of a music21 bundled corpus (e.g. 'bach', 'essenFolksong', 'ryansMammoth') that we can read."""
    from music21 import corpus

    paths = [Path(p) for p in corpus.getComposer(name)]
    return sorted(p for p in paths if p.suffix.lower() in SUPPORTED_SUFFIXES)


def _sane_tempo(bpm):
    return float(bpm) if bpm and BPM_RANGE[0] <= bpm <= BPM_RANGE[1] else DEFAULT_TEMPO_BPM


def _first_line(error):
    text = str(error).strip().splitlines()
    message = text[0] if text else type(error).__name__
    return message[:200]
