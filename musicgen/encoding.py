"""The encoding's settings, and its events: notes on the grid <-> events, the unit every token sequence is made of.

A piece becomes a list of events. Each event is the set of pitches that start
together with the same duration (one note, a chord, or a rest), its duration,
and the time to the next event's onset (its shift), so durations, rests (a shift
longer than the duration, or an explicit rest event) and overlaps (a shift
shorter than the duration, 0 for simultaneous events) all survive. Times are in
grid steps (`steps_per_quarter` per quarter note). musicgen/vocabulary.py spells
each event as tokens.

Richer music keeps more of each note event, only where the settings ask for it,
so score corpora stay as compact as before:

- `instruments`: each note event names its General MIDI program (DRUMS for the
  drum kit, whose pitches are drum sounds); events of one onset come ordered by
  program, so the encoding stays deterministic.
- `velocity_bins`: each note event carries its loudness, one of that many equal
  bins of MIDI velocity 1..127, decoded to the bin's middle (musicgen/velocities.py).
- `timing="seconds"`: times count in fixed steps of real time instead of beats
  (a "quarter" is then half a second, the quarter of 120 bpm; 50 steps per
  quarter are 10 ms steps), for performances whose notes do not sit on a grid.

A chord symbol (musicgen/chords.py) is an event too, one that sounds nothing:
it names the chord and how long it holds, first of the events at its onset.
So is a meter (`meters`, musicgen/meters.py): it names the time signature at
the bar line where it begins, first of all at its onset, and has no duration.
"""

import dataclasses
from collections import Counter
from typing import NamedTuple

import numpy as np

from musicgen.chords import ChordSymbols
from musicgen.errors import UserError
from musicgen.meters import DEFAULT_METER
from musicgen.notes import (DEFAULT_VELOCITY, DURATION, ONSET, PITCH, PROGRAM, VELOCITY, as_notes, normalise_notes,
                            sort_notes)
from musicgen.velocities import quantize_velocity

TIMINGS = ("beats", "seconds")


@dataclasses.dataclass(frozen=True)
class EncodingSettings:
    steps_per_quarter: int = 4
    max_duration_quarters: int = 8  # longer notes are clipped (and counted in the report)
    max_shift_quarters: int = 8  # longer gaps become rest events
    timing: str = "beats"  # "seconds": real time, a quarter being half a second (see the module docstring)
    velocity_bins: int = 0  # 0: no velocities
    instruments: bool = False  # each note event names its General MIDI program
    meters: bool = False  # time signatures are events, at the bar lines where they begin (beat timing only)

    # Settings added after the first vocabularies were written: left out of the JSON and the hash at their
    # defaults, so a vocabulary made before them keeps its hash and its checkpoints.
    _LATER_FIELDS = ("timing", "velocity_bins", "instruments", "meters")

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
        if self.meters:
            parts.append("meters")
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
        for name in ("instruments", "meters"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"encoding setting {name} must be true or false, got {getattr(self, name)!r}")
        if self.meters and self.timing != "beats":
            raise UserError("meters are kept in beat timing only: a performance in seconds has no bars to count")
        return self


class Event(NamedTuple):
    pitches: tuple  # ascending MIDI pitches; () for a rest
    duration: int  # grid steps
    shift: int  # grid steps to the next event's onset
    velocity: int = None  # MIDI velocity (a bin's middle), where the encoding keeps velocities
    program: int = None  # General MIDI program or DRUMS, where the encoding keeps instruments
    symbol: int = None  # a chord symbol's code (musicgen/chords.py): the event names a chord and sounds nothing
    meter: tuple = None  # (numerator, denominator): the event names the meter from here on, sounds nothing, lasts 0


# What each row of an EventTable is.
NOTE_EVENT, REST_EVENT, SYMBOL_EVENT, METER_EVENT = range(4)


