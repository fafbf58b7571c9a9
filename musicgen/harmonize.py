"""Harmonize a melody: it stays the top voice while the model writes the voices under it (generate.py --harmonize).

Why constrained decoding of the plain model, and not a model trained for it:
the default encoding writes each onset's notes one at a time, highest first
(README, "The encoding of harmony"), so in every chorale the model has learned
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
"""

import numpy as np

from musicgen.encoding import DURATION, KINDS, ONSET, PITCH, pitch_name
from musicgen.errors import UserError

_EVENT_START = [KINDS.index(kind) for kind in ("start", "control", "shift")]
_PITCHED = [KINDS.index(kind) for kind in ("note", "chord")]
_VELOCITY, _DURATION, _SHIFT = (KINDS.index(kind) for kind in ("velocity", "duration", "shift"))


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
        self.duration_of = {steps: vocabulary.index[f"dur:{steps}"] for steps in range(1, self.durations.max() + 1)}

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
                    only[self.vocabulary.index[pitch_name(int(self.pitches[placed]))]] = True
                    allowed[row] &= only
                else:
                    ceiling = self.pitches[max(placed - 1, 0)]
                    too_high = np.isin(self.kinds, _PITCHED) & (self.highest_pitch >= ceiling)
                    allowed[row] &= ~too_high
            elif kinds[row] in _PITCHED and self.placing[row]:
                only = np.zeros(len(allowed[row]), bool)
                only[self.duration_of[int(self.durations[placed - 1])]] = True
                allowed[row] &= only
            elif kinds[row] == _DURATION:
                limit = (self.onsets[placed] if placed < len(self.onsets) else self.end) - self.time[row]
                allowed[row] &= ~((self.kinds == _SHIFT) & (self.vocabulary.shift_steps > limit))
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
