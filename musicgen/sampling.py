"""Decoding strategies: how the next token is chosen from a model's logits. They know nothing about the model.

A strategy's generate() runs the decoding loop over a decoder (musicgen/decoders.py):
the base class applies the temperature and the event grammar once, and each
sampling strategy only says how to pick from the resulting probabilities. Beam
search keeps several sequences instead of choosing one token, so it overrides
the loop itself, as keras-hub's samplers do.
"""

from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from musicgen.errors import UserError
from musicgen.meters import DEFAULT_METER, bar_steps
from musicgen.tokens import KINDS

# The most events a piece runs to when the model is left to end it: over twice a chorale's or a folk tune's with its
# repeats, a minute and more of piano; a model that never ends is stopped there.
MAX_EVENTS = 2000


class Length(NamedTuple):
    """How long a continuation runs: `events` events, or until the model ends the piece with <end> (`to_end`),
    or until its music fills `steps` grid steps (bars or seconds), `events` then only capping it."""

    events: int = MAX_EVENTS
    steps: int = None
    to_end: bool = False


# Controls and the infilling markers come from the user, never from a model.
_NEVER_GENERATED = [KINDS.index(kind) for kind in ("pad", "start", "end", "control", "hole", "fill")]


class Onsets:
    """The keys struck at each row's current onset, so that no key is struck twice at once.

    Training data never holds such a note (preprocessing keeps one note per onset
    and key), but a sampler could write one: a note, then with shift 0 a chord
    that holds it. Such notes would be ill-formed MIDI; here they are never drawn.
    Where the encoding keeps instruments, a key is one instrument's: bass and
    piano may sound the same pitch at once.

    Where it keeps meters, a meter comes, as in training data, only on a bar line
    of the meter before it (4/4 from <start> until the first), once at a time,
    and never in the bars an infilling model fills in: they keep the meter of the
    music around them.
    """

    def __init__(self, vocabulary, prompts):
        self.vocabulary = vocabulary
        self.keys_of_tokens = vocabulary.strikes.T.astype(np.int32)  # (128, vocabulary), for one product a step
        # Merged tokens that name their instrument strike its keys, whichever instrument the row is on.
        self.own_program = np.flatnonzero((vocabulary.programs >= 0) & vocabulary.strikes.any(axis=1))
        self.rows = np.arange(len(prompts))
        self.struck = np.zeros((len(prompts), vocabulary.program_slots, 128), dtype=bool)
        self.program = np.zeros(len(prompts), dtype=np.int64)  # each row's current instrument slot
        self.meters = vocabulary.settings.meters
        if self.meters:
            self.meter_tokens, self.hole_tokens = vocabulary.bar_steps > 0, vocabulary.holds("hole")
            self.default_bar = bar_steps(*DEFAULT_METER, vocabulary.settings.steps_per_quarter)
            self.time = np.zeros(len(prompts), dtype=np.int64)  # grid steps since <start>
            self.bar_line = np.zeros(len(prompts), dtype=np.int64)  # where the current meter began
            self.bar = np.full(len(prompts), self.default_bar)  # the steps of its bars
            self.metered_at = np.full(len(prompts), -1)  # the step of the last meter written
            self.filling = np.zeros(len(prompts), dtype=bool)  # past an infilling <hole>
        for tokens in np.asarray(prompts).T:
            self.advance(tokens)

    def advance(self, tokens):
        """Each row has taken one more token."""
        vocabulary = self.vocabulary
        slots = vocabulary.programs[tokens]
        self.program = np.where(slots >= 0, slots, self.program)
        self.struck[self.rows, self.program] |= vocabulary.strikes[tokens]
        self.struck[vocabulary.moves_on[tokens]] = False
        if self.meters:
            starts = tokens == vocabulary.start_id
            self.time[starts], self.bar_line[starts], self.bar[starts] = 0, 0, self.default_bar
            self.metered_at[starts], self.filling[starts] = -1, False
            self.filling |= self.hole_tokens[tokens]
            named = vocabulary.bar_steps[tokens]
            self.bar_line = np.where(named > 0, self.time, self.bar_line)
            self.metered_at = np.where(named > 0, self.time, self.metered_at)
            self.bar = np.where(named > 0, named, self.bar)
            self.time += vocabulary.shift_steps[tokens]

    def reorder(self, rows):
        self.struck, self.program = self.struck[rows], self.program[rows]
        if self.meters:
            self.time, self.bar_line, self.bar = self.time[rows], self.bar_line[rows], self.bar[rows]
            self.metered_at, self.filling = self.metered_at[rows], self.filling[rows]

    def allowed(self, previous, may_end=None):
        """What may come next in each row (batch, vocabulary): the event grammar, no key struck twice at an onset,
        and never <start>, padding or a control token; <end> only in the rows where `may_end` (bool (batch,)) holds,
        and only where the grammar allows it, between events; a meter only on a bar line (see the class)."""
        vocabulary = self.vocabulary
        unstruck = (self.struck[self.rows, self.program].astype(np.int32) @ self.keys_of_tokens) == 0
        if len(self.own_program):
            struck = self.struck[:, vocabulary.programs[self.own_program]]  # (rows, tokens, 128)
            unstruck[:, self.own_program] = ~(struck & vocabulary.strikes[self.own_program]).any(axis=2)
        allowed = vocabulary.allowed_next(previous) & ~np.isin(vocabulary.kinds, _NEVER_GENERATED) & unstruck
        stuck = ~allowed.any(axis=1)  # e.g. after a seed that ends in <end>: begin a new event
        allowed[stuck] = vocabulary.event_starts & unstruck[stuck]
        if self.meters:
            on_bar_line = ((self.time - self.bar_line) % self.bar == 0) & (self.metered_at != self.time) & ~self.filling
            allowed[~on_bar_line] &= ~self.meter_tokens
        if may_end is not None:
            allowed[:, vocabulary.end_id] = may_end & vocabulary.allowed_next(previous)[:, vocabulary.end_id]
        return allowed


