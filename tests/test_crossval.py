import subprocess
import sys

import pandas as pd
import pytest

import crossval
import preprocess
from conftest import ROOT, TINY_LSTM
from musicgen.dataset import load_processed, read_folds
from musicgen.errors import UserError


@pytest.fixture(scope="module")
def folds(tune_folder, tmp_path_factory):
    output = tmp_path_factory.mktemp("folds")
    preprocess.main(["--input", str(tune_folder), "--output", str(output), "--folds", "3", "--min-chord-count", "1"])
    return output


def test_each_piece_is_tested_in_exactly_one_fold_and_never_trains_there(folds):
    folders = read_folds(folds)
    assert [folder.name for folder in folders] == ["fold-0", "fold-1", "fold-2"]
    tested, all_sources = [], None
    for number, folder in enumerate(folders):
        _, splits = load_processed(folder)
        sources = {name: set(splits[name].sources) for name in splits}
        assert sources["test"] and sources["validation"] and sources["train"]
        assert not sources["test"] & sources["train"] and not sources["validation"] & sources["train"]
        assert not sources["test"] & sources["validation"]
        next_fold_test = set(load_processed(folders[(number + 1) % 3], ("test",))[1]["test"].sources)
        assert sources["validation"] == next_fold_test, "fold i validates on the pieces fold i + 1 tests"
        tested += list(sources["test"])
        everything = sources["test"] | sources["validation"] | sources["train"]
        assert all_sources is None or everything == all_sources
        all_sources = everything
    assert sorted(tested) == sorted(all_sources) and len(all_sources) == 12


def test_folds_refuse_fractions_and_too_few_folds(tune_folder, tmp_path):
    with pytest.raises(UserError, match="leave out --val-fraction"):
        preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path), "--folds", "3", "--test-fraction", ".2"])
    with pytest.raises(UserError, match="at least 3"):
        preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path), "--folds", "2"])
    with pytest.raises(UserError, match="folds hold a piece"):
        preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path), "--folds", "12"])


def test_crossval_scores_every_piece_once_and_resumes_where_it_stopped(folds, tmp_path, capsys):
    output = tmp_path / "cv"
    crossval.main(["--data", str(folds), "--model", "ngram", "--output", str(output), "--set", "max_order=3"])
    first = capsys.readouterr().out
    assert first.count("fold ") == 3 and "nats_per_note" in first
    summary = pd.read_csv(output / "summary.csv").set_index("metric")
    pieces = pd.concat(pd.read_csv(output / "ngram" / f"fold-{fold}" / "pieces.csv") for fold in range(3))
    assert len(pieces) == pieces.source.nunique() == 12, "every piece scored once"
    assert summary.loc["nll_nats", "value"] == pytest.approx(pieces.nll_nats.sum() / pieces.tokens.sum())
    assert summary.loc["nats_per_note", "value"] == pytest.approx(pieces.nll_nats.sum() / pieces.notes.sum())
    row = summary.loc["nll_nats"]
    assert row.low <= row.value <= row.high and row.fold_low <= row.fold_mean <= row.fold_high and row.folds == 3

    (output / "ngram" / "fold-1" / "pieces.csv").unlink()  # as if killed while fold 1 was being scored
    crossval.main(["--data", str(folds), "--model", "ngram", "--output", str(output), "--set", "max_order=3"])
    again = capsys.readouterr().out
    assert "fold 2 of 3" in again and "fold 1 of 3" not in again and "fold 3 of 3" not in again
    pd.testing.assert_frame_equal(pd.read_csv(output / "summary.csv").set_index("metric"), summary)

    with pytest.raises(UserError, match="another model, settings or folds"):
        crossval.main(["--data", str(folds), "--model", "ngram", "--output", str(output), "--set", "max_order=2"])


def test_crossval_compares_runs_on_the_same_pieces(folds, tmp_path):
    output = tmp_path / "cv"
    for order in (1, 3):
        crossval.main(["--data", str(folds), "--model", "ngram", "--run-name", f"order-{order}", "--output",
                       str(output), "--set", f"max_order={order}", "--resamples", "200"])
    summary = pd.read_csv(output / "summary.csv")
    assert set(summary.run) == {"order-1", "order-3"}
    differences = pd.read_csv(output / "differences.csv").set_index("metric")
    values = summary.set_index(["run", "metric"]).value
    nll = differences.loc["nll_nats"]
    assert (nll.model, nll.compared_with) == ("order-3", "order-1")
    assert nll.difference == pytest.approx(values["order-3", "nll_nats"] - values["order-1", "nll_nats"])
    assert nll.low <= nll.difference <= nll.high < 0, "a trigram predicts clearly better than counting tokens alone"
    assert "## Differences between runs" in (output / "report.md").read_text()


def test_crossval_needs_folds(processed):
    result = subprocess.run([sys.executable, "crossval.py", "--data", str(processed)], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "holds no cross-validation folds" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_crossval_trains_a_network_on_every_fold(folds, tmp_path):
    output = tmp_path / "cv"
    arguments = ["--data", str(folds), "--model", "lstm", "--output", str(output), "--resamples", "100"]
    for key, value in TINY_LSTM.items():
        arguments += ["--" + key.replace("_", "-"), str(value)]
    crossval.main(arguments)
    for fold in range(3):
        assert (output / "lstm" / f"fold-{fold}" / "best.keras").exists()
    pieces = pd.concat(pd.read_csv(output / "lstm" / f"fold-{fold}" / "pieces.csv") for fold in range(3))
    assert len(pieces) == 12 and (pieces.nll_nats > 0).all()
