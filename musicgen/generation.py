"""What generating with a run needs beyond a seed: the decoder, including those of a model's latent space."""

import numpy as np

from musicgen.errors import UserError
from musicgen.seed import parse_seed


def latent_plan(run, prior=False, interpolate=None, steps=5, random_seed=None):
    """(decoder, prompt, description) for sampling a run's latent prior or walking between two seeds.

    Only for models with a latent space (spec.latent); the prompt is a lone <start>.
    `interpolate` is a pair of seeds in notation, read with the run's recipe.
    """
    if not run.spec.latent:
        raise UserError(f"sampling a latent space needs a model that has one (vae); {run.path} is a "
                        f"{run.spec.name} run")
    if prior == bool(interpolate):
        raise UserError("sample either the prior or an interpolation between two seeds")
    prompt = np.array([run.vocabulary.start_id], dtype=np.int32)
    if prior:
        return run.spec.prior_decoder(run.model, random_seed), prompt, "latent drawn from the prior"
    first, second = (parse_seed(text, run.vocabulary, run.recipe.melody_only) for text in interpolate)
    decoder = run.spec.interpolation_decoder(run.model, first, second, steps)
    return decoder, prompt, f"{steps} steps from the encoding of {interpolate[0]!r} to that of {interpolate[1]!r}"
