import numpy as np
import pandas as pd
import pytest

from musicgen import intervals
from musicgen.evaluation import likelihood_statistic


def pieces_with_known_nll(count, mean=2.0, spread=0.5, seed=0):
    """`count` pieces of 20 tokens and 5 notes each, whose NLL per token is drawn from N(mean, spread)."""
    per_token = np.random.default_rng(seed).normal(mean, spread, count)
    zeros = np.zeros(count)
    return pd.DataFrame({"tokens": 20, "notes": 5, "nll_nats": 20 * per_token, "correct": 10,
                         "pitch_tokens": 5, "pitch_nll_nats": 5 * per_token, "duration_tokens": 5,
                         "duration_nll_nats": zeros, "shift_tokens": 5, "shift_nll_nats": zeros,
                         "velocity_tokens": 0, "velocity_nll_nats": zeros,
                         "instrument_tokens": 0, "instrument_nll_nats": zeros,
                         "harmony_tokens": 0, "harmony_nll_nats": zeros, "merged_tokens": 0, "merged_nll_nats": zeros})


def interval(count, seed=0, resamples=2000):
    table = pieces_with_known_nll(count, seed=seed)
    result = intervals.bootstrap(likelihood_statistic(table), count, intervals.draws(count, resamples, seed))
    return result["nll_nats"], result["nll_nats_low"], result["nll_nats_high"]


def test_the_bootstrap_interval_is_centred_on_the_truth_and_shrinks_with_more_pieces():
    value, low, high = interval(50)
    assert low < 2.0 < high and low < value < high
    # the standard error of a mean of 50 draws of spread 0.5 is 0.0707: a 95 % interval is about 4 of them wide
    assert high - low == pytest.approx(4 * 0.5 / np.sqrt(50), rel=0.25)
    _, many_low, many_high = interval(800)
    assert many_low < 2.0 < many_high
    assert (high - low) / (many_high - many_low) == pytest.approx(4.0, rel=0.25), "width falls as 1 / sqrt(pieces)"


def test_the_bootstrap_covers_the_truth_about_95_times_in_100():
    covered = [low < 2.0 < high for low, high in (interval(40, seed, resamples=400)[1:] for seed in range(100))]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_a_paired_difference_leaves_out_what_both_models_share():
    """Two models scored on the same pieces: one 0.1 nats per token worse on every piece, whatever the piece."""
    better = pieces_with_known_nll(30)
    worse = better.assign(nll_nats=better.nll_nats + 20 * 0.1)
    draws = intervals.draws(30, 500)
    difference, low, high = intervals.paired_difference(likelihood_statistic(worse), likelihood_statistic(better),
                                                        30, draws)["nll_nats"]
    assert difference == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    separate = [intervals.bootstrap(likelihood_statistic(table), 30, draws) for table in (better, worse)]
    assert separate[0]["nll_nats_high"] > separate[1]["nll_nats_low"], "unpaired, their intervals overlap"


def test_a_paired_difference_between_equal_models_includes_zero():
    a, b = pieces_with_known_nll(40, seed=1), pieces_with_known_nll(40, seed=2)
    difference, low, high = intervals.paired_difference(likelihood_statistic(a), likelihood_statistic(b), 40,
                                                        intervals.draws(40))["nll_nats"]
    assert low < 0 < high and low < difference < high


def test_the_interval_over_folds_is_students_t():
    mean, low, high = intervals.over_folds([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 / np.sqrt(3)) and mean - low == pytest.approx(high - mean)
    assert np.isnan(intervals.over_folds([1.0])[1])
