"""What the library needs to know about a model family: the contract between musicgen/ and models/.

Every model maps token ids (batch, time) to next-token logits (batch, time,
vocabulary). The library trains, saves, loads, scores and samples any model
through its spec alone, so a new model needs no change in any script or in the
library. It needs three entries: its spec in models/registry.py's REGISTRY, its
name in models/__init__.py's NAMES (read by the scripts before TensorFlow loads;
tests/test_models.py keeps the two equal), and its tiny test settings in
tests/conftest.py's TINY_SETTINGS (docs/architecture.md, "Adding a model").
"""

import dataclasses
from typing import Callable


def _functional_output_size(model):
    return model.output_shape[-1]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str  # what --model calls it
    description: str
    defaults: dict  # this model's hyperparameters, plus any training defaults it overrides
    decoder: Callable  # (model, seed=None) -> musicgen.decoders.Decoder; `seed` seeds any noise of its own
    build: Callable = None  # (vocabulary_size, hyperparameters) -> keras.Model; None for a model with its own `train`
    compile: Callable = None  # (model, musicgen.optimizer.OptimizerSettings) -> None; None: optimizer.compile_model
    # The size of the model's output (its vocabulary); subclassed Keras models have no output_shape of their own.
    output_size: Callable = _functional_output_size
    likelihood: bool = True  # False where val_loss is not a next-token negative log-likelihood (the GAN)
    mixed_precision: bool = True  # whether the model trains correctly under the mixed_float16 policy
    counted: bool = False  # a counted baseline (the n-gram): evaluate.py need not fit another one beside it
    # Where more context helps the model, train.py chooses its window from the corpus, up to this many tokens, unless
    # seq_len is given (training.corpus_window); 0: the model's window is its own seq_len, whatever the corpus.
    longest_window: int = 0
    train: Callable = None  # for models not trained by Keras: (config, vocabulary, splits, run_dir, log) -> history row
    load: Callable = None  # and how such a model is loaded from its run folder: (run_dir) -> model
    # For models with a latent space (the VAE): (model, seed) -> a decoder that samples the prior, and
    # (model, prompt_a, prompt_b, steps) -> a decoder with one batch row per point between the two prompts.
    prior_decoder: Callable = None
    interpolation_decoder: Callable = None

    def compile_model(self, model, optimizer_settings):
        """Compile a model of this spec for training, with its own compile or the standard one."""
        from musicgen.optimizer import compile_model  # Keras: only once there is a model

        (self.compile or compile_model)(model, optimizer_settings)

    @property
    def keras(self):
        """Whether Keras trains it (and best.keras / last.keras hold it)."""
        return self.train is None

    @property
    def latent(self):
        return self.prior_decoder is not None
