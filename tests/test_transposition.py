"""Training windows transposed as they are cut (train.py --transpose N): every token moved with the music."""

import json
import shutil

import numpy as np
import pytest
from conftest import TINY_LSTM

from musicgen.chords import parse_symbol
from musicgen.dataset import load_processed, windows
from musicgen.encoding import EncodingSettings
from musicgen.errors import UserError
from musicgen.hyperparameters import resolve_config, upgrade
from musicgen.transposition import Transposition, transposed_ids
from musicgen.vocabulary import Vocabulary
from models import registry


def _vocabulary():
    settings = EncodingSettings(instruments=True)
    return Vocabulary.build(settings, {(60, 64, 67): 2, (62, 66, 69): 2}, min_chord_count=1,
                            controls=["key=C major", "key=D major", "style=folk"],
                            symbols=[parse_symbol("C"), parse_symbol("D")],
                            merges=[("C4", "dur:4"), ("D4", "dur:4"), ("E4", "dur:4")])


def test_each_token_has_its_transposed_twin_or_none():
    vocabulary = _vocabulary()
    up = transposed_ids(vocabulary, 2)

    def twin(token):
        return None if up[vocabulary.index[token]] < 0 else vocabulary.tokens[up[vocabulary.index[token]]]

    assert twin("C4") == "D4" and twin("G9") is None, "G9 + 2 is past MIDI's range"
    assert twin("C4.E4.G4") == "D4.F#4.A4" and twin("D4.F#4.A4") is None, "a chord the vocabulary lacks"
    assert twin("harmony:C") == "harmony:D" and twin("harmony:D") is None
    assert twin("key=C major") == "key=D major" and twin("key=D major") is None
    assert twin("style=folk") == "style=folk" and twin("dur:4") == "dur:4" and twin("inst:33") == "inst:33"
    assert twin("inst:drums") is None, "drum sounds are not pitches"
    assert twin("C4+dur:4") == "D4+dur:4" and twin("D4+dur:4") == "E4+dur:4" and twin("E4+dur:4") is None
    np.testing.assert_array_equal(transposed_ids(vocabulary, 0), np.arange(len(vocabulary)))


def test_a_window_moves_by_one_shift_of_its_own_or_stays_where_a_token_cannot():
    vocabulary = _vocabulary()
    transposition = Transposition.of(vocabulary, 3)
    tokens = ["<start>", "inst:0", "C4", "dur:4", "shift:4", "inst:0", "E4", "dur:4", "shift:4"]
    window = np.array([vocabulary.index[token] for token in tokens], dtype=np.int32)
    moved = transposition(np.tile(window, (200, 1)), np.random.default_rng(0))
    shifts = moved[:, 2] - window[2]  # note tokens are in pitch order
    assert set(shifts.tolist()) == set(range(-3, 4)), "every shift from -3 to 3 is drawn"
    np.testing.assert_array_equal(moved[:, 6] - window[6], shifts), "both notes by the same shift"
    np.testing.assert_array_equal(moved[:, [0, 1, 3, 4]], np.tile(window[[0, 1, 3, 4]], (200, 1)))
    drums = window.copy()
    drums[1] = vocabulary.index["inst:drums"]
    np.testing.assert_array_equal(transposition(np.tile(drums, (20, 1)), np.random.default_rng(0)),
                                  np.tile(drums, (20, 1)))
    assert Transposition.of(vocabulary, 0) is None


def test_shuffled_training_windows_are_transposed_and_validation_windows_are_not(processed):
    vocabulary, splits = load_processed(processed, ("train",))
    tokens = splits["train"].tokens
    transposition = Transposition.of(vocabulary, 2)
    train = np.concatenate([x.numpy() for x, _, _ in windows([tokens], 24, 8, vocabulary.pad_id, shuffle=True,
                                                                transposition=transposition)])
    plain = np.concatenate([x.numpy() for x, _, _ in windows([tokens], 24, 8, vocabulary.pad_id, shuffle=False,
                                                                transposition=transposition)])
    pitched = vocabulary.kinds == vocabulary.kinds[vocabulary.note_id(60)]
    played = {pitch for row in train for token in row if pitched[token] for pitch in vocabulary.pitches[token]}
    assert played - {pitch for token in tokens if pitched[token] for pitch in vocabulary.pitches[token]}, \
        "the training windows hold pitches the corpus does not"
    np.testing.assert_array_equal(plain.ravel()[: len(tokens)], tokens[: plain.size])


def test_transpose_is_a_setting_on_by_default_that_old_runs_read_as_zero():
    spec = registry.get("lstm")
    assert resolve_config(spec)["transpose"] == 3, "on by default"
    assert resolve_config(spec, overrides={"transpose": "5"})["transpose"] == 5
    with pytest.raises(UserError, match="transpose must be 0 to 11 semitones, got 12"):
        resolve_config(spec, overrides={"transpose": 12})
    assert upgrade({"epochs": 3})["transpose"] == 0


def test_a_run_made_before_transposition_resumes_as_it_began_unless_told_otherwise(trained_run, processed, tmp_path,
                                                                                  capsys):
    import train

    run = tmp_path / "lstm"
    shutil.copytree(trained_run, run)
    run_config = json.loads((run / "run_config.json").read_text())
    del run_config["config"]["transpose"]  # as runs made before it have it
    (run / "run_config.json").write_text(json.dumps(run_config))
    common = ["--model", "lstm", "--data", str(processed), "--checkpoints", str(tmp_path)]
    for key, value in TINY_LSTM.items():
        common += ["--" + key.replace("_", "-"), str(2 if key == "epochs" else value)]
    train.main(common)
    assert "resuming" in capsys.readouterr().out
    assert json.loads((run / "run_config.json").read_text())["config"]["transpose"] == 0, "as it began"
    with pytest.raises(UserError, match="transpose 0 -> 2"):
        train.main(common + ["--epochs", "3", "--transpose", "2"])
