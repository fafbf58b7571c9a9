"""Is the music any good? Likelihood on held-out pieces, musical statistics, repetition, form and copying.

Likelihood is measured the way a model generates: each held-out piece is fed
token by token through the model's decoder (teacher forcing), so every token is
scored given everything before it in its piece, with the model's own state,
cache or context window. The same held-out pieces seed the generated ones, whose
statistics are compared with the real continuations of those seeds and, as the
"as real as real" reference, with training pieces; the statistics of form (how
much a piece repeats itself, FORM_STATISTICS) are also held against the 10th-90th
percentile range of the real continuations. Every metric is a function of
the pieces it is computed over, so musicgen.intervals can bootstrap it over pieces.
"""

import dataclasses

import numpy as np
import pandas as pd
from tqdm import tqdm

from musicgen import intervals, whole_pieces
from musicgen.encoding import events_to_notes
from musicgen.metrics import (CopyFinder, bar_self_similarity, bars_of, corpus_histograms,
                              distinct_ngram_ratio, duration_counts, histogram_overlap, instrument_counts, longest_loop,
                              longest_repeated_passage, onset_gap_counts, piece_statistics, pitch_class_counts,
                              repeated_ngram_share, shares, value_distribution_overlap, velocity_counts)
from musicgen.tokens import KINDS

TOKEN_GROUPS = {"pitch": ("note", "chord"), "duration": ("duration",), "shift": ("shift",),
                "velocity": ("velocity",), "instrument": ("instrument",), "harmony": ("harmony",), "meter": ("meter",),
                "other": ("rest", "start", "end", "pad"),
                "merged": ("merged",)}
SEED_EVENTS = 16
LN2 = np.log(2)
# Each likelihood metric is a ratio of sums over pieces: (numerator column, denominator column, scale).
# Summing before dividing weighs every token (or note) alike, and lets the bootstrap resample whole pieces.
LIKELIHOOD_METRICS = {
    "nll_nats": ("nll_nats", "tokens", 1.0),
    "nll_bits": ("nll_nats", "tokens", 1 / LN2),
    "nats_per_note": ("nll_nats", "notes", 1.0),
    "accuracy": ("correct", "tokens", 1.0),
    "pitch_bits": ("pitch_nll_nats", "pitch_tokens", 1 / LN2),
    "pitch_bits_per_note": ("pitch_nll_nats", "notes", 1 / LN2),
    "duration_bits": ("duration_nll_nats", "duration_tokens", 1 / LN2),
    "shift_bits": ("shift_nll_nats", "shift_tokens", 1 / LN2),
    "velocity_bits": ("velocity_nll_nats", "velocity_tokens", 1 / LN2),  # NaN where the encoding has no velocities
    "instrument_bits": ("instrument_nll_nats", "instrument_tokens", 1 / LN2),  # or no instruments
    "harmony_bits": ("harmony_nll_nats", "harmony_tokens", 1 / LN2),  # or no chord symbols
    # A merged token (preprocess.py --merges) says several of the above at once: its bits count here, not there.
    "merged_bits": ("merged_nll_nats", "merged_tokens", 1 / LN2),  # or no merged tokens
}
# Metrics whose paired differences between models are reported ("A beats B" with an interval).
COMPARED_METRICS = ("nll_nats", "nats_per_note", "pitch_bits_per_note", "accuracy", "mean_overlap",
                    "repeated_4gram_share", "bar_self_similarity")
# Per-piece lengths reported by their mean and their maximum over pieces (<name>_mean, <name>_max); the other
# repetition statistics by their mean alone, under their own name.
LENGTHS = ("longest_loop", "repeated_passage_bars", "copied_events", "copied_bars")
# The statistics of form held against the 10th-90th percentile range of the real held-out continuations:
# {per-piece statistic: the column of its mean over pieces}.
FORM_STATISTICS = {"repeated_4gram_share": "repeated_4gram_share", "distinct_4": "distinct_4",
                   "repeated_passage_bars": "repeated_passage_bars_mean", "bar_self_similarity": "bar_self_similarity"}
