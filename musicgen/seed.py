"""The seed notation generate.py reads.

    C4 E4 G4 C4.E4.G4:2 R:1 F#4:0.5 Bb3:1/3
    p C4 E4 f G4 C2:2@bass C2.F#2:0.5@drums      (models that keep velocities and instruments)

Each item is one event, played after the previous one ends: a note name with
octave (C4 is middle C, sharps '#', flats 'b'), a chord of note names joined by
'.', or R for a rest, optionally followed by ':' and a duration in quarter notes
(a number or a fraction; default 1). Where the model keeps them:
- a dynamic mark (ppp pp p mp mf f ff fff) sets the loudness of the events after
  it, as in sheet music (mf, velocity 80, until the first mark);
- '@' and an instrument after an item puts that event on the instrument
  (musicgen/instruments.py says what names mean; piano without one).
Alternatively the seed may be written in the exact token names of vocab.json
(e.g. '<start> C4 dur:4 shift:4'); a seed containing any 'dur:', 'shift:',
'inst:' or 'vel:' token is read that way.

Every seed, written or read from a music file, becomes tokens through
seed_tokens(), which applies the run's preprocessing recipe (musicgen/recipe.py):
a melody-only model is seeded with a melody. With no seed a piece begins at <start>.
"""

from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from musicgen import readers
from musicgen.encoding import Event, event_then_rests
from musicgen.errors import UserError
from musicgen.instruments import program_named
from musicgen.notes import DEFAULT_VELOCITY, parse_pitch
from musicgen.tokens import DURATION_PREFIX, INSTRUMENT_PREFIX, REST, SHIFT_PREFIX, START, VELOCITY_PREFIX

NOTATION_HELP = ("write notes like C4, F#3 or Bb2, chords like C4.E4.G4, rests as R, each optionally "
                 "followed by :QUARTERS such as C4:2 or R:0.5")
# The velocities of the dynamic marks, as music21 and most notation programs play them.
DYNAMICS = {"ppp": 16, "pp": 33, "p": 49, "mp": 64, "mf": DEFAULT_VELOCITY, "f": 96, "ff": 112, "fff": 127}


class Seed(NamedTuple):
    tokens: np.ndarray
    description: str
    tempo_changes: np.ndarray = None  # (k, 2) of (grid step, bpm): a seed file's tempo map, which the output keeps


def seed_tokens(run, text=None, music_file=None, events=16):
    """The Seed of a run: `text` in seed notation, the first `events` events of `music_file`, or with neither, a
    lone <start>, from which the model begins a piece of its own.

    The run's preprocessing recipe applies to each: its track selection, melody-only
    and silence shortening to a music file as to training data, melody-only to
    written chords.
    """
    if text is not None and music_file is not None:
        raise UserError("give either seed notation or a seed file, not both")
    if text is not None:
        return Seed(parse_seed(text, run.vocabulary, run.recipe.melody_only), f"seed {text!r}")
    if music_file is not None:
        tokens, tempo_changes = _file_seed(Path(music_file), run, events)
        return Seed(tokens, f"the first {events} events of {music_file}", tempo_changes)
    return Seed(np.array([run.vocabulary.start_id], dtype=np.int32), "no seed: a piece from its beginning")


def parse_seed(text, vocabulary, melody_only=False):
    """Seed text -> token ids, starting with <start> and ending on a whole event; chords become their top
    note when `melody_only`."""
    items = text.split()
    if not items:
        raise UserError(f"the seed is empty; {NOTATION_HELP}")
    if any(item.startswith((DURATION_PREFIX, SHIFT_PREFIX, INSTRUMENT_PREFIX, VELOCITY_PREFIX)) for item in items):
        return _parse_tokens(items, vocabulary)
    settings, velocity, events = vocabulary.settings, DEFAULT_VELOCITY, []
    for item in items:
        if item in DYNAMICS:
            if not settings.velocity_bins:
                raise UserError(f"seed item {item!r}: this model keeps no velocities, so dynamic marks mean nothing")
            velocity = DYNAMICS[item]
            continue
        event = _parse_event(item, settings)
        if event.pitches:
            event = event._replace(velocity=vocabulary.quantized_velocity(velocity) if settings.velocity_bins else None,
                                   program=(event.program or 0) if settings.instruments else None)
        events.append(event)
    if not events:
        raise UserError(f"the seed has dynamic marks but no notes; {NOTATION_HELP}")
    if melody_only:  # as quantize(melody_only=True): the highest note of each onset, cut where the next begins
        events = [event._replace(pitches=event.pitches[-1:], duration=min(event.duration, event.shift or event.duration))
                  for event in events]
    return events_to_seed(vocabulary, events)


def _file_seed(path, run, events):
    if not path.is_file():
        raise UserError(f"seed file {path} does not exist")
    recipe = run.recipe
    piece = next((p for p in readers.read_file(path, recipe.selection) if isinstance(p, readers.RawPiece)), None)
    if piece is None:
        raise UserError(f"seed file {path} has no usable notes")
    grid = recipe.grid_notes(piece, run.vocabulary.settings)
    tokens = run.vocabulary.encode_notes(grid.notes, symbols=run.vocabulary.known_symbols(grid.chord_symbols),
                                         meters=grid.meters)[0]
    cut = run.vocabulary.event_boundaries(tokens)  # after <start>, then after each event
    music = np.cumsum([event.meter is None for event in run.vocabulary.decode(tokens)])  # meters are not counted
    return tokens[: cut[int(np.searchsorted(music, min(events, music[-1]))) + 1]], grid.tempo_changes


def events_to_seed(vocabulary, events):
    """Events -> token ids; chords missing from the vocabulary become their notes, as in preprocessing."""
    encoded = []
    for event in events:
        if len(event.pitches) > 1 and event.pitches not in vocabulary.chords:
            notes = [event._replace(pitches=(pitch,), shift=0) for pitch in reversed(event.pitches)]
            encoded += notes[:-1]
            event = notes[-1]._replace(shift=event.shift)
        encoded += event_then_rests(event, event.shift, vocabulary.settings)
    return vocabulary.encode(encoded, start=True, end=False)


def _parse_event(item, settings):
    written, _, instrument = item.partition("@")
    program = None
    if instrument:
        if not settings.instruments:
            raise UserError(f"seed item {item!r}: this model keeps no instruments, so write the notes alone")
        program = program_named(instrument)
    what, _, duration_text = written.partition(":")
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
        if instrument:
            raise UserError(f"seed item {item!r}: a rest belongs to no instrument")
        return Event((), steps, steps)
    try:
        pitches = tuple(sorted({parse_pitch(name) for name in what.split(".")}))
    except ValueError as error:
        raise UserError(f"seed item {item!r}: {error}; {NOTATION_HELP}") from None
    return Event(pitches, steps, steps, program=program)


def _parse_tokens(items, vocabulary):
    ids = []
    for item in items:
        if item not in vocabulary.index:
            nearest = ", ".join(vocabulary.nearest_tokens(item))
            raise UserError(f"seed token {item!r} is not in the vocabulary; nearest: {nearest}")
        ids.append(vocabulary.index[item])
    if vocabulary.kind(ids[0]) != "start":
        ids.insert(0, vocabulary.index[START])
    return vocabulary.merge(vocabulary.expand(ids))  # written as the model reads it, whatever tokens were given
