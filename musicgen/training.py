"""Training a model on preprocessed data: the run's orchestration from data to run folder (see musicgen/runs.py).

Works for any model through its spec (musicgen/spec.py): Keras models are fitted
on streamed windows with checkpoints, early stopping and resume; counted models
(the n-gram) train with their own function.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from musicgen import distributed, hyperparameters
from musicgen.callbacks import RunCheckpoint, TimeLeft
from musicgen.dataset import (ControlPrefix, Infilling, batch_count, load_processed, read_index, read_recipe,
                              read_shard, shard_files, windows, write_vocabulary)
from musicgen.errors import UserError
from musicgen.files import atomic_path, write_json
from musicgen.optimizer import OptimizerSettings
from musicgen.runs import (RUN_CONFIG_FILE, check_parent, check_resumable, finished, new_run_config, read_run_config,
                           write_history)
from musicgen.saving import load_model
from musicgen.transposition import Transposition


def train(spec, config, data_dir, run_dir, restart=False, mixed_precision=False, log=print, verbose=None,
          callbacks=(), init_from=None, freeze=0):
    """Train (or resume) a run of `spec`'s model; returns the run configuration with its progress.

    With `init_from` (a run folder), a new run starts from that run's weights, the lowest `freeze` of its
    layers with weights left as they are (fine-tuning; a resumed run goes on from its own last epoch).

    On every GPU there is, or on every machine TF_CONFIG names (see
    musicgen/distributed.py); only the chief writes the run folder. `callbacks`
    are more Keras callbacks, called after the run's own (which have written the
    epoch's checkpoint and progress by then): a search can stop a run early with
    `model.stop_training`.
    """
    if mixed_precision and not spec.mixed_precision:
        raise UserError(f"mixed precision is not available for the {spec.name} model, which trains in float32 only")
    strategy, device = distributed.choose_strategy()  # first: a cluster must be set up before any tensor exists
    vocabulary, index = read_index(data_dir)
    if not any(entry["pieces"] for entry in index["validation"]):
        raise UserError(f"the validation split in {data_dir} is empty; preprocess more files "
                        "or a larger validation fraction")
    if init_from is not None:
        check_parent(init_from, spec, vocabulary)
    run_dir = Path(run_dir)
    chief = distributed.is_chief(strategy)
    if restart and chief and run_dir.exists():
        for name in ("last.keras", "best.keras", RUN_CONFIG_FILE, "history.csv", "loss.png"):
            (run_dir / name).unlink(missing_ok=True)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
    if not spec.keras:  # counted, not fitted: seconds, so it is simply done again
        return _train_without_keras(spec, config, data_dir, run_dir, log)

    previous_policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return _train(spec, config, vocabulary, index, data_dir, run_dir, strategy, device, chief, log, verbose,
                      list(callbacks), init_from, freeze)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(spec, config, vocabulary, index, data_dir, run_dir, strategy, device, chief, log, verbose, extra_callbacks,
           init_from, freeze):
    mixed_precision = keras.mixed_precision.global_policy().name == "mixed_float16"
    train_shards, validation_shards = (shard_files(data_dir, index[name]) for name in ("train", "validation"))
    # Read before training starts so that a shard of another vocabulary is refused with a message, not midway.
    tempos = [read_shard(shard.path, vocabulary, fields=("tempos",)).tempos for shard in train_shards]
    for shard in validation_shards:
        read_shard(shard.path, vocabulary, fields=())
    batch_size = distributed.global_batch_size(config["batch_size"], strategy)
    steps_per_epoch = batch_count(train_shards, config["seq_len"], batch_size, shuffle=True)
    local_run = (run_dir / RUN_CONFIG_FILE).exists() and (run_dir / "last.keras").exists()
    resuming = distributed.any_worker(strategy, local_run)
    if resuming and not local_run:
        raise UserError(f"the chief resumes {run_dir}, which this worker cannot see: to resume training on several "
                        "machines, keep the checkpoints folder on a file system they share")
    with strategy.scope():
        if resuming:
            run_config = read_run_config(run_dir)
            check_resumable(run_dir, run_config, spec, config, vocabulary, mixed_precision)
            run_config["config"] = config
            progress = run_config["progress"]
            if finished(run_config):
                log(f"{run_dir} has finished training ({progress['epochs_completed']} epochs, best validation loss "
                    f"{progress['best_val_loss']:.4f}); restart it to train again, or allow more epochs to go on")
                return run_config
            model = load_model(run_dir / "last.keras")
            log(f"resuming {run_dir} after epoch {progress['epochs_completed']}")
        else:
            keras.utils.set_random_seed(config["random_seed"])
            run_config = new_run_config(spec, config, vocabulary, data_dir, _median_tempo(np.concatenate(tempos)),
                                        read_recipe(data_dir))
            run_config["mixed_precision"] = mixed_precision
            model = spec.build(len(vocabulary), config)
            if init_from is not None:
                run_config["parent"] = start_from(model, init_from, freeze)
                log(f"starting from the weights of {init_from}"
                    + (f", its lowest {freeze} layers with weights frozen" if freeze else ""))
            spec.compile_model(model, OptimizerSettings.from_config(config, steps_per_epoch))
            if chief:
                write_vocabulary(run_dir, vocabulary)
                write_json(run_dir / RUN_CONFIG_FILE, run_config)

    log(device)
    if mixed_precision and not tf.config.list_physical_devices("GPU"):
        log("warning: mixed precision helps on GPUs; on a CPU it makes training slower, not faster")
    tokens = {name: sum(entry["tokens"] for entry in index[name]) for name in ("train", "validation")}
    log(f"{spec.name}: {model.count_params():,} parameters; vocabulary {len(vocabulary)} tokens; "
        f"{tokens['train']:,} training tokens, {tokens['validation']:,} validation tokens")
    epochs_completed = run_config["progress"]["epochs_completed"]
    train_data = windows(train_shards, config["seq_len"], batch_size, vocabulary.pad_id, shuffle=True,
                         seed=config["random_seed"] + epochs_completed,
                         prefix=ControlPrefix.of(vocabulary, config["label_dropout"]),
                         infilling=Infilling.of(vocabulary, config["infill_rate"]),
                         transposition=Transposition.of(vocabulary, config["transpose"]))
    validation_data = windows(validation_shards, config["seq_len"], batch_size, vocabulary.pad_id, shuffle=False,
                              prefix=ControlPrefix.of(vocabulary))
    callbacks = [RunCheckpoint(run_dir, run_config, write_files=chief), TimeLeft(run_config, log)]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    callbacks += extra_callbacks
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


# The window a corpus gets holds this share of its training pieces whole, where the model allows so long a window.
WHOLE_PIECES_SHARE = 0.9
SHORTEST_WINDOW = 128


def corpus_window(data_dir, longest):
    """(seq_len, a line saying why): the shortest power of two, from SHORTEST_WINDOW up to `longest` tokens,
    that holds WHOLE_PIECES_SHARE of the training pieces of `data_dir` whole (or `longest`)."""
    vocabulary, index = read_index(data_dir)
    lengths = np.concatenate([np.diff(read_shard(shard.path, vocabulary, fields=("offsets",)).offsets)
                              for shard in shard_files(data_dir, index["train"])] or [np.zeros(0, np.int64)])
    if not len(lengths):
        return SHORTEST_WINDOW, f"window {SHORTEST_WINDOW} tokens (no training pieces to choose it from)"
    wanted = float(np.quantile(lengths, WHOLE_PIECES_SHARE))
    window = SHORTEST_WINDOW
    while window < wanted and window < longest:
        window *= 2
    window = min(window, longest)
    return window, (f"window {window} tokens, chosen from the corpus: {np.mean(lengths <= window):.0%} of the "
                    f"training pieces fit in one whole (at most {longest} tokens for this model; --seq-len sets it)")


def windows_per_batch(spec, window):
    """The batch size, in windows of `window` tokens, that holds as many tokens as the model's default batch of
    its default windows: a longer window then changes what each window sees, not how many tokens a step learns
    from nor how many steps an epoch takes."""
    defaults = hyperparameters.defaults(spec)
    return max(1, round(defaults["batch_size"] * defaults["seq_len"] / window))


def summarize(spec, config, data_dir, run_dir, log=print):
    """Print the model's layers (for the data's vocabulary) and draw them in <run_dir>/model.png with Keras'
    plot_model, which needs pydot and Graphviz: without them, one line says so, and the summary stands."""
    if not spec.keras:
        raise UserError(f"the {spec.name} model is counted, not built of layers: it has none to show")
    vocabulary, _ = read_index(data_dir)
    model = spec.build(len(vocabulary), config)
    model.summary(print_fn=log)
    path = Path(run_dir) / "model.png"
    try:
        with atomic_path(path) as temporary:
            keras.utils.plot_model(model, to_file=str(temporary), show_shapes=True, show_layer_names=True)
    except (ImportError, OSError) as error:
        log(f"model.png not drawn: {str(error).splitlines()[0]} (install.sh installs Graphviz where apt-get exists)")
        return
    log(f"layers drawn in {path}")


def start_from(model, parent_dir, freeze=0):
    """Give `model` the weights of the run in `parent_dir` and freeze its lowest `freeze` layers with weights (the
    embedding first); returns what run_config.json records of the parent."""
    parent_model = load_model(Path(parent_dir) / "best.keras", compile=False)
    try:
        model.set_weights(parent_model.get_weights())
    except ValueError:
        raise UserError(f"the settings make another model than {parent_dir}'s (its weights do not fit); keep its "
                        "architecture settings (layers, units, embedding_dim, ...) when fine-tuning") from None
    weighted = [layer for layer in model.layers if layer.weights]
    if not 0 <= freeze < len(weighted):
        raise UserError(f"--freeze must be 0 to {len(weighted) - 1} (this model has {len(weighted)} layers with "
                        f"weights: {', '.join(layer.name for layer in weighted)}), got {freeze}")
    for layer in weighted[:freeze]:
        layer.trainable = False
    parent = read_run_config(parent_dir)
    return {"run": str(parent_dir), "best_val_loss": parent["progress"]["best_val_loss"], "data": parent.get("data"),
            "frozen_layers": [layer.name for layer in weighted[:freeze]]}


def _median_tempo(tempos):
    return float(np.median(tempos)) if len(tempos) else 120.0


def _train_without_keras(spec, config, data_dir, run_dir, log):
    vocabulary, splits = load_processed(data_dir, ("train", "validation"))
    run_config = new_run_config(spec, config, vocabulary, data_dir, _median_tempo(splits["train"].tempos),
                                read_recipe(data_dir))
    write_vocabulary(run_dir, vocabulary)
    row = spec.train(config, vocabulary, splits, run_dir, log)
    run_config["progress"].update(epochs_completed=1, best_epoch=1, best_val_loss=row["val_loss"],
                                  best_val_accuracy=row.get("val_accuracy"), history=[row])
    write_json(run_dir / RUN_CONFIG_FILE, run_config)
    write_history(run_dir, [row])
    return run_config
