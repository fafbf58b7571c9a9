"""An n-gram baseline over tokens: interpolated Witten-Bell smoothing, order chosen on validation data.

    P(w | h) = (c(h, w) + T(h) * P(w | h')) / (c(h) + T(h))

where h' is h without its oldest token, c counts training n-grams and T(h) is the
number of distinct tokens seen after h. The recursion ends in a uniform
distribution, so no token ever gets probability zero; a context never seen in
training simply defers to the shorter one. Training counts every order up to
`max_order` and keeps the order with the lowest validation loss.

Counts live in sorted int64 keys (context and token packed in base V), so
scoring a whole split and each generation step are a few `searchsorted` calls.
It is saved as `model.npz` (plain arrays) in the run folder, not as `.keras`.
"""

import math
import time
from pathlib import Path

import numpy as np

from musicgen.decoders import Decoder
from musicgen.errors import UserError
from musicgen.files import atomic_path
from musicgen.spec import ModelSpec

DEFAULTS = {"max_order": 6}  # longest n-gram considered (tokens, the predicted one included)
MODEL_FILE = "model.npz"


def _longest_context(vocabulary_size):
    """Longest context whose (context, token) key fits in an int64."""
    return max(1, int(62 * math.log(2) / math.log(max(vocabulary_size, 2))) - 1)


class NgramModel:
    def __init__(self, vocabulary_size, order, keys, counts):
        """keys[m], counts[m]: sorted packed (context of m tokens, next token) keys and their counts, m = 0..order-1."""
        self.vocabulary_size = vocabulary_size
        self.order = order
        self.keys, self.counts = keys[:order], counts[:order]
        self.contexts, self.context_totals, self.context_types, self.context_starts = [], [], [], []
        for key, count in zip(self.keys, self.counts):
            context = key // vocabulary_size
            unique, starts, types = np.unique(context, return_index=True, return_counts=True)
            self.contexts.append(unique)
            self.context_starts.append(starts)
            self.context_types.append(types)
            self.context_totals.append(np.add.reduceat(count, starts) if len(count) else count)

    @classmethod
    def fit(cls, tokens, vocabulary_size, max_order):
        tokens = np.asarray(tokens, dtype=np.int64)
        max_order = min(max_order, _longest_context(vocabulary_size) + 1)
        keys, counts = [], []
        for length in range(max_order):  # context length
            packed = np.zeros(len(tokens) - length, dtype=np.int64)
            for offset in range(length + 1):
                packed = packed * vocabulary_size + tokens[offset: len(tokens) - length + offset]
            unique, count = np.unique(packed, return_counts=True)
            keys.append(unique)
            counts.append(count.astype(np.int64))
        return cls(vocabulary_size, max_order, keys, counts)

    def with_order(self, order):
        return NgramModel(self.vocabulary_size, order, self.keys, self.counts)

    def token_log_probabilities(self, tokens):
        """Natural-log probability of tokens[1:], each given the tokens before it."""
        tokens = np.asarray(tokens, dtype=np.int64)
        targets = tokens[1:]
        probabilities = np.full(len(targets), 1.0 / self.vocabulary_size)
        for length in range(self.order):
            context = np.zeros(len(targets), dtype=np.int64)
            available = np.arange(1, len(tokens)) >= length
            for offset in range(length, 0, -1):
                previous = np.concatenate([np.zeros(offset, np.int64), tokens[:-offset]])[1:]
                context = context * self.vocabulary_size + previous
            probabilities = self._interpolate(length, context, targets, probabilities, available)
        return np.log(probabilities)

    def _interpolate(self, length, context, targets, lower, available):
        contexts = self.contexts[length]
        index = np.clip(np.searchsorted(contexts, context), 0, max(len(contexts) - 1, 0))
        seen = available & (len(contexts) > 0) & (contexts[index] == context)
        keys = self.keys[length]
        packed = context * self.vocabulary_size + targets
        key_index = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        pair_count = np.where(keys[key_index] == packed, self.counts[length][key_index], 0)
        total, types = self.context_totals[length][index], self.context_types[length][index]
        return np.where(seen, (pair_count + types * lower) / (total + types), lower)

    def next_log_probabilities(self, history):
        """Log-probabilities of every next token after `history` (1-D token ids): float (vocabulary,)."""
        history = np.asarray(history, dtype=np.int64)
        probabilities = np.full(self.vocabulary_size, 1.0 / self.vocabulary_size)
        for length in range(min(self.order, len(history) + 1)):
            context = 0
            for token in history[len(history) - length:]:
                context = context * self.vocabulary_size + int(token)
            contexts = self.contexts[length]
            index = np.searchsorted(contexts, context)
            if index >= len(contexts) or contexts[index] != context:
                break  # a longer context containing this one was not seen either
            start = self.context_starts[length][index]
            end = start + self.context_types[length][index]
            followers = self.keys[length][start:end] % self.vocabulary_size
            counts = np.zeros(self.vocabulary_size)
            counts[followers] = self.counts[length][start:end]
            types = self.context_types[length][index]
            probabilities = (counts + types * probabilities) / (self.context_totals[length][index] + types)
        return np.log(probabilities)

    def save(self, path):
        arrays = {"order": np.array(self.order), "vocabulary_size": np.array(self.vocabulary_size)}
        for length, (key, count) in enumerate(zip(self.keys, self.counts)):
            arrays[f"keys_{length}"], arrays[f"counts_{length}"] = key, count
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)

    @classmethod
    def load(cls, path):
        try:
            with np.load(path, allow_pickle=False) as arrays:
                order, size = int(arrays["order"]), int(arrays["vocabulary_size"])
                keys = [arrays[f"keys_{m}"].astype(np.int64) for m in range(order)]
                counts = [arrays[f"counts_{m}"].astype(np.int64) for m in range(order)]
        except (OSError, ValueError, KeyError) as error:
            raise UserError(f"{path} is not a saved n-gram model ({error})") from None
        if not (1 <= order <= 16 and size >= 1 and all(np.all(np.diff(k) > 0) for k in keys)):
            raise UserError(f"{path} holds an inconsistent n-gram model")
        return cls(size, order, keys, counts)


