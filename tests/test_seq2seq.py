"""The phrase-to-phrase seq2seq model: scores only the next phrase, reloads, decodes phrase by phrase."""

import conftest
import keras
import numpy as np
import pytest
from conftest import TINY_SETTINGS

from models import registry
from musicgen import sampling
from musicgen.encoding import EncodingSettings
from musicgen.errors import UserError
from musicgen.saving import load_model, save_model
from musicgen.vocabulary import Vocabulary

TINY = TINY_SETTINGS["seq2seq"]
PHRASE = TINY["phrase_tokens"]
VOCABULARY = Vocabulary.build(EncodingSettings(), {(60, 64, 67): 5})


def tiny_model(vocabulary_size=30, **changes):
    return conftest.tiny_model("seq2seq", vocabulary_size, **changes)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model after a few steps, and its safe-mode reload."""
    model = tiny_model()
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 30, (8, 2 * PHRASE + 1)).astype("int32")
    x, y = tokens[:, :-1], tokens[:, 1:]
    losses = [model.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(3)]
    assert losses[-1] < losses[0], "training steps on one batch lower its loss"
    path = tmp_path_factory.mktemp("seq2seq") / "m.keras"
    save_model(model, path)
    return model, load_model(path)


def test_default_window_is_two_phrases():
    defaults = registry.get("seq2seq").defaults
    assert defaults["seq_len"] == 2 * defaults["phrase_tokens"]


def test_loss_counts_only_the_tokens_of_the_next_phrase():
    model = tiny_model()
    rng = np.random.default_rng(1)
    x = rng.integers(1, 30, (4, 2 * PHRASE)).astype("int32")
    y = rng.integers(1, 30, (4, 2 * PHRASE)).astype("int32")
    scored = slice(PHRASE - 1, 2 * PHRASE - 1)  # logits at P-1..2P-2 predict x[P..2P-1]
    other_y = rng.integers(1, 30, y.shape).astype("int32")
    other_y[:, scored] = y[:, scored]
    weights = np.zeros(y.shape, "float32")
    weights[:, scored] = 1.0
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert model.evaluate(x, other_y, verbose=0, return_dict=True)["loss"] == pytest.approx(loss, rel=1e-6)
    assert model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)["loss"] == pytest.approx(loss, rel=1e-6)
    changed = y.copy()
    changed[:, PHRASE] = (changed[:, PHRASE] % 29) + 1
    assert model.evaluate(x, changed, verbose=0, return_dict=True)["loss"] != pytest.approx(loss, rel=1e-6)


def test_saved_model_reloads_in_safe_mode_with_identical_predictions(trained):
    model, reloaded = trained
    x = np.random.default_rng(2).integers(1, 30, (3, 2 * PHRASE)).astype("int32")
    np.testing.assert_allclose(model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    assert registry.get("seq2seq").output_size(reloaded) == 30


def test_decoder_steps_equal_recomputing_the_decoder_over_the_phrase_prefix(trained):
    _, model = trained
    x = np.random.default_rng(3).integers(1, 30, (3, 3 * PHRASE + 2)).astype("int32")
    full = keras.ops.convert_to_numpy(model(x))  # the phrase chain: each phrase decoded after encoding the one before
    decoder = registry.get("seq2seq").decoder(model)
    logits, state = decoder.start(x[:, :PHRASE])
    np.testing.assert_allclose(logits, full[:, PHRASE - 1], rtol=1e-4, atol=1e-4)
    for t in range(PHRASE, x.shape[1]):  # crosses two phrase boundaries
        logits, state = decoder.step(x[:, t], state)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-4)
        # the same logits from scratch: encode the previous phrase, rerun the decoder over this phrase's prefix
        begin = (t + 1) // PHRASE * PHRASE - 1
        recomputed = model.decode_phrases(x[:, begin - PHRASE + 1: begin + 1], x[:, begin: t + 1])[:, -1]
        np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(recomputed), rtol=1e-4, atol=1e-4)
    kept = decoder.reorder(state, np.array([2, 0]))
    logits, _ = decoder.step(np.array([5, 5], "int32"), kept)
    expected, _ = decoder.step(np.array([5, 5, 5], "int32"), state)
    np.testing.assert_allclose(logits, expected[[2, 0]], rtol=1e-5, atol=1e-5)


def test_short_seed_is_left_padded_and_padding_is_masked(trained):
    _, model = trained
    seed = np.array([[4, 9, 11]], "int32")
    logits, _ = registry.get("seq2seq").decoder(model).start(seed)
    padded = np.concatenate([np.zeros((1, PHRASE - 3), "int32"), seed], axis=1)
    expected = keras.ops.convert_to_numpy(model.decode_phrases(padded, seed[:, -1:]))[:, -1]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    other_padding = padded.copy()
    other_padding[:, 0] = 7  # a real token where the padding was changes the encoding
    changed = keras.ops.convert_to_numpy(model.decode_phrases(other_padding, seed[:, -1:]))[:, -1]
    assert np.abs(changed - expected).max() > 1e-6


def test_generation_encodes_each_phrase_it_writes_and_goes_on():
    model = tiny_model(len(VOCABULARY))
    decoder = registry.get("seq2seq").decoder(model)
    encoded = []
    begin_phrase = decoder._begin_phrase
    decoder._begin_phrase = lambda previous: (encoded.append(previous.copy()), begin_phrase(previous))[1]
    prompt = np.array([[VOCABULARY.start_id, 64, 136, 169]] * 2, "int32")
    generated = sampling.get("sample", seed=0).generate(decoder, VOCABULARY, prompt, num_events=7)
    assert generated.shape[1] == 21  # 3 tokens per event
    padded_prompt = np.concatenate([np.zeros((2, PHRASE - 4), "int32"), prompt], axis=1)
    np.testing.assert_array_equal(encoded[0], padded_prompt)
    assert len(encoded) == 1 + (generated.shape[1] - 1) // PHRASE  # the last token is sampled, never fed
    for k, phrase in enumerate(encoded[1:]):
        np.testing.assert_array_equal(phrase, generated[:, k * PHRASE:(k + 1) * PHRASE])


def test_windows_shorter_than_two_phrases_are_refused():
    with pytest.raises(UserError, match="seq_len"):
        tiny_model(seq_len=PHRASE)
