"""The run folder: what train.py leaves in checkpoints/<run>/, and reading it back with checks.

    run_config.json   model name, settings, vocabulary hash, preprocessing recipe, progress, best validation loss
    vocab.json        the vocabulary the model was trained with
    best.keras        weights with the lowest validation loss so far
    last.keras        the latest epoch, with optimizer state (what a resume starts from)
    history.csv, loss.png, logs/ (TensorBoard)
"""

import csv
import dataclasses
import math
from pathlib import Path

from musicgen import hyperparameters, plots
from musicgen.dataset import read_vocabulary
from musicgen.errors import UserError
from musicgen.files import atomic_path, read_json, read_user_json
from musicgen.midi import check_bpm
from musicgen.recipe import Recipe
from musicgen.spec import ModelSpec
from musicgen.vocabulary import Vocabulary

RUN_CONFIG_FILE = "run_config.json"


def new_run_config(spec, config, vocabulary, data_dir, default_bpm, recipe):
    return {
        "format": "musicgen-run",
        "version": 1,
        "model": spec.name,
        "config": config,
        "vocabulary_hash": vocabulary.hash(),
        "vocabulary_size": len(vocabulary),
        "data": str(data_dir),
        "default_bpm": default_bpm,
        "preprocessing": recipe.to_json(),
        "progress": {"epochs_completed": 0, "best_val_loss": math.inf, "best_val_accuracy": None, "best_epoch": 0,
                     "epochs_without_improvement": 0, "stopped_early": False, "history": []},
    }


def read_run_config(run_dir):
    """Read and validate run_config.json (which may come from someone else's checkpoint)."""
    if not Path(run_dir).is_dir():
        raise UserError(f"checkpoint folder {run_dir} does not exist")
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
    check_bpm(run_config["default_bpm"], f"{path}: default_bpm")
    run_config["config"] = hyperparameters.upgrade(run_config["config"])
    return run_config


def check_resumable(run_dir, run_config, spec, config, vocabulary, mixed_precision):
    """Refuse to resume a run whose model, settings, vocabulary or precision differ from what was asked for."""
    if run_config["model"] != spec.name:
        raise UserError(f"{run_dir} holds a {run_config['model']} run, not {spec.name}; "
                        "choose another run name for a new run, or restart to replace it")
    if run_config["vocabulary_hash"] != vocabulary.hash():
        raise UserError(f"{run_dir} was trained on data with another vocabulary (preprocessed again since?); "
                        "restart it to train afresh or choose another run name")
    if run_config.get("mixed_precision", False) != mixed_precision:
        raise UserError(f"{run_dir} was trained {'with' if run_config.get('mixed_precision') else 'without'} "
                        "mixed precision; ask for the same to resume it, restart it or choose another run name")
    changed = [f"{key} {run_config['config'].get(key)} -> {value}" for key, value in config.items()
               if key not in hyperparameters.RESUMABLE_CHANGES and run_config["config"].get(key) != value]
    if changed:
        raise UserError(f"{run_dir} was trained with other settings ({'; '.join(changed)}); "
                        "restart it to replace it or choose another run name")


def check_parent(parent_dir, spec, vocabulary):
    """The run configuration of the run to fine-tune from (train.py --init-from), refused unless it is a
    trained run of the same model and the data shares its vocabulary."""
    parent = read_run_config(parent_dir)
    if parent["model"] != spec.name:
        raise UserError(f"--init-from {parent_dir} is a {parent['model']} run: fine-tune it as one "
                        f"(--model {parent['model']}, or leave --model out)")
    if not spec.keras:
        raise UserError(f"the {spec.name} model is counted, not trained: it has no weights to start from")
    if parent["vocabulary_hash"] != vocabulary.hash():
        raise UserError(f"--init-from {parent_dir} was trained with another vocabulary than the data's; encode "
                        f"the data with the run's own: python preprocess.py --vocab {parent_dir} ...")
    if not (Path(parent_dir) / "best.keras").exists():
        raise UserError(f"--init-from {parent_dir} has no best.keras (it has not finished an epoch)")
    return parent


def write_history(run_dir, history):
    columns = list(dict.fromkeys(key for row in history for key in row))
    with atomic_path(Path(run_dir) / "history.csv") as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)
    plots.plot_history(history, Path(run_dir) / "loss.png")


@dataclasses.dataclass
class Run:
    """A trained run, loaded and checked: everything generating or scoring with it needs."""

    path: Path
    spec: ModelSpec
    run_config: dict  # run_config.json
    vocabulary: Vocabulary
    model: object  # the Keras model (best.keras), or what spec.load gives

    @property
    def name(self):
        return self.path.name

    @property
    def config(self):
        """The run's hyperparameters (musicgen/hyperparameters.py)."""
        return self.run_config["config"]

    @property
    def recipe(self):
        """How the run's training data was preprocessed (runs older than the recipe: preprocess.py's defaults)."""
        return Recipe.from_json(self.run_config.get("preprocessing", {}))


def finished(run_config):
    """Whether a run has trained all its epochs or stopped early: resuming it would train nothing."""
    progress = run_config["progress"]
    return progress["stopped_early"] or progress["epochs_completed"] >= run_config["config"]["epochs"]


def load_run(run_dir, spec_for):
    """The Run in `run_dir`; `spec_for(model name)` gives the spec of the model it names."""
    from musicgen.saving import load_model  # Keras: only once a model is needed

    run_dir = Path(run_dir)
    run_config = read_run_config(run_dir)
    spec = spec_for(run_config["model"])
    vocabulary = read_vocabulary(run_dir / "vocab.json")
    if vocabulary.hash() != run_config["vocabulary_hash"] or len(vocabulary) != run_config["vocabulary_size"]:
        raise UserError(f"{run_dir}/vocab.json does not match the vocabulary the model was trained with")
    if not spec.keras:
        model = spec.load(run_dir)
    elif not (run_dir / "best.keras").exists():
        raise UserError(f"{run_dir} has no best.keras yet (training has not finished an epoch)")
    else:
        model = load_model(run_dir / "best.keras", compile=False)
    if spec.output_size(model) != len(vocabulary):
        raise UserError(f"{run_dir}: the model predicts {spec.output_size(model)} tokens but vocab.json has "
                        f"{len(vocabulary)}")
    return Run(run_dir, spec, run_config, vocabulary, model)


def run_folders(checkpoints):
    """Every folder under `checkpoints` that holds a run, by name."""
    return sorted(path.parent for path in Path(checkpoints).glob(f"*/{RUN_CONFIG_FILE}"))


def trained_runs(checkpoints="checkpoints"):
    """The run folders under `checkpoints` with at least one finished epoch: those a model can be loaded from."""
    return [run for run in run_folders(checkpoints) if _epochs_completed(run / RUN_CONFIG_FILE) > 0]


def newest_run(checkpoints="checkpoints"):
    runs = trained_runs(checkpoints)
    if not runs:
        raise UserError(f"no trained runs in {checkpoints}/ (train one with train.py first)")
    return max(runs, key=lambda run: (run / RUN_CONFIG_FILE).stat().st_mtime)


def _epochs_completed(run_config_path):
    try:
        return int(read_json(run_config_path)["progress"]["epochs_completed"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
