"""tune.py: a hyperparameter search that writes every trial down, keeps to its budget and resumes after a kill."""

import csv
import json
import shutil

import pytest
from conftest import TINY_LSTM, assert_picture
from optuna.distributions import CategoricalDistribution

import tune
from models import registry
from musicgen import hyperparameters, tuning
from musicgen.callbacks import RunCheckpoint
from musicgen.errors import UserError, run_cli

SEARCHED_LSTM = ["learning_rate", "units", "layers", "dropout", "seq_len", "batch_size"]


def tune_tiny_lstm(data, output, *arguments):
    """tune.py on a tiny LSTM (the base settings every trial varies); returns what it printed."""
    base = output.parent / f"{output.name}-base.json"
    base.write_text(json.dumps({key: value for key, value in TINY_LSTM.items() if key != "epochs"}))
    tune.main(["--model", "lstm", "--data", str(data), "--output", str(output), "--config", str(base), *arguments])


def read_trials(output):
    with open(output / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def two_trials(processed, tmp_path_factory):
    output = tmp_path_factory.mktemp("tuning") / "lstm"
    tune_tiny_lstm(processed, output, "--trials", "2", "--epochs-per-trial", "2")
    return output


def test_a_search_writes_every_trial_its_plot_and_the_best_settings_for_train_py(two_trials):
    rows = read_trials(two_trials)
    assert [row["number"] for row in rows] == ["0", "1"]
    assert list(rows[0])[2:2 + len(SEARCHED_LSTM)] == SEARCHED_LSTM
    assert [row["state"] for row in rows] == ["complete", "complete"]
    assert [row["epochs"] for row in rows] == ["2", "2"]
    assert rows[0]["note"] == "the base settings" and rows[0]["units"] == str(TINY_LSTM["units"])
    assert rows[0]["learning_rate"] != rows[1]["learning_rate"]
    best_row = min(rows, key=lambda row: float(row["best_val_loss"]))

    config = hyperparameters.resolve_config(registry.get("lstm"), two_trials / "best.json")
    assert {key: str(config[key]) for key in SEARCHED_LSTM} == {key: best_row[key] for key in SEARCHED_LSTM}
    assert config["embedding_dim"] == TINY_LSTM["embedding_dim"]  # a base setting, not searched, kept
    assert json.loads((two_trials / "best.json").read_text())["model"] == "lstm"
    assert (two_trials / best_row["run"] / "best.keras").exists()
    assert_picture(two_trials / "trials.png", 1500, 600)


def test_the_same_command_with_more_trials_resumes_the_search(two_trials, processed, tmp_path):
    output = tmp_path / "lstm"
    shutil.copytree(two_trials, output)
    tune_tiny_lstm(processed, output, "--trials", "3", "--epochs-per-trial", "2")
    rows = read_trials(output)
    assert rows[:2] == read_trials(two_trials)
    assert [row["number"] for row in rows] == ["0", "1", "2"] and rows[2]["state"] == "complete"


def test_a_killed_trial_goes_on_from_its_last_epoch_in_a_new_trial(processed, tmp_path, monkeypatch):
    output = tmp_path / "lstm"

    def killed_as_the_second_epoch_begins(checkpoint, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, "on_epoch_begin", killed_as_the_second_epoch_begins)
    with pytest.raises(KeyboardInterrupt):
        tune_tiny_lstm(processed, output, "--trials", "1", "--epochs-per-trial", "2")
    monkeypatch.undo()
    first_epoch = json.loads((output / "trial-000" / "run_config.json").read_text())["progress"]["history"][0]

    tune_tiny_lstm(processed, output, "--trials", "1", "--epochs-per-trial", "2")
    killed, continued = read_trials(output)
    assert (killed["state"], killed["note"]) == ("fail", "the base settings; interrupted; continued by trial 1")
    assert (continued["state"], continued["epochs"]) == ("complete", "2")
    assert continued["note"] == "the base settings; continues trial 0"
    assert {key: continued[key] for key in SEARCHED_LSTM} == {key: killed[key] for key in SEARCHED_LSTM}
    history = json.loads((output / "trial-000" / "run_config.json").read_text())["progress"]["history"]
    assert history[0] == first_epoch and len(history) == 2
    assert not (output / "trial-001").exists()


def test_a_spent_budget_stops_the_trial_after_its_epoch_and_starts_no_other(processed, tmp_path, capsys):
    output = tmp_path / "lstm"
    tune_tiny_lstm(processed, output, "--budget-minutes", "0.001", "--trials", "5", "--epochs-per-trial", "3")
    [row] = read_trials(output)
    assert (row["state"], row["epochs"]) == ("pruned", "1")
    assert row["note"] == "the base settings; stopped by the time budget"
    assert "no trial has finished yet" in capsys.readouterr().out
    assert not (output / "best.json").exists()


@pytest.mark.parametrize("arguments", [["--model", "gan"], ["--model", "ngram"], ["--model", "wavenet"],
                                       ["--budget-minutes", "0"], ["--data", "missing/"]])
def test_what_cannot_be_tuned_is_refused_in_one_line(arguments, processed, tmp_path, capsys):
    command = ["--data", str(processed), "--output", str(tmp_path / "search"), *arguments]
    with pytest.raises(SystemExit) as exit:
        run_cli(lambda: tune.main(command))
    error = capsys.readouterr().err
    assert exit.value.code == 2 and error.startswith("error: ") and len(error.splitlines()) == 1, error
    assert not (tmp_path / "search").exists()


def test_resuming_from_other_base_settings_is_refused(two_trials, processed, tmp_path):
    output = tmp_path / "lstm"
    shutil.copytree(two_trials, output)
    with pytest.raises(UserError, match="started from other settings"):
        tune_tiny_lstm(processed, output, "--trials", "3", "--set", "embedding_dim=16")


def test_each_model_is_searched_over_the_settings_it_has_around_its_defaults():
    names = {name: set(tuning.search_space(registry.get(name), hyperparameters.defaults(registry.get(name))))
             for name in ("lstm", "transformer", "cnn", "seq2seq")}
    assert names["lstm"] == set(SEARCHED_LSTM)
    assert names["transformer"] == {"learning_rate", "embedding_dim", "layers", "dropout", "seq_len", "batch_size"}
    assert names["cnn"] == {"learning_rate", "channels", "layers", "dropout", "seq_len", "batch_size"}
    assert names["seq2seq"] == {"learning_rate", "units", "dropout", "seq_len", "batch_size"}
    for name, spec in registry.REGISTRY.items():
        if spec.likelihood and spec.keras:
            defaults = hyperparameters.defaults(spec)
            for setting, distribution in tuning.search_space(spec, defaults).items():
                if isinstance(distribution, CategoricalDistribution):
                    assert defaults[setting] in distribution.choices, (name, setting)
                else:
                    assert distribution.low <= defaults[setting] <= distribution.high, (name, setting)
    seq2seq = hyperparameters.defaults(registry.get("seq2seq"))
    windows = tuning.search_space(registry.get("seq2seq"), seq2seq)["seq_len"].choices
    assert min(windows) >= 2 * seq2seq["phrase_tokens"]  # two phrases: its previous one and the next