class NgramDecoder(Decoder):
    """The state is the token history; each step looks up the longest matching contexts."""

    def __init__(self, model, seed=None):  # deterministic: `seed` is unused
        self.model = model
        self.context = model.order - 1

    def _logits(self, histories):
        return np.stack([self.model.next_log_probabilities(h) for h in histories])

    def start(self, prompt):
        histories = np.asarray(prompt, dtype=np.int64)[:, max(0, np.shape(prompt)[1] - self.context):]
        return self._logits(histories), histories

    def step(self, tokens, state):
        histories = np.concatenate([state, np.asarray(tokens, dtype=np.int64)[:, None]], axis=1)
        histories = histories[:, max(0, histories.shape[1] - self.context):]
        return self._logits(histories), histories

    def reorder(self, state, rows):
        return state[rows]


def evaluate(model, tokens):
    """(mean negative log-likelihood in nats per token, next-token accuracy) over a token array."""
    log_probabilities = model.token_log_probabilities(tokens)
    predictions = [np.argmax(model.next_log_probabilities(tokens[max(0, i - model.order + 1): i + 1]))
                   for i in range(len(tokens) - 1)]
    return float(-log_probabilities.mean()), float(np.mean(np.array(predictions) == np.asarray(tokens[1:])))


def fit_best_order(train_tokens, validation_tokens, vocabulary_size, max_order):
    """Count n-grams up to max_order; return the order with the lowest validation loss, and every order's loss."""
    full = NgramModel.fit(train_tokens, vocabulary_size, max_order)
    losses = {order: float(-full.with_order(order).token_log_probabilities(validation_tokens).mean())
              for order in range(1, full.order + 1)}
    return full.with_order(min(losses, key=losses.get)), losses


def train(config, vocabulary, splits, run_dir, log=print):
    """Count n-grams of the training split; keep the order that scores best on validation."""
    started = time.time()
    validation = splits["validation"].tokens
    model, losses = fit_best_order(splits["train"].tokens, validation, len(vocabulary), config["max_order"])
    order = model.order
    model.save(Path(run_dir) / MODEL_FILE)
    log("validation loss by order: " + ", ".join(f"{n}: {loss:.4f}" for n, loss in losses.items()))
    train_loss = float(-model.token_log_probabilities(splits["train"].tokens).mean())
    val_loss, val_accuracy = evaluate(model, validation)
    log(f"n-gram order {order} chosen on validation data ({time.time() - started:.1f} s)")
    return {"epoch": 1, "loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy, "order": order}


def load(run_dir):
    return NgramModel.load(Path(run_dir) / MODEL_FILE)


SPEC = ModelSpec(name="ngram", description="n-gram with Witten-Bell smoothing", defaults=DEFAULTS, decoder=NgramDecoder,
                 train=train, load=load, output_size=lambda model: model.vocabulary_size, mixed_precision=False,
                 counted=True)
