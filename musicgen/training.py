"""Training: configuration, streamed windows, checkpoints that survive a crash, and the run folder.

A run folder (checkpoints/<run>/) holds everything needed to resume or to generate:

    run_config.json   model name, hyperparameters, vocabulary hash, progress, best validation loss
    vocab.json        the vocabulary the model was trained with
    best.keras        weights with the lowest validation loss so far
    last.keras        the latest epoch, with optimizer state (what a resume starts from)
    history.csv, loss.png, logs/ (TensorBoard)
"""

import csv
import math
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import models
from musicgen import distributed, plots
from musicgen.dataset import (ShardFile, load_processed, read_index, read_shard, read_tokens, read_vocabulary, shard_files,
                              write_vocabulary)
from musicgen.errors import UserError
from musicgen.files import atomic_path, read_json, read_user_json, write_json

TRAINING_DEFAULTS = {
    "epochs": 50,  # upper bound; early stopping usually ends sooner
    "batch_size": 64,  # windows per gradient step
    "seq_len": 128,  # tokens per training window (3 tokens per event)
    "learning_rate": 1e-3,  # Adam step size
    "patience": 5,  # epochs without validation improvement before stopping
    "seed": 0,  # weights, window order and dropout
}
# Changing these between runs does not change what the model is, so a resume may change them.
RESUMABLE_CHANGES = {"epochs", "patience"}
RUN_CONFIG_FILE = "run_config.json"
SHARDS_AT_ONCE = 4  # shards a shuffled pass draws windows from at a time
SHUFFLE_WINDOWS = 2048  # windows mixed in the shuffle buffer (256 KB of ids at seq_len 128)


def resolve_config(model_name, config_file=None, overrides=None):
    """Defaults < model defaults < JSON config file < command-line overrides; unknown keys are refused."""
    spec = models.get(model_name)
    config = {**TRAINING_DEFAULTS, **spec.defaults}
    layers = []
    if config_file:
        file_values = read_user_json(config_file, f"--config {config_file} does not exist")
        if not isinstance(file_values, dict):
            raise UserError(f"--config {config_file} must hold a JSON object of settings")
        file_values.pop("model", None)
        layers.append((f"--config {config_file}", file_values))
    layers.append(("the command line", overrides or {}))
    for origin, values in layers:
        for key, value in values.items():
            if key not in config:
                raise UserError(f"{key!r} (from {origin}) is not a setting of --model {model_name}; "
                                f"its settings are: {', '.join(sorted(config))}")
            config[key] = _coerce(key, value, config[key], origin)
    for key in ("epochs", "batch_size", "seq_len", "patience"):
        if config[key] < 1:
            raise UserError(f"{key} must be at least 1, got {config[key]}")
    if not config["learning_rate"] > 0:
        raise UserError(f"learning_rate must be positive, got {config['learning_rate']}")
    if not 0 <= config.get("dropout", 0) < 1:
        raise UserError(f"dropout must be in [0, 1), got {config['dropout']}")
    return config


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


