import numpy as np
import pandas as pd
import pytest

import evaluate
from models import registry
from musicgen import breakdown, evaluation, whole_pieces
from musicgen.dataset import load_processed
from musicgen.errors import UserError
from musicgen.tokens import KINDS


def test_scoring_through_the_decoder_equals_the_full_model(trained_run, processed):
    run = registry.load_run(trained_run)
    vocabulary = run.vocabulary
    model = run.model
    _, splits = load_processed(processed)
    pieces = [splits["test"].piece(0)[:40], splits["validation"].piece(0)[:25]]
    scored = evaluation.score_pieces(registry.get("lstm").decoder(model), pieces, vocabulary.pad_id)
    for piece, (log_probabilities, correct) in zip(pieces, scored):
        logits = model.predict(piece[None], verbose=0)[0].astype(np.float64)
        normalized = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        np.testing.assert_allclose(log_probabilities, normalized[np.arange(len(piece) - 1), piece[1:]], atol=1e-4)
        np.testing.assert_array_equal(correct, logits.argmax(axis=1)[:-1] == piece[1:])


class FixedDecoder:
    """Gives every token the same probabilities: 1/2 to token 4, 1/4 to tokens 5 and 6, nothing to the others."""

    def __init__(self, vocabulary_size):
        self.logits = np.full(vocabulary_size, -np.inf)
        self.logits[[4, 5, 6]] = np.log([0.5, 0.25, 0.25])

    def start(self, tokens):
        return np.tile(self.logits, (len(tokens), 1)), None

    def step(self, tokens, state):
        return self.start(tokens)


def test_the_likelihood_table_holds_each_pieces_totals_by_token_kind(processed):
    vocabulary, splits = load_processed(processed, ("test",))
    split = splits["test"]
    table = evaluation.likelihood_table(FixedDecoder(len(vocabulary)), split, vocabulary)
    assert list(table.source) == list(split.sources) and len(table) == len(split)
    for row, index in zip(table.itertuples(), range(len(split))):
        piece = split.piece(index)
        kinds = vocabulary.kinds[piece[1:]]
        assert row.tokens == len(piece) - 1 == sum(getattr(row, f"{g}_tokens") for g in evaluation.TOKEN_GROUPS)
        events = vocabulary.decode(piece)
        assert row.events == len(events) and row.notes == sum(len(e.pitches) for e in events)
        assert row.seconds == pytest.approx(row.quarters * 60 / split.tempos[index])
        probabilities = np.select([piece[1:] == 4, np.isin(piece[1:], [5, 6])], [0.5, 0.25], 0.0)
        with np.errstate(divide="ignore"):
            assert row.nll_nats == pytest.approx(-np.log(probabilities).sum())
        assert row.correct == (piece[1:] == 4).sum()
        assert row.pitch_tokens == np.isin(kinds, [KINDS.index("note"), KINDS.index("chord")]).sum()


def test_likelihood_metrics_are_ratios_of_sums_over_pieces():
    table = pd.DataFrame({"tokens": [4, 6], "notes": [2, 1], "nll_nats": [4 * np.log(2), 6 * np.log(2)],
                          "correct": [3, 0], "pitch_tokens": [2, 2], "pitch_nll_nats": [np.log(2), 3 * np.log(2)],
                          "duration_tokens": [1, 2], "duration_nll_nats": [0.0, 2 * np.log(2)],
                          "shift_tokens": [1, 2], "shift_nll_nats": [0.0, 0.0],
                          "velocity_tokens": [1, 3], "velocity_nll_nats": [np.log(2), 3 * np.log(2)],
                          "instrument_tokens": [0, 0], "instrument_nll_nats": [0.0, 0.0],
                          "harmony_tokens": [1, 0], "harmony_nll_nats": [2 * np.log(2), 0.0],
                          "merged_tokens": [0, 1], "merged_nll_nats": [0.0, 3 * np.log(2)]})
    metrics = evaluation.likelihood_statistic(table)(np.arange(2))
    assert metrics["nll_bits"] == pytest.approx(1.0) and metrics["perplexity"] == pytest.approx(2.0)
    assert metrics["nats_per_note"] == pytest.approx(10 * np.log(2) / 3) and metrics["accuracy"] == 0.3
    assert metrics["pitch_bits"] == pytest.approx(1.0) and metrics["pitch_bits_per_note"] == pytest.approx(4 / 3)
    assert metrics["duration_bits"] == pytest.approx(2 / 3) and metrics["shift_bits"] == 0.0
    assert metrics["velocity_bits"] == pytest.approx(1.0) and np.isnan(metrics["instrument_bits"]), "no instruments"
    assert metrics["harmony_bits"] == pytest.approx(2.0) and metrics["merged_bits"] == pytest.approx(3.0)
    assert evaluation.likelihood_statistic(table)(np.array([1, 1]))["nll_bits"] == pytest.approx(1.0)


