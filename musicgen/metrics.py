"""Musical statistics of decoded notes and events, for comparing generated music with real music.

Notes are int arrays (onset, duration, pitch, velocity, program) in grid steps; events are lists of
encoding.Event. Bars are where the music's meters have them (bars_of). Every function here
is plain NumPy so it can be checked on hand-built inputs (tests/test_metrics.py, tests/test_form.py).

Three of them resemble published metrics but are not computed the same way, so
they have names of their own and their values are not comparable with numbers
reported under the published names: scale_fit (compare MusPy's scale
consistency), silent_beat_rate (compare MusPy's empty-beat rate) and
value_distribution_overlap (compare the overlapping area of Yang & Lerch 2018).
Each docstring says how it differs. References: H.-W. Dong, K. Chen,
J. McAuley and T. Berg-Kirkpatrick, "MusPy: A toolkit for symbolic music
generation", ISMIR 2020 (muspy.metrics); L.-C. Yang and A. Lerch, "On the
evaluation of generative models in music", Neural Computing and Applications
32, 2020 (online 2018; code: github.com/RichardYang40148/mgeval).
"""

from typing import NamedTuple

import numpy as np

from musicgen.encoding import event_meters, events_to_notes
from musicgen.meters import Bars
from musicgen.notes import DRUMS, DURATION, ONSET, PITCH, as_notes
from musicgen.velocities import velocity_bin

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
HARMONIC_MINOR = np.array([0, 2, 3, 5, 7, 8, 11])
NATURAL_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])


def pitch_class_counts(notes):
    """Notes in each of the 12 pitch classes (C, C#, ..., B)."""
    return np.bincount(as_notes(notes)[:, PITCH] % 12, minlength=12).astype(np.float64)


def pitch_class_histogram(notes):
    """Share of notes in each of the 12 pitch classes."""
    return shares(pitch_class_counts(notes))


def duration_counts(events, max_steps):
    """Note and chord events with each duration 1..max_steps (rests are left out)."""
    counts = np.zeros(max_steps, dtype=np.float64)
    for event in events:
        if event.pitches:
            counts[min(event.duration, max_steps) - 1] += 1
    return counts


def velocity_counts(events, bins):
    """Notes in each velocity bin 0..bins-1 (encoding.velocity_bin); notes without a velocity are left out."""
    velocities = [event.velocity for event in events for _ in event.pitches if event.velocity is not None]
    return np.bincount(velocity_bin(np.array(velocities, dtype=np.int64), bins), minlength=bins).astype(np.float64)


def instrument_counts(events):
    """Notes on each General MIDI program 0..127 and on the drum kit (DRUMS, the last)."""
    programs = [event.program for event in events for _ in event.pitches if event.program is not None]
    return np.bincount(np.array(programs, dtype=np.int64), minlength=DRUMS + 1).astype(np.float64)


def onset_gap_counts(events, max_steps):
    """Gaps between successive distinct onsets, in steps 1..max_steps (longer ones counted as max_steps)."""
    gaps = inter_onset_intervals(events_to_notes(events))
    return np.bincount(np.minimum(gaps, max_steps) - 1, minlength=max_steps).astype(np.float64)


def duration_histogram(events, max_steps):
    """Share of note and chord events with each duration 1..max_steps."""
    return shares(duration_counts(events, max_steps))


def shares(counts):
    """Counts as shares of their total (all zero when there are none)."""
    return counts / max(counts.sum(), 1.0)


