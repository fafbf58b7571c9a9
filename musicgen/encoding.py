"""Note-and-chord event encoding: notes on a beat grid <-> integer token sequences.

A piece becomes a list of events. Each event is the set of pitches that start
together with the same duration (one note, a chord, or a rest), its duration,
and the time to the next event's onset. Every event is three tokens:

    <what> dur:<steps> shift:<steps>      e.g.  C4.E4.G4 dur:8 shift:8

so durations, rests (a shift longer than the duration, or an explicit `R`
event) and overlaps (a shift shorter than the duration, 0 for simultaneous
events) all survive. Times are in grid steps (`steps_per_quarter` per quarter
note). A piece is wrapped in <start> ... <end>.

Richer music adds tokens before the notes of an event, only where the settings
ask for them, so score corpora stay as compact as before:

    inst:33 vel:82 C2 dur:4 shift:0      the bass (GM program 33), mezzo-forte

- `instruments`: each note event names its General MIDI program (`inst:drums`
  for the drum kit, whose pitches are drum sounds); events of one onset come
  ordered by program, so the encoding stays deterministic.
- `velocity_bins`: each note event carries its loudness, one of that many
  equal bins of MIDI velocity 1..127, decoded to the bin's middle.
- `timing="seconds"`: times count in fixed steps of real time instead of beats
  (a "quarter" is then half a second, the quarter of 120 bpm; 50 steps per
  quarter are 10 ms steps), for performances whose notes do not sit on a grid.

The vocabulary stays compact: 128 single-note tokens, the most common chords of
the training split, and one token per duration and per shift value. A chord
outside the vocabulary is written as its notes, one event each with shift 0, so
encoding is lossless either way (up to durations clipped at the maximum).

A corpus with labels (musicgen/labels.py) adds one control token per label,
`name=value`, right after <start>, in the vocabulary's order:

    <start> density=high key=D minor C4 dur:4 shift:4 ...

Controls are never generated: they come from the user (generate.py --condition).

A corpus with chord symbols (ABC's "G" "D7", or inferred from MIDI: see
musicgen/chords.py) has one more kind of event, a symbol with how long it holds,
first of the events at its onset:

    harmony:D7 dur:8 shift:0 A4 dur:2 shift:2 ...

A vocabulary made for infilling (preprocess.py --infilling) has two markers
more, for the fill-in-the-middle training of language models (Bavarian et al.
2022), in its suffix-first order: a passage is trained, and asked for, as

    <start> [controls] <hole> gap after <fill> before middle

so a model that only reads left to right writes the middle knowing what follows
it, and yet as a continuation of what comes before it, which is what it does
best. `gap` is the middle's length in shift tokens (gap_tokens): unlike a text,
music must fill a gap of a given length for `after` to fall in place. (The
order before <hole> after <fill> middle, tried first, left the middle worse
predicted than with no `after` at all; README, "Infilling".)
"""

import copy
import dataclasses
import difflib
import hashlib
import json
import re
from collections import Counter
from typing import NamedTuple

import numpy as np

from musicgen.chords import parse_symbol, symbol_name
from musicgen.errors import UserError

PITCH_CLASS_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_PITCH_PATTERN = re.compile(r"^([A-Ga-g])([#b]{0,2})(-?\d+)$")
_LETTER_TO_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

PAD, START, END, REST = "<pad>", "<start>", "<end>", "R"
SPECIAL_TOKENS = [PAD, START, END, REST]
HOLE, FILL = "<hole>", "<fill>"  # the infilling markers (see the module docstring)

# Token kinds, and which kinds may follow which (the event grammar).
KINDS = ["pad", "start", "end", "rest", "note", "chord", "duration", "shift", "instrument", "velocity", "control",
         "hole", "fill", "harmony"]
_EVENT_KINDS = ("rest", "note", "chord")
_PITCHED_KINDS = ("note", "chord")

# Notes are int arrays of shape (n, 5) with these columns; onset and duration in grid steps.
ONSET, DURATION, PITCH, VELOCITY, PROGRAM = range(5)
NOTE_COLUMNS = 5
DEFAULT_VELOCITY = 80  # for notes that have none (scores), and what a model without velocities plays at
DRUMS = 128  # the PROGRAM of drum-kit notes (MIDI channel 10), apart from the 128 General MIDI programs
INSTRUMENT_PREFIX, VELOCITY_PREFIX, HARMONY_PREFIX = "inst:", "vel:", "harmony:"
CONTROL_SEPARATOR = "="  # control tokens are label=value; no other token holds "="


