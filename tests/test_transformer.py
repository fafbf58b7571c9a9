"""The causal Transformer: causal attention, safe-mode reload, and the key/value cache decoder."""

import numpy as np
import pytest
from conftest import TINY_SETTINGS, logits, tiny_settings

from models import registry
from musicgen.errors import UserError
from musicgen.optimizer import OptimizerSettings, compile_model
from musicgen.saving import load_model, save_model

TINY = TINY_SETTINGS["transformer"]
CONTEXT = TINY["seq_len"]
VOCABULARY_SIZE = 30


def tiny_config(**changes):
    return tiny_settings("transformer", **changes)


@pytest.fixture(scope="module")
def trained():
    """A tiny transformer after a few optimizer steps, and a batch of tokens longer than its context."""
    model = registry.get("transformer").build(VOCABULARY_SIZE, tiny_config())
    compile_model(model, OptimizerSettings(learning_rate=1e-2))
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCABULARY_SIZE, (3, 30)).astype("int32")
    losses = [float(model.train_on_batch(x[:, :CONTEXT], x[:, 1:CONTEXT + 1])[0]) for _ in range(3)]
    assert losses[-1] < losses[0], "training steps lower the loss on their batch"
    return model, x


def test_output_at_t_does_not_depend_on_later_tokens(trained):
    model, x = trained
    t = 5
    base = logits(model, x[:, :12])
    changed_tokens = x[:, :12].copy()
    changed_tokens[:, t + 1:] = (changed_tokens[:, t + 1:] + 1) % VOCABULARY_SIZE
    changed = logits(model, changed_tokens)
    np.testing.assert_allclose(changed[:, : t + 1], base[:, : t + 1], rtol=1e-5, atol=1e-5)
    assert not np.allclose(changed[:, t + 1], base[:, t + 1]), "the next position does see the change"
    np.testing.assert_allclose(logits(model, x[:, : t + 1]), base[:, : t + 1], rtol=1e-5, atol=1e-5)


def test_rotary_positions_let_one_layer_see_the_order_of_earlier_tokens(trained):
    _, x = trained
    # Without positions, one attention layer would be blind to the order of the tokens before the last.
    model = registry.get("transformer").build(VOCABULARY_SIZE, tiny_config(layers=1))
    swapped = x[:, :6].copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    assert not np.allclose(logits(model, swapped)[:, -1], logits(model, x[:, :6])[:, -1], rtol=1e-4, atol=1e-4)


def test_saved_model_reloads_in_safe_mode_with_identical_predictions(trained, tmp_path):
    model, x = trained
    save_model(model, tmp_path / "transformer.keras")
    reloaded = load_model(tmp_path / "transformer.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(reloaded.optimizer.iterations) == int(model.optimizer.iterations) == 3, "resumable: optimizer kept"
    assert registry.get("transformer").decoder(reloaded).context == CONTEXT, "the trained context survives a reload"


def test_decoding_past_the_context_reprimes_from_recent_tokens_and_stays_finite(trained):
    model, x = trained
    decoder = registry.get("transformer").decoder(model)
    assert decoder.keep == CONTEXT * 3 // 4
    got, state = decoder.start(x[:, :3])
    held_lengths = []
    for t in range(3, x.shape[1]):  # 27 steps: more than three times the context
        got, state = decoder.step(x[:, t], state)
        held = state[0]
        held_lengths.append(held.shape[1])
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(held, x[:, t + 1 - held.shape[1]: t + 1], "the most recent tokens are held")
        np.testing.assert_allclose(got, logits(model, held)[:, -1], rtol=1e-4, atol=1e-4, err_msg=f"step {t}")
    assert max(held_lengths) == CONTEXT and held_lengths.count(decoder.keep) >= 3, "the cache filled and re-primed"


def test_a_prompt_longer_than_the_context_keeps_its_end(trained):
    model, x = trained
    got, state = registry.get("transformer").decoder(model).start(x[:, :20])
    np.testing.assert_allclose(got, logits(model, x[:, 20 - CONTEXT: 20])[:, -1], rtol=1e-4, atol=1e-4)


def test_heads_that_do_not_split_the_width_evenly_are_refused():
    with pytest.raises(UserError, match="heads"):
        registry.get("transformer").build(VOCABULARY_SIZE, tiny_config(heads=3))