@dataclasses.dataclass(frozen=True)
class EventTable:
    """A piece's events as columns, one row per event: what notes_to_events lists as Events, built in whole
    arrays, so that encoding a corpus loops over no note in Python.

    Row i is an event of kinds[i] (NOTE_EVENT: a note or chord; REST_EVENT; SYMBOL_EVENT: a chord symbol;
    METER_EVENT) whose pitches, ascending, are pitches[pitch_starts[i]: pitch_starts[i] + pitch_counts[i]].
    """

    kinds: np.ndarray
    durations: np.ndarray
    shifts: np.ndarray
    velocities: np.ndarray  # MIDI velocity (a bin's middle) of a note event where the encoding keeps them, else -1
    programs: np.ndarray  # General MIDI program (or DRUMS) of a note event where it keeps instruments, else -1
    codes: np.ndarray  # a chord symbol's code, -1 for other events
    meters: np.ndarray  # (numerator, denominator) of a meter event, (0, 0) for other events
    pitch_starts: np.ndarray
    pitch_counts: np.ndarray
    pitches: np.ndarray
    clipped: int  # notes whose duration was clipped to the longest the encoding keeps

    def __len__(self):
        return len(self.kinds)

    @classmethod
    def from_events(cls, events):
        """The table of a list of Events (with their shifts)."""
        def column(values):
            return np.array(list(values), dtype=np.int64)

        counts = column(len(event.pitches) for event in events)
        return cls(
            kinds=column(METER_EVENT if event.meter is not None else SYMBOL_EVENT if event.symbol is not None
                         else NOTE_EVENT if event.pitches else REST_EVENT for event in events),
            durations=column(event.duration for event in events), shifts=column(event.shift for event in events),
            velocities=column(-1 if event.velocity is None else event.velocity for event in events),
            programs=column(-1 if event.program is None else event.program for event in events),
            codes=column(-1 if event.symbol is None else event.symbol for event in events),
            meters=column(event.meter or (0, 0) for event in events).reshape(-1, 2),
            pitch_starts=np.cumsum(counts) - counts, pitch_counts=counts,
            pitches=column(pitch for event in events for pitch in event.pitches), clipped=0)

    def events(self):
        """The rows as a list of Events."""
        rows = zip(self.kinds.tolist(), self.durations.tolist(), self.shifts.tolist(), self.velocities.tolist(),
                   self.programs.tolist(), self.codes.tolist(), self.meters.tolist(), self.pitch_starts.tolist(),
                   self.pitch_counts.tolist())
        pitches = self.pitches.tolist()
        return [Event(tuple(pitches[start: start + count]), duration, shift, None if velocity < 0 else velocity,
                      None if program < 0 else program, None if code < 0 else code,
                      tuple(meter) if kind == METER_EVENT else None)
                for kind, duration, shift, velocity, program, code, meter, start, count in rows]


def _groups(notes, settings):
    """Notes -> (group keys, pitches, starts, counts, group order).

    The notes of one group share onset, duration and what `settings` keep of program and velocity (the columns
    of its key: onset, program or -1, duration, velocity bin's middle or -1), and sound as one chord: its
    pitches are pitches[starts[g]: starts[g] + counts[g]], ascending. The group order is the order of events:
    by onset, then program, then highest pitch first (so the top voice leads), then longest first.
    """
    notes = as_notes(notes)
    settings = settings or EncodingSettings()
    velocities = (quantize_velocity(notes[:, VELOCITY], settings.velocity_bins) if settings.velocity_bins
                  else np.full(len(notes), -1))
    programs = notes[:, PROGRAM] if settings.instruments else np.full(len(notes), -1)
    keys = np.column_stack([notes[:, ONSET], programs, notes[:, DURATION], velocities])
    order = np.lexsort((notes[:, PITCH], velocities, notes[:, DURATION], programs, notes[:, ONSET]))
    keys, pitches = keys[order], notes[order, PITCH]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = (keys[1:] != keys[:-1]).any(axis=1)
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(keys)))
    highest = pitches[starts + counts - 1]
    group_keys = keys[starts]
    group_order = np.lexsort((group_keys[:, 3], -group_keys[:, 2], -highest, group_keys[:, 1], group_keys[:, 0]))
    return group_keys, pitches, starts, counts, group_order


