"""Form on hand-built music whose value is known: passages that come back, bars like earlier ones, copies in bars."""

import numpy as np
import pandas as pd
import pytest

import evaluate
from musicgen import evaluation
from musicgen.encoding import EncodingSettings, Event, events_to_notes
from musicgen.meters import Bars
from musicgen.metrics import Copy, CopyFinder, bar_self_similarity, longest_repeated_passage

SETTINGS = EncodingSettings(steps_per_quarter=4)
STEPS_PER_BAR = 16
SILENT_BAR = [Event((), 16, 16)]


def bar(number):
    """Bar `number`: four quarter notes on pitches of its own, so two different bars share no note."""
    return [Event((20 + 4 * number + beat,), 4, 4) for beat in range(4)]


def piece(*bars):
    """Events of the numbered bars in this order; None is a silent bar."""
    return [event for number in bars for event in (SILENT_BAR if number is None else bar(number))]


def repeated_bars(*bars):
    return longest_repeated_passage(events_to_notes(piece(*bars)), Bars.regular(STEPS_PER_BAR))


def similarity(*bars):
    return bar_self_similarity(events_to_notes(piece(*bars)), Bars.regular(STEPS_PER_BAR))


def test_a_two_bar_phrase_that_comes_back_is_a_repeated_passage_of_two_bars():
    assert repeated_bars(0, 1, 2, 0, 1, 3) == 2


def test_music_that_never_repeats_a_bar_has_no_repeated_passage_and_no_self_similarity():
    assert repeated_bars(0, 1, 2, 3, 4, 5) == 0
    assert similarity(0, 1, 2, 3, 4, 5) == 0.0


def test_a_phrase_that_comes_back_at_another_bar_position_is_found():
    assert repeated_bars(0, 1, 2, 3, 4, 1, 2, 3, 5) == 3  # bars 1-3 come back as bars 5-7
    assert repeated_bars(0, 7, 8, 9, 10, 11, 12, 0) == 1  # the first bar comes back as the last


def test_the_repeated_passage_ends_before_it_comes_back():
    assert repeated_bars(0, 0, 0, 0) == 2
    assert repeated_bars(0, 0, 0, 0, 0) == 2
    assert repeated_bars(0, 1, 0, 1, 0, 1) == 2


def test_bars_are_compared_by_onset_pitch_and_duration_not_by_velocity():
    louder = [event._replace(velocity=120) for event in bar(0)]
    shorter = [event._replace(duration=2) for event in bar(0)]
    assert longest_repeated_passage(events_to_notes(bar(0) + bar(1) + louder), Bars.regular(STEPS_PER_BAR)) == 1
    assert longest_repeated_passage(events_to_notes(bar(0) + bar(1) + shorter), Bars.regular(STEPS_PER_BAR)) == 0


def test_silence_is_not_repetition():
    assert repeated_bars(0, None, None, 1, None, None, 2) == 0
    assert repeated_bars(None, None, None, None) == 0 and similarity(None, None, None) == 0.0
    assert repeated_bars(0, None, 1, 0, None, 1) == 1, "a silent bar breaks a passage"
    assert similarity(0, None, 0, None) == 1.0, "silent bars are left out"
    assert repeated_bars() == 0 and similarity() == 0.0 and similarity(0) == 0.0


def test_a_piece_that_repeats_one_bar_is_self_similar():
    assert similarity(0, 0, 0, 0, 0, 0, 0, 0) == 1.0
    assert similarity(0, 1, 0, 1) == pytest.approx(2 / 3), "the second bar is like no earlier one"


def test_bar_self_similarity_is_the_jaccard_similarity_of_onsets_and_pitches():
    half_changed = [Event((event.pitches[0] + (12 if beat >= 2 else 0),), 4, 4) for beat, event in enumerate(bar(0))]
    longer = [event._replace(duration=16 - 4 * beat) for beat, event in enumerate(bar(0))]
    notes = events_to_notes(bar(0) + half_changed + longer)
    # the second bar shares 2 of 6 (onset, pitch) pairs with the first; the third has all of the first's
    assert bar_self_similarity(notes, Bars.regular(STEPS_PER_BAR)) == pytest.approx((2 / 6 + 1.0) / 2)


def test_repetition_values_cut_bars_of_four_quarters_of_the_encoding():
    values = evaluation.repetition_values([piece(0, 1, 0, 1), piece(0, 1, 2, 3)], SETTINGS)
    np.testing.assert_array_equal(values["repeated_passage_bars"], [2, 0])
    np.testing.assert_allclose(values["bar_self_similarity"], [2 / 3, 0.0])
    # with 2 steps per quarter, each of those bars (16 steps) is two bars, all different
    twice_as_many = evaluation.repetition_values([piece(0, 1, 0, 1)], EncodingSettings(steps_per_quarter=2))
    assert twice_as_many["repeated_passage_bars"][0] == 4