def test_evaluate_writes_table_report_and_plots(trained_run, tmp_path, capsys):
    evaluate.main(["--checkpoint", str(trained_run), "--pieces", "2", "--length", "12", "--output", str(tmp_path),
                   "--random-seed", "0", "--resamples", "200"])
    table = pd.read_csv(tmp_path / "evaluation.csv")
    assert list(table.model) == [table.model[0], "lstm", "real: training music", "real: held-out music"]
    assert table.model[0].startswith("ngram baseline (order")
    lstm = table.set_index("model").loc["lstm"]
    assert np.isfinite(lstm.nll_nats) and lstm.perplexity == pytest.approx(np.exp(lstm.nll_nats))
    assert 0 <= lstm.scale_fit_overlap <= 1.0001 and 0 <= lstm.repeated_4gram_share <= 1
    for metric in ("nll_nats", "nats_per_note", "mean_overlap", "repeated_4gram_share"):
        assert lstm[f"{metric}_low"] <= lstm[metric] <= lstm[f"{metric}_high"], metric
    assert lstm.nats_per_note > lstm.nll_nats, "an event is several tokens"
    assert table.set_index("model").loc["real: held-out music"].copied_events_max >= 1
    differences = pd.read_csv(tmp_path / "differences.csv")
    assert set(differences.metric) == set(evaluation.COMPARED_METRICS)
    assert (differences.model == "lstm").all() and (differences.compared_with == table.model[0]).all()
    nll = differences.set_index("metric").loc["nll_nats"]
    assert nll.difference == pytest.approx(lstm.nll_nats - table.nll_nats[0]) and nll.low <= nll.difference <= nll.high
    report = (tmp_path / "report.md").read_text()
    for heading in ("## Likelihood", "## Differences between models", "## Musical statistics",
                    "## Repetition and copying"):
        assert heading in report
    assert f"{lstm.nll_nats:.3f} [{lstm.nll_nats_low:.3f}, {lstm.nll_nats_high:.3f}]" in report
    for image in ("pitch_classes.png", "durations.png"):
        assert (tmp_path / image).stat().st_size > 5000
    out = capsys.readouterr().out
    assert "stats overlap" in out and "lstm: whole pieces inside the real range on" in out
    assert "## Whole pieces" in report
    whole = pd.read_csv(tmp_path / "whole_pieces.csv").set_index("statistic")
    assert list(whole.index) == list(whole_pieces.STATISTICS)
    assert (whole.real_p10 <= whole.real_p90).all() and whole.loc["ended", "real"] == 1
    assert 0 < whole.loc["bars", "lstm"] and 0 <= whole.loc["muspy_scale_consistency", "lstm"] <= 1