class Sampler:
    """Draws one token per row at every step; subclasses say how in choose()."""

    def __init__(self, temperature=1.0, seed=None, progress=False):
        """`progress`: True shows a progress bar (on stderr) when generating takes more than a second; a function
        `progress(reached, total, unit)` is told instead, at every step, how far the slowest row has got (total None
        where the model or a constraint ends the piece) and may stop generating by raising (app.py's cancel
        button)."""
        if not temperature > 0:
            raise UserError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.rng = np.random.default_rng(seed)
        self.progress = progress

    def generate(self, decoder, vocabulary, prompts, num_events, until_steps=None, constraint=None, to_end=False):
        """Extend each row of `prompts` (batch, time) by `num_events` whole events: the new tokens (batch, new time).

        With `until_steps`, a row is done once its events have moved on that many
        grid steps; with `to_end`, once the model ends the piece with <end> (kept as
        the row's last token), which it may do after its first event. Either way
        num_events then only caps it; rows done early are padded. Tokens are
        restricted to what the event grammar allows after the previous one, so every
        output decodes into complete events; <start>, control tokens and padding are
        never produced, nor a key struck twice at one onset (Onsets). A `constraint`
        (musicgen.harmonize.MelodyConstraint) narrows the choice further, and a row
        is done once it says so.
        """
        prompts = np.asarray(prompts, dtype=np.int32)
        logits, state = decoder.start(prompts)
        onsets = Onsets(vocabulary, prompts)
        previous = prompts[:, -1]
        events_done = np.zeros(len(prompts), dtype=np.int64)
        steps_done = np.zeros(len(prompts), dtype=np.int64)
        ended = np.zeros(len(prompts), dtype=bool)

        def finished():
            done = ended | (events_done >= num_events) | (until_steps is not None and steps_done >= until_steps)
            return done | constraint.done if constraint is not None else done

        generated = []
        # Under a constraint, it says when a row is done: num_events is only a cap, not how far it goes.
        with _ProgressBar(self.progress, num_events, until_steps, to_end or constraint is not None) as progress:
            while not finished().all():
                done = finished()
                allowed = onsets.allowed(previous, may_end=events_done > 0 if to_end else None)
                if constraint is not None:
                    allowed = constraint.allowed(previous, allowed | done[:, None])
                tokens = np.where(done, vocabulary.pad_id, self(logits, allowed)).astype(np.int32)
                onsets.advance(tokens)
                if constraint is not None:
                    constraint.advance(tokens)
                generated.append(tokens)
                events_done += vocabulary.ends_event[tokens]
                steps_done += vocabulary.shift_steps[tokens]
                ended |= tokens == vocabulary.end_id
                previous = np.where(done, previous, tokens)
                progress.show((steps_done if until_steps else events_done)[~finished()])
                if not finished().all():
                    logits, state = decoder.step(tokens, state)
        return np.stack(generated, axis=1)

    def __call__(self, logits, allowed):
        """logits: float (batch, vocabulary); allowed: bool mask of the same shape -> token ids (batch,)."""
        scaled = np.where(allowed, np.asarray(logits, dtype=np.float64) / self.temperature, -np.inf)
        scaled -= scaled.max(axis=1, keepdims=True)
        probabilities = np.exp(scaled)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return self.choose(probabilities)

    def choose(self, probabilities):
        raise NotImplementedError

    def _draw(self, probabilities):
        cumulative = np.cumsum(probabilities, axis=1)
        draws = self.rng.random((len(probabilities), 1)) * cumulative[:, -1:]
        return np.minimum((cumulative < draws).sum(axis=1), probabilities.shape[1] - 1)


