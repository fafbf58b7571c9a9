"""The optimizer and loss a model trains with: AdamW on a warm-up-then-cosine schedule, gradients clipped by
norm, and loss scaling under mixed precision."""

import dataclasses

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="musicgen")
class SparseSafeLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Loss scaling (mixed precision) that notices an overflow in an embedding's gradient.

    Keras 3.15 checks an embedding's sparse gradient (tf.IndexedSlices) after
    densifying it with a scatter in which a token's last row wins, so an inf in
    an earlier row of a token that occurs twice in the batch goes unnoticed and
    turns the weights to NaN. Checking the rows themselves skips that step, as
    loss scaling intends.
    """

    def check_finite(self, grads):
        return super().check_finite([g.values if isinstance(g, tf.IndexedSlices) else g for g in grads])


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """How a run steps: the peak learning rate, its schedule, weight decay and gradient clipping.

    With the cosine schedule the rate climbs linearly from a tenth of its peak over
    `warmup_steps` (at most a tenth of the run's steps, so a short run is not all
    warm-up), then falls along a cosine to a tenth of it at the last step of
    `total_steps` (the run's epochs times its steps per epoch), so a run that stops
    early has stopped while the rate was still falling. Everything here is saved with
    the optimizer in last.keras, so a resumed run goes on along the same schedule.
    """

    learning_rate: float
    schedule: str = "constant"
    warmup_steps: int = 0
    total_steps: int = 1
    weight_decay: float = 0.0  # AdamW's decoupled decay; 0 is Adam
    clipnorm: float = 0.0  # each gradient's norm at most this; 0 leaves gradients alone

    @classmethod
    def from_config(cls, config, steps_per_epoch):
        return cls(learning_rate=config["learning_rate"], schedule=config["schedule"],
                   warmup_steps=config["warmup_steps"], total_steps=max(1, config["epochs"] * steps_per_epoch),
                   weight_decay=config["weight_decay"], clipnorm=config["clipnorm"])

    def learning_rate_schedule(self):
        if self.schedule == "constant":
            return self.learning_rate
        warmup = min(self.warmup_steps, self.total_steps // 10)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=self.learning_rate / 10 if warmup else self.learning_rate,
            decay_steps=max(1, self.total_steps - warmup), alpha=0.1,
            warmup_target=self.learning_rate if warmup else None, warmup_steps=warmup)

    def build(self, model, **adam_options):
        """The optimizer for `model`, wrapped in loss scaling when the model computes in float16."""
        options = dict(learning_rate=self.learning_rate_schedule(), **adam_options)
        if self.clipnorm:
            options["clipnorm"] = self.clipnorm
        optimizer = (keras.optimizers.AdamW(weight_decay=self.weight_decay, **options) if self.weight_decay
                     else keras.optimizers.Adam(**options))
        if model.dtype_policy.name == "mixed_float16":
            optimizer = SparseSafeLossScaleOptimizer(optimizer)
        return optimizer


def compile_own_loss(model, optimizer_settings):
    """The compile of a model whose train_step computes its own loss and tracks its own metrics."""
    model.compile(optimizer=optimizer_settings.build(model))


def compile_model(model, optimizer_settings):
    """The standard compile of a next-token model: cross-entropy on logits, accuracy weighted like the loss."""
    model.compile(
        optimizer=optimizer_settings.build(model),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
