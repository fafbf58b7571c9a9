"""The plans generate.py runs (musicgen/generation.py) and classifier-free guidance (musicgen/guidance.py), on a
stub run: a real vocabulary and preprocessing recipe, and stub decoders of fixed logits that record what they
are asked, so every Generated can be checked exactly and fast."""

from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from musicgen import generation, infilling, sampling
from musicgen.meters import Bars
from musicgen.chords import Progression, parse_symbol
from musicgen.decoders import Decoder
from musicgen.encoding import EncodingSettings, event_notes, event_symbols
from musicgen.errors import UserError
from musicgen.guidance import GuidedDecoder, guided
from musicgen.recipe import Recipe
from musicgen.runs import Run
from musicgen.sampling import Length
from musicgen.seed import Seed, parse_seed
from musicgen.spec import ModelSpec
from musicgen.tokens import KINDS
from musicgen.vocabulary import Vocabulary

LABELS = ["key=C major", "key=D major"]
KEY = {"key": "C major"}
GREEDY = sampling.get("greedy")


def vocabulary(**extra):
    return Vocabulary.build(EncodingSettings(), {}, controls=LABELS, **extra)


class Recording(Decoder):
    """A stub decoder that keeps what it is asked: the prompts it reads, the counts it is to pin, its steps."""

    def __init__(self, vocabulary, seed=None):
        self.vocabulary, self.seed = vocabulary, seed
        self.prompts, self.pins, self.steps = [], [], 0

    def pin(self, count):
        self.pins.append(count)

    def start(self, prompt):
        prompt = np.asarray(prompt)
        self.prompts.append(prompt.copy())
        return self.logits(np.zeros(len(prompt), np.int64), prompt), np.zeros(len(prompt), np.int64)

    def step(self, tokens, state):
        self.steps += 1
        return self.logits(state, tokens), state

    def reorder(self, state, rows):
        return state[rows]

    def logits(self, state, tokens):
        return np.zeros((len(state), len(self.vocabulary)))


class Parts(Recording):
    """Writes `voices` notes at every onset, nearest middle C first, each lasting `step` grid steps, then moves on
    by `step`: a four-part texture in quarter notes by default. State: the notes written at the current onset."""

    def __init__(self, vocabulary, seed=None, voices=4, step=4):
        super().__init__(vocabulary, seed)
        self.voices = voices
        base = np.full(len(vocabulary), -50.0)
        notes = vocabulary.kinds == KINDS.index("note")
        pitches = np.array([p[0] if len(p) == 1 else 0 for p in vocabulary.pitches])
        base[notes] = 10 - 0.01 * np.abs(pitches[notes] - 60)
        base[vocabulary.index[f"dur:{step}"]] = 10
        self.hold, self.move = base.copy(), base.copy()
        self.hold[vocabulary.index["shift:0"]] = 10
        self.move[vocabulary.index[f"shift:{step}"]] = 10

    def step(self, tokens, state):
        kinds = self.vocabulary.kinds[tokens]
        pitched = np.isin(kinds, [KINDS.index("note"), KINDS.index("chord")])
        return super().step(tokens, np.where(self.vocabulary.moves_on[tokens], 0, state + pitched))

    def logits(self, state, tokens):
        return np.where((state < self.voices)[:, None], self.hold, self.move)


class Stuck(Recording):
    """A model that never moves on: rests of no length, forever."""

    def logits(self, state, tokens):
        row = np.full(len(self.vocabulary), -50.0)
        row[[self.vocabulary.index[name] for name in ("R", "dur:1", "shift:0")]] = 10
        return np.tile(row, (len(state), 1))


class Noisy(Recording):
    """A decoder with noise of its own (as the GAN's): logits drawn from its seed."""

    def __init__(self, vocabulary, seed=None):
        super().__init__(vocabulary, seed)
        self.rng = np.random.default_rng(seed)

    def logits(self, state, tokens):
        return self.rng.normal(0.0, 3.0, (len(state), len(self.vocabulary)))


