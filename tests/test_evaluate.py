import numpy as np
import pandas as pd
import pytest

import evaluate
from models import registry
from musicgen import evaluation
from musicgen.dataset import load_processed
from musicgen.encoding import KINDS
from musicgen.errors import UserError


def test_scoring_through_the_decoder_equals_the_full_model(trained_run, processed):
    run = registry.load_run(trained_run)
    vocabulary = run.vocabulary
    model = run.model
    _, splits = load_processed(processed)
    pieces = [splits["test"].piece(0)[:40], splits["validation"].piece(0)[:25]]
    log_probabilities, correct = evaluation.score_pieces(registry.get("lstm").decoder(model), pieces, vocabulary.pad_id)
    expected = []
    for piece in pieces:
        logits = model.predict(piece[None], verbose=0)[0].astype(np.float64)
        normalized = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        expected.append(normalized[np.arange(len(piece) - 1), piece[1:]])
    np.testing.assert_allclose(log_probabilities, np.concatenate(expected), atol=1e-4)
    assert correct.shape == log_probabilities.shape


def test_likelihood_summary_splits_by_token_kind():
    kinds = np.array([KINDS.index(k) for k in ("note", "duration", "shift", "chord")])
    summary = evaluation.likelihood_summary(np.log([0.5, 0.25, 1.0, 0.5]), np.array([1, 0, 1, 1], bool), kinds)
    assert summary["pitch_bits"] == pytest.approx(1.0)
    assert summary["duration_bits"] == pytest.approx(2.0) and summary["shift_bits"] == pytest.approx(0.0)
    assert summary["nll_bits"] == pytest.approx(1.0) and summary["perplexity"] == pytest.approx(2.0)
    assert summary["accuracy"] == 0.75


def test_evaluate_writes_table_report_and_plots(trained_run, tmp_path, capsys):
    evaluate.main(["--checkpoint", str(trained_run), "--pieces", "2", "--length", "12", "--output", str(tmp_path),
                   "--random-seed", "0"])
    table = pd.read_csv(tmp_path / "evaluation.csv")
    assert list(table.model) == [table.model[0], "lstm", "real: training music", "real: held-out music"]
    assert table.model[0].startswith("ngram baseline (order")
    lstm = table.set_index("model").loc["lstm"]
    assert np.isfinite(lstm.nll_nats) and lstm.perplexity == pytest.approx(np.exp(lstm.nll_nats))
    assert 0 <= lstm.scale_fit_overlap <= 1.0001 and 0 <= lstm.repeated_4gram_share <= 1
    assert table.set_index("model").loc["real: held-out music"].copied_events_max >= 1
    report = (tmp_path / "report.md").read_text()
    for heading in ("## Likelihood", "## Musical statistics", "## Repetition and copying"):
        assert heading in report
    for image in ("pitch_classes.png", "durations.png"):
        assert (tmp_path / image).stat().st_size > 5000
    assert "stats overlap" in capsys.readouterr().out


def test_evaluate_needs_runs(tmp_path):
    with pytest.raises(UserError, match="no runs"):
        evaluate.main(["--checkpoints", str(tmp_path / "none")])
