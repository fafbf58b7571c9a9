"""Train a next-event model on the output of preprocess.py.

    python train.py --model lstm
    python train.py --model gru --units 512 --epochs 100 --run-name gru-big
    python train.py --model lstm --config my_settings.json --set dropout=0.3

Run the same command again after a crash or Ctrl-C and it resumes from the last
finished epoch. Everything lands in checkpoints/<run-name>/ (default: the model name).
Each model has its own settings and defaults: see them with --show-config.
It trains on every GPU TensorFlow sees, or with TF_CONFIG set, on several
machines at once (see the README, "GPUs and machines").
"""

import argparse
import json
from pathlib import Path

import models
from musicgen import config as settings
from musicgen.errors import run_cli

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=models.DEFAULT, type=models.check_name,
                        help=f"one of: {', '.join(models.NAMES)} (default: {models.DEFAULT})")
    parser.add_argument("--data", type=Path, default=Path("data/processed"), help="preprocess.py output (default: data/processed)")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="where run folders go (default: checkpoints)")
    parser.add_argument("--run-name", help="run folder name under --checkpoints (default: the model name)")
    parser.add_argument("--restart", action="store_true", help="discard an existing run of that name and start over")
    parser.add_argument("--show-config", action="store_true", help="print the model's resolved settings and exit")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="compute in float16, keeping weights in float32: faster on recent GPUs")
    settings.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from musicgen.backend import import_tensorflow

    import_tensorflow()  # before anything imports keras: without TensorFlow's start-up noise
    from models import registry

    spec = registry.get(args.model)
    config = settings.resolve_config(spec, args.config, settings.overrides(args))
    if args.show_config:
        print(json.dumps({"model": args.model, **config}, indent=2))
        return
    from musicgen import training
    from musicgen.runs import RUN_CONFIG_FILE

    run_dir = args.checkpoints / (args.run_name or args.model)
    run_config = training.train(spec, config, args.data, run_dir, restart=args.restart,
                                mixed_precision=args.mixed_precision)
    progress = run_config["progress"]
    accuracy = progress["best_val_accuracy"]
    unit = "nats per token" if spec.likelihood else "(the critic's Wasserstein estimate)"
    print(f"best validation loss {progress['best_val_loss']:.4f} {unit}"
          + (f", accuracy {accuracy:.3f}" if accuracy is not None else "")
          + f" at epoch {progress['best_epoch']} of {progress['epochs_completed']}"
          + (f"; saved in {run_dir}/" if (run_dir / RUN_CONFIG_FILE).exists() else ""))


if __name__ == "__main__":
    run_cli(main)