REAL_PERCENTILES = (10, 90)


@dataclasses.dataclass
class Evaluation:
    rows: list  # one dict per model and per real reference: each metric with its _low and _high bounds
    per_piece: pd.DataFrame  # one row per model and held-out piece: its likelihood in totals (see likelihood_table)
    differences: list  # paired differences of COMPARED_METRICS between models, with intervals
    histograms: dict  # pooled pitch-class and duration histograms by name, for the plots
    description: dict
    whole_pieces: dict = dataclasses.field(default_factory=dict)  # {model: whole_pieces.judge's table}


def score_pieces(decoder, pieces, pad_id, batch_size=32, opened=1):
    """Per piece, (log-probability, correct-guess flag) of every token after the first.

    With `opened` > 1 (pieces that open with <start> and labels), the decoder starts on that many tokens and
    keeps them in view of the whole piece (Decoder.pin), as generating does; their own scores are left 0.
    """
    order = np.argsort([len(p) for p in pieces])
    scored = [None] * len(pieces)
    for begin in range(0, len(pieces), batch_size):
        batch = [pieces[i] for i in order[begin: begin + batch_size]]
        lengths = np.array([len(p) for p in batch])
        tokens = np.full((len(batch), lengths.max()), pad_id, dtype=np.int32)
        for row, piece in enumerate(batch):
            tokens[row, : len(piece)] = piece
        scores = np.zeros(tokens.shape, dtype=np.float64)
        hits = np.zeros(tokens.shape, dtype=bool)
        if opened > 1:
            decoder.pin(opened)
        logits, state = decoder.start(tokens[:, :opened])
        for t in range(opened, tokens.shape[1]):
            normalized = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            scores[:, t] = normalized[np.arange(len(batch)), tokens[:, t]]
            hits[:, t] = logits.argmax(axis=1) == tokens[:, t]
            if t + 1 < tokens.shape[1]:
                logits, state = decoder.step(tokens[:, t], state)
        for row, index in enumerate(order[begin: begin + batch_size]):
            scored[index] = (scores[row, 1: lengths[row]], hits[row, 1: lengths[row]])
    return scored


def describe_pieces(split, vocabulary):
    """One row per piece of `split`: source, tokens scored (all but the first), notes, events, quarters, seconds."""
    rows = []
    steps_per_quarter = vocabulary.settings.steps_per_quarter
    for index in range(len(split)):
        piece = split.piece(index)
        events = vocabulary.decode(piece)
        end = max([int(sum(event.shift for event in events))]
                  + [int(onset + duration) for onset, duration, *_ in events_to_notes(events)])
        quarters = end / steps_per_quarter
        rows.append({"source": str(split.sources[index]), "tokens": int((~vocabulary.is_control[piece[1:]]).sum()),
                     "notes": sum(len(event.pitches) for event in events), "events": len(events),
                     "quarters": quarters, "seconds": quarters * 60.0 / float(split.tempos[index])})
    return pd.DataFrame(rows)


