"""Note-and-chord event encoding: notes on a beat grid <-> integer token sequences.

A piece becomes a list of events. Each event is the set of pitches that start
together with the same duration (one note, a chord, or a rest), its duration,
and the time to the next event's onset. Every event is three tokens:

    <what> dur:<steps> shift:<steps>      e.g.  C4.E4.G4 dur:8 shift:8

so durations, rests (a shift longer than the duration, or an explicit `R`
event) and overlaps (a shift shorter than the duration, 0 for simultaneous
events) all survive. Times are in grid steps (`steps_per_quarter` per quarter
note). A piece is wrapped in <start> ... <end>.

The vocabulary stays compact: 128 single-note tokens, the most common chords of
the training split, and one token per duration and per shift value. A chord
outside the vocabulary is written as its notes, one event each with shift 0, so
encoding is lossless either way (up to durations clipped at the maximum).
"""

import dataclasses
import difflib
import hashlib
import json
import re
from collections import Counter
from typing import NamedTuple

import numpy as np

from musicgen.errors import UserError

PITCH_CLASS_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_PITCH_PATTERN = re.compile(r"^([A-Ga-g])([#b]{0,2})(-?\d+)$")
_LETTER_TO_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

PAD, START, END, REST = "<pad>", "<start>", "<end>", "R"
SPECIAL_TOKENS = [PAD, START, END, REST]

# Token kinds, and which kinds may follow which (the event grammar).
KINDS = ["pad", "start", "end", "rest", "note", "chord", "duration", "shift"]
_EVENT_KINDS = ("rest", "note", "chord")
_FOLLOWERS = {
    "pad": ("start",),
    "start": _EVENT_KINDS + ("end",),
    "shift": _EVENT_KINDS + ("end",),
    "rest": ("duration",),
    "note": ("duration",),
    "chord": ("duration",),
    "duration": ("shift",),
    "end": ("start",),
}

# Notes are int arrays of shape (n, 3) with these columns, in grid steps.
ONSET, DURATION, PITCH = 0, 1, 2


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


