"""Training on several machines (or GPUs) with TensorFlow's own tf.distribute.

Every machine runs the same command with its own TF_CONFIG, for two workers:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'

and "index": 1 on the second. choose_strategy() then returns a
MultiWorkerMirroredStrategy: every worker holds a full copy of the model, works
on its own share of each global batch, and the gradients are summed across all
replicas before every update, so the copies stay identical.

Keras 3.15's model.fit cannot train on more than one replica
(keras-team/keras#20585, tensorflow/tensorflow#72388): it all-reduces the first
batch to build the model, which fails on an (inputs, targets, weights) tuple
and, under MirroredStrategy, on a batch that does not split evenly; and it
reduces each step's scalar logs along an axis they do not have.
fit_multi_worker is the epoch loop for those cases, on tf.distribute's own API.
"""

import itertools
import json
import os
import time

import keras
import tensorflow as tf

from musicgen.errors import UserError

TASK_TYPES = ("chief", "worker")  # the task types MultiWorkerMirroredStrategy trains with


def cluster_size():
    """How many tasks TF_CONFIG's cluster names (0 without TF_CONFIG); a malformed TF_CONFIG is a UserError.

    Checked here because TensorFlow reads it with a traceback, or not at all.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return 0
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error})") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise UserError('TF_CONFIG must be a JSON object with a "cluster", e.g. {"cluster": {"worker": '
                        '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    for task_type, addresses in cluster.items():
        if task_type not in TASK_TYPES:
            raise UserError(f"TF_CONFIG's cluster may name only {' and '.join(TASK_TYPES)} tasks, not {task_type!r}")
        if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
            raise UserError(f'TF_CONFIG\'s cluster["{task_type}"] must be a list of "host:port" addresses')
    task = tf_config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise UserError(f'TF_CONFIG must name this machine\'s task, e.g. "task": {{"type": "worker", "index": 0}}, '
                        f"with a type from its cluster ({', '.join(cluster)})")
    index, count = task.get("index"), len(cluster[task["type"]])
    if type(index) is not int or not 0 <= index < count:
        raise UserError(f'TF_CONFIG\'s task index must be a whole number from 0 to {count - 1} (its cluster has '
                        f'{count} {task["type"]} addresses), got {index!r}')
    return sum(len(addresses) for addresses in cluster.values())


def choose_strategy():
    """(strategy, one line describing it): several workers, else several GPUs, else the one device.

    Call it before anything else touches TensorFlow: a MultiWorkerMirroredStrategy
    has to set up its collective operations before the first tensor exists.
    """
    workers = cluster_size()
    if workers > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        return strategy, (f"training on {workers} workers, {strategy.num_replicas_in_sync} replicas in all; this is "
                          f"{resolver.task_type} {resolver.task_id}")
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"training on {len(gpus)} GPUs ({', '.join(g.name for g in gpus)})"
    if gpus:
        return tf.distribute.get_strategy(), f"training on GPU ({gpus[0].name})"
    return tf.distribute.get_strategy(), "training on CPU (no GPU visible to TensorFlow)"


def is_chief(strategy):
    """True on the one worker that writes the run folder: "chief", or "worker" 0 when the cluster has no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def needs_fit_multi_worker(strategy):
    """Whether `strategy` splits each batch across several replicas (workers or GPUs), which model.fit cannot do."""
    return strategy.num_replicas_in_sync > 1


def global_batch_size(per_replica, strategy):
    """The batch size to give the datasets: every step takes `per_replica` windows on each replica."""
    return per_replica * strategy.num_replicas_in_sync


def whole_shares(dataset, replicas):
    """`dataset`'s global batches cut to a multiple of `replicas` windows, so that no replica's share is empty.

    tf.distribute hands a replica an empty share when a pass ends in a batch too
    small to go round, and not every model survives one (a convolution fails on
    it, the gan's critic too, and the vae's means over it are NaN). This drops at
    most replicas - 1 windows of each pass; a batch with fewer is dropped whole.
    """

    def trim(*batch):
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        return tf.nest.map_structure(lambda tensor: tensor[:size - size % replicas], batch)

    return dataset.map(trim).filter(lambda *batch: tf.shape(tf.nest.flatten(batch)[0])[0] > 0)