class _ProgressBar:
    """How far the slowest row has got, in events (or grid steps, with `until_steps`), shown once it takes over a
    second, or told to a function (see Sampler); with `open_ended` (the model or a constraint ends the piece) it
    counts with no total."""

    def __init__(self, progress, num_events, until_steps, open_ended):
        total = until_steps or (None if open_ended else num_events)
        self.unit = "step" if until_steps else "event"
        self.report = progress if callable(progress) else None
        self.bar = tqdm(total=total, unit=self.unit, delay=1, leave=False, disable=progress is not True,
                        desc="generating")
        self.total = total

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.bar.close()

    def show(self, reached):
        """`reached`: the events (or steps) of each row still going so far."""
        if len(reached):
            slowest = int(reached.min()) if self.total is None else min(int(reached.min()), self.total)
            if slowest > self.bar.n:
                self.bar.update(slowest - self.bar.n)
            if self.report:
                self.report(slowest, self.total, self.unit)


class GreedySampler(Sampler):
    """Always the most likely token: deterministic, and prone to loops."""

    def choose(self, probabilities):
        return probabilities.argmax(axis=1)


class RandomSampler(Sampler):
    """A draw from the whole (temperature-scaled) distribution."""

    def choose(self, probabilities):
        return self._draw(probabilities)


class TopKSampler(Sampler):
    """A draw from the k most likely tokens."""

    def __init__(self, k=20, **kwargs):
        super().__init__(**kwargs)
        if k < 1:
            raise UserError(f"top-k must keep at least 1 token, got {k}")
        self.k = k

    def choose(self, probabilities):
        k = min(self.k, probabilities.shape[1])
        threshold = -np.partition(-probabilities, k - 1, axis=1)[:, k - 1: k]
        return self._draw(np.where(probabilities >= threshold, probabilities, 0.0))


class TopPSampler(Sampler):
    """A draw from the smallest set of tokens whose probabilities add up to p (nucleus sampling)."""

    def __init__(self, p=0.9, **kwargs):
        super().__init__(**kwargs)
        if not 0 < p <= 1:
            raise UserError(f"top-p must be in (0, 1], got {p}")
        self.p = p

    def choose(self, probabilities):
        order = np.argsort(-probabilities, axis=1)
        sorted_probabilities = np.take_along_axis(probabilities, order, axis=1)
        mass_before = np.cumsum(sorted_probabilities, axis=1) - sorted_probabilities
        kept_sorted = np.where(mass_before < self.p, sorted_probabilities, 0.0)
        kept = np.zeros_like(probabilities)
        np.put_along_axis(kept, order, kept_sorted, axis=1)
        return self._draw(kept)


