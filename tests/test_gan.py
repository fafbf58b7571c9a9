"""The conditional segment GAN: contract logits, WGAN-GP steps, both optimizers across save/resume, decoding."""

import warnings

import conftest
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_SETTINGS

import models.gan as gan
from models import registry
from models.gan_diversity import sample_diversity
from musicgen import training
from musicgen.errors import UserError
from musicgen.hyperparameters import TRAINING_DEFAULTS, resolve_config
from musicgen.sampling import RandomSampler
from musicgen.saving import load_model, save_model

VOCABULARY_SIZE = 30
TINY = TINY_SETTINGS["gan"]
SEGMENT = TINY["segment_tokens"]


def tiny_model(**overrides):
    return conftest.tiny_model("gan", VOCABULARY_SIZE, **overrides)


def batches(count=2, batch=4, seed=0):
    """(x, y, weight) batches like windows makes, with no padding."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCABULARY_SIZE, (count * batch, 2 * SEGMENT + 1)).astype("int32")
    x, y = tokens[:, :-1], tokens[:, 1:]
    return tf.data.Dataset.from_tensor_slices((x, y, np.ones_like(y, dtype="float32"))).batch(batch)


def weights(layer):
    return [w.numpy().copy() for w in layer.trainable_weights]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GAN after two training steps, saved and reloaded in safe mode."""
    model = tiny_model()
    before = {"generator": weights(model.generator), "critic": weights(model.critic)}
    history = model.fit(batches(), validation_data=batches(seed=1), epochs=1, shuffle=False, verbose=0).history
    path = tmp_path_factory.mktemp("gan") / "m.keras"
    save_model(model, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloaded = load_model(path)
    return model, reloaded, before, history, [str(w.message) for w in caught]


def test_train_steps_update_both_networks_with_finite_losses_and_a_positive_penalty(trained):
    model, _, before, history, _ = trained
    for name in ("loss", "critic_loss", "generator_loss", "gradient_penalty", "nll", "accuracy"):
        for prefix in ("", "val_"):
            assert np.isfinite(history[prefix + name][0]), prefix + name
    assert history["gradient_penalty"][0] > 0 and history["val_gradient_penalty"][0] > 0
    for network in ("generator", "critic"):
        changed = [not np.allclose(a, b) for a, b in zip(before[network], weights(getattr(model, network)))]
        assert all(changed), f"every {network} weight was trained"
    assert model.critic_optimizer.iterations.numpy() == 2 * TINY["n_critic"], "n_critic critic updates per step"
    assert model.optimizer.iterations.numpy() == 2, "one generator update per step"


def test_safe_mode_reload_gives_identical_logits(trained):
    model, reloaded, _, _, _ = trained
    x = np.random.default_rng(2).integers(0, VOCABULARY_SIZE, (3, 3 * SEGMENT + 2)).astype("int32")
    np.testing.assert_allclose(model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_call_gives_the_generator_logits_for_each_segment_given_the_previous_one(trained):
    model = trained[0]
    x = np.random.default_rng(3).integers(1, VOCABULARY_SIZE, (2, 2 * SEGMENT + 3)).astype("int32")
    logits = model(x).numpy()
    assert logits.shape == (2, 2 * SEGMENT + 3, VOCABULARY_SIZE)
    assert not logits[:, : SEGMENT - 1].any(), "no complete segment before these positions: uniform"
    for segment in (0, 1):
        condition = x[:, segment * SEGMENT: (segment + 1) * SEGMENT]
        expected = model.generator(condition, np.zeros((2, TINY["noise_dim"]), "float32")).numpy()
        # logits at t predict token t + 1: the next segment starts at (segment + 1) * SEGMENT
        first = (segment + 1) * SEGMENT - 1
        got = logits[:, first: first + SEGMENT]
        np.testing.assert_allclose(got, expected[:, : got.shape[1]], rtol=1e-5, atol=1e-5)
    assert model(x[:, : SEGMENT - 2]).shape == (2, SEGMENT - 2, VOCABULARY_SIZE), "shorter than a segment"


def test_reload_restores_both_optimizers_state(trained):
    model, reloaded, _, _, messages = trained
    assert not [m for m in messages if "Skipping variable loading" in m or "compile()" in m], messages
    for name in ("optimizer", "critic_optimizer"):
        saved, loaded = getattr(model, name), getattr(reloaded, name)
        assert loaded.beta_1 == 0.5 and loaded.beta_2 == 0.9
        assert len(loaded.variables) == len(saved.variables) > 2, "slots were built before loading"
        for a, b in zip(saved.variables, loaded.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_decoder_costs_one_generator_pass_per_segment_and_matches_it_across_boundaries(trained):
    model = trained[1]
    decoder = gan.GANDecoder(model, seed=7)
    passes = []
    generator = decoder._generate
    decoder._generate = lambda condition, z: passes.append((condition.numpy(), z.numpy())) or generator(condition, z)
    prompt = np.random.default_rng(5).integers(1, VOCABULARY_SIZE, (2, SEGMENT + 2)).astype("int32")
    tokens = np.random.default_rng(6).integers(1, VOCABULARY_SIZE, (2, 2 * SEGMENT + 1)).astype("int32")
    logits, state = decoder.start(prompt)
    stepped = [logits]
    for t in range(2 * SEGMENT):
        logits, state = decoder.step(tokens[:, t], state)
        stepped.append(logits)
    stepped = np.stack(stepped, axis=1)
    assert np.isfinite(stepped).all() and stepped.shape == (2, 2 * SEGMENT + 1, VOCABULARY_SIZE)
    assert len(passes) == 3, "the prompt's segment and two generated ones"
    sequence = np.concatenate([prompt, tokens], axis=1)
    for index, (condition, z) in enumerate(passes):
        end = prompt.shape[1] + index * SEGMENT
        np.testing.assert_array_equal(condition, sequence[:, end - SEGMENT: end], "condition = last segment")
        expected = model.generator(condition, z).numpy()
        got = stepped[:, index * SEGMENT: (index + 1) * SEGMENT]
        np.testing.assert_allclose(got, expected[:, : got.shape[1]], rtol=1e-5, atol=1e-5)


def test_a_lone_start_token_is_a_left_padded_condition(trained):
    model = trained[1]
    decoder = gan.GANDecoder(model, seed=0)
    logits, state = decoder.start(np.array([[1], [1]], dtype="int32"))
    assert np.isfinite(logits).all()
    np.testing.assert_array_equal(state["recent"][0], [0] * (SEGMENT - 1) + [1])


def test_generation_loop_produces_whole_events(tmp_path):
    from musicgen.encoding import EncodingSettings
    from musicgen.vocabulary import Vocabulary

    vocabulary = Vocabulary.build(EncodingSettings(max_duration_quarters=1, max_shift_quarters=1), {})
    spec = registry.get("gan")
    model = spec.build(len(vocabulary), {**TRAINING_DEFAULTS, **spec.defaults, **TINY})
    prompt = np.array([[vocabulary.start_id]], dtype="int32")
    new = RandomSampler(seed=0).generate(gan.GANDecoder(model, seed=0), vocabulary, prompt, 5)
    assert len(vocabulary.decode(new[0])) == 5 and new.shape[1] == 15


def test_sample_diversity_is_positive_after_training_and_zero_when_collapsed(trained):
    model = trained[1]
    conditions = np.random.default_rng(8).integers(1, VOCABULARY_SIZE, (3, SEGMENT)).astype("int32")
    diversity = sample_diversity(model, conditions, n_samples=6)
    assert diversity["pairwise_difference"] > 0 and diversity["distinct_trigrams"] > 0
    assert diversity["greedy_pairwise_difference"] > 0, "z still changes the segments"

    collapsed = tiny_model()
    kernel, bias = collapsed.generator.logits.weights
    kernel.assign(np.zeros(kernel.shape))
    bias.assign(np.where(np.arange(VOCABULARY_SIZE) == 5, 50.0, 0.0))  # always token 5, whatever z
    diversity = sample_diversity(collapsed, conditions, n_samples=6)
    assert diversity["pairwise_difference"] == 0 and diversity["greedy_pairwise_difference"] == 0
    assert diversity["distinct_trigrams"] == pytest.approx(1 / (6 * (SEGMENT - 2)))


def test_window_must_be_one_condition_and_one_continuation():
    spec = registry.get("gan")
    with pytest.raises(UserError, match="seq_len must be 2 \\* segment_tokens = 12"):
        spec.build(VOCABULARY_SIZE, {**TRAINING_DEFAULTS, **spec.defaults, **TINY, "seq_len": 16})


def test_trainer_trains_and_resumes_the_gan_with_both_optimizers(processed, tmp_path):
    """training.train() unchanged: fit, save, reload in safe mode (both optimizers), fit again."""
    config = resolve_config(registry.get("gan"), overrides={**TINY, "segment_tokens": 12, "seq_len": 24, "epochs": 1,
                                                       "batch_size": 8})
    run = tmp_path / "gan"
    first = training.train(registry.get("gan"), config, processed, run, log=lambda message: None, verbose=0)
    row = first["progress"]["history"][0]
    assert {"loss", "val_loss", "val_critic_loss", "val_generator_loss", "val_gradient_penalty"} <= set(row)
    steps = load_model(run / "last.keras").optimizer.iterations.numpy()
    messages = []
    resumed = training.train(registry.get("gan"), {**config, "epochs": 2}, processed, run, log=messages.append, verbose=0)
    assert any("resuming" in m for m in messages) and len(resumed["progress"]["history"]) == 2
    model = load_model(run / "last.keras")
    assert model.optimizer.iterations.numpy() == 2 * steps
    assert model.critic_optimizer.iterations.numpy() == 2 * steps * TINY["n_critic"]
