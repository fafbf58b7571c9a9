"""Shared vocabularies (preprocess.py --vocab) and fine-tuning (train.py --init-from, --freeze, --summary)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_LSTM

import preprocess
import train
from musicgen.dataset import load_processed
from musicgen.errors import UserError
from musicgen.saving import load_model

TUNE = """X:{number}
T:Tune {number}
M:4/4
L:1/8
K:D
"D"DFAd fdAF|"G"GBdg "A7"fedc|"D"d2A2 F2D2|"A7"EFGA "D"d4|
"""


@pytest.fixture(scope="module")
def own_tunes(tmp_path_factory):
    """A user's own small corpus: ABC tunes with chord symbols the shared vocabulary has no tokens for."""
    folder = tmp_path_factory.mktemp("own")
    for number in range(1, 7):
        (folder / f"tune{number}.abc").write_text(TUNE.format(number=number).replace("dfAF", "dfA" + "FE"[number % 2]))
    return folder


@pytest.fixture(scope="module")
def own_data(own_tunes, processed, tmp_path_factory):
    output = tmp_path_factory.mktemp("own-data")
    preprocess.main(["--input", str(own_tunes), "--output", str(output), "--workers", "1", "--vocab", str(processed),
                     "--val-fraction", "0.2", "--test-fraction", "0.2"])
    return output


def test_a_corpus_encoded_with_a_shared_vocabulary_counts_what_does_not_fit(own_data, processed, capsys):
    vocabulary, splits = load_processed(own_data)
    assert vocabulary.hash() == load_processed(processed)[0].hash()
    assert sum(len(split.sources) for split in splits.values()) == 6
    table = pd.read_csv(own_data / "manifest.csv")
    assert (table.chord_symbols_not_in_vocabulary == 6).all(), "the six symbols of each tune have no token"
    assert (table.labels_not_in_vocabulary == 0).all()


def test_the_summary_says_what_did_not_fit(own_tunes, processed, tmp_path, capsys):
    preprocess.main(["--input", str(own_tunes), "--output", str(tmp_path), "--workers", "1", "--vocab",
                     str(processed / "vocab.json")])
    assert "36 chord symbols not in vocabulary" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--timing", "seconds"], "--vocab decides the encoding"),
    (["--velocity-bins", "8"], "leave out --velocity-bins"),
    (["--infilling"], "has no infilling markers"),
])
def test_vocab_conflicting_flags_are_refused(own_tunes, processed, tmp_path, extra, message):
    with pytest.raises(UserError, match=message):
        preprocess.main(["--input", str(own_tunes), "--output", str(tmp_path / "out"), "--vocab", str(processed),
                         *extra])
    assert not (tmp_path / "out" / "vocab.json").exists()


def test_a_damaged_or_missing_vocab_is_refused(own_tunes, processed, tmp_path):
    damaged = json.loads((processed / "vocab.json").read_text())
    damaged["tokens"][10:12] = damaged["tokens"][11:9:-1]  # two notes swapped: their ids mean each other
    (tmp_path / "vocab.json").write_text(json.dumps(damaged))
    for path, message in ((tmp_path / "vocab.json", "hash does not match"), (tmp_path / "nothing", "neither")):
        with pytest.raises(UserError, match=message):
            preprocess.main(["--input", str(own_tunes), "--output", str(tmp_path / "out"), "--vocab", str(path)])


def tiny_flags():
    flags = []
    for key, value in TINY_LSTM.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def test_fine_tuning_starts_from_the_parent_and_keeps_frozen_layers(trained_run, own_data, tmp_path, capsys):
    train.main(["--init-from", str(trained_run), "--data", str(own_data), "--checkpoints", str(tmp_path),
                "--run-name", "mine", "--freeze", "1", "--epochs", "2"])
    run_config = json.loads((tmp_path / "mine" / "run_config.json").read_text())
    parent_config = json.loads((trained_run / "run_config.json").read_text())
    assert run_config["model"] == "lstm", "the parent's model, without --model"
    assert run_config["parent"]["run"] == str(trained_run) and run_config["parent"]["frozen_layers"] == ["embedding"]
    assert run_config["config"]["learning_rate"] == pytest.approx(parent_config["config"]["learning_rate"] * 0.2)
    assert run_config["config"]["units"] == parent_config["config"]["units"] and run_config["config"]["patience"] == 3
    assert run_config["progress"]["epochs_completed"] == 2
    parent, child = (load_model(folder / "best.keras", compile=False) for folder in (trained_run, tmp_path / "mine"))
    assert np.array_equal(parent.get_layer("embedding").get_weights()[0], child.get_layer("embedding").get_weights()[0])
    assert not np.array_equal(parent.get_layer("logits").get_weights()[0], child.get_layer("logits").get_weights()[0])
    assert "starting from the weights of" in capsys.readouterr().out


