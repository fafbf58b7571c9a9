"""Each metric on hand-built music whose value is known."""

import math

import numpy as np
import pytest

from musicgen.encoding import Event
from musicgen.metrics import (CopyFinder, distinct_ngram_ratio, duration_histogram, empty_beat_rate, longest_loop,
                              overlapping_area, piece_statistics, pitch_class_entropy, pitch_class_histogram,
                              polyphony, repeated_ngram_share, scale_consistency)

C_MAJOR_SCALE = np.array([[4 * i, 4, pitch] for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72])])


def test_c_major_scale_is_fully_consistent_with_a_scale():
    assert scale_consistency(C_MAJOR_SCALE) == 1.0
    chromatic = np.array([[i, 1, 60 + i] for i in range(12)])
    assert scale_consistency(chromatic) == pytest.approx(7 / 12)


def test_pitch_class_histogram_and_entropy():
    assert pitch_class_histogram(C_MAJOR_SCALE)[0] == pytest.approx(2 / 8)  # C4 and C5
    chromatic = np.array([[i, 1, 60 + i] for i in range(12)])
    assert pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert pitch_class_entropy(np.array([[0, 1, 60], [1, 1, 72]])) == 0.0


def test_polyphony_and_empty_beats():
    triad_then_rest = np.array([[0, 4, 60], [0, 4, 64], [0, 4, 67], [8, 4, 72]])
    assert polyphony(triad_then_rest) == pytest.approx((3 * 4 + 1 * 4) / 8)
    assert empty_beat_rate(triad_then_rest, steps_per_quarter=4) == pytest.approx(1 / 3)  # beat 2 of 3 is silent


def test_piece_statistics_of_a_scale():
    statistics = piece_statistics(C_MAJOR_SCALE, steps_per_quarter=4)
    assert statistics["pitch_range"] == 12 and statistics["pitches_used"] == 8
    assert statistics["mean_ioi_quarters"] == 1.0 and statistics["polyphony"] == 1.0
    assert statistics["empty_beat_rate"] == 0.0


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


def test_overlapping_area_of_same_and_far_apart_samples():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 400)
    assert overlapping_area(a, a) == pytest.approx(1.0, abs=1e-3)
    assert overlapping_area(a, rng.normal(0, 1, 400)) > 0.85
    assert overlapping_area(a, a + 20) < 0.01
