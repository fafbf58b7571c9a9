"""PNG figures: training curves, piano rolls of generated pieces, and a one-page corpus overview."""

import math
import re
from collections import Counter

import numpy as np

from musicgen.files import atomic_path
from musicgen.notes import ONSET, PITCH, PROGRAM, VELOCITY, as_notes, pitch_name
from musicgen.tokens import KINDS


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, dpi=100):
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    pyplot().close(figure)


def plot_history(history, path):
    """Training and validation loss and accuracy per epoch, from run_config's history rows."""
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric, label in ((axes[0], "loss", "loss (nats per token; gan: critic estimate)"),
                                (axes[1], "accuracy", "next-token accuracy")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [row.get(prefix + metric, math.nan) for row in history]
            axis.plot(epochs, values, style, label=("validation" if prefix else "training"), markersize=3)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    save_figure(figure, path)


def plot_piano_roll(path, notes, steps_per_quarter, seed_steps=0, title="", seconds=False, given_from=None,
                    given=None):
    """Notes (onset, duration, pitch[, velocity, program] in grid steps) as bars over time: quarter notes, or
    with `seconds` (an encoding in real time, whose "quarter" is half a second) seconds.

    The seed's notes are grey, behind a line (a note belongs to the seed when it
    starts before `seed_steps`); the others take a colour per instrument, named in
    the legend, and the louder a note the darker its bar. With `given_from` (an
    infilled piece), the notes from that step on are given too, behind a second line; `given`, a mask of the
    notes, says which were given wherever they lie (a harmonized melody).
    """
    from musicgen.instruments import instrument_name

    plt = pyplot()
    from matplotlib.colors import to_rgb

    notes = as_notes(notes)
    figure, axis = plt.subplots(figsize=(12, 4.5))
    steps_per_unit = 2 * steps_per_quarter if seconds else steps_per_quarter
    times = notes[:, :2] / steps_per_unit
    in_seed = (notes[:, ONSET] < seed_steps) | (given_from is not None and notes[:, ONSET] >= given_from)
    if given is not None:
        in_seed = np.asarray(given, dtype=bool)
    loudness = 0.35 + 0.65 * notes[:, VELOCITY] / 127
    programs = np.unique(notes[~in_seed, PROGRAM]).tolist()
    layers = [(in_seed, "#9a9a9a", "seed" if given_from is None and given is None else "given")]
    layers += [((~in_seed) & (notes[:, PROGRAM] == program), colour,
                "generated" if len(programs) == 1 else instrument_name(program))
               for program, colour in zip(programs, INSTRUMENT_COLOURS * (len(programs) // len(INSTRUMENT_COLOURS) + 1))]
    for mask, colour, label in layers:
        if mask.any():
            colours = [(*to_rgb(colour), alpha) for alpha in loudness[mask]]
            axis.barh(notes[mask, PITCH], times[mask, 1], left=times[mask, 0], height=0.85, color=colours,
                      edgecolor="#5a5a5a" if label in ("seed", "given") else "#0b2f4f", linewidth=0.4, label=label)
    for line in (seed_steps, given_from):
        if line:
            axis.axvline(line / steps_per_unit, color="#c0392b", linestyle="--", linewidth=1.2)
    end = max(float((times[:, 0] + times[:, 1]).max()) if len(notes) else 4.0, 4.0)
    axis.set_xlim(0, end)
    low, high = (int(notes[:, PITCH].min()) - 2, int(notes[:, PITCH].max()) + 2) if len(notes) else (58, 74)
    axis.set_ylim(low, high)
    octaves = [p for p in range(low, high + 1) if p % 12 == 0]
    axis.set_yticks(octaves, [pitch_name(p) for p in octaves])
    axis.set_xticks(np.arange(0, end + 1, 4))  # bar lines of 4/4, or every 4 seconds
    axis.grid(axis="x", alpha=0.35)
    axis.grid(axis="y", alpha=0.12)
    axis.set_xlabel("seconds" if seconds else "quarter notes")
    axis.set_ylabel("pitch")
    axis.set_title(title)
    shown = sum(mask.any() for mask, _, _ in layers)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, ncol=1 + shown // 18,
                title="darker = louder", title_fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


INSTRUMENT_COLOURS = ["#1f6fb4", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#d4ac0d", "#7f8c8d",
                      "#2c3e50", "#e84393"]


def plot_corpus_overview(path, vocabulary, splits, manifest, title=""):
    """One page about a processed corpus: events per piece, pitches, common chords and durations, drops by reason.

    Everything is counted from the token arrays with bincount, so it costs one
    pass over the tokens however many pieces there are. Transposed training
    copies are left out where they would skew the picture (pieces, pitches).
    """
    plt = pyplot()
    kinds = vocabulary.kinds
    # Merged tokens are counted as their parts: every note, duration and chord shows, however it was written.
    originals = {name: [vocabulary.expand(split.piece(i)) for i in split.original_indices()]
                 for name, split in splits.items()}
    pieces = [piece for split_pieces in originals.values() for piece in split_pieces]
    counts = np.bincount(np.concatenate(pieces) if pieces else np.zeros(0, np.int64), minlength=len(vocabulary))
    event_kinds = np.isin(kinds, [KINDS.index(k) for k in ("rest", "note", "chord")])
    events_per_piece = [int(event_kinds[piece].sum()) for piece in pieces]
    figure, axes = plt.subplots(2, 3, figsize=(16, 9))
    figure.suptitle(title, fontsize=14)

    axis = axes[0, 0]
    if events_per_piece:
        low, high = max(1, min(events_per_piece)), max(2, max(events_per_piece))
        axis.hist(events_per_piece, bins=np.geomspace(low, high * 1.01, 30), color="#1f6fb4")
        axis.set_xscale("log")
    axis.set_title(f"events per piece ({len(events_per_piece)} pieces, median {np.median(events_per_piece or [0]):.0f})")
    axis.set_xlabel("events (log scale)")
    axis.set_ylabel("pieces")

    pitch_counts = np.zeros(128)
    for token_id in np.flatnonzero(np.isin(kinds, [KINDS.index("note"), KINDS.index("chord")]) & (counts > 0)):
        pitch_counts[list(vocabulary.pitches[token_id])] += counts[token_id]
    used = np.flatnonzero(pitch_counts)
    axis = axes[0, 1]
    if len(used):
        axis.bar(np.arange(used[0], used[-1] + 1), pitch_counts[used[0]: used[-1] + 1], width=1.0, color="#2a9d8f")
        ticks = [p for p in range(used[0], used[-1] + 1) if p % 12 == 0]
        axis.set_xticks(ticks, [pitch_name(p) for p in ticks])
        axis.set_title(f"pitch range: {pitch_name(used[0])} to {pitch_name(used[-1])}")
    axis.set_ylabel("notes")

    for axis, kind, top, label in ((axes[0, 2], "chord", 15, "most common chords"),
                                   (axes[1, 0], "duration", 12, "most common durations (quarter notes)")):
        ids = np.flatnonzero(kinds == KINDS.index(kind))
        ids = ids[np.argsort(-counts[ids], kind="stable")][:top]
        ids = ids[counts[ids] > 0][::-1]
        names = [vocabulary.tokens[i] if kind == "chord" else
                 f"{vocabulary.duration_steps[i] / vocabulary.settings.steps_per_quarter:g}" for i in ids]
        axis.barh(np.arange(len(ids)), counts[ids], color="#e76f51" if kind == "chord" else "#8e6bbf")
        axis.set_yticks(np.arange(len(ids)), names, fontsize=8)
        axis.set_title(label if len(ids) else f"{label}: none")
        axis.set_xlabel("events")

    axis = axes[1, 1]
    per_split = {name: len(split_pieces) for name, split_pieces in originals.items()}
    axis.bar(list(per_split), list(per_split.values()), color="#264653")
    axis.set_title("pieces per split")
    for x, value in enumerate(per_split.values()):
        axis.annotate(str(value), (x, value), ha="center", va="bottom")

    axis = axes[1, 2]
    outcomes = Counter("kept" if status == "kept" else f"{status}: {_reason_kind(reason)}"
                       for status, reason in zip(manifest["status"], manifest["reason"]))
    labels, values = zip(*sorted(outcomes.items(), key=lambda item: item[1]))
    axis.barh(np.arange(len(labels)), values, color=["#2a9d8f" if label == "kept" else "#c0392b" for label in labels])
    for y, value in enumerate(values):
        axis.annotate(f" {value}", (value, y), va="center", fontsize=8)
    axis.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    axis.set_title(f"files and tunes by outcome ({sum(values)} in all)")
    axis.set_xlabel("pieces")
    figure.tight_layout()
    save_figure(figure, path)


def _reason_kind(reason):
    """'only 5 notes (--min-notes is 8)' -> 'only N notes': one bar per kind of reason, not per file."""
    reason = re.sub(r"\b\d[\d,.]*\b", "N", str(reason).split(" (")[0])
    return reason[:48] or "no reason given"
