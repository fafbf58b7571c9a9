"""The registry: model name -> ModelSpec (musicgen/spec.py), and what needs it to load a run.

    from models import registry
    spec = registry.get("transformer")
    run = registry.load_run("checkpoints/transformer")     # musicgen.runs.Run, its spec included
"""

import models
from models import cnn, gan, ngram, recurrent, seq2seq, transformer, vae
from musicgen import runs

REGISTRY = {spec.name: spec for spec in (recurrent.RNN, recurrent.LSTM, recurrent.GRU, cnn.SPEC, seq2seq.SPEC,
                                         transformer.SPEC, vae.SPEC, gan.SPEC, ngram.SPEC)}


def get(name):
    return REGISTRY[models.check_name(name)]


def load_run(run_dir):
    return runs.load_run(run_dir, get)


def fit_baseline(splits, vocabulary):
    """(name, spec, model) of the n-gram fitted on the training split, its order chosen on validation."""
    model, _ = ngram.fit_best_order(splits["train"].tokens, splits["validation"].tokens, len(vocabulary),
                                    ngram.DEFAULTS["max_order"])
    return f"ngram baseline (order {model.order})", ngram.SPEC, model
