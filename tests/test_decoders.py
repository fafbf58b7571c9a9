"""Every model's decoder keeps the one contract generation relies on (musicgen/decoders.py).

- carried state = full rerun: the logits after start(prompt) and each step(token) equal what
  the model gives when it is run afresh over everything so far;
- reorder(state, rows) carries each chosen row on, as beam search needs;
- every decoder is made as spec.decoder(model, seed=...), and the seed makes it reproducible.
"""

import numpy as np
import pytest
from conftest import TINY_SETTINGS, logits, tiny_model

from models import registry
from models.ngram import NgramModel

VOCABULARY_SIZE = 30
PROMPT = 3
STEPS = 4  # tokens fed after the prompt: 8 in all, within the tiny transformer's context (8)


def full_rerun(name, model, tokens):
    """The logits a fresh run gives at the last position of `tokens` (batch, time)."""
    if name == "ngram":
        return registry.get(name).decoder(model).start(tokens)[0]
    return logits(model, tokens)[:, -1]  # for seq2seq: the chain of phrases, each decoded after the one before


@pytest.fixture(scope="module", params=list(registry.REGISTRY))
def decoding(request):
    """(name, model, tokens (3, PROMPT + STEPS + 1)) for every registered model, with random weights."""
    name = request.param
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCABULARY_SIZE, (3, PROMPT + STEPS + 1)).astype(np.int32)
    if name == "ngram":
        model = NgramModel.fit(rng.integers(1, VOCABULARY_SIZE, 500), VOCABULARY_SIZE, TINY_SETTINGS[name]["max_order"])
    else:
        model = tiny_model(name, VOCABULARY_SIZE)
    return name, model, tokens


# The VAE's logits depend on a latent it computes from the prompt, the GAN's on noise it draws per segment:
# neither has a full rerun to equal (their own tests check them against their model's pieces).
LATENT_OR_NOISE = {"vae", "gan"}


def test_carried_state_gives_the_logits_of_a_full_rerun(decoding):
    name, model, tokens = decoding
    if name in LATENT_OR_NOISE:
        pytest.skip(f"{name}: logits depend on a latent or noise, not on the tokens alone")
    start = TINY_SETTINGS[name].get("phrase_tokens", PROMPT)  # seq2seq: a rerun is a chain of whole phrases
    decoder = registry.get(name).decoder(model)
    got, state = decoder.start(tokens[:, :start])
    np.testing.assert_allclose(got, full_rerun(name, model, tokens[:, :start]), rtol=1e-4, atol=1e-4)
    assert got.dtype == np.float64 and got.shape == (3, VOCABULARY_SIZE)
    for t in range(start, tokens.shape[1]):
        got, state = decoder.step(tokens[:, t], state)
        np.testing.assert_allclose(got, full_rerun(name, model, tokens[:, :t + 1]), rtol=1e-4, atol=1e-4,
                                   err_msg=f"{name}, after token {t}")


def test_reorder_carries_each_chosen_row_on(decoding):
    name, model, tokens = decoding
    rows = np.array([2, 2, 0])
    spec = registry.get(name)
    decoder = spec.decoder(model, seed=0)
    _, state = decoder.start(tokens[:, :PROMPT])
    expected, _ = decoder.step(tokens[:, PROMPT], state)
    decoder = spec.decoder(model, seed=0)  # the same noise, if it draws any
    _, state = decoder.start(tokens[:, :PROMPT])
    got, _ = decoder.step(tokens[rows, PROMPT], decoder.reorder(state, rows))
    np.testing.assert_allclose(got, expected[rows], rtol=1e-5, atol=1e-5)


def test_the_same_seed_gives_the_same_logits(decoding):
    name, model, tokens = decoding

    def run(seed):
        decoder = registry.get(name).decoder(model, seed=seed)
        got, state = decoder.start(tokens[:, :PROMPT])
        steps = [got]
        for t in range(PROMPT, tokens.shape[1]):
            got, state = decoder.step(tokens[:, t], state)
            steps.append(got)
        return np.stack(steps)

    np.testing.assert_array_equal(run(7), run(7))
    if name == "gan":  # the one spec.decoder that draws noise of its own (the VAE's encodes the prompt)
        assert not np.allclose(run(7), run(8)), "the seed is the GAN's noise"