def likelihood_table(decoder, split, vocabulary, descriptions=None):
    """describe_pieces' rows with each piece's total NLL (nats), correct guesses, and tokens and NLL per token group.

    A piece's control tokens (its labels) are given, not predicted: they count in no total. Totals, not means, so that any normalisation (per token, note, second or
    token group) is a ratio of two columns summed over the pieces wanted.
    """
    pieces = [split.piece(i) for i in range(len(split))]
    table = describe_pieces(split, vocabulary) if descriptions is None else descriptions.copy()
    group_kinds = {group: [KINDS.index(kind) for kind in kinds] for group, kinds in TOKEN_GROUPS.items()}
    columns = {"nll_nats": [], "correct": [], **{f"{g}_{c}": [] for g in TOKEN_GROUPS for c in ("tokens", "nll_nats")}}
    opened = max(1, min(vocabulary.opening_length(piece) for piece in pieces)) if pieces else 1
    for piece, (log_probabilities, correct) in zip(pieces, score_pieces(decoder, pieces, vocabulary.pad_id,
                                                                        opened=opened)):
        kinds = vocabulary.kinds[piece[1:]]
        predicted = ~vocabulary.is_control[piece[1:]]
        columns["nll_nats"].append(-log_probabilities[predicted].sum())
        columns["correct"].append(int(correct[predicted].sum()))
        for group, members in group_kinds.items():
            selected = np.isin(kinds, members)
            columns[f"{group}_tokens"].append(int(selected.sum()))
            columns[f"{group}_nll_nats"].append(-log_probabilities[selected].sum())
    for name, values in columns.items():
        table[name] = values
    return table


def likelihood_statistic(table):
    """statistic(piece indices) -> LIKELIHOOD_METRICS and perplexity over those rows of a likelihood_table."""
    needed = {column for numerator, denominator, _ in LIKELIHOOD_METRICS.values() for column in (numerator, denominator)}
    columns = {name: table[name].to_numpy(dtype=np.float64) for name in needed}

    def statistic(indices):
        sums = {name: values[indices].sum() for name, values in columns.items()}
        metrics = {name: sums[numerator] / sums[denominator] * scale if sums[denominator] > 0 else float("nan")
                   for name, (numerator, denominator, scale) in LIKELIHOOD_METRICS.items()}
        metrics["perplexity"] = float(np.exp(metrics["nll_nats"]))
        return metrics
    return statistic


def seed_prompts(split, vocabulary, count):
    """The first SEED_EVENTS events of up to `count` pieces long enough to go on: (prompts, their indices).

    Prompts are a list of token arrays: where the encoding keeps instruments or
    velocities, events differ in length (a rest has neither), and so do prompts.
    """
    prompts, indices = [], []
    for index in range(len(split)):
        piece = split.piece(index)
        boundaries = vocabulary.event_boundaries(piece)
        if len(boundaries) > SEED_EVENTS + 8:
            prompts.append(piece[: boundaries[SEED_EVENTS]])
            indices.append(index)
        if len(prompts) == count:
            break
    return prompts, indices


def real_continuations(split, vocabulary, indices, length):
    """Events SEED_EVENTS .. SEED_EVENTS + length of the given pieces."""
    return [vocabulary.decode(split.piece(i))[SEED_EVENTS: SEED_EVENTS + length] for i in indices]


def generate_pieces(decoder, vocabulary, prompts, length, strategy):
    """Each prompt (a list of token arrays) continued by `length` events with the decoding strategy, decoded to
    events. Prompts of one length share a batch."""
    pieces = [None] * len(prompts)
    for size in sorted({len(prompt) for prompt in prompts}):
        rows = [index for index, prompt in enumerate(prompts) if len(prompt) == size]
        batch = np.stack([prompts[index] for index in rows])
        decoder.pin(min(vocabulary.opening_length(prompt) for prompt in batch))
        for index, continuation in zip(rows, strategy.generate(decoder, vocabulary, batch, length)):
            pieces[index] = vocabulary.decode(continuation)
    return pieces


