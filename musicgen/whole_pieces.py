"""Whole pieces judged as a listener meets them: pieces a model begins at <start> and ends itself, against whole
real held-out pieces, by our statistics and by MusPy's (an outside judge).

Each generated piece is paired with a real held-out piece: it opens with that
piece's labels (where the run has labels), and the model writes until it ends
the piece with <end>, or up to twice the real piece's length. Then:

- length and ending, on the piece as the model wrote it: its bars, whether the
  model ended it, whether its last onset's lowest note is the tonic of the piece's
  key, and how long that last onset lasts (real pieces end on a long tonic);
- everything else on the piece cut to the length of its real partner (where it
  is longer), so that statistics that grow with length compare like with like:
  key agreement (the share of 4-bar windows whose key, Krumhansl-Schmuckler, is the
  whole piece's), sections that come back (the share of 4-bar sections that
  match an earlier one, as the A of AABA does), the longest repeated passage and
  bar self-similarity, and MusPy's pitch-class entropy, scale consistency, groove
  consistency, polyphony, pitch range and empty-beat rate.

Each statistic's mean over the generated pieces is set against the 10th-90th
percentile range of its values over the real pieces. Bars are counted as four
quarters, as in the rest of evaluate.py.
"""

import muspy
import numpy as np

from musicgen.encoding import events_to_notes
from musicgen.labels import KEYS, estimate_key
from musicgen.metrics import bar_self_similarity, bars_of, longest_repeated_passage
from musicgen.notes import DRUMS, DURATION, ONSET, PITCH, PROGRAM, VELOCITY

SECTION_BARS = 4  # the span of a key window and of a section
SECTION_MATCH = 0.75  # Jaccard similarity of (onset in the section, pitch) at which a section counts as come back
PERCENTILES = (10, 90)
# What each statistic is, in the report's words.
STATISTICS = {
    "bars": "bars as the model wrote it",
    "ended": "share the model ended itself",
    "ends_on_tonic": "last onset's lowest note is the tonic",
    "final_quarters": "length of the last onset (quarters)",
    "key_agreement": "4-bar windows in the piece's key",
    "returning_sections": "4-bar sections that come back",
    "repeated_passage_bars": "longest repeated passage (bars)",
    "bar_self_similarity": "bar self-similarity",
    "muspy_pitch_class_entropy": "MusPy pitch-class entropy",
    "muspy_scale_consistency": "MusPy scale consistency",
    "muspy_groove_consistency": "MusPy groove consistency",
    "muspy_polyphony": "MusPy polyphony",
    "muspy_pitch_range": "MusPy pitch range",
    "muspy_empty_beat_rate": "MusPy empty-beat rate",
}


MUSPY_STATISTICS = [name for name in STATISTICS if name.startswith("muspy_")]


def tonic_of(notes):
    """The pitch class of the tonic of the notes' key, or None."""
    key = estimate_key(notes)
    return None if key is None else KEYS.index(key) % 12


def key_agreement(notes, bars):
    """Share of the windows of SECTION_BARS bars (meters.Bars `bars`; with 4 notes or more) whose key is the whole
    piece's."""
    key = estimate_key(notes)
    window_keys = [estimate_key(window) for window, _ in _sections(notes, bars) if len(window) >= 4]
    return float(np.mean([window == key for window in window_keys])) if window_keys and key else np.nan


def returning_sections(notes, bars):
    """Share of the sections of SECTION_BARS bars (meters.Bars `bars`), after the first, that match an earlier
    section: the Jaccard similarity of their (onset within the section, pitch) pairs at least SECTION_MATCH."""
    contents = [{(int(onset) - start, int(pitch)) for onset, pitch in section[:, [ONSET, PITCH]]}
                for section, start in _sections(notes, bars)]
    if len(contents) < 2:
        return np.nan

    def similar(a, b):
        return bool(a or b) and len(a & b) / len(a | b) >= SECTION_MATCH
    return float(np.mean([any(similar(section, earlier) for earlier in contents[:index])
                          for index, section in enumerate(contents) if index]))


def _sections(notes, bars):
    """(notes, first step) of each section of SECTION_BARS bars (meters.Bars `bars`) from bar 0 to the last
    onset's, the notes by onset."""
    if not len(notes):
        return []
    which = bars.index(notes[:, ONSET]) // SECTION_BARS
    return [(notes[which == index], int(bars.start(index * SECTION_BARS))) for index in range(int(which.max()) + 1)]


def ending(notes, steps_per_quarter):
    """(whether the last onset's lowest pitched note is the tonic, the longest duration there in quarters)."""
    pitched = notes[notes[:, PROGRAM] != DRUMS] if len(notes) else notes
    if not len(pitched):
        return np.nan, np.nan
    last = pitched[pitched[:, ONSET] == pitched[:, ONSET].max()]
    tonic = tonic_of(notes)
    lowest = int(last[:, PITCH].min())
    return float(tonic is not None and lowest % 12 == tonic), float(last[:, DURATION].max() / steps_per_quarter)


