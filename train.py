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
from musicgen.errors import UserError, run_cli

# Flags that set one hyperparameter each; the rest go through --set KEY=VALUE or --config.
HYPERPARAMETER_FLAGS = {
    "epochs": (int, "most epochs to train (default 50; early stopping usually ends sooner)"),
    "batch_size": (int, "windows per gradient step"),
    "seq_len": (int, "tokens per training window, 3 per event"),
    "learning_rate": (float, "Adam learning rate"),
    "units": (int, "recurrent units per layer (rnn, lstm, gru, seq2seq, vae)"),
    "layers": (int, "stacked layers or blocks (rnn, lstm, gru, cnn, transformer)"),
    "dropout": (float, "dropout rate"),
    "embedding_dim": (int, "token embedding size (the transformer's model width)"),
    "patience": (int, "epochs without validation improvement before stopping (default 5)"),
    "random_seed": (int, "random seed for weights, window order and dropout (default 0)"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=models.DEFAULT, type=models.check_name,
                        help=f"one of: {', '.join(models.NAMES)} (default: {models.DEFAULT})")
    parser.add_argument("--data", type=Path, default=Path("data/processed"), help="preprocess.py output (default: data/processed)")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="where run folders go (default: checkpoints)")
    parser.add_argument("--run-name", help="run folder name under --checkpoints (default: the model name)")
    parser.add_argument("--restart", action="store_true", help="discard an existing run of that name and start over")
    parser.add_argument("--config", type=Path, help="JSON file of settings, e.g. {\"units\": 512, \"epochs\": 20}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any model setting (repeatable)")
    parser.add_argument("--show-config", action="store_true", help="print the model's resolved settings and exit")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="compute in float16, keeping weights in float32: faster on recent GPUs")
    group = parser.add_argument_group("settings (each overrides --config)")
    for key, (kind, text) in HYPERPARAMETER_FLAGS.items():
        group.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, help=text)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from musicgen.backend import import_tensorflow

    import_tensorflow()  # before anything imports keras: without TensorFlow's start-up noise
    from models import registry
    from musicgen import config as settings

    spec = registry.get(args.model)
    overrides = {key: getattr(args, key) for key in HYPERPARAMETER_FLAGS if getattr(args, key) is not None}
    for item in args.set:
        key, separator, value = item.partition("=")
        if not separator:
            raise UserError(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key.strip().replace("-", "_")] = value
    config = settings.resolve_config(spec, args.config, overrides)
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
