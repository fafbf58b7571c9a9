"""A run's hyperparameters, its "config": training defaults < the model's defaults < a JSON config file (train.py
--config) < command-line overrides. run_config.json keeps them under "config", and Run.config reads them back.
"""

from pathlib import Path

from musicgen.errors import UserError
from musicgen.files import read_user_json
from musicgen.key_value import key_values

TRAINING_DEFAULTS = {
    "epochs": 50,  # upper bound; early stopping usually ends sooner
    "batch_size": 64,  # windows per gradient step
    "seq_len": 128,  # tokens per training window (3 tokens per event, 5 with instruments and velocities)
    "learning_rate": 1e-3,  # the peak step size (musicgen.optimizer.OptimizerSettings)
    # Adam at a constant rate, gradients unclipped, unless a model's measured defaults say otherwise (the
    # transformer's do). cosine: a linear warm-up, then down to a tenth of the peak by the last epoch.
    "schedule": "constant",
    "warmup_steps": 0,  # steps of linear warm-up (at most a tenth of the run's steps)
    "weight_decay": 0.0,  # AdamW's decoupled weight decay (0: Adam)
    "clipnorm": 0.0,  # gradients clipped to this norm (0: not clipped)
    "patience": 5,  # epochs without validation improvement before stopping
    "random_seed": 0,  # weights, window order and dropout
    # The share of training windows shown without their labels' control tokens, so that a model trained on a
    # labelled corpus also plays unconditioned (only where the data has labels); and in the others, the chance
    # of each label to be left out on its own, so that it plays with any of its labels without the others.
    "label_dropout": 0.2,
    # The share of training windows put in fill-in-the-middle order, where the data has the infilling markers
    # (preprocess.py --infilling); the others keep teaching plain continuation. 0.8, measured (docs/generating.md,
    # "Infilling"): on the chorales, 0.8 for 25 epochs predicted gaps better than 0.5 for 15, in both orders,
    # and plain continuation better than no infilling at all.
    "infill_rate": 0.8,
    # Each training window transposed by a shift drawn from -transpose..transpose semitones (0: as it is), where
    # every token of it has a transposed twin in the vocabulary (dataset.Transposition). 3, measured (docs/
    # training.md, "Small corpora"): on the chorales 1.933 test nats per note against 2.233 without, and
    # better than preprocessed copies in seven keys (1.988) at a seventh of their time per epoch; on
    # Nottingham 1.428 against 1.595.
    "transpose": 3,
}
SCHEDULES = ("constant", "cosine")
# What runs made before these settings existed trained with.
BEFORE_OPTIMIZER_SETTINGS = {"schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0, "clipnorm": 0.0}
# Runs made before labels and infilling had neither to drop or rearrange; any value reads the same. Runs made
# before windows were transposed were not.
BEFORE_LABELS = {"label_dropout": 0.2, "infill_rate": 0.5, "transpose": 0}
# Changing these between runs does not change what the model is, so a resume may change them.
RESUMABLE_CHANGES = {"epochs", "patience"}
# What fine-tuning (train.py --init-from) changes in the parent run's settings: a fifth of its peak learning
# rate, so the few steps of a small corpus adjust what the parent learned rather than overwrite it, and a
# shorter run with quicker early stopping.
FINE_TUNING_LEARNING_RATE_SHARE = 0.2
FINE_TUNING = {"epochs": 20, "patience": 3}


def fine_tuning(parent_config):
    """The starting settings of a run fine-tuned from a run with `parent_config` (its architecture kept)."""
    return {**parent_config, **FINE_TUNING,
            "learning_rate": parent_config["learning_rate"] * FINE_TUNING_LEARNING_RATE_SHARE}


AUTO = "auto"  # train.py --seq-len auto: the window chosen from the corpus (training.corpus_window)

# Flags that set one hyperparameter each (train.py, crossval.py); the rest go through --set KEY=VALUE or --config.
SETTING_FLAGS = {
    "epochs": (int, "most epochs to train (default 50; early stopping usually ends sooner)"),
    "batch_size": (int, "windows per gradient step"),
    "seq_len": (lambda text: text if text == AUTO else int(text),
                "tokens per training window, 3 per event (5 with instruments and velocities); train.py takes "
                "'auto': chosen from the corpus (transformer, rnn, lstm, gru)"),
    "learning_rate": (float, "peak learning rate"),
    "units": (int, "recurrent units per layer (rnn, lstm, gru, seq2seq, vae)"),
    "layers": (int, "stacked layers or blocks (rnn, lstm, gru, cnn, transformer)"),
    "dropout": (float, "dropout rate"),
    "transpose": (int, "transpose each training window by a random shift of up to N semitones up or down "
                       "(default 3; 0: never; preprocess.py --transpose makes fixed copies instead)"),
    "embedding_dim": (int, "token embedding size (the transformer's model width)"),
    "patience": (int, "epochs without validation improvement before stopping (default 5)"),
    "random_seed": (int, "random seed for weights, window order and dropout (default 0)"),
}


def add_arguments(parser):
    """--config, --set and one flag per SETTING_FLAGS entry."""
    parser.add_argument("--config", type=Path, help="JSON file of settings, e.g. {\"units\": 512, \"epochs\": 20}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any model setting (repeatable)")
    group = parser.add_argument_group("settings (each overrides --config)")
    for key, (kind, text) in SETTING_FLAGS.items():
        group.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, help=text)


