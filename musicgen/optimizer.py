"""The optimizer and loss a model trains with, and loss scaling under mixed precision."""

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


def adam(model, learning_rate, **kwargs):
    """Adam for `model`, wrapped in loss scaling when the model computes in float16."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, **kwargs)
    if model.dtype_policy.name == "mixed_float16":
        optimizer = SparseSafeLossScaleOptimizer(optimizer)
    return optimizer


def compile_own_loss(model, learning_rate):
    """The compile of a model whose train_step computes its own loss and tracks its own metrics."""
    model.compile(optimizer=adam(model, learning_rate))


def compile_model(model, learning_rate):
    """The standard compile of a next-token model: cross-entropy on logits, accuracy weighted like the loss."""
    model.compile(
        optimizer=adam(model, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