def test_fine_tuning_resumes_like_any_run(trained_run, own_data, tmp_path, capsys):
    import keras

    from musicgen.saving import save_model

    arguments = ["--init-from", str(trained_run), "--data", str(own_data), "--checkpoints", str(tmp_path)]
    train.main([*arguments, "--epochs", "1"])
    assert "starting from the weights of" in capsys.readouterr().out
    run = tmp_path / "lstm"
    # Mark the end of epoch 1: a zero embedding, which the parent's weights are far from.
    after_one = load_model(run / "last.keras")
    steps_per_epoch = int(after_one.optimizer.iterations.numpy())
    embedding = next(layer for layer in after_one.layers if isinstance(layer, keras.layers.Embedding))
    embedding.set_weights([np.zeros_like(weights) for weights in embedding.get_weights()])
    save_model(after_one, run / "last.keras")
    parent_scale = np.abs(next(layer for layer in load_model(trained_run / "best.keras").layers
                               if isinstance(layer, keras.layers.Embedding)).get_weights()[0]).mean()

    train.main([*arguments, "--epochs", "2"])
    printed = capsys.readouterr().out
    assert f"resuming {run} after epoch 1" in printed and "starting from the weights" not in printed
    run_config = json.loads((run / "run_config.json").read_text())
    assert run_config["progress"]["epochs_completed"] == 2 and "parent" in run_config
    assert [row["epoch"] for row in run_config["progress"]["history"]] == [1, 2]
    after_two = load_model(run / "last.keras")
    assert int(after_two.optimizer.iterations.numpy()) == 2 * steps_per_epoch, "the optimizer went on, too"
    resumed_scale = np.abs(next(layer for layer in after_two.layers
                                if isinstance(layer, keras.layers.Embedding)).get_weights()[0]).mean()
    assert resumed_scale < parent_scale / 5, "epoch 2 went on from epoch 1's weights, not from the parent's"


@pytest.mark.parametrize("argv, message", [
    (["--init-from", "RUN", "--data", "OTHER"], "another vocabulary than the data's; encode the data"),
    (["--init-from", "RUN", "--model", "gru"], "is a lstm run"),
    (["--init-from", "RUN", "--model", "ngram"], "is a lstm run"),
    (["--freeze", "1"], "give that too"),
    (["--init-from", "RUN", "--freeze", "4"], "--freeze must be 0 to 2"),
    (["--init-from", "RUN", "--units", "32"], "another model than"),
    (["--init-from", "NOWHERE"], "does not exist"),
])
def test_fine_tuning_refusals(trained_run, own_data, band, tmp_path, argv, message):
    names = {"RUN": str(trained_run), "OTHER": str(band), "NOWHERE": str(tmp_path / "nowhere")}
    argv = [names.get(item, item) for item in argv]
    if "--data" not in argv:
        argv += ["--data", str(own_data)]
    with pytest.raises(UserError, match=message):
        train.main([*argv, "--checkpoints", str(tmp_path / "runs")])
    assert not list((tmp_path / "runs").glob("*/best.keras"))


def test_summary_prints_the_layers_and_draws_them(processed, tmp_path, capsys):
    train.main(["--summary", "--model", "lstm", "--data", str(processed), "--checkpoints", str(tmp_path),
                *tiny_flags()])
    printed = capsys.readouterr().out
    assert "lstm_0 (LSTM)" in printed and "Total params" in printed
    drawable = shutil.which("dot") is not None
    assert (tmp_path / "lstm" / "model.png").is_file() == drawable
    assert ("layers drawn in" if drawable else "model.png not drawn") in printed
    assert not (tmp_path / "lstm" / "best.keras").exists(), "--summary trains nothing"
