"""Is the music any good? Compare trained models on held-out music, against an n-gram baseline.

    python evaluate.py                                   # every run under checkpoints/
    python evaluate.py --checkpoint checkpoints/lstm --checkpoint checkpoints/transformer --pieces 32
    python evaluate.py --likelihood-only --per-piece pieces.csv  # seconds, not minutes; one row per piece

Reports, on the test split: negative log-likelihood per token and per note (nats, bits, perplexity),
next-token accuracy and bits per token kind; then, for pieces generated from the opening of held-out
pieces, how close their musical statistics come to the real continuations (next to training music, the
as-real-as-real mark), how much they repeat themselves and how much they copy from the training set; and
whole pieces, begun at <start> and ended by the model, against whole held-out pieces: form, key, endings
and MusPy's metrics, each against the real pieces' range.
Every number comes with its 95 % interval from a bootstrap over pieces, and every pair of models with
the paired interval of their difference. Writes evaluation.csv, differences.csv, report.md and histogram
plots to --output.
"""

import argparse
from pathlib import Path

from musicgen import sampling
from musicgen.errors import UserError, run_cli

SUMMARY_COLUMNS = [("nll_bits", "bits/token [95 %]", ".3f", True), ("nats_per_note", "nats/note [95 %]", ".3f", True),
                   ("accuracy", "accuracy", ".3f", False), ("pitch_bits", "pitch bits", ".3f", False),
                   ("velocity_bits", "velocity bits", ".3f", False), ("instrument_bits", "instrument bits", ".3f", False),
                   ("mean_overlap", "stats overlap", ".3f", False), ("repeated_4gram_share", "repeated 4-grams", ".3f", False),
                   ("longest_loop_mean", "loop (events)", ".1f", False),
                   ("repeated_passage_bars_mean", "repeated bars", ".1f", False),
                   ("bar_self_similarity", "bar similarity", ".2f", False),
                   ("form_in_real_range", "form in range", "d", False),
                   ("copied_events_max", "longest copy", "d", False), ("copied_bars_max", "copy (bars)", ".1f", False)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", type=Path, help="a run folder (repeatable; default: all in checkpoints/)")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="where to look for runs (default: checkpoints)")
    parser.add_argument("--data", type=Path, help="processed data (default: the one the runs were trained on)")
    parser.add_argument("--split", default="test", choices=("test", "validation"), help="held-out split (default: test)")
    parser.add_argument("--pieces", type=int, default=16, help="pieces generated per model (default: 16)")
    parser.add_argument("--length", type=int, default=128, help="events per generated piece (default: 128)")
    parser.add_argument("--whole-pieces", type=int, default=16, metavar="N",
                        help="whole pieces generated per model, each until the model ends it, and judged against as "
                             "many whole held-out pieces (default: 16; 0: none)")
    parser.add_argument("--likelihood-only", action="store_true", help="score held-out pieces only; generate nothing")
    parser.add_argument("--per-piece", type=Path, metavar="FILE.csv",
                        help="also write one row per model and held-out piece: tokens, notes, events, duration and "
                             "total negative log-likelihood, overall and by token kind")
    parser.add_argument("--by", metavar="LABEL",
                        help="also score the held-out pieces of each value of LABEL apart (a label column of the "
                             "data's manifest.csv: style, composer, key, density), each model against the first "
                             "(the n-gram), into by_LABEL.csv; and unless --likelihood-only, each value's own "
                             "--whole-pieces against its real ones, into whole_pieces_by_LABEL.csv")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the intervals (default: 1000)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the n-gram baseline fitted on the fly")
    parser.add_argument("--output", type=Path, default=Path("evaluation"), help="report folder (default: evaluation/)")
    sampling.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.pieces < 1 or args.length < 1 or args.resamples < 1:
        raise UserError("--pieces, --length and --resamples must be at least 1")
    if args.whole_pieces < 0:
        raise UserError(f"--whole-pieces must be 0 or more, got {args.whole_pieces}")
    if args.whole_pieces and args.strategy == "beam" and not args.likelihood_only:
        raise UserError("whole pieces are sampled until the model ends them; use a strategy other than beam, "
                        "or --whole-pieces 0")
    strategy = sampling.from_arguments(args)
    from musicgen.runs import read_run_config, run_folders

    folders = args.checkpoint or run_folders(args.checkpoints)
    if not folders:
        raise UserError(f"no runs in {args.checkpoints}/ (train one with train.py, or pass --checkpoint)")
    for folder in folders:
        read_run_config(folder)  # a wrong folder is refused before TensorFlow takes seconds to load
    import pandas as pd

    from musicgen.backend import import_tensorflow

    import_tensorflow()  # before anything imports keras: without TensorFlow's start-up noise
    from models import registry
    from musicgen import evaluation, reports
    from musicgen.dataset import load_processed
    runs = [registry.load_run(folder) for folder in folders]
    data = args.data or Path(runs[0].run_config["data"])
    vocabulary, splits = load_processed(data)
    for run in runs:
        if run.vocabulary.hash() != vocabulary.hash():
            raise UserError(f"run {run.name} was trained with another vocabulary than {data}; "
                            "evaluate runs of one data set")
    if len(splits[args.split]) == 0:
        raise UserError(f"the {args.split} split of {data} is empty")
    if args.by:
        from musicgen import breakdown

        values = breakdown.label_column(pd.read_csv(Path(data) / "manifest.csv", keep_default_na=False), args.by,
                                        data)
    candidates = [(run.name, run.spec, run.spec.decoder(run.model, seed=args.random_seed)) for run in runs]
    if not args.no_baseline and not any(run.spec.counted for run in runs):
        name, spec, model = registry.fit_baseline(splits, vocabulary)
        candidates.insert(0, (name, spec, spec.decoder(model)))
    if args.likelihood_only and not any(spec.likelihood for _, spec, _ in candidates):
        raise UserError("--likelihood-only needs a model with a likelihood (not only a gan); drop --no-baseline")
    result = evaluation.evaluate(candidates, splits, vocabulary, strategy, args.split, args.pieces, args.length,
                                 args.random_seed, likelihood_only=args.likelihood_only, resamples=args.resamples,
                                 whole=args.whole_pieces)
    result.description = {"data": str(data), **result.description}
    if not args.likelihood_only:
        result.description["decoding"] = args.strategy
    reports.write_evaluation(args.output, result, vocabulary.settings)
    table = pd.DataFrame(result.rows)
    columns = [column for column in SUMMARY_COLUMNS if column[0] in table and table[column[0]].notna().any()]
    print(reports.summary_table(table, columns))
    if args.per_piece:
        reports.write_csv(args.per_piece, result.per_piece)
        print(f"wrote {len(result.per_piece)} rows to {args.per_piece}")
    if args.by:
        table = breakdown.by_label(result.per_piece, values, args.resamples, args.random_seed)
        reports.write_csv(args.output / f"by_{args.by}.csv", table)
        print(f"nats per note by {args.by} (95 % bootstrap over each value's pieces):")
        print(breakdown.summary(table))
        if args.whole_pieces and not args.likelihood_only:
            table = breakdown.whole_pieces_by_label(candidates, splits[args.split], vocabulary, strategy, values,
                                                    args.whole_pieces)
            reports.write_csv(args.output / f"whole_pieces_by_{args.by}.csv", table)
            print(f"whole pieces by {args.by}, each value's own against its real ones (whole_pieces_by_{args.by}.csv):")
            print(breakdown.whole_pieces_summary(table))
    if result.whole_pieces:
        whole = reports.whole_pieces_table(result.whole_pieces)
        for model in result.whole_pieces:
            inside = ((whole[model] >= whole["real_p10"]) & (whole[model] <= whole["real_p90"])).sum()
            print(f"{model}: whole pieces inside the real range on {inside} of {len(whole)} statistics "
                  f"(report.md, 'Whole pieces')")
    print(f"wrote {args.output / 'evaluation.csv'}, differences.csv, report.md"
          + ("" if args.likelihood_only else " and plots") + f" in {args.output}/")


if __name__ == "__main__":
    run_cli(main)