def count_chords(notes, settings=None):
    """How often each chord (two or more pitches of one event, as `settings` groups them) occurs."""
    _, pitches, starts, counts, _ = _groups(notes, settings)
    chords = np.flatnonzero(counts > 1)
    return Counter(tuple(pitches[starts[g]: starts[g] + counts[g]].tolist()) for g in chords.tolist())


def event_table(notes, settings, known_chords, symbols=ChordSymbols.none(), meters=()):
    """Notes, ChordSymbols and meters (rows of grid step, numerator, denominator) -> their EventTable.

    The notes of one onset, duration, program and velocity bin make one event: a chord where the vocabulary
    knows it (`known_chords`, ascending pitch tuples), else one event per note, highest first. A meter comes
    first of the events at its onset, then a symbol, its duration clipped like a note's (but not counted). Each
    event's shift reaches the next onset; a gap longer than the largest shift goes on in rest events.
    """
    group_keys, pitches, starts, counts, group_order = _groups(notes, settings)
    if not len(starts):
        return EventTable.from_events([])
    piece_end = int((group_keys[:, 0] + group_keys[:, 2]).max())
    whole = np.zeros(len(starts), dtype=bool)
    if known_chords:
        for group in np.flatnonzero(counts > 1).tolist():
            whole[group] = tuple(pitches[starts[group]: starts[group] + counts[group]].tolist()) in known_chords
    # Note events in event order: a whole chord is one event, any other group one event per note, highest first.
    group_order_counts = np.where(whole[group_order], 1, counts[group_order])
    group_of_event = np.repeat(group_order, group_order_counts)
    rank = np.arange(len(group_of_event)) - np.repeat(np.cumsum(group_order_counts) - group_order_counts,
                                                       group_order_counts)
    event_whole = whole[group_of_event]
    highest_first = starts[group_of_event] + counts[group_of_event] - 1 - rank
    note_starts = np.where(event_whole, starts[group_of_event], highest_first)
    note_counts = np.where(event_whole, counts[group_of_event], 1)
    note_keys = group_keys[group_of_event]
    max_duration = settings.max_duration_steps
    clipped = int(counts[group_keys[:, 2] > max_duration].sum())

    meters = np.asarray(meters, dtype=np.int64).reshape(-1, 3)
    meters = meters[(meters[:, 0] >= 0) & (meters[:, 0] < piece_end)]
    symbol_rows = np.flatnonzero(symbols.onsets < piece_end) if len(symbols) else np.zeros(0, np.int64)
    events = len(meters) + len(symbol_rows) + len(note_keys)
    kinds = np.concatenate([np.full(len(meters), METER_EVENT), np.full(len(symbol_rows), SYMBOL_EVENT),
                            np.full(len(note_keys), NOTE_EVENT)])
    onsets = np.concatenate([meters[:, 0], np.asarray(symbols.onsets, np.int64)[symbol_rows], note_keys[:, 0]])
    # In a stable sort by onset, then meters before symbols before notes, each kind keeps its own order.
    order = np.lexsort((np.arange(events), _kind_rank(kinds), onsets))
    columns = {
        "durations": np.concatenate([np.zeros(len(meters), np.int64),
                                     np.minimum(np.asarray(symbols.durations, np.int64)[symbol_rows], max_duration),
                                     np.minimum(note_keys[:, 2], max_duration)]),
        "velocities": np.concatenate([np.full(len(meters) + len(symbol_rows), -1), note_keys[:, 3]]),
        "programs": np.concatenate([np.full(len(meters) + len(symbol_rows), -1), note_keys[:, 1]]),
        "codes": np.concatenate([np.full(len(meters), -1), np.asarray(symbols.codes, np.int64)[symbol_rows],
                                 np.full(len(note_keys), -1)]),
        "pitch_starts": np.concatenate([np.zeros(len(meters) + len(symbol_rows), np.int64), note_starts]),
        "pitch_counts": np.concatenate([np.zeros(len(meters) + len(symbol_rows), np.int64), note_counts]),
    }
    meter_columns = np.concatenate([meters[:, 1:], np.zeros((len(symbol_rows) + len(note_keys), 2), np.int64)])
    kinds, onsets, meter_columns = kinds[order], onsets[order], meter_columns[order]
    columns = {name: values[order] for name, values in columns.items()}
    gaps = np.append(onsets[1:], piece_end) - onsets
    return _with_rests(kinds, gaps, columns, meter_columns, pitches, clipped, settings)


