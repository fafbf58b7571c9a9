"""Music under given parts: a melody kept as the top voice while the model writes the voices under it
(generate.py --harmonize), or chords given while it writes the music over them (generate.py --chords).

Why constrained decoding of the plain model, and not a model trained for it:
the default encoding writes each onset's notes one at a time, highest first
(docs/preprocess.md, "The encoding of harmony"), so in every chorale the model has learned
from, the soprano note of an onset comes first and the alto, tenor and bass
follow it. Forcing the given melody note at each of its onsets, and letting the
model choose only notes below it, asks the model exactly what it was trained
to answer, with the melody so far and the current note in view; no model
needs to be trained again, and every corpus in the default encoding can do it.
What it cannot do is look ahead: the voices at one onset are chosen without
the melody notes that follow (a seq2seq or fill-in-the-middle model could).

The constraint works through the sampler's mask (Sampler.generate's
`constraint`); MelodyConstraint.allowed narrows what the grammar allows:

- at an onset of the melody, the event must be its note, with its duration;
- between them, notes must lie below the melody note sounding (or the last one);
- a shift may not pass the next melody onset, and generation ends with the melody.

ChordConstraint does the same for a chord progression, on models whose corpus
kept chord symbols (preprocess.py --chord-symbols): each given symbol is forced,
with its duration, as the first event at its onset, no other symbol may be
written, time may not pass a symbol's onset, and no note sounds past the last
chord. The model's training pieces
name each symbol where it starts, so it writes the music of that chord knowing
the chord and how long it holds.
"""

import numpy as np

from musicgen.chords import QUALITIES, QUALITY_NAMES, chord_tones, harmonic_window, symbol_name
from musicgen.errors import UserError
from musicgen.notes import DURATION, ONSET, PITCH
from musicgen.tokens import KINDS

_EVENT_START = [KINDS.index(kind) for kind in ("start", "control", "shift")]
_PITCHED = [KINDS.index(kind) for kind in ("note", "chord")]
_VELOCITY, _DURATION, _HARMONY, _END = (KINDS.index(kind) for kind in ("velocity", "duration", "harmony", "end"))


class _Parts:
    """What each token of a vocabulary holds, for judging a token by all its parts (a merged token holds several):
    its first part's kind, whether it holds a pitched part (and its highest pitch), a duration, a shift, a chord
    symbol."""

    def __init__(self, vocabulary):
        self.first = vocabulary.first_kinds
        self.pitched = vocabulary.holds("note", "chord")
        self.single = self.pitched & ~vocabulary.holds("chord")  # one note
        self.highest = np.where(self.pitched, 127 - np.argmax(vocabulary.strikes[:, ::-1], axis=1), -1)
        self.pitch = np.where(self.single, self.highest, -1)
        self.timed = vocabulary.holds("duration")
        self.duration = vocabulary.duration_steps
        self.shifted = vocabulary.ends_event
        self.shift = vocabulary.shift_steps
        self.symbol = np.where(vocabulary.holds("harmony"), vocabulary.symbol_codes, -1)


def _next_onset(onsets, placed, end):
    """The next given onset a row's time may not pass: onsets[placed], or the end after the last."""
    return onsets[placed] if placed < len(onsets) else end


