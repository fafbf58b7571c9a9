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
from musicgen.notes import DEFAULT_VELOCITY, PROGRAM, VELOCITY, as_notes, normalise_notes, sort_notes
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
    velocities = (quantize_velocity(notes[:, VELOCITY], settings.velocity_bins) if keep_velocity
                  else np.full(len(notes), -1))
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


def notes_to_events(notes, settings, known_chords, symbols=ChordSymbols.none(), meters=()):
    """Notes, ChordSymbols and meters (rows of grid step, numerator, denominator) -> (events, number of notes whose
    duration was clipped).

    A meter comes first of the events at its onset, then a symbol, its duration clipped like a note's (but not
    counted)."""
    groups = group_simultaneous(notes, settings)
    if not groups:
        return [], 0
    piece_end = max(onset + event.duration for onset, event in groups)
    marks = [(int(step), Event((), 0, 0, meter=(int(numerator), int(denominator))))
             for step, numerator, denominator in np.asarray(meters, dtype=np.int64).reshape(-1, 3).tolist()
             if 0 <= step < piece_end]
    marks += [(onset, Event((), min(duration, settings.max_duration_steps), 0, symbol=code))
              for onset, duration, code in symbols if onset < piece_end]
    expanded = []
    clipped = 0
    for onset, event in sorted(marks + groups, key=lambda item: (item[0], item[1].meter is None,
                                                                  item[1].symbol is None)):
        if event.symbol is not None or event.meter is not None:
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
