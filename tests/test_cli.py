"""The first minute of a new user: --help and wrong arguments answer at once, runs show no TensorFlow noise."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

import preprocess
from musicgen.errors import UserError
from musicgen.key_value import key_value, key_values

NOISE = ("absl::InitializeLog", "oneDNN", "cuda drivers", "cuInit", "cpu_feature_guard", "Unable to register")
# Each command must end (exit 0 for --help, 2 for a wrong argument) without importing TensorFlow, which alone
# takes seconds: that is what answering at once means, measured without a clock.
WITHOUT_TENSORFLOW = [([path.name, "--help"], 0) for path in sorted(ROOT.glob("*.py"))] + [
    (["train.py", "--model", "wavenet"], 2),
    (["generate.py", "--checkpoint", "missing/"], 2), (["generate.py", "--temperature", "0"], 2),
    (["generate.py", "--infill", "song.mid", "--bars", "5-8"], 2),
    (["evaluate.py", "--checkpoint", "missing/"], 2), (["preprocess.py", "--input", "missing/"], 2),
    (["crossval.py", "--data", "missing/"], 2), (["app.py", "--port", "70000"], 2), (["app.py", "--workers", "0"], 2),
]
PROBE = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    code = exit.code or 0
print("tensorflow imported" if "tensorflow" in sys.modules else "no tensorflow", code)
"""


@pytest.mark.parametrize("command, exit_code", WITHOUT_TENSORFLOW, ids=[" ".join(c) for c, _ in WITHOUT_TENSORFLOW])
def test_help_and_wrong_arguments_answer_without_loading_tensorflow(command, exit_code):
    result = subprocess.run([sys.executable, "-c", PROBE, *command], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == f"no tensorflow {exit_code}", result.stderr
    if exit_code:
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, result.stderr


def test_a_short_run_shows_no_tensorflow_noise(processed, tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    for command in (["train.py", "--model", "ngram", "--data", str(processed), "--checkpoints", str(tmp_path)],
                    ["generate.py", "--checkpoint", str(tmp_path / "ngram"), "--seed", "C4 E4", "--length", "4",
                     "--output", str(tmp_path / "out.mid")]):
        result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, env=environment)
        assert result.returncode == 0, result.stderr
        assert not [line for line in result.stderr.splitlines() if any(noise in line for noise in NOISE)], result.stderr


def test_preprocessing_uses_every_core_it_may_by_default():
    assert preprocess.parse_args([]).workers == len(os.sched_getaffinity(0))


def test_name_value_items_are_read_alike_for_every_flag():
    assert key_values([" key =D minor", "density=high"], "--condition") == {"key": "D minor", "density": "high"}
    assert key_value("style=^(jigs|reels)=x", "--label-pattern") == ("style", "^(jigs|reels)=x"), "the first = splits"
    for item in ("dropout", "=0.3", "dropout=", "dropout= "):
        with pytest.raises(UserError, match=r"--set takes KEY=VALUE, e\.g\. dropout=0\.3; got"):
            key_value(item, "--set", example="dropout=0.3")
    with pytest.raises(UserError, match="--condition gives key twice"):
        key_values(["key=C major", "key = D minor"], "--condition")
