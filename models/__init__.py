"""The model registry: `--model NAME` -> how to build it, its defaults, and how to decode with it.

Every model is a Keras model mapping token ids (batch, time) to next-token
logits (batch, time, vocabulary) and is saved as a `.keras` file. A model knows
nothing about sampling: generation asks its decoder for logits one step at a
time and chooses tokens itself (see musicgen/sampling.py).
"""

import dataclasses
import inspect
from typing import Callable

from musicgen.errors import UserError


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    build: Callable  # (vocabulary_size, hyperparameters) -> keras.Model; None for models with their own `train`
    defaults: dict  # this model's hyperparameters, plus any training defaults it overrides
    decoder: Callable  # (keras.Model) -> models.decoding.Decoder
    description: str
    likelihood: bool = True  # False where val_loss is not a next-token negative log-likelihood (the GAN)
    mixed_precision: bool = True  # whether the model trains correctly under the mixed_float16 policy
    train: Callable = None  # for models not trained by Keras: (config, vocabulary, splits, run_dir, log) -> history row
    load: Callable = None  # and how such a model is loaded from its run folder


REGISTRY = {}


def register(name, spec):
    REGISTRY[name] = spec


def make_decoder(name, model, random_seed=None):
    """The model's decoder; a decoder that draws noise of its own (the gan's) gets the random seed."""
    decoder = get(name).decoder
    if "seed" in inspect.signature(decoder).parameters:
        return decoder(model, seed=random_seed)
    return decoder(model)


def get(name):
    if name not in REGISTRY:
        raise UserError(f"--model must be one of [{', '.join(REGISTRY)}]; got {name!r}")
    return REGISTRY[name]


# Each module registers its models; this order is the order of --help.
from models import recurrent  # noqa: E402,F401  isort: skip
from models import cnn, seq2seq, transformer, vae, gan  # noqa: E402,F401  isort: skip
from models import ngram  # noqa: E402,F401  isort: skip
