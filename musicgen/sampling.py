"""Samplers: choose the next token from logits. They know nothing about the model.

The base class applies the temperature and the grammar mask once; each
strategy only says how to pick from the resulting probabilities.
"""

import numpy as np

from musicgen.errors import UserError


class Sampler:
    def __init__(self, temperature=1.0, seed=None):
        if not temperature > 0:
            raise UserError(f"--temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.rng = np.random.default_rng(seed)

    def __call__(self, logits, allowed):
        """logits: float (batch, vocabulary); allowed: bool mask of the same shape -> token ids (batch,)."""
        scaled = np.where(allowed, np.asarray(logits, dtype=np.float64) / self.temperature, -np.inf)
        scaled -= scaled.max(axis=1, keepdims=True)
        probabilities = np.exp(scaled)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return self.choose(probabilities)

    def choose(self, probabilities):
        raise NotImplementedError

    def _draw(self, probabilities):
        cumulative = np.cumsum(probabilities, axis=1)
        draws = self.rng.random((len(probabilities), 1)) * cumulative[:, -1:]
        return np.minimum((cumulative < draws).sum(axis=1), probabilities.shape[1] - 1)


class GreedySampler(Sampler):
    """Always the most likely token: deterministic, and prone to loops."""

    def choose(self, probabilities):
        return probabilities.argmax(axis=1)


class RandomSampler(Sampler):
    """A draw from the whole (temperature-scaled) distribution."""

    def choose(self, probabilities):
        return self._draw(probabilities)


class TopKSampler(Sampler):
    """A draw from the k most likely tokens."""

    def __init__(self, k=20, **kwargs):
        super().__init__(**kwargs)
        if k < 1:
            raise UserError(f"--top-k must be at least 1, got {k}")
        self.k = k

    def choose(self, probabilities):
        k = min(self.k, probabilities.shape[1])
        threshold = -np.partition(-probabilities, k - 1, axis=1)[:, k - 1: k]
        return self._draw(np.where(probabilities >= threshold, probabilities, 0.0))


class TopPSampler(Sampler):
    """A draw from the smallest set of tokens whose probabilities add up to p (nucleus sampling)."""

    def __init__(self, p=0.9, **kwargs):
        super().__init__(**kwargs)
        if not 0 < p <= 1:
            raise UserError(f"--top-p must be in (0, 1], got {p}")
        self.p = p

    def choose(self, probabilities):
        order = np.argsort(-probabilities, axis=1)
        sorted_probabilities = np.take_along_axis(probabilities, order, axis=1)
        mass_before = np.cumsum(sorted_probabilities, axis=1) - sorted_probabilities
        kept_sorted = np.where(mass_before < self.p, sorted_probabilities, 0.0)
        kept = np.zeros_like(probabilities)
        np.put_along_axis(kept, order, kept_sorted, axis=1)
        return self._draw(kept)


SAMPLERS = {"greedy": GreedySampler, "sample": RandomSampler, "top-k": TopKSampler, "top-p": TopPSampler}


def get(name, temperature=1.0, top_k=20, top_p=0.9, seed=None):
    if name not in SAMPLERS:
        raise UserError(f"--strategy must be one of [{', '.join(SAMPLERS)}]; got {name!r}")
    extra = {"top-k": {"k": top_k}, "top-p": {"p": top_p}}.get(name, {})
    return SAMPLERS[name](temperature=temperature, seed=seed, **extra)


def add_arguments(parser):
    """The decoding options, shared by generate.py and evaluate.py."""
    group = parser.add_argument_group("decoding")
    group.add_argument("--strategy", default="top-p", help="greedy, sample, top-k, top-p or beam (default: top-p)")
    group.add_argument("--temperature", type=float, default=1.0, help="below 1 is safer, above 1 wilder (default: 1.0)")
    group.add_argument("--top-k", type=int, default=20, help="tokens kept by top-k (default: 20)")
    group.add_argument("--top-p", type=float, default=0.9, help="probability mass kept by top-p (default: 0.9)")
    group.add_argument("--beam-width", type=int, default=4, help="sequences kept by beam search (default: 4)")
    group.add_argument("--random-seed", type=int, help="makes sampling reproducible")
    return group


def from_arguments(args):
    """The sampler the arguments ask for; None for beam search, which is not a per-token sampler."""
    if args.strategy == "beam":
        if not args.temperature > 0:
            raise UserError(f"--temperature must be positive, got {args.temperature}")
        if args.beam_width < 1:
            raise UserError(f"--beam-width must be at least 1, got {args.beam_width}")
        return None
    return get(args.strategy, args.temperature, args.top_k, args.top_p, args.random_seed)
