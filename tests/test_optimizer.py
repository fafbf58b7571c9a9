"""The training recipe: AdamW, a warm-up then cosine schedule, clipping, and runs made before it."""

import keras
import pytest

from models import registry
from musicgen.errors import UserError
from musicgen.hyperparameters import BEFORE_OPTIMIZER_SETTINGS, resolve_config, upgrade
from musicgen.optimizer import OptimizerSettings


def rate_at(schedule, step):
    return float(schedule(step))


def test_the_cosine_schedule_warms_up_to_the_peak_then_falls_to_a_tenth_by_the_last_step():
    schedule = OptimizerSettings(learning_rate=1e-3, schedule="cosine", warmup_steps=100,
                                 total_steps=2000).learning_rate_schedule()
    assert rate_at(schedule, 0) == pytest.approx(1e-4)
    assert rate_at(schedule, 50) == pytest.approx(5.5e-4, rel=0.02)
    assert rate_at(schedule, 100) == pytest.approx(1e-3)
    rates = [rate_at(schedule, step) for step in range(100, 2001, 100)]
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(1e-4)


def test_a_short_run_is_not_all_warm_up():
    schedule = OptimizerSettings(learning_rate=1e-3, schedule="cosine", warmup_steps=200,
                                 total_steps=50).learning_rate_schedule()
    assert rate_at(schedule, 5) == pytest.approx(1e-3), "warm-up is at most a tenth of the run's steps"


def test_weight_decay_makes_it_adamw_and_clipping_is_kept():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    adamw = OptimizerSettings(learning_rate=1e-3, weight_decay=0.01, clipnorm=1.0).build(model)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.weight_decay == pytest.approx(0.01) and adamw.clipnorm == pytest.approx(1.0)
    adam = OptimizerSettings(learning_rate=1e-3).build(model)
    assert type(adam) is keras.optimizers.Adam and adam.clipnorm is None


def test_bad_recipe_settings_are_refused_in_one_line():
    spec = registry.get("lstm")
    with pytest.raises(UserError, match="schedule must be one of constant, cosine"):
        resolve_config(spec, overrides={"schedule": "linear"})
    for key in ("warmup_steps", "weight_decay", "clipnorm"):
        with pytest.raises(UserError, match=f"{key} must be 0 or more"):
            resolve_config(spec, overrides={key: -1})


def test_runs_made_before_the_recipe_read_as_what_they_trained_with():
    old = upgrade({"epochs": 3, "learning_rate": 1e-3})
    assert {key: old[key] for key in BEFORE_OPTIMIZER_SETTINGS} == BEFORE_OPTIMIZER_SETTINGS
    assert upgrade({"schedule": "cosine", "weight_decay": 0.1})["weight_decay"] == 0.1


def test_the_gan_keeps_the_plain_adam_it_was_measured_with():
    config = resolve_config(registry.get("gan"))
    assert (config["schedule"], config["weight_decay"], config["clipnorm"]) == ("constant", 0.0, 0.0)


def test_a_run_saves_its_schedule_and_a_resume_goes_on_along_it(processed, tmp_path):
    from conftest import tiny_settings

    from musicgen import training
    from musicgen.saving import load_model

    spec = registry.get("transformer")
    config = {**tiny_settings("transformer", epochs=1), "schedule": "cosine", "warmup_steps": 2,
              "weight_decay": 0.01, "clipnorm": 1.0}
    run = tmp_path / "run"
    training.train(spec, config, processed, run, verbose=0)
    optimizer = load_model(run / "last.keras").optimizer
    steps_per_epoch = int(optimizer.iterations.numpy())
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.clipnorm == 1.0
    schedule = optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    laid_out = schedule["config"]["warmup_steps"] + schedule["config"]["decay_steps"]
    assert laid_out == steps_per_epoch, "laid out over the run's steps"
    training.train(spec, {**config, "epochs": 2}, processed, run, verbose=0)
    resumed = load_model(run / "last.keras").optimizer
    assert resumed.iterations.numpy() == 2 * steps_per_epoch
    assert resumed.get_config()["learning_rate"] == schedule, "the resume goes on along the saved schedule"
