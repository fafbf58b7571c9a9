"""The model families `--model` names. Their specs are in models/registry.py.

This module stays free of TensorFlow so that the scripts can answer --help and
refuse a wrong model name at once; tests/test_models.py keeps NAMES equal to
the registry's table.
"""

from musicgen.errors import UserError

NAMES = ("rnn", "lstm", "gru", "cnn", "seq2seq", "transformer", "vae", "gan", "ngram")  # the order of --help
# The best network measured on every corpus docs/results.md reports (Bach chorales, piano performances, pop songs).
DEFAULT = "transformer"


def check_name(name):
    if name not in NAMES:
        raise UserError(f"the model must be one of [{', '.join(NAMES)}]; got {name!r}")
    return name