class Factory:
    """A stub run's spec.decoder: makes `kind` decoders and keeps each one."""

    def __init__(self, vocabulary, kind, **settings):
        self.vocabulary, self.kind, self.settings = vocabulary, kind, settings
        self.made = []

    def __call__(self, model, seed=None):
        self.made.append(self.kind(self.vocabulary, seed, **self.settings))
        return self.made[-1]


def stub_run(vocabulary, kind=Parts, recipe=None, seq_len=4096, **settings):
    """(Run, its decoder factory): a run whose model is the stub `kind`, read with `recipe` (default: the default)."""
    recipe = recipe or Recipe()
    factory = Factory(vocabulary, kind, **settings)
    spec = ModelSpec(name="stub", description="a stub model", defaults={}, decoder=factory,
                     prior_decoder=lambda model, seed: factory(model, seed),
                     interpolation_decoder=lambda model, first, second, steps: ("walk", first, second, steps))
    config = {"config": {"seq_len": seq_len}, "preprocessing": recipe.to_json()}
    return Run(Path("stub-run"), spec, config, vocabulary, None), factory


def write_piece(path, bars, meter=(4, 4), bpm=90, melody=None, chords=True):
    """A melody of quarter notes (default: up and down from G4) over a block chord a bar (C F G C ...)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(*meter, 0.0))
    beat = 60.0 / bpm
    quarters = bars * meter[0] * 4 // meter[1]
    melody = melody or [[67, 69, 71, 72, 74, 72, 71, 69][i % 8] for i in range(quarters)]
    top, low = pretty_midi.Instrument(program=0), pretty_midi.Instrument(program=0)
    top.notes = [pretty_midi.Note(90, pitch, i * beat, (i + 1) * beat) for i, pitch in enumerate(melody)]
    bar = meter[0] * 4 // meter[1] * beat
    if chords:
        for index in range(bars):
            root = [48, 53, 55, 48][index % 4]
            low.notes += [pretty_midi.Note(70, root + step, index * bar, (index + 1) * bar) for step in (0, 4, 7)]
    midi.instruments += [top, low]
    midi.write(str(path))
    return path


def onsets_of(events):
    """{onset: [pitches, highest first]} of the notes the events hold."""
    sounding = {}
    for onset, _, pitch, *_ in event_notes(events).tolist():
        sounding.setdefault(onset, []).append(pitch)
    return {onset: sorted(pitches, reverse=True) for onset, pitches in sounding.items()}


def log_softmax(logits):
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


# Classifier-free guidance


class Labelled(Recording):
    """Log-probabilities of C4 0.5 and D4 0.25 after a prompt with labels; C4 0.25 and D4 0.5 after one without."""

    def logits(self, state, tokens):
        return np.tile(self.table[int(state[0])], (len(state), 1))

    def start(self, prompt):
        super().start(prompt)
        labelled = self.vocabulary.is_control[np.asarray(prompt)].any(axis=1).astype(np.int64)
        return np.stack([self.table[i] for i in labelled]), labelled

    @property
    def table(self):
        """(log-probabilities without labels, with labels): indexed by whether the prompt held a label."""
        rest = len(self.vocabulary) - 2
        labelled, free = np.full(len(self.vocabulary), 0.25 / rest), np.full(len(self.vocabulary), 0.25 / rest)
        c4, d4 = self.vocabulary.index["C4"], self.vocabulary.index["D4"]
        labelled[[c4, d4]], free[[c4, d4]] = (0.5, 0.25), (0.25, 0.5)
        return np.log(free), np.log(labelled)


def test_guidance_raises_the_labelled_probabilities_to_its_weight_over_the_unlabelled_ones():
    words = vocabulary()
    c4, d4 = words.index["C4"], words.index["D4"]
    prompt = np.array([[words.start_id, words.index["key=C major"], words.index["E4"]]] * 2)
    decoder = GuidedDecoder(Labelled(words), Labelled(words), words, 2.0)
    logits, state = decoder.start(prompt)
    logits, _ = decoder.step(np.array([c4, c4]), decoder.reorder(state, np.array([1, 0])))
    # p ~ p(x | labels)^2 / p(x | no labels): C4 0.5^2 / 0.25 = 1, D4 0.25^2 / 0.5 = 1/8, the rest 1/4 in all.
    probabilities = np.exp(logits)
    np.testing.assert_allclose(probabilities[:, [c4, d4]], [[1 / 1.375, 0.125 / 1.375]] * 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_guided_decoding_at_weight_one_is_the_runs_own_decoder_and_above_it_mixes_two():
    words = vocabulary()
    prompt = np.array([[words.start_id, words.index["key=C major"], words.index["E4"]]])
    run, factory = stub_run(words, Labelled)
    plain = guided(run, words, 1.0, random_seed=3)
    assert factory.made == [plain], "one model pass a step, not two"
    np.testing.assert_allclose(plain.start(prompt)[0], [Labelled(words).table[1]])
    for weight in (2.0, 3.0):
        logits, _ = guided(run, words, weight, random_seed=3).start(prompt)
        free, labelled = Labelled(words).table
        np.testing.assert_allclose(logits, [log_softmax(free + weight * (labelled - free))])


# Continuing a seed


def test_a_continuation_keeps_its_seed_reads_it_once_and_guides_by_its_labels():
    words = vocabulary()
    run, factory = stub_run(words)
    seed = Seed(parse_seed("C4 E4:2 R:1", words), "seed 'C4 E4:2 R:1'", np.array([[0, 72.0]]))
    made = generation.continuation_plan(run, words, GREEDY, seed, {"key": "D major"}, 2.0, count=2, length=Length(3))
    assert made.description == "seed 'C4 E4:2 R:1'; labels key=D major (guidance 2)"
    assert (made.given, made.given_events, made.seed_steps) == ("seed", 3, 16)
    np.testing.assert_array_equal(made.tempo_changes, [[0, 72.0]])
    assert len(made.pieces) == 2
    for piece in made.pieces:
        assert piece[:3] == words.decode(seed.tokens) and len(piece) == 6
    labelled, unlabelled = factory.made
    opening = [words.start_id, words.index["key=D major"]]
    np.testing.assert_array_equal(labelled.prompts[0], np.tile(np.r_[opening, seed.tokens[1:]], (2, 1)))
    np.testing.assert_array_equal(unlabelled.prompts[0], np.tile(seed.tokens, (2, 1)))
    assert (labelled.pins, unlabelled.pins) == ([2], [1]), "the unlabelled prompt opens with <start> alone"
    plain = generation.continuation_plan(run, words, GREEDY, seed, {}, 1.0, count=1, length=Length(3))
    assert plain.description == "seed 'C4 E4:2 R:1'", "no labels asked for, none named"


# Latent spaces


def test_the_prior_plan_samples_pieces_from_a_lone_start_and_says_so():
    words = vocabulary()
    run, factory = stub_run(words)
    made = generation.latent_plan(run, words, GREEDY, prior=True, interpolate=None, steps=3, length=Length(2))
    assert made.description == "latent drawn from the prior"
    assert (len(made.pieces), made.given, made.given_events, made.seed_steps) == (3, "seed", 0, 0)
    assert [len(piece) for piece in made.pieces] == [2, 2, 2]
    np.testing.assert_array_equal(factory.made[0].prompts[0], np.full((3, 1), words.start_id))


def test_an_interpolation_reads_both_seeds_through_the_runs_recipe_and_names_them():
    words = vocabulary()
    run, _ = stub_run(words, recipe=Recipe(melody_only=True))
    walk, prompt, description = generation.latent_decoder(run, interpolate=("C4.E4.G4 D4", "G4 B4"))
    _, first, second, steps = walk
    assert steps == 5
    assert words.decode(first) == words.decode(parse_seed("G4 D4", words)), "a melody-only run reads chords' tops"
    np.testing.assert_array_equal(second, parse_seed("G4 B4", words))
    assert prompt.tolist() == [words.start_id]
    assert description == "5 steps from the encoding of 'C4.E4.G4 D4' to that of 'G4 B4'"


@pytest.mark.parametrize("prior, interpolate", [(True, ("C4", "D4")), (False, None)])
def test_a_latent_plan_takes_the_prior_or_two_seeds(prior, interpolate):
    run, _ = stub_run(vocabulary())
    with pytest.raises(UserError, match="^sample either the prior or an interpolation between two seeds$"):
        generation.latent_decoder(run, prior=prior, interpolate=interpolate)


# Harmonizing a melody


def test_a_harmonized_file_keeps_its_melody_on_top_its_tempo_and_its_labels(tmp_path):
    words = vocabulary()
    run, factory = stub_run(words)
    melody = [72, 74, 76, 77, 79, 77, 76, 74]
    path = write_piece(tmp_path / "melody.mid", bars=2, melody=melody)
    made = generation.harmonize_plan(run, words, GREEDY, path, KEY, count=2)
    assert made.description == f"the melody of {path} (8 notes) harmonized; labels key=C major"
    assert (made.given, made.given_events, made.seed_steps, made.given_from) == ("melody", 8, 0, None)
    np.testing.assert_allclose(made.tempo_changes, [[0, 90.0]], rtol=1e-5)
    assert made.melody[:, :3].tolist() == [[4 * i, 4, pitch] for i, pitch in enumerate(melody)]
    assert len(made.pieces) == 2
    for piece in made.pieces:
        voices = onsets_of(piece)
        assert [voices[4 * i][0] for i in range(8)] == melody, "the melody is the top voice"
        assert voices == {4 * i: [pitch, 61, 60, 59] for i, pitch in enumerate(melody)}
    (decoder,) = factory.made
    np.testing.assert_array_equal(decoder.prompts[0], [[words.start_id, words.index["key=C major"]]] * 2)
    assert decoder.pins == [2], "<start> and the label stay in view"


@pytest.mark.parametrize("notes", [5, 20])
def test_a_short_or_long_melody_is_harmonized_in_four_parts_to_its_end(tmp_path, notes):
    words = vocabulary()
    run, _ = stub_run(words)
    melody = [[72, 74, 76, 77][i % 4] for i in range(notes)]
    path = write_piece(tmp_path / "melody.mid", bars=2, melody=melody, chords=False)
    (piece,) = generation.harmonize_plan(run, words, GREEDY, path, {}, count=1).pieces
    assert sum(event.shift for event in piece) == 4 * notes
    assert onsets_of(piece) == {4 * i: [pitch, 61, 60, 59] for i, pitch in enumerate(melody)}


# Writing over chords


def chord_words():
    return vocabulary(symbols=[parse_symbol(name) for name in ("C", "F", "G7")])


def test_music_over_chords_holds_each_chord_and_says_which(tmp_path):
    words = chord_words()
    run, factory = stub_run(words)
    made = generation.chords_plan(run, words, GREEDY, Progression.parse("C | F G7", bars=2), KEY, count=2)
    assert made.description == "music over the chords C F G7; labels key=C major"
    assert (made.given, made.given_events, made.tempo_changes, made.melody) == ("chords", 3, None, None)
    assert len(made.pieces) == 2
    for piece in made.pieces:
        assert event_symbols(piece).names() == ["C", "F", "G7"]
        assert event_symbols(piece).onsets.tolist() == [0, 16, 24]
        assert onsets_of(piece) == {step: [61, 60, 59, 58] for step in range(0, 32, 4)}
    (decoder,) = factory.made
    np.testing.assert_array_equal(decoder.prompts[0], [[words.start_id, words.index["key=C major"]]] * 2)
    assert decoder.pins == [2]


@pytest.mark.parametrize("bars", [1, 8])
def test_one_bar_or_eight_of_chords_are_written_over_in_four_parts_to_the_end(bars):
    words = chord_words()
    run, _ = stub_run(words)
    (piece,) = generation.chords_plan(run, words, GREEDY, Progression.parse("C F G7 C", bars=bars), {}, 1).pieces
    assert sum(event.shift for event in piece) == 16 * bars
    assert onsets_of(piece) == {step: [61, 60, 59, 58] for step in range(0, 16 * bars, 4)}


# Filling in bars


def infill_words(**extra):
    return vocabulary(infilling=True, **extra)


def test_filled_bars_come_back_between_the_music_around_them_with_its_tempo(tmp_path):
    words = infill_words()
    run, factory = stub_run(words)
    path = write_piece(tmp_path / "tune.mid", bars=8)
    made = generation.infill_plan(run, words, GREEDY, path, (3, 4), KEY, count=2)
    grid = Recipe().read_first(path, words.settings, "--infill")
    gap = infilling.split_at(grid.notes, words, 3, 4, Bars.regular(16))
    assert made.description == f"bars 3-4 of {path} filled in; labels key=C major"
    assert (made.given, made.given_events) == ("gap", len(gap.before) + len(gap.after))
    assert (made.seed_steps, made.given_from) == (32, 64), "given music up to bar 3, and again from bar 5"
    np.testing.assert_allclose(made.tempo_changes, [[0, 90.0]], rtol=1e-5)
    assert len(made.pieces) == 2
    for piece in made.pieces:
        assert piece[:len(gap.before)] == gap.before and piece[len(piece) - len(gap.after):] == gap.after
        voices = onsets_of(piece)
        filled = range(32, 64, 4)
        assert {step: voices[step] for step in filled} == {step: [61, 60, 59, 58] for step in filled}
    (decoder,) = factory.made
    assert decoder.pins == [2], "<start> and the label"
    # <start> key=C major <hole> shift:32 (the gap) bars 5-8 <fill> bars 1-2, for each piece: all of it fits.
    prompt = infilling.prompt(words, gap, [words.index["key=C major"]])
    assert words.decode(prompt[list(prompt).index(words.fill_id) + 1:]) == gap.before
    np.testing.assert_array_equal(decoder.prompts[0], [prompt] * 2)


def test_filled_bars_keep_the_chord_symbols_around_them(tmp_path):
    path = write_piece(tmp_path / "tune.mid", bars=8)
    recipe = Recipe(chord_symbols="infer")
    grid = recipe.read_first(path, EncodingSettings(), "--infill")
    words = infill_words(symbols=sorted(set(grid.chord_symbols.codes.tolist())))
    run, _ = stub_run(words, recipe=recipe)
    (piece,) = generation.infill_plan(run, words, GREEDY, path, (3, 4), {}, count=1).pieces
    written = grid.chord_symbols.cut_at(64)  # bar 5 holds on to bar 4's C: the music after the gap names it again
    outside = [(int(onset), code) for onset, _, code in written if not 32 <= onset < 64]
    symbols = event_symbols(piece)
    assert [(onset, code) for onset, code in zip(symbols.onsets.tolist(), symbols.codes.tolist())
            if not 32 <= onset < 64] == outside
    assert [onset for onset, _ in outside] == [0, 16, 64, 80, 96, 112], "bars 1, 2 and 5-8 open on their chord"
    assert len(grid.chord_symbols) == len(written) - 1


def test_the_infill_prompt_leaves_the_middle_room_in_the_models_window(tmp_path):
    words = infill_words()
    run, factory = stub_run(words, seq_len=120)
    path = write_piece(tmp_path / "tune.mid", bars=8)
    generation.infill_plan(run, words, GREEDY, path, (4, 4), {}, count=1)
    grid = Recipe().read_first(path, words.settings, "--infill")
    gap = infilling.split_at(grid.notes, words, 4, 4, Bars.regular(16))
    middle = len(words.encode(gap.middle, start=False, end=False))
    (prompt,) = factory.made[0].prompts[0]
    assert 120 - middle - 6 <= len(prompt) <= 120 - middle, "as much of the music around as fits"
    fill = list(prompt).index(words.fill_id)
    assert words.decode(prompt[fill + 1:]) == gap.before[len(gap.before) - len(words.decode(prompt[fill + 1:])):]


def test_filling_a_bar_stops_asking_the_model_once_the_bar_is_full(tmp_path):
    words = infill_words()
    run, factory = stub_run(words)
    path = write_piece(tmp_path / "tune.mid", bars=4)
    generation.infill_plan(run, words, GREEDY, path, (2, 2), {}, count=1)
    assert factory.made[0].steps == 4 * 4 * 3 - 1, "four quarters of four notes, three tokens each"


@pytest.mark.parametrize("bars, meter, fill", [(4, (2, 4), (2, 2)), (10, (4, 4), (2, 9))])
def test_a_bar_of_two_four_or_eight_bars_of_four_four_are_filled_to_their_end(tmp_path, bars, meter, fill):
    words = infill_words()
    run, _ = stub_run(words)
    path = write_piece(tmp_path / "tune.mid", bars=bars, meter=meter)
    (piece,) = generation.infill_plan(run, words, GREEDY, path, fill, {}, count=1).pieces
    bar = 4 * 4 * meter[0] // meter[1]
    voices = onsets_of(piece)
    filled = range((fill[0] - 1) * bar, fill[1] * bar, 4)
    assert {step: voices.get(step) for step in filled} == {step: [61, 60, 59, 58] for step in filled}
    assert sum(event.shift for event in piece) == bars * bar


def test_a_model_that_never_moves_on_leaves_the_bars_to_fill_silent(tmp_path):
    words = infill_words()
    run, _ = stub_run(words, kind=Stuck)
    path = write_piece(tmp_path / "tune.mid", bars=4)
    (piece,) = generation.infill_plan(run, words, GREEDY, path, (2, 2), {}, count=1).pieces
    grid = Recipe().read_first(path, words.settings, "--infill")
    notes = event_notes(piece)
    assert not ((notes[:, 0] >= 16) & (notes[:, 0] < 32)).any()
    given = grid.notes[(grid.notes[:, 0] < 16) | (grid.notes[:, 0] >= 32)]
    assert sorted(map(tuple, notes[:, :3].tolist())) == sorted(map(tuple, given[:, :3].tolist())), "and the rest kept"


def test_a_missing_file_to_fill_in_is_named_with_its_flag(tmp_path):
    words = infill_words()
    run, _ = stub_run(words)
    with pytest.raises(UserError, match=r"^--infill file .*missing\.mid does not exist$"):
        generation.infill_plan(run, words, GREEDY, tmp_path / "missing.mid", (1, 1), {}, count=1)


# One random seed, the same music


def every_plan(tmp_path):
    """name -> (vocabulary, plan(run, vocabulary, random_seed) -> Generated)."""
    melody = write_piece(tmp_path / "melody.mid", bars=2, melody=[72, 74, 76, 77, 79, 77, 76, 74], chords=False)
    tune = write_piece(tmp_path / "tune.mid", bars=4)
    seed = Seed(parse_seed("C4 E4", vocabulary()), "seed 'C4 E4'")
    return {
        "guided continuation": (vocabulary(), lambda run, words, random_seed: generation.continuation_plan(
            run, words, GREEDY, seed, KEY, 2.0, 2, Length(6), random_seed)),
        "harmonize": (vocabulary(), lambda run, words, random_seed: generation.harmonize_plan(
            run, words, GREEDY, melody, KEY, 2, random_seed)),
        "chords": (chord_words(), lambda run, words, random_seed: generation.chords_plan(
            run, words, GREEDY, Progression.parse("C F G7 C"), KEY, 2, random_seed)),
        "infill": (infill_words(), lambda run, words, random_seed: generation.infill_plan(
            run, words, GREEDY, tune, (2, 3), KEY, 2, random_seed)),
    }


@pytest.mark.parametrize("name", ["guided continuation", "harmonize", "chords", "infill"])
def test_one_random_seed_gives_the_same_music_even_from_a_model_with_noise_of_its_own(tmp_path, name):
    words, plan = every_plan(tmp_path)[name]

    def pieces(random_seed):
        run, factory = stub_run(words, kind=Noisy)
        made = plan(run, words, random_seed)
        assert [decoder.seed for decoder in factory.made] == [random_seed] * len(factory.made)
        return made.pieces

    assert pieces(5) == pieces(5)
    assert pieces(5) != pieces(6)
