import json
from collections import Counter

import numpy as np
import pytest
from conftest import shared

from musicgen.encoding import EncodingSettings, Event, count_chords, events_to_notes
from musicgen.errors import UserError
from musicgen.notes import parse_pitch, pitch_name, quantize, sort_notes
from musicgen.vocabulary import Vocabulary

SETTINGS = EncodingSettings()  # 4 steps per quarter, durations and shifts up to 8 quarters


def vocabulary_for(*pieces, min_chord_count=1):
    counts = sum((count_chords(p) for p in pieces), start=Counter())
    return Vocabulary.build(SETTINGS, counts, min_chord_count=min_chord_count)


def round_trip(vocabulary, notes):
    tokens, _, clipped = vocabulary.encode_notes(notes)
    assert clipped == 0
    return events_to_notes(vocabulary.decode(tokens))


def test_pitch_names_follow_scientific_notation():
    assert pitch_name(60) == "C4" and pitch_name(61) == "C#4" and pitch_name(0) == "C-1" and pitch_name(127) == "G9"
    assert parse_pitch("C4") == 60 and parse_pitch("Bb3") == 58 and parse_pitch("f#5") == 78
    with pytest.raises(ValueError):
        parse_pitch("H4")
    with pytest.raises(ValueError):
        parse_pitch("G#9")  # 128


def test_chord_rest_and_overlap_survive_the_round_trip():
    notes = sort_notes([
        (0, 8, 60), (0, 8, 64), (0, 8, 67),  # a C major chord, half note
        (0, 4, 72),  # a melody note starting with it, shorter
        (4, 2, 74),  # starts while the chord still sounds
        (12, 4, 76),  # after a quarter rest
        (80, 4, 77),  # after a rest longer than the largest shift (8 quarters = 32 steps)
    ])
    vocabulary = vocabulary_for(notes)
    assert (60, 64, 67) in vocabulary.chords
    np.testing.assert_array_equal(round_trip(vocabulary, notes), notes)
    events = vocabulary.decode(vocabulary.encode_notes(notes)[0])
    assert any(event.pitches == () for event in events), "the long gap must be bridged by a rest event"
    assert events[:2] == [Event((72,), 4, 0), Event((60, 64, 67), 8, 4)], "top voice first, then the chord"


def test_chord_missing_from_the_vocabulary_is_written_as_its_notes_without_loss():
    notes = sort_notes([(0, 4, 60), (0, 4, 63), (0, 4, 67), (4, 4, 62)])
    vocabulary = vocabulary_for(min_chord_count=1)  # no chords at all
    tokens, n_events, _ = vocabulary.encode_notes(notes)
    assert n_events == 4
    assert "C4.D#4.G4" not in vocabulary.tokens
    np.testing.assert_array_equal(round_trip(vocabulary, notes), notes)


def test_event_tokens_are_what_duration_shift_triples():
    vocabulary = vocabulary_for()
    tokens = vocabulary.encode([Event((60,), 4, 4), Event((), 2, 2)])
    assert [vocabulary.tokens[t] for t in tokens] == ["<start>", "C4", "dur:4", "shift:4", "R", "dur:2", "shift:2", "<end>"]


def test_quantize_snaps_to_grid_dedupes_and_cuts_restruck_notes():
    notes = quantize(onsets=[0.02, 0.0, 1.0, 2.49], durations=[1.0, 0.5, 3.0, 0.01], pitches=[60, 60, 62, 62],
                     steps_per_quarter=4)
    # the two C4s at onset 0 become one (the longer); D4 at 1.0 is cut where D4 starts again; a tiny note lasts 1 step
    np.testing.assert_array_equal(notes[:, :3], [[0, 4, 60], [4, 6, 62], [10, 1, 62]])


def test_melody_only_keeps_the_top_voice():
    notes = quantize([0, 0, 0, 1], [2, 2, 2, 1], [48, 52, 67, 69], steps_per_quarter=4, melody_only=True)
    np.testing.assert_array_equal(notes[:, :3], [[0, 4, 67], [4, 4, 69]])


def test_melody_only_ignores_a_lower_voice_moving_under_a_held_note():
    """A soprano half note over alto quarters: the melody is the half note, then what comes after it."""
    notes = quantize([0, 0, 1, 2, 2], [2, 1, 1, 1, 1], [72, 67, 65, 71, 64], steps_per_quarter=4, melody_only=True)
    np.testing.assert_array_equal(notes[:, :3], [[0, 8, 72], [8, 4, 71]])


def test_long_notes_are_clipped_and_counted():
    vocabulary = vocabulary_for()
    _, _, clipped = vocabulary.encode_notes(np.array([[0, 40, 60]]))
    assert clipped == 1


def test_grammar_mask_allows_only_the_next_part_of_an_event():
    vocabulary = vocabulary_for()
    after_note = vocabulary.allowed_next([vocabulary.index["C4"]])[0]
    assert {vocabulary.kind(i) for i in np.flatnonzero(after_note)} == {"duration"}
    after_shift = vocabulary.allowed_next([vocabulary.index["shift:0"]])[0]
    assert {vocabulary.kind(i) for i in np.flatnonzero(after_shift)} == {"note", "rest", "end"}


def test_vocabulary_json_round_trip_and_tampering_is_caught():
    notes = sort_notes([(0, 4, 60), (0, 4, 64)] * 1 + [(4, 4, 60), (4, 4, 64)])
    vocabulary = vocabulary_for(notes)
    data = json.loads(json.dumps(vocabulary.to_json()))
    loaded = Vocabulary.from_json(data)
    assert loaded.tokens == vocabulary.tokens and loaded.hash() == vocabulary.hash()
    data["tokens"][5], data["tokens"][6] = data["tokens"][6], data["tokens"][5]
    with pytest.raises(UserError, match="hash"):
        Vocabulary.from_json(data)
    with pytest.raises(UserError, match="missing or have unknown keys"):
        Vocabulary.from_json({"format": "musicgen-vocabulary", "settings": {"steps_per_quarter": 4}, "tokens": []})
    settings = {"steps_per_quarter": "x", "max_duration_quarters": 8, "max_shift_quarters": 8}
    with pytest.raises(UserError, match="steps_per_quarter must be an integer in 1..96, got 'x'"):
        Vocabulary.from_json({"format": "musicgen-vocabulary", "settings": settings, "tokens": []})


def _notes_of(piece, steps_per_quarter=4):
    return quantize(piece.onsets, piece.durations, piece.pitches, steps_per_quarter)


def test_bach_chorale_round_trips_exactly():
    from music21 import corpus

    from musicgen.readers import read_notation

    path = corpus.getWork("bwv66.6")
    piece = read_notation(str(path), str(path), source_format=None)
    notes = _notes_of(piece)
    assert len(notes) > 100
    vocabulary = vocabulary_for(notes)
    np.testing.assert_array_equal(round_trip(vocabulary, notes), notes)
    # and with a vocabulary that lacks every chord (all split into notes)
    np.testing.assert_array_equal(round_trip(vocabulary_for(min_chord_count=10**6), notes), notes)


def test_nottingham_file_round_trips_exactly():
    from musicgen.readers import TrackSelection, read_midi

    piece = read_midi(shared("nottingham/ashover1.mid"), TrackSelection())
    notes = _notes_of(piece)
    assert len(notes) == 158
    np.testing.assert_array_equal(round_trip(vocabulary_for(notes), notes), notes)
