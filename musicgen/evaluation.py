"""Is the music any good? Likelihood on held-out pieces, musical statistics, repetition and copying.

Likelihood is measured the way a model generates: each held-out piece is fed
token by token through the model's decoder (teacher forcing), so every token is
scored given everything before it in its piece, with the model's own state,
cache or context window. The same held-out pieces seed the generated ones, whose
statistics are compared with the real continuations of those seeds and, as the
"as real as real" reference, with training pieces.
"""

import numpy as np
from tqdm import tqdm

from musicgen.encoding import KINDS, events_to_notes
from musicgen.metrics import (CopyFinder, corpus_histograms, distinct_ngram_ratio, histogram_overlap, longest_loop,
                              piece_statistics, repeated_ngram_share, value_distribution_overlap)

TOKEN_GROUPS = {"pitch": ("note", "chord"), "duration": ("duration",), "shift": ("shift",),
                "other": ("rest", "start", "end", "pad")}
SEED_EVENTS = 16


def score_pieces(decoder, pieces, pad_id, batch_size=32):
    """(log-probability, correct-guess flag) of every token after the first of each piece, concatenated."""
    order = np.argsort([len(p) for p in pieces])
    log_probabilities, correct = [None] * len(pieces), [None] * len(pieces)
    for begin in range(0, len(pieces), batch_size):
        batch = [pieces[i] for i in order[begin: begin + batch_size]]
        lengths = np.array([len(p) for p in batch])
        tokens = np.full((len(batch), lengths.max()), pad_id, dtype=np.int32)
        for row, piece in enumerate(batch):
            tokens[row, : len(piece)] = piece
        scores = np.zeros(tokens.shape, dtype=np.float64)
        hits = np.zeros(tokens.shape, dtype=bool)
        logits, state = decoder.start(tokens[:, :1])
        for t in range(1, tokens.shape[1]):
            normalized = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            scores[:, t] = normalized[np.arange(len(batch)), tokens[:, t]]
            hits[:, t] = logits.argmax(axis=1) == tokens[:, t]
            if t + 1 < tokens.shape[1]:
                logits, state = decoder.step(tokens[:, t], state)
        for row, index in enumerate(order[begin: begin + batch_size]):
            log_probabilities[index] = scores[row, 1: lengths[row]]
            correct[index] = hits[row, 1: lengths[row]]
    return np.concatenate(log_probabilities), np.concatenate(correct)


def likelihood_summary(log_probabilities, correct, target_kinds):
    """NLL per token in nats and bits, perplexity, accuracy, and NLL (bits) per token group."""
    nll = -log_probabilities
    summary = {
        "nll_nats": float(nll.mean()),
        "nll_bits": float(nll.mean() / np.log(2)),
        "perplexity": float(np.exp(nll.mean())),
        "accuracy": float(correct.mean()),
    }
    for group, kinds in TOKEN_GROUPS.items():
        selected = np.isin(target_kinds, [KINDS.index(kind) for kind in kinds])
        summary[f"{group}_bits"] = float(nll[selected].mean() / np.log(2)) if selected.any() else float("nan")
    return summary


def seed_prompts(split, vocabulary, count):
    """The first SEED_EVENTS events of up to `count` pieces long enough to go on: (prompts, their indices)."""
    prompts, indices = [], []
    for index in range(len(split)):
        piece = split.piece(index)
        boundaries = vocabulary.event_boundaries(piece)
        if len(boundaries) > SEED_EVENTS + 8:
            prompts.append(piece[: boundaries[SEED_EVENTS]])
            indices.append(index)
        if len(prompts) == count:
            break
    return np.stack(prompts), indices  # every event is 3 tokens: all prompts have the same length


def real_continuations(split, vocabulary, indices, length):
    """Events SEED_EVENTS .. SEED_EVENTS + length of the given pieces."""
    return [vocabulary.decode(split.piece(i))[SEED_EVENTS: SEED_EVENTS + length] for i in indices]


def generate_pieces(decoder, vocabulary, prompts, length, strategy):
    """Each prompt continued by `length` events with the decoding strategy, decoded to events."""
    return [vocabulary.decode(row) for row in strategy.generate(decoder, vocabulary, prompts, length)]


