"""Writing evaluation results: a CSV, a Markdown report and histogram plots."""

import math
from pathlib import Path

import numpy as np

from musicgen import plots
from musicgen.encoding import PITCH_CLASS_NAMES
from musicgen.files import atomic_path, write_text

LIKELIHOOD_COLUMNS = ["nll_nats", "nll_bits", "perplexity", "accuracy", "pitch_bits", "duration_bits", "shift_bits"]
STATISTICS = ["pitch_range", "pitches_used", "polyphony", "mean_duration_quarters", "mean_ioi_quarters",
              "pitch_class_entropy", "scale_fit", "silent_beat_rate"]
REPETITION_COLUMNS = ["repeated_4gram_share", "distinct_2", "distinct_4", "longest_loop_mean", "longest_loop_max",
                      "copied_events_mean", "copied_events_max", "copied_from"]


def _format(value, spec=".3f"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    return format(int(value), "d") if spec == "d" else format(float(value), spec)


def _markdown(table, columns, headers=None):
    headers = headers or columns
    lines = ["| model | " + " | ".join(headers) + " |", "|---" * (len(columns) + 1) + "|"]
    for _, row in table.iterrows():
        lines.append(f"| {row['model']} | " + " | ".join(_format(row.get(column)) for column in columns) + " |")
    return "\n".join(lines)


def summary_table(table, columns):
    """A fixed-width text table of the chosen (key, header, format) columns."""
    widths = [max(len(header), 9) for _, header, _ in columns]
    name_width = max(len(str(name)) for name in table["model"])
    lines = [f"{'model':<{name_width}}  " + "  ".join(f"{h:>{w}}" for (_, h, _), w in zip(columns, widths))]
    for _, row in table.iterrows():
        cells = [_format(row.get(key), spec) for key, _, spec in columns]
        lines.append(f"{row['model']:<{name_width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    return "\n".join(lines)


def write_evaluation(output, table, histograms, settings, description):
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(output / "evaluation.csv") as temporary:
        table.to_csv(temporary, index=False)
    overlap_columns = [f"{name}_overlap" for name in STATISTICS + ["pitch_class_histogram", "duration_histogram"]]
    parts = [
        "# Evaluation\n",
        "\n".join(f"- {key}: {value}" for key, value in description.items()),
        "\n## Likelihood on held-out pieces\n",
        "Negative log-likelihood per token, each token given everything before it in its piece. "
        "`*_bits` split it by the kind of token predicted (pitch = note or chord tokens).\n",
        _markdown(table[table["nll_nats"].notna()] if "nll_nats" in table else table.iloc[0:0], LIKELIHOOD_COLUMNS),
        "\n## Musical statistics\n",
        "Overlap of the kernel-smoothed distributions of each statistic's per-piece values over generated pieces "
        "and over the real "
        "continuations of the same seeds (1 = indistinguishable). The row *real: training music* is the "
        "as-real-as-real mark: training pieces against the held-out ones.\n",
        _markdown(table[table["model"] != "real: held-out music"], overlap_columns,
                  [c.replace("_overlap", "") for c in overlap_columns]),
        "\nMean of each statistic:\n",
        _markdown(table[table["model"] != "real: held-out music"], [f"{name}_mean" for name in STATISTICS], STATISTICS),
        "\n## Repetition and copying\n",
        "Share of events inside a 4-event pattern that occurs twice or more in the piece, distinct 2- and 4-event "
        "patterns over all, the longest back-to-back loop (events), and the longest run of events found verbatim "
        "in the training set, with its source. Real music repeats too: compare with the *real* rows.\n",
        _markdown(table, REPETITION_COLUMNS),
    ]
    write_text(output / "report.md", "\n".join(parts) + "\n")
    _plot_histograms(output, histograms, settings)


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
