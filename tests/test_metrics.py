"""Each metric on hand-built music whose value is known."""

import math

import numpy as np
import pytest

from musicgen.encoding import Event
from musicgen.metrics import (CopyFinder, distinct_ngram_ratio, duration_histogram, longest_loop, piece_statistics,
                              pitch_class_entropy, pitch_class_histogram, polyphony, repeated_ngram_share, scale_fit,
                              silent_beat_rate, value_distribution_overlap)

C_MAJOR_SCALE = np.array([[4 * i, 4, pitch] for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72])])


def test_c_major_scale_is_fully_consistent_with_a_scale():
    assert scale_fit(C_MAJOR_SCALE) == 1.0
    chromatic = np.array([[i, 1, 60 + i] for i in range(12)])
    assert scale_fit(chromatic) == pytest.approx(7 / 12)


def _muspy_scale_consistency(notes):
    """MusPy's scale_consistency, restated: best share of notes in one of the 12 major or 12 natural-minor scales."""
    pitch_classes = np.asarray(notes)[:, 2] % 12
    return max(np.isin(pitch_classes, (np.array(steps) + root) % 12).mean()
               for steps in ([0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10]) for root in range(12))


def _muspy_empty_beat_rate(notes, resolution):
    """MusPy's empty_beat_rate, restated: end // resolution + 1 beats, a note plays beats onset // r .. end // r."""
    notes = np.asarray(notes)
    ends = notes[:, 0] + notes[:, 1]
    played = np.zeros(ends.max() // resolution + 1, dtype=bool)
    for onset, end in zip(notes[:, 0], ends):
        played[onset // resolution: end // resolution + 1] = True
    return 1 - played.mean()


def test_scale_fit_counts_harmonic_minor_which_muspy_scale_consistency_does_not():
    # A B C D E F G# A, one quarter each: the A harmonic-minor scale, 8 notes.
    a_harmonic_minor = np.array([[4 * i, 4, pitch] for i, pitch in enumerate([57, 59, 60, 62, 64, 65, 68, 69])])
    # scale_fit: all 8 notes lie in A harmonic minor -> 8/8 = 1.0.
    assert scale_fit(a_harmonic_minor) == 1.0
    # Major and natural-minor scales only: without G#, C major (= A natural minor) holds the other 7 notes -> 7/8;
    # with G#, A major holds A B D E G# A -> 6/8 and E major A B E G# A -> 5/8. So MusPy gives 7/8 = 0.875.
    assert _muspy_scale_consistency(a_harmonic_minor) == pytest.approx(7 / 8)
    # Where the best scale is major, the two agree: 7/12 for the chromatic scale, 1.0 for C major.
    chromatic = np.array([[i, 1, 60 + i] for i in range(12)])
    assert _muspy_scale_consistency(chromatic) == pytest.approx(scale_fit(chromatic))
    assert _muspy_scale_consistency(C_MAJOR_SCALE) == scale_fit(C_MAJOR_SCALE) == 1.0


def test_silent_beat_rate_differs_from_muspy_empty_beat_rate_when_notes_end_on_a_beat():
    # 4 steps per quarter: C4 sounds in steps 0-3, nothing in steps 4-7, E4 sounds in steps 8-11.
    on_the_beat = np.array([[0, 4, 60], [8, 4, 64]])
    # silent_beat_rate: the piece ends at step 12 -> ceil(12 / 4) = 3 beats; beat 1 (steps 4-7) is silent -> 1/3.
    assert silent_beat_rate(on_the_beat, steps_per_quarter=4) == pytest.approx(1 / 3)
    # MusPy: 12 // 4 + 1 = 4 beats; C4 (0 to 4) plays beats 0 // 4 = 0 to 4 // 4 = 1 and E4 (8 to 12) beats 2 to 3,
    # so no beat is empty -> 0/4 = 0.
    assert _muspy_empty_beat_rate(on_the_beat, 4) == 0.0
    # Notes that end before a beat line (C4 in steps 0-2, E4 in steps 8-10): silent_beat_rate has ceil(11 / 4) = 3
    # beats with beat 1 silent -> 1/3; MusPy has 11 // 4 + 1 = 3 beats, C4 plays beat 0, E4 beat 2 -> 1/3 as well.
    off_the_beat = np.array([[0, 3, 60], [8, 3, 64]])
    assert silent_beat_rate(off_the_beat, steps_per_quarter=4) == pytest.approx(1 / 3)
    assert _muspy_empty_beat_rate(off_the_beat, 4) == pytest.approx(1 / 3)


def test_pitch_class_histogram_and_entropy():
    assert pitch_class_histogram(C_MAJOR_SCALE)[0] == pytest.approx(2 / 8)  # C4 and C5
    chromatic = np.array([[i, 1, 60 + i] for i in range(12)])
    assert pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert pitch_class_entropy(np.array([[0, 1, 60], [1, 1, 72]])) == 0.0


def test_polyphony_and_empty_beats():
    triad_then_rest = np.array([[0, 4, 60], [0, 4, 64], [0, 4, 67], [8, 4, 72]])
    assert polyphony(triad_then_rest) == pytest.approx((3 * 4 + 1 * 4) / 8)
    assert silent_beat_rate(triad_then_rest, steps_per_quarter=4) == pytest.approx(1 / 3)  # beat 2 of 3 is silent


def test_piece_statistics_of_a_scale():
    statistics = piece_statistics(C_MAJOR_SCALE, steps_per_quarter=4)
    assert statistics["pitch_range"] == 12 and statistics["pitches_used"] == 8
    assert statistics["mean_ioi_quarters"] == 1.0 and statistics["polyphony"] == 1.0
    assert statistics["silent_beat_rate"] == 0.0
    assert statistics["scale_fit"] == 1.0


def test_duration_histogram_ignores_rests():
    events = [Event((60,), 4, 4), Event((), 4, 4), Event((62,), 2, 2), Event((64,), 2, 2)]
    np.testing.assert_allclose(duration_histogram(events, 4), [0, 2 / 3, 0, 1 / 3])


def test_a_phrase_repeated_four_times():
    phrase = ["C4", "E4", "G4", "E4", "F4", "D4"]
    piece = phrase * 4
    assert repeated_ngram_share(piece, n=4) == 1.0
    assert distinct_ngram_ratio(piece, 4) == pytest.approx(6 / 21)
    assert longest_loop(piece) == 24
    assert repeated_ngram_share(phrase + ["A4", "B4"], n=4) == 0.0
    assert longest_loop(["A", "B", "C", "D"]) == 0


def test_half_repeated_piece():
    piece = list("abcdefgh") + list("abcd")  # 'abcd' twice: 8 of 12 items lie in a repeated 4-gram
    assert repeated_ngram_share(piece, n=4) == pytest.approx(8 / 12)
    assert longest_loop(list("xyzxyzq")) == 6


def test_copied_training_excerpt_is_found_with_its_source():
    rng = np.random.default_rng(0)
    training = [rng.integers(0, 50, 200).tolist() for _ in range(5)]
    generated = rng.integers(50, 100, 30).tolist()
    generated[10:22] = training[3][100:112]
    length, source = CopyFinder(training, [f"piece{i}.mid" for i in range(5)]).longest_copy(generated)
    assert (length, source) == (12, "piece3.mid")
    assert CopyFinder(training, ["x"] * 5).longest_copy([999, 998]) == (0, None)


def test_value_distribution_overlap_of_same_and_far_apart_samples():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 400)
    assert value_distribution_overlap(a, a) == pytest.approx(1.0, abs=1e-3)
    assert value_distribution_overlap(a, rng.normal(0, 1, 400)) > 0.85
    assert value_distribution_overlap(a, a + 20) < 0.01
