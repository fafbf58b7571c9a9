"""MAESTRO, POP909 and pop songs as they are: the encoding the corpus gets, and round trips through it to MIDI.

Each round trip reads a file, puts it on the grid the corpus chose, encodes it to
tokens, decodes the tokens, writes MIDI with musicgen.midi and reads that back
with pretty_midi, a reader of its own.
"""

from collections import Counter

import numpy as np
import pretty_midi
import pytest
from conftest import shared

import preprocess
from musicgen import readers
from musicgen.dataset import load_processed
from musicgen.encoding import count_chords, events_to_notes
from musicgen.encoding_choice import EncodingRequest, piece_traits
from musicgen.midi import write_midi
from musicgen.notes import DRUMS
from musicgen.recipe import Recipe
from musicgen.vocabulary import Vocabulary

PERFORMANCES = ["Maestro_1.mid", "Maestro_2.mid", "Maestro_3.mid", "Maestro_4.mid", "Maestro_5.mid",
                "POP909_008.mid", "POP909_010.mid"]
SONGS = ["Aicha.mid", "Funkytown.mid", "Girls Just Want to Have Fun.mid", "I Gotta Feeling.mid", "Shut Up.mid",
         "d6caebd1964d9e4a3c5ea59525230e2a.mid"]
WHOLE_PIECE = Recipe(readers.TrackSelection(keep_drums=True), max_silence_quarters=96)  # no silence shortened


def round_trip(path, tmp_path):
    """(piece as read, settings the file alone would get, clipped notes, the round trip's pretty_midi.PrettyMIDI)."""
    piece = readers.read_file(path, WHOLE_PIECE.selection)[0]
    settings = EncodingRequest().settings([piece_traits(piece)])
    grid = WHOLE_PIECE.grid_notes(piece, settings)
    vocabulary = Vocabulary.build(settings, Counter(count_chords(grid.notes, settings)), 1024, 2)
    tokens, _, clipped = vocabulary.encode_notes(grid.notes)
    write_midi(tmp_path / "back.mid", events_to_notes(vocabulary.decode(tokens)), settings.steps_per_quarter, 120,
               grid.tempo_changes)
    return piece, settings, clipped, pretty_midi.PrettyMIDI(str(tmp_path / "back.mid"))


@pytest.mark.parametrize("name", PERFORMANCES)
def test_performances_come_back_within_10_ms_and_half_a_velocity_bin(name, tmp_path):
    piece, settings, clipped, midi = round_trip(shared("real-midi/piano-performance") / name, tmp_path)
    assert (settings.timing, settings.steps_per_quarter, settings.velocity_bins) == ("seconds", 50, 32)
    step = 0.5 / settings.steps_per_quarter  # a "quarter" is half a second
    assert step == 0.01
    starts, ends = piece.seconds(piece.onsets), piece.seconds(piece.onsets + piece.durations)
    moved = np.rint(starts.min() / step) * step  # the first onset moves to 0, by whole steps
    steps = np.rint((starts - moved) / step).astype(int)
    # What a listener hears, on the 10 ms grid: one note per key and step, the longest (several tracks may strike
    # a key at once), ending where its key is struck again at a later step, by whichever track.
    played = {}
    for pitch in np.unique(piece.pitches).tolist():
        on_key = np.flatnonzero(piece.pitches == pitch)
        key_steps = np.unique(steps[on_key])
        for index in on_key.tolist():
            later = key_steps[key_steps > steps[index]]
            end = min(ends[index], later[0] * step + moved) if len(later) else ends[index]
            end = max(end, starts[index] + step)
            start, held_end, velocities = played.get((pitch, steps[index]), (starts[index] - moved, 0, set()))
            played[pitch, steps[index]] = (start, max(held_end, end - moved), velocities | {int(piece.velocities[index])})
    # A key struck twice within one 10 ms step by two tracks (POP909's melody and piano) is one note; MAESTRO has none.
    assert name.startswith("POP909") or len(played) == len(piece.pitches)
    written = [note for instrument in midi.instruments for note in instrument.notes]
    assert len(written) == len(played), "no note lost or added"
    longest = settings.max_duration_steps * step
    half_bin = int(np.ceil(127 / settings.velocity_bins / 2))  # 2 velocities, in whole numbers
    for note in written:
        step_of = round(note.start / step)
        start, end, velocities = next(played[note.pitch, s] for s in (step_of, step_of - 1, step_of + 1)
                                    if (note.pitch, s) in played)
        assert abs(note.start - start) <= step / 2 + 1e-6
        assert abs(note.end - min(end, start + longest)) <= step + 1e-6
        assert min(abs(note.velocity - velocity) for velocity in velocities) <= half_bin
    lengths = np.array([end - start for start, end, _ in played.values()])
    assert (lengths > longest + step).sum() <= clipped <= (lengths > longest - step).sum(), "only the longest clipped"


