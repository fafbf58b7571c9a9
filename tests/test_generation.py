import numpy as np
import pytest
from conftest import TrapDecoder

from musicgen import sampling
from musicgen.decoders import Decoder
from musicgen.encoding import EncodingSettings, Event
from musicgen.errors import UserError
from musicgen.seed import parse_seed
from musicgen.vocabulary import Vocabulary

VOCABULARY = Vocabulary.build(EncodingSettings(), {(60, 64, 67): 5})


def names(ids):
    return [VOCABULARY.tokens[i] for i in ids]


def test_seed_notation_reads_notes_chords_durations_and_rests():
    ids = parse_seed("C4 E4:0.5 C4.E4.G4:2 R:1 Bb3:1/4", VOCABULARY)
    assert VOCABULARY.decode(ids) == [
        Event((60,), 4, 4), Event((64,), 2, 2), Event((60, 64, 67), 8, 8), Event((), 4, 4), Event((58,), 1, 1)]
    assert names(ids)[0] == "<start>"


def test_seed_chord_outside_the_vocabulary_becomes_its_notes():
    ids = parse_seed("D4.F4.A4:2", VOCABULARY)
    assert VOCABULARY.decode(ids) == [Event((69,), 8, 0), Event((65,), 8, 0), Event((62,), 8, 8)]


def test_seed_in_exact_token_names():
    ids = parse_seed("C4 dur:4 shift:4 C4.E4.G4 dur:8 shift:8", VOCABULARY)
    assert names(ids) == ["<start>", "C4", "dur:4", "shift:4", "C4.E4.G4", "dur:8", "shift:8"]


@pytest.mark.parametrize("seed, message", [
    ("H4", "not a note name"),
    ("C4:0", "whole number of grid steps"),
    ("C4:1/3", "whole number of grid steps"),
    ("C4:20", "longest duration"),
    ("C4:x", "not a duration"),
    ("C4 dur:99 shift:4", "nearest: dur:"),
    ("", "empty"),
])
def test_bad_seeds_are_explained(seed, message):
    with pytest.raises(UserError, match=message):
        parse_seed(seed, VOCABULARY)


LOGITS = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
ALL = np.ones((1, 4), dtype=bool)


def test_greedy_takes_the_most_likely_allowed_token():
    sampler = sampling.get("greedy")
    assert sampler(LOGITS, ALL)[0] == 0
    assert sampler(LOGITS, np.array([[False, False, True, True]]))[0] == 2


def test_top_k_and_top_p_keep_only_the_head_of_the_distribution():
    draws = lambda sampler: {int(sampler(LOGITS, ALL)[0]) for _ in range(300)}  # noqa: E731
    assert draws(sampling.get("top-k", top_k=2, seed=0)) == {0, 1}
    assert draws(sampling.get("top-p", top_p=0.7, seed=0)) == {0, 1}
    assert draws(sampling.get("top-p", top_p=0.1, seed=0)) == {0}
    assert draws(sampling.get("sample", seed=0)) == {0, 1, 2, 3}


def test_sampling_follows_the_distribution_and_temperature_flattens_it():
    sampler = sampling.get("sample", seed=1)
    counts = np.bincount([sampler(LOGITS, ALL)[0] for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    hot = sampling.get("sample", temperature=100.0, seed=1)
    counts = np.bincount([hot(LOGITS, ALL)[0] for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(counts, [0.25] * 4, atol=0.04)


def test_same_random_seed_same_output_and_another_seed_another():
    def draws(seed):
        sampler = sampling.get("top-p", seed=seed)
        return [sampler(LOGITS, ALL)[0] for _ in range(50)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


@pytest.mark.parametrize("options, message", [
    ({"name": "beam-of-light"}, "strategy"), ({"name": "sample", "temperature": -1}, "temperature"),
    ({"name": "top-p", "top_p": 1.5}, "top-p"), ({"name": "top-k", "top_k": 0}, "top-k"),
    ({"name": "beam", "temperature": 0}, "temperature"), ({"name": "beam", "beam_width": 0}, "beam width"),
])
def test_bad_decoding_options_are_refused(options, message):
    with pytest.raises(UserError, match=message):
        sampling.get(**options)


class FavouriteTokenDecoder(Decoder):
    """A stub model that always prefers <end>, then <pad>, then one note: the grammar must overrule it."""

    def logits(self, batch):
        logits = np.zeros((batch, len(VOCABULARY)))
        logits[:, VOCABULARY.end_id] = 50
        logits[:, VOCABULARY.pad_id] = 40
        logits[:, VOCABULARY.index["G4"]] = 30
        logits[:, VOCABULARY.index["dur:2"]] = 20
        logits[:, VOCABULARY.index["shift:2"]] = 20
        return logits

    def start(self, prompt):
        return self.logits(len(prompt)), None

    def step(self, tokens, state):
        return self.logits(len(tokens)), None


def test_generation_always_yields_whole_events_in_grammar():
    prompt = np.tile(parse_seed("C4 D4", VOCABULARY), (3, 1))
    new = sampling.get("greedy").generate(FavouriteTokenDecoder(), VOCABULARY, prompt, num_events=5)
    assert new.shape == (3, 15)
    for row in new:
        assert VOCABULARY.decode(row) == [Event((67,), 2, 2)] * 5


def test_beam_search_finds_the_sequence_greedy_misses():
    prompt = parse_seed("C4", VOCABULARY)
    greedy = sampling.get("greedy").generate(TrapDecoder(VOCABULARY), VOCABULARY, prompt[None], 1)[0]
    assert names(greedy) == ["G4", "dur:1", "shift:4"]
    beams, scores = sampling.get("beam", beam_width=3).search(TrapDecoder(VOCABULARY), VOCABULARY, prompt, 2)
    assert names(beams[0]) == ["A4", "dur:4", "shift:4", "A4", "dur:4", "shift:4"]
    np.testing.assert_allclose(scores[0], 2 * np.log(0.4), atol=1e-6)
    assert list(scores) == sorted(scores, reverse=True)


def test_beam_search_honours_the_temperature_wherever_it_runs():
    """evaluate.py --strategy beam --temperature X used to check X and then ignore it."""
    from musicgen import evaluation

    prompt = parse_seed("C4", VOCABULARY)[None]

    def first_pitches(temperature):
        strategy = sampling.get("beam", temperature=temperature, beam_width=3)
        return evaluation.generate_pieces(TrapDecoder(VOCABULARY), VOCABULARY, prompt, 1, strategy)[0][0].pitches

    assert first_pitches(1.0) == (69,), "A4: at the model's own temperature beam search sees through the trap"
    assert first_pitches(0.05) == (67,), "G4: sharpened, G4 (0.6) outweighs A4 (0.4) and its durations do not matter"


def test_beam_search_gives_each_prompt_its_best_and_a_repeated_prompt_its_best_few():
    prompts = np.stack([parse_seed("C4", VOCABULARY)] * 2 + [parse_seed("D4", VOCABULARY)])
    generated = sampling.get("beam", beam_width=3).generate(TrapDecoder(VOCABULARY), VOCABULARY, prompts, 1)
    beams, _ = sampling.get("beam", beam_width=3).search(TrapDecoder(VOCABULARY), VOCABULARY, prompts[0], 1)
    np.testing.assert_array_equal(generated[:2], beams[:2])
    np.testing.assert_array_equal(generated[2], beams[0])  # the trap decoder ignores the prompt: the same best beam
    with pytest.raises(UserError, match="at most beam width"):
        sampling.get("beam", beam_width=1).generate(TrapDecoder(VOCABULARY), VOCABULARY, prompts, 1)