def total_variation(p, q):
    """Half the L1 distance between two distributions: 0 identical, 1 disjoint."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def histogram_overlap(p, q):
    """Shared mass of two distributions (1 - total variation): 1 identical, 0 disjoint."""
    return 1.0 - total_variation(p, q)


def corpus_histograms(pieces_events, max_steps):
    """Pitch-class and duration histograms of many pieces pooled together."""
    notes = [events_to_notes(events) for events in pieces_events]
    notes = np.concatenate(notes) if notes else as_notes([])
    events = [event for piece in pieces_events for event in piece]
    return pitch_class_histogram(notes), duration_histogram(events, max_steps)


def pitch_class_entropy(notes):
    """Entropy of the pitch-class histogram in bits: 0 for one pitch class, log2(12) = 3.585 for all equally."""
    histogram = pitch_class_histogram(notes)
    histogram = histogram[histogram > 0]
    return float(-(histogram * np.log2(histogram)).sum())


def scale_fit(notes):
    """Largest share of notes whose pitch class lies in one major, natural-minor or harmonic-minor scale (any key).

    1.0 for a C major scale and for an A harmonic-minor scale; 0.0 when there are no notes. Unlike MusPy's
    scale_consistency (Dong et al. 2020, after Mogren 2016), which takes the best of the 12 major and 12
    natural-minor scales only (the same 12 note sets), the 12 harmonic-minor scales count too, so scale_fit is
    never lower and is higher when a raised seventh in minor (G# in A minor) keeps notes out of every major scale.
    """
    histogram = pitch_class_histogram(notes)
    return float(max(histogram[(scale + key) % 12].sum()
                     for scale in (MAJOR, HARMONIC_MINOR, NATURAL_MINOR) for key in range(12)))


def _coverage(notes):
    """Notes sounding at each grid step, from 0 to the end of the last note."""
    notes = as_notes(notes)
    end = int((notes[:, ONSET] + notes[:, DURATION]).max()) if len(notes) else 0
    change = np.zeros(end + 1, dtype=np.int64)
    np.add.at(change, notes[:, ONSET], 1)
    np.add.at(change, notes[:, ONSET] + notes[:, DURATION], -1)
    return np.cumsum(change)[:end]


def polyphony(notes):
    """Mean number of notes sounding, over the steps where at least one sounds."""
    coverage = _coverage(notes)
    sounding = coverage[coverage > 0]
    return float(sounding.mean()) if len(sounding) else 0.0


def silent_beat_rate(notes, steps_per_quarter):
    """Share of quarter-note beats in which no note sounds at any step; 0.0 when there are no notes.

    The beats run from step 0 to the end of the last note, ceil(end / steps_per_quarter) of them, and a note
    sounds from its onset up to, not including, onset + duration. MusPy's empty_beat_rate (Dong et al. 2020,
    after Pypianoroll) counts end // resolution + 1 beats and marks every beat from onset // resolution to
    (onset + duration) // resolution inclusive as played, so a beat that starts exactly where a note ends is
    never empty: one beat of sound, one silent beat, one beat of sound gives 1/3 here and 0 in MusPy.
    """
    coverage = _coverage(notes)
    beats = int(np.ceil(len(coverage) / steps_per_quarter))
    if beats == 0:
        return 0.0
    padded = np.zeros(beats * steps_per_quarter, dtype=np.int64)
    padded[: len(coverage)] = coverage
    return float((padded.reshape(beats, steps_per_quarter).max(axis=1) == 0).mean())


def inter_onset_intervals(notes):
    """Steps between successive distinct onsets."""
    onsets = np.unique(as_notes(notes)[:, ONSET])
    return np.diff(onsets)


def piece_statistics(notes, steps_per_quarter):
    """The scalar statistics of one piece, by name."""
    notes = as_notes(notes)
    pitches = notes[:, PITCH]
    intervals = inter_onset_intervals(notes)
    return {
        "pitch_range": float(pitches.max() - pitches.min()) if len(pitches) else 0.0,
        "pitches_used": float(len(np.unique(pitches))),
        "polyphony": polyphony(notes),
        "mean_duration_quarters": float(notes[:, DURATION].mean() / steps_per_quarter) if len(notes) else 0.0,
        "mean_ioi_quarters": float(intervals.mean() / steps_per_quarter) if len(intervals) else 0.0,
        "pitch_class_entropy": pitch_class_entropy(notes),
        "scale_fit": scale_fit(notes),
        "silent_beat_rate": silent_beat_rate(notes, steps_per_quarter),
    }


def value_distribution_overlap(a, b, grid_points=512):
    """Overlap of the distributions of two samples' values (e.g. one statistic per piece): 1 the same, 0 apart.

    Each sample is smoothed with a Gaussian kernel, bandwidth 1.06 * std * n ** -0.2 (Silverman's rule) but at
    least 2% of the pooled range, on a shared grid of `grid_points` reaching 4 bandwidths past the data, and the
    area under the smaller of the two densities is returned (trapezoid rule); NaN when either sample is empty.
    This is not the overlapping area of Yang & Lerch (2018, mgeval), which smooths distances instead of values
    (with scipy's gaussian_kde) and measures how much the intra-set distance PDF (each piece to every other piece
    of its own set) shares with the inter-set distance PDF (each piece to every piece of the other set).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    spread = max(np.ptp(np.concatenate([a, b])), 1e-9)
    bandwidths = [max(1.06 * x.std() * len(x) ** -0.2, 0.02 * spread) for x in (a, b)]
    low = min(a.min(), b.min()) - 4 * max(bandwidths)
    high = max(a.max(), b.max()) + 4 * max(bandwidths)
    grid = np.linspace(low, high, grid_points)
    densities = [np.exp(-0.5 * ((grid[:, None] - x[None, :]) / h) ** 2).sum(axis=1) / (len(x) * h * np.sqrt(2 * np.pi))
                 for x, h in zip((a, b), bandwidths)]
    return float(np.trapezoid(np.minimum(*densities), grid))


def repeated_ngram_share(sequence, n=4):
    """Share of items that lie inside some n-gram occurring more than once in the sequence."""
    sequence = list(sequence)
    if len(sequence) < n:
        return 0.0
    grams = [tuple(sequence[i: i + n]) for i in range(len(sequence) - n + 1)]
    counts = {}
    for gram in grams:
        counts[gram] = counts.get(gram, 0) + 1
    covered = np.zeros(len(sequence), dtype=bool)
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i: i + n] = True
    return float(covered.mean())