def music_statistic(pieces, reference, settings, copies=None):
    """statistic(piece indices) -> musical statistics, repetition, form and copying of `pieces` (event lists).

    With a `reference` (real held-out music, held fixed while the pieces are
    resampled), each per-piece statistic's values over the chosen pieces are
    compared with the reference's by value_distribution_overlap (not Yang &
    Lerch's distance-based overlapping area; 1 = indistinguishable), and their
    pooled pitch-class and duration histograms by histogram_overlap. `copies`
    are the metrics.Copy of each piece's longest run found in the training set.
    """
    def per_piece(group):
        rows = [piece_statistics(events_to_notes(events), settings.steps_per_quarter) for events in group]
        return {name: np.array([row[name] for row in rows]) for name in rows[0]}

    values = per_piece(pieces)
    repetition = {**repetition_values(pieces, settings), **(copy_values(pieces, copies, settings) if copies else {})}
    if reference is not None:
        reference_values = per_piece(reference)
        counters = histogram_counters(settings)
        counts = {name: np.array([counter(piece) for piece in pieces]) for name, counter in counters.items()}
        reference_histograms = {name: shares(sum(counter(piece) for piece in reference))
                                for name, counter in counters.items()}

    def statistic(indices):
        metrics = {f"{name}_mean": float(values[name][indices].mean()) for name in values}
        if reference is not None:
            overlaps = {f"{name}_overlap": value_distribution_overlap(values[name][indices], reference_values[name])
                        for name in values}
            for name, piece_counts in counts.items():
                overlaps[f"{name}_overlap"] = histogram_overlap(shares(piece_counts[indices].sum(axis=0)),
                                                                reference_histograms[name])
            metrics.update(overlaps, mean_overlap=float(np.nanmean(list(overlaps.values()))))
        for name, per_piece_values in repetition.items():
            if name in LENGTHS:
                metrics[f"{name}_mean"] = float(per_piece_values[indices].mean())
                metrics[f"{name}_max"] = float(per_piece_values[indices].max())
            else:
                metrics[name] = float(per_piece_values[indices].mean())
        return metrics
    return statistic


def repetition_values(pieces, settings):
    """{statistic: its value for each of `pieces` (event lists)}: repetition of events and the form of bars."""
    spq = settings.steps_per_quarter
    notes = [events_to_notes(events) for events in pieces]
    return {"repeated_4gram_share": np.array([repeated_ngram_share(p, 4) for p in pieces]),
            "distinct_2": np.array([distinct_ngram_ratio(p, 2) for p in pieces]),
            "distinct_4": np.array([distinct_ngram_ratio(p, 4) for p in pieces]),
            "longest_loop": np.array([longest_loop(p) for p in pieces], dtype=np.float64),
            "repeated_passage_bars": np.array([longest_repeated_passage(n, bars_of(p, spq))
                                               for n, p in zip(notes, pieces)], dtype=np.float64),
            "bar_self_similarity": np.array([bar_self_similarity(n, bars_of(p, spq)) for n, p in zip(notes, pieces)])}


def copy_values(pieces, copies, settings):
    """{statistic: its value for each piece} of each piece's longest copy (a metrics.Copy) from the training set:
    its length in events, and in bars (the time from its first event's onset to the onset after its last,
    the sum of the copied events' shifts, which are copied too)."""
    copied_bars = []
    for piece, copy in zip(pieces, copies):
        start = sum(event.shift for event in piece[: copy.start])
        end = start + sum(event.shift for event in piece[copy.start: copy.start + copy.length])
        bars = bars_of(piece, settings.steps_per_quarter)
        copied_bars.append(bars.measure(end) - bars.measure(start))
    return {"copied_events": np.array([copy.length for copy in copies], dtype=np.float64),
            "copied_bars": np.array(copied_bars, dtype=np.float64)}


def real_ranges(reference, settings):
    """{form statistic: (10th, 90th percentile) of its per-piece values over the real continuations `reference`}."""
    values = repetition_values(reference, settings)
    return {name: tuple(float(p) for p in np.percentile(values[name], REAL_PERCENTILES)) for name in FORM_STATISTICS}


def range_columns(ranges):
    """The real range of each form statistic as columns <statistic>_real_p10 and <statistic>_real_p90."""
    return {f"{name}_real_p{percentile}": bound for name, bounds in ranges.items()
            for percentile, bound in zip(REAL_PERCENTILES, bounds)}


def in_real_range(row, ranges):
    """Whether each form statistic's mean in `row` lies inside the real range (<statistic>_in_real_range), and
    how many do (form_in_real_range)."""
    flags = {f"{name}_in_real_range": bool(low <= row[FORM_STATISTICS[name]] <= high)
             for name, (low, high) in ranges.items()}
    return {**flags, "form_in_real_range": sum(flags.values())}


