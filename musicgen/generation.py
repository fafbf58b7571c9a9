"""The decoding loop: a decoder gives logits, the grammar masks them, a sampler picks a token."""

import numpy as np

from musicgen.encoding import KINDS

_NEVER_GENERATED = [KINDS.index(kind) for kind in ("pad", "start", "end")]
_EVENT_STARTS = [KINDS.index(kind) for kind in ("rest", "note", "chord")]


def generate(decoder, vocabulary, prompt, num_events, sampler):
    """Extend each row of `prompt` (batch, time) by `num_events` whole events.

    Returns the new tokens only, (batch, new time). Tokens are restricted to what
    the event grammar allows after the previous one, so every output decodes
    into complete events; <start>, <end> and padding are never produced.
    """
    prompt = np.asarray(prompt, dtype=np.int32)
    generatable = ~np.isin(vocabulary.kinds, _NEVER_GENERATED)
    event_start = np.isin(vocabulary.kinds, _EVENT_STARTS)
    shift_kind = KINDS.index("shift")
    logits, state = decoder.start(prompt)
    previous = prompt[:, -1]
    events_done = np.zeros(len(prompt), dtype=np.int64)
    generated = []
    while events_done.min() < num_events:
        allowed = vocabulary.allowed_next(previous) & generatable
        stuck = ~allowed.any(axis=1)  # e.g. after a seed that ends in <end>: begin a new event
        allowed[stuck] = event_start
        tokens = sampler(logits, allowed).astype(np.int32)
        generated.append(tokens)
        events_done += vocabulary.kinds[tokens] == shift_kind
        previous = tokens
        if events_done.min() < num_events:
            logits, state = decoder.step(tokens, state)
    return np.stack(generated, axis=1)
