"""The decoding loop: a decoder gives logits, the grammar masks them, a sampler picks a token."""

import numpy as np

from musicgen.encoding import KINDS

_NEVER_GENERATED = [KINDS.index(kind) for kind in ("pad", "start", "end")]
_EVENT_STARTS = [KINDS.index(kind) for kind in ("rest", "note", "chord")]
_SHIFT = KINDS.index("shift")


def _grammar_mask(vocabulary, previous):
    """Tokens the event grammar allows next, minus <start>, <end> and padding."""
    allowed = vocabulary.allowed_next(previous) & ~np.isin(vocabulary.kinds, _NEVER_GENERATED)
    stuck = ~allowed.any(axis=1)  # e.g. after a seed that ends in <end>: begin a new event
    allowed[stuck] = np.isin(vocabulary.kinds, _EVENT_STARTS)
    return allowed


def generate(decoder, vocabulary, prompt, num_events, sampler):
    """Extend each row of `prompt` (batch, time) by `num_events` whole events.

    Returns the new tokens only, (batch, new time). Tokens are restricted to what
    the event grammar allows after the previous one, so every output decodes
    into complete events; <start>, <end> and padding are never produced.
    """
    prompt = np.asarray(prompt, dtype=np.int32)
    logits, state = decoder.start(prompt)
    previous = prompt[:, -1]
    events_done = np.zeros(len(prompt), dtype=np.int64)
    generated = []
    while events_done.min() < num_events:
        tokens = sampler(logits, _grammar_mask(vocabulary, previous)).astype(np.int32)
        generated.append(tokens)
        events_done += vocabulary.kinds[tokens] == _SHIFT
        previous = tokens
        if events_done.min() < num_events:
            logits, state = decoder.step(tokens, state)
    return np.stack(generated, axis=1)


def beam_search(decoder, vocabulary, prompt, num_events, beam_width, temperature=1.0):
    """The most likely continuations of one prompt (time,): (tokens (beam_width, new time), log-probabilities).

    Keeps the `beam_width` best partial sequences at every step, best first at
    the end. Every event has the same three-token grammar, so all beams reach
    the end of an event together and need no length normalisation.
    """
    prompt = np.tile(np.asarray(prompt, dtype=np.int32), (beam_width, 1))
    logits, state = decoder.start(prompt)
    scores = np.full(beam_width, -np.inf)
    scores[0] = 0.0  # the beams start identical: expand only one of them
    sequences = np.zeros((beam_width, 0), dtype=np.int32)
    previous = prompt[:, -1]
    events_done = 0
    while events_done < num_events:
        scaled = np.where(_grammar_mask(vocabulary, previous), logits / temperature, -np.inf)
        log_probabilities = scaled - np.logaddexp.reduce(scaled, axis=1, keepdims=True)
        candidates = (scores[:, None] + log_probabilities).ravel()
        best = np.argsort(-candidates, kind="stable")[:beam_width]
        rows, tokens = np.divmod(best, len(vocabulary))
        scores = candidates[best]
        sequences = np.concatenate([sequences[rows], tokens[:, None].astype(np.int32)], axis=1)
        state = decoder.reorder(state, rows)
        previous = tokens
        events_done += int(vocabulary.kinds[tokens[0]] == _SHIFT)
        if events_done < num_events:
            logits, state = decoder.step(tokens.astype(np.int32), state)
    return sequences, scores