@pytest.mark.parametrize("name", SONGS)
def test_songs_come_back_with_every_note_on_its_instrument_drums_on_channel_10_and_the_tempo_map(name, tmp_path):
    piece, settings, _, midi = round_trip(shared("real-midi/pop-multitrack") / name, tmp_path)
    assert (settings.timing, settings.instruments) == ("beats", True)
    spq = settings.steps_per_quarter
    onsets = np.rint(piece.onsets * spq).astype(int)
    first = onsets.min()
    read = Counter(zip(piece.programs.tolist(), piece.pitches.tolist(), (onsets - first).tolist()))
    ticks_per_step = midi.resolution // spq
    written = Counter((DRUMS if instrument.is_drum else instrument.program, note.pitch,
                       midi.time_to_tick(note.start) // ticks_per_step)
                      for instrument in midi.instruments for note in instrument.notes)
    assert written == Counter(set(read)), "every note on its program and step; a key doubled on one instrument once"
    assert DRUMS in piece.programs and [i.is_drum for i in midi.instruments].count(True) == 1
    # The tempo at every note, as written, is the file's tempo there (written tempos are whole hundredths).
    times, bpms = midi.get_tempo_changes()
    change_steps = np.array([midi.time_to_tick(time) // ticks_per_step for time in times])
    note_steps = np.array(sorted(onsets - first))
    written_bpm = bpms[np.searchsorted(change_steps, note_steps, side="right") - 1]
    tempo_changes = piece.tempo_changes
    change_steps_read = np.rint(tempo_changes[:, 0] * spq)  # tempo changes move to the grid with the notes
    read_bpm = tempo_changes[np.searchsorted(change_steps_read, note_steps + first, side="right") - 1, 1]
    assert np.abs(written_bpm - read_bpm).max() < 1
    if name.startswith("d6caebd"):  # the Lakh file: 65 tempo changes, 19 distinct tempos under its notes
        assert len(times) > 40 and len(np.unique(read_bpm)) >= 19


def test_a_corpus_chooses_its_encoding_and_says_so(tmp_path, capsys):
    pieces = shared("real-midi")
    preprocess.main(["--input", str(pieces / "piano-performance"), "--output", str(tmp_path / "piano"),
                     "--workers", "1", "--min-notes", "1"])
    preprocess.main(["--input", str(pieces / "pop-multitrack"), "--output", str(tmp_path / "pop"), "--workers", "1",
                     "--keep-drums"])
    preprocess.main(["--input", str(pieces / "pop-multitrack"), "--output", str(tmp_path / "flat"), "--workers", "1",
                     "--timing", "seconds", "--velocity-bins", "0", "--no-instruments", "--max-shift", "4"])
    out = capsys.readouterr().out
    assert "encoding: 10 ms steps, 32 velocity bins (of 7 pieces, 7 performances, 7 with dynamics" in out
    assert "encoding: beats (4 steps per quarter), 32 velocity bins, instruments, meters (of 6 pieces, 0 performances" in out
    assert "encoding: 10 ms steps (as asked)" in out
    piano, pop, flat = (load_processed(tmp_path / name)[0] for name in ("piano", "pop", "flat"))
    assert (piano.settings.timing, piano.settings.velocity_bins, piano.settings.instruments) == ("seconds", 32, False)
    assert (pop.settings.timing, pop.settings.velocity_bins, pop.settings.instruments) == ("beats", 32, True)
    assert (flat.settings.timing, flat.settings.velocity_bins, flat.settings.max_shift_quarters) == ("seconds", 0, 4)
    assert "inst:drums" in pop.tokens and "vel:3" in pop.tokens and "inst:0" not in flat.tokens
    assert not any(token.startswith("inst:") for token in piano.tokens)
    song = pop.decode(load_processed(tmp_path / "pop", ("train",))[1]["train"].piece(0))
    assert len({event.program for event in song if event.pitches}) > 3