def control_token(name, value):
    return f"{name}{CONTROL_SEPARATOR}{value}"


def pitch_name(pitch):
    """MIDI pitch number -> scientific name with octave (60 -> 'C4')."""
    return f"{PITCH_CLASS_NAMES[pitch % 12]}{pitch // 12 - 1}"


def parse_pitch(name):
    """'C4', 'F#3', 'Bb2', 'c#5' -> MIDI pitch number; ValueError if not a pitch in 0..127."""
    match = _PITCH_PATTERN.match(name)
    if not match:
        raise ValueError(f"not a note name: {name!r}")
    letter, accidentals, octave = match.groups()
    pitch = (int(octave) + 1) * 12 + _LETTER_TO_PITCH_CLASS[letter.upper()]
    pitch += accidentals.count("#") - accidentals.count("b")
    if not 0 <= pitch <= 127:
        raise ValueError(f"{name!r} is outside the MIDI range C-1..G9")
    return pitch


def chord_name(pitches):
    return ".".join(pitch_name(p) for p in sorted(pitches))


def harmony_token(code):
    """A chord symbol's code (musicgen/chords.py) -> its token, e.g. 'harmony:D7'."""
    return f"{HARMONY_PREFIX}{symbol_name(code)}"


def instrument_token(program):
    return f"{INSTRUMENT_PREFIX}{'drums' if program == DRUMS else program}"


def as_notes(notes):
    """Notes as an (n, 5) int array; (n, 3) arrays of (onset, duration, pitch) get velocity 80 and program 0."""
    notes = np.asarray(notes, dtype=np.int64)
    if notes.size == 0:
        return notes.reshape(0, NOTE_COLUMNS)
    if notes.ndim != 2 or notes.shape[1] not in (3, NOTE_COLUMNS):
        raise ValueError(f"notes must have 3 or {NOTE_COLUMNS} columns, got shape {notes.shape}")
    if notes.shape[1] == 3:
        notes = np.column_stack([notes, np.full(len(notes), DEFAULT_VELOCITY), np.zeros(len(notes), np.int64)])
    return notes


