"""Every registered model: builds, trains a step, saves and reloads in safe mode, decodes incrementally."""

import numpy as np
import pytest

import models
from models.decoding import WindowDecoder
from musicgen import training

TINY = {"units": 12, "embedding_dim": 8, "layers": 2, "dropout": 0.1}
VOCABULARY_SIZE = 30


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_recurrent_model_saves_reloads_and_decodes_like_a_full_rerun(name, tmp_path):
    spec = models.get(name)
    model = spec.build(VOCABULARY_SIZE, {**spec.defaults, **TINY})
    training.compile_model(model, 1e-2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCABULARY_SIZE, (4, 10)).astype("int32")
    y = rng.integers(0, VOCABULARY_SIZE, (4, 10)).astype("int32")
    before = model.train_on_batch(x, y)
    after = model.train_on_batch(x, y)
    assert after[0] < before[0], "one step on a batch lowers its loss"

    training.save_model(model, tmp_path / "m.keras")
    reloaded = training.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    cached, full = spec.decoder(reloaded), WindowDecoder(reloaded, context=100)
    logits, state = cached.start(x[:, :6])
    expected, window = full.start(x[:, :6])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    for t in range(6, 10):
        logits, state = cached.step(x[:, t], state)
        expected, window = full.step(x[:, t], window)
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_unknown_model_names_the_choices():
    with pytest.raises(Exception, match=r"must be one of \[rnn, lstm, gru"):
        models.get("wavenet")
