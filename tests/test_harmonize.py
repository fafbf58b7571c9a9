"""Harmonizing a melody: it stays the top voice, and the voices under it are the model's."""

import numpy as np
import pretty_midi
import pytest
from conftest import UniformDecoder, assert_picture

import generate
from musicgen import sampling
from musicgen.encoding import EncodingSettings, events_to_notes
from musicgen.errors import UserError
from musicgen.harmonize import MelodyConstraint, triad_share
from musicgen.vocabulary import Vocabulary

MELODY = np.array([(0, 4, 72, 80, 0), (4, 4, 74, 80, 0), (8, 8, 76, 80, 0), (16, 2, 71, 80, 0), (18, 6, 72, 80, 0)])


@pytest.mark.parametrize("settings", [EncodingSettings(), EncodingSettings(velocity_bins=8)])
def test_the_melody_is_kept_on_top_and_the_music_ends_with_it(settings):
    vocabulary = Vocabulary.build(settings, {(48, 52, 55): 3}, max_chords=4, min_chord_count=1)
    prompts = np.full((4, 1), vocabulary.start_id)
    constraint = MelodyConstraint(vocabulary, MELODY, rows=4)
    generated = sampling.get("sample", seed=2).generate(UniformDecoder(len(vocabulary)), vocabulary, prompts, 500,
                                                        constraint=constraint)
    assert constraint.done.all()
    for row in generated:
        events = vocabulary.decode(row)
        assert sum(event.shift for event in events) == 24, "the music ends where the melody does"
        notes = events_to_notes(events)
        melody = {(onset, pitch, duration) for onset, duration, pitch, *_ in MELODY.tolist()}
        written = {(onset, pitch, duration) for onset, duration, pitch, *_ in notes.tolist()}
        assert melody <= written
        for onset, duration, pitch, *_ in notes.tolist():
            if (onset, pitch, duration) not in melody:
                sounding = MELODY[MELODY[:, 0] <= onset][-1, 2]
                assert pitch < sounding, "under the melody note of its time"
        assert len(notes) > len(MELODY), "the uniform model adds voices"


def test_a_melody_needs_notes_and_one_stream():
    with pytest.raises(UserError, match="no notes"):
        MelodyConstraint(Vocabulary.build(EncodingSettings(), {}), np.zeros((0, 5), int), rows=1)
    with pytest.raises(UserError, match="keeps instruments"):
        MelodyConstraint(Vocabulary.build(EncodingSettings(instruments=True), {}), MELODY, rows=1)


def test_triad_share():
    c_major = np.array([(0, 4, 60, 80, 0), (0, 4, 64, 80, 0), (0, 4, 67, 80, 0), (0, 4, 72, 80, 0)])
    cluster = np.array([(0, 4, 60, 80, 0), (0, 4, 61, 80, 0), (0, 4, 62, 80, 0)])
    assert triad_share(c_major, 4) == 1.0
    assert triad_share(cluster, 4) == 0.0
    assert triad_share(np.concatenate([c_major, cluster + [4, 0, 0, 0, 0]]), 4) == 0.5


def write_melody(path, pitches):
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    instrument = pretty_midi.Instrument(program=0)
    instrument.notes = [pretty_midi.Note(90, pitch, i * 0.5, i * 0.5 + 0.5) for i, pitch in enumerate(pitches)]
    midi.instruments.append(instrument)
    midi.write(str(path))
    return path


def test_harmonize_writes_voices_under_the_melody(trained_run, tmp_path, capsys):
    melody = write_melody(tmp_path / "melody.mid", [72, 74, 76, 77, 79, 77, 76, 74, 72])
    output = tmp_path / "harmonized.mid"
    generate.main(["--checkpoint", str(trained_run), "--harmonize", str(melody), "--output", str(output),
                   "--random-seed", "1", "--plot"])
    assert "harmonized" in capsys.readouterr().out
    notes = sorted((round(n.start, 3), n.pitch) for i in pretty_midi.PrettyMIDI(str(output)).instruments
                   for n in i.notes)
    tops = {}
    for start, pitch in notes:
        tops[start] = max(tops.get(start, 0), pitch)
    assert [tops[i * 0.5] for i in range(9)] == [72, 74, 76, 77, 79, 77, 76, 74, 72]
    assert_picture(tmp_path / "harmonized.png", 1200, 450)


@pytest.mark.parametrize("extra, message", [(["--strategy", "beam"], "other than beam"),
                                            (["--seed", "C4"], "give one of")])
def test_harmonize_argument_errors(trained_run, tmp_path, extra, message):
    melody = write_melody(tmp_path / "melody.mid", [72, 74])
    with pytest.raises(UserError, match=message):
        generate.main(["--checkpoint", str(trained_run), "--harmonize", str(melody), "--output",
                       str(tmp_path / "x.mid"), *extra])


def test_a_melody_file_without_notes_is_refused(trained_run, tmp_path):
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(UserError, match="--harmonize file .* has no notes"):
        generate.main(["--checkpoint", str(trained_run), "--harmonize", str(empty), "--output",
                       str(tmp_path / "x.mid")])