def test_likelihood_only_gives_the_numbers_of_the_full_run_and_a_row_per_piece(trained_run, tmp_path):
    full, alone = tmp_path / "full", tmp_path / "alone"
    evaluate.main(["--checkpoint", str(trained_run), "--pieces", "2", "--length", "12", "--output", str(full),
                   "--resamples", "200"])
    evaluate.main(["--checkpoint", str(trained_run), "--likelihood-only", "--output", str(alone),
                   "--per-piece", str(tmp_path / "pieces.csv"), "--resamples", "200", "--by", "time_signature"])
    by_meter = pd.read_csv(alone / "by_time_signature.csv")
    assert set(by_meter.value) == {"4/4"} and by_meter.difference.isna().tolist() == [True, False], \
        "every test tune is in 4/4; the LSTM against the n-gram"
    full_table, alone_table = (pd.read_csv(folder / "evaluation.csv").set_index("model") for folder in (full, alone))
    assert list(alone_table.index) == list(full_table.index[:2]), "no generation, so no real-music rows"
    assert "mean_overlap" not in alone_table and not (alone / "pitch_classes.png").exists()
    pd.testing.assert_frame_equal(alone_table, full_table.loc[alone_table.index, alone_table.columns])
    pieces = pd.read_csv(tmp_path / "pieces.csv", keep_default_na=False)
    lstm = pieces[pieces.model == "lstm"]
    assert by_meter.pieces.tolist() == [len(lstm)] * 2
    _, splits = load_processed(data_of(trained_run), ("test",))
    assert list(lstm.source) == list(splits["test"].sources)
    assert lstm.nll_nats.sum() / lstm.tokens.sum() == pytest.approx(alone_table.loc["lstm", "nll_nats"])
    assert lstm.nll_nats.sum() / lstm.notes.sum() == pytest.approx(alone_table.loc["lstm", "nats_per_note"])
    assert lstm.pitch_nll_nats.sum() / lstm.pitch_tokens.sum() / np.log(2) == \
        pytest.approx(alone_table.loc["lstm", "pitch_bits"])


def data_of(run_dir):
    """The data folder a run was trained on."""
    from musicgen.runs import read_run_config

    return read_run_config(run_dir)["data"]


def test_evaluate_needs_runs(tmp_path):
    with pytest.raises(UserError, match="no runs"):
        evaluate.main(["--checkpoints", str(tmp_path / "none")])


def test_each_label_value_is_scored_on_its_own_pieces_against_the_first_model():
    sources = ["a.mid", "b.mid", "c.mid", "d.mid", "e.mid"]
    per_piece = pd.DataFrame({
        "model": ["ngram"] * 5 + ["transformer"] * 5, "source": sources * 2,
        "notes": [10, 30, 20, 20, 5] * 2,
        "nll_nats": [30.0, 90.0, 40.0, 60.0, 10.0, 20.0, 30.0, 40.0, 40.0, 10.0]})
    values = {"a.mid": "jig", "b.mid": "jig", "c.mid": "reel", "d.mid": "reel"}  # e.mid has none
    table = breakdown.by_label(per_piece, values, resamples=200).set_index(["value", "model"])
    assert table.loc[("jig", "ngram"), "nats_per_note"] == pytest.approx(120 / 40), "total nats over total notes"
    assert table.loc[("jig", "transformer"), "nats_per_note"] == pytest.approx(50 / 40)
    assert table.loc[("reel", "transformer"), "difference"] == pytest.approx(80 / 40 - 100 / 40)
    assert table.loc[("reel", "ngram"), "pieces"] == 2 and table.loc[(breakdown.NO_VALUE, "ngram"), "pieces"] == 1
    jig = table.loc[("jig", "transformer")]
    assert jig.difference_low <= jig.difference <= jig.difference_high < 0, "paired over the value's own pieces"
    assert jig.nats_per_note_low <= 1.0 and jig.nats_per_note_high >= 1.5, "the interval spans its two pieces"
    assert "| jig | 2 | 3.000 [" in breakdown.summary(table.reset_index())
    manifest = pd.DataFrame({"source": sources, "status": ["kept"] * 4 + ["failed"], "split": "test",
                             "style": ["jig", "jig", "reel", "", ""]})
    assert breakdown.label_column(manifest, "style", "data") == {"a.mid": "jig", "b.mid": "jig", "c.mid": "reel",
                                                                 "d.mid": breakdown.NO_VALUE}
    with pytest.raises(UserError, match="no label 'mood'; its labels: style"):
        breakdown.label_column(manifest, "mood", "data")
