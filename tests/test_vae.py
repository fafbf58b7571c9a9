"""The sequence VAE: uses its latent, reloads, decodes from the posterior, the prior or a given z, interpolates."""

import conftest
import keras
import numpy as np
import pytest
from conftest import TINY_SETTINGS

import models.vae as vae
from models import registry
from musicgen import sampling
from musicgen.encoding import EncodingSettings
from musicgen.errors import UserError
from musicgen.saving import load_model, save_model
from musicgen.vocabulary import Vocabulary

TINY = TINY_SETTINGS["vae"]
SEGMENT = TINY["seq_len"]
VOCABULARY = Vocabulary.build(EncodingSettings(), {(60, 64, 67): 5})
SIZE = len(VOCABULARY)


def tiny_model(**changes):
    return conftest.tiny_model("vae", SIZE, **changes)


def batch(seed, rows=8):
    tokens = np.random.default_rng(seed).integers(4, SIZE, (rows, SEGMENT + 1)).astype("int32")
    return tokens[:, :-1], tokens[:, 1:]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny VAE after 40 steps on one batch, its metrics, and its safe-mode reload."""
    model = tiny_model()
    x, y = batch(0)
    history = [model.train_on_batch(x, y, return_dict=True) for _ in range(40)]
    path = tmp_path_factory.mktemp("vae") / "m.keras"
    save_model(model, path)
    return model, history, load_model(path)


def test_training_reports_loss_reconstruction_kl_and_accuracy_and_the_latent_is_used(trained):
    _, history, _ = trained
    assert set(history[-1]) == {"loss", "reconstruction", "kl", "accuracy"}
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]
    # Free bits (2 nats) and annealing keep the posterior away from the prior: not collapsed.
    assert history[-1]["kl"] > 1.0
    assert min(row["kl"] for row in history[-10:]) > 0.5


def test_without_free_bits_the_same_training_collapses_the_latent(trained):
    _, history, _ = trained
    model = tiny_model(free_bits=0.0, kl_anneal_steps=0)
    x, y = batch(0)
    collapsed = [model.train_on_batch(x, y, return_dict=True)["kl"] for _ in range(40)]
    assert collapsed[-1] < 0.5 < 1.0 < history[-1]["kl"]


def test_validation_loss_is_reconstruction_plus_full_beta_kl_per_token(trained):
    model, _, _ = trained
    x, y = batch(0)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["kl"] > 0
    assert result["loss"] == pytest.approx(result["reconstruction"] + model.beta * result["kl"] / SEGMENT, rel=1e-5)


def test_kl_weight_ramps_up_over_the_annealing_steps(trained):
    model, _, _ = trained
    assert float(model.kl_weight()) == pytest.approx(model.beta)  # 40 steps > kl_anneal_steps = 10
    steps = int(model.optimizer.iterations)
    try:
        model.optimizer.iterations.assign(4)  # the weight of the fifth step
        assert float(model.kl_weight()) == pytest.approx(0.5 * model.beta)
    finally:
        model.optimizer.iterations.assign(steps)


def test_saved_model_reloads_in_safe_mode_with_identical_predictions(trained):
    model, _, reloaded = trained
    x, _ = batch(2, rows=3)
    first = model.predict(x, verbose=0)
    np.testing.assert_allclose(first, reloaded.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(first, reloaded.predict(x, verbose=0), rtol=0, atol=0)  # z = mu: deterministic
    assert registry.get("vae").output_size(reloaded) == SIZE


def test_decoder_with_a_given_z_steps_like_the_full_reconstruction(trained):
    _, _, model = trained
    x, _ = batch(3, rows=3)
    z = vae.encode(model, x)
    full = keras.ops.convert_to_numpy(model(x))  # decodes with z = mu(x)
    decoder = vae.VAEDecoder(model, z=z)
    logits, state = decoder.start(x[:, :4])
    np.testing.assert_allclose(logits, full[:, 3], rtol=1e-4, atol=1e-4)
    for t in range(4, SEGMENT):
        logits, state = decoder.step(x[:, t], state)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-4)


def test_prior_samples_and_seed_continuations_give_finite_logits_past_one_segment(trained):
    _, _, model = trained
    prompt = np.array([[VOCABULARY.start_id, 64, 136, 169]] * 3, "int32")
    for decoder in (vae.VAEDecoder(model), vae.VAEDecoder(model, mode="prior", seed=0)):
        seen = []
        original_step = decoder.step

        def step(tokens, state, original_step=original_step):
            logits, state = original_step(tokens, state)
            seen.append(logits)
            return logits, state

        decoder.step = step
        generated = sampling.get("sample", seed=0).generate(decoder, VOCABULARY, prompt, num_events=8)
        assert prompt.shape[1] + generated.shape[1] > 2 * SEGMENT  # ran past the segment twice: z was re-encoded
        assert np.isfinite(np.stack(seen)).all()
    posterior_z = vae.VAEDecoder(model).start(prompt)[1][2]
    np.testing.assert_allclose(posterior_z, vae.encode(model, prompt), rtol=1e-5, atol=1e-6)
    prior_z = vae.VAEDecoder(model, mode="prior", seed=0).start(prompt)[1][2]
    assert not np.allclose(prior_z[0], prior_z[1])  # one draw per row


def test_segment_refresh_re_encodes_the_most_recent_tokens(trained):
    _, _, model = trained
    x, _ = batch(4, rows=2)
    decoder = vae.VAEDecoder(model, overlap=5)
    logits, state = decoder.start(x)  # a whole segment: the next step passes seq_len
    logits, state = decoder.step(np.array([7, 8], "int32"), state)
    recent = np.concatenate([x, [[7], [8]]], axis=1)[:, -5:]
    np.testing.assert_array_equal(state[3], recent)
    np.testing.assert_allclose(state[2], vae.encode(model, recent), rtol=1e-5, atol=1e-6)
    expected, _ = vae.VAEDecoder(model).start(recent)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_interpolation_runs_between_the_two_encodings(trained):
    _, _, model = trained
    x, _ = batch(5, rows=2)
    a, b = vae.encode(model, x[0]), vae.encode(model, x[1])
    for spherical in (True, False):
        latents = vae.interpolate(model, x[0], x[1], 5, spherical=spherical)
        assert latents.shape == (5, model.latent_dim)
        np.testing.assert_allclose(latents[0], a[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(latents[-1], b[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(vae.interpolate(model, x[0], x[1], 3, spherical=False)[1], (a[0] + b[0]) / 2, atol=1e-9)
    slerp = vae.interpolate(model, x[0], x[1], 3)[1]
    assert np.linalg.norm(slerp) > np.linalg.norm((a[0] + b[0]) / 2)  # slerp does not cut through the middle
    start = np.full((5, 1), VOCABULARY.start_id, "int32")
    logits, _ = vae.VAEDecoder(model, z=latents).start(start)
    assert logits.shape == (5, SIZE) and np.isfinite(logits).all()
    with pytest.raises(UserError, match="steps"):
        vae.interpolate(model, x[0], x[1], 1)


def test_the_latent_plans_sample_the_prior_or_walk_between_two_seeds_through_the_spec(trained):
    from pathlib import Path

    from musicgen.generation import latent_decoder
    from musicgen.runs import Run

    model, _, _ = trained
    run = Run(Path("vae-run"), registry.get("vae"), {}, VOCABULARY, model)
    prior, prompt, description = latent_decoder(run, prior=True, random_seed=0)
    assert prompt.tolist() == [VOCABULARY.start_id] and "prior" in description
    first, _ = prior.start(np.tile(prompt, (2, 1)))
    again, _ = latent_decoder(run, prior=True, random_seed=0)[0].start(np.tile(prompt, (2, 1)))
    np.testing.assert_array_equal(first, again)
    other, _ = latent_decoder(run, prior=True, random_seed=1)[0].start(np.tile(prompt, (2, 1)))
    assert not np.allclose(first, other), "another seed draws other latents"
    assert not np.allclose(first[0], first[1]), "each row draws its own latent"
    walk, prompt, _ = latent_decoder(run, interpolate=("C4 E4", "G4 B4"), steps=3)
    logits, _ = walk.start(np.tile(prompt, (3, 1)))
    assert logits.shape == (3, SIZE) and not np.allclose(logits[0], logits[2])
    with pytest.raises(UserError, match="needs a model that has one"):
        latent_decoder(Run(Path("lstm-run"), registry.get("lstm"), {}, VOCABULARY, model), prior=True)