def distinct_ngram_ratio(sequence, n):
    """Distinct n-grams over all n-grams: 1.0 when nothing repeats."""
    sequence = list(sequence)
    grams = [tuple(sequence[i: i + n]) for i in range(len(sequence) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def longest_loop(sequence, max_period=64):
    """Length of the longest stretch that repeats itself back to back (a loop), counting the first pass.

    'A B C A B C A B C' has a loop of 9: a period of 3 held for 6 more items.
    """
    sequence = np.asarray([hash(item) for item in sequence])
    best = 0
    for period in range(1, min(max_period, len(sequence) - 1) + 1):
        run = longest_true_run(sequence[period:] == sequence[:-period])
        if run >= period:
            best = max(best, run + period)
    return best


def longest_true_run(flags):
    """Length of the longest run of consecutive True values."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(flags, dtype=np.int8), [0]])))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def bars_of(events, steps_per_quarter):
    """The meters.Bars of a piece's events: by the meters they name, 4/4 from their start until the first (all
    through, where the encoding keeps no meters)."""
    return Bars.of_meters(event_meters(events), steps_per_quarter)


def bar_contents(notes, bars):
    """Each bar's notes relative to its start: rows (onset within the bar, pitch, duration), sorted, no doubles.

    Bars run from bar 0 to the bar of the last onset, where the meters.Bars `bars` has them: the music's own
    meters where the encoding keeps them; else 4/4 bars from step 0 of the notes (for a
    generated continuation, its first event), whose lines need not fall on the music's own, though repeats a
    whole number of these bars apart are still found. A note belongs to the bar it starts in: a bar in which
    nothing starts (silence, or notes held over from before) is empty. Velocity and instrument are left out.
    """
    notes = as_notes(notes)
    if not len(notes):
        return []
    bar_of = bars.index(notes[:, ONSET])
    rows = np.column_stack([notes[:, ONSET] - bars.start(bar_of), notes[:, PITCH], notes[:, DURATION]])
    return [np.unique(rows[bar_of == bar], axis=0) for bar in range(int(bar_of.max()) + 1)]


def longest_repeated_passage(notes, bars):
    """The longest run of consecutive bars that comes back later in the piece, in bars; 0 when no bar does.

    Two bars are the same when their bar_contents are (each note's onset within the bar, pitch and duration),
    wherever they stand. The passage must end before it comes back (no overlap): a bar played four times in a
    row is a 2-bar passage played twice, 'A A A A' gives 2, so the value is at most half the bars. Empty
    bars never match: silence is not repetition.
    """
    identities = {}
    bars = np.array([identities.setdefault(content.tobytes(), len(identities)) if len(content) else -1
                     for content in bar_contents(notes, bars)], dtype=np.int64)
    best = 0
    for distance in range(1, len(bars)):  # the passage comes back `distance` bars after it started
        same = (bars[distance:] == bars[:-distance]) & (bars[distance:] >= 0)
        best = max(best, min(longest_true_run(same), distance))
    return best


def bar_self_similarity(notes, bars):
    """How much each bar repeats an earlier one: the mean over bars (from the second) of its best Jaccard
    similarity to any earlier bar, both taken as sets of (onset within the bar, pitch) (durations aside).

    1.0 when every bar after the first has the onsets and pitches of an earlier bar, 0.0 when no bar shares
    one with an earlier bar (or fewer than two bars have notes). Empty bars (see bar_contents) are left out.
    """
    contents = [content[:, :2] for content in bar_contents(notes, bars) if len(content)]
    if len(contents) < 2:
        return 0.0
    _, keys = np.unique(np.concatenate(contents), axis=0, return_inverse=True)
    members = np.zeros((len(contents), keys.max() + 1), dtype=np.int64)
    members[np.repeat(np.arange(len(contents)), [len(content) for content in contents]), keys.ravel()] = 1
    shared = members @ members.T
    sizes = np.diag(shared)
    jaccard = shared / (sizes[:, None] + sizes[None, :] - shared)
    return float(np.tril(jaccard, -1)[1:].max(axis=1).mean())


class Copy(NamedTuple):
    length: int  # items in the longest run shared with a reference piece (0: none)
    source: str  # the name of that reference piece, or None
    start: int  # where the run starts in the sequence searched (0 when nothing is shared)


class CopyFinder:
    """Finds the longest run of a sequence that also occurs in a reference corpus, and where."""

    def __init__(self, pieces, names):
        self.pieces = [list(piece) for piece in pieces]
        self.names = list(names)

    def _grams(self, length):
        table = {}
        for index, piece in enumerate(self.pieces):
            for start in range(len(piece) - length + 1):
                table.setdefault(tuple(piece[start: start + length]), index)
        return table

    def longest_copy(self, sequence):
        """(length, name of the reference piece it comes from, or None) of the longest shared run."""
        copy = self.longest_copy_at(sequence)
        return copy.length, copy.source

    def longest_copy_at(self, sequence):
        """The Copy (length, source, start) of the longest run of `sequence` found in a reference piece.

        Of several runs that long, the first in `sequence`.
        """
        sequence = list(sequence)
        low, high, found = 0, len(sequence), Copy(0, None, 0)
        while low < high:  # a run of length L shared means every shorter one is shared too
            length = (low + high + 1) // 2
            table = self._grams(length)
            hit = next(((start, table[gram]) for start in range(len(sequence) - length + 1)
                        if (gram := tuple(sequence[start: start + length])) in table), None)
            if hit is None:
                high = length - 1
            else:
                low, found = length, Copy(length, self.names[hit[1]], hit[0])
        return found
