import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared, write_tune

import preprocess
from musicgen import preprocessing, readers
from musicgen.dataset import load_processed, read_index
from musicgen.errors import UserError
from musicgen.readers import RawPiece, ReadFailure, TrackSelection, read_abc_file, read_midi, split_abc_tunes
from musicgen.splits import fill_empty_held_out_splits, fold_split, hash_position, split_of

GOOD_TUNE = """X:{n}
T:Tune {n}
M:4/4
L:1/8
K:G
GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|
"""
BAD_TUNE = """X:2
T:Broken
M:4/4
L:1/8
K:G
GAB |]] (((( [[[ c
"""


def test_abc_file_with_one_bad_tune_keeps_the_others(tmp_path):
    text = "%abc file header\n" + GOOD_TUNE.format(n=1) + "\n" + BAD_TUNE + "\n" + GOOD_TUNE.format(n=3)
    assert [label for label, _ in split_abc_tunes(text)] == ["X:1 Tune 1", "X:2 Broken", "X:3 Tune 3"]
    path = tmp_path / "three.abc"
    path.write_text(text)
    results = read_abc_file(path)
    assert len(results) == 3
    assert isinstance(results[0], RawPiece) and isinstance(results[2], RawPiece)
    assert results[0].source.endswith("three.abc#X:1 Tune 1")
    assert len(results[0].pitches) == 27 and results[0].time_signature == "4/4"


def test_drums_are_left_out_unless_asked_for(tmp_path):
    path = write_tune(tmp_path / "drums.mid", seed=0, bars=2, with_drums=True)
    without = read_midi(path, TrackSelection())
    with_drums = read_midi(path, TrackSelection(keep_drums=True))
    assert 36 not in without.pitches
    assert len(with_drums.pitches) == len(without.pitches) + 8


def test_program_selection_and_drum_only_files_are_reported(tmp_path):
    path = write_tune(tmp_path / "violin.mid", seed=0, bars=2, program=40)
    assert isinstance(read_midi(path, TrackSelection(programs=frozenset({40}))), RawPiece)
    failure = read_midi(path, TrackSelection(programs=frozenset({0})))
    assert isinstance(failure, ReadFailure) and failure.reason == "no notes in the selected programs"


def test_manifest_has_a_row_per_file_with_status_reason_and_split(processed, tune_folder):
    manifest = pd.read_csv(processed / "manifest.csv")
    assert len(manifest) == 12
    assert set(manifest.status) == {"kept"}
    assert set(manifest.split) == {"train", "validation", "test"}
    assert (manifest.notes > 0).all() and (manifest.events > 0).all()
    assert set(manifest.tempo_bpm) == {120.0} and set(manifest.time_signature) == {"4/4"}
    assert {"source", "status", "reason", "notes", "events", "duration_quarters", "tempo_bpm", "split"} <= set(manifest)


def test_splits_share_no_piece(processed):
    _, splits = load_processed(processed)
    sources = {name: set(split.sources) for name, split in splits.items()}
    assert sources["train"] and sources["validation"] and sources["test"]
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]


def test_transposition_augments_the_training_split_only(tune_folder, tmp_path):
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path), "--transpose", "-2..1"])
    _, splits = load_processed(tmp_path)
    pieces = pd.read_csv(tmp_path / "manifest.csv").split.value_counts()
    assert len(splits["train"]) == 4 * pieces["train"]  # each training piece at -2, -1, 0, +1
    assert len(splits["validation"]) == pieces["validation"] and len(splits["test"]) == pieces["test"]
    assert not any("transposed" in source for source in splits["validation"].sources)


def test_a_piece_keeps_its_split_whatever_its_file_format():
    names = [f"piece {i}" for i in range(300)]
    for seed in (0, 1):
        splits = [split_of(f"/midi/{name}.mid", 0.1, 0.1, seed) for name in names]
        assert [split_of(f"/scores/{name}.musicxml", 0.1, 0.1, seed) for name in names] == splits
        assert [split_of(f"/abc/{name}.abc", 0.1, 0.1, seed) for name in names] == splits
        assert {"train", "validation", "test"} == set(splits)


def test_folds_partition_the_pieces():
    names = [f"/music/piece {i}.mid" for i in range(2000)]
    splits = pd.DataFrame({fold: [fold_split(name, 10, fold, seed=0) for name in names] for fold in range(10)})
    assert ((splits == "test").sum(axis=1) == 1).all(), "every piece is tested in exactly one fold"
    assert ((splits == "validation").sum(axis=1) == 1).all(), "and validates in exactly one other"
    assert ((splits == "test").sum(axis=0) / len(names)).between(0.08, 0.12).all(), "folds of about equal size"
    tested_in = (splits == "test").to_numpy().argmax(axis=1)
    validates_in = (splits == "validation").to_numpy().argmax(axis=1)
    assert ((validates_in + 1) % 10 == tested_in).all(), "fold i validates on the pieces fold i + 1 tests"
    assert [fold_split(name.replace(".mid", ".krn"), 10, 3, seed=0) for name in names] == list(splits[3])