def music_report(pieces, reference, training, steps_per_quarter, max_duration_steps):
    """Statistics of `pieces` against `reference` (held-out real music); `training` gives the as-real-as-real mark.

    For each per-piece statistic: the overlap of the kernel-smoothed distribution
    of its values over the pieces with the reference's (value_distribution_overlap,
    not Yang & Lerch's distance-based overlapping area; 1 = indistinguishable), for
    the pieces and for training music. Pooled pitch-class and duration histograms: their overlap.
    """
    def statistics(group):
        rows = [piece_statistics(events_to_notes(events), steps_per_quarter) for events in group if events]
        return {name: np.array([row[name] for row in rows]) for name in rows[0]}

    ours, real, train = statistics(pieces), statistics(reference), statistics(training)
    report = {}
    for name in ours:
        report[f"{name}_mean"] = float(ours[name].mean())
        report[f"{name}_overlap"] = value_distribution_overlap(ours[name], real[name])
        report[f"{name}_overlap_train"] = value_distribution_overlap(train[name], real[name])
    histograms = [corpus_histograms(group, max_duration_steps) for group in (pieces, reference, training)]
    for position, name in enumerate(("pitch_class_histogram", "duration_histogram")):
        report[f"{name}_overlap"] = histogram_overlap(histograms[0][position], histograms[1][position])
        report[f"{name}_overlap_train"] = histogram_overlap(histograms[2][position], histograms[1][position])
    overlaps = [value for key, value in report.items() if key.endswith("_overlap")]
    report["mean_overlap"] = float(np.nanmean(overlaps))
    return report, histograms


def repetition_report(pieces):
    """Repeated 4-event patterns, distinct-n ratios and the longest back-to-back loop, averaged over pieces."""
    return {
        "repeated_4gram_share": float(np.mean([repeated_ngram_share(p, 4) for p in pieces])),
        "distinct_2": float(np.mean([distinct_ngram_ratio(p, 2) for p in pieces])),
        "distinct_4": float(np.mean([distinct_ngram_ratio(p, 4) for p in pieces])),
        "longest_loop_mean": float(np.mean([longest_loop(p) for p in pieces])),
        "longest_loop_max": int(max(longest_loop(p) for p in pieces)),
    }


def copying_report(pieces, copy_finder):
    """The longest run of events each piece shares with the training set; its mean, and the longest and its source."""
    copies = [copy_finder.longest_copy(p) for p in pieces]
    longest = max(copies, key=lambda copy: copy[0])
    return {"copied_events_mean": float(np.mean([length for length, _ in copies])),
            "copied_events_max": int(longest[0]), "copied_from": longest[1] or ""}


def training_reference(split, vocabulary, count, length, rng):
    """`count` original (untransposed) training pieces cut like the real continuations, and a CopyFinder of all."""
    originals = split.original_indices()
    chosen = rng.choice(originals, size=min(count, len(originals)), replace=False)
    excerpts = [vocabulary.decode(split.piece(i))[SEED_EVENTS: SEED_EVENTS + length] for i in chosen]
    all_events = [vocabulary.decode(split.piece(i)) for i in range(len(split))]
    return [e for e in excerpts if e], CopyFinder(all_events, list(split.sources))


def evaluate(candidates, splits, vocabulary, strategy, split="test", pieces=16, length=128, random_seed=None):
    """(rows: one per candidate and per real reference, histograms by name, description) for models on held-out music.

    `candidates` are (name, spec, decoder). A model with a likelihood is scored on
    every held-out piece; each one continues the openings of `pieces` held-out
    pieces with `strategy`, and those continuations are compared with the real
    ones, with training music as the as-real-as-real mark.
    """
    held_out = splits[split]
    scored = [held_out.piece(i) for i in range(len(held_out))]
    target_kinds = np.concatenate([vocabulary.kinds[piece[1:]] for piece in scored])
    prompts, indices = seed_prompts(held_out, vocabulary, pieces)
    reference = real_continuations(held_out, vocabulary, indices, length)
    training_excerpts, copy_finder = training_reference(splits["train"], vocabulary, pieces, length,
                                                        np.random.default_rng(random_seed or 0))
    settings = vocabulary.settings

    def music(group):
        return music_report(group, reference, training_excerpts, settings.steps_per_quarter,
                            settings.max_duration_steps)

    rows, histograms = [], {}
    progress = tqdm(total=sum(1 + spec.likelihood for _, spec, _ in candidates), unit="stage", dynamic_ncols=True)
    for name, spec, decoder in candidates:
        row = {"model": name}
        if spec.likelihood:
            progress.set_description(f"{name}: likelihood of {len(scored)} pieces")
            row.update(likelihood_summary(*score_pieces(decoder, scored, vocabulary.pad_id), target_kinds))
            progress.update()
        progress.set_description(f"{name}: generating {len(prompts)} pieces")
        generated = generate_pieces(decoder, vocabulary, prompts, length, strategy)
        report, (histograms[name], histograms["held-out music"], _) = music(generated)
        row.update(report)
        row.update(repetition_report(generated))
        row.update(copying_report(generated, copy_finder))
        rows.append(row)
        progress.update()
    progress.close()
    training_row = {"model": "real: training music", **music(training_excerpts)[0],
                    **repetition_report(training_excerpts)}
    # training music trivially 'copies' itself, so only held-out music gets a copying report
    held_out_row = {"model": "real: held-out music", **repetition_report(reference),
                    **copying_report(reference, copy_finder)}
    description = {"split": split, "held-out pieces scored": len(scored), "pieces generated": len(prompts),
                   "events each": length, "seed": f"the first {SEED_EVENTS} events of held-out pieces"}
    return rows + [training_row, held_out_row], histograms, description
