"""Writing evaluation results: a CSV, a Markdown report and histogram plots."""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from musicgen import plots, whole_pieces
from musicgen.evaluation import FORM_STATISTICS, REAL_PERCENTILES
from musicgen.files import atomic_path, write_text
from musicgen.notes import PITCH_CLASS_NAMES

LIKELIHOOD_COLUMNS = ["nll_nats", "nll_bits", "perplexity", "accuracy", "nats_per_note", "pitch_bits_per_note",
                      "pitch_bits", "duration_bits", "shift_bits", "velocity_bits", "instrument_bits",
                      "harmony_bits"]
STATISTICS = ["pitch_range", "pitches_used", "polyphony", "mean_duration_quarters", "mean_ioi_quarters",
              "pitch_class_entropy", "scale_fit", "silent_beat_rate"]
HISTOGRAMS = ["pitch_class_histogram", "duration_histogram", "velocity_histogram", "instrument_histogram",
              "onset_gap_histogram"]  # those the encoding has (evaluation.histogram_counters)
REPETITION_COLUMNS = ["distinct_2", "longest_loop_mean", "longest_loop_max", "repeated_passage_bars_max",
                      "copied_events_mean", "copied_events_max", "copied_bars_mean", "copied_bars_max", "copied_from"]
HELD_OUT = "real: held-out music"


