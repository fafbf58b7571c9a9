"""Training windows streamed from shard files: what each pass holds, and that shards are read one at a time."""
import numpy as np
import pytest

from musicgen import dataset as dataset_module
from musicgen.dataset import ShardWriter, read_index, read_tokens, shard_files, windows

SEQ_LEN = 8
PAD = 0


@pytest.fixture
def shards(tmp_path):
    """Five shard files of distinct ids (shard i holds 1000 * (i + 1) + 0, 1, 2, ...) and their arrays."""
    arrays = [1000 * (i + 1) + np.arange(50 + 7 * i, dtype=np.int32) for i in range(5)]
    writer = ShardWriter(tmp_path, "train", "test", "hash", shard_tokens=1)  # every piece closes a shard
    for i, tokens in enumerate(arrays):
        writer.add(tokens, f"piece {i}", 120.0)
    return shard_files(tmp_path, writer.close()), arrays


def _all(dataset):
    inputs, targets, weights = (np.concatenate(parts) for parts in zip(*[tuple(np.asarray(t) for t in batch)
                                                                        for batch in dataset]))
    return inputs, targets, weights


def test_unshuffled_windows_tile_each_shard_in_order(shards):
    files, arrays = shards
    dataset = windows(files, SEQ_LEN, batch_size=4, pad_id=PAD, shuffle=False)
    inputs, targets, weights = _all(dataset)
    expected = [tokens[start: start + SEQ_LEN + 1] for tokens in arrays
                for start in range(0, len(tokens) - SEQ_LEN, SEQ_LEN)]
    np.testing.assert_array_equal(inputs, np.array([w[:-1] for w in expected]))
    np.testing.assert_array_equal(targets, np.array([w[1:] for w in expected]))
    assert (weights == 1).all()
    assert dataset.cardinality() == int(np.ceil(len(expected) / 4)), "Keras learns the epoch's length up front"


def test_shuffled_passes_draw_fresh_windows_from_every_shard(shards):
    files, arrays = shards
    dataset = windows(files, SEQ_LEN, batch_size=4, pad_id=PAD, shuffle=True, seed=3)
    first, second = _all(dataset)[0], _all(dataset)[0]
    expected_count = sum((len(tokens) - 1) // SEQ_LEN for tokens in arrays)
    assert len(first) == len(second) == expected_count
    assert dataset.cardinality() == int(np.ceil(expected_count / 4))
    for window in first:  # a run of consecutive ids from one shard
        assert (np.diff(window) == 1).all() and window[0] // 1000 == window[-1] // 1000
    assert {int(w[0]) // 1000 for w in first} == {1, 2, 3, 4, 5}
    assert not np.array_equal(first, second), "each pass draws new offsets in a new order"
    again = _all(windows(files, SEQ_LEN, batch_size=4, pad_id=PAD, shuffle=True, seed=3))[0]
    np.testing.assert_array_equal(again, first)


def test_short_arrays_are_padded_and_padding_carries_no_weight():
    inputs, targets, weights = _all(windows([np.array([5, 6, 7], np.int32)], SEQ_LEN, 4, PAD,
                                                     shuffle=False))
    np.testing.assert_array_equal(inputs[0], [5, 6, 7, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(weights[0], [1, 1, 0, 0, 0, 0, 0, 0])


def test_shards_are_read_when_their_turn_comes(shards, monkeypatch):
    files, _ = shards
    read = []
    monkeypatch.setattr(dataset_module, "read_tokens", lambda path: read.append(path) or read_tokens(path))
    dataset = windows(files, SEQ_LEN, batch_size=2, pad_id=PAD, shuffle=False)
    assert read == [], "making the dataset reads nothing"
    next(iter(dataset))
    assert read[0] == files[0].path
    assert len(read) < len(files), "the first batch needs the first shard (and what is read ahead), not all"


def test_preprocessed_shards_stream_the_same_windows_as_the_joined_split(tune_folder, tmp_path):
    import preprocess
    from musicgen.dataset import load_processed

    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path), "--shard-tokens", "1000",
                     "--val-fraction", "0", "--test-fraction", "0"])  # all 12 pieces train: several shards
    vocabulary, index = read_index(tmp_path)
    files = shard_files(tmp_path, index["train"])
    assert len(files) > 1
    streamed = _all(windows(files, SEQ_LEN, 16, vocabulary.pad_id, shuffle=False))[1]
    _, splits = load_processed(tmp_path, ("train",))
    per_shard = [splits["train"].tokens[start: start + shard.tokens]
                 for start, shard in zip(np.cumsum([0] + [f.tokens for f in files[:-1]]), files)]
    expected = _all(windows(per_shard, SEQ_LEN, 16, vocabulary.pad_id, shuffle=False))[1]
    np.testing.assert_array_equal(streamed, expected)