def eighth_notes(pitches):
    return [Event((int(pitch),), 2, 2) for pitch in pitches]


def test_a_copy_of_three_bars_from_a_training_piece_is_three_bars_long():
    rng = np.random.default_rng(0)
    training = [eighth_notes(rng.integers(60, 72, 64)) for _ in range(3)]
    generated = eighth_notes(rng.integers(80, 90, 40))
    generated[5: 5 + 24] = training[1][10: 34]  # 24 eighth notes, starting off the bar line
    copies = evaluation.copies_of([generated], CopyFinder(training, ["a.mid", "b.mid", "c.mid"]))
    assert copies == [Copy(24, "b.mid", 5)]
    metrics = evaluation.music_statistic([generated], None, SETTINGS, copies)(np.arange(1))
    assert metrics["copied_events_max"] == 24 and metrics["copied_bars_max"] == metrics["copied_bars_mean"] == 3.0


def test_a_piece_that_copies_nothing_copies_no_bars():
    copy = CopyFinder([eighth_notes([60, 62])], ["a.mid"]).longest_copy_at(eighth_notes([70, 72]))
    assert copy == Copy(0, None, 0)
    metrics = evaluation.music_statistic([eighth_notes([70, 72])], None, SETTINGS, [copy])(np.arange(1))
    assert metrics["copied_bars_max"] == 0.0


def test_the_real_range_is_the_10th_to_90th_percentile_and_each_mean_is_checked_against_it():
    # real continuations whose longest repeated passage is 0, 1, ..., 10 bars
    reference = [piece(*range(k), *range(k), 40, 41) for k in range(11)]
    ranges = evaluation.real_ranges(reference, SETTINGS)
    assert set(ranges) == set(evaluation.FORM_STATISTICS)
    assert ranges["repeated_passage_bars"] == (1.0, 9.0)
    columns = evaluation.range_columns(ranges)
    assert columns["repeated_passage_bars_real_p10"] == 1.0 and columns["repeated_passage_bars_real_p90"] == 9.0
    inside = {column: sum(ranges[name]) / 2 for name, column in evaluation.FORM_STATISTICS.items()}
    assert evaluation.in_real_range(inside, ranges)["form_in_real_range"] == len(ranges)
    for mean, expected in ((0.5, False), (1.0, True), (9.0, True), (9.5, False)):
        flags = evaluation.in_real_range({**inside, "repeated_passage_bars_mean": mean}, ranges)
        assert flags["repeated_passage_bars_in_real_range"] is expected
        assert flags["form_in_real_range"] == len(ranges) - (not expected)


def test_evaluate_writes_the_form_columns_and_the_form_table(trained_run, tmp_path):
    evaluate.main(["--checkpoint", str(trained_run), "--pieces", "3", "--length", "40", "--output", str(tmp_path),
                   "--random-seed", "0", "--resamples", "50"])
    table = pd.read_csv(tmp_path / "evaluation.csv").set_index("model")
    lstm, held_out = table.loc["lstm"], table.loc["real: held-out music"]
    for column in ("repeated_passage_bars_mean", "repeated_passage_bars_max", "bar_self_similarity",
                   "copied_bars_mean", "copied_bars_max"):
        assert lstm[f"{column}_low"] <= lstm[column] <= lstm[f"{column}_high"], column
        assert np.isfinite(held_out[column]), column
    assert 0 <= lstm.bar_self_similarity <= 1 and lstm.repeated_passage_bars_max <= 40 / 2
    assert held_out.copied_bars_max > 0, "real music shares a few events with the training set"
    for name, column in evaluation.FORM_STATISTICS.items():
        low, high = held_out[f"{name}_real_p10"], held_out[f"{name}_real_p90"]
        assert low <= high
        for model in ("lstm", "real: training music"):
            assert bool(table.loc[model, f"{name}_in_real_range"]) == (low <= table.loc[model, column] <= high)
    flags = [bool(lstm[f"{name}_in_real_range"]) for name in evaluation.FORM_STATISTICS]
    assert lstm.form_in_real_range == sum(flags)
    report = (tmp_path / "report.md").read_text()
    form = report[report.index("## Form against real music"): report.index("## Repetition and copying")]
    assert f"| lstm | {lstm.repeated_4gram_share:.3f} [" in form
    assert f"{int(lstm.form_in_real_range)} of {len(flags)} |" in form
    assert "| real: held-out music, 10th-90th percentile | " in form
    assert "copied_bars_max" in report[report.index("## Repetition and copying"):]
