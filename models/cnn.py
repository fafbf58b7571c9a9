"""A causal dilated convolution stack in the WaveNet style (cnn).

    tokens -> embedding -> 1x1 conv -> residual blocks -> sum of skips -> ReLU -> 1x1 conv -> ReLU -> logits
    block:  z = tanh(filter) * sigmoid(gate), both from one causal dilated conv of x
            x + Conv1x1(Dropout(z)) goes on to the next block;  Conv1x1(Dropout(z)) is its skip output

Dilations double within a stack (1, 2, 4, ..., 2^(layers-1)) and the stack is
repeated `stacks` times. The receptive field, the number of tokens the logits at
one position can see (that position included), is

    1 + stacks * (kernel_size - 1) * (2^layers - 1)

which is 1 + 2 * 1 * 63 = 127 tokens (about 42 events) with the defaults.

WaveNetDecoder is the "fast WaveNet" decoder: it keeps, for each dilated layer, a
queue of that layer's last (kernel_size - 1) * dilation inputs, so each new token
costs one step through the stack rather than a rerun of the window. Its logits
equal a full rerun over any window of at least the receptive field, for any length.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from musicgen.decoders import Decoder
from musicgen.errors import UserError
from musicgen.spec import ModelSpec

DEFAULTS = {
    "embedding_dim": 64,  # size of each token's learned vector
    "channels": 128,  # residual channels: the width of the stream through the blocks
    "skip_channels": 128,  # width of the skip outputs and of the output head
    "kernel_size": 2,  # taps of each dilated convolution (2 as in WaveNet)
    "layers": 6,  # dilated layers per stack: dilations 1, 2, ..., 2^(layers-1)
    "stacks": 2,  # repeats of the dilation stack
    "dropout": 0.1,  # dropout on each block's gated activation, training only
    "seq_len": 256,  # tokens per training window: twice the receptive field, so most targets see a full one
    "batch_size": 16,  # windows per step: the corpus is small, so more, smaller steps per epoch
}


def receptive_field(kernel_size, layers, stacks):
    """Tokens the logits at one position depend on, that position included."""
    return 1 + stacks * (kernel_size - 1) * (2 ** layers - 1)


@keras.saving.register_keras_serializable(package="musicgen")
class ResidualBlock(keras.layers.Layer):
    """Gated causal dilated convolution with residual and skip outputs: x -> (x + residual, skip)."""

    def __init__(self, channels, skip_channels, kernel_size, dilation, dropout, residual=True, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.skip_channels, self.kernel_size = channels, skip_channels, kernel_size
        self.dilation, self.dropout_rate, self.has_residual = dilation, dropout, residual
        self.dilated = keras.layers.Conv1D(2 * channels, kernel_size, dilation_rate=dilation, padding="causal",
                                           name="dilated")
        self.dropout = keras.layers.Dropout(dropout)
        # The last block's residual output would feed nothing, so it has none and passes x on unchanged.
        self.residual = keras.layers.Conv1D(channels, 1, name="residual") if residual else None
        self.skip = keras.layers.Conv1D(skip_channels, 1, name="skip")

    @property
    def history(self):
        """How many past inputs the dilated convolution reads besides the current one."""
        return (self.kernel_size - 1) * self.dilation

    def build(self, input_shape):
        self.dilated.build(input_shape)
        gated_shape = (*input_shape[:-1], self.channels)
        if self.residual is not None:
            self.residual.build(gated_shape)
        self.skip.build(gated_shape)

    def _outputs(self, x, convolved, training):
        filters, gates = ops.split(convolved, 2, axis=-1)
        z = self.dropout(ops.tanh(filters) * ops.sigmoid(gates), training=training)
        return (x + self.residual(z) if self.residual is not None else x), self.skip(z)

    def call(self, x, training=False):
        return self._outputs(x, self.dilated(x), training)

    def compute_output_shape(self, input_shape):
        return input_shape, (*input_shape[:-1], self.skip_channels)

    def step(self, x, queue):
        """One time step: x (batch, channels), queue (batch, history, channels) of the past inputs, oldest first.

        Returns (output (batch, channels), skip (batch, 1, skip_channels), the queue moved on by one).
        """
        window = ops.concatenate([queue, x[:, None]], axis=1)
        taps = window[:, :: self.dilation]  # inputs at t - (k-1)d, ..., t - d, t: the kernel's taps in order
        # Outside __call__ the weights are not cast to the compute dtype (float16 under mixed precision) for us.
        kernel, bias = (ops.cast(weight, taps.dtype) for weight in (self.dilated.kernel, self.dilated.bias))
        convolved = ops.einsum("bkc,kco->bo", taps, kernel) + bias
        output, skip = self._outputs(x[:, None], convolved[:, None], False)
        return output[:, 0], skip, window[:, 1:]

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, skip_channels=self.skip_channels, kernel_size=self.kernel_size,
                      dilation=self.dilation, dropout=self.dropout_rate, residual=self.has_residual)
        return config


def build(vocabulary_size, hp):
    for key in ("channels", "skip_channels", "layers", "stacks"):
        if hp[key] < 1:
            raise UserError(f"{key} must be at least 1, got {hp[key]}")
    if hp["kernel_size"] < 2:
        raise UserError(f"kernel_size must be at least 2, got {hp['kernel_size']}")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, hp["embedding_dim"], name="embedding")(tokens)
    x = keras.layers.Conv1D(hp["channels"], 1, name="input_conv")(x)
    skips = []
    for stack in range(hp["stacks"]):
        for layer in range(hp["layers"]):
            last = stack == hp["stacks"] - 1 and layer == hp["layers"] - 1
            x, skip = ResidualBlock(hp["channels"], hp["skip_channels"], hp["kernel_size"], 2 ** layer,
                                    hp["dropout"], residual=not last, name=f"block_{stack}_{layer}")(x)
            skips.append(skip)
    x = keras.layers.Add(name="skip_sum")(skips) if len(skips) > 1 else skips[0]
    x = keras.layers.ReLU(name="skip_relu")(x)
    x = keras.layers.Conv1D(hp["skip_channels"], 1, activation="relu", name="output_conv")(x)
    logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")(x)  # float32 under mixed precision
    return keras.Model(tokens, logits, name="cnn")


class WaveNetDecoder(Decoder):
    """Fast WaveNet decoding: one queue of past inputs per dilated layer; the state is that list of queues."""

    def __init__(self, model, seed=None):  # deterministic: `seed` is unused
        self.embedding = model.get_layer("embedding")
        self.input_conv = model.get_layer("input_conv")
        self.blocks = [layer for layer in model.layers if isinstance(layer, ResidualBlock)]
        self.skip_relu = model.get_layer("skip_relu")
        self.output_conv = model.get_layer("output_conv")
        self.logits = model.get_layer("logits")
        self.receptive_field = 1 + sum(block.history for block in self.blocks)
        self._start = tf.function(self._start_graph, reduce_retracing=True)
        self._step = tf.function(self._step_graph, reduce_retracing=True)

    def _head(self, skips):
        """Logits (batch, vocabulary) from the skips (batch, 1, skip_channels) of one time step."""
        return self.logits(self.output_conv(self.skip_relu(ops.sum(ops.stack(skips), axis=0))))[:, 0]

    def _start_graph(self, prompt):
        x = self.input_conv(self.embedding(prompt))
        queues, skips = [], []
        for block in self.blocks:
            # The last `history` inputs; zeros before the prompt, as the causal padding has.
            padded = ops.pad(x, [[0, 0], [block.history, 0], [0, 0]])
            queues.append(padded[:, -block.history:])
            x, skip = block(x, training=False)
            skips.append(skip[:, -1:])
        return self._head(skips), queues

    def _step_graph(self, tokens, queues):
        x = self.input_conv(self.embedding(tokens[:, None]))[:, 0]
        new_queues, skips = [], []
        for block, queue in zip(self.blocks, queues):
            x, skip, queue = block.step(x, queue)
            new_queues.append(queue)
            skips.append(skip)
        return self._head(skips), new_queues

    def start(self, prompt):
        # Nothing older than the receptive field reaches the output or the queues.
        prompt = np.asarray(prompt, dtype=np.int32)[:, -self.receptive_field:]
        logits, queues = self._start(tf.constant(prompt))
        return logits.numpy().astype(np.float64), queues

    def step(self, tokens, state):
        logits, queues = self._step(tf.constant(np.asarray(tokens, dtype=np.int32)), state)
        return logits.numpy().astype(np.float64), queues

    def reorder(self, state, rows):
        return [tf.gather(queue, rows) for queue in state]


SPEC = ModelSpec(
    name="cnn",
    build=build,
    defaults=DEFAULTS,
    decoder=WaveNetDecoder,
    description="causal dilated convolutions (WaveNet-style) with a fast queue decoder",
)
