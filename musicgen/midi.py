"""Writing notes on the grid as a MIDI file, and the tempos we accept."""

import numpy as np

from musicgen.errors import UserError
from musicgen.files import atomic_path
from musicgen.instruments import instrument_name
from musicgen.meters import default_meters
from musicgen.notes import DRUMS, DURATION, ONSET, PITCH, PROGRAM, VELOCITY, as_notes

BPM_RANGE = (10, 400)  # tempos read from files, stored in runs and asked for in generate.py
TICKS_PER_QUARTER_TARGET = 480


def check_bpm(bpm, what="tempo"):
    low, high = BPM_RANGE
    if not low <= bpm <= high:
        raise UserError(f"{what} {bpm:g} bpm is outside {low}..{high}")


def write_midi(path, notes, steps_per_quarter, bpm, tempo_changes=None, meters=None):
    """Write notes (onset, duration, pitch[, velocity, program]) in grid steps as a MIDI file, atomically.

    One track per program, named after its General MIDI instrument; drum-kit
    notes (program DRUMS) on a drum track, which MIDI plays on channel 10. The
    tempo is `bpm`, or the tempo map `tempo_changes`, rows of (grid step, bpm); the time signatures `meters`,
    rows of (grid step, numerator, denominator), or 4/4 throughout.
    Ticks per quarter are a whole multiple of the grid, so every step is exact.
    """
    import symusic

    notes = as_notes(notes)
    ticks_per_step = max(1, TICKS_PER_QUARTER_TARGET // steps_per_quarter)
    score = symusic.Score(steps_per_quarter * ticks_per_step)
    changes = np.array([[0, bpm]]) if tempo_changes is None else np.asarray(tempo_changes, dtype=np.float64)
    for step, qpm in changes.tolist():
        score.tempos.append(symusic.Tempo(int(step) * ticks_per_step, float(qpm)))
    for step, numerator, denominator in (default_meters() if meters is None else np.asarray(meters)).tolist():
        score.time_signatures.append(symusic.TimeSignature(int(step) * ticks_per_step, numerator, denominator))
    for program in np.unique(notes[:, PROGRAM]).tolist():
        drums = program == DRUMS
        track = symusic.Track(instrument_name(program), 0 if drums else program, drums)
        for onset, duration, pitch, velocity in notes[notes[:, PROGRAM] == program][:, [ONSET, DURATION, PITCH, VELOCITY]].tolist():
            track.notes.append(symusic.Note(onset * ticks_per_step, duration * ticks_per_step, pitch, velocity))
        score.tracks.append(track)
    with atomic_path(path) as temporary:
        score.dump_midi(str(temporary))