def muspy_statistics(notes, steps_per_quarter, bar_steps):
    """MusPy's metrics (Dong et al. 2020) of the notes, as MusPy computes them, each track of its own; grooves
    over bars of `bar_steps`. A piece without notes (a model may end one at once) has none: NaN, left out of
    the means."""
    if not len(notes):
        return dict.fromkeys(MUSPY_STATISTICS, np.nan)
    tracks = []
    for program in np.unique(notes[:, PROGRAM]):
        part = notes[notes[:, PROGRAM] == program]
        tracks.append(muspy.Track(program=0 if program == DRUMS else int(program), is_drum=bool(program == DRUMS),
                                  notes=[muspy.Note(time=int(n[ONSET]), pitch=int(n[PITCH]), duration=int(n[DURATION]),
                                                    velocity=int(n[VELOCITY])) for n in part]))
    music = muspy.Music(resolution=steps_per_quarter, tracks=tracks)
    return {"muspy_pitch_class_entropy": muspy.pitch_class_entropy(music),
            "muspy_scale_consistency": muspy.scale_consistency(music),
            "muspy_groove_consistency": muspy.groove_consistency(music, bar_steps),
            "muspy_polyphony": muspy.polyphony(music),
            "muspy_pitch_range": float(muspy.pitch_range(music)),
            "muspy_empty_beat_rate": muspy.empty_beat_rate(music)}


def piece_values(events, steps_per_quarter, cut_at=None, ended=True):
    """{statistic: value} of one piece (events), the length-dependent ones on its notes before step `cut_at`."""
    bars = bars_of(events, steps_per_quarter)
    whole = events_to_notes(events)
    notes = whole if cut_at is None else whole[whole[:, ONSET] < cut_at]
    on_tonic, final = ending(whole, steps_per_quarter)
    end = int((whole[:, ONSET] + whole[:, DURATION]).max()) if len(whole) else 0
    return {"bars": bars.measure(end), "ended": float(ended), "ends_on_tonic": on_tonic, "final_quarters": final,
            "key_agreement": key_agreement(notes, bars),
            "returning_sections": returning_sections(notes, bars),
            "repeated_passage_bars": float(longest_repeated_passage(notes, bars)),
            "bar_self_similarity": bar_self_similarity(notes, bars),
            **muspy_statistics(notes, steps_per_quarter, int(bars.lengths[0]))}


def prompts_and_references(split, vocabulary, count):
    """The first `count` pieces of a held-out split: (each one's opening, <start> and its labels; its events)."""
    chosen = range(min(count, len(split)))
    openings = [split.piece(i)[: vocabulary.opening_length(split.piece(i))] for i in chosen]
    return openings, [vocabulary.decode(split.piece(i)) for i in chosen]


def generate(decoder, vocabulary, strategy, openings, references):
    """(events, whether the model ended it) of a piece begun from each opening, written until the model ends it
    or for twice as many events as its real partner."""
    cap = 2 * max(len(events) for events in references) + 8
    pieces = [None] * len(openings)
    for size in sorted({len(opening) for opening in openings}):
        rows = [index for index, opening in enumerate(openings) if len(opening) == size]
        batch = np.stack([openings[index] for index in rows])
        decoder.pin(size)
        for index, tokens in zip(rows, strategy.generate(decoder, vocabulary, batch, cap, to_end=True)):
            pieces[index] = (vocabulary.decode(tokens), bool((tokens == vocabulary.end_id).any()))
    return pieces


def judge(generated, references, steps_per_quarter):
    """{statistic: (generated mean, real mean, real 10th percentile, real 90th percentile)}."""
    real = [piece_values(events, steps_per_quarter) for events in references]
    made = []
    for (events, ended), partner in zip(generated, references):
        partner_notes = events_to_notes(partner)
        cut_at = int((partner_notes[:, ONSET] + partner_notes[:, DURATION]).max()) if len(partner_notes) else None
        made.append(piece_values(events, steps_per_quarter, cut_at, ended))
    table = {}
    for name in STATISTICS:
        real_values = np.array([row[name] for row in real], dtype=np.float64)
        real_values = real_values[~np.isnan(real_values)]
        low, high = np.percentile(real_values, PERCENTILES) if len(real_values) else (np.nan, np.nan)
        table[name] = (_mean([row[name] for row in made]), _mean(real_values), float(low), float(high))
    return table


def _mean(values):
    """The mean of the values that are numbers; NaN, without numpy's warning, where none is (every generated piece
    without notes, for MusPy's statistics)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else np.nan
