"""Notes as int arrays on the grid, and the helpers that make and keep them well formed.

A piece's notes are an (n, 5) int array with the columns ONSET, DURATION, PITCH,
VELOCITY and PROGRAM; onsets and durations count grid steps (see
encoding.EncodingSettings), programs are General MIDI's, or DRUMS for the drum kit.
quantize puts notes read in quarter notes on the grid; normalise_notes keeps one
note per key of an instrument at a time, as MIDI needs.
"""

import re

import numpy as np

PITCH_CLASS_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_PITCH_PATTERN = re.compile(r"^([A-Ga-g])([#b]{0,2})(-?\d+)$")
_LETTER_TO_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Notes are int arrays of shape (n, 5) with these columns; onset and duration in grid steps.
ONSET, DURATION, PITCH, VELOCITY, PROGRAM = range(5)
NOTE_COLUMNS = 5
DEFAULT_VELOCITY = 80  # for notes that have none (scores), and what a model without velocities plays at
DRUMS = 128  # the PROGRAM of drum-kit notes (MIDI channel 10), apart from the 128 General MIDI programs


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
    notes[:, ONSET] -= notes[:, ONSET].min()  # the same shift for every note: the order stays canonical
    return notes


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
    events. `notes` are in sort_notes' order (as quantize leaves them), and stay in it: notes at one onset move
    together, and a gap between onsets shrinks to no less than max_silence_steps + 1. Returns (notes, cuts):
    cuts[i] = (where a shortened silence ends, before the cut; steps taken out), so other times (a tempo map)
    can follow.
    """
    if len(notes) == 0:
        return notes, np.zeros((0, 2), dtype=np.int64)
    sounding_until = np.maximum.accumulate(notes[:, ONSET] + notes[:, DURATION])
    silence = np.zeros(len(notes), dtype=np.int64)
    silence[1:] = notes[1:, ONSET] - sounding_until[:-1]
    excess = np.maximum(silence - max_silence_steps, 0)
    cuts = np.stack([notes[excess > 0, ONSET], excess[excess > 0]], axis=1)
    notes = notes.copy()
    notes[:, ONSET] -= np.cumsum(excess)
    return notes, cuts


def sort_notes(notes):
    """Notes in a canonical order: by onset, then program, pitch, duration and velocity."""
    notes = as_notes(notes)
    return notes[np.lexsort((notes[:, VELOCITY], notes[:, DURATION], notes[:, PITCH], notes[:, PROGRAM],
                             notes[:, ONSET]))]
