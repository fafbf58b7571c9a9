"""The shipped models: what they hold, the default they are, and the notebook that walks through them."""

import json
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
from conftest import ROOT

import generate
import train
from musicgen import styles
from musicgen.pretrained import PRETRAINED

SHIPPED = ("styles", "bach", "folk")


def test_the_shipped_models_are_small_complete_run_folders():
    total = 0
    for name in SHIPPED:
        folder = PRETRAINED / name
        assert {path.name for path in folder.iterdir()} == {"best.keras", "vocab.json", "run_config.json",
                                                            "evaluation.md"}
        run_config = json.loads((folder / "run_config.json").read_text())
        assert json.loads((folder / "vocab.json").read_text())["hash"] == run_config["vocabulary_hash"]
        progress = run_config["progress"]
        assert progress["stopped_early"] or progress["epochs_completed"] == run_config["config"]["epochs"], \
            f"{name} trained to the end of its schedule or until it stopped improving"
        total += sum(path.stat().st_size for path in folder.iterdir())
    assert total < 25 * 2**20
    assert "make.sh" in {path.name for path in PRETRAINED.iterdir()}


def test_a_run_is_shipped_without_the_optimizer(trained_run, tmp_path, capsys):
    train.main(["--checkpoints", str(trained_run.parent), "--run-name", trained_run.name, "--ship",
                str(tmp_path / "shipped")])
    shipped = tmp_path / "shipped"
    assert "shipped in" in capsys.readouterr().out
    assert {path.name for path in shipped.iterdir()} == {"best.keras", "vocab.json", "run_config.json"}
    assert (shipped / "best.keras").stat().st_size < (trained_run / "best.keras").stat().st_size
    from musicgen.saving import load_model

    original, copy = (load_model(folder / "best.keras", compile=False) for folder in (trained_run, shipped))
    assert all(np.array_equal(a, b) for a, b in zip(original.get_weights(), copy.get_weights()))


def test_generate_without_a_run_uses_the_shipped_model_of_many_styles(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    generate.main(["--length", "24", "--output", str(tmp_path / "out.mid"), "--random-seed", "0"])
    printed = capsys.readouterr().out
    assert "using the pretrained model pretrained/styles" in printed
    style = printed.split("style=", 1)[1].split(",", 1)[0]
    assert f"style={style}, chosen at random" in printed and f"labels style={style}" in printed
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / "out.mid")).instruments[0].notes) > 3
    generate.main(["--checkpoint", str(PRETRAINED / "styles"), "--condition", f"style={style}", "--length", "24",
                   "--output", str(tmp_path / "styles.mid"), "--random-seed", "0"])
    assert (tmp_path / "out.mid").read_bytes() == (tmp_path / "styles.mid").read_bytes(), "the very same model"


def test_the_styles_model_takes_each_of_its_styles_and_a_key(tmp_path, capsys):
    from musicgen.labels import STYLE_LABEL
    from musicgen.vocabulary import Vocabulary

    known = Vocabulary.from_json(json.loads((PRETRAINED / "styles" / "vocab.json").read_text())).controls[STYLE_LABEL]
    assert {"bach", "palestrina", "german-folk", "string-quartet"} <= set(known)
    for style in known:
        generate.main(["--checkpoint", str(PRETRAINED / "styles"), "--condition", f"style={style}", "--condition",
                       "key=D minor", "--length", "8", "--output", str(tmp_path / f"{style}.mid")])
        assert f"labels key=D minor, style={style}" in capsys.readouterr().out
        assert (tmp_path / f"{style}.mid").stat().st_size > 0


def test_the_folk_model_writes_over_chords_from_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "generate.py", "--checkpoint", "pretrained/folk", "--chords", "G D7",
                             "--output", str(tmp_path / "folk.mid")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "music over the chords G D7" in result.stdout


@pytest.mark.slow
def test_the_walkthrough_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("WALKTHROUGH_DIR", str(tmp_path))
    notebook = nbformat.read(ROOT / "notebooks" / "walkthrough.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()  # any error fails here
    for name in ("palestrina", "folk", "chorale", "my-folk"):
        assert (tmp_path / "outputs" / f"{name}.wav").is_file() and (tmp_path / "outputs" / f"{name}.png").is_file()
    run_config = json.loads((tmp_path / "checkpoints" / "my-folk" / "run_config.json").read_text())
    assert run_config["parent"]["run"] == "pretrained/folk"
    audio = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
             if "text/html" in output.get("data", {}) and "<audio" in output["data"]["text/html"]]
    assert len(audio) == 4, "an audio player for each piece"


def test_the_styles_corpus_is_laid_out_as_a_folder_of_links_per_style(tmp_path):
    found = styles.style_files(tmp_path / "no shared data")
    assert "english-folk" not in found, "the shared data's styles only where it is found"
    assert len(found["bach"]) > 400 and len(found["palestrina"]) > 1000
    assert found["chinese-folk"] and all(path.name.startswith("han") for path in found["chinese-folk"])
    assert not any(path.name.startswith(("han", "test")) for path in found["german-folk"])
    chosen = {"bach": found["bach"][:2], "trecento": found["trecento"][:1]}
    assert styles.lay_out(tmp_path / "styles", chosen) == 3
    links = sorted((tmp_path / "styles").rglob("*"))
    assert [link.parent.name for link in links if link.is_symlink()] == ["bach", "bach", "trecento"]
    assert {link.resolve() for link in links if link.is_symlink()} == {path.resolve() for paths in chosen.values()
                                                                        for path in paths}
