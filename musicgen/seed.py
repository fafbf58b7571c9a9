"""The seed notation generate.py reads.

    C4 E4 G4 C4.E4.G4:2 R:1 F#4:0.5 Bb3:1/3

Each item is one event, played after the previous one ends: a note name with
octave (C4 is middle C, sharps '#', flats 'b'), a chord of note names joined by
'.', or R for a rest, optionally followed by ':' and a duration in quarter notes
(a number or a fraction; default 1). Alternatively the seed may be written in the
exact token names of vocab.json (e.g. '<start> C4 dur:4 shift:4'); a seed
containing any 'dur:' or 'shift:' token is read that way.

Every seed, written, read from a music file or taken from held-out data, becomes
tokens through seed_tokens(), which applies the run's preprocessing recipe
(musicgen/recipe.py): a melody-only model is seeded with a melody.
"""

from fractions import Fraction
from pathlib import Path

import numpy as np

from musicgen import readers
from musicgen.dataset import load_processed
from musicgen.encoding import REST, START, Event, event_then_rests, parse_pitch
from musicgen.errors import UserError

NOTATION_HELP = ("write notes like C4, F#3 or Bb2, chords like C4.E4.G4, rests as R, each optionally "
                 "followed by :QUARTERS such as C4:2 or R:0.5")


def seed_tokens(run, text=None, music_file=None, events=16, rng=None):
    """(token ids, description) of a run's seed: `text` in seed notation, the first `events` events of
    `music_file`, or with neither, `events` events from a random piece of the run's validation split.

    The run's preprocessing recipe applies to each: its track selection, melody-only
    and silence shortening to a music file as to training data, melody-only to
    written chords; a passage of the split was made with it.
    """
    if text is not None and music_file is not None:
        raise UserError("give either seed notation or a seed file, not both")
    if text is not None:
        return parse_seed(text, run.vocabulary, run.recipe.melody_only), f"seed {text!r}"
    if music_file is not None:
        return _file_seed(Path(music_file), run, events), f"the first {events} events of {music_file}"
    return _passage_seed(run, events, rng or np.random.default_rng())


def parse_seed(text, vocabulary, melody_only=False):
    """Seed text -> token ids, starting with <start> and ending on a whole event; chords become their top
    note when `melody_only`."""
    items = text.split()
    if not items:
        raise UserError(f"the seed is empty; {NOTATION_HELP}")
    if any(item.startswith(("dur:", "shift:")) for item in items):
        return _parse_tokens(items, vocabulary)
    events = [_parse_event(item, vocabulary.settings) for item in items]
    if melody_only:  # as quantize(melody_only=True): the highest note of each onset, cut where the next begins
        events = [Event(event.pitches[-1:], min(event.duration, event.shift or event.duration), event.shift)
                  for event in events]
    return events_to_seed(vocabulary, events)


def _file_seed(path, run, events):
    if not path.is_file():
        raise UserError(f"seed file {path} does not exist")
    recipe = run.recipe
    piece = next((p for p in readers.read_file(path, recipe.selection) if isinstance(p, readers.RawPiece)), None)
    if piece is None:
        raise UserError(f"seed file {path} has no usable notes")
    notes, _ = recipe.grid_notes(piece, run.vocabulary.settings.steps_per_quarter)
    tokens = run.vocabulary.encode_notes(notes)[0]
    cut = run.vocabulary.event_boundaries(tokens)
    return tokens[: cut[min(events, len(cut) - 1)]]


def _passage_seed(run, events, rng):
    data = Path(run.config.get("data", ""))
    try:
        data_vocabulary, splits = load_processed(data, ("validation",))
    except UserError:
        raise UserError(f"no seed given, and the training data ({data}) is not here to take one from; "
                        "give a seed") from None
    validation = splits["validation"]
    vocabulary = run.vocabulary
    if data_vocabulary.hash() != vocabulary.hash() or len(validation) == 0:
        raise UserError(f"no seed given, and {data} no longer matches this run; give a seed")
    index = int(rng.integers(len(validation)))
    piece = validation.piece(index)
    boundaries = vocabulary.event_boundaries(piece)  # boundaries[j]: where event j begins
    first = int(rng.integers(max(1, len(boundaries) - events)))
    last = min(first + events, len(boundaries) - 1)
    start = 0 if first == 0 else boundaries[first]
    return piece[start: boundaries[last]], f"events {first}-{last - 1} of {validation.sources[index]} (validation split)"


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
