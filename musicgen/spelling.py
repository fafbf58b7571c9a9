"""Events spelled as token ids in whole arrays: the columns of Vocabulary.encode_table, one row per event of an
EventTable (musicgen/encoding.py), so that encoding a corpus loops over no note in Python.

A row holds an event's instrument, velocity, what sounds (a note, a chord, a rest, or the chord symbol or meter
it names), duration and shift token, ABSENT where the event has no such part; read row by row, the present
ones are the event's tokens in the order the grammar wants them.
"""

import numpy as np

from musicgen.encoding import METER_EVENT, NOTE_EVENT, REST_EVENT, SYMBOL_EVENT
from musicgen.notes import DEFAULT_VELOCITY, DRUMS
from musicgen.tokens import KINDS
from musicgen.velocities import quantize_velocity

ABSENT, MISSING = -1, -2  # a part the event does not have; a token the vocabulary lacks
INSTRUMENT, VELOCITY, WHAT, DURATION, SHIFT = range(5)


class Spelling:
    """One vocabulary's token ids by what they mean (pitch, chord, program, velocity, steps), read from its arrays,
    for spelling whole EventTables."""

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary
        settings, kinds = vocabulary.settings, vocabulary.kinds

        def by_value(kind, values, size):
            lookup = np.full(size, MISSING, dtype=np.int64)
            ids = np.flatnonzero(kinds == KINDS.index(kind))
            lookup[np.asarray(values)[ids]] = ids
            return lookup

        lowest = [pitches[0] if pitches else -1 for pitches in vocabulary.pitches]
        self.notes = by_value("note", lowest, 128)
        self.chords = {vocabulary.pitches[token]: token for token in np.flatnonzero(kinds == KINDS.index("chord"))}
        self.rest = int(np.flatnonzero(kinds == KINDS.index("rest"))[0])
        self.instruments = by_value("instrument", vocabulary.programs, DRUMS + 1)
        bins = settings.velocity_bins
        middles = quantize_velocity(np.arange(128), bins) if bins else np.zeros(128, dtype=np.int64)
        self.velocities = by_value("velocity", vocabulary.velocities, 128)[middles]  # by MIDI velocity 0..127
        self.durations = by_value("duration", vocabulary.duration_steps, settings.max_duration_steps + 1)
        self.shifts = by_value("shift", vocabulary.shift_steps, settings.max_shift_steps + 1)

    def columns(self, table):
        """(events, 5) token ids of the table's events. A note event without a program plays program 0; without a
        velocity, DEFAULT_VELOCITY. KeyError where the vocabulary lacks a token an event needs."""
        vocabulary, kinds = self.vocabulary, table.kinds
        note, symbol, meter = kinds == NOTE_EVENT, kinds == SYMBOL_EVENT, kinds == METER_EVENT
        columns = np.full((len(table), 5), ABSENT, dtype=np.int64)
        if vocabulary.settings.instruments:
            columns[note, INSTRUMENT] = self.instruments[np.maximum(table.programs[note], 0)]
        if vocabulary.settings.velocity_bins:
            velocities = table.velocities[note]
            columns[note, VELOCITY] = self.velocities[np.where(velocities < 0, DEFAULT_VELOCITY,
                                                               np.minimum(velocities, 127))]
        single = note & (table.pitch_counts == 1)
        columns[single, WHAT] = self.notes[table.pitches[table.pitch_starts[single]]]
        pitches = table.pitches.tolist()
        for row in np.flatnonzero(note & (table.pitch_counts > 1)).tolist():  # chords the vocabulary has
            start = table.pitch_starts[row]
            columns[row, WHAT] = self.chords.get(tuple(pitches[start: start + table.pitch_counts[row]]), MISSING)
        columns[kinds == REST_EVENT, WHAT] = self.rest
        columns[symbol, WHAT] = [vocabulary.symbols.get(code, MISSING) for code in table.codes[symbol].tolist()]
        columns[meter, WHAT] = [vocabulary.meters.get(tuple(pair), MISSING) for pair in table.meters[meter].tolist()]
        columns[~meter, DURATION] = self.durations[table.durations[~meter]]
        columns[:, SHIFT] = self.shifts[table.shifts]
        if (columns == MISSING).any():
            row = int(np.flatnonzero((columns == MISSING).any(axis=1))[0])
            raise KeyError(f"the vocabulary has no token for a part of {table.events()[row]}")
        return columns
