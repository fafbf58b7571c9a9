"""Edges that mutation testing found untested: velocity bins at their ends, a tempo map of three tempos, a
single file or a hidden folder given to the reader, a key released as the pedal goes down, and vocabulary
tokens out of range, a key struck twice, no notes at all, a file of drums alone, a note with no velocity."""

import numpy as np
import pretty_midi
import pytest

from musicgen.encoding import EncodingSettings
from musicgen.errors import UserError
from musicgen.notes import DEFAULT_VELOCITY, quantize
from musicgen.readers import (BPM_RANGE, TrackSelection, find_music_files, quarters_to_seconds, read_midi,
                              sustained_ends, tempo_map)
from musicgen.sampling import Onsets
from musicgen.velocities import bin_middles, velocity_bin
from musicgen.vocabulary import Vocabulary


@pytest.mark.parametrize("bins", [4, 16, 32, 127])
def test_velocity_bins_split_1_to_127_evenly_and_play_back_from_their_middles(bins):
    velocities = np.arange(1, 128)
    which = velocity_bin(velocities, bins)
    assert which[0] == 0 and which[-1] == bins - 1 and (np.diff(which) >= 0).all()
    sizes = np.bincount(which, minlength=bins)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1, "every bin used, as evenly as 127 velocities allow"
    middles = bin_middles(bins)
    for number in range(bins):
        assert abs(middles[number] - velocities[which == number].mean()) <= 0.5, f"bin {number}"
    assert velocity_bin(0, bins) == 0 and velocity_bin(300, bins) == bins - 1, "out-of-range velocities clipped"


def test_seconds_follow_a_tempo_map_of_three_tempos():
    tempo_map = np.array([[0.0, 120.0], [4.0, 60.0], [6.0, 240.0]])  # 2 s, then 2 s, then 1/4 s a quarter
    seconds = quarters_to_seconds(np.array([0.0, 2.0, 4.0, 5.0, 6.0, 8.0]), tempo_map)
    np.testing.assert_allclose(seconds, [0.0, 1.0, 2.0, 3.0, 4.0, 4.5])


def test_a_single_file_is_found_as_itself_and_hidden_folders_are_passed_over(tmp_path):
    tune = tmp_path / "tune.mid"
    tune.write_bytes(b"")
    notes = tmp_path / "notes.txt"
    notes.write_text("")
    assert find_music_files(tune) == ([tune], 0)
    assert find_music_files(notes) == ([], 1)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "old.mid").write_bytes(b"")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "other.mid").write_bytes(b"")
    found, ignored = find_music_files(tmp_path)
    assert found == [tune, tmp_path / "more" / "other.mid"] and ignored == 1, "the hidden folder's file is not"


def test_a_key_released_as_the_pedal_goes_down_sounds_until_the_pedal_comes_up():
    ends = sustained_ends(starts=[0, 0], ends=[10, 9], pitches=[60, 64], pedal_starts=[10], pedal_ends=[30])
    np.testing.assert_array_equal(ends, [30, 9]), "released at the press: held; released before it: not"


def test_vocabulary_tokens_and_instruments_out_of_range_are_refused():
    settings = EncodingSettings(velocity_bins=4)
    tokens = Vocabulary.build(settings, {}).tokens
    with pytest.raises(UserError, match="'vel:0' is not a General MIDI program or velocity"):
        Vocabulary(tokens + ["vel:0"], settings)
    with pytest.raises(UserError, match="^this model keeps no instruments, so there are none to choose from$"):
        Vocabulary.build(EncodingSettings(), {}).restricted_to({0})


def test_no_key_is_struck_twice_at_one_onset_but_may_be_once_time_moves_on():
    vocabulary = Vocabulary.build(EncodingSettings(), {})
    held = [vocabulary.start_id, vocabulary.note_id(60), vocabulary.duration_id(4), vocabulary.shift_id(0)]
    moved = held[:-1] + [vocabulary.shift_id(4)]
    for prompt, allowed in ((held, False), (moved, True)):
        prompt = np.array([prompt])
        assert Onsets(vocabulary, prompt).allowed(prompt[:, -1])[0, vocabulary.note_id(60)] == allowed
        assert Onsets(vocabulary, prompt).allowed(prompt[:, -1])[0, vocabulary.note_id(62)]


def test_no_notes_quantize_to_an_empty_table_of_notes():
    notes = quantize(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), 4)
    assert notes.shape == (0, 5)


def test_a_velocity_encoding_of_more_than_127_bins_is_refused():
    with pytest.raises(UserError, match="^encoding setting velocity_bins must be an integer in 0..127, got 128$"):
        EncodingSettings(velocity_bins=128).validate()


def test_a_file_of_drums_alone_is_skipped_unless_drums_are_kept(tmp_path):
    midi = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes += [pretty_midi.Note(velocity=90, pitch=36, start=i / 2, end=i / 2 + 0.25) for i in range(16)]
    midi.instruments.append(drums)
    midi.write(str(tmp_path / "drums.mid"))
    skipped = read_midi(tmp_path / "drums.mid", TrackSelection())
    assert (skipped.status, skipped.reason) == ("skipped", "only drum notes (use --keep-drums to keep them)")
    assert len(read_midi(tmp_path / "drums.mid", TrackSelection(keep_drums=True)).pitches) == 16


def test_a_note_without_a_velocity_token_plays_at_the_default_velocity():
    vocabulary = Vocabulary.build(EncodingSettings(velocity_bins=8), {})
    [event] = vocabulary.decode([vocabulary.note_id(60), vocabulary.duration_id(4), vocabulary.shift_id(4)])
    assert event.velocity == DEFAULT_VELOCITY


def test_a_tempo_map_keeps_the_last_tempo_stated_at_a_position_and_tempos_at_the_ends_of_the_range():
    stated = [(0, 100.0), (4, 90.0), (4, 60.0), (8, BPM_RANGE[0]), (12, BPM_RANGE[1]), (16, BPM_RANGE[1] + 1)]
    np.testing.assert_array_equal(tempo_map(stated), [[0, 100.0], [4, 60.0], [8, BPM_RANGE[0]], [12, BPM_RANGE[1]]])