def _distribute(strategy, dataset):
    """`dataset` of global batches as a distributed dataset, split batch by batch across the workers.

    This is the per-worker input sharding: every worker runs the whole input
    pipeline, which cuts the same windows in the same order from the same seed,
    and keeps only its replicas' parts of each global batch. (tf.data's default,
    AUTO, would try to give each worker its own files, but windows() reads its
    shard files inside a numpy_function, where tf.data cannot see them.)
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = whole_shares(dataset, strategy.num_replicas_in_sync).with_options(options)
    return strategy.experimental_distribute_dataset(batches)


def any_worker(strategy, flag):
    """True on every worker when `flag` is true on any of them (to share the chief's decisions, say).

    Every worker has to call it at the same point: it waits for all of them.
    """
    votes = strategy.experimental_distribute_values_from_function(lambda context: tf.constant(int(flag)))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None) > 0)


def fit_multi_worker(model, strategy, train_data, validation_data, epochs, initial_epoch=0, steps_per_epoch=None,
                     validation_steps=None, callbacks=(), log=print):
    """model.fit for several replicas (see needs_fit_multi_worker); returns each epoch's logs, alike on every worker.

    The model must have been built (or loaded) and compiled inside `strategy.scope()`.
    The datasets yield batches of the global batch size (see global_batch_size);
    they are split across the replicas here (see _distribute and whole_shares).
    An epoch is one pass over `train_data`, or its first `steps_per_epoch`
    batches; `validation_steps` likewise. The logs (loss, metrics, val_loss,
    val_...) are those of all replicas together. The callbacks get
    on_train_begin, on_epoch_begin, on_epoch_end(epoch, logs) and on_train_end
    (no batch-level calls), and may set `model.stop_training`: when a callback on
    any worker does, every worker stops after that epoch, so a callback that
    stops early (RunCheckpoint) may run on the chief alone.
    """
    if model.distribute_strategy is not strategy:
        raise ValueError("fit_multi_worker needs a model built and compiled inside strategy.scope()")
    with strategy.scope():
        build_for_training(model, train_data.element_spec)
    train_batches = _distribute(strategy, train_data)
    validation_batches = None if validation_data is None else _distribute(strategy, validation_data)
    train_step = _on_every_replica(strategy, model.train_step, train_batches)
    test_step = None if validation_batches is None else _on_every_replica(strategy, model.test_step,
                                                                          validation_batches)
    callbacks = keras.callbacks.CallbackList(list(callbacks), model=model)
    history = []
    logs = {}
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        started = time.monotonic()
        callbacks.on_epoch_begin(epoch)
        steps, logs = _run_epoch(model, train_step, train_batches, steps_per_epoch, "training")
        if validation_batches is not None:
            _, validation_logs = _run_epoch(model, test_step, validation_batches, validation_steps, "validation")
            logs.update({f"val_{name}": value for name, value in validation_logs.items()})
        callbacks.on_epoch_end(epoch, logs)
        history.append(logs)
        log(f"epoch {epoch + 1}/{epochs}: {steps} steps, {time.monotonic() - started:.1f} s - "
            + " - ".join(f"{name} {value:.4f}" for name, value in logs.items()))
        model.stop_training = any_worker(strategy, model.stop_training)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return history


def build_for_training(model, batch_spec):
    """Create the variables of a compiled model, its metrics and its optimizer's slots from a batch's spec.

    They must exist before the train step is traced on several replicas. This is
    how model.fit creates them, and Keras has no public way to do it without a
    batch in hand: the one use of a private Keras method in this project. Its
    test (tests/test_distributed.py) fails loudly on a Keras version without it,
    and requirements.txt bounds Keras to the versions tested.
    """
    model._symbolic_build(data_batch=batch_spec)


def _on_every_replica(strategy, step, batches):
    """`step` (train_step or test_step) run on each replica's part of a distributed batch.

    Traced once, for any batch size, rather than again for the smaller last batch of a pass.
    """

    @tf.function(input_signature=[batches.element_spec])
    def run(batch):
        strategy.run(step, args=(batch,))

    return run


def _run_epoch(model, step, batches, steps, purpose):
    """(steps taken, metrics) for one pass over `batches`, at most `steps` of them; metrics summed over replicas."""
    model.reset_metrics()
    taken = 0
    for batch in itertools.islice(batches, steps):
        step(batch)
        taken += 1
    if taken == 0:
        replicas = model.distribute_strategy.num_replicas_in_sync
        raise UserError(f"the {purpose} data has fewer windows than the {replicas} replicas training on it; "
                        "give it more tokens or train on fewer replicas")
    # Read in cross-replica context: each metric's totals are summed over every replica of every worker.
    return taken, {name: float(value) for name, value in model.get_metrics_result().items()}