@dataclasses.dataclass(frozen=True)
class EncodingSettings:
    steps_per_quarter: int = 4
    max_duration_quarters: int = 8  # longer notes are clipped (and counted in the report)
    max_shift_quarters: int = 8  # longer gaps become rest events

    @property
    def max_duration_steps(self):
        return self.steps_per_quarter * self.max_duration_quarters

    @property
    def max_shift_steps(self):
        return self.steps_per_quarter * self.max_shift_quarters

    def validate(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 96:
                raise UserError(f"encoding setting {field.name} must be an integer in 1..96, got {value!r}")
        return self


class Event(NamedTuple):
    pitches: tuple  # ascending MIDI pitches; () for a rest
    duration: int  # grid steps
    shift: int  # grid steps to the next event's onset


def quantize(onsets, durations, pitches, steps_per_quarter, melody_only=False):
    """Notes in quarter notes (floats) -> int notes (onset, duration, pitch) on the grid.

    Snaps onsets and ends to the nearest step (a note never shrinks below one
    step), keeps one note per (onset, pitch), cuts a note short where the same
    pitch starts again, and moves the first onset to 0. With `melody_only`, the
    skyline: the highest note at each onset, unless a higher melody note is still
    sounding (an alto moving under a held soprano note is not the melody), each
    cut where the next one starts.
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    starts = np.rint(onsets * steps_per_quarter).astype(np.int64)
    ends = np.rint((onsets + np.asarray(durations, dtype=np.float64)) * steps_per_quarter).astype(np.int64)
    notes = np.stack([starts, np.maximum(ends - starts, 1), np.asarray(pitches, dtype=np.int64)], axis=1)
    if len(notes) == 0:
        return notes.reshape(0, 3)
    notes = normalise_notes(notes)[0]
    if melody_only:
        notes = notes[np.lexsort((-notes[:, PITCH], notes[:, ONSET]))]
        first_at_onset = np.ones(len(notes), dtype=bool)
        first_at_onset[1:] = notes[1:, ONSET] != notes[:-1, ONSET]
        notes = notes[first_at_onset]
        melody, sounding_until, sounding_pitch = [], -1, -1
        for index, (onset, duration, pitch) in enumerate(notes):
            if onset >= sounding_until or pitch >= sounding_pitch:
                melody.append(index)
                sounding_until, sounding_pitch = onset + duration, pitch
        notes = notes[melody]
        gap_to_next = np.append(notes[1:, ONSET] - notes[:-1, ONSET], np.iinfo(np.int64).max)
        notes[:, DURATION] = np.minimum(notes[:, DURATION], gap_to_next)
    notes[:, ONSET] -= notes[:, ONSET].min()
    return sort_notes(notes)


def normalise_notes(notes):
    """(notes, doubled notes merged, notes cut short): one note per key at a time, as MIDI needs.

    One note per (onset, pitch), the longest; and a pitch struck again ends the
    note still sounding on it. Training data is made this way (quantize), and
    generated music is written this way, since two note-ons of one key without a
    note-off between them are ill-formed MIDI. Notes come back sorted.
    """
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    notes = notes[np.lexsort((-notes[:, DURATION], notes[:, ONSET], notes[:, PITCH]))]
    keep = np.ones(len(notes), dtype=bool)
    keep[1:] = (notes[1:, PITCH] != notes[:-1, PITCH]) | (notes[1:, ONSET] != notes[:-1, ONSET])
    notes = notes[keep].copy()
    # Sorted by pitch, then onset: a note is cut where the next note of its pitch starts.
    same_pitch_next = np.append(notes[1:, PITCH] == notes[:-1, PITCH], False)
    gap_to_next = np.append(notes[1:, ONSET] - notes[:-1, ONSET], np.iinfo(np.int64).max)
    cut = same_pitch_next & (gap_to_next < notes[:, DURATION])
    notes[cut, DURATION] = gap_to_next[cut]
    return sort_notes(notes), int((~keep).sum()), int(cut.sum())


def shorten_silences(notes, max_silence_steps):
    """Cut every silence longer than `max_silence_steps` down to that length.

    A file whose notes sit hours apart would otherwise become thousands of rest
    events. Returns (notes, number of silences shortened).
    """
    if len(notes) == 0:
        return notes, 0
    notes = notes[np.argsort(notes[:, ONSET], kind="stable")]
    sounding_until = np.maximum.accumulate(notes[:, ONSET] + notes[:, DURATION])
    silence = np.zeros(len(notes), dtype=np.int64)
    silence[1:] = notes[1:, ONSET] - sounding_until[:-1]
    excess = np.maximum(silence - max_silence_steps, 0)
    notes = notes.copy()
    notes[:, ONSET] -= np.cumsum(excess)
    return sort_notes(notes), int((excess > 0).sum())


def sort_notes(notes):
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    return notes[np.lexsort((notes[:, DURATION], notes[:, PITCH], notes[:, ONSET]))]


def group_simultaneous(notes):
    """Notes -> [(onset, duration, pitches)]: notes sharing onset and duration form one chord.

    Ordered by onset, then highest pitch first, so the top voice leads.
    """
    groups = {}
    for onset, duration, pitch in np.asarray(notes).tolist():
        groups.setdefault((onset, duration), []).append(pitch)
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], -max(item[1]), -item[0][1]))
    return [(onset, duration, tuple(sorted(pitches))) for (onset, duration), pitches in ordered]


def count_chords(notes):
    """How often each chord (two or more pitches with the same onset and duration) occurs."""
    return Counter(pitches for _, _, pitches in group_simultaneous(notes) if len(pitches) > 1)


def notes_to_events(notes, settings, known_chords):
    """Notes -> (events, number of notes whose duration was clipped)."""
    groups = group_simultaneous(notes)
    if not groups:
        return [], 0
    piece_end = max(onset + duration for onset, duration, _ in groups)
    expanded = []
    clipped = 0
    for onset, duration, pitches in groups:
        if duration > settings.max_duration_steps:
            duration = settings.max_duration_steps
            clipped += len(pitches)
        if len(pitches) > 1 and pitches not in known_chords:
            expanded.extend((onset, duration, (pitch,)) for pitch in reversed(pitches))
        else:
            expanded.append((onset, duration, pitches))
    events = []
    for index, (onset, duration, pitches) in enumerate(expanded):
        next_onset = expanded[index + 1][0] if index + 1 < len(expanded) else piece_end
        events.extend(event_then_rests(pitches, duration, next_onset - onset, settings))
    return events, clipped


def event_then_rests(pitches, duration, gap, settings):
    """One event, followed by rest events where the gap to the next one exceeds the largest shift."""
    shift = min(gap, settings.max_shift_steps)
    yield Event(pitches, duration, shift)
    gap -= shift
    while gap > 0:
        shift = min(gap, settings.max_shift_steps)
        yield Event((), min(shift, settings.max_duration_steps), shift)
        gap -= shift


def events_to_notes(events):
    """Events -> notes (onset, duration, pitch), sorted, one per key at a time (see normalise_notes)."""
    return normalise_notes(event_notes(events))[0]


def event_notes(events):
    """Every note the events hold, as they are: a key may be struck twice at once (see normalise_notes)."""
    rows = []
    time = 0
    for event in events:
        rows.extend((time, event.duration, pitch) for pitch in event.pitches)
        time += event.shift
    return sort_notes(rows)


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
        self.chords = {self._pitches_of(t) for t, k in zip(self.tokens, self.kinds) if KINDS[k] == "chord"}
        # Which keys each token strikes, and which tokens move on to a new onset (a shift > 0, or <start>).
        self.strikes = np.zeros((len(self.tokens), 128), dtype=bool)
        for index, (token, kind) in enumerate(zip(self.tokens, self.kinds)):
            if KINDS[kind] in ("note", "chord"):
                self.strikes[index, list(self._pitches_of(token))] = True
        self.moves_on = np.array([KINDS[k] == "start" or (KINDS[k] == "shift" and token != "shift:0")
                                  for token, k in zip(self.tokens, self.kinds)])
        self._followers = np.zeros((len(KINDS), len(self.tokens)), dtype=bool)
        for kind, followers in _FOLLOWERS.items():
            self._followers[KINDS.index(kind)] = np.isin(self.kinds, [KINDS.index(f) for f in followers])

    @classmethod
    def build(cls, settings, chord_counts, max_chords=1024, min_chord_count=2):
        """The vocabulary for `settings`, with the most frequent chords of the training data."""
        chords = [c for c, n in sorted(chord_counts.items(), key=lambda item: (-item[1], item[0])) if n >= min_chord_count]
        tokens = list(SPECIAL_TOKENS)
        tokens += [pitch_name(p) for p in range(128)]
        tokens += [chord_name(c) for c in chords[:max_chords]]
        tokens += [f"dur:{n}" for n in range(1, settings.max_duration_steps + 1)]
        tokens += [f"shift:{n}" for n in range(settings.max_shift_steps + 1)]
        return cls(tokens, settings)

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
        if token in (PAD, START, END):
            return token.strip("<>")
        if token == REST:
            return "rest"
        for kind, limit, lowest in (("dur:", self.settings.max_duration_steps, 1), ("shift:", self.settings.max_shift_steps, 0)):
            if token.startswith(kind):
                value = token[len(kind):]
                if not value.isdigit() or not lowest <= int(value) <= limit:
                    raise UserError(f"vocabulary token {token!r} is outside {lowest}..{limit} steps")
                return "duration" if kind == "dur:" else "shift"
        pitches = self._pitches_of(token)
        return "note" if len(pitches) == 1 else "chord"

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

    def hash(self):
        """A short fingerprint of tokens and settings: checkpoints record it to catch mismatches."""
        payload = json.dumps({"tokens": self.tokens, "settings": dataclasses.asdict(self.settings)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self):
        return {
            "format": "musicgen-vocabulary",
            "version": 1,
            "hash": self.hash(),
            "settings": dataclasses.asdict(self.settings),
            "tokens": self.tokens,
        }

    @classmethod
    def from_json(cls, data):
        """Validate and load a vocabulary read from JSON (which may come from anyone)."""
        if not isinstance(data, dict) or data.get("format") != "musicgen-vocabulary":
            raise UserError("not a musicgen vocabulary (missing 'format': 'musicgen-vocabulary')")
        settings_data, tokens = data.get("settings"), data.get("tokens")
        if not isinstance(settings_data, dict) or set(settings_data) != {f.name for f in dataclasses.fields(EncodingSettings)}:
            raise UserError("vocabulary settings are missing or have unknown keys")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or len(tokens) > 1_000_000:
            raise UserError("vocabulary tokens must be a list of strings")
        vocabulary = cls(tokens, EncodingSettings(**settings_data).validate())
        if "hash" in data and data["hash"] != vocabulary.hash():
            raise UserError("vocabulary hash does not match its tokens (the file was edited or damaged)")
        return vocabulary

    def encode(self, events, start=True, end=True):
        """Events -> token ids. Chords outside the vocabulary must already be split (notes_to_events does)."""
        ids = [self.start_id] if start else []
        for event in events:
            what = REST if not event.pitches else chord_name(event.pitches)
            ids += [self.index[what], self.index[f"dur:{event.duration}"], self.index[f"shift:{event.shift}"]]
        if end:
            ids.append(self.end_id)
        return np.array(ids, dtype=np.int32)

    def encode_notes(self, notes):
        """Notes -> (token ids of the whole piece, number of events, number of clipped notes)."""
        events, clipped = notes_to_events(notes, self.settings, self.chords)
        return self.encode(events), len(events), clipped

    def decode(self, ids):
        """Token ids -> events. Tokens that break the event grammar are skipped, not fatal."""
        events, what, duration = [], None, None
        for token_id in np.asarray(ids).tolist():
            token = self.tokens[token_id]
            kind = KINDS[self.kinds[token_id]]
            if kind in _EVENT_KINDS:
                what, duration = (() if kind == "rest" else self._pitches_of(token)), None
            elif kind == "duration" and what is not None:
                duration = int(token[len("dur:"):])
            elif kind == "shift" and what is not None and duration is not None:
                events.append(Event(what, duration, int(token[len("shift:"):])))
                what, duration = None, None
            else:
                what, duration = None, None
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
