"""Merged tokens (preprocess.py --merges): learned exactly, written with the fewest tokens, and lossless."""

import shutil

import numpy as np
import pytest
from conftest import UniformDecoder, shared

import preprocess
from musicgen.dataset import load_processed
from musicgen.encoding import EncodingSettings, Event
from musicgen.errors import UserError
from musicgen.merges import Segmenter, learn_merges
from musicgen.sampling import BeamSearch, Onsets, RandomSampler
from musicgen.tokens import KINDS
from musicgen.vocabulary import Vocabulary

_MERGED = KINDS.index("merged")


def test_each_merge_joins_the_pair_seen_most_often_counting_how_often_each_event_comes():
    counts = {("a", "b", "c"): 5, ("a", "b"): 3, ("b", "c"): 1, ("d", "e"): 2}
    # (a, b) is seen 8 times; then (ab, c) 5 times; (d, e) twice; (b, c) once more is below the minimum of 2
    assert learn_merges(counts, 10) == [("a", "b"), ("a", "b", "c"), ("d", "e")]
    assert learn_merges(counts, 1) == [("a", "b")], "no more than asked for"
    assert learn_merges(counts, 10, min_count=3) == [("a", "b"), ("a", "b", "c")]


def test_ties_go_to_the_pair_that_spells_first_and_merges_never_cross_an_event():
    assert learn_merges({("x", "y"): 4, ("b", "a"): 4}, 1) == [("b", "a")]
    # a and b meet only across two events: they are never merged
    assert learn_merges({("c", "a"): 9, ("b", "c"): 9}, 5) == [("b", "c"), ("c", "a")]


def test_a_run_is_written_with_the_fewest_tokens_the_lower_ids_first_among_equals():
    segment = Segmenter({10: (1, 2), 11: (2, 3), 12: (1, 2, 3), 13: (3, 4)})
    assert segment([1, 2, 3]) == [12]
    assert segment([1, 2, 3, 4]) == [10, 13], "two tokens, however the run is split; (10, 13) beats (12, 4)"
    assert segment([4, 1]) == [4, 1], "what no merged token covers stays as it is"
    assert segment([2, 3, 1]) == [11, 1]


def _vocabulary(merges):
    return Vocabulary.build(EncodingSettings(), {(60, 64, 67): 5}, merges=merges)


def test_merged_tokens_spell_their_parts_and_decode_as_their_parts_do():
    base = _vocabulary([])
    vocabulary = _vocabulary([("C4", "dur:4"), ("C4", "dur:4", "shift:4"), ("dur:2", "shift:2")])
    assert vocabulary.tokens[:len(base)] == base.tokens, "base tokens keep their ids"
    events = [Event((60,), 4, 4), Event((60,), 2, 2), Event((60, 64, 67), 4, 4), Event((), 2, 2)]
    ids = vocabulary.encode(events)
    assert [vocabulary.tokens[i] for i in ids] == ["<start>", "C4+dur:4+shift:4", "C4", "dur:2+shift:2", "C4.E4.G4",
                                                   "dur:4", "shift:4", "R", "dur:2+shift:2", "<end>"]
    np.testing.assert_array_equal(vocabulary.expand(ids), base.encode(events))
    np.testing.assert_array_equal(vocabulary.merge(base.encode(events)), ids)
    assert vocabulary.decode(ids) == base.decode(base.encode(events)) == events


def test_a_merged_token_that_is_not_one_event_in_grammar_order_is_refused():
    with pytest.raises(UserError, match="shift:4\\+C4"):
        _vocabulary([("shift:4", "C4")])


@pytest.fixture(scope="module")
def merged_corpus(processed, tune_folder, tmp_path_factory):
    """The tiny corpus preprocessed again with merged tokens, and the vocabulary without them."""
    output = tmp_path_factory.mktemp("merged")
    preprocess.main(["--input", str(tune_folder), "--output", str(output), "--min-chord-count", "1",
                     "--merges", "60"])
    return load_processed(output, ("train",))[0], load_processed(processed, ())[0]


