"""The models the project ships in pretrained/, and how a trained run becomes one (train.py --ship).

A shipped model is a run folder like any other (generate.py --checkpoint, evaluate.py --checkpoint and
train.py --init-from take it), holding only what generating needs: best.keras without optimizer state,
vocab.json, run_config.json, and the evaluation report that measured it. pretrained/make.sh reproduces
them all.
"""

import shutil
from pathlib import Path

from musicgen.errors import UserError
from musicgen.files import atomic_path
from musicgen.runs import RUN_CONFIG_FILE, newest_run

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
DEFAULT = "styles"  # the model of many styles, for generate.py without a run of one's own


def default_run(checkpoints="checkpoints"):
    """(run folder, why it was chosen) for generate.py without --checkpoint: the newest trained run in
    `checkpoints`, or else the shipped model of many styles."""
    try:
        return newest_run(checkpoints), "the newest run in checkpoints/"
    except UserError as no_runs:
        shipped = PRETRAINED / DEFAULT
        if not (shipped / "best.keras").is_file():
            raise no_runs from None
        return shipped, (f"the pretrained model {shipped.relative_to(PRETRAINED.parent)} (no trained runs in "
                         f"{checkpoints}/; --checkpoint pretrained/bach for chorales, pretrained/folk for tunes over "
                         f"chords)")


def export(run, destination):
    """Copy a trained, loaded run (runs.Run) to `destination` as a shipped model: its best weights without the
    optimizer's state (a third of the file), its vocabulary and its configuration."""
    from musicgen.saving import save_model

    destination = Path(destination)
    if not run.spec.keras:
        raise UserError(f"{run.path} holds a counted {run.spec.name} model; only networks are shipped")
    destination.mkdir(parents=True, exist_ok=True)
    save_model(run.model, destination / "best.keras")  # loaded uncompiled, so saved without an optimizer
    for name in ("vocab.json", RUN_CONFIG_FILE):
        with atomic_path(destination / name) as temporary:
            shutil.copyfile(run.path / name, temporary)
    return destination
