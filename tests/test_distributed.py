"""Training across workers: two processes on this machine train one model, in step; TF_CONFIG is checked."""
import json
import os
import socket
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, TINY_LSTM
from distributed_worker import split_tokens

from models import registry
from musicgen import distributed
from musicgen.dataset import windows
from musicgen.errors import UserError
from musicgen.hyperparameters import TRAINING_DEFAULTS
from musicgen.optimizer import OptimizerSettings, compile_model
from musicgen.runs import RUN_CONFIG_FILE
from musicgen.saving import load_model

WORKER = ROOT / "tests" / "distributed_worker.py"
WORKER_TIMEOUT = 300  # seconds for both workers together; they took 30-60 on a busy 2-core machine


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(addresses, index):
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _run_workers(output, command):
    """Run `command` as two workers on this machine; returns their logs, or fails with them (killing any left)."""
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes, logs = [], []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": _tf_config(addresses, index), "CUDA_VISIBLE_DEVICES": "",
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        logs.append(output / f"worker_{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + WORKER_TIMEOUT
    try:
        codes = [process.wait(timeout=max(1.0, deadline - time.monotonic())) for process in processes]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    assert codes is not None, f"the workers did not finish within {WORKER_TIMEOUT} s\n{tails}"
    assert codes == [0, 0], f"exit codes {codes}\n{tails}"
    return [log.read_text() for log in logs]


def _weights(path):
    with np.load(path) as arrays:
        count = len(arrays.files) // 2
        return [arrays[f"initial_{i}"] for i in range(count)], [arrays[f"final_{i}"] for i in range(count)]


@pytest.mark.slow
def test_two_workers_train_one_model_and_only_the_chief_writes(tmp_path):
    changes = {key: TINY_LSTM[key] for key in ("units", "embedding_dim", "layers", "seq_len", "batch_size")}
    _run_workers(tmp_path, [sys.executable, str(WORKER), str(tmp_path), "lstm", json.dumps(changes)])
    reports = [json.loads((tmp_path / f"worker_{index}.json").read_text()) for index in range(2)]

    assert [report["replicas"] for report in reports] == [2, 2]
    assert [report["is_chief"] for report in reports] == [True, False]
    assert "2 workers" in reports[0]["description"]
    # The chief asked to stop after the first of two epochs, and the other worker stopped with it.
    assert [len(report["history"]) for report in reports] == [1, 1]
    chief_logs, other_logs = (report["history"][0] for report in reports)
    assert set(chief_logs) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert other_logs == pytest.approx(chief_logs, rel=1e-6), "both workers log the metrics of all replicas"

    (chief_initial, chief_final), (other_initial, other_final) = (
        _weights(tmp_path / f"worker_{index}.npz") for index in range(2))
    for chief_weight, other_weight in zip(chief_initial + chief_final, other_initial + other_final):
        np.testing.assert_allclose(other_weight, chief_weight, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(before, after) for before, after in zip(chief_initial, chief_final))

    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "run", "worker_0.json", "worker_0.log", "worker_0.npz", "worker_1.json", "worker_1.log", "worker_1.npz"]
    run_config = json.loads((tmp_path / "run" / RUN_CONFIG_FILE).read_text())
    assert run_config["progress"]["epochs_completed"] == 1

    # The validation loss is that of both workers' shares: what one process measures on the two windows
    # left once the batch of three is cut to whole shares.
    seq_len = changes["seq_len"]
    validation = windows([split_tokens(seq_len)[1][:2 * seq_len + 1]], seq_len, 16, pad_id=0, shuffle=False)
    measured = load_model(tmp_path / "run" / "last.keras").evaluate(validation, verbose=0,
                                                                              return_dict=True)
    assert chief_logs["val_loss"] == pytest.approx(measured["loss"], rel=1e-5)
    assert chief_logs["val_accuracy"] == pytest.approx(measured["accuracy"], rel=1e-5)


@pytest.mark.slow
def test_train_py_on_two_workers_trains_one_run_that_the_chief_writes(processed, tmp_path):
    command = [sys.executable, "train.py", "--model", "lstm", "--data", str(processed),
               "--checkpoints", str(tmp_path / "checkpoints")]
    for key, value in TINY_LSTM.items():
        command += ["--" + key.replace("_", "-"), str(value)]
    chief_log, other_log = _run_workers(tmp_path, command)

    assert "training on 2 workers" in chief_log and "this is worker 0" in chief_log
    assert "this is worker 1" in other_log
    run = tmp_path / "checkpoints" / "lstm"
    assert sorted(path.name for path in run.iterdir()) == [
        "best.keras", "history.csv", "last.keras", "logs", "loss.png", "run_config.json", "vocab.json"]
    progress = json.loads((run / RUN_CONFIG_FILE).read_text())["progress"]
    assert progress["epochs_completed"] == 1
    assert f"best validation loss {progress['best_val_loss']:.4f}" in other_log, "both workers measured the same"