def test_sampling_with_merged_tokens_keeps_the_event_grammar_and_strikes_no_key_twice(merged_corpus):
    vocabulary, base = merged_corpus
    assert vocabulary.merged > 20
    prompt = np.full((8, 1), vocabulary.start_id, dtype=np.int32)
    rows = RandomSampler(seed=0).generate(UniformDecoder(len(vocabulary)), vocabulary, prompt, num_events=40)
    used_merged = 0
    for row in rows:
        row = row[row != vocabulary.pad_id]  # rows that finish their events in fewer steps wait, padded
        used_merged += int((vocabulary.kinds[row] == _MERGED).sum())
        parts = vocabulary.expand(np.concatenate([[vocabulary.start_id], row]))
        follows = base.allowed_next(parts[:-1])[np.arange(len(parts) - 1), parts[1:]]
        assert follows.all(), "every base token may follow the one before it"
        events = vocabulary.decode(row)
        assert len(events) == 40
        onset, struck = 0, set()
        for event in events:
            assert not struck & set(event.pitches), "a key struck twice at one onset"
            struck |= set(event.pitches)
            if event.shift:
                onset, struck = onset + event.shift, set()
    assert used_merged > 0, "the sampler drew merged tokens"


def test_beam_search_over_merged_tokens_returns_whole_events(merged_corpus):
    vocabulary, _ = merged_corpus
    prompt = np.array([vocabulary.start_id], dtype=np.int32)
    beams, scores = BeamSearch(width=3).search(UniformDecoder(len(vocabulary)), vocabulary, prompt, 5)
    assert scores[0] >= scores[1] >= scores[2] > -np.inf
    assert [len(vocabulary.decode(beam)) for beam in beams] == [5, 5, 5]


def test_onsets_forbid_a_merged_token_whose_key_is_struck(merged_corpus):
    vocabulary, _ = merged_corpus
    merged_notes = [i for i in np.flatnonzero(vocabulary.kinds == _MERGED) if vocabulary.strikes[i].any()]
    token = merged_notes[0]
    [pitch] = np.flatnonzero(vocabulary.strikes[token])
    plain = vocabulary.note_id(int(pitch))
    prompt = np.array([[vocabulary.start_id, plain, vocabulary.duration_id(1), vocabulary.shift_id(0)]])
    assert not Onsets(vocabulary, prompt).allowed(prompt[:, -1])[0, token]
    moved_on = np.array([[vocabulary.start_id, plain, vocabulary.duration_id(1), vocabulary.shift_id(1)]])
    assert Onsets(vocabulary, moved_on).allowed(moved_on[:, -1])[0, token]


ENCODINGS = {
    "folk melodies with chord symbols and labels": (
        "nottingham", 12, ["--melody-only", "--chord-symbols", "infer", "--compute-labels", "key,density"]),
    "folk tunes with infilling markers, transposed": ("nottingham", 8, ["--infilling", "--transpose", "-2..2"]),
    "piano performances with velocities": ("real-midi/piano-performance", 4, ["--timing", "seconds",
                                                                             "--velocity-bins", "16"]),
    "multitrack songs with instruments and drums": ("real-midi/pop-multitrack", 3, ["--keep-drums"]),
}


@pytest.mark.parametrize("name", ENCODINGS)
def test_merged_tokens_round_trip_real_music_exactly(name, tmp_path):
    folder, count, options = ENCODINGS[name]
    files = sorted(path for path in shared(folder).iterdir() if path.suffix.lower() in (".mid", ".midi"))
    music = tmp_path / "music"
    music.mkdir()
    for path in sorted(files, key=lambda p: p.stat().st_size)[:count]:
        shutil.copy(path, music / path.name)
    corpora = {}
    for merges in ("0", "200"):
        preprocess.main(["--input", str(music), "--output", str(tmp_path / merges), "--merges", merges,
                         "--min-notes", "1", "--val-fraction", "0.05", "--test-fraction", "0.05", *options])
        corpora[merges] = load_processed(tmp_path / merges, ("train", "validation", "test"))
    (base, base_splits), (merged, merged_splits) = corpora["0"], corpora["200"]
    assert merged.merged > 0
    assert merged.tokens[:len(base)] == base.tokens
    for split in ("train", "validation", "test"):
        pieces = len(base_splits[split])
        assert len(merged_splits[split]) == pieces
        for index in range(pieces):
            plain, short = base_splits[split].piece(index), merged_splits[split].piece(index)
            np.testing.assert_array_equal(merged.expand(short), plain)
            assert len(short) < len(plain)
            assert merged.decode(short) == base.decode(plain)
