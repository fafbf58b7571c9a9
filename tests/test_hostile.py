"""Hostile and pathological inputs, interrupted runs, untrusted checkpoints: nothing lost, nobody in."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import hostile
import keras
import pandas as pd
import pytest
from conftest import ROOT, TINY_LSTM

import preprocess
from models import registry
from musicgen.dataset import load_processed
from musicgen.errors import UserError
from musicgen.saving import load_model

GOOD_ABC = "X:{n}\nT:Tune {n}\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|\n"
# A header field inside a music line, as in tune 'Guns of the Magnificent Seven' of the MIT lab's irish.abc
MALFORMED_ABC = "X:2\nT:Inline meter\nM:4/4\nL:1/8\nK:A Dorian\nEAAG ABcA|EAFA GEDG|\nM:3/4 egdB A2| M:4/4 egdB GABd|\n"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    good = [hostile.good_tune(folder / name) for name in
            ("plain.mid", "with spaces.mid", "ünïcödé.mid", "UPPER.MID", "deep/nested/folder/tune.midi")]
    (folder / "zero bytes.mid").write_bytes(b"")
    (folder / "text.mid").write_text("This is a text file, not MIDI.\n")
    hostile.random_bytes(folder / "random.mid")
    hostile.header_without_tracks(folder / "no_tracks.mid")
    hostile.truncated(folder / "truncated.mid")
    hostile.smpte_division(folder / "smpte.mid")
    kept_oddities = {name: getattr(hostile, name)(folder / f"{name}.mid") for name in
                     ("zero_tempo", "many_tempo_changes", "type_2", "zero_length_and_restruck_notes", "ten_hours_apart")}
    hostile.drums_only(folder / "drums_only.mid")
    hostile.huge(folder / "huge.mid", notes=120_000)
    (folder / "tunes.abc").write_text(GOOD_ABC.format(n=1) + "\n" + MALFORMED_ABC + "\n" + GOOD_ABC.format(n=3))
    (folder / "truncated.musicxml").write_text(hostile.TRUNCATED_MUSICXML)
    (folder / "gone.mid").symlink_to(folder / "no_such_file.mid")
    (folder / "deep" / "loop").symlink_to(folder, target_is_directory=True)
    output = folder.parent / (folder.name + "-out")
    started = time.time()
    preprocess.main(["--input", str(folder), "--output", str(output), "--workers", "2", "--max-notes", "100000",
                     "--min-notes", "1"])
    manifest = pd.read_csv(output / "manifest.csv", keep_default_na=False)
    return {"folder": folder, "output": output, "seconds": time.time() - started, "good": good,
            "kept_oddities": kept_oddities, "manifest": manifest.set_index("source")}


def row(run, name):
    return run["manifest"].loc[str(run["folder"] / name)]


def test_every_good_file_is_kept(hostile_run):
    for path in hostile_run["good"] + list(hostile_run["kept_oddities"].values()):
        assert hostile_run["manifest"].loc[str(path), "status"] == "kept", path


@pytest.mark.parametrize("name, status, reason", [
    ("zero bytes.mid", "failed", "empty file (0 bytes)"),
    ("text.mid", "failed", "not a MIDI file (no MThd header)"),
    ("random.mid", "failed", "not a MIDI file"),
    ("no_tracks.mid", "skipped", "no notes"),
    ("truncated.mid", "failed", "truncated or damaged MIDI file"),
    ("smpte.mid", "failed", "SMPTE time division"),
    ("drums_only.mid", "skipped", "only drum notes (use --keep-drums to keep them)"),
    ("huge.mid", "skipped", "120,000 notes, more than --max-notes 100,000"),
    ("truncated.musicxml", "failed", "music21 could not parse it"),
    ("gone.mid", "failed", "cannot read file"),
])
def test_every_bad_file_has_a_row_with_a_reason(hostile_run, name, status, reason):
    assert row(hostile_run, name)["status"] == status
    assert reason in row(hostile_run, name)["reason"]


def test_abc_tune_with_a_malformed_header_line_loses_only_itself(hostile_run):
    tunes = hostile_run["manifest"][hostile_run["manifest"].index.str.contains("tunes.abc#")]
    assert list(tunes.status) == ["kept", "failed", "kept"]


def test_pathological_timing_is_tamed(hostile_run):
    assert float(row(hostile_run, "zero_tempo.mid")["tempo_bpm"]) == 120.0  # 0 microseconds per beat -> the default
    ten_hours = row(hostile_run, "ten_hours_apart.mid")
    assert int(ten_hours["silences_shortened"]) == 1 and float(ten_hours["duration_quarters"]) < 40
    assert int(row(hostile_run, "zero_length_and_restruck_notes.mid")["notes"]) > 10


def test_symlinked_folder_loop_is_not_followed_and_the_run_ends(hostile_run):
    assert not any("/loop/" in source for source in hostile_run["manifest"].index)
    assert hostile_run["seconds"] < 120


def test_file_over_the_time_limit_is_reported_and_the_rest_kept(tmp_path):
    (tmp_path / "tunes.abc").write_text("\n".join(GOOD_ABC.format(n=n) for n in range(1, 400)))  # many seconds
    hostile.good_tune(tmp_path / "fast.mid")
    started = time.time()
    preprocess.main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--timeout", "1"])
    assert time.time() - started < 30
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("source")
    assert "longer than the --timeout of 1 s" in manifest.loc[str(tmp_path / "tunes.abc"), "reason"]
    assert manifest.loc[str(tmp_path / "fast.mid"), "status"] == "kept"


def test_file_over_the_size_limit_is_not_read(tmp_path):
    hostile.good_tune(tmp_path / "a.mid")
    hostile.huge(tmp_path / "big.mid", notes=20_000)
    preprocess.main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--max-file-mb", "0.05"])
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("source")
    assert "over the --max-file-mb limit" in manifest.loc[str(tmp_path / "big.mid"), "reason"]


def _processes_naming(path):
    """Process ids whose command line names `path` (Linux /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(path).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass  # it ended meanwhile
    return found


def _command(script, *args):
    return [sys.executable, str(ROOT / script), *map(str, args)]


@pytest.mark.slow
def test_killed_preprocess_finishes_on_rerun_without_redoing_finished_files(tmp_path):
    folder = tmp_path / "abc"
    for i in range(40):  # music21 takes a while per ABC file: time to kill the run midway
        (folder / f"{i:02d}.abc").parent.mkdir(exist_ok=True)
        (folder / f"{i:02d}.abc").write_text("\n".join(GOOD_ABC.format(n=n) for n in range(1, 4)))
    output = tmp_path / "out"
    process = subprocess.Popen(_command("preprocess.py", "--input", folder, "--output", output),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = output / ".cache"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(cache.glob("*.npz"))) < 5:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while time.time() < deadline and _processes_naming(folder):
        time.sleep(0.05)
    assert not _processes_naming(folder), "its worker processes died with it"
    done_before = {path: path.stat().st_mtime_ns for path in cache.glob("*.npz")}
    assert 5 <= len(done_before) < 40, "killed midway"
    assert not (output / "vocab.json").exists(), "no output published by the killed run"
    subprocess.run(_command("preprocess.py", "--input", folder, "--output", output), check=True, capture_output=True)
    assert {path: path.stat().st_mtime_ns for path in done_before} == done_before, "finished files were not read again"
    _, splits = load_processed(output)
    assert sum(len(split) for split in splits.values()) == 120


@pytest.mark.slow
def test_killed_training_resumes_from_the_last_finished_epoch(processed, tmp_path):
    arguments = ["--model", "lstm", "--data", processed, "--checkpoints", tmp_path, "--patience", "100"]
    for key, value in {**TINY_LSTM, "epochs": 100}.items():
        arguments += ["--" + key.replace("_", "-"), value]
    run = tmp_path / "lstm"
    for delay in (0.0, 0.3, 0.7):  # kill at different moments of an epoch, checkpoint writes included
        process = subprocess.Popen(_command("train.py", *arguments), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 90
        start_epochs = _epochs_completed(run)
        while time.time() < deadline and _epochs_completed(run) < start_epochs + 2:
            time.sleep(0.02)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for name in ("best.keras", "last.keras"):  # whole files, whenever the kill came
            assert load_model(run / name).count_params() > 0
    completed = _epochs_completed(run)
    arguments[arguments.index("--epochs") + 1] = completed + 1
    result = subprocess.run(_command("train.py", *arguments), capture_output=True, text=True, check=True)
    assert f"resuming {run} after epoch {completed}" in result.stdout
    assert _epochs_completed(run) == completed + 1
    history = json.loads((run / "run_config.json").read_text())["progress"]["history"]
    assert [entry["epoch"] for entry in history] == list(range(1, completed + 2))


def _epochs_completed(run):
    try:
        return json.loads((run / "run_config.json").read_text())["progress"]["epochs_completed"]
    except (OSError, ValueError):
        return 0


def test_checkpoint_with_a_lambda_layer_is_refused(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Lambda(lambda x: keras.ops.one_hot(x, 10))(inputs)
    keras.Model(inputs, outputs).save(run / "best.keras")
    with pytest.raises(UserError, match="refused in safe mode"):
        registry.load_run(run)


def test_damaged_checkpoint_is_a_clear_error(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "best.keras").write_bytes(b"not a zip file")
    with pytest.raises(UserError, match="not a loadable Keras model"):
        registry.load_run(run)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(model="wavenet"), "model must be one of"),
    (lambda c: c.update(default_bpm="fast"), "default_bpm"),
    (lambda c: c.update(default_bpm=10_000), "outside 10..400"),
    (lambda c: c.pop("vocabulary_hash"), "vocabulary_hash"),
    (lambda c: c.update(format="pickle"), "not a musicgen run"),
])
def test_run_config_is_validated(trained_run, tmp_path, change, message):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = json.loads((run / "run_config.json").read_text())
    change(config)
    (run / "run_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=message):
        registry.load_run(run)


@pytest.mark.parametrize("change, message", [
    (lambda v: v["tokens"].append("C4"), "duplicate"),
    (lambda v: v["tokens"].append("dur:999"), "outside"),
    (lambda v: v["tokens"].append("E4.C4"), "from low to high"),
    (lambda v: v["settings"].update(steps_per_quarter=-1), "1..96"),
    (lambda v: v.update(tokens="C4 D4"), "list of strings"),
])
def test_vocabulary_file_is_validated(trained_run, tmp_path, change, message):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    vocabulary = json.loads((run / "vocab.json").read_text())
    vocabulary.pop("hash")
    change(vocabulary)
    (run / "vocab.json").write_text(json.dumps(vocabulary))
    with pytest.raises(UserError, match=message):
        registry.load_run(run)


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    cases = [
        _command("train.py", "--model", "wavenet"),
        _command("train.py", "--data", tmp_path / "nothing"),
        _command("generate.py", "--checkpoint", tmp_path / "nothing"),
        _command("preprocess.py", "--transpose", "-20..3"),
    ]
    for command in cases:
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 2, command
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr


def test_output_in_a_folder_that_cannot_be_written(trained_run, tmp_path):
    import generate

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot create output folder"):
        generate.main(["--checkpoint", str(trained_run), "--seed", "C4", "--output", str(blocker / "sub" / "x.mid")])


def test_generate_never_leaves_a_partial_midi_under_the_final_name(trained_run, tmp_path, monkeypatch):
    import symusic

    import generate

    def write_then_fail(self, path):
        Path(path).write_bytes(b"MThd partial")
        raise OSError("disk full")

    monkeypatch.setattr(type(symusic.Score(480)), "dump_midi", write_then_fail)
    with pytest.raises(OSError):
        generate.main(["--checkpoint", str(trained_run), "--seed", "C4", "--output", str(tmp_path / "x.mid")])
    assert os.listdir(tmp_path) == []
