"""Is the music any good? Compare trained models on held-out music, against an n-gram baseline.

    python evaluate.py                                   # every run under checkpoints/
    python evaluate.py --checkpoint checkpoints/lstm --checkpoint checkpoints/transformer --pieces 32

Reports, on the test split: negative log-likelihood per token (nats, bits, perplexity), next-token accuracy
and bits per token kind; then, for pieces generated from the opening of held-out pieces, how close their
musical statistics come to the real continuations (next to training music, the as-real-as-real mark), how
much they repeat themselves and how much they copy from the training set. Writes evaluation.csv, report.md
and histogram plots to --output.
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from musicgen import sampling  # noqa: E402
from musicgen.errors import UserError, run_cli  # noqa: E402

SUMMARY_COLUMNS = [("nll_bits", "bits/token", ".3f"), ("perplexity", "perplexity", ".2f"), ("accuracy", "accuracy", ".3f"),
                   ("pitch_bits", "pitch bits", ".3f"), ("mean_overlap", "stats overlap", ".3f"),
                   ("repeated_4gram_share", "repeated 4-grams", ".3f"), ("longest_loop_mean", "loop (events)", ".1f"),
                   ("copied_events_max", "longest copy", "d")]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", type=Path, help="a run folder (repeatable; default: all in checkpoints/)")
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="where to look for runs (default: checkpoints)")
    parser.add_argument("--data", type=Path, help="processed data (default: the one the runs were trained on)")
    parser.add_argument("--split", default="test", choices=("test", "validation"), help="held-out split (default: test)")
    parser.add_argument("--pieces", type=int, default=16, help="pieces generated per model (default: 16)")
    parser.add_argument("--length", type=int, default=128, help="events per generated piece (default: 128)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the n-gram baseline fitted on the fly")
    parser.add_argument("--output", type=Path, default=Path("evaluation"), help="report folder (default: evaluation/)")
    sampling.add_arguments(parser)
    return parser.parse_args(argv)


def find_runs(args):
    from musicgen import training

    if args.checkpoint:
        return args.checkpoint
    runs = sorted(path.parent for path in args.checkpoints.glob(f"*/{training.RUN_CONFIG_FILE}"))
    if not runs:
        raise UserError(f"no runs in {args.checkpoints}/ (train one with train.py, or pass --checkpoint)")
    return runs


def main(argv=None):
    args = parse_args(argv)
    if args.pieces < 1 or args.length < 1:
        raise UserError("--pieces and --length must be at least 1")
    import numpy as np
    import pandas as pd

    import models
    from models.ngram import NgramDecoder, fit_best_order
    from musicgen import evaluation, reports, training
    from musicgen.dataset import load_processed

    sampler = sampling.from_arguments(args)
    runs = [(run.name, *training.load_run(run)) for run in find_runs(args)]
    data = args.data or Path(runs[0][1]["data"])
    vocabulary, splits = load_processed(data)
    for name, run_config, run_vocabulary, _ in runs:
        if run_vocabulary.hash() != vocabulary.hash():
            raise UserError(f"run {name} was trained with another vocabulary than {data}; evaluate runs of one data set")
    held_out = splits[args.split]
    if len(held_out) == 0:
        raise UserError(f"the {args.split} split of {data} is empty")
    pieces = [held_out.piece(i) for i in range(len(held_out))]
    target_kinds = np.concatenate([vocabulary.kinds[piece[1:]] for piece in pieces])

    candidates = [(name, models.get(run_config["model"]), models.make_decoder(run_config["model"], model, args.random_seed))
                  for name, run_config, _, model in runs]
    if not args.no_baseline and not any(run_config["model"] == "ngram" for _, run_config, _, _ in runs):
        baseline, _ = fit_best_order(splits["train"].tokens, splits["validation"].tokens, len(vocabulary), 6)
        candidates.insert(0, (f"ngram baseline (order {baseline.order})", models.get("ngram"), NgramDecoder(baseline)))

    rng = np.random.default_rng(args.random_seed or 0)
    prompts, indices = evaluation.seed_prompts(held_out, vocabulary, args.pieces)
    reference = evaluation.real_continuations(held_out, vocabulary, indices, args.length)
    training_excerpts, copy_finder = evaluation.training_reference(splits["train"], vocabulary, args.pieces,
                                                                   args.length, rng)
    settings = vocabulary.settings
    rows, histograms = [], {}
    for name, spec, decoder in candidates:
        print(f"evaluating {name} ...", flush=True)
        row = {"model": name}
        if spec.likelihood:
            row.update(evaluation.likelihood_summary(*evaluation.score_pieces(decoder, pieces, vocabulary.pad_id),
                                                     target_kinds))
        generated = evaluation.generate_pieces(decoder, vocabulary, prompts, args.length, sampler, args.beam_width)
        music, (histograms[name], histograms["held-out music"], _) = evaluation.music_report(
            generated, reference, training_excerpts, settings.steps_per_quarter, settings.max_duration_steps)
        row.update(music)
        row.update(evaluation.repetition_report(generated))
        row.update(evaluation.copying_report(generated, copy_finder))
        rows.append(row)
    for name, group in (("real: training music", training_excerpts), ("real: held-out music", reference)):
        row = {"model": name}
        if name == "real: training music":
            music, _ = evaluation.music_report(group, reference, training_excerpts, settings.steps_per_quarter,
                                               settings.max_duration_steps)
            row.update(music)
        row.update(evaluation.repetition_report(group))
        if name == "real: held-out music":  # training music trivially 'copies' itself
            row.update(evaluation.copying_report(group, copy_finder))
        rows.append(row)

    table = pd.DataFrame(rows)
    output = args.output
    reports.write_evaluation(output, table, histograms, settings, description={
        "data": str(data), "split": args.split, "held-out pieces scored": len(pieces), "pieces generated": len(prompts),
        "events each": args.length, "seed": f"the first {evaluation.SEED_EVENTS} events of held-out pieces",
        "decoding": args.strategy})
    print(reports.summary_table(table, SUMMARY_COLUMNS))
    print(f"wrote {output / 'evaluation.csv'}, {output / 'report.md'} and plots in {output}/")


if __name__ == "__main__":
    run_cli(main)
