"""The models the project ships in pretrained/, and how a trained run becomes one.

A shipped model is a run folder like any other (generate.py --checkpoint, evaluate.py --checkpoint and
train.py --init-from take it), holding only what generating needs: best.keras without optimizer state,
vocab.json, run_config.json, and the evaluation report that measured it. pretrained/make.sh reproduces
them all.

    python -m musicgen.pretrained checkpoints/bach-pretrained pretrained/bach
"""

import argparse
import shutil
from pathlib import Path

from musicgen.errors import UserError, run_cli
from musicgen.files import atomic_path
from musicgen.runs import RUN_CONFIG_FILE, newest_run, read_run_config

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
DEFAULT = "bach"  # the model of the default corpus, for generate.py without a run of one's own


def default_run(checkpoints="checkpoints"):
    """(run folder, why it was chosen) for generate.py without --checkpoint: the newest trained run in
    `checkpoints`, or else the shipped model of the default corpus."""
    try:
        return newest_run(checkpoints), "the newest run in checkpoints/"
    except UserError as no_runs:
        shipped = PRETRAINED / DEFAULT
        if not (shipped / "best.keras").is_file():
            raise no_runs from None
        return shipped, f"the pretrained model {shipped.relative_to(PRETRAINED.parent)} (no trained runs in " \
                        f"{checkpoints}/; --checkpoint pretrained/folk for folk tunes over chords)"


def export(run_dir, destination):
    """Copy the trained run in `run_dir` to `destination` as a shipped model: its best weights without the
    optimizer's state (a third of the file), its vocabulary and its configuration."""
    from models import registry  # noqa: F401  registers the models' custom layers, which the file names
    from musicgen.saving import load_model, save_model

    run_dir, destination = Path(run_dir), Path(destination)
    read_run_config(run_dir)
    if not (run_dir / "best.keras").is_file():
        raise UserError(f"{run_dir} has no best.keras to ship")
    model = load_model(run_dir / "best.keras", compile=False)  # uncompiled, so saved without an optimizer
    destination.mkdir(parents=True, exist_ok=True)
    save_model(model, destination / "best.keras")
    for name in ("vocab.json", RUN_CONFIG_FILE):
        with atomic_path(destination / name) as temporary:
            shutil.copyfile(run_dir / name, temporary)
    return destination


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a trained run folder")
    parser.add_argument("destination", type=Path, help="the folder to ship it in, e.g. pretrained/bach")
    args = parser.parse_args(argv)
    from musicgen.backend import import_tensorflow

    import_tensorflow()
    folder = export(args.run, args.destination)
    size = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
    print(f"{args.run} shipped in {folder} ({size:.1f} MB)")


if __name__ == "__main__":
    run_cli(main)