class MelodyConstraint:
    """Keeps each row's music under a given melody (int notes (onset, duration, pitch, ...) on the grid)."""

    def __init__(self, vocabulary, melody, rows):
        if vocabulary.settings.instruments:
            raise UserError("--harmonize needs a model of one stream of notes; this one keeps instruments")
        melody = np.asarray(melody)
        if not len(melody):
            raise UserError("the melody to harmonize has no notes")
        self.vocabulary = vocabulary
        self.onsets = melody[:, ONSET].astype(np.int64)
        self.pitches = melody[:, PITCH].astype(np.int64)
        self.durations = np.minimum(melody[:, DURATION], vocabulary.settings.max_duration_steps).astype(np.int64)
        self.end = int((melody[:, ONSET] + melody[:, DURATION]).max())
        self.time = np.zeros(rows, dtype=np.int64)
        self.placed = np.zeros(rows, dtype=np.int64)  # melody notes placed so far in each row
        self.placing = np.zeros(rows, dtype=bool)  # the row's current event is a melody note
        self.parts = _Parts(vocabulary)

    @property
    def done(self):
        """Rows whose music has reached the melody's end."""
        return self.time >= self.end

    def allowed(self, previous, allowed):
        """`allowed` (batch, vocabulary), narrowed for each row by the melody: every part of a token is judged."""
        allowed = allowed.copy()
        last = self.vocabulary.last_kinds[np.asarray(previous)]
        parts = self.parts
        for row in range(len(allowed)):
            placed, time = self.placed[row], self.time[row]
            due = placed < len(self.onsets) and self.onsets[placed] <= time
            if np.isin(last[row], _EVENT_START) or last[row] == _VELOCITY:
                if due:  # the melody note, its loudness the model's choice where the encoding keeps one
                    loudness_first = self.vocabulary.settings.velocity_bins and last[row] != _VELOCITY
                    starts = (parts.first == _VELOCITY) if loudness_first else parts.pitched
                    melody_note = parts.pitch == self.pitches[placed]
                    ok = starts & (~parts.pitched | melody_note)
                    ok &= ~parts.timed | (parts.duration == self.durations[placed])
                    ok &= ~parts.shifted | (parts.shift <= _next_onset(self.onsets, placed + 1, self.end) - time)
                else:  # the voices under it: below the melody note sounding (or the last one)
                    ok = ~(parts.pitched & (parts.highest >= self.pitches[max(placed - 1, 0)]))
                    ok &= ~parts.shifted | (parts.shift <= _next_onset(self.onsets, placed, self.end) - time)
            elif np.isin(last[row], _PITCHED) and self.placing[row]:  # the melody note's duration
                ok = parts.duration == self.durations[placed - 1]
                ok &= ~parts.shifted | (parts.shift <= _next_onset(self.onsets, placed, self.end) - time)
            else:  # a shift may not pass the next melody onset
                ok = ~parts.shifted | (parts.shift <= _next_onset(self.onsets, placed, self.end) - time)
            allowed[row] &= ok
            if not allowed[row].any():
                raise UserError("the melody cannot be kept under this model's grammar (a note outside its range?)")
        return allowed

    def advance(self, tokens):
        """Each row has taken one more token."""
        parts = self.parts
        for row, token in enumerate(np.asarray(tokens).tolist()):
            placed = self.placed[row]
            if parts.pitched[token]:
                due = placed < len(self.onsets) and self.onsets[placed] <= self.time[row]
                self.placing[row] = bool(due)
                if due:
                    self.placed[row] += 1
            if parts.shifted[token]:
                self.time[row] += parts.shift[token]
                self.placing[row] = False


