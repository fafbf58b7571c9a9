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
from musicgen.vocabulary import KINDS

_EVENT_START = [KINDS.index(kind) for kind in ("start", "control", "shift")]
_PITCHED = [KINDS.index(kind) for kind in ("note", "chord")]
_REST = KINDS.index("rest")
_VELOCITY, _DURATION, _SHIFT, _HARMONY, _END = (KINDS.index(kind)
                                                 for kind in ("velocity", "duration", "shift", "harmony", "end"))


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
        highest = np.where(vocabulary.strikes.any(axis=1), 127 - np.argmax(vocabulary.strikes[:, ::-1], axis=1), -1)
        self.highest_pitch = highest  # per token: its highest pitch (-1 for tokens without pitches)
        self.kinds = vocabulary.kinds

    @property
    def done(self):
        """Rows whose music has reached the melody's end."""
        return self.time >= self.end

    def allowed(self, previous, allowed):
        """`allowed` (batch, vocabulary), narrowed for each row by the melody."""
        allowed = allowed.copy()
        kinds = self.kinds[np.asarray(previous)]
        for row in range(len(allowed)):
            placed = self.placed[row]
            due = placed < len(self.onsets) and self.onsets[placed] <= self.time[row]
            if np.isin(kinds[row], _EVENT_START) or kinds[row] == _VELOCITY:
                if due and self.vocabulary.settings.velocity_bins and kinds[row] != _VELOCITY:
                    allowed[row] &= self.kinds == _VELOCITY  # the melody note's loudness is the model's choice
                elif due:
                    only = np.zeros(len(allowed[row]), bool)
                    only[self.vocabulary.note_id(int(self.pitches[placed]))] = True
                    allowed[row] &= only
                else:
                    ceiling = self.pitches[max(placed - 1, 0)]
                    too_high = np.isin(self.kinds, _PITCHED) & (self.highest_pitch >= ceiling)
                    allowed[row] &= ~too_high
            elif kinds[row] in _PITCHED and self.placing[row]:
                only = np.zeros(len(allowed[row]), bool)
                only[self.vocabulary.duration_id(int(self.durations[placed - 1]))] = True
                allowed[row] &= only
            elif kinds[row] == _DURATION:
                allowed[row] &= _shifts_until(self.vocabulary, self.onsets, placed, self.end, self.time[row])
            if not allowed[row].any():
                raise UserError("the melody cannot be kept under this model's grammar (a note outside its range?)")
        return allowed

    def advance(self, tokens):
        """Each row has taken one more token."""
        kinds = self.kinds[np.asarray(tokens)]
        for row, (token, kind) in enumerate(zip(np.asarray(tokens).tolist(), kinds.tolist())):
            placed = self.placed[row]
            if kind in _PITCHED:
                due = placed < len(self.onsets) and self.onsets[placed] <= self.time[row]
                self.placing[row] = bool(due)
                if due:
                    self.placed[row] += 1
            elif kind == _SHIFT:
                self.time[row] += self.vocabulary.shift_steps[token]
                self.placing[row] = False


def _shifts_until(vocabulary, onsets, placed, end, time):
    """Tokens allowed after a duration: no shift that passes the next given onset (or the end)."""
    limit = (onsets[placed] if placed < len(onsets) else end) - time
    return ~((vocabulary.kinds == _SHIFT) & (vocabulary.shift_steps > limit))


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
        self.symbol_ids = np.array([vocabulary.symbols[code] for code in symbols.codes.tolist()])
        steps = np.minimum(symbols.durations, vocabulary.settings.max_duration_steps)
        self.duration_ids = np.array([vocabulary.duration_id(n) for n in steps.tolist()])
        self.end = symbols.end
        self.time = np.zeros(rows, dtype=np.int64)
        self.placed = np.zeros(rows, dtype=np.int64)  # symbols placed so far in each row

    @property
    def done(self):
        return self.time >= self.end

    def allowed(self, previous, allowed):
        allowed = allowed.copy()
        kinds = self.vocabulary.kinds
        for row, kind in enumerate(kinds[np.asarray(previous)].tolist()):
            placed = self.placed[row]
            if kind in _EVENT_START:
                if placed < len(self.onsets) and self.onsets[placed] <= self.time[row]:
                    allowed[row] &= np.arange(len(kinds)) == self.symbol_ids[placed]
                else:
                    allowed[row] &= (kinds != _HARMONY) & (kinds != _END)
            elif kind == _HARMONY:
                allowed[row] &= np.arange(len(kinds)) == self.duration_ids[placed - 1]
            elif kind in _PITCHED or kind == _REST:
                allowed[row] &= self.vocabulary.duration_steps <= self.end - self.time[row]  # nothing sounds past the end
            elif kind == _DURATION:
                allowed[row] &= _shifts_until(self.vocabulary, self.onsets, placed, self.end, self.time[row])
        return allowed

    def advance(self, tokens):
        tokens = np.asarray(tokens)
        kinds = self.vocabulary.kinds[tokens]
        self.placed += kinds == _HARMONY
        self.time += np.where(kinds == _SHIFT, self.vocabulary.shift_steps[tokens], 0)


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
