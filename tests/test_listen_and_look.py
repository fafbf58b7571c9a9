"""Audio, sheet music and pictures: generate.py --wav/--musicxml/--plot and preprocess.py --report."""

import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from conftest import assert_picture

import generate
import preprocess
from musicgen import audio, readers
from musicgen.errors import UserError
from musicgen.midi import write_midi
from musicgen.notation import notatable, voices, write_musicxml
from musicgen.notes import quantize


def grid_notes(path, steps_per_quarter):
    """The notes of a MIDI or MusicXML file, read back with our own readers, on the grid."""
    piece = readers.read_file(Path(path), readers.TrackSelection())[0]
    assert isinstance(piece, readers.RawPiece), piece
    return sorted(map(tuple, quantize(piece.onsets, piece.durations, piece.pitches, steps_per_quarter)[:, :3].tolist()))


def assert_audible_and_as_long_as(wav_path, midi_path):
    samples, rate = audio.read_wav(wav_path)
    assert rate == audio.SAMPLE_RATE
    midi_seconds = pretty_midi.PrettyMIDI(str(midi_path)).get_end_time()
    assert abs(len(samples) / rate - midi_seconds) < 1.0
    assert np.sqrt(np.mean(samples ** 2)) > 0.01, "not silent"
    assert np.abs(samples).max() < 1.0, "not clipped"
    first_second = samples[:rate]
    assert np.abs(first_second).max() > 0.05, "the music starts at once"


def test_generate_writes_audio_sheet_music_and_a_piano_roll(trained_run, tmp_path, capsys):
    output = tmp_path / "tune.mid"
    generate.main(["--checkpoint", str(trained_run), "--seed", "C4 E4 G4 C4.E4.G4:2 R:1", "--length", "30",
                   "--output", str(output), "--random-seed", "1", "--wav", "--musicxml", "--plot"])
    out = capsys.readouterr().out
    for suffix in (".wav", ".musicxml", ".png"):
        assert str(output.with_suffix(suffix)) in out
    assert_audible_and_as_long_as(output.with_suffix(".wav"), output)
    in_midi = notatable(grid_notes(output, 4))[0][:, :3]  # an untrained model may write notes below C0
    assert grid_notes(output.with_suffix(".musicxml"), 4) == sorted(map(tuple, in_midi.tolist()))
    assert_picture(output.with_suffix(".png"), 1200, 450)


def test_wav_falls_back_to_sine_waves_with_one_warning_line(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    midi_path = tmp_path / "x.mid"
    write_midi(midi_path, np.array([[0, 8, 60], [0, 8, 64], [8, 4, 67], [12, 12, 72]]), 4, 120)
    warnings = []
    method = audio.render_wav(midi_path, tmp_path / "x.wav", warn=warnings.append)
    assert method.startswith("sine waves")
    assert len(warnings) == 1 and "\n" not in warnings[0] and "FluidSynth" in warnings[0]
    assert_audible_and_as_long_as(tmp_path / "x.wav", midi_path)
    assert overtone_ratio(*audio.read_wav(tmp_path / "x.wav")) < 0.01, "sine waves have no overtones"


@pytest.mark.skipif(not (shutil.which("fluidsynth") and audio.find_soundfont()),
                    reason="FluidSynth and a General MIDI SoundFont are not installed")
def test_fluidsynth_renders_a_real_piano(tmp_path):
    midi_path = tmp_path / "x.mid"
    write_midi(midi_path, np.array([[0, 8, 60], [0, 8, 64], [8, 4, 67], [12, 12, 72]]), 4, 120)
    method = audio.render_wav(midi_path, tmp_path / "x.wav", warn=pytest.fail)
    assert method.startswith("FluidSynth")
    assert_audible_and_as_long_as(tmp_path / "x.wav", midi_path)
    samples, rate = audio.read_wav(tmp_path / "x.wav")
    assert overtone_ratio(samples, rate) > 0.05, "a sampled piano has overtones"


def overtone_ratio(samples, rate, fundamental_hz=262):
    """Strength of the octave overtone of middle C against its fundamental, over the first second."""
    spectrum = np.abs(np.fft.rfft(samples[:rate, 0]))  # one second of samples: bin n is n Hz
    return spectrum[2 * fundamental_hz - 5: 2 * fundamental_hz + 6].max() / spectrum[fundamental_hz - 5: fundamental_hz + 6].max()


def test_a_missing_soundfont_is_a_one_line_error(trained_run, tmp_path):
    with pytest.raises(UserError, match="soundfont .* does not exist"):
        generate.main(["--checkpoint", str(trained_run), "--wav", "--soundfont", str(tmp_path / "none.sf2"),
                       "--output", str(tmp_path)])


def test_musicxml_keeps_voices_ties_and_rests(tmp_path):
    # A melody over a held chord, notes tied over bar lines in both voices, a rest, a long note.
    notes = [(0, 12, 48), (0, 12, 52), (0, 12, 55), (0, 2, 72), (2, 2, 74), (4, 6, 76), (10, 10, 77),
             (12, 8, 43), (24, 5, 60), (29, 3, 62), (32, 36, 64)]
    write_musicxml(tmp_path / "x.musicxml", np.array(notes), 4, 100, title="voices")
    assert grid_notes(tmp_path / "x.musicxml", 4) == sorted(notes)


def test_notes_below_c0_go_up_an_octave_in_sheet_music(tmp_path):
    moved = write_musicxml(tmp_path / "x.musicxml", np.array([[0, 4, 2], [4, 4, 12], [8, 4, 127]]), 4, 120)
    assert moved == 1
    assert grid_notes(tmp_path / "x.musicxml", 4) == [(0, 4, 14), (4, 4, 12), (8, 4, 127)]


def test_musicxml_on_a_triplet_grid(tmp_path):
    notes = [(0, 4, 60), (4, 4, 62), (8, 4, 64), (12, 12, 65), (12, 6, 69), (18, 6, 71), (24, 30, 72)]
    write_musicxml(tmp_path / "x.musicxml", np.array(notes), 12, 100)
    assert grid_notes(tmp_path / "x.musicxml", 12) == sorted(notes)


def test_voices_never_overlap_and_keep_every_note():
    notes = [(0, 8, 60), (0, 8, 64), (0, 2, 72), (2, 2, 74), (4, 8, 76), (8, 4, 55)]
    split = voices(notes)
    assert sorted((o, d, p) for voice in split for o, d, pitches in voice for p in pitches) == sorted(notes)
    for voice in split:
        assert all(a[0] + a[1] <= b[0] for a, b in zip(voice, voice[1:]))
    assert split[0][0] == (0, 2, [72]), "the first voice takes the first chord or note, lowest duration first"


def test_preprocess_report_draws_the_corpus(tune_folder, tmp_path):
    folder = tmp_path / "input"
    shutil.copytree(tune_folder, folder)
    (folder / "broken.mid").write_bytes(b"MThd garbage")
    output = tmp_path / "processed"
    preprocess.main(["--input", str(folder), "--output", str(output), "--report"])
    assert_picture(output / "report.png", 1600, 900)
