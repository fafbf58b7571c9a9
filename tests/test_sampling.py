"""Decoding strategies with stub models of fixed logits: exactly which tokens each strategy may choose."""

import numpy as np
import pytest
from conftest import TrapDecoder

from musicgen import sampling
from musicgen.encoding import EncodingSettings
from musicgen.seed import parse_seed
from musicgen.vocabulary import Vocabulary

VOCABULARY = Vocabulary.build(EncodingSettings(), {(60, 64, 67): 5})


def names(ids):
    return [VOCABULARY.tokens[i] for i in ids]


def drawn(sampler, probabilities, rows=4000):
    """The set of tokens `sampler` draws in `rows` draws from `probabilities` (one distribution, all allowed)."""
    logits = np.tile(np.log(probabilities), (rows, 1))
    return set(sampler(logits, np.ones_like(logits, dtype=bool)).tolist())


def vocabulary_sized_distribution(head, seed=0):
    """A distribution over 300 tokens whose `head` most likely tokens (scattered) are each a few times likelier
    than any other; the tail holds most of the mass. (ids of the head, probabilities)"""
    rng = np.random.default_rng(seed)
    probabilities = rng.uniform(0.002, 0.004, 300)
    head_ids = rng.permutation(300)[:head]
    probabilities[head_ids] = rng.uniform(0.01, 0.02, head)
    return set(head_ids.tolist()), probabilities / probabilities.sum()


@pytest.mark.parametrize("k", [1, 2, 10, 40])
def test_top_k_draws_only_from_the_k_most_likely_tokens(k):
    head, probabilities = vocabulary_sized_distribution(k)
    assert drawn(sampling.get("top-k", top_k=k, seed=0), probabilities) == head


def test_top_k_of_one_always_takes_the_most_likely_token():
    logits = np.log(np.array([[0.1, 0.4, 0.05, 0.3, 0.15], [0.3, 0.05, 0.4, 0.1, 0.15]]))
    sampler = sampling.get("top-k", top_k=1, seed=0)
    assert {tuple(sampler(logits, np.ones((2, 5), bool)).tolist()) for _ in range(200)} == {(1, 2)}


@pytest.mark.parametrize("k", [4, 5, 20])
def test_top_k_of_the_whole_vocabulary_or_more_draws_from_every_token(k):
    assert drawn(sampling.get("top-k", top_k=k, seed=0), np.array([0.1, 0.4, 0.2, 0.3])) == {0, 1, 2, 3}


def test_strategies_made_without_settings_keep_the_command_lines_defaults():
    # --top-k 20: of 30 tokens of nearly equal probability, the 20 likeliest (ids 10..29).
    assert drawn(sampling.TopKSampler(seed=0), np.linspace(1.0, 1.29, 30) / np.linspace(1.0, 1.29, 30).sum()) == \
        set(range(10, 30))
    # --beam-width 4: four continuations, best first.
    prompt = parse_seed("C4", VOCABULARY)
    beams, scores = sampling.BeamSearch().search(TrapDecoder(VOCABULARY), VOCABULARY, prompt, 1)
    assert [names(beam) for beam in beams] == [["A4", "dur:4", "shift:4"], ["G4", "dur:1", "shift:4"],
                                               ["G4", "dur:2", "shift:4"], ["G4", "dur:3", "shift:4"]]
    np.testing.assert_allclose(np.exp(scores), [0.4, 0.24, 0.18, 0.18])


def test_beam_search_of_width_one_follows_the_greedy_path():
    prompt = parse_seed("C4", VOCABULARY)
    beams, scores = sampling.get("beam", beam_width=1).search(TrapDecoder(VOCABULARY), VOCABULARY, prompt, 2)
    assert [names(beam) for beam in beams] == [["G4", "dur:1", "shift:4"] * 2]
    np.testing.assert_allclose(scores, [2 * np.log(0.6 * 0.4)])
    greedy = sampling.get("greedy").generate(TrapDecoder(VOCABULARY), VOCABULARY, prompt[None], 2)
    np.testing.assert_array_equal(sampling.get("beam", beam_width=1).generate(TrapDecoder(VOCABULARY), VOCABULARY,
                                                                              prompt[None], 2), greedy)


def test_beam_search_gives_as_many_continuations_of_one_seed_as_its_width():
    prompts = np.tile(parse_seed("C4", VOCABULARY), (2, 1))
    generated = sampling.get("beam", beam_width=2).generate(TrapDecoder(VOCABULARY), VOCABULARY, prompts, 1)
    assert [names(row) for row in generated] == [["A4", "dur:4", "shift:4"], ["G4", "dur:1", "shift:4"]]


def test_beam_search_reads_the_seed_once_in_every_beam_and_asks_for_no_token_past_the_end():
    prompt = parse_seed("C4 E4", VOCABULARY)
    decoder = TrapDecoder(VOCABULARY)
    beams, _ = sampling.get("beam", beam_width=3).search(decoder, VOCABULARY, prompt, 2)
    assert len(decoder.prompts) == 1
    np.testing.assert_array_equal(decoder.prompts[0], np.tile(prompt, (3, 1)))
    assert beams.shape == (3, 6)
    assert decoder.steps == 5, "one distribution for each of the 6 tokens: the first from reading the seed"


@pytest.mark.parametrize("strategy", ["top-p", "beam"])
def test_a_progress_function_is_told_every_step_and_stops_generating_by_raising(strategy):
    prompt = parse_seed("C4", VOCABULARY)[None]
    told = []

    def progress(reached, total, unit):
        told.append((reached, total, unit))
        if reached >= 3:
            raise KeyboardInterrupt  # what a cancelled job raises, in the app's own exception

    with pytest.raises(KeyboardInterrupt):
        sampling.get(strategy, progress=progress).generate(TrapDecoder(VOCABULARY), VOCABULARY, prompt, 10)
    assert [reached for reached, _, _ in told] == sorted(reached for reached, _, _ in told)
    assert told[-1] == (3, 10, "event") and len(told) > 3, "told at every token, not only at each event"