def test_every_held_out_split_gets_a_piece_from_a_small_corpus():
    sources = [f"tune {i}.mid" for i in range(12)]
    names = np.array([split_of(source, 0.01, 0.01, seed=0) for source in sources], dtype=object)
    assert set(names) == {"train"}, "12 pieces drew nothing for 1 % shares"
    positions = np.array([hash_position(source, seed=0) for source in sources])
    assert fill_empty_held_out_splits(names, positions, 0.01, 0.01)
    assert pd.Series(names).value_counts().to_dict() == {"train": 10, "validation": 1, "test": 1}
    assert names[np.argsort(positions)[:2]].tolist() == ["test", "validation"], \
        "the pieces nearest the held-out range move, the nearest to test first"


def test_the_split_follows_the_file_name_in_the_asked_proportions():
    names = [f"/music/collection/piece {i}.mid" for i in range(20_000)]
    splits = pd.Series([split_of(name, 0.1, 0.2, seed=0) for name in names]).value_counts(normalize=True)
    assert splits["validation"] == pytest.approx(0.1, abs=0.01) and splits["test"] == pytest.approx(0.2, abs=0.01)
    assert [split_of(name.replace("/music/collection", "/elsewhere"), 0.1, 0.2, seed=0) for name in names[:200]] == \
        [split_of(name, 0.1, 0.2, seed=0) for name in names[:200]], "moving the collection keeps every split"
    assert [split_of(name, 0.1, 0.2, seed=1) for name in names[:200]] != [split_of(name, 0.1, 0.2, seed=0)
                                                                         for name in names[:200]]


def test_no_usable_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 pieces"):
        preprocess.main(["--input", str(tmp_path), "--output", str(tmp_path / "out")])
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False)
    assert manifest.status.tolist() == ["failed"], "the manifest says why"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [".cache", "manifest.csv"], \
        "and nothing else is left, not the manifest's spool"


def test_rerun_gives_the_same_tokens_and_leaves_one_set_of_shards(tune_folder, tmp_path):
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path)])
    _, first = load_processed(tmp_path)
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path)])
    _, second = load_processed(tmp_path)
    for name in first:
        np.testing.assert_array_equal(second[name].tokens, first[name].tokens)
    assert sorted(path.name.split("-")[0] for path in tmp_path.glob("*.npz")) == ["test", "train", "validation"]


def abc_tune(seed):
    """A short ABC tune of its own (music21 reads it, slowly enough to be cached)."""
    notes = np.random.default_rng(seed).choice(list("GABcdefg"), 16)
    bars = ["".join(notes[i: i + 4]) for i in range(0, 16, 4)]
    return f"X:{seed}\nT:tune {seed}\nM:2/4\nL:1/8\nK:G\n{'|'.join(bars)}|]\n"


def test_rerun_with_more_files_reads_only_those_and_keeps_every_split(tmp_path, monkeypatch):
    folder, later = tmp_path / "tunes", tmp_path / "later"
    folder.mkdir()
    later.mkdir()
    for i in range(40):
        ((folder if i < 30 else later) / f"tune {i:02d}.abc").write_text(abc_tune(i))
    preprocess.main(["--input", str(folder), "--output", str(tmp_path / "out")])
    before = pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("source").split

    for path in (tmp_path / "later").iterdir():
        path.rename(folder / path.name)
    read = []
    original_read_file = readers.read_file
    monkeypatch.setattr("musicgen.readers.read_file", lambda path, *rest: read.append(Path(path).name) or
                        original_read_file(path, *rest))
    preprocess.main(["--input", str(folder), "--output", str(tmp_path / "out"), "--workers", "1"])  # one process
    after = pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("source").split
    assert sorted(read) == [f"tune {i:02d}.abc" for i in range(30, 40)]
    assert len(after) == 40 and (after[before.index] == before).all()


def test_a_midi_file_is_read_again_where_music21_readings_come_from_the_cache(tmp_path, monkeypatch):
    folder = tmp_path / "tunes"
    for i in range(4):
        write_tune(folder / f"tune {i}.mid", seed=i, bars=2)
        (folder / f"tune {i}.abc").write_text(abc_tune(i))
    read = []
    original_read_file = readers.read_file
    monkeypatch.setattr("musicgen.readers.read_file", lambda path, *rest: read.append(Path(path).suffix) or
                        original_read_file(path, *rest))
    preprocess.main(["--input", str(folder), "--output", str(tmp_path / "out"), "--workers", "1"])
    first_run, read[:] = list(read), []
    preprocess.main(["--input", str(folder), "--output", str(tmp_path / "out"), "--workers", "1"])
    assert len(list((tmp_path / "out" / ".cache").glob("*.npz"))) == 4, "one entry per ABC file, none for MIDI"
    assert first_run.count(".abc") == 4 and ".abc" not in read, "each ABC file read once, in the first pass"
    assert first_run.count(".mid") >= 4 * 2 and read.count(".mid") == first_run.count(".mid"), (
        "each MIDI file read in every pass over the files, in both runs")