def overrides(args):
    """{setting: value} given on the command line by add_arguments' flags and --set."""
    values = {key: getattr(args, key) for key in SETTING_FLAGS if getattr(args, key) is not None}
    return {**values, **set_values(args.set)}


def set_values(items):
    """{setting: value as written} of --set KEY=VALUE items."""
    return {key.replace("-", "_"): value for key, value in key_values(items, "--set", example="dropout=0.3").items()}


def defaults(spec):
    return {**TRAINING_DEFAULTS, **spec.defaults}


def resolve_config(spec, config_file=None, overrides=None, base=None):
    """The settings of a run of `spec`'s model; unknown keys and bad values are refused. `base`: settings that
    come before the config file's (a parent run's, for fine-tuning)."""
    config = defaults(spec)
    for origin, values in _layers(config_file, overrides, base):
        for key, value in values.items():
            if key not in config:
                raise UserError(f"{key!r} (from {origin}) is not a setting of the {spec.name} model; "
                                f"its settings are: {', '.join(sorted(config))}")
            config[key] = _coerce(key, value, config[key], origin)
    for key in ("epochs", "batch_size", "seq_len", "patience"):
        if config[key] < 1:
            raise UserError(f"{key} must be at least 1, got {config[key]}")
    if not config["learning_rate"] > 0:
        raise UserError(f"learning_rate must be positive, got {config['learning_rate']}")
    if not 0 <= config.get("dropout", 0) < 1:
        raise UserError(f"dropout must be in [0, 1), got {config['dropout']}")
    if config["schedule"] not in SCHEDULES:
        raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {config['schedule']!r}")
    for key in ("warmup_steps", "weight_decay", "clipnorm"):
        if config[key] < 0:
            raise UserError(f"{key} must be 0 or more, got {config[key]}")
    for key in ("label_dropout", "infill_rate"):
        if not 0 <= config[key] <= 1:
            raise UserError(f"{key} must be in [0, 1], got {config[key]}")
    if not 0 <= config["transpose"] <= 11:
        raise UserError(f"transpose must be 0 to 11 semitones, got {config['transpose']}")
    return config


def given(config_file=None, overrides=None, base=None):
    """The names of the settings the user (or the parent run) gave, as opposed to those left at their defaults."""
    return {key for _, values in _layers(config_file, overrides, base) for key in values}


def _layers(config_file, overrides, base):
    """[(where from, {setting: value})], in the order they apply."""
    layers = [("the run fine-tuned from", base)] if base else []
    if config_file:
        file_values = read_user_json(config_file, f"config file {config_file} does not exist")
        if not isinstance(file_values, dict):
            raise UserError(f"config file {config_file} must hold a JSON object of settings")
        file_values.pop("model", None)
        layers.append((f"config file {config_file}", file_values))
    layers.append(("the command line", overrides or {}))
    return layers


def upgrade(config):
    """A stored config in today's names: runs made before `seed` became `random_seed` stay resumable, and runs
    made before the optimizer settings (or labels) say how they trained."""
    if "seed" in config and "random_seed" not in config:
        config = {("random_seed" if key == "seed" else key): value for key, value in config.items()}
    return {**BEFORE_OPTIMIZER_SETTINGS, **BEFORE_LABELS, **config}


def _coerce(key, value, default, origin):
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                value = {"true": True, "false": False}[value.lower()]
            return bool(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (ValueError, TypeError, KeyError):
        raise UserError(f"{key} (from {origin}) must be {kind.__name__}, got {value!r}") from None
