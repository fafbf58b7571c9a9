"""k-fold cross-validation: train and score a model on every fold of `preprocess.py --folds K`.

    python preprocess.py --corpus bach --melody-only --folds 10 --output data/bach-soprano-folds
    python crossval.py --data data/bach-soprano-folds --model ngram
    python crossval.py --data data/bach-soprano-folds --model transformer --epochs 30

Each fold's test pieces are scored by a model trained on the other folds (one
of them validating), so every piece is tested once. Run the same command again
after a kill and it goes on where it stopped: finished folds are kept, an
interrupted one resumes from its last epoch. Each run lands in <output>/<run-name>/;
<output>/report.md and summary.csv then put every finished run there side by side:
the metrics over all pieces with 95 % bootstrap intervals, the mean over folds with
its interval, and paired intervals of the differences between runs.
"""

import argparse
from pathlib import Path

import models
from musicgen import hyperparameters
from musicgen.errors import UserError, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the output of preprocess.py --folds K")
    parser.add_argument("--model", default=models.DEFAULT, type=models.check_name,
                        help=f"one of: {', '.join(name for name in models.NAMES if name != 'gan')} "
                             f"(default: {models.DEFAULT})")
    parser.add_argument("--output", type=Path, default=Path("crossval"), help="where runs and the report go "
                                                                              "(default: crossval)")
    parser.add_argument("--run-name", help="run folder name under --output (default: the model name)")
    parser.add_argument("--restart", action="store_true", help="discard an existing run of that name and start over")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the intervals (default: 1000)")
    hyperparameters.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.resamples < 1:
        raise UserError("--resamples must be at least 1")
    from musicgen.dataset import read_folds

    fold_folders = read_folds(args.data)
    from musicgen.backend import import_tensorflow

    import_tensorflow()  # before anything imports keras: without TensorFlow's start-up noise
    from models import registry
    from musicgen import crossvalidation

    spec = registry.get(args.model)
    config = hyperparameters.resolve_config(spec, args.config, hyperparameters.overrides(args))
    crossvalidation.check_folds(fold_folders)
    run_dir = args.output / (args.run_name or args.model)
    if args.restart:
        crossvalidation.remove_run(run_dir)
    crossvalidation.cross_validate(spec, config, fold_folders, run_dir)
    runs = crossvalidation.finished_runs(args.output)
    rows, differences = crossvalidation.summarize(runs, args.resamples)
    crossvalidation.write_report(args.output, rows, differences,
                                 {"folds": f"{len(fold_folders)} folds of {args.data}", "runs": ", ".join(runs)})
    width = max(len(name) for name in ["run", *runs])
    print(f"{'run':<{width}} {'metric':<20} {'pooled [95 %]':>26} {'over folds [95 %]':>26}")
    for row in rows:
        if row["metric"] in crossvalidation.REPORTED:
            pooled = crossvalidation.interval_text(row["value"], row["low"], row["high"])
            over_folds = crossvalidation.interval_text(row["fold_mean"], row["fold_low"], row["fold_high"])
            print(f"{row['run']:<{width}} {row['metric']:<20} {pooled:>26} {over_folds:>26}")
    print(f"wrote {args.output / crossvalidation.REPORT_FILE}, {crossvalidation.SUMMARY_FILE} and "
          f"{crossvalidation.DIFFERENCES_FILE}")


if __name__ == "__main__":
    run_cli(main)
