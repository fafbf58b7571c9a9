"""Recurrent language models (rnn, lstm, gru): embedding, stacked recurrent layers, logits."""

import keras
import numpy as np
import tensorflow as tf

from musicgen.decoders import Decoder
from musicgen.spec import ModelSpec

LAYER_CLASSES = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}

DEFAULTS = {
    "embedding_dim": 128,  # size of each token's learned vector
    "units": 256,  # recurrent state size per layer
    "layers": 2,  # stacked recurrent layers
    "dropout": 0.2,  # dropout after each recurrent layer, training only
    "batch_size": 16,  # windows per step: with 64, 3 epochs of the Bach chorales were only 72 steps
}


def build(kind, vocabulary_size, hp):
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, hp["embedding_dim"], name="embedding")(tokens)
    for i in range(hp["layers"]):
        x = LAYER_CLASSES[kind](hp["units"], return_sequences=True, name=f"{kind}_{i}")(x)
        x = keras.layers.Dropout(hp["dropout"], name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")(x)  # float32 under mixed precision
    return keras.Model(tokens, logits, name=kind)


class RecurrentDecoder(Decoder):
    """Carries each layer's recurrent state forward: one cell step per new token."""

    def __init__(self, model, seed=None):  # deterministic: `seed` is unused
        self.embedding = model.get_layer("embedding")
        self.logits = model.get_layer("logits")
        recurrent_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]
        self.cells = [layer.cell for layer in recurrent_layers]
        # The same trained cells, wrapped to also return their final states.
        self.sequence_layers = [keras.layers.RNN(cell, return_sequences=True, return_state=True) for cell in self.cells]
        # Traced once, for prompts of any shape: run eagerly, the loop over the prompt dispatches every op of every
        # time step from Python (10-20x slower on a 100-token prompt).
        self._start = tf.function(self._start_graph, input_signature=[tf.TensorSpec((None, None), tf.int32)])
        self._step = tf.function(self._step_graph, reduce_retracing=True)

    def _start_graph(self, prompt):
        x = self.embedding(prompt)
        state = []
        for layer in self.sequence_layers:
            x, *layer_state = layer(x)
            state.append(layer_state)
        return self.logits(x[:, -1]), state

    def start(self, prompt):
        logits, state = self._start(tf.constant(np.asarray(prompt, dtype=np.int32)))
        return logits.numpy().astype(np.float64), state

    def _step_graph(self, tokens, state):
        x = self.embedding(tokens)
        new_state = []
        for cell, layer_state in zip(self.cells, state):
            x, cell_state = cell(x, layer_state, training=False)
            new_state.append(tf.nest.flatten(cell_state))
        return self.logits(x), new_state

    def step(self, tokens, state):
        logits, state = self._step(tf.constant(np.asarray(tokens, dtype=np.int32)), state)
        return logits.numpy().astype(np.float64), state

    def reorder(self, state, rows):
        return [[tf.gather(tensor, rows) for tensor in layer_state] for layer_state in state]




def _spec(kind, description):
    # A recurrent model carries its state through a piece of any length as it generates; training windows of up to
    # 512 tokens let it learn from that much at once, at the same cost per token as shorter ones.
    return ModelSpec(name=kind, description=description, defaults=DEFAULTS, decoder=RecurrentDecoder,
                     build=lambda vocabulary_size, hp: build(kind, vocabulary_size, hp), longest_window=512)


RNN = _spec("rnn", "simple recurrent network")
LSTM = _spec("lstm", "long short-term memory")
GRU = _spec("gru", "gated recurrent unit")
