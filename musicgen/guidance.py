"""Steering a run by its labels: the control tokens a prompt opens with, and classifier-free guidance.

A model trained on a labelled corpus (preprocess.py --label-from, --labels,
--compute-labels) reads its labels as control tokens right after <start>
(musicgen/vocabulary.py); generate.py --condition puts them there, and
--guidance W makes them count for more than plain conditioning does.
"""

import numpy as np

from musicgen.decoders import Decoder


def conditioned(tokens, vocabulary, conditions):
    """A prompt's tokens opening with <start> and the control tokens of `conditions` ({label: value}, checked
    against the vocabulary) instead of any it had; unchanged without conditions."""
    if not conditions:
        return tokens
    controls = vocabulary.control_ids(conditions)
    tokens = np.asarray(tokens, dtype=np.int32)
    body = tokens[vocabulary.opening_length(tokens):]  # without its <start> and any labels it had
    return np.concatenate([[vocabulary.start_id], controls, body]).astype(np.int32)


def labels_of(vocabulary, prompt):
    """'; labels density=high, key=D minor' for a prompt that opens with labels, else ''."""
    opening = np.asarray(prompt)[1:vocabulary.opening_length(prompt)]
    return f"; labels {', '.join(vocabulary.tokens[i] for i in opening)}" if len(opening) else ""


class GuidedDecoder(Decoder):
    """Classifier-free guidance (Ho and Salimans, 2022): next-token log-probabilities pushed from those the model
    gives without labels towards those it gives with them, by `weight`:

        log p = log p(x | no labels) + weight * (log p(x | labels) - log p(x | no labels)), renormalised

    Weight 1 is plain conditioning; above 1 the labels count for more. One model gives both, because training
    shows it a share of its windows without their labels (the `label_dropout` setting). Two decoders of the
    model run side by side: one reads the prompt, the other the prompt without its control tokens.
    """

    def __init__(self, with_labels, without_labels, vocabulary, weight):
        self.with_labels, self.without_labels = with_labels, without_labels
        self.vocabulary, self.weight = vocabulary, weight

    def pin(self, count):
        self.with_labels.pin(count)
        self.without_labels.pin(min(count, 1))  # the prompt without labels opens with <start> alone

    def _mix(self, logits, free_logits):
        def log_softmax(values):
            return values - np.logaddexp.reduce(values, axis=1, keepdims=True)

        return log_softmax(log_softmax(free_logits) + self.weight * (log_softmax(logits) - log_softmax(free_logits)))

    def start(self, prompt):
        prompt = np.asarray(prompt, dtype=np.int32)
        unlabelled = prompt[:, ~self.vocabulary.is_control[prompt[0]]]  # every row has its labels in one place
        logits, state = self.with_labels.start(prompt)
        free_logits, free_state = self.without_labels.start(unlabelled)
        return self._mix(logits, free_logits), (state, free_state)

    def step(self, tokens, state):
        logits, labelled = self.with_labels.step(tokens, state[0])
        free_logits, free = self.without_labels.step(tokens, state[1])
        return self._mix(logits, free_logits), (labelled, free)

    def reorder(self, state, rows):
        return self.with_labels.reorder(state[0], rows), self.without_labels.reorder(state[1], rows)


def guided(run, vocabulary, weight, random_seed=None):
    """The run's decoder, with classifier-free guidance of `weight` where it is not 1."""
    decoder = run.spec.decoder(run.model, seed=random_seed)
    if weight == 1:
        return decoder
    return GuidedDecoder(decoder, run.spec.decoder(run.model, seed=random_seed), vocabulary, weight)
