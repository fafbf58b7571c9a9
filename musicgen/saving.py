"""`.keras` files: written atomically, loaded in safe mode."""

import keras

from musicgen import optimizer  # noqa: F401  registers SparseSafeLossScaleOptimizer, which saved models name
from musicgen.errors import UserError
from musicgen.files import atomic_path


def save_model(model, path):
    with atomic_path(path) as temporary:
        model.save(temporary)


def load_model(path, compile=True):
    """Load a `.keras` file in safe mode: a file that would run arbitrary code (a Lambda layer) is refused.

    Without `compile` the optimizer is left out: enough to generate, and quiet about the
    loss-scaling optimizer of a model trained with mixed precision.
    """
    try:
        return keras.models.load_model(path, safe_mode=True, compile=compile)
    except ValueError as error:
        if "safe_mode" in str(error) or "lambda" in str(error).lower():
            raise UserError(f"{path} contains code (such as a Lambda layer) and is refused in safe mode") from None
        raise UserError(f"{path} is not a loadable Keras model ({str(error).splitlines()[0][:200]})") from None
    except (OSError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a loadable Keras model ({error})") from None
