"""Writing notes on the grid as a MIDI file, and the tempos we accept."""

from musicgen.errors import UserError
from musicgen.files import atomic_path

BPM_RANGE = (10, 400)  # tempos read from files, stored in runs and asked for in generate.py


def check_bpm(bpm, what="tempo"):
    low, high = BPM_RANGE
    if not low <= bpm <= high:
        raise UserError(f"{what} {bpm:g} bpm is outside {low}..{high}")


def write_midi(path, notes, steps_per_quarter, bpm, program=0, velocity=80):
    """notes: (onset, duration, pitch) in grid steps. Written atomically; returns the PrettyMIDI object."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    instrument = pretty_midi.Instrument(program=program, name=pretty_midi.program_to_instrument_name(program))
    seconds_per_step = 60.0 / bpm / steps_per_quarter
    for onset, duration, pitch in notes:
        start = onset * seconds_per_step
        instrument.notes.append(pretty_midi.Note(velocity, int(pitch), start, start + duration * seconds_per_step))
    midi.instruments.append(instrument)
    with atomic_path(path) as temporary:
        midi.write(str(temporary))
    return midi
