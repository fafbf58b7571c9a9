"""95 % confidence intervals: bootstrap over pieces, paired differences, and the spread over cross-validation folds.

The unit resampled is the piece, never the token: tokens of one piece are not
independent (a model that misreads a piece's key misreads all of it), so a
token bootstrap would give intervals far too narrow. A statistic is a function
of an array of piece indices returning {name: value}; the bootstrap draws
`resamples` index arrays with replacement and reads each interval off the
2.5th and 97.5th percentiles (the percentile bootstrap). Two models scored on
the same pieces are compared on the same draws, so the interval of their
difference leaves out the variation of the pieces themselves (paired bootstrap).
"""

import math

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (beyond: 1.96), for intervals over folds.
T_QUANTILES = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
               2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
               2.045, 2.042)


def draws(count, resamples=RESAMPLES, random_seed=0):
    """`resamples` arrays of `count` piece indices drawn with replacement, the same for every model compared."""
    return np.random.default_rng(random_seed).integers(0, count, size=(resamples, count))


def bootstrap(statistic, count, index_draws):
    """{name: value, name_low: ..., name_high: ...}: `statistic` on all `count` pieces, with its interval."""
    values = statistic(np.arange(count))
    resampled = [statistic(indices) for indices in index_draws]
    return {**values, **_bounds(values, resampled)}


def paired_difference(statistic_a, statistic_b, count, index_draws):
    """{name: (a - b, low, high)} of two statistics over the same `count` pieces, resampled together."""
    everything = np.arange(count)
    a, b = statistic_a(everything), statistic_b(everything)
    names = [name for name in a if name in b]
    differences = {name: a[name] - b[name] for name in names}
    resampled = []
    for indices in index_draws:
        a_drawn, b_drawn = statistic_a(indices), statistic_b(indices)
        resampled.append({name: a_drawn[name] - b_drawn[name] for name in names})
    bounds = _bounds(differences, resampled)
    return {name: (differences[name], bounds[f"{name}_low"], bounds[f"{name}_high"]) for name in names}


def _bounds(values, resampled):
    tail = 100 * (1 - LEVEL) / 2
    bounds = {}
    for name, value in values.items():
        drawn = np.array([row[name] for row in resampled], dtype=np.float64)
        drawn = drawn[np.isfinite(drawn)]
        low, high = np.percentile(drawn, [tail, 100 - tail]) if len(drawn) and np.isfinite(value) else (np.nan, np.nan)
        bounds[f"{name}_low"], bounds[f"{name}_high"] = float(low), float(high)
    return bounds


def over_folds(values):
    """(mean, low, high): the mean of per-fold values with its Student-t 95 % interval.

    Folds share most of their training data, so this interval is known to be
    somewhat optimistic (Nadeau & Bengio, 2003); the bootstrap over the pooled
    pieces, each scored once as test, is the one to quote for the test pieces.
    """
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    degrees = len(values) - 1
    quantile = T_QUANTILES[degrees - 1] if degrees <= len(T_QUANTILES) else 1.96
    half_width = quantile * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half_width, mean + half_width
