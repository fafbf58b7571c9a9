"""Generating with a run: each way of asking for music (a seed to continue, a latent space, bars to fill in, a
melody to harmonize, chords to write over) as one plan that returns what it made as a Generated.

A plan reads what it is given through the run's recipe, builds the prompt,
decodes with the run's decoder under a strategy (musicgen/sampling.py), and
decodes the tokens into events; generate.py writes them out.
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from musicgen.errors import UserError
from musicgen.guidance import conditioned, guided, labels_of
from musicgen.meters import Bars, meter_name, parse_meter
from musicgen.seed import parse_seed


class Generated(NamedTuple):
    """What a plan made, and what writing it out needs to know of what was given rather than generated."""

    pieces: list  # the events of each piece
    description: str  # what was asked for, in words
    given: str  # what each piece holds that the model did not write: "seed", "gap" (the music around filled
    #             bars), "melody" (harmonized) or "chords" (written over)
    given_events: int  # how many events (or melody notes, or chords) were given
    tempo_changes: np.ndarray = None  # (k, 2) of (grid step, bpm): a given file's tempo map, which the output keeps
    seed_steps: int = 0  # grid steps of given music at the start (marked in the piano roll)
    given_from: int = None  # the grid step where given music starts again after a filled gap
    melody: np.ndarray = None  # the harmonized melody's notes, marked in the piano roll
    ended: tuple = None  # of a piece the model was left to end: whether it did, for each piece
    meters: np.ndarray = None  # (k, 3) of (grid step, numerator, denominator): a given file's, which the output keeps


def continuation_plan(run, vocabulary, strategy, seed, conditions, guidance, count, length, random_seed=None,
                      meter=None):
    """`count` continuations of the seed.Seed `seed` (a lone <start>: pieces from their beginning) as long as the
    Length `length`, opening with the labels of `conditions` ({label: value}), with classifier-free guidance of
    weight `guidance` (1: plain conditioning), in `meter` ('3/4'; see metered)."""
    prompt = metered(conditioned(seed.tokens, vocabulary, conditions), vocabulary, meter)
    decoder = guided(run, vocabulary, guidance, random_seed)
    decoder.pin(vocabulary.opening_length(prompt))
    guiding = f" (guidance {guidance:g})" if guidance != 1 and vocabulary.is_control[prompt].any() else ""
    return _continued(vocabulary, strategy, decoder, prompt, count, length,
                      seed.description + labels_of(vocabulary, prompt) + guiding, seed.tempo_changes)


def metered(prompt, vocabulary, meter):
    """The prompt with the meter event of `meter` ('3/4') after its opening, where the vocabulary keeps meters, a
    meter is asked for and the prompt names none yet; a meter the vocabulary has no token for is refused."""
    if meter is None or not vocabulary.settings.meters or vocabulary.holds("meter")[prompt].any():
        return prompt
    token = vocabulary.meters.get(parse_meter(meter))
    if token is None:
        raise UserError(f"this model has no token for the meter {meter}; it knows "
                        f"{', '.join(meter_name(*known) for known in vocabulary.meters)}")
    opening = vocabulary.opening_length(prompt)
    event = vocabulary.merge([token, vocabulary.shift_id(0)])
    return np.concatenate([prompt[:opening], event, prompt[opening:]]).astype(np.int32)


def latent_plan(run, vocabulary, strategy, prior, interpolate, steps, length, random_seed=None):
    """Pieces as long as the Length `length` from a run's latent space: `steps` of them drawn from the prior, or
    along the path between the encodings of two seeds in notation (latent_decoder)."""
    decoder, prompt, description = latent_decoder(run, prior, interpolate, steps, random_seed)
    return _continued(vocabulary, strategy, decoder, prompt, steps, length, description)


def _continued(vocabulary, strategy, decoder, prompt, count, length, description, tempo_changes=None):
    if length.to_end or length.steps is not None:
        generated = strategy.generate(decoder, vocabulary, np.tile(prompt, (count, 1)), length.events,
                                      until_steps=length.steps, to_end=length.to_end)
    else:  # a number of events: every strategy, beam search too
        generated = strategy.generate(decoder, vocabulary, np.tile(prompt, (count, 1)), length.events)
    pieces = [vocabulary.decode(np.concatenate([prompt, continuation])) for continuation in generated]
    seed_events = vocabulary.decode(prompt)
    ended = tuple(bool((continuation == vocabulary.end_id).any()) for continuation in generated)
    return Generated(pieces, description, "seed", musical_events(seed_events), tempo_changes,
                     seed_steps=sum(event.shift for event in seed_events), ended=ended if length.to_end else None)


def musical_events(events):
    """How many of the events are music: all but the meters."""
    return sum(event.meter is None for event in events)


def latent_decoder(run, prior=False, interpolate=None, steps=5, random_seed=None):
    """(decoder, prompt, description) for sampling a run's latent prior or walking between two seeds.

    Only for models with a latent space (spec.latent); the prompt is a lone <start>.
    `interpolate` is a pair of seeds in notation, read with the run's recipe.
    """
    if not run.spec.latent:
        raise UserError(f"sampling a latent space needs a model that has one (vae); {run.path} is a "
                        f"{run.spec.name} run")
    if prior == bool(interpolate):
        raise UserError("sample either the prior or an interpolation between two seeds")
    prompt = np.array([run.vocabulary.start_id], dtype=np.int32)
    if prior:
        return run.spec.prior_decoder(run.model, random_seed), prompt, "latent drawn from the prior"
    first, second = (parse_seed(text, run.vocabulary, run.recipe.melody_only) for text in interpolate)
    decoder = run.spec.interpolation_decoder(run.model, first, second, steps)
    return decoder, prompt, f"{steps} steps from the encoding of {interpolate[0]!r} to that of {interpolate[1]!r}"


def infill_plan(run, vocabulary, strategy, path, bars, conditions, count, random_seed=None):
    """`count` fillings of bars (first, last) of the music file at `path` (musicgen/infilling.py)."""
    from musicgen import infilling

    grid = run.recipe.read_first(path, vocabulary.settings, "--infill")
    settings = vocabulary.settings
    gap = infilling.split_at(grid.notes, vocabulary, *bars, Bars.of_meters(grid.meters, settings.steps_per_quarter),
                             grid.chord_symbols, grid.meters)
    controls = vocabulary.control_ids(conditions)
    middle_tokens = len(vocabulary.encode(gap.middle, start=False, end=False))
    prompt = infilling.prompt(vocabulary, gap, controls, run.config["seq_len"], middle_tokens)
    decoder = run.spec.decoder(run.model, seed=random_seed)
    decoder.pin(1 + len(controls))
    # Events at one onset do not move time on, so the cap only stops a model that never would.
    generated = strategy.generate(decoder, vocabulary, np.tile(prompt, (count, 1)), num_events=gap.length * 8 + 64,
                                  until_steps=gap.length)
    pieces = [gap.before + infilling.fit_middle(vocabulary.decode(tokens), gap.length, settings) + gap.after
              for tokens in generated]
    return Generated(pieces, f"bars {bars[0]}-{bars[1]} of {path} filled in{labels_of(vocabulary, prompt)}", "gap",
                     len(gap.before) + len(gap.after), grid.tempo_changes, seed_steps=gap.start,
                     given_from=gap.start + gap.length, meters=given_meters(grid, settings))


def harmonize_plan(run, vocabulary, strategy, path, conditions, count, random_seed=None):
    """`count` pieces whose top voice is the melody of the music file at `path` (its highest note at each onset;
    see musicgen/harmonize.py)."""
    from musicgen.harmonize import MelodyConstraint

    grid = dataclasses.replace(run.recipe, melody_only=True).read_first(path, vocabulary.settings, "--harmonize")
    # Each melody note takes one event and the voices under it a few more: the cap only stops a model that never would.
    constraint = MelodyConstraint(vocabulary, grid.notes, count)
    pieces, prompt = _under_constraint(run, vocabulary, strategy, conditions, constraint, count,
                                       len(grid.notes) * 16 + 64, random_seed)
    description = f"the melody of {path} ({len(grid.notes)} notes) harmonized{labels_of(vocabulary, prompt)}"
    return Generated(pieces, description, "melody", len(grid.notes), grid.tempo_changes, melody=grid.notes,
                     meters=given_meters(grid, vocabulary.settings))


def given_meters(grid, settings):
    """The meters of a given piece (a recipe.GridPiece) for its output to keep: where the encoding keeps meters,
    whose first bar line is then step 0; None otherwise (the output is written in 4/4, as the model has it)."""
    return grid.meters if settings.meters else None


def chords_plan(run, vocabulary, strategy, progression, conditions, count, random_seed=None):
    """`count` pieces written over a chords.Progression (musicgen/harmonize.py, ChordConstraint)."""
    from musicgen.harmonize import ChordConstraint

    symbols = progression.on_grid(vocabulary.settings.steps_per_quarter)
    constraint = ChordConstraint(vocabulary, symbols, count)
    # A few events a quarter note at most in the music this is for: the cap only stops a model that never would.
    cap = int(constraint.end // vocabulary.settings.steps_per_quarter + 1) * 16 + 64
    pieces, prompt = _under_constraint(run, vocabulary, strategy, conditions, constraint, count, cap, random_seed,
                                       progression.meter)
    description = f"music over the chords {' '.join(symbols.names())}{labels_of(vocabulary, prompt)}"
    return Generated(pieces, description, "chords", len(symbols))


def _under_constraint(run, vocabulary, strategy, conditions, constraint, count, cap, random_seed, meter=None):
    """([events of each piece], prompt): `count` pieces sampled from a prompt of <start>, the labels of
    `conditions` and `meter` (see metered), under `constraint` (made for `count` rows), at most `cap` events each."""
    prompt = metered(conditioned(np.array([vocabulary.start_id], np.int32), vocabulary, conditions), vocabulary, meter)
    decoder = run.spec.decoder(run.model, seed=random_seed)
    decoder.pin(vocabulary.opening_length(prompt))
    generated = strategy.generate(decoder, vocabulary, np.tile(prompt, (count, 1)), cap,
                                  constraint=constraint)
    return [vocabulary.decode(np.concatenate([prompt, tokens])) for tokens in generated], prompt