def velocity_bin(velocities, bins):
    """MIDI velocities 1..127 -> their bin 0..bins-1 of `bins` equal bins."""
    return np.minimum((np.clip(np.asarray(velocities), 1, 127) - 1) * bins // 127, bins - 1)


def bin_velocity(bins_, bins):
    """A velocity bin -> the MIDI velocity at its middle (rounded), so decoding is off by at most half a bin, rounded up."""
    return np.rint(1 + (np.asarray(bins_) + 0.5) * 127 / bins).astype(np.int64)


TIMINGS = ("beats", "seconds")


@dataclasses.dataclass(frozen=True)
class EncodingSettings:
    steps_per_quarter: int = 4
    max_duration_quarters: int = 8  # longer notes are clipped (and counted in the report)
    max_shift_quarters: int = 8  # longer gaps become rest events
    timing: str = "beats"  # "seconds": real time, a quarter being half a second (see the module docstring)
    velocity_bins: int = 0  # 0: no velocities
    instruments: bool = False  # each note event names its General MIDI program

    # Settings added after the first vocabularies were written: left out of the JSON and the hash at their
    # defaults, so a vocabulary made before them keeps its hash and its checkpoints.
    _LATER_FIELDS = ("timing", "velocity_bins", "instruments")

    def to_json(self):
        values = dataclasses.asdict(self)
        return {name: value for name, value in values.items()
                if name not in self._LATER_FIELDS or value != getattr(EncodingSettings, name)}

    @classmethod
    def from_json(cls, values):
        names = {field.name for field in dataclasses.fields(cls)}
        if not isinstance(values, dict) or not set(values) <= names or not names - set(cls._LATER_FIELDS) <= set(values):
            raise UserError("vocabulary settings are missing or have unknown keys")
        return cls(**values).validate()

    def describe(self):
        """What the encoding keeps, in words, e.g. 'beats (4 steps per quarter), 32 velocity bins, instruments'."""
        parts = ["10 ms steps" if self.timing == "seconds" and self.steps_per_quarter == 50
                 else f"{self.timing} ({self.steps_per_quarter} steps per {'half second' if self.timing == 'seconds' else 'quarter'})"]
        if self.velocity_bins:
            parts.append(f"{self.velocity_bins} velocity bins")
        if self.instruments:
            parts.append("instruments")
        return ", ".join(parts)

    @property
    def max_duration_steps(self):
        return self.steps_per_quarter * self.max_duration_quarters

    @property
    def max_shift_steps(self):
        return self.steps_per_quarter * self.max_shift_quarters

    def validate(self):
        for name in ("steps_per_quarter", "max_duration_quarters", "max_shift_quarters"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 96:
                raise UserError(f"encoding setting {name} must be an integer in 1..96, got {value!r}")
        if self.timing not in TIMINGS:
            raise UserError(f"encoding setting timing must be one of {', '.join(TIMINGS)}, got {self.timing!r}")
        bins = self.velocity_bins
        if not isinstance(bins, int) or isinstance(bins, bool) or not 0 <= bins <= 127:
            raise UserError(f"encoding setting velocity_bins must be an integer in 0..127, got {bins!r}")
        if not isinstance(self.instruments, bool):
            raise UserError(f"encoding setting instruments must be true or false, got {self.instruments!r}")
        return self


class Event(NamedTuple):
    pitches: tuple  # ascending MIDI pitches; () for a rest
    duration: int  # grid steps
    shift: int  # grid steps to the next event's onset
    velocity: int = None  # MIDI velocity (a bin's middle), where the encoding keeps velocities
    program: int = None  # General MIDI program or DRUMS, where the encoding keeps instruments
    symbol: int = None  # a chord symbol's code (musicgen/chords.py): the event names a chord and sounds nothing


def quantize(onsets, durations, pitches, steps_per_quarter, melody_only=False, velocities=None, programs=None):
    """Notes in quarter notes (floats) -> int notes (onset, duration, pitch, velocity, program) on the grid.

    Snaps onsets and ends to the nearest step (a note never shrinks below one
    step), keeps one note per (onset, program, pitch), cuts a note short where the
    same key of its instrument starts again, and moves the first onset to 0.
    Velocities default to 80 and programs to 0. With `melody_only`, the skyline:
    the highest note at each onset, unless a higher melody note is still sounding
    (an alto moving under a held soprano note is not the melody), each cut where
    the next one starts.
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    starts = np.rint(onsets * steps_per_quarter).astype(np.int64)
    ends = np.rint((onsets + np.asarray(durations, dtype=np.float64)) * steps_per_quarter).astype(np.int64)
    count = len(starts)
    velocities = np.full(count, DEFAULT_VELOCITY) if velocities is None else np.clip(velocities, 1, 127)
    programs = np.zeros(count, np.int64) if programs is None else programs
    notes = np.column_stack([starts, np.maximum(ends - starts, 1), np.asarray(pitches, dtype=np.int64),
                             np.asarray(velocities, dtype=np.int64), np.asarray(programs, dtype=np.int64)])
    if count == 0:
        return notes.reshape(0, NOTE_COLUMNS)
    notes = normalise_notes(notes)[0]
    if melody_only:
        notes = notes[np.lexsort((-notes[:, PITCH], notes[:, ONSET]))]
        first_at_onset = np.ones(len(notes), dtype=bool)
        first_at_onset[1:] = notes[1:, ONSET] != notes[:-1, ONSET]
        notes = notes[first_at_onset]
        melody, sounding_until, sounding_pitch = [], -1, -1
        for index, (onset, duration, pitch) in enumerate(notes[:, :3].tolist()):
            if onset >= sounding_until or pitch >= sounding_pitch:
                melody.append(index)
                sounding_until, sounding_pitch = onset + duration, pitch
        notes = notes[melody]
        gap_to_next = np.append(notes[1:, ONSET] - notes[:-1, ONSET], np.iinfo(np.int64).max)
        notes[:, DURATION] = np.minimum(notes[:, DURATION], gap_to_next)
    notes[:, ONSET] -= notes[:, ONSET].min()
    return sort_notes(notes)


def normalise_notes(notes):
    """(notes, doubled notes merged, notes cut short): one note per key of each instrument at a time, as MIDI needs.

    One note per (onset, program, pitch), the longest (then the loudest); and a key struck again
    ends the note still sounding on it. Training data is made this way
    (quantize), and generated music is written this way, since two note-ons of
    one key on one channel without a note-off between them are ill-formed MIDI.
    Two instruments may sound the same pitch at once. Notes come back sorted.
    """
    notes = as_notes(notes)
    notes = notes[np.lexsort((-notes[:, VELOCITY], -notes[:, DURATION], notes[:, ONSET], notes[:, PITCH],
                              notes[:, PROGRAM]))]
    same_key = np.zeros(len(notes), dtype=bool)
    same_key[1:] = (notes[1:, PITCH] == notes[:-1, PITCH]) & (notes[1:, PROGRAM] == notes[:-1, PROGRAM])
    keep = np.ones(len(notes), dtype=bool)
    keep[1:] = ~same_key[1:] | (notes[1:, ONSET] != notes[:-1, ONSET])
    notes = notes[keep].copy()
    # Sorted by key, then onset: a note is cut where the next note of its key starts.
    same_key_next = np.append((notes[1:, PITCH] == notes[:-1, PITCH]) & (notes[1:, PROGRAM] == notes[:-1, PROGRAM]),
                              False)
    gap_to_next = np.append(notes[1:, ONSET] - notes[:-1, ONSET], np.iinfo(np.int64).max)
    cut = same_key_next & (gap_to_next < notes[:, DURATION])
    notes[cut, DURATION] = gap_to_next[cut]
    return sort_notes(notes), int((~keep).sum()), int(cut.sum())


def shorten_silences(notes, max_silence_steps):
    """Cut every silence longer than `max_silence_steps` down to that length.

    A file whose notes sit hours apart would otherwise become thousands of rest
    events. Returns (notes, cuts): cuts[i] = (where a shortened silence ends,
    before the cut; steps taken out), so other times (a tempo map) can follow.
    """
    if len(notes) == 0:
        return notes, np.zeros((0, 2), dtype=np.int64)
    notes = notes[np.argsort(notes[:, ONSET], kind="stable")]
    sounding_until = np.maximum.accumulate(notes[:, ONSET] + notes[:, DURATION])
    silence = np.zeros(len(notes), dtype=np.int64)
    silence[1:] = notes[1:, ONSET] - sounding_until[:-1]
    excess = np.maximum(silence - max_silence_steps, 0)
    cuts = np.stack([notes[excess > 0, ONSET], excess[excess > 0]], axis=1)
    notes = notes.copy()
    notes[:, ONSET] -= np.cumsum(excess)
    return sort_notes(notes), cuts


def sort_notes(notes):
    """Notes in a canonical order: by onset, then program, pitch, duration and velocity."""
    notes = as_notes(notes)
    return notes[np.lexsort((notes[:, VELOCITY], notes[:, DURATION], notes[:, PITCH], notes[:, PROGRAM],
                             notes[:, ONSET]))]


def group_simultaneous(notes, settings=None):
    """Notes -> [Event without shift]: notes of one instrument sharing onset, duration and (binned) velocity form a chord.

    With `settings`, only what they encode tells notes apart: programs where it
    keeps instruments, velocity bins where it keeps velocities. Returns
    [(onset, Event)], ordered by onset, then program, then highest pitch first, so
    the top voice leads.
    """
    notes = as_notes(notes)
    keep_velocity = settings is not None and settings.velocity_bins > 0
    keep_program = settings is not None and settings.instruments
    velocities = (bin_velocity(velocity_bin(notes[:, VELOCITY], settings.velocity_bins), settings.velocity_bins)
                  if keep_velocity else np.full(len(notes), -1))
    programs = notes[:, PROGRAM] if keep_program else np.full(len(notes), -1)
    groups = {}
    for (onset, duration, pitch), velocity, program in zip(notes[:, :3].tolist(), velocities.tolist(), programs.tolist()):
        groups.setdefault((onset, program, duration, velocity), []).append(pitch)
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[0][1], -max(item[1]), -item[0][2], item[0][3]))
    return [(onset, Event(tuple(sorted(pitches)), duration, 0, None if velocity < 0 else velocity,
                          None if program < 0 else program))
            for (onset, program, duration, velocity), pitches in ordered]


def count_chords(notes, settings=None):
    """How often each chord (two or more pitches of one event, as `settings` groups them) occurs."""
    return Counter(event.pitches for _, event in group_simultaneous(notes, settings) if len(event.pitches) > 1)


def notes_to_events(notes, settings, known_chords, symbols=()):
    """Notes, and (onset, duration, code) chord symbols, -> (events, number of notes whose duration was clipped).

    A symbol comes first of the events at its onset, its duration clipped like a note's (but not counted)."""
    groups = group_simultaneous(notes, settings)
    if not groups:
        return [], 0
    piece_end = max(onset + event.duration for onset, event in groups)
    harmony = [(onset, Event((), min(duration, settings.max_duration_steps), 0, symbol=code))
               for onset, duration, code in np.asarray(symbols, dtype=np.int64).reshape(-1, 3).tolist()
               if onset < piece_end]
    expanded = []
    clipped = 0
    for onset, event in sorted(harmony + groups, key=lambda item: (item[0], item[1].symbol is None)):
        if event.symbol is not None:
            expanded.append((onset, event))
            continue
        if event.duration > settings.max_duration_steps:
            event = event._replace(duration=settings.max_duration_steps)
            clipped += len(event.pitches)
        if len(event.pitches) > 1 and event.pitches not in known_chords:
            expanded.extend((onset, event._replace(pitches=(pitch,))) for pitch in reversed(event.pitches))
        else:
            expanded.append((onset, event))
    events = []
    for index, (onset, event) in enumerate(expanded):
        next_onset = expanded[index + 1][0] if index + 1 < len(expanded) else piece_end
        events.extend(event_then_rests(event, next_onset - onset, settings))
    return events, clipped


def event_then_rests(event, gap, settings):
    """The event with its shift to the next one, then rest events where the gap exceeds the largest shift."""
    shift = min(gap, settings.max_shift_steps)
    yield event._replace(shift=shift)
    gap -= shift
    while gap > 0:
        shift = min(gap, settings.max_shift_steps)
        yield Event((), min(shift, settings.max_duration_steps), shift)
        gap -= shift


def events_to_notes(events):
    """Events -> notes (onset, duration, pitch, velocity, program), sorted, one per key at a time (normalise_notes)."""
    return normalise_notes(event_notes(events))[0]


def event_notes(events):
    """Every note the events hold, as they are: a key may be struck twice at once (see normalise_notes)."""
    rows = []
    time = 0
    for event in events:
        velocity = DEFAULT_VELOCITY if event.velocity is None else event.velocity
        program = 0 if event.program is None else event.program
        rows.extend((time, event.duration, pitch, velocity, program) for pitch in event.pitches)
        time += event.shift
    return sort_notes(rows)


def event_symbols(events):
    """The chord symbols the events name, as (k, 3) int (onset step, duration steps, code)."""
    rows, time = [], 0
    for event in events:
        if event.symbol is not None:
            rows.append((time, event.duration, event.symbol))
        time += event.shift
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


class Vocabulary:
    """Token strings <-> ids, with the encoding settings they were made for."""

    def __init__(self, tokens, settings):
        self.tokens = list(tokens)
        self.settings = settings
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise UserError("vocabulary has duplicate tokens")
        if self.tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise UserError(f"vocabulary must start with {SPECIAL_TOKENS}")
        self.kinds = np.array([KINDS.index(self._kind_of(token)) for token in self.tokens], dtype=np.int64)
        for kind, wanted in (("instrument", settings.instruments), ("velocity", settings.velocity_bins > 0)):
            if wanted != (KINDS.index(kind) in self.kinds):
                raise UserError(f"vocabulary {kind} tokens do not match its settings")
        self.chords = {self._pitches_of(t) for t, k in zip(self.tokens, self.kinds) if KINDS[k] == "chord"}
        self.symbols = {self._symbol_of(t): i for i, (t, k) in enumerate(zip(self.tokens, self.kinds))
                        if KINDS[k] == "harmony"}  # chord symbol code -> token id
        # Which keys each token strikes, and which tokens move on to a new onset (a shift > 0, or <start>).
        self.strikes = np.zeros((len(self.tokens), 128), dtype=bool)
        for index, (token, kind) in enumerate(zip(self.tokens, self.kinds)):
            if KINDS[kind] in ("note", "chord"):
                self.strikes[index, list(self._pitches_of(token))] = True
        self.moves_on = np.array([KINDS[k] == "start" or (KINDS[k] == "shift" and token != "shift:0")
                                  for token, k in zip(self.tokens, self.kinds)])
        self.shift_steps = np.array([int(token[len("shift:"):]) if KINDS[k] == "shift" else 0
                                     for token, k in zip(self.tokens, self.kinds)], dtype=np.int64)
        # The velocity token of each MIDI velocity 0..127, looked up per event when encoding.
        bins = settings.velocity_bins
        middles = bin_velocity(velocity_bin(np.arange(128), bins), bins).tolist() if bins else []
        self._velocity_ids = [self.index[f"{VELOCITY_PREFIX}{middle}"] for middle in middles]
        self._followers = np.zeros((len(KINDS), len(self.tokens)), dtype=bool)
        for kind, followers in self.grammar(settings).items():
            self._followers[KINDS.index(kind)] = np.isin(self.kinds, [KINDS.index(f) for f in followers])

        # Instrument tokens -> their program, the slot of keys they strike on (one slot without instruments), else -1.
        self.program_slots = DRUMS + 1 if settings.instruments else 1
        self.program_slot_of = np.array([self._value_of(token) if KINDS[kind] == "instrument" else -1
                                         for token, kind in zip(self.tokens, self.kinds)], dtype=np.int64)
        self.event_starts = self._followers[KINDS.index("shift")] & (self.kinds != KINDS.index("end"))

    def restricted_to(self, programs):
        """This vocabulary with a grammar that allows only the instruments `programs` (for generating)."""
        if not self.settings.instruments:
            raise UserError("this model keeps no instruments, so there are none to choose from")
        restricted = copy.copy(self)
        banned = (self.program_slot_of >= 0) & ~np.isin(self.program_slot_of, sorted(programs))
        restricted._followers = self._followers & ~banned
        restricted.event_starts = self.event_starts & ~banned
        return restricted

    @staticmethod
    def grammar(settings):
        """Which kinds may follow which: an event is [instrument] [velocity] what duration shift.

        The instrument and velocity tokens come only before notes and chords (a
        rest or chord symbol has neither), and only where the settings keep them, then always.
        """
        pitched = ("velocity",) if settings.velocity_bins else _PITCHED_KINDS
        event_start = (("instrument",) if settings.instruments else pitched) + ("rest", "end")
        event_start += ("harmony",)
        return {
            "pad": ("start",),
            "start": event_start + ("control",),
            "control": event_start + ("control",),
            "shift": event_start,
            "instrument": pitched,
            "velocity": _PITCHED_KINDS,
            "rest": ("duration",),
            "note": ("duration",),
            "chord": ("duration",),
            "harmony": ("duration",),
            "duration": ("shift",),
            "end": ("start",),
            "hole": event_start,
            "fill": event_start,
        }

    @classmethod
    def build(cls, settings, chord_counts, max_chords=1024, min_chord_count=2, controls=(), infilling=False,
              symbols=()):
        """The vocabulary for `settings`, with the most frequent chords of the training data, the infilling
        markers if asked for, a token for each chord symbol code in `symbols`, and the control tokens `controls`
        (label=value strings), last and sorted."""
        chords = [c for c, n in sorted(chord_counts.items(), key=lambda item: (-item[1], item[0])) if n >= min_chord_count]
        tokens = list(SPECIAL_TOKENS)
        tokens += [pitch_name(p) for p in range(128)]
        tokens += [chord_name(c) for c in chords[:max_chords]]
        tokens += [f"dur:{n}" for n in range(1, settings.max_duration_steps + 1)]
        tokens += [f"shift:{n}" for n in range(settings.max_shift_steps + 1)]
        if settings.instruments:
            tokens += [instrument_token(program) for program in range(DRUMS + 1)]
        if settings.velocity_bins:
            tokens += [f"{VELOCITY_PREFIX}{v}" for v in bin_velocity(np.arange(settings.velocity_bins),
                                                                       settings.velocity_bins).tolist()]
        if infilling:
            tokens += [HOLE, FILL]
        tokens += [harmony_token(code) for code in sorted(set(symbols))]
        return cls(tokens + sorted(set(controls)), settings)

    def __len__(self):
        return len(self.tokens)

    @property
    def pad_id(self):
        return self.index[PAD]

    @property
    def start_id(self):
        return self.index[START]

    @property
    def end_id(self):
        return self.index[END]

    def _kind_of(self, token):
        if token in (PAD, START, END, HOLE, FILL):
            return token.strip("<>")
        if token == REST:
            return "rest"
        if CONTROL_SEPARATOR in token:
            name, _, value = token.partition(CONTROL_SEPARATOR)
            if not name or not value:
                raise UserError(f"vocabulary control token {token!r} must read label=value")
            return "control"
        if token.startswith(INSTRUMENT_PREFIX):
            self._value_of(token)
            return "instrument"
        if token.startswith(VELOCITY_PREFIX):
            self._value_of(token)
            return "velocity"
        if token.startswith(HARMONY_PREFIX):
            self._symbol_of(token)
            return "harmony"
        for kind, limit, lowest in (("dur:", self.settings.max_duration_steps, 1), ("shift:", self.settings.max_shift_steps, 0)):
            if token.startswith(kind):
                value = token[len(kind):]
                if not value.isdigit() or not lowest <= int(value) <= limit:
                    raise UserError(f"vocabulary token {token!r} is outside {lowest}..{limit} steps")
                return "duration" if kind == "dur:" else "shift"
        pitches = self._pitches_of(token)
        return "note" if len(pitches) == 1 else "chord"

    @staticmethod
    def _value_of(token):
        """The program of an instrument token (DRUMS for inst:drums) or the MIDI velocity of a velocity token."""
        prefix, _, value = token.partition(":")
        if prefix + ":" == INSTRUMENT_PREFIX and value == "drums":
            return DRUMS
        if not value.isdigit() or not (0 if prefix + ":" == INSTRUMENT_PREFIX else 1) <= int(value) <= 127:
            raise UserError(f"vocabulary token {token!r} is not a General MIDI program or velocity")
        return int(value)

    @staticmethod
    def _symbol_of(token):
        """The code of a chord symbol token, which must spell it as harmony_token does."""
        try:
            code = parse_symbol(token[len(HARMONY_PREFIX):])
        except ValueError as error:
            raise UserError(f"vocabulary token {token!r}: {error}") from None
        if harmony_token(code) != token:
            raise UserError(f"vocabulary token {token!r} should be spelled {harmony_token(code)!r}")
        return code

    @staticmethod
    def _pitches_of(token):
        try:
            pitches = tuple(parse_pitch(name) for name in token.split("."))
        except ValueError as error:
            raise UserError(f"vocabulary token {token!r} is not a note, chord, duration or shift ({error})") from None
        if list(pitches) != sorted(set(pitches)):
            raise UserError(f"vocabulary chord {token!r} must list distinct pitches from low to high")
        return pitches

    def kind(self, token_id):
        return KINDS[self.kinds[token_id]]

    @property
    def controls(self):
        """{label: [values]} of the control tokens, in vocabulary order."""
        labels = {}
        for token, kind in zip(self.tokens, self.kinds):
            if KINDS[kind] == "control":
                name, _, value = token.partition(CONTROL_SEPARATOR)
                labels.setdefault(name, []).append(value)
        return labels

    @property
    def infilling(self):
        """Whether the vocabulary has the infilling markers."""
        return HOLE in self.index

    @property
    def is_control(self):
        """Boolean per token id: whether it is a control token."""
        return self.kinds == KINDS.index("control")

    def gap_tokens(self, steps):
        """Shift tokens that move on `steps` grid steps together, the largest first: how long a gap to fill is."""
        largest = self.settings.max_shift_steps
        parts = [largest] * (steps // largest) + ([steps % largest] if steps % largest or not steps else [])
        return [self.index[f"shift:{part}"] for part in parts]

    def opening_length(self, ids):
        """How many tokens open `ids` as a piece: <start> and the control tokens after it (0 without <start>)."""
        ids = np.asarray(ids)
        if not len(ids) or ids[0] != self.start_id:
            return 0
        rest = ~self.is_control[ids[1:]]
        return 1 + (int(np.argmax(rest)) if rest.any() else len(ids) - 1)

    def control_ids(self, conditions):
        """{label: value} -> the control token ids, in vocabulary order; unknown labels and values are refused
        with the known ones (matched without regard to case)."""
        known = self.controls
        if conditions and not known:
            raise UserError("this model was trained without labels, so it takes no --condition "
                            "(label a corpus with preprocess.py --label-from, --labels or --compute-labels)")
        ids = []
        for name, value in conditions.items():
            if name not in known:
                raise UserError(f"unknown label {name!r}; this model knows: {', '.join(known)}")
            matches = [v for v in known[name] if v.lower() == str(value).strip().lower()]
            if not matches:
                raise UserError(f"{name}={value!r} was never seen in training; known values of {name}: "
                                f"{', '.join(known[name])}")
            ids.append(self.index[control_token(name, matches[0])])
        return sorted(ids)

    def hash(self):
        """A short fingerprint of tokens and settings: checkpoints record it to catch mismatches."""
        payload = json.dumps({"tokens": self.tokens, "settings": self.settings.to_json()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self):
        return {
            "format": "musicgen-vocabulary",
            "version": 1,
            "hash": self.hash(),
            "settings": self.settings.to_json(),
            "encoding": self.settings.describe(),
            "tokens": self.tokens,
        }

    @classmethod
    def from_json(cls, data):
        """Validate and load a vocabulary read from JSON (which may come from anyone)."""
        if not isinstance(data, dict) or data.get("format") != "musicgen-vocabulary":
            raise UserError("not a musicgen vocabulary (missing 'format': 'musicgen-vocabulary')")
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or len(tokens) > 1_000_000:
            raise UserError("vocabulary tokens must be a list of strings")
        vocabulary = cls(tokens, EncodingSettings.from_json(data.get("settings")))
        if "hash" in data and data["hash"] != vocabulary.hash():
            raise UserError("vocabulary hash does not match its tokens (the file was edited or damaged)")
        return vocabulary

    def encode(self, events, start=True, end=True, controls=()):
        """Events -> token ids, with the `controls` ids after <start>. Chords outside the vocabulary must already be
        split (notes_to_events does)."""
        ids = ([self.start_id] if start else []) + sorted(controls)
        for event in events:
            if event.symbol is not None:
                ids += [self.index[harmony_token(event.symbol)], self.index[f"dur:{event.duration}"],
                        self.index[f"shift:{event.shift}"]]
                continue
            if event.pitches:
                if self.settings.instruments:
                    ids.append(self.index[instrument_token(event.program or 0)])
                if self.settings.velocity_bins:
                    velocity = DEFAULT_VELOCITY if event.velocity is None else event.velocity
                    ids.append(self._velocity_ids[min(max(int(velocity), 0), 127)])
            what = REST if not event.pitches else chord_name(event.pitches)
            ids += [self.index[what], self.index[f"dur:{event.duration}"], self.index[f"shift:{event.shift}"]]
        if end:
            ids.append(self.end_id)
        return np.array(ids, dtype=np.int32)

    def known_symbols(self, symbols):
        """The rows of (k, 3) grid chord symbols that the vocabulary has a token for."""
        symbols = np.asarray(symbols, dtype=np.int64).reshape(-1, 3)
        return symbols[np.isin(symbols[:, 2], list(self.symbols))]

    def encode_notes(self, notes, controls=(), symbols=()):
        """Notes (and chord symbols) -> (token ids of the whole piece, number of events, number of clipped notes)."""
        events, clipped = notes_to_events(notes, self.settings, self.chords, symbols)
        return self.encode(events, controls=controls), len(events), clipped

    def velocity_of_bin(self, velocity):
        """The velocity a note of MIDI velocity `velocity` is encoded with: its bin's middle."""
        bins = self.settings.velocity_bins
        return int(bin_velocity(velocity_bin(velocity, bins), bins))

    def decode(self, ids):
        """Token ids -> events. Tokens that break the event grammar are skipped, not fatal.

        Where the settings keep instruments and velocities, a note event without
        them (a hand-written seed, say) takes program 0 and velocity 80.
        """
        events, what, duration, velocity, program, symbol = [], None, None, None, None, None
        for token_id in np.asarray(ids).tolist():
            token = self.tokens[token_id]
            kind = KINDS[self.kinds[token_id]]
            if kind == "instrument":
                what, duration, velocity, program, symbol = None, None, None, self._value_of(token), None
            elif kind == "velocity":
                what, duration, velocity, symbol = None, None, self._value_of(token), None
            elif kind in _EVENT_KINDS:
                what, duration, symbol = (() if kind == "rest" else self._pitches_of(token)), None, None
            elif kind == "harmony":
                what, duration, velocity, program, symbol = (), None, None, None, self._symbol_of(token)
            elif kind == "duration" and what is not None:
                duration = int(token[len("dur:"):])
            elif kind == "shift" and what is not None and duration is not None:
                if what:
                    velocity = DEFAULT_VELOCITY if velocity is None and self.settings.velocity_bins else velocity
                    program = 0 if program is None and self.settings.instruments else program
                else:
                    velocity, program = None, None
                events.append(Event(what, duration, int(token[len("shift:"):]), velocity, program, symbol))
                what, duration, velocity, program, symbol = None, None, None, None, None
            else:
                what, duration, velocity, program, symbol = None, None, None, None, None
        return events

    def allowed_next(self, previous_ids):
        """Boolean mask (batch, vocabulary): which tokens the grammar allows after each previous token."""
        return self._followers[self.kinds[np.asarray(previous_ids)]]

    def event_boundaries(self, ids):
        """Positions i such that ids[:i] ends on a whole event (after <start> or a shift token)."""
        kinds = self.kinds[np.asarray(ids)]
        return np.flatnonzero((kinds == KINDS.index("shift")) | (kinds == KINDS.index("start"))) + 1

    def nearest_tokens(self, token, count=3):
        """Tokens spelled most like `token`, for 'did you mean' messages."""
        return difflib.get_close_matches(token, self.tokens, n=count, cutoff=0.0)