@pytest.mark.parametrize("tf_config, complaint", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", '"cluster"'),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}}', "task"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "chief", "index": 0}}', "task"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 2}}', "index"),
    ('{"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}', "list"),
    ('{"cluster": {"ps": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}',
     "'ps'"),
])
def test_a_malformed_tf_config_is_one_line_user_error(monkeypatch, tf_config, complaint):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(UserError, match=complaint) as error:
        distributed.choose_strategy()
    assert "\n" not in str(error.value)


def test_without_a_cluster_training_stays_on_this_machine_and_is_its_own_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy, description = distributed.choose_strategy()
    assert description.startswith("training on ")
    assert distributed.is_chief(strategy)
    assert not distributed.needs_fit_multi_worker(strategy)
    assert distributed.global_batch_size(8, strategy) == 8 * strategy.num_replicas_in_sync

    monkeypatch.setenv("TF_CONFIG", _tf_config(["127.0.0.1:1"], 0))  # a cluster of one is no cluster
    strategy, _ = distributed.choose_strategy()
    assert not distributed.needs_fit_multi_worker(strategy)
    assert distributed.is_chief(strategy)


@pytest.mark.parametrize("cluster, task_type, task_id, chief", [
    ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
    ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
    ({"chief": ["a:1"], "worker": ["b:1"]}, "chief", 0, True),
    ({"chief": ["a:1"], "worker": ["b:1"]}, "worker", 0, False),
])
def test_the_chief_is_the_chief_task_else_worker_0(cluster, task_type, task_id, chief):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    assert distributed.is_chief(types.SimpleNamespace(cluster_resolver=resolver)) == chief


def test_whole_shares_cuts_each_batch_to_a_multiple_of_the_replicas():
    batches = tf.data.Dataset.range(11).batch(4).map(lambda x: (x, -x))  # 4, 4, 3 windows
    assert [len(x) for x, _ in distributed.whole_shares(batches, 2)] == [4, 4, 2]
    assert [len(x) for x, _ in distributed.whole_shares(batches, 4)] == [4, 4], "a batch too small is dropped"


class _Recorder(keras.callbacks.Callback):
    def __init__(self, stop_after_epoch):
        super().__init__()
        self.calls = []
        self.stop_after_epoch = stop_after_epoch

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")
        self.model.stop_training = epoch == self.stop_after_epoch

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_fit_multi_worker_drives_the_callbacks_and_stops_when_one_asks():
    strategy, _ = distributed.choose_strategy()
    hp = {**TRAINING_DEFAULTS, **registry.get("lstm").defaults, **TINY_LSTM}
    tokens = np.random.default_rng(0).integers(1, 30, 400)
    train_data = windows([tokens], hp["seq_len"], 4, pad_id=0, shuffle=True)
    validation_data = windows([tokens[:100]], hp["seq_len"], 4, pad_id=0, shuffle=False)
    with strategy.scope():
        model = registry.get("lstm").build(30, hp)
        compile_model(model, OptimizerSettings(learning_rate=hp["learning_rate"]))
    recorder, lines = _Recorder(stop_after_epoch=2), []

    history = distributed.fit_multi_worker(model, strategy, train_data, validation_data, epochs=5, initial_epoch=1,
                                           steps_per_epoch=2, callbacks=[recorder], log=lines.append)

    names = "['accuracy', 'loss', 'val_accuracy', 'val_loss']"
    assert recorder.calls == ["train_begin", "epoch_begin 1", f"epoch_end 1 {names}", "epoch_begin 2",
                              f"epoch_end 2 {names}", "train_end"]
    assert len(history) == 2 and all(np.isfinite(list(logs.values())).all() for logs in history)
    assert lines[0].startswith("epoch 2/5: 2 steps")
    assert model.optimizer.iterations.numpy() == 4


def test_build_for_training_creates_model_metric_and_optimizer_variables_before_any_step():
    """The one private Keras call (see distributed.build_for_training): this fails on a Keras without it."""
    hp = {**TRAINING_DEFAULTS, **registry.get("lstm").defaults, **TINY_LSTM}
    model = registry.get("lstm").build(30, hp)
    compile_model(model, OptimizerSettings(learning_rate=hp["learning_rate"]))
    data = windows([np.arange(1, 200) % 29 + 1], hp["seq_len"], 4, pad_id=0, shuffle=False)
    assert not model.optimizer.built and not all(metric.variables for metric in model.metrics)
    distributed.build_for_training(model, data.element_spec)
    assert model.optimizer.built and len(model.optimizer.variables) > len(model.trainable_variables)
    assert all(metric.variables for metric in model.metrics), "the loss and the compiled metrics have their variables"