def test_small_shards_hold_the_same_pieces_as_one(tune_folder, tmp_path):
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "one"), "--transpose", "-3..3"])
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "small"), "--transpose", "-3..3",
                     "--shard-tokens", "1000"])
    assert len(list((tmp_path / "small").glob("train-*.npz"))) > 3
    vocabulary, one = load_processed(tmp_path / "one")
    _, small = load_processed(tmp_path / "small")
    for name in one:
        np.testing.assert_array_equal(small[name].tokens, one[name].tokens)
        np.testing.assert_array_equal(small[name].offsets, one[name].offsets)
        assert list(small[name].sources) == list(one[name].sources)
    _, index = read_index(tmp_path / "small")
    assert sum(entry["tokens"] for entry in index["train"]) == len(one["train"].tokens)


def test_shards_of_another_vocabulary_are_refused(tune_folder, tmp_path):
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "a")])
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "b"), "--max-shift", "4"])
    (tmp_path / "b" / "vocab.json").replace(tmp_path / "a" / "vocab.json")  # as if preprocess stopped halfway
    with pytest.raises(UserError, match="another vocabulary"):
        load_processed(tmp_path / "a")


def test_output_of_the_unsharded_preprocess_asks_for_a_rerun(processed, tmp_path):
    shutil.copy(processed / "vocab.json", tmp_path / "vocab.json")
    (tmp_path / "train.npz").write_bytes(b"")
    with pytest.raises(UserError, match="older preprocess.py, without shards"):
        load_processed(tmp_path)


def test_workers_give_the_same_result_as_one_process(tune_folder, tmp_path):
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "one")])
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "two"), "--workers", "2"])
    _, one = load_processed(tmp_path / "one")
    _, two = load_processed(tmp_path / "two")
    for name in one:
        np.testing.assert_array_equal(one[name].tokens, two[name].tokens)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "one" / "manifest.csv"),
                                  pd.read_csv(tmp_path / "two" / "manifest.csv"))


@pytest.mark.parametrize("argument, message", [
    (["--transpose", "-20..3"], "--transpose"),
    (["--programs", "0-300"], "--programs"),
    (["--input", "/no/such/folder"], "does not exist"),
    (["--corpus", "noSuchComposer"], "no bundled corpus"),
])
def test_bad_arguments_are_one_line_errors(argument, message, tmp_path):
    with pytest.raises(UserError, match=message):
        preprocess.main(argument + ["--output", str(tmp_path)])


# --- real files (skipped when ../shared/data is absent) -----------------------------------------

def test_real_collections_keep_good_files_and_report_broken_ones(tmp_path):
    folder = shared("real-midi")
    preprocess.main(["--input", str(folder), "--output", str(tmp_path), "--workers", "2"])
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    by_name = {source.rsplit("/", 1)[-1]: row for source, row in zip(manifest.source, manifest.itertuples())}
    assert by_name["bad_control_byte.mid"].status == "failed"
    assert by_name["empty.mid"].status == "skipped" and by_name["empty.mid"].reason == "no notes"
    kept = manifest[manifest.status == "kept"]
    assert len(kept) == len(manifest) - 2
    assert (kept.notes > 1000).all()


def test_irish_abc_collection_is_split_into_tunes(tmp_path):
    text = shared("abc/irish.abc").read_text(encoding="utf-8", errors="replace")
    tunes = split_abc_tunes(text)
    assert len(tunes) >= 800
    subset = tmp_path / "first_tunes.abc"
    subset.write_text("\n".join(tune for _, tune in tunes[:40]))
    results = read_abc_file(subset)
    assert len(results) == 40
    assert sum(isinstance(r, RawPiece) for r in results) >= 35


def test_a_large_corpus_is_surveyed_on_files_spread_over_it(tune_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(preprocessing, "SURVEY_FILES", 4)
    assert preprocessing.survey_sample(list(range(10))) == [0, 2, 5, 7]
    assert preprocessing.survey_sample(list(range(4))) == [0, 1, 2, 3]
    preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "out")])
    assert "(of 4 pieces, 0 performances, 0 with dynamics, 0 with instruments, in 4 of the 12 files)" in \
        capsys.readouterr().out
