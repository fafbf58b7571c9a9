"""The seed notation generate.py reads.

    C4 E4 G4 C4.E4.G4:2 R:1 F#4:0.5 Bb3:1/3

Each item is one event, played after the previous one ends: a note name with
octave (C4 is middle C, sharps '#', flats 'b'), a chord of note names joined by
'.', or R for a rest, optionally followed by ':' and a duration in quarter notes
(a number or a fraction; default 1). Alternatively the seed may be written in the
exact token names of vocab.json (e.g. '<start> C4 dur:4 shift:4'); a seed
containing any 'dur:' or 'shift:' token is read that way.
"""

from fractions import Fraction

import numpy as np

from musicgen.encoding import REST, START, Event, event_then_rests, parse_pitch
from musicgen.errors import UserError

NOTATION_HELP = ("write notes like C4, F#3 or Bb2, chords like C4.E4.G4, rests as R, each optionally "
                 "followed by :QUARTERS such as C4:2 or R:0.5")


def parse_seed(text, vocabulary):
    """Seed text -> token ids, starting with <start> and ending on a whole event."""
    items = text.split()
    if not items:
        raise UserError(f"--seed is empty; {NOTATION_HELP}")
    if any(item.startswith(("dur:", "shift:")) for item in items):
        return _parse_tokens(items, vocabulary)
    return events_to_seed(vocabulary, [_parse_event(item, vocabulary.settings) for item in items])


def events_to_seed(vocabulary, events):
    """Events -> token ids; chords missing from the vocabulary become their notes, as in preprocessing."""
    encoded = []
    for event in events:
        if len(event.pitches) > 1 and event.pitches not in vocabulary.chords:
            notes = [Event((pitch,), event.duration, 0) for pitch in reversed(event.pitches)]
            encoded += notes[:-1]
            event = notes[-1]._replace(shift=event.shift)
        encoded += event_then_rests(event.pitches, event.duration, event.shift, vocabulary.settings)
    return vocabulary.encode(encoded, start=True, end=False)


def _parse_event(item, settings):
    what, _, duration_text = item.partition(":")
    try:
        quarters = Fraction(duration_text) if duration_text else Fraction(1)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"seed item {item!r}: {duration_text!r} is not a duration in quarter notes") from None
    steps = quarters * settings.steps_per_quarter
    if steps.denominator != 1 or steps < 1:
        raise UserError(f"seed item {item!r}: {duration_text} quarters is not a whole number of grid steps "
                        f"({settings.steps_per_quarter} per quarter note)")
    steps = int(steps)
    if steps > settings.max_duration_steps:
        raise UserError(f"seed item {item!r}: longest duration is {settings.max_duration_quarters} quarters")
    if what.upper() == REST:
        return Event((), steps, steps)
    try:
        pitches = tuple(sorted({parse_pitch(name) for name in what.split(".")}))
    except ValueError as error:
        raise UserError(f"seed item {item!r}: {error}; {NOTATION_HELP}") from None
    return Event(pitches, steps, steps)


def _parse_tokens(items, vocabulary):
    ids = []
    for item in items:
        if item not in vocabulary.index:
            nearest = ", ".join(vocabulary.nearest_tokens(item))
            raise UserError(f"seed token {item!r} is not in the vocabulary; nearest: {nearest}")
        ids.append(vocabulary.index[item])
    if vocabulary.kind(ids[0]) != "start":
        ids.insert(0, vocabulary.index[START])
    return np.array(ids, dtype=np.int32)
