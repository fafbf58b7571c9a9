import numpy as np
import pretty_midi
import pytest

import generate
import train
from models.ngram import NgramDecoder, NgramModel
from musicgen.errors import UserError
from musicgen.runs import read_run_config

PATTERN = np.array([1, 2, 3, 4] * 50 + [1, 2, 5, 4] * 10)


def test_probabilities_sum_to_one_and_are_never_zero():
    model = NgramModel.fit(PATTERN, vocabulary_size=8, max_order=3)
    for history in ([], [1], [1, 2], [7, 7], [6]):
        probabilities = np.exp(model.next_log_probabilities(history))
        assert probabilities.sum() == pytest.approx(1.0)
        assert probabilities.min() > 0, "unseen tokens keep some probability"


def test_longer_context_predicts_better():
    model = NgramModel.fit(PATTERN, vocabulary_size=8, max_order=3)
    after_two = np.exp(model.next_log_probabilities([1, 2]))
    assert after_two.argmax() == 3 and after_two[3] > 0.75 and after_two[5] > 0.1
    assert np.exp(model.next_log_probabilities([2, 3]))[4] > 0.9


def test_scoring_a_sequence_agrees_with_step_by_step_distributions():
    model = NgramModel.fit(PATTERN, vocabulary_size=8, max_order=4)
    sequence = np.array([1, 2, 5, 4, 1, 2, 3, 7, 6, 1])
    vectorized = model.token_log_probabilities(sequence)
    stepwise = [model.next_log_probabilities(sequence[max(0, i - 3): i + 1])[sequence[i + 1]] for i in range(len(sequence) - 1)]
    np.testing.assert_allclose(vectorized, stepwise, rtol=1e-10)


def test_save_and_load_round_trip(tmp_path):
    model = NgramModel.fit(PATTERN, vocabulary_size=8, max_order=3)
    model.save(tmp_path / "model.npz")
    loaded = NgramModel.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.token_log_probabilities(PATTERN), model.token_log_probabilities(PATTERN))
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a saved n-gram"):
        NgramModel.load(tmp_path / "bad.npz")


def test_decoder_carries_the_history():
    model = NgramModel.fit(PATTERN, vocabulary_size=8, max_order=3)
    decoder = NgramDecoder(model)
    logits, state = decoder.start(np.array([[4, 1]]))
    assert logits.argmax() == 2
    logits, state = decoder.step(np.array([2]), state)
    assert logits.argmax() == 3 and state.tolist() == [[1, 2]]


def test_train_chooses_an_order_and_generates(processed, tmp_path, capsys):
    train.main(["--model", "ngram", "--data", str(processed), "--checkpoints", str(tmp_path)])
    run_config = read_run_config(tmp_path / "ngram")
    assert run_config["progress"]["history"][0]["order"] >= 2
    assert run_config["progress"]["best_val_loss"] < 3.0
    generate.main(["--checkpoint", str(tmp_path / "ngram"), "--seed", "C4 E4", "--length", "16",
                   "--output", str(tmp_path / "n.mid")])
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / "n.mid")).instruments[0].notes) >= 18
    with pytest.raises(UserError, match="not a setting"):
        train.main(["--model", "ngram", "--data", str(processed), "--units", "8"])