def histogram_counters(settings):
    """{histogram name: counts of one piece (events)}, which pool by summing: pitch classes and durations, and
    where the encoding keeps them, velocity bins, instruments and (in real-time steps) the gaps between onsets,
    whose shape is the timing of a performance (chords spread over a few 10 ms steps, rubato)."""
    counters = {"pitch_class_histogram": lambda events: pitch_class_counts(events_to_notes(events)),
                "duration_histogram": lambda events: duration_counts(events, settings.max_duration_steps)}
    if settings.velocity_bins:
        counters["velocity_histogram"] = lambda events: velocity_counts(events, settings.velocity_bins)
    if settings.instruments:
        counters["instrument_histogram"] = instrument_counts
    if settings.timing == "seconds":
        counters["onset_gap_histogram"] = lambda events: onset_gap_counts(events, settings.max_shift_steps)
    return counters


def copies_of(pieces, copy_finder):
    """The metrics.Copy (length, source, start) of each piece's longest run of events found verbatim in the
    training set."""
    return [copy_finder.longest_copy_at(piece) for piece in pieces]


def longest_source(copies):
    return max(copies, key=lambda copy: copy.length).source or ""


def training_reference(split, vocabulary, count, length, rng):
    """`count` original (untransposed) training pieces cut like the real continuations, and a CopyFinder of all."""
    originals = split.original_indices()
    chosen = rng.choice(originals, size=min(count, len(originals)), replace=False)
    excerpts = [vocabulary.decode(split.piece(i))[SEED_EVENTS: SEED_EVENTS + length] for i in chosen]
    all_events = [vocabulary.decode(split.piece(i)) for i in range(len(split))]
    return [e for e in excerpts if e], CopyFinder(all_events, list(split.sources))


def paired_differences(statistics, count, index_draws):
    """COMPARED_METRICS of each later model minus each earlier one on the same pieces, with paired intervals."""
    rows, names = [], list(statistics)
    for position, other in enumerate(names):
        for name in names[position + 1:]:
            differences = intervals.paired_difference(statistics[name], statistics[other], count, index_draws)
            rows += [{"model": name, "compared_with": other, "metric": metric, "difference": difference,
                      "low": low, "high": high} for metric, (difference, low, high) in differences.items()
                     if metric in COMPARED_METRICS]
    return rows