def _format(value, spec=".3f"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    return format(int(value), "d") if spec == "d" else format(float(value), spec)


def cell(row, key, spec=".3f", interval=True):
    """A value with its 95 % interval when the row has one: '2.134 [2.051, 2.220]'."""
    text = _format(row.get(key), spec)
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if interval and text != "-" and low is not None and not (isinstance(low, float) and math.isnan(low)):
        text += f" [{_format(low, spec)}, {_format(high, spec)}]"
    return text


def _markdown(table, columns, headers=None):
    headers = headers or columns
    lines = ["| model | " + " | ".join(headers) + " |", "|---" * (len(columns) + 1) + "|"]
    for _, row in table.iterrows():
        lines.append(f"| {row['model']} | " + " | ".join(cell(row, column) for column in columns) + " |")
    return "\n".join(lines)


def summary_table(table, columns):
    """A fixed-width text table of the chosen (key, header, format, with interval) columns."""
    cells = [[cell(row, key, spec, interval) for key, _, spec, interval in columns] for _, row in table.iterrows()]
    widths = [max([len(header), 9] + [len(row[i]) for row in cells]) for i, (_, header, _, _) in enumerate(columns)]
    name_width = max(len(str(name)) for name in table["model"])
    lines = [f"{'model':<{name_width}}  " + "  ".join(f"{h:>{w}}" for (_, h, _, _), w in zip(columns, widths))]
    for name, row in zip(table["model"], cells):
        lines.append(f"{name:<{name_width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(row, widths)))
    return "\n".join(lines)


def differences_markdown(differences):
    """Paired differences as a Markdown table, each with what its interval says."""
    lines = ["| model | compared with | metric | difference [95 % interval] | verdict |", "|---|---|---|---|---|"]
    for row in differences:
        if row["low"] > 0:
            verdict = "higher"
        elif row["high"] < 0:
            verdict = "lower"
        else:
            verdict = "no clear difference"
        lines.append(f"| {row['model']} | {row['compared_with']} | {row['metric']} | "
                     f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}] | {verdict} |")
    return "\n".join(lines)


def write_csv(path, table):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


def write_evaluation(output, evaluation, settings):
    """evaluation.csv, differences.csv, report.md and (after a generating run) histogram plots in `output`."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(evaluation.rows)
    write_csv(output / "evaluation.csv", table)
    write_csv(output / "differences.csv", pd.DataFrame(evaluation.differences,
                                                       columns=["model", "compared_with", "metric", "difference",
                                                                "low", "high"]))
    parts = [
        "# Evaluation\n",
        "\n".join(f"- {key}: {value}" for key, value in evaluation.description.items()),
        "\n## Likelihood on held-out pieces\n",
        "Negative log-likelihood of each token given everything before it in its piece, summed over the "
        "held-out pieces and divided by their tokens (`nll_*`), or by their notes (`*_per_note`: compares across "
        "encodings, whose tokens differ). `*_bits` split it by the kind of token predicted (pitch = note or "
        "chord tokens; velocity and instrument tokens where the encoding has them). In brackets: the 95 % "
        "interval from a bootstrap over pieces.\n",
        _markdown(table[table["nll_nats"].notna()] if "nll_nats" in table else table.iloc[0:0],
                  [column for column in LIKELIHOOD_COLUMNS if column not in table or table[column].notna().any()]),
    ]
    if evaluation.differences:
        parts += ["\n## Differences between models\n",
                  "Each model minus each one before it, on the same pieces (held-out pieces for likelihood, the "
                  "same seeds for generated music), with the interval of a paired bootstrap: where it leaves out "
                  "0 the difference is clear at the 95 % level.\n",
                  differences_markdown(evaluation.differences)]
    if "mean_overlap" in table:
        parts += _music_sections(table)
    if evaluation.whole_pieces:
        whole = whole_pieces_table(evaluation.whole_pieces)
        write_csv(output / "whole_pieces.csv", whole)
        parts += ["\n## Whole pieces\n",
                  "Pieces each model began at `<start>` (with the labels of a held-out piece, where the run has "
                  "labels) and wrote until it ended them, against whole held-out pieces; all but the length and the "
                  "ending on each piece cut to its real partner's length (musicgen/whole_pieces.py says how each is "
                  "computed). A mean outside the real pieces' 10th-90th percentile range is marked *below* or "
                  "*above*.\n",
                  _whole_pieces_markdown(whole)]
    write_text(output / "report.md", "\n".join(parts) + "\n")
    if evaluation.histograms:
        _plot_histograms(output, evaluation.histograms, settings)


def whole_pieces_table(judged):
    """One row per whole-piece statistic: each model's mean, and the real pieces' mean and 10th-90th percentiles."""
    rows = []
    for statistic, meaning in whole_pieces.STATISTICS.items():
        first = next(iter(judged.values()))[statistic]
        row = {"statistic": statistic, "meaning": meaning}
        row.update({model: table[statistic][0] for model, table in judged.items()})
        row.update(real=first[1], real_p10=first[2], real_p90=first[3])
        rows.append(row)
    return pd.DataFrame(rows)


def _whole_pieces_markdown(whole):
    models = [column for column in whole.columns if column not in ("statistic", "meaning", "real", "real_p10",
                                                                     "real_p90")]
    lines = ["| statistic | " + " | ".join(models) + " | real | real 10th-90th percentile |",
             "|---" * (len(models) + 3) + "|"]
    for _, row in whole.iterrows():
        cells = []
        for model in models:
            text = _format(row[model])
            if row[model] < row["real_p10"]:
                text += " *below*"
            elif row[model] > row["real_p90"]:
                text += " *above*"
            cells.append(text)
        lines.append(f"| {row['meaning']} | " + " | ".join(cells) + f" | {_format(row['real'])} | "
                     f"{_format(row['real_p10'])} to {_format(row['real_p90'])} |")
    return "\n".join(lines)


def _music_sections(table):
    overlap_columns = [f"{name}_overlap" for name in STATISTICS + HISTOGRAMS if f"{name}_overlap" in table]
    compared = table[table["model"] != HELD_OUT]
    return [
        "\n## Musical statistics\n",
        "Overlap of the kernel-smoothed distributions of each statistic's per-piece values over generated pieces "
        "and over the real continuations of the same seeds (1 = indistinguishable). The row *real: training "
        "music* is the as-real-as-real mark: training pieces against the held-out ones. Intervals resample the "
        "row's pieces, the held-out reference held fixed.\n",
        _markdown(compared, overlap_columns + ["mean_overlap"],
                  [c.replace("_overlap", "") for c in overlap_columns] + ["mean"]),
        "\nMean of each statistic:\n",
        _markdown(table, [f"{name}_mean" for name in STATISTICS], STATISTICS),
        "\n## Form against real music\n",
        "How much each piece repeats itself: the share of events inside a 4-event pattern that occurs twice or "
        "more (`repeated_4gram_share`), distinct 4-event patterns over all (`distinct_4`), the longest run of "
        "bars that comes back later in the piece (`repeated_passage_bars`, the mean over pieces) and each bar's "
        "best Jaccard similarity to an earlier bar, by onsets and pitches, averaged over bars "
        "(`bar_self_similarity`). Each mean is marked *below* or *above* where it falls outside the 10th-90th "
        "percentile range of the real held-out continuations (the last row); the last column counts the "
        "statistics inside it.\n",
        _form_markdown(table),
        "\n## Repetition and copying\n",
        "Distinct 2-event patterns over all, the longest back-to-back loop (events), the longest repeated passage "
        "(bars), and the longest run of events found verbatim in the training set, in events and in bars, with "
        "its source. Real music repeats too: compare with the *real* rows.\n",
        _markdown(table, REPETITION_COLUMNS),
    ]


def _form_markdown(table):
    """The means of FORM_STATISTICS, each marked where it leaves the real range, and a last row with that range."""
    held_out = table[table["model"] == HELD_OUT].iloc[0]
    low, high = (f"real_p{percentile}" for percentile in REAL_PERCENTILES)
    lines = ["| model | " + " | ".join(FORM_STATISTICS) + " | in real range |",
             "|---" * (len(FORM_STATISTICS) + 2) + "|"]
    for _, row in table.iterrows():
        cells = []
        for name, column in FORM_STATISTICS.items():
            text, inside = cell(row, column), row.get(f"{name}_in_real_range")
            if not (pd.isna(inside) or inside):
                text += " *below*" if row[column] < held_out[f"{name}_{low}"] else " *above*"
            cells.append(text)
        count = row.get("form_in_real_range")
        cells.append("-" if pd.isna(count) else f"{int(count)} of {len(FORM_STATISTICS)}")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    ranges = [f"{_format(held_out[f'{name}_{low}'])} to {_format(held_out[f'{name}_{high}'])}"
              for name in FORM_STATISTICS]
    percentiles = "-".join(f"{percentile}th" for percentile in REAL_PERCENTILES)
    lines.append(f"| {HELD_OUT}, {percentiles} percentile | " + " | ".join(ranges) + " | |")
    return "\n".join(lines)


def _plot_histograms(output, histograms, settings):
    plt = plots.pyplot()
    names = list(histograms)
    for position, filename, labels, title in (
            (0, "pitch_classes.png", PITCH_CLASS_NAMES, "pitch classes"),
            (1, "durations.png", None, "note durations (quarter notes)")):
        figure, axis = plt.subplots(figsize=(11, 4))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = histograms[name][position]
            if position == 1:
                values = values[: 4 * settings.steps_per_quarter]
            axis.bar(np.arange(len(values)) + i * width, values, width, label=name)
        count = 12 if position == 0 else 4 * settings.steps_per_quarter
        ticks = labels or [f"{(n + 1) / settings.steps_per_quarter:g}" for n in range(count)]
        axis.set_xticks(np.arange(count) + 0.4 - width / 2, ticks, rotation=0 if position == 0 else 90)
        axis.set_ylabel("share")
        axis.set_title(f"{title}: generated vs held-out music")
        axis.legend(fontsize=8)
        figure.tight_layout()
        plots.save_figure(figure, output / filename, dpi=90)
