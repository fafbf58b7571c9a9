"""The causal Transformer: causal attention, safe-mode reload, and the key/value cache decoder."""

import keras
import numpy as np
import pytest

import models
import models.transformer
from models.decoding import WindowDecoder
from musicgen import training
from musicgen.errors import UserError

CONTEXT = 8
TINY = {"embedding_dim": 16, "heads": 2, "layers": 2, "ff_dim": 32, "dropout": 0.1, "seq_len": CONTEXT,
        "batch_size": 4, "epochs": 1}
VOCABULARY_SIZE = 30


def tiny_config(**changes):
    return training.resolve_config("transformer", overrides={**TINY, **changes})


@pytest.fixture(scope="module")
def trained():
    """A tiny transformer after a few optimizer steps, and a batch of tokens longer than its context."""
    model = models.get("transformer").build(VOCABULARY_SIZE, tiny_config())
    training.compile_model(model, 1e-2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCABULARY_SIZE, (3, 30)).astype("int32")
    losses = [float(model.train_on_batch(x[:, :CONTEXT], x[:, 1:CONTEXT + 1])[0]) for _ in range(3)]
    assert losses[-1] < losses[0], "training steps lower the loss on their batch"
    return model, x


def logits(model, tokens):
    return keras.ops.convert_to_numpy(model(tokens, training=False))


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
    model = models.get("transformer").build(VOCABULARY_SIZE, tiny_config(layers=1))
    swapped = x[:, :6].copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    assert not np.allclose(logits(model, swapped)[:, -1], logits(model, x[:, :6])[:, -1], rtol=1e-4, atol=1e-4)


def test_saved_model_reloads_in_safe_mode_with_identical_predictions(trained, tmp_path):
    model, x = trained
    training.save_model(model, tmp_path / "transformer.keras")
    reloaded = training.load_model(tmp_path / "transformer.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(reloaded.optimizer.iterations) == int(model.optimizer.iterations) == 3, "resumable: optimizer kept"
    assert models.get("transformer").decoder(reloaded).context == CONTEXT, "the trained context survives a reload"


def test_cached_decoder_matches_a_full_rerun_step_by_step(trained):
    model, x = trained
    cached = models.get("transformer").decoder(model)
    full = WindowDecoder(model, context=CONTEXT)
    got, state = cached.start(x[:, :2])
    expected, window = full.start(x[:, :2])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert got.dtype == np.float64 and got.shape == (3, VOCABULARY_SIZE)
    for t in range(2, CONTEXT):  # up to a full cache
        got, state = cached.step(x[:, t], state)
        expected, window = full.step(x[:, t], window)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=f"step {t}")


def test_decoding_past_the_context_reprimes_from_recent_tokens_and_stays_finite(trained):
    model, x = trained
    decoder = models.get("transformer").decoder(model)
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
    got, state = models.get("transformer").decoder(model).start(x[:, :20])
    np.testing.assert_allclose(got, logits(model, x[:, 20 - CONTEXT: 20])[:, -1], rtol=1e-4, atol=1e-4)


def test_reorder_carries_each_chosen_row_on(trained):
    model, x = trained
    decoder = models.get("transformer").decoder(model)
    _, state = decoder.start(x[:, :5])
    state = decoder.reorder(state, np.array([2, 2, 0]))
    got, _ = decoder.step(x[[2, 2, 0], 5], state)
    np.testing.assert_allclose(got, logits(model, x[[2, 2, 0], :6])[:, -1], rtol=1e-4, atol=1e-4)


def test_heads_that_do_not_split_the_width_evenly_are_refused():
    with pytest.raises(UserError, match="heads"):
        models.get("transformer").build(VOCABULARY_SIZE, tiny_config(heads=3))
