"""Train a next-event model on the output of preprocess.py.

    python train.py --model lstm
    python train.py --model gru --units 512 --epochs 100 --run-name gru-big
    python train.py --model lstm --config my_settings.json --set dropout=0.3
    python train.py --init-from pretrained/folk --data data/my-tunes --run-name my-folk   # fine-tune
    python train.py --summary                      # the model's layers, and model.png
    python train.py --run-name folk-pretrained --ship pretrained/folk   # a finished run, as a shipped model

Run the same command again after a crash or Ctrl-C and it resumes from the last
finished epoch. Everything lands in checkpoints/<run-name>/ (default: the model name).
Each model has its own settings and defaults: see them with --show-config.
It trains on every GPU TensorFlow sees, or with TF_CONFIG set, on several
machines at once (see docs/training.md, "GPUs and several machines").
"""

import argparse
import json
from pathlib import Path

import models
from musicgen import hyperparameters
from musicgen.errors import UserError, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=models.check_name,
                        help=f"one of: {', '.join(models.NAMES)} (default: {models.DEFAULT}, or --init-from's)")
    parser.add_argument("--data", type=Path, default=Path("data/processed"), help="preprocess.py output (default: data/processed)")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="where run folders go (default: checkpoints)")
    parser.add_argument("--run-name", help="run folder name under --checkpoints (default: the model name)")
    parser.add_argument("--restart", action="store_true", help="discard an existing run of that name and start over")
    parser.add_argument("--show-config", action="store_true", help="print the model's resolved settings and exit")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="compute in float16, keeping weights in float32: faster on recent GPUs")
    parser.add_argument("--init-from", type=Path, metavar="RUN",
                        help="fine-tune: start from this run's weights (a run folder, e.g. pretrained/styles) with its "
                             "settings, a fifth of its learning rate, at most 20 epochs and patience 3; the data must "
                             "share its vocabulary (preprocess.py --vocab RUN)")
    parser.add_argument("--freeze", type=int, default=0, metavar="N",
                        help="with --init-from: keep the lowest N layers with weights (the embedding first) as "
                             "they are (default: 0)")
    parser.add_argument("--summary", action="store_true",
                        help="print the model's layers and draw them in <run folder>/model.png, then exit")
    parser.add_argument("--ship", type=Path, metavar="FOLDER",
                        help="copy the run (its best weights without optimizer state, vocab.json, run_config.json) "
                             "to FOLDER as a shipped model, e.g. pretrained/folk, then exit")
    hyperparameters.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from musicgen.backend import import_tensorflow

    import_tensorflow()  # before anything imports keras: without TensorFlow's start-up noise
    from models import registry
    from musicgen.runs import RUN_CONFIG_FILE, read_run_config

    if args.freeze and not args.init_from:
        raise UserError("--freeze keeps layers of the run given by --init-from; give that too")
    parent = read_run_config(args.init_from) if args.init_from else None
    model_name = args.model or (parent["model"] if parent else models.DEFAULT)
    spec = registry.get(model_name)
    base = hyperparameters.fine_tuning(parent["config"]) if parent and parent["model"] == model_name else None
    overrides = hyperparameters.overrides(args)
    window_from_corpus = overrides.get("seq_len") == hyperparameters.AUTO
    if window_from_corpus:
        del overrides["seq_len"]
        if not spec.longest_window:
            raise UserError(f"--seq-len auto chooses the window of the transformer and the recurrent models; the "
                            f"{model_name} model's window is its own (give a number)")
    config = hyperparameters.resolve_config(spec, args.config, overrides, base=base)
    from musicgen import training

    run_dir = args.checkpoints / (args.run_name or model_name)
    existing = read_run_config(run_dir) if (run_dir / RUN_CONFIG_FILE).exists() and not args.restart else None
    resuming = existing is not None and existing["model"] == model_name
    given = hyperparameters.given(args.config, overrides, base)
    if resuming:  # a run resumes with the settings it began with (its window too), but for those given now
        config.update({key: value for key, value in existing["config"].items() if key in config and key not in given})
    elif window_from_corpus and not args.ship:
        config["seq_len"], why = training.corpus_window(args.data, spec.longest_window)
        if "batch_size" not in given:
            config["batch_size"] = training.windows_per_batch(spec, config["seq_len"])  # the same tokens a step
        print(f"{why}; {config['batch_size']} windows a batch")
    if args.show_config:
        print(json.dumps({"model": model_name, **config}, indent=2))
        return
    if args.ship:
        from musicgen.pretrained import export

        folder = export(registry.load_run(run_dir), args.ship)
        size = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
        print(f"{run_dir} shipped in {folder} ({size:.1f} MB)")
        return
    if args.summary:
        training.summarize(spec, config, args.data, run_dir)
        return
    run_config = training.train(spec, config, args.data, run_dir, restart=args.restart,
                                mixed_precision=args.mixed_precision, init_from=args.init_from, freeze=args.freeze)
    progress = run_config["progress"]
    accuracy = progress["best_val_accuracy"]
    unit = "nats per token" if spec.likelihood else "(the critic's Wasserstein estimate)"
    print(f"best validation loss {progress['best_val_loss']:.4f} {unit}"
          + (f", accuracy {accuracy:.3f}" if accuracy is not None else "")
          + f" at epoch {progress['best_epoch']} of {progress['epochs_completed']}"
          + (f"; saved in {run_dir}/" if (run_dir / RUN_CONFIG_FILE).exists() else ""))


if __name__ == "__main__":
    run_cli(main)
