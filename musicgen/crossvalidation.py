"""k-fold cross-validation over the folds of `preprocess.py --folds K`: train, score, and pool every fold, resumably.

    <output>/<run>/crossval.json       the model, its settings and the folds it is run on
    <output>/<run>/fold-<i>/           the run of fold i (a train.py run folder)
    <output>/<run>/fold-<i>/pieces.csv its test pieces' likelihood (evaluation.likelihood_table), written last
    <output>/summary.csv, differences.csv, report.md   every finished run in <output>, side by side

Every piece is tested exactly once, by the model of the fold that held it out,
so the pooled pieces are a held-out evaluation of the whole corpus: its
intervals come from the bootstrap over those pieces, and runs on the same folds
are compared piece by piece (paired bootstrap). The spread of the per-fold
values (mean with a Student-t interval) is reported beside it.
"""

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from musicgen import intervals, training
from musicgen.dataset import load_processed, read_index
from musicgen.errors import UserError
from musicgen.evaluation import LIKELIHOOD_METRICS, likelihood_statistic, likelihood_table, paired_differences
from musicgen.files import atomic_path, read_user_json, write_json, write_text
from musicgen.runs import finished, load_run, read_run_config

RUN_FILE = "crossval.json"
PIECES_FILE = "pieces.csv"
SUMMARY_FILE = "summary.csv"
DIFFERENCES_FILE = "differences.csv"
REPORT_FILE = "report.md"
REPORTED = ("nll_nats", "nats_per_note", "pitch_bits_per_note", "accuracy")  # columns of the printed table


def cross_validate(spec, config, fold_folders, run_dir, log=print):
    """Train (or resume) each fold's run in <run_dir>/fold-<i> and score its test pieces into its pieces.csv.

    A fold whose pieces.csv exists is done (finished_runs reads them). Run again
    after a kill, it goes on where it stopped; with other settings or folds it refuses.
    """
    if not spec.likelihood:
        raise UserError(f"cross-validation scores held-out likelihood, which the {spec.name} model does not have")
    run_dir = Path(run_dir)
    description = {"format": "musicgen-crossval", "version": 1, "model": spec.name, "config": config,
                   "folds": [str(folder) for folder in fold_folders]}
    if (run_dir / RUN_FILE).exists():
        stored = read_user_json(run_dir / RUN_FILE, "")
        if stored != description:
            raise UserError(f"{run_dir} cross-validates another model, settings or folds; "
                            "pass --restart to start it over, or choose another --run-name")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_FILE, description)
    for fold, data in enumerate(fold_folders):
        fold_dir = run_dir / f"fold-{fold}"
        path = fold_dir / PIECES_FILE
        if path.exists():
            continue
        log(f"fold {fold + 1} of {len(fold_folders)}: {data}")
        training.train(spec, config, data, fold_dir, log=log)
        if spec.keras and not finished(read_run_config(fold_dir)):
            raise UserError(f"training of {fold_dir} stopped before it finished; run the same command to go on")
        vocabulary, splits = load_processed(data, ("test",))
        model = load_run(fold_dir, lambda name: spec).model
        table = likelihood_table(spec.decoder(model), splits["test"], vocabulary)
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)


def finished_runs(output):
    """{run name: pooled per-piece table} of every run in `output` whose folds are all scored."""
    runs = {}
    for path in sorted(Path(output).glob(f"*/{RUN_FILE}")):
        folds = read_user_json(path, "")["folds"]
        pieces = [path.parent / f"fold-{fold}" / PIECES_FILE for fold in range(len(folds))]
        if all(piece.exists() for piece in pieces):
            runs[path.parent.name] = pd.concat([pd.read_csv(piece, keep_default_na=False).assign(fold=fold)
                                                for fold, piece in enumerate(pieces)], ignore_index=True)
    return runs


def summarize(runs, resamples=intervals.RESAMPLES, random_seed=0):
    """(summary rows, difference rows) for runs of pooled per-piece tables, as written by write_report.

    A summary row holds a run's metric on the pooled pieces with its bootstrap
    interval, and the mean of the per-fold values with their t-interval. Runs on
    the same pieces (the same folds) are compared pairwise.
    """
    rows = []
    statistics = {}
    for name, table in runs.items():
        statistics[name] = likelihood_statistic(table)
        pooled = intervals.bootstrap(statistics[name], len(table), intervals.draws(len(table), resamples, random_seed))
        per_fold = [likelihood_statistic(part)(np.arange(len(part))) for _, part in table.groupby("fold")]
        for metric in list(LIKELIHOOD_METRICS) + ["perplexity"]:
            fold_mean, fold_low, fold_high = intervals.over_folds([values[metric] for values in per_fold])
            rows.append({"run": name, "metric": metric, "value": pooled[metric], "low": pooled[f"{metric}_low"],
                         "high": pooled[f"{metric}_high"], "folds": len(per_fold), "pieces": len(table),
                         "fold_mean": fold_mean, "fold_low": fold_low, "fold_high": fold_high})
    differences = []
    for group in _same_pieces(runs):
        count = len(runs[group[0]])
        differences += paired_differences({name: statistics[name] for name in group}, count,
                                          intervals.draws(count, resamples, random_seed))
    return rows, differences


def _same_pieces(runs):
    """Runs grouped by the pieces they scored, in the same order: only those can be compared piece by piece."""
    groups = {}
    for name, table in runs.items():
        key = tuple(zip(table["fold"], table["source"]))
        groups.setdefault(key, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def write_report(output, rows, differences, description):
    """summary.csv, differences.csv and report.md in `output`."""
    from musicgen.reports import differences_markdown, write_csv

    output = Path(output)
    summary = pd.DataFrame(rows)
    write_csv(output / SUMMARY_FILE, summary)
    write_csv(output / DIFFERENCES_FILE, pd.DataFrame(differences, columns=["model", "compared_with", "metric",
                                                                           "difference", "low", "high"]))
    lines = ["# Cross-validation\n", "\n".join(f"- {key}: {value}" for key, value in description.items()),
             "\nEvery piece scored once, by the model of the fold that held it out. *pooled*: the metric over all "
             "pieces with its 95 % bootstrap interval over pieces; *over folds*: the mean of the per-fold values "
             "with its Student-t 95 % interval (optimistic: the folds share training data).\n",
             "| run | metric | pooled [95 %] | over folds [95 %] | folds | pieces |", "|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        lines.append(f"| {row.run} | {row.metric} | {interval_text(row.value, row.low, row.high)} | "
                     f"{interval_text(row.fold_mean, row.fold_low, row.fold_high)} | {row.folds} | {row.pieces} |")
    if differences:
        lines += ["\n## Differences between runs\n", "Each run minus each one before it (alphabetically), on the "
                  "same pieces, with the interval of a paired bootstrap over pieces.\n", differences_markdown(differences)]
    write_text(output / REPORT_FILE, "\n".join(lines) + "\n")


def interval_text(value, low, high):
    """'2.134 [2.051, 2.220]', or the value alone when there is no interval."""
    if math.isnan(low):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def check_folds(fold_folders):
    """Refuse folds whose data is missing or damaged before any training starts."""
    for folder in fold_folders:
        read_index(folder)


def remove_run(run_dir):
    """Delete a cross-validation run (its fold runs included) so that it can start over."""
    if (Path(run_dir) / RUN_FILE).exists():
        shutil.rmtree(run_dir)
