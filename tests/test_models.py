"""Every registered model: builds, trains, saves and reloads in safe mode, generates (decoders: test_decoders.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_SETTINGS, tiny_settings

import models
from models import registry
from musicgen import training
from musicgen.errors import UserError
from musicgen.hyperparameters import TRAINING_DEFAULTS
from musicgen.optimizer import OptimizerSettings
from musicgen.saving import load_model, save_model

VOCABULARY_SIZE = 30


def test_unknown_model_names_the_choices():
    with pytest.raises(UserError, match=r"must be one of \[rnn, lstm, gru"):
        registry.get("wavenet")


def test_the_names_the_scripts_accept_without_tensorflow_are_the_registry_in_its_order():
    assert models.NAMES == tuple(registry.REGISTRY)
    assert all(registry.get(name).name == name for name in models.NAMES)


KERAS_MODELS = [name for name, spec in registry.REGISTRY.items() if spec.build is not None]


def test_every_keras_model_has_tiny_test_settings():
    assert set(KERAS_MODELS) <= set(TINY_SETTINGS)


@pytest.mark.slow
@pytest.mark.parametrize("name", KERAS_MODELS)
def test_every_model_trains_saves_reloads_and_generates_midi(name, processed, tmp_path):
    import pretty_midi

    from musicgen import sampling
    from musicgen.dataset import load_processed
    from musicgen.encoding import events_to_notes
    from musicgen.midi import write_midi
    from musicgen.seed import parse_seed

    vocabulary, splits = load_processed(processed)
    spec = registry.get(name)
    run_config = training.train(spec, tiny_settings(name, epochs=1), processed, tmp_path / name, log=lambda *_: None,
                                verbose=0)
    assert np.isfinite(run_config["progress"]["best_val_loss"])
    run = registry.load_run(tmp_path / name)
    model = run.model  # best.keras, in safe mode

    save_model(model, tmp_path / "again.keras")
    reloaded = load_model(tmp_path / "again.keras")
    x = splits["validation"].tokens[None, : TINY_SETTINGS[name].get("seq_len", 16)]
    np.testing.assert_allclose(model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    seed = parse_seed("C4 E4 G4", vocabulary)
    new = sampling.get("sample", seed=0).generate(spec.decoder(reloaded), vocabulary, seed[None], 4)
    events = vocabulary.decode(np.concatenate([seed, new[0]]))
    assert len(events) == 7
    notes = events_to_notes(events)
    assert len(notes) >= 3, "the seed's notes at least"
    write_midi(tmp_path / "out.mid", notes, vocabulary.settings.steps_per_quarter, 120)
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / "out.mid")).instruments[0].notes) == len(notes)


# One model per module that claims mixed_precision (rnn and gru are built by lstm's code).
MIXED_PRECISION_MODELS = ["lstm", "cnn", "transformer", "vae", "seq2seq"]


@pytest.fixture
def mixed_float16():
    """The mixed_float16 global policy for one test; the previous policy comes back however the test ends."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy(previous)


def test_every_model_claiming_mixed_precision_has_its_code_tested_under_it():
    claimed = {spec.build.__module__ for spec in registry.REGISTRY.values() if spec.build and spec.mixed_precision}
    assert claimed <= {registry.get(name).build.__module__ for name in MIXED_PRECISION_MODELS}


@pytest.mark.slow
@pytest.mark.parametrize("name", MIXED_PRECISION_MODELS)
def test_model_trains_saves_reloads_and_decodes_under_mixed_precision(name, mixed_float16, tmp_path):
    spec = registry.get(name)
    hp = {**TRAINING_DEFAULTS, **spec.defaults, **TINY_SETTINGS[name]}
    keras.utils.set_random_seed(0)
    model = spec.build(VOCABULARY_SIZE, hp)
    spec.compile_model(model, OptimizerSettings(learning_rate=1e-2))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer), "compile wraps it under mixed_float16"
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCABULARY_SIZE, (4, hp["seq_len"])).astype("int32")
    y = rng.integers(1, VOCABULARY_SIZE, (4, hp["seq_len"])).astype("int32")
    for _ in range(3):
        loss = model.train_on_batch(x, y, sample_weight=np.ones(y.shape, "float32"), return_dict=True)["loss"]
        assert np.isfinite(loss)
    assert model.get_layer("embedding").compute_dtype == "float16"
    logits = model.predict(x, verbose=0)
    assert logits.dtype == np.float32

    save_model(model, tmp_path / "m.keras")
    reloaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(logits, reloaded.predict(x, verbose=0), rtol=1e-3, atol=1e-3)

    decoder = registry.get(name).decoder(reloaded, seed=0)
    next_logits, state = decoder.start(x[:, :4])
    for t in range(4, 7):
        next_logits, state = decoder.step(x[:, t], state)
        assert np.isfinite(next_logits).all()


def test_mixed_precision_skips_a_step_whose_embedding_gradient_overflows(mixed_float16):
    """Keras' own loss scaling misses this overflow (see SparseSafeLossScaleOptimizer)."""
    spec = registry.get("lstm")
    model = spec.build(VOCABULARY_SIZE, {**spec.defaults, **TINY_SETTINGS["lstm"]})
    spec.compile_model(model, OptimizerSettings(learning_rate=1e-2))
    model.optimizer.build(model.trainable_variables)
    embedding = model.get_layer("embedding").embeddings
    # Token 3 twice in the batch: one of its two gradient rows overflowed float16.
    rows = np.ones((2, embedding.shape[1]), "float32")
    rows[0, 0] = np.inf
    overflowed = tf.IndexedSlices(tf.constant(rows), tf.constant([3, 3]), tf.constant(embedding.shape))
    gradients = [overflowed if variable is embedding else tf.zeros_like(variable)
                 for variable in model.trainable_variables]
    model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    assert np.isfinite(keras.ops.convert_to_numpy(embedding)).all(), "a step with a non-finite gradient is skipped"
