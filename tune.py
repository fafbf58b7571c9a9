"""Search a model's learning rate, width, depth, dropout, window length and batch size on a corpus.

    python tune.py --model transformer --budget-minutes 30
    python tune.py --model lstm --data data/processed --trials 20 --epochs-per-trial 5
    python tune.py --model transformer --set heads=8       # every trial has 8 heads; the search varies the rest

Optuna's TPE sampler draws each trial's settings around the model's defaults (or --config and --set), its
median pruner stops trials that fall behind, and no trial starts once the time budget is spent (the one
running stops after its epoch). Each trial is a training run in <output>/trial-NNN/. After every trial,
<output>/ gets trials.csv, trials.png and best.json, the best settings for `train.py --config`. Run the same
command again after a kill and the search goes on: finished trials are kept, an interrupted one continues
from its last finished epoch, and the budget counts the time earlier runs spent (raise it to search longer).
"""

import argparse
import json
from pathlib import Path

import models
from musicgen import hyperparameters
from musicgen.errors import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tunable = [name for name in models.NAMES if name not in ("gan", "ngram")]
    parser.add_argument("--model", default=models.DEFAULT, type=models.check_name,
                        help=f"one of: {', '.join(tunable)} (default: {models.DEFAULT})")
    parser.add_argument("--data", type=Path, default=Path("data/processed"),
                        help="preprocess.py output (default: data/processed)")
    parser.add_argument("--output", type=Path,
                        help="where the search and its trials' runs go (default: tuning/<model>)")
    parser.add_argument("--budget-minutes", type=float, default=60.0,
                        help="no trial starts after this much training time, over every run of the search "
                             "(default: 60)")
    parser.add_argument("--trials", type=int, default=50,
                        help="most trials in the search, over every run of it (default: 50)")
    parser.add_argument("--epochs-per-trial", type=int, default=10,
                        help="most epochs a trial trains; early stopping and pruning usually end it sooner "
                             "(default: 10)")
    parser.add_argument("--patience", type=int, default=3,
                        help="epochs without validation improvement before a trial stops (default: 3)")
    parser.add_argument("--random-seed", type=int, default=0,
                        help="seed of the sampler and of every trial (default: 0)")
    parser.add_argument("--config", type=Path, help="JSON file of the settings every trial starts from")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting every trial starts from (repeatable; overrides --config)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from musicgen import tuning

    tuning.check_limits(args.budget_minutes, args.trials)  # at once, before TensorFlow takes seconds to load
    from musicgen.backend import import_tensorflow

    import_tensorflow()  # before anything imports keras: without TensorFlow's start-up noise
    from models import registry

    spec = registry.get(args.model)
    base = hyperparameters.resolve_config(spec, args.config, {**hyperparameters.set_values(args.set), "epochs": args.epochs_per_trial,
                                                       "patience": args.patience, "random_seed": args.random_seed})
    output = args.output or Path("tuning") / args.model
    study = tuning.search(spec, base, args.data, output, args.budget_minutes, args.trials)
    best = tuning.best_settings(study, spec, base)
    if best is None:
        print(f"no trial has finished yet; see {output / tuning.TRIALS_FILE}")
        return
    print(f"best: trial {study.best_trial.number}, validation loss {study.best_value:.4f} nats per token "
          f"({output / tuning.TRIALS_FILE}, {output / tuning.PLOT_FILE})")
    print(json.dumps(best, indent=2))
    print(f"train it: python train.py --model {args.model} --config {output / tuning.BEST_FILE}")


if __name__ == "__main__":
    run_cli(main)
