"""What generating with a run needs beyond a seed: labels, infilling, harmonization and latent spaces."""

import dataclasses

import numpy as np

from musicgen.decoding import Decoder
from musicgen.errors import UserError
from musicgen.seed import parse_seed


def conditioned(tokens, vocabulary, conditions):
    """A prompt's tokens opening with <start> and the control tokens of `conditions` ({label: value}, checked
    against the vocabulary) instead of any it had; unchanged without conditions."""
    if not conditions:
        return tokens
    controls = vocabulary.control_ids(conditions)
    tokens = np.asarray(tokens, dtype=np.int32)
    body = tokens[vocabulary.opening_length(tokens):]  # without its <start> and any labels it had
    return np.concatenate([[vocabulary.start_id], controls, body]).astype(np.int32)


def labels_of(vocabulary, prompt):
    """'; labels density=high, key=D minor' for a prompt that opens with labels, else ''."""
    opening = np.asarray(prompt)[1:vocabulary.opening_length(prompt)]
    return f"; labels {', '.join(vocabulary.tokens[i] for i in opening)}" if len(opening) else ""


class GuidedDecoder(Decoder):
    """Classifier-free guidance (Ho and Salimans, 2022): next-token log-probabilities pushed from those the model
    gives without labels towards those it gives with them, by `weight`:

        log p = log p(x | no labels) + weight * (log p(x | labels) - log p(x | no labels)), renormalised

    Weight 1 is plain conditioning; above 1 the labels count for more. One model gives both, because training
    shows it a share of its windows without their labels (the `label_dropout` setting). Two decoders of the
    model run side by side: one reads the prompt, the other the prompt without its control tokens.
    """

    def __init__(self, with_labels, without_labels, vocabulary, weight):
        self.with_labels, self.without_labels = with_labels, without_labels
        self.vocabulary, self.weight = vocabulary, weight

    def pin(self, count):
        self.with_labels.pin(count)
        self.without_labels.pin(min(count, 1))  # the prompt without labels opens with <start> alone

    def _mix(self, logits, free_logits):
        def log_softmax(values):
            return values - np.logaddexp.reduce(values, axis=1, keepdims=True)

        return log_softmax(log_softmax(free_logits) + self.weight * (log_softmax(logits) - log_softmax(free_logits)))

    def start(self, prompt):
        prompt = np.asarray(prompt, dtype=np.int32)
        unlabelled = prompt[:, ~self.vocabulary.is_control[prompt[0]]]  # every row has its labels in one place
        logits, state = self.with_labels.start(prompt)
        free_logits, free_state = self.without_labels.start(unlabelled)
        return self._mix(logits, free_logits), (state, free_state)

    def step(self, tokens, state):
        logits, labelled = self.with_labels.step(tokens, state[0])
        free_logits, free = self.without_labels.step(tokens, state[1])
        return self._mix(logits, free_logits), (labelled, free)

    def reorder(self, state, rows):
        return self.with_labels.reorder(state[0], rows), self.without_labels.reorder(state[1], rows)


def guided(run, vocabulary, weight, random_seed=None):
    """The run's decoder, with classifier-free guidance of `weight` where it is not 1."""
    decoder = run.spec.decoder(run.model, seed=random_seed)
    if weight == 1:
        return decoder
    return GuidedDecoder(decoder, run.spec.decoder(run.model, seed=random_seed), vocabulary, weight)