def _kind_rank(kinds):
    """Meters first of the events at an onset, then chord symbols, then notes."""
    return _KIND_RANKS[kinds]


_KIND_RANKS = np.zeros(4, dtype=np.int64)
_KIND_RANKS[[NOTE_EVENT, REST_EVENT, SYMBOL_EVENT, METER_EVENT]] = [2, 2, 1, 0]


def _with_rests(kinds, gaps, columns, meters, pitches, clipped, settings):
    """The table of events whose gaps to the next onset are `gaps`: each event shifts by its gap, up to the
    largest shift, and rest events (of the largest shift, the last one of what is left) fill the rest."""
    max_shift = settings.max_shift_steps
    rests = np.maximum(-(-gaps // max_shift) - 1, 0)
    rows = 1 + rests
    first = np.cumsum(rows) - rows  # each event's row; its rests follow it
    total = int(rows.sum())
    owner = np.repeat(np.arange(len(kinds)), rows)
    within = np.arange(total) - first[owner]  # 0 for the event, 1.. for its rests
    shifts = np.minimum(gaps[owner] - within * max_shift, max_shift)
    is_rest = within > 0
    out = {name: np.where(is_rest, fill, values[owner]) for name, values, fill in (
        ("durations", columns["durations"], 0), ("velocities", columns["velocities"], -1),
        ("programs", columns["programs"], -1), ("codes", columns["codes"], -1),
        ("pitch_starts", columns["pitch_starts"], 0), ("pitch_counts", columns["pitch_counts"], 0))}
    out["durations"] = np.where(is_rest, np.minimum(shifts, settings.max_duration_steps), out["durations"])
    return EventTable(kinds=np.where(is_rest, REST_EVENT, kinds[owner]), shifts=shifts,
                      meters=np.where(is_rest[:, None], 0, meters[owner]), pitches=pitches, clipped=clipped, **out)


def notes_to_events(notes, settings, known_chords, symbols=ChordSymbols.none(), meters=()):
    """Notes, ChordSymbols and meters -> (events, number of notes whose duration was clipped): event_table's rows
    as Events."""
    table = event_table(notes, settings, known_chords, symbols, meters)
    return table.events(), table.clipped


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


def event_meters(events):
    """The meters the events name, rows of (grid step, numerator, denominator), 4/4 from step 0 until the first."""
    rows, time = [], 0
    for event in events:
        if event.meter is not None:
            if rows and rows[-1][0] == time:
                rows.pop()
            rows.append((time, *event.meter))
        time += event.shift
    if not rows or rows[0][0] > 0:
        rows.insert(0, (0, *DEFAULT_METER))
    return np.array(rows, dtype=np.int64)


def event_symbols(events):
    """The ChordSymbols the events name."""
    rows, time = [], 0
    for event in events:
        if event.symbol is not None:
            rows.append((time, event.duration, event.symbol))
        time += event.shift
    return ChordSymbols(*zip(*rows)) if rows else ChordSymbols.none()