def evaluate(candidates, splits, vocabulary, strategy, split="test", pieces=16, length=128, random_seed=None,
             likelihood_only=False, resamples=intervals.RESAMPLES, whole=0):
    """An Evaluation of models on held-out music: every metric with its 95 % interval over pieces.

    `candidates` are (name, spec, decoder). A model with a likelihood is scored on
    every held-out piece; unless `likelihood_only`, each one also continues the
    openings of `pieces` held-out pieces with `strategy`, and those continuations
    are compared with the real ones, with training music as the as-real-as-real
    mark; the mean of each form statistic is also checked against the real
    continuations' 10th-90th percentile range; and `whole` pieces are generated from their beginning until the
    model ends them, and judged against as many whole held-out pieces (musicgen/whole_pieces.py). Likelihood and
    generation draw
    their bootstrap resamples from separate generators, so the likelihood
    numbers are the same with or without generation.
    """
    random_seed = random_seed or 0
    held_out = splits[split]
    descriptions = describe_pieces(held_out, vocabulary)
    likelihood_draws = intervals.draws(len(held_out), resamples, random_seed)
    stages = sum(spec.likelihood + (not likelihood_only) * (1 + bool(whole)) for _, spec, _ in candidates)
    rows, per_piece, histograms = [], [], {}
    likelihoods, musics = {}, {}
    if not likelihood_only:
        prompts, indices = seed_prompts(held_out, vocabulary, pieces)
        reference = real_continuations(held_out, vocabulary, indices, length)
        ranges = real_ranges(reference, vocabulary.settings)
        training_excerpts, copy_finder = training_reference(splits["train"], vocabulary, pieces, length,
                                                            np.random.default_rng(random_seed))
        generation_draws = intervals.draws(len(prompts), resamples, random_seed + 1)
        if whole:
            openings, whole_references = whole_pieces.prompts_and_references(held_out, vocabulary, whole)
    judged = {}
    progress = tqdm(total=stages, unit="stage", dynamic_ncols=True)
    for name, spec, decoder in candidates:
        row = {"model": name}
        if spec.likelihood:
            progress.set_description(f"{name}: likelihood of {len(held_out)} pieces")
            table = likelihood_table(decoder, held_out, vocabulary, descriptions)
            per_piece.append(table.assign(model=name))
            likelihoods[name] = likelihood_statistic(table)
            row.update(intervals.bootstrap(likelihoods[name], len(held_out), likelihood_draws))
            progress.update()
        if not likelihood_only:
            progress.set_description(f"{name}: generating {len(prompts)} pieces")
            generated = generate_pieces(decoder, vocabulary, prompts, length, strategy)
            copies = copies_of(generated, copy_finder)
            musics[name] = music_statistic(generated, reference, vocabulary.settings, copies)
            row.update(intervals.bootstrap(musics[name], len(prompts), generation_draws),
                       copied_from=longest_source(copies))
            row.update(in_real_range(row, ranges))
            histograms[name] = corpus_histograms(generated, vocabulary.settings.max_duration_steps)
            progress.update()
            if whole:
                progress.set_description(f"{name}: {len(openings)} whole pieces")
                made = whole_pieces.generate(decoder, vocabulary, strategy, openings, whole_references)
                judged[name] = whole_pieces.judge(made, whole_references, vocabulary.settings.steps_per_quarter)
                progress.update()
        rows.append(row)
    progress.close()
    differences = paired_differences(likelihoods, len(held_out), likelihood_draws)
    description = {"split": split, "held-out pieces scored": len(held_out),
                   "intervals": f"95 % percentile bootstrap over pieces ({resamples} resamples)"}
    if not likelihood_only:
        differences += paired_differences(musics, len(prompts), generation_draws)
        # training music trivially 'copies' itself, so only held-out music gets a copying report
        reference_copies = copies_of(reference, copy_finder)
        real = [("real: training music", training_excerpts,
                 music_statistic(training_excerpts, reference, vocabulary.settings)),
                ("real: held-out music", reference, music_statistic(reference, None, vocabulary.settings,
                                                                    reference_copies))]
        for name, group, statistic in real:
            group_draws = intervals.draws(len(group), resamples, random_seed + 1)
            rows.append({"model": name, **intervals.bootstrap(statistic, len(group), group_draws)})
        training_row, held_out_row = rows[-2:]
        training_row.update(in_real_range(training_row, ranges))
        held_out_row.update(copied_from=longest_source(reference_copies), **range_columns(ranges))
        histograms["held-out music"] = corpus_histograms(reference, vocabulary.settings.max_duration_steps)
        description.update({"pieces generated": len(prompts), "events each": length,
                            "seed": f"the first {SEED_EVENTS} events of held-out pieces",
                            "bars": "by the meters the continuation names, else 4/4 from its first event"})
    if per_piece:
        per_piece = pd.concat(per_piece, ignore_index=True)
        per_piece = per_piece[["model"] + [column for column in per_piece.columns if column != "model"]]
    else:
        per_piece = pd.DataFrame(columns=["model", *descriptions.columns])
    if judged:
        description["whole pieces"] = (f"{len(openings)} from their beginning until the model ends them (at most "
                                       f"twice their real partner's events), against the first {len(openings)} "
                                       f"held-out pieces")
    return Evaluation(rows, per_piece, differences, histograms, description, judged)