def infill_plan(run, vocabulary, strategy, path, bars, conditions, count, random_seed=None):
    """([events of each filled piece], Gap, the file's tempo map, description): `count` fillings of bars
    (first, last) of the music file at `path` (musicgen/infilling.py)."""
    from musicgen import infilling

    grid, time_signature = run.recipe.read_first(path, vocabulary.settings, "--infill")
    notes, tempo_changes = grid.notes, grid.tempo_changes
    settings = vocabulary.settings
    gap = infilling.split_at(notes, vocabulary, *bars, infilling.steps_per_bar(time_signature,
                                                                               settings.steps_per_quarter),
                             grid.chord_symbols)
    controls = vocabulary.control_ids(conditions)
    middle_tokens = len(vocabulary.encode(gap.middle, start=False, end=False))
    prompt = infilling.prompt(vocabulary, gap, controls, run.config["config"]["seq_len"], middle_tokens)
    decoder = run.spec.decoder(run.model, seed=random_seed)
    decoder.pin(1 + len(controls))
    # Events at one onset do not move time on, so the cap only stops a model that never would.
    generated = strategy.generate(decoder, vocabulary, np.tile(prompt, (count, 1)), num_events=gap.length * 8 + 64,
                                  until_steps=gap.length)
    pieces = [gap.before + infilling.fit_middle(vocabulary.decode(tokens), gap.length, settings) + gap.after
              for tokens in generated]
    return pieces, gap, tempo_changes, f"bars {bars[0]}-{bars[1]} of {path} filled in{labels_of(vocabulary, prompt)}"


def harmonize_plan(run, vocabulary, strategy, path, conditions, count, random_seed=None):
    """([events of each harmonization], the melody's notes, the file's tempo map, description): `count` pieces
    whose top voice is the melody of the music file at `path` (its highest note at each onset; see
    musicgen/harmonize.py)."""
    from musicgen.harmonize import MelodyConstraint

    grid, _ = dataclasses.replace(run.recipe, melody_only=True).read_first(path, vocabulary.settings, "--harmonize")
    # Each melody note takes one event and the voices under it a few more: the cap only stops a model that never would.
    constraint = MelodyConstraint(vocabulary, grid.notes, count)
    pieces, prompt = _under_constraint(run, vocabulary, strategy, conditions, constraint, count,
                                       len(grid.notes) * 16 + 64, random_seed)
    description = f"the melody of {path} ({len(grid.notes)} notes) harmonized{labels_of(vocabulary, prompt)}"
    return pieces, grid.notes, grid.tempo_changes, description


def chords_plan(run, vocabulary, strategy, chords, conditions, count, random_seed=None):
    """([events of each piece], description): `count` pieces written over `chords`, (k, 3) float (onset, duration
    in quarters, code) from chords.progression (musicgen/harmonize.py, ChordConstraint)."""
    from musicgen.chords import symbol_name
    from musicgen.harmonize import ChordConstraint

    steps = np.rint(chords[:, :2] * vocabulary.settings.steps_per_quarter).astype(np.int64)
    symbols = np.column_stack([steps, chords[:, 2].astype(np.int64)])
    constraint = ChordConstraint(vocabulary, symbols, count)
    # A few events a quarter note at most in the music this is for: the cap only stops a model that never would.
    cap = int(constraint.end // vocabulary.settings.steps_per_quarter + 1) * 16 + 64
    pieces, prompt = _under_constraint(run, vocabulary, strategy, conditions, constraint, count, cap, random_seed)
    names = " ".join(symbol_name(int(code)) for code in symbols[:, 2])
    return pieces, f"music over the chords {names}{labels_of(vocabulary, prompt)}"


def _under_constraint(run, vocabulary, strategy, conditions, constraint, count, cap, random_seed):
    """([events of each piece], prompt): `count` pieces sampled from a prompt of <start> and the labels of
    `conditions`, under `constraint` (made for `count` rows), at most `cap` events each."""
    prompt = conditioned(np.array([vocabulary.start_id], np.int32), vocabulary, conditions)
    decoder = run.spec.decoder(run.model, seed=random_seed)
    decoder.pin(vocabulary.opening_length(prompt))
    generated = strategy.generate(decoder, vocabulary, np.tile(prompt, (count, 1)), cap,
                                  constraint=constraint)
    return [vocabulary.decode(np.concatenate([prompt, tokens])) for tokens in generated], prompt


def latent_plan(run, prior=False, interpolate=None, steps=5, random_seed=None):
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