class BeamSearch(Sampler):
    """The most likely continuations under the temperature-scaled model, `width` sequences kept at every step.

    Rows of the prompts that hold the same prompt get its best beams, best first;
    so one prompt tiled n times gives the n best continuations (n <= width), and
    different prompts each get their best one.
    """

    def __init__(self, width=4, **kwargs):
        super().__init__(**kwargs)
        if width < 1:
            raise UserError(f"beam width must be at least 1, got {width}")
        self.width = width

    def generate(self, decoder, vocabulary, prompts, num_events):
        prompts = np.asarray(prompts, dtype=np.int32)
        unique, which = np.unique(prompts, axis=0, return_inverse=True)
        generated = [None] * len(prompts)
        for index, prompt in enumerate(unique):
            rows = np.flatnonzero(which.ravel() == index)
            if len(rows) > self.width:
                raise UserError(f"beam search gives at most beam width ({self.width}) continuations of one seed; "
                                f"{len(rows)} were asked for")
            beams, _ = self.search(decoder, vocabulary, prompt, num_events)
            for rank, row in enumerate(rows):
                generated[row] = beams[rank]
        return np.stack(generated)

    def search(self, decoder, vocabulary, prompt, num_events):
        """The `width` best continuations of one prompt (time,) by `num_events` whole events: (tokens (width, new
        time), log-probabilities), best first.

        Every continuation holds the same number of events, so their scores compare without length
        normalisation. Where merged tokens let one beam finish its events in fewer steps than another, a finished
        beam waits, padded, with its score as it is, until the others finish.
        """
        prompt = np.tile(np.asarray(prompt, dtype=np.int32), (self.width, 1))
        logits, state = decoder.start(prompt)
        onsets = Onsets(vocabulary, prompt)
        scores = np.full(self.width, -np.inf)
        scores[0] = 0.0  # the beams start identical: expand only one of them
        sequences = np.zeros((self.width, 0), dtype=np.int32)
        previous = prompt[:, -1]
        events = np.zeros(self.width, dtype=np.int64)
        done = events >= num_events
        with _ProgressBar(self.progress, num_events, None, False) as progress:
            while not done.all():
                progress.show(events[~done])
                scaled = np.where(onsets.allowed(previous), logits / self.temperature, -np.inf)
                log_probabilities = scaled - np.logaddexp.reduce(scaled, axis=1, keepdims=True)
                log_probabilities[done] = -np.inf
                log_probabilities[done, vocabulary.pad_id] = 0.0  # a finished beam goes on unchanged
                candidates = (scores[:, None] + log_probabilities).ravel()
                best = np.argsort(-candidates, kind="stable")[:self.width]
                rows, tokens = np.divmod(best, len(vocabulary))
                scores = candidates[best]
                sequences = np.concatenate([sequences[rows], tokens[:, None].astype(np.int32)], axis=1)
                state = decoder.reorder(state, rows)
                onsets.reorder(rows)
                onsets.advance(tokens)
                waiting = done[rows]
                previous = np.where(waiting, previous[rows], tokens)
                events = events[rows] + vocabulary.ends_event[tokens]
                done = waiting | (events >= num_events)
                if not done.all():
                    logits, state = decoder.step(tokens.astype(np.int32), state)
        return sequences, scores


STRATEGIES = {"greedy": GreedySampler, "sample": RandomSampler, "top-k": TopKSampler, "top-p": TopPSampler,
              "beam": BeamSearch}


def get(name, temperature=1.0, top_k=20, top_p=0.9, beam_width=4, seed=None, progress=False):
    """The strategy `name`, with every setting checked."""
    if name not in STRATEGIES:
        raise UserError(f"the decoding strategy must be one of [{', '.join(STRATEGIES)}]; got {name!r}")
    extra = {"top-k": {"k": top_k}, "top-p": {"p": top_p}, "beam": {"width": beam_width}}.get(name, {})
    return STRATEGIES[name](temperature=temperature, seed=seed, progress=progress, **extra)


def add_arguments(parser):
    """The decoding options, shared by generate.py and evaluate.py."""
    group = parser.add_argument_group("decoding")
    group.add_argument("--strategy", default="top-p", help=f"{', '.join(STRATEGIES)} (default: top-p)")
    # 1.0, measured (docs/results.md, "Music with form"): the default model's continuations then repeat themselves about
    # as often as real chorales do; at 0.8 they repeat 4-event patterns over three times as often.
    group.add_argument("--temperature", type=float, default=1.0, help="below 1 is safer, above 1 wilder (default: 1.0)")
    group.add_argument("--top-k", type=int, default=20, help="tokens kept by top-k (default: 20)")
    group.add_argument("--top-p", type=float, default=0.9, help="probability mass kept by top-p (default: 0.9)")
    group.add_argument("--beam-width", type=int, default=4, help="sequences kept by beam search (default: 4)")
    group.add_argument("--random-seed", type=int, help="makes sampling reproducible")
    return group


def from_arguments(args, progress=False):
    """The strategy the arguments of add_arguments ask for."""
    return get(args.strategy, args.temperature, args.top_k, args.top_p, args.beam_width, args.random_seed, progress)