def windows(shards, seq_len, batch_size, pad_id, shuffle, seed=0):
    """Batches of (inputs, targets, weights) cut on the fly from token arrays, streamed one shard at a time.

    `shards` are ShardFiles (each read when its turn comes, so a corpus need not
    fit in memory) or token arrays. Every position of a window is a training
    target (the next token). Shuffled, each pass visits the shards in a new order,
    a few at a time, and cuts about len(tokens) / seq_len windows from each at
    random offsets, mixed in a buffer of SHUFFLE_WINDOWS; unshuffled, the windows
    tile each shard in order. Arrays shorter than one window are padded, and
    padding gets weight 0 in the loss and the metrics.
    """
    shards = list(shards)
    lengths = [max(shard.tokens if isinstance(shard, ShardFile) else len(shard), seq_len + 1) for shard in shards]

    def window_count(length):
        return max(1, (length - 1) // seq_len) if shuffle else (length - seq_len - 1) // seq_len + 1

    def cut_windows(index, random_seed):
        shard = shards[index]
        tokens = read_tokens(shard.path) if isinstance(shard, ShardFile) else np.asarray(shard, dtype=np.int32)
        tokens = np.concatenate([tokens, np.full(lengths[index] - len(tokens), pad_id, np.int32)])
        last_start = len(tokens) - seq_len - 1
        if shuffle:
            random = np.random.default_rng(random_seed & (2**63 - 1))
            starts = random.integers(0, last_start + 1, window_count(len(tokens)))
        else:
            starts = np.arange(window_count(len(tokens))) * seq_len
        return tokens[starts[:, None] + np.arange(seq_len + 1)]

    def shard_windows(index, random_seed):
        cut = tf.numpy_function(cut_windows, [index, random_seed], tf.int32, stateful=False)
        return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(cut, [None, seq_len + 1]))

    order = tf.data.Dataset.range(len(shards))
    if shuffle:
        order = order.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
        random_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        cut = tf.data.Dataset.zip(order, random_seeds).interleave(
            shard_windows, cycle_length=min(len(shards), SHARDS_AT_ONCE), num_parallel_calls=tf.data.AUTOTUNE)
        cut = cut.shuffle(SHUFFLE_WINDOWS, seed=seed, reshuffle_each_iteration=True)
    else:
        cut = order.flat_map(lambda index: shard_windows(index, tf.constant(0, tf.int64)))

    def as_example(window):
        targets = window[:, 1:]
        return window[:, :-1], targets, tf.cast(targets != pad_id, tf.float32)

    batches = math.ceil(sum(window_count(length) for length in lengths) / batch_size)
    return (cut.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))
            .map(as_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


@keras.saving.register_keras_serializable(package="musicgen")
class SparseSafeLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Loss scaling (mixed precision) that notices an overflow in an embedding's gradient.

    Keras 3.15 checks an embedding's sparse gradient (tf.IndexedSlices) after
    densifying it with a scatter in which a token's last row wins, so an inf in
    an earlier row of a token that occurs twice in the batch goes unnoticed and
    turns the weights to NaN. Checking the rows themselves skips that step, as
    loss scaling intends.
    """

    def check_finite(self, grads):
        return super().check_finite([g.values if isinstance(g, tf.IndexedSlices) else g for g in grads])


def compile_model(model, learning_rate):
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if model.dtype_policy.name == "mixed_float16":
        optimizer = SparseSafeLossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


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


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: last.keras, best.keras when validation improved, progress, history, plot.

    Also does early stopping, keeping its counters in run_config.json so that a
    resumed run stops exactly where an uninterrupted one would have. Without
    `write_files` (on workers other than the chief) it keeps the progress alone.
    """

    def __init__(self, run_dir, run_config, write_files=True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.run_config = run_config
        self.write_files = write_files

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        progress = self.run_config["progress"]
        improved = logs["val_loss"] < progress["best_val_loss"]
        if improved:
            if self.write_files:
                save_model(self.model, self.run_dir / "best.keras")
            progress.update(best_val_loss=logs["val_loss"], best_val_accuracy=logs.get("val_accuracy"),
                            best_epoch=epoch + 1, epochs_without_improvement=0)
        else:
            progress["epochs_without_improvement"] += 1
        progress["history"].append({"epoch": epoch + 1, **logs})
        progress["epochs_completed"] = epoch + 1
        if progress["epochs_without_improvement"] >= self.run_config["config"]["patience"]:
            progress["stopped_early"] = True
            self.model.stop_training = True
        if self.write_files:
            save_model(self.model, self.run_dir / "last.keras")
            write_json(self.run_dir / RUN_CONFIG_FILE, self.run_config)
            write_history(self.run_dir, progress["history"])


def write_history(run_dir, history):
    columns = list(dict.fromkeys(key for row in history for key in row))
    with atomic_path(Path(run_dir) / "history.csv") as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)
    plots.plot_history(history, Path(run_dir) / "loss.png")


def new_run_config(model_name, config, vocabulary, data_dir, default_bpm):
    return {
        "format": "musicgen-run",
        "version": 1,
        "model": model_name,
        "config": config,
        "vocabulary_hash": vocabulary.hash(),
        "vocabulary_size": len(vocabulary),
        "data": str(data_dir),
        "default_bpm": default_bpm,
        "progress": {"epochs_completed": 0, "best_val_loss": math.inf, "best_val_accuracy": None, "best_epoch": 0,
                     "epochs_without_improvement": 0, "stopped_early": False, "history": []},
    }


def read_run_config(run_dir):
    """Read and validate run_config.json (which may come from someone else's checkpoint)."""
    path = Path(run_dir) / RUN_CONFIG_FILE
    run_config = read_user_json(
        path, f"{run_dir} is not a training run (no {RUN_CONFIG_FILE}); pass a folder made by train.py")
    if not isinstance(run_config, dict):
        raise UserError(f"{path} must hold a JSON object")
    expected = {"format": str, "model": str, "config": dict, "vocabulary_hash": str, "vocabulary_size": int,
                "default_bpm": (int, float), "progress": dict}
    for key, kind in expected.items():
        if not isinstance(run_config.get(key), kind):
            raise UserError(f"{path} is missing {key!r} or it has the wrong type")
    if run_config["format"] != "musicgen-run":
        raise UserError(f"{path} is not a musicgen run configuration")
    models.get(run_config["model"])
    if not 10 <= run_config["default_bpm"] <= 400:
        raise UserError(f"{path}: default_bpm {run_config['default_bpm']} is outside 10..400")
    return run_config


def check_resumable(run_dir, run_config, model_name, config, vocabulary, mixed_precision):
    """Refuse to resume a run whose model, settings, vocabulary or precision differ from what was asked for."""
    if run_config["model"] != model_name:
        raise UserError(f"{run_dir} holds a {run_config['model']} run, not {model_name}; "
                        "pass --run-name NAME for a new run or --restart to replace it")
    if run_config["vocabulary_hash"] != vocabulary.hash():
        raise UserError(f"{run_dir} was trained on data with another vocabulary (preprocessed again since?); "
                        "pass --restart to train afresh or --run-name NAME for a new run")
    if run_config.get("mixed_precision", False) != mixed_precision:
        raise UserError(f"{run_dir} was trained {'with' if run_config.get('mixed_precision') else 'without'} "
                        "--mixed-precision; ask for the same to resume it, or pass --restart or --run-name NAME")
    changed = [f"{key} {run_config['config'].get(key)} -> {value}" for key, value in config.items()
               if key not in RESUMABLE_CHANGES and run_config["config"].get(key) != value]
    if changed:
        raise UserError(f"{run_dir} was trained with other settings ({'; '.join(changed)}); "
                        "pass --restart to replace it or --run-name NAME for a new run")


def train(model_name, config, data_dir, run_dir, restart=False, mixed_precision=False, log=print, verbose=None):
    """Train (or resume) a run; returns the run configuration with its progress.

    On every GPU there is, or on every machine TF_CONFIG names (see
    musicgen/distributed.py); only the chief writes the run folder.
    """
    spec = models.get(model_name)
    if mixed_precision and not spec.mixed_precision:
        raise UserError(f"--mixed-precision is not available for --model {model_name}, which trains in float32 only")
    strategy, device = distributed.choose_strategy()  # first: a cluster must be set up before any tensor exists
    vocabulary, index = read_index(data_dir)
    if not any(entry["pieces"] for entry in index["validation"]):
        raise UserError(f"the validation split in {data_dir} is empty; run preprocess.py with more files "
                        "or a larger --val-fraction")
    run_dir = Path(run_dir)
    chief = distributed.is_chief(strategy)
    if restart and chief and run_dir.exists():
        for name in ("last.keras", "best.keras", RUN_CONFIG_FILE, "history.csv", "loss.png"):
            (run_dir / name).unlink(missing_ok=True)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
    if spec.train is not None:  # counted, not fitted: seconds, so it is simply done again
        return _train_without_keras(spec, model_name, config, data_dir, run_dir, log)

    previous_policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _train(spec, model_name, config, vocabulary, index, data_dir, run_dir, strategy, device, chief, log,
                      verbose)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(spec, model_name, config, vocabulary, index, data_dir, run_dir, strategy, device, chief, log, verbose):
    mixed_precision = keras.mixed_precision.global_policy().name == "mixed_float16"
    train_shards, validation_shards = (shard_files(data_dir, index[name]) for name in ("train", "validation"))
    # Read before training starts so that a shard of another vocabulary is refused with a message, not midway.
    tempos = [read_shard(shard.path, vocabulary, fields=("tempos",)).tempos for shard in train_shards]
    for shard in validation_shards:
        read_shard(shard.path, vocabulary, fields=())
    local_run = (run_dir / RUN_CONFIG_FILE).exists() and (run_dir / "last.keras").exists()
    resuming = distributed.any_worker(strategy, local_run)
    if resuming and not local_run:
        raise UserError(f"the chief resumes {run_dir}, which this worker cannot see: to resume training on several "
                        "machines, keep the checkpoints folder on a file system they share")
    with strategy.scope():
        if resuming:
            run_config = read_run_config(run_dir)
            check_resumable(run_dir, run_config, model_name, config, vocabulary, mixed_precision)
            run_config["config"] = config
            progress = run_config["progress"]
            if progress["stopped_early"] or progress["epochs_completed"] >= config["epochs"]:
                log(f"{run_dir} has finished training ({progress['epochs_completed']} epochs, best validation loss "
                    f"{progress['best_val_loss']:.4f}); pass --restart to train again or a larger --epochs to go on")
                return run_config
            model = load_model(run_dir / "last.keras")
            log(f"resuming {run_dir} after epoch {progress['epochs_completed']}")
        else:
            keras.utils.set_random_seed(config["seed"])
            run_config = new_run_config(model_name, config, vocabulary, data_dir, _median_tempo(np.concatenate(tempos)))
            run_config["mixed_precision"] = mixed_precision
            model = spec.build(len(vocabulary), config)
            compile_model(model, config["learning_rate"])
            if chief:
                write_vocabulary(run_dir, vocabulary)
                write_json(run_dir / RUN_CONFIG_FILE, run_config)

    log(device)
    if mixed_precision and not tf.config.list_physical_devices("GPU"):
        log("warning: mixed precision helps on GPUs; on a CPU it makes training slower, not faster")
    tokens = {name: sum(entry["tokens"] for entry in index[name]) for name in ("train", "validation")}
    log(f"{model_name}: {model.count_params():,} parameters; vocabulary {len(vocabulary)} tokens; "
        f"{tokens['train']:,} training tokens, {tokens['validation']:,} validation tokens")
    batch_size = distributed.global_batch_size(config["batch_size"], strategy)
    epochs_completed = run_config["progress"]["epochs_completed"]
    train_data = windows(train_shards, config["seq_len"], batch_size, vocabulary.pad_id, shuffle=True,
                         seed=config["seed"] + epochs_completed)
    validation_data = windows(validation_shards, config["seq_len"], batch_size, vocabulary.pad_id, shuffle=False)
    callbacks = [RunCheckpoint(run_dir, run_config, write_files=chief)]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    if distributed.needs_fit_multi_worker(strategy):
        distributed.fit_multi_worker(model, strategy, train_data, validation_data, epochs=config["epochs"],
                                     initial_epoch=epochs_completed, callbacks=callbacks, log=log)
    else:
        model.fit(
            train_data,
            shuffle=False,  # the windows are already drawn at random offsets
            validation_data=validation_data,
            epochs=config["epochs"],
            initial_epoch=epochs_completed,
            callbacks=callbacks,
            verbose=verbose if verbose is not None else ("auto" if sys.stdout.isatty() else 2),
        )
    return run_config


def _median_tempo(tempos):
    return float(np.median(tempos)) if len(tempos) else 120.0


def _train_without_keras(spec, model_name, config, data_dir, run_dir, log):
    vocabulary, splits = load_processed(data_dir, ("train", "validation"))
    run_config = new_run_config(model_name, config, vocabulary, data_dir, _median_tempo(splits["train"].tempos))
    write_vocabulary(run_dir, vocabulary)
    row = spec.train(config, vocabulary, splits, run_dir, log)
    run_config["progress"].update(epochs_completed=1, best_epoch=1, best_val_loss=row["val_loss"],
                                  best_val_accuracy=row.get("val_accuracy"), history=[row])
    write_json(run_dir / RUN_CONFIG_FILE, run_config)
    write_history(run_dir, [row])
    return run_config


def load_run(run_dir):
    """Everything generate.py needs from a run folder: (run_config, vocabulary, model), all checked."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"checkpoint folder {run_dir} does not exist")
    run_config = read_run_config(run_dir)
    vocabulary = read_vocabulary(run_dir / "vocab.json")
    if vocabulary.hash() != run_config["vocabulary_hash"] or len(vocabulary) != run_config["vocabulary_size"]:
        raise UserError(f"{run_dir}/vocab.json does not match the vocabulary the model was trained with")
    spec = models.get(run_config["model"])
    if spec.load is not None:
        model = spec.load(run_dir)
        output_size = model.vocabulary_size
    elif not (run_dir / "best.keras").exists():
        raise UserError(f"{run_dir} has no best.keras yet (training has not finished an epoch)")
    else:
        model = load_model(run_dir / "best.keras", compile=False)
        output_size = model.output_shape[-1]
    if output_size != len(vocabulary):
        raise UserError(f"{run_dir}: the model predicts {output_size} tokens but vocab.json has {len(vocabulary)}")
    return run_config, vocabulary, model


def newest_run(checkpoints="checkpoints"):
    runs = [path.parent for path in Path(checkpoints).glob(f"*/{RUN_CONFIG_FILE}") if _epochs_completed(path) > 0]
    if not runs:
        raise UserError(f"no trained runs in {checkpoints}/ (run `python train.py --model lstm` first)")
    return max(runs, key=lambda run: (run / RUN_CONFIG_FILE).stat().st_mtime)


def _epochs_completed(run_config_path):
    try:
        return int(read_json(run_config_path)["progress"]["epochs_completed"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0

