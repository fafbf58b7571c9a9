"""Writing notes on the grid as a MIDI file."""

import pretty_midi

from musicgen.files import atomic_path


def write_midi(path, notes, steps_per_quarter, bpm, program=0, velocity=80):
    """notes: (onset, duration, pitch) in grid steps. Written atomically; returns the PrettyMIDI object."""
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
