"""Decoders: incremental next-token logits from a trained model, one step at a time.

A decoder hides how a model carries its past (recurrent state, a key/value
cache, or nothing at all); the sampler hides how a token is chosen. Neither
knows about the other.
"""

import keras
import numpy as np


class Decoder:
    """start(prompt) reads a (batch, time) prompt; step(tokens) feeds one (batch,) token each.

    Every model's decoder is made as `spec.decoder(model, seed=None)`; `seed` seeds
    any noise of the decoder's own (the GAN's, the VAE's prior) and is unused elsewhere.

    Both return (logits of the next token as float (batch, vocabulary), new state).
    reorder(state, rows) keeps the given batch rows (for beam search).
    """

    def start(self, prompt):
        raise NotImplementedError

    def step(self, tokens, state):
        raise NotImplementedError

    def reorder(self, state, rows):
        raise NotImplementedError

    def pin(self, count):
        """Keep the first `count` tokens of the prompt (a piece's <start> and its labels' control tokens) in view
        however long generation goes on. Decoders whose state holds the whole past (recurrent ones) see them
        anyway; those that forget the distant past override this."""


class WindowDecoder(Decoder):
    """Reruns the whole model over the last `context` tokens for every new token.

    Works for any causal model; it is the slow baseline that cached decoders beat.
    """

    def __init__(self, model, context):
        self.model = model
        self.context = context
        self.pinned = 0

    def pin(self, count):
        self.pinned = min(count, self.context - 1)

    def _trim(self, window):
        """The last `context` tokens, the pinned ones first."""
        if window.shape[1] <= self.context:
            return window
        return np.concatenate([window[:, :self.pinned], window[:, window.shape[1] - self.context + self.pinned:]],
                              axis=1)

    def _logits(self, window):
        return keras.ops.convert_to_numpy(self.model(window, training=False))[:, -1].astype(np.float64)

    def start(self, prompt):
        window = self._trim(np.asarray(prompt, dtype=np.int32))
        return self._logits(window), window

    def step(self, tokens, state):
        window = self._trim(np.concatenate([state, np.asarray(tokens, dtype=np.int32)[:, None]], axis=1))
        return self._logits(window), window

    def reorder(self, state, rows):
        return state[rows]
