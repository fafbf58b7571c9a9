"""Likelihood by label: each model's nats per note on the held-out pieces of each value of a label (a style, a
composer, a key), with 95 % intervals, and its paired difference to the first model (evaluate.py's n-gram); and
whole pieces by label: each value's own whole pieces, generated and judged against its real ones.

One shared model of many styles is only as good as it is on each of them: a
corpus-wide figure can hide a style the model has all but ignored. The pieces of
a value are resampled on their own (musicgen/intervals.py), so a value with few
test pieces gets the wide interval it deserves.
"""

import numpy as np
import pandas as pd

from musicgen import intervals, whole_pieces
from musicgen.dataset import Split
from musicgen.errors import UserError
from musicgen.labels import RESERVED_NAMES

NO_VALUE = "(none)"  # the group of pieces the manifest gives no value of the label


def label_column(manifest, label, data):
    """The manifest's {source: value} of `label`; a label it has no column for is refused, naming those it has."""
    if label not in manifest.columns:
        known = [column for column in manifest.columns
                 if column not in RESERVED_NAMES and not column.endswith("_not_in_vocabulary")]
        raise UserError(f"the manifest of {data} has no label {label!r}; its labels: {', '.join(known) or 'none'}")
    values = manifest[manifest["status"] == "kept"].set_index("source")[label].astype(str)
    return values.where(values != "", NO_VALUE).to_dict()


def by_label(per_piece, values, resamples=intervals.RESAMPLES, random_seed=0):
    """One row per value and model: pieces, notes, nats_per_note with its interval, and beside the first model
    the paired difference to it (difference, difference_low, difference_high).

    `per_piece` is evaluation.evaluate's per_piece table (model, source, notes, nll_nats, ...), every model
    scored on the same pieces in the same order; `values` maps each source to its value (label_column).
    """
    models = list(dict.fromkeys(per_piece["model"]))
    tables = {model: per_piece[per_piece["model"] == model].reset_index(drop=True) for model in models}
    sources = tables[models[0]]["source"]
    if any(not tables[model]["source"].equals(sources) for model in models):
        raise ValueError("every model must be scored on the same pieces, in the same order")
    piece_values = sources.map(lambda source: values.get(source, NO_VALUE)).to_numpy()

    def statistic(table):
        nll, notes = table["nll_nats"].to_numpy(np.float64), table["notes"].to_numpy(np.float64)
        return lambda indices: {"nats_per_note": nll[indices].sum() / max(notes[indices].sum(), 1.0)}

    rows = []
    for value in sorted(set(piece_values)):
        chosen = np.flatnonzero(piece_values == value)
        draws = intervals.draws(len(chosen), resamples, random_seed)
        statistics = {model: statistic(tables[model].iloc[chosen]) for model in models}
        for model in models:
            row = {"value": value, "model": model, "pieces": len(chosen),
                   "notes": int(tables[model]["notes"].iloc[chosen].sum()),
                   **intervals.bootstrap(statistics[model], len(chosen), draws)}
            if model != models[0]:
                difference, low, high = intervals.paired_difference(
                    statistics[model], statistics[models[0]], len(chosen), draws)["nats_per_note"]
                row.update(difference=difference, difference_low=low, difference_high=high)
            rows.append(row)
    return pd.DataFrame(rows)


def summary(table):
    """The by_label table as text: a row per value, a column per model (nats per note [95 %])."""
    models = list(dict.fromkeys(table["model"]))
    lines = ["| value | pieces | " + " | ".join(f"{model} nats/note" for model in models)
             + "".join(f" | {model} − {models[0]}" for model in models[1:]) + " |",
             "|---|---:|" + "---|" * (2 * len(models) - 1)]
    for value, group in table.groupby("value", sort=True):
        rows = group.set_index("model")
        cells = [f"{rows.at[m, 'nats_per_note']:.3f} [{rows.at[m, 'nats_per_note_low']:.3f}, "
                 f"{rows.at[m, 'nats_per_note_high']:.3f}]" for m in models]
        cells += [f"{rows.at[m, 'difference']:+.3f} [{rows.at[m, 'difference_low']:+.3f}, "
                  f"{rows.at[m, 'difference_high']:+.3f}]" for m in models[1:]]
        lines.append(f"| {value} | {int(rows['pieces'].iloc[0])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def whole_pieces_by_label(candidates, held_out, vocabulary, strategy, values, count):
    """One row per value, model and whole-piece statistic (musicgen/whole_pieces.py): the first `count` held-out
    pieces of the value, each begun from its own opening (so with its value's label) and written until the model
    ends it, against those real pieces; `candidates` are evaluate.py's (name, spec, decoder)."""
    piece_values = np.array([values.get(source, NO_VALUE) for source in held_out.sources])
    rows = []
    for value in sorted(set(piece_values)):
        chosen = np.flatnonzero(piece_values == value)[:count]
        pieces = Split.from_pieces([held_out.piece(i) for i in chosen], held_out.sources[chosen],
                                   held_out.tempos[chosen])
        openings, references = whole_pieces.prompts_and_references(pieces, vocabulary, count)
        for name, _, decoder in candidates:
            made = whole_pieces.generate(decoder, vocabulary, strategy, openings, references)
            judged = whole_pieces.judge(made, references, vocabulary.settings.steps_per_quarter)
            rows += [{"value": value, "model": name, "pieces": len(chosen), "statistic": statistic,
                      "generated": generated, "real": real, "real_p10": low, "real_p90": high,
                      "inside": bool(low <= generated <= high)}
                     for statistic, (generated, real, low, high) in judged.items()]
    return pd.DataFrame(rows)


def whole_pieces_summary(table):
    """The whole_pieces_by_label table as text: per value and model, on how many statistics its whole pieces fall
    inside the real pieces' 10th-90th percentile range, and which fall outside."""
    lines = ["| value | pieces | model | inside the real range | outside |", "|---|---:|---|---:|---|"]
    for (value, model), group in table.groupby(["value", "model"], sort=False):
        judged = group.dropna(subset=["real_p10"])
        outside = ", ".join(judged.loc[~judged["inside"], "statistic"]) or "none"
        lines.append(f"| {value} | {int(group['pieces'].iloc[0])} | {model} | {int(judged['inside'].sum())} of "
                     f"{len(judged)} | {outside} |")
    return "\n".join(lines)
