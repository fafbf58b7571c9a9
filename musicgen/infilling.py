"""Fill in the middle: new music for some bars of a piece, leading from what comes before into what comes after.

A run trained on data made with `preprocess.py --infilling` has seen a share of
its training windows in fill-in-the-middle order (musicgen.dataset.fill_in_the_middle):

    <start> [controls] <hole> gap after <fill> before middle

So to fill bars 5-8, the piece is cut at their edges (split_at), the prompt
holds what comes before and after them, as much as the model's window has
room for, and the model writes the middle until it has filled the bars' length
(Sampler.generate's `until_steps`), which fit_middle then cuts to size.
"""

import re
from typing import NamedTuple

import numpy as np

from musicgen.chords import ChordSymbols
from musicgen.encoding import Event, event_then_rests, notes_to_events
from musicgen.errors import UserError

_BARS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


class Gap(NamedTuple):
    before: list  # events up to the gap, the last one's shift reaching its start
    middle: list  # the events of the bars being replaced (for measuring), the last one's shift reaching their end
    after: list  # events from the gap's end on (opening with a rest if nothing starts right there)
    start: int  # where the gap begins, in grid steps
    length: int  # its length in grid steps


def parse_bars(text):
    """'5-8' -> (5, 8); '3' -> (3, 3); bars count from 1."""
    match = _BARS.match(text or "")
    if not match:
        raise UserError(f"--infill-bars takes FIRST-LAST bar numbers like 5-8, got {text!r}")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if not 1 <= first <= last:
        raise UserError(f"--infill-bars must count from 1 with FIRST <= LAST, got {text!r}")
    return first, last


def split_at(notes, vocabulary, first_bar, last_bar, bars, symbols=ChordSymbols.none(), meters=()):
    """The Gap of bars first_bar..last_bar (from 1, where meters.Bars `bars` has them; a first bar with an
    upbeat counts as bar 1) of a piece's grid notes (and chord symbols and meters, those the vocabulary knows);
    bars past the piece are refused. A chord symbol sounding on across the gap's end is named again where the
    music after the gap begins, which is given back as it was."""
    settings = vocabulary.settings
    count = int(bars.index(int((notes[:, 0] + notes[:, 1]).max()) - 1)) + 1
    if last_bar > count:
        raise UserError(f"--infill-bars {first_bar}-{last_bar} is out of range: the piece has {count} bars")
    start, end = max(int(bars.start(first_bar - 1)), 0), int(bars.start(last_bar))
    symbols = vocabulary.known_symbols(symbols).cut_at(end)
    events, _ = notes_to_events(notes, settings, vocabulary.chords, symbols, vocabulary.known_meters(meters))
    onsets = np.concatenate([[0], np.cumsum([event.shift for event in events])[:-1]]).astype(np.int64)

    def leading_to(part, part_onsets, time):
        """`part` with its last event's shift reaching `time` (through rests where it is far)."""
        if not part:
            return []
        return part[:-1] + list(event_then_rests(part[-1], time - int(part_onsets[-1]), settings))

    before, middle = onsets < start, (onsets >= start) & (onsets < end)
    after = [event for event, onset in zip(events, onsets) if onset >= end]
    first_after = int(onsets[onsets >= end].min()) if after else end
    middle_events = leading_to([e for e, m in zip(events, middle) if m], onsets[middle], end)
    return Gap(leading_to([e for e, b in zip(events, before) if b], onsets[before], start),
               middle_events or rest_of(end - start, settings), rest_of(first_after - end, settings) + after,
               start, end - start)


def rest_of(steps, settings):
    """Rest events lasting `steps` grid steps ([] for none)."""
    if steps <= 0:
        return []
    first = min(steps, settings.max_shift_steps, settings.max_duration_steps)
    return list(event_then_rests(Event((), first, 0), steps, settings))


def prompt(vocabulary, gap, controls=(), context=None, middle_tokens=0):
    """<start> [controls] <hole> gap after <fill> before (musicgen/vocabulary.py), with as much of before (its end)
    and after (its start) as leaves `middle_tokens` of the model's `context` free for the middle: two thirds of
    what is left before, a third after."""
    if not vocabulary.infilling:
        raise UserError("this model was not trained to fill in: preprocess the data with --infilling and train "
                        "again (or fine-tune)")
    before = vocabulary.encode(gap.before, start=False, end=False)
    after = vocabulary.encode(gap.after, start=False, end=False)
    opening = np.concatenate([[vocabulary.start_id], sorted(controls)]).astype(np.int32)
    gap_length = vocabulary.gap_tokens(gap.length)
    if context is not None:
        room = context - middle_tokens - len(opening) - 2 - len(gap_length)
        if room < 12:
            raise UserError(f"the bars to fill take about {middle_tokens} tokens, and this model sees {context} "
                            "at once: fill fewer bars")
        after = _first_events(after, vocabulary, max(room // 3, room - len(before)))
        before = _last_events(before, vocabulary, room - len(after))
    return np.concatenate([opening, [vocabulary.hole_id], gap_length, after, [vocabulary.fill_id],
                           before]).astype(np.int32)


def _first_events(tokens, vocabulary, limit):
    """The longest run of whole events from the start of `tokens` within `limit` tokens."""
    ends = vocabulary.event_boundaries(tokens)
    fitting = ends[ends <= limit]
    return tokens[: fitting[-1]] if len(fitting) else tokens[:0]


def _last_events(tokens, vocabulary, limit):
    """The longest run of whole events at the end of `tokens` within `limit` tokens."""
    starts = np.concatenate([[0], vocabulary.event_boundaries(tokens)])
    fitting = starts[len(tokens) - starts <= limit]
    return tokens[fitting[0]:] if len(fitting) else tokens[:0]


def fit_middle(events, length, settings):
    """Generated events cut to fill exactly `length` grid steps: the one that crosses the end shifts to it; rests
    make up a middle that ends early."""
    fitted, time = [], 0
    for event in events:
        if time + event.shift >= length:
            fitted.append(event._replace(shift=length - time))
            return fitted
        fitted.append(event)
        time += event.shift
    return fitted + rest_of(length - time, settings)
