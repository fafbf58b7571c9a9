"""evaluate.py on music with dynamics and instruments: bits per velocity and instrument token, and the velocities,
instruments and timing of generated music against held-out music."""

import math

import numpy as np

from models import registry
from musicgen import evaluation, sampling
from musicgen.dataset import load_processed
from musicgen.decoders import Decoder
from musicgen.encoding import EncodingSettings, Event
from musicgen.metrics import instrument_counts, onset_gap_counts, velocity_counts
from musicgen.notes import DRUMS
from musicgen.seed import parse_seed
from musicgen.vocabulary import Vocabulary


def baseline_evaluation(vocabulary, splits):
    name, spec, model = registry.fit_baseline(splits, vocabulary)
    return evaluation.evaluate([(name, spec, spec.decoder(model))], splits, vocabulary,
                               sampling.get("sample", seed=0), pieces=4, length=24, random_seed=0, resamples=50)


def test_bits_per_velocity_and_instrument_token_and_their_histograms(band):
    vocabulary, splits = load_processed(band)
    assert vocabulary.settings.velocity_bins and vocabulary.settings.instruments, "the corpus chose both"
    result = baseline_evaluation(vocabulary, splits)
    model, held_out = result.rows[0], result.rows[-1]
    for kind in ("velocity", "instrument"):
        assert model[f"{kind}_bits"] > 0 and math.isfinite(model[f"{kind}_bits"])
        assert (result.per_piece[f"{kind}_tokens"] > 0).all()
    # Instruments come before every note event, so they are guessed at least as often as pitches.
    assert result.per_piece["instrument_tokens"].sum() >= result.per_piece["pitch_tokens"].sum()
    for histogram in ("velocity_histogram", "instrument_histogram"):
        assert 0 < model[f"{histogram}_overlap"] <= 1
    assert "onset_gap_histogram_overlap" not in model, "beat timing: the gaps are the durations' business"
    assert held_out["model"] == "real: held-out music"


def test_a_score_corpus_reports_no_velocity_or_instrument_numbers(processed):
    vocabulary, splits = load_processed(processed)
    result = baseline_evaluation(vocabulary, splits)
    model = result.rows[0]
    assert math.isnan(model["velocity_bits"]) and math.isnan(model["instrument_bits"])
    assert "velocity_histogram_overlap" not in model and "pitch_class_histogram_overlap" in model


def test_prompts_of_different_lengths_are_each_continued():
    """A rest has no instrument or velocity token, so two seeds of as many events can differ in tokens."""
    settings = EncodingSettings(velocity_bins=8, instruments=True)
    vocabulary = Vocabulary.build(settings, {})
    prompts = [parse_seed("C4@bass R:1 E4", vocabulary), parse_seed("ff C4 D4 E4@flute", vocabulary)]
    assert len(prompts[0]) != len(prompts[1])

    class Uniform(Decoder):
        def start(self, tokens):
            return np.zeros((len(tokens), len(vocabulary))), None

        def step(self, tokens, state):
            return self.start(tokens)

    pieces = evaluation.generate_pieces(Uniform(), vocabulary, prompts, 5, sampling.get("sample", seed=0))
    assert [len(piece) for piece in pieces] == [5, 5]
    for piece in pieces:
        for event in piece:
            assert (event.program is not None and event.velocity is not None) == bool(event.pitches)


def test_velocity_instrument_and_onset_gap_counts():
    events = [Event((60, 64), 4, 0, velocity=100, program=0), Event((36,), 1, 2, velocity=20, program=DRUMS),
              Event((), 2, 2), Event((43,), 4, 7, velocity=127, program=33)]
    np.testing.assert_array_equal(velocity_counts(events, 4), [1, 0, 0, 3])
    counts = instrument_counts(events)
    assert len(counts) == 129 and (counts[0], counts[DRUMS], counts[33], counts.sum()) == (2, 1, 1, 4)
    # notes start at 0 and 4 (the rest strikes nothing): one gap of 4 steps, counted as the longest one kept
    np.testing.assert_array_equal(onset_gap_counts(events, 5), [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(onset_gap_counts(events, 3), [0, 0, 1])
