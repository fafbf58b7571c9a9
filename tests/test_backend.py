import os
import re
import subprocess
import sys

import pytest

from musicgen.backend import _noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = ["absl::InitializeLog", "oneDNN", "cuda drivers", "cuInit", "cpu_feature_guard", "Unable to register"]
FIT = """
from musicgen.backend import import_tensorflow
import_tensorflow()
import keras, numpy as np
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile("sgd", "mse")
model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
print("ok")
"""


def _run(code, **environment):
    """`code` in a fresh Python at the repository root, with TF_CPP_MIN_LOG_LEVEL only as given."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **environment},
                          capture_output=True, text=True, timeout=300)


def test_a_model_trains_without_tensorflow_noise_on_stderr():
    result = _run(FIT)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert not [word for word in NOISE if word in result.stderr], result.stderr


def test_a_python_error_after_the_quiet_import_still_shows():
    result = _run(FIT.replace('print("ok")', 'raise ValueError("boom")'))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and 'ValueError: boom' in result.stderr


def test_a_level_the_user_chose_is_respected():
    result = _run(FIT, TF_CPP_MIN_LOG_LEVEL="0")  # everything TensorFlow logs, INFO included
    assert result.returncode == 0, result.stderr
    assert re.search(r"^I\d{4} ", result.stderr, re.MULTILINE), result.stderr


@pytest.mark.parametrize("line, level, noise", [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", 2, True),
    ("I0000 00:00:1796211325.762231    3620 port.cc:153] oneDNN custom operations are on.\n", 2, True),
    ("I0000 00:00:1796211325.762524    3620 cudart_stub.cc:31] Could not find cuda drivers on your machine\n", 1, True),
    ("W0612 10:01:02.345678    3620 py_utils.cc:38] TF-TRT Warning: Could not find TensorRT\n", 2, True),
    ("W0612 10:01:02.345678    3620 py_utils.cc:38] TF-TRT Warning: Could not find TensorRT\n", 1, False),
    ("E0000 00:00:1796211328.719693    3620 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
     "Failed call to cuInit: UNKNOWN ERROR (303)\n", 2, True),
    ("E0612 10:01:02.345678    3620 cuda_driver.cc:282] failed call to cuInit: CUDA_ERROR_NO_DEVICE: "
     "no CUDA-capable device is detected\n", 2, True),
    ("E0612 10:01:02.345678    3620 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register "
     "factory for plugin cuDNN when one has already been registered\n", 2, True),
    ("E0612 10:01:02.345678    3620 cuda_driver.cc:282] failed call to cuInit: CUDA_ERROR_SYSTEM_DRIVER_MISMATCH\n",
     2, False),
    ("E0612 10:01:02.345678    3620 cuda_dnn.cc:535] Loaded runtime CuDNN library: 8.6.0 but source was "
     "compiled with: 8.9.4.\n", 2, False),
    ("/x/y.py:3: UserWarning: careful\n", 3, False),
    ("Traceback (most recent call last):\n", 3, False),
])
def test_noise_is_what_the_level_hides_and_no_gpu_reports(line, level, noise):
    assert _noise(line, level) is noise
