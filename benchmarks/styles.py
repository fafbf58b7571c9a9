"""One model of many styles against a model of each style alone, style by style, on the same test pieces.

    python benchmarks/styles.py checkpoints/styles-ngram                     # n-grams: shared against alone
    python benchmarks/styles.py checkpoints/styles --alone "--epochs 50"     # the shared run's own model, alone
    python benchmarks/styles.py pretrained/styles --styles bach,trecento --alone "--epochs 10"   # some styles

The shared run was trained on the styles corpus (docs/pretrained.md, "What the styles model learned from":
`python -m musicgen.styles data/styles`, then preprocess.py --label-from folders=style). For each style
folder of --layout, this encodes that style alone with the shared run's vocabulary (preprocess.py --vocab,
so the tokens are the same and each piece keeps its split: splits follow file names), trains the shared run's
model on it alone (train.py --model <the shared run's>, with --alone's flags), and scores both on that
style's test pieces (evaluate.py --likelihood-only --per-piece). It prints, per style, nats per note of each
and their paired difference (shared minus alone) with a 95 % bootstrap over the style's test pieces; negative
means sharing helped. Everything it makes goes under --work (default: data/styles-alone, checkpoints/).
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from musicgen import intervals  # noqa: E402


def run(command, log):
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, *command], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"error: {' '.join(command[:2])} failed; see {log}")


def per_piece(checkpoint, data, work, name):
    """The per-piece likelihood table of `checkpoint` on the test split of `data`."""
    table = work / f"{name}-pieces.csv"
    run(["evaluate.py", "--checkpoint", str(checkpoint), "--data", str(data), "--likelihood-only", "--no-baseline",
         "--per-piece", str(table), "--output", str(work / f"{name}-evaluation")], work / f"{name}-evaluate.log")
    return first_model(pd.read_csv(table))


def first_model(pieces):
    """The rows of the first model of an evaluate.py --per-piece table, by source."""
    return pieces[pieces["model"] == pieces["model"].iloc[0]].set_index("source")


def compare(shared, alone, resamples):
    """(pieces, shared nats/note, alone nats/note, (difference, low, high)) on the pieces both scored."""
    common = sorted(set(shared.index) & set(alone.index))
    notes = shared.loc[common, "notes"].to_numpy(np.float64)
    totals = {name: table.loc[common, "nll_nats"].to_numpy(np.float64) for name, table in (("shared", shared),
                                                                                        ("alone", alone))}

    def statistic(name):
        return lambda indices: {"nats_per_note": totals[name][indices].sum() / notes[indices].sum()}

    everything = np.arange(len(common))
    difference = intervals.paired_difference(statistic("shared"), statistic("alone"), len(common),
                                             intervals.draws(len(common), resamples))["nats_per_note"]
    return (len(common), statistic("shared")(everything)["nats_per_note"],
            statistic("alone")(everything)["nats_per_note"], difference)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shared", type=Path, help="the run trained on every style")
    parser.add_argument("--layout", type=Path, default=Path("data/styles"), help="the style folders (default: "
                        "data/styles, as python -m musicgen.styles lays them out)")
    parser.add_argument("--alone", default="", metavar="FLAGS", help="more train.py flags for each style's run")
    parser.add_argument("--work", type=Path, default=Path("data/styles-alone"),
                        help="where the styles' data and logs go (default: data/styles-alone)")
    parser.add_argument("--shared-pieces", type=Path, metavar="FILE.csv",
                        help="the shared run's per-piece table on its test split, if made already (evaluate.py "
                             "--per-piece), instead of scoring it again")
    parser.add_argument("--styles", help="the styles to compare, comma-separated (default: every style folder)")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    config = json.loads((args.shared / "run_config.json").read_text())
    shared_data, model = Path(config["data"]), config["model"]
    args.work.mkdir(parents=True, exist_ok=True)
    if args.shared_pieces:
        shared_pieces = first_model(pd.read_csv(args.shared_pieces))
    else:
        shared_pieces = per_piece(args.shared, shared_data, args.work, "shared")
    styles = sorted(folder.name for folder in args.layout.iterdir() if folder.is_dir())
    if args.styles:
        chosen = set(args.styles.split(","))
        if chosen - set(styles):
            sys.exit(f"error: no style folder {', '.join(sorted(chosen - set(styles)))} in {args.layout}")
        styles = [style for style in styles if style in chosen]
    print(f"{args.shared} ({model}) against a {model} of each style alone, nats per note on each style's test "
          f"pieces; shared - alone with a 95 % bootstrap over them (negative: sharing helps)\n")
    print("| style | test pieces | shared | alone | shared - alone [95 %] |\n|---|---:|---:|---:|---|")
    for style in styles:
        data = args.work / style
        if not (data / ".cache").exists() and (shared_data / ".cache").exists():
            data.mkdir(parents=True, exist_ok=True)
            shutil.copytree(shared_data / ".cache", data / ".cache", copy_function=_link)  # music21 reads once
        run(["preprocess.py", "--input", str(args.layout / style), "--output", str(data), "--vocab",
             str(shared_data), "--compute-labels", "key,density", "--dedupe", "--workers", "1"],
            args.work / f"{style}-preprocess.log")
        run_name = f"{args.shared.name}-alone-{style}"
        run(["train.py", "--model", model, "--data", str(data), "--run-name", run_name, *args.alone.split()],
            args.work / f"{style}-train.log")
        alone_pieces = per_piece(Path("checkpoints") / run_name, data, args.work, style)
        pieces, shared, alone, (difference, low, high) = compare(shared_pieces, alone_pieces, args.resamples)
        interval = f"[{low:+.3f}, {high:+.3f}]" if pieces > 1 else "(one piece)"
        print(f"| {style} | {pieces} | {shared:.3f} | {alone:.3f} | {difference:+.3f} {interval} |", flush=True)


def _link(source, destination):
    try:
        Path(destination).hardlink_to(source)
    except OSError:  # another file system
        shutil.copy2(source, destination)


if __name__ == "__main__":
    main()