class ChordConstraint:
    """Keeps each row's music over a given progression (ChordSymbols)."""

    def __init__(self, vocabulary, symbols, rows):
        if not vocabulary.symbols:
            raise UserError("this model was trained without chord symbols, so it takes no --chords (preprocess its "
                            "corpus with --chord-symbols keep for ABC or MusicXML, infer for MIDI)")
        unknown = sorted({symbol_name(code) for code in symbols.codes.tolist() if code not in vocabulary.symbols})
        if unknown:
            known = " ".join(symbol_name(code) for code in vocabulary.symbols)
            raise UserError(f"this model never saw the chord {', '.join(unknown)} in training; it knows: {known}")
        self.vocabulary = vocabulary
        self.onsets = symbols.onsets
        self.codes = symbols.codes
        self.durations = np.minimum(symbols.durations, vocabulary.settings.max_duration_steps)
        self.end = symbols.end
        self.time = np.zeros(rows, dtype=np.int64)
        self.placed = np.zeros(rows, dtype=np.int64)  # symbols placed so far in each row
        self.parts = _Parts(vocabulary)

    @property
    def done(self):
        return self.time >= self.end

    def allowed(self, previous, allowed):
        """`allowed` (batch, vocabulary), narrowed for each row by the progression: every part of a token is
        judged."""
        allowed = allowed.copy()
        last = self.vocabulary.last_kinds[np.asarray(previous)]
        parts = self.parts
        for row in range(len(allowed)):
            placed, time = self.placed[row], self.time[row]
            if np.isin(last[row], _EVENT_START) and placed < len(self.onsets) and self.onsets[placed] <= time:
                # the symbol due, first at its onset, holding as long as it is given
                ok = parts.symbol == self.codes[placed]
                ok &= ~parts.timed | (parts.duration == self.durations[placed])
                ok &= ~parts.shifted | (parts.shift <= _next_onset(self.onsets, placed + 1, self.end) - time)
            else:
                if np.isin(last[row], _EVENT_START):
                    ok = (parts.symbol < 0) & (parts.first != _END)  # no other symbol, and no end before the last
                elif last[row] == _HARMONY:
                    ok = parts.duration == self.durations[placed - 1]
                else:
                    ok = np.ones(len(parts.first), dtype=bool)
                # no note or rest sounds past the end; a shift may not pass the next symbol's onset
                ok &= ~parts.timed | (parts.symbol >= 0) | (last[row] == _HARMONY) | (parts.duration <= self.end - time)
                ok &= ~parts.shifted | (parts.shift <= _next_onset(self.onsets, placed, self.end) - time)
            allowed[row] &= ok
        return allowed

    def advance(self, tokens):
        tokens = np.asarray(tokens)
        self.placed += self.parts.symbol[tokens] >= 0
        self.time += np.where(self.parts.shifted[tokens], self.parts.shift[tokens], 0)


def voiced(symbols, velocity=56, program=0):
    """ChordSymbols -> notes that play them: each chord in close position, its root in the octave from C3."""
    rows = []
    for onset, duration, code in symbols:
        root = 48 + code % 12
        rows.extend((onset, duration, root + interval, velocity, program)
                    for interval in QUALITIES[QUALITY_NAMES[code // 12]])
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def chord_tone_share(notes, symbols, steps_per_quarter, time_signature):
    """Of the top-voice notes sounding on strong beats, the share whose pitch class is in the chord symbol sounding
    there. `symbols`: ChordSymbols. The strong beats are counted from each symbol's onset (chords change on
    them), a bar apart, or half a bar from four quarters up: the grid itself starts on the first note, which in a
    piece with an upbeat is not a bar's start."""
    notes = np.asarray(notes)
    strong = harmonic_window(time_signature) * steps_per_quarter
    hits = total = 0
    for onset, duration, code in symbols:
        for time in np.arange(onset, onset + duration, strong).round().astype(np.int64):
            sounding = notes[(notes[:, ONSET] <= time) & (notes[:, ONSET] + notes[:, DURATION] > time)]
            if len(sounding):
                total += 1
                hits += int(sounding[:, PITCH].max()) % 12 in chord_tones(code)
    return hits / total if total else float("nan")


def triad_share(notes, steps_per_quarter):
    """The share of beats whose sounding pitch classes all belong to one major or minor triad (and hold at least
    two of its notes): how often the voices make a plain chord together."""
    notes = np.asarray(notes)
    if not len(notes):
        return float("nan")
    end = int((notes[:, ONSET] + notes[:, DURATION]).max())
    triads = [{root, (root + third) % 12, (root + 7) % 12} for root in range(12) for third in (3, 4)]
    hits = beats = 0
    for time in range(0, end, steps_per_quarter):
        sounding = notes[(notes[:, ONSET] <= time) & (notes[:, ONSET] + notes[:, DURATION] > time)]
        classes = set((sounding[:, PITCH] % 12).tolist())
        if len(classes) >= 2:
            beats += 1
            hits += any(classes <= triad for triad in triads)
    return hits / beats if beats else float("nan")
