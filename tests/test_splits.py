"""Splits a dataset comes with (--split-from), and near-duplicates kept on one side (--dedupe)."""

import pandas as pd
import pytest
from conftest import write_tune

import preprocess
from musicgen.errors import UserError


def manifest(output):
    return pd.read_csv(output / "manifest.csv", keep_default_na=False).set_index("source")


def test_a_csv_split_is_kept_and_files_it_does_not_list_are_reported(tmp_path, capsys):
    folder = tmp_path / "maestro" / "2018"
    for index in range(5):
        write_tune(folder / f"piece {index}.mid", seed=index)
    csv = tmp_path / "maestro.csv"
    rows = [("train", "piece 0"), ("train", "piece 1"), ("validation", "piece 2"), ("test", "piece 3")]
    csv.write_text("canonical_composer,split,midi_filename\n"
                   + "".join(f"Bach,{split},2018/{name}.mid\n" for split, name in rows))
    output = tmp_path / "data"
    preprocess.main(["--input", str(tmp_path / "maestro"), "--output", str(output), "--workers", "1",
                     "--split-from", str(csv)])
    table = manifest(output)
    assert [table.loc[str(folder / f"{name}.mid"), "split"] for _, name in rows] == [split for split, _ in rows]
    unlisted = table.loc[str(folder / "piece 4.mid")]
    assert unlisted.status == "skipped" and unlisted.reason == "not in a split of --split-from"
    assert "1 files are in no split of --split-from" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("split,name\ntrain,piece 0.mid\n", "needs a column naming each file"),
    ("midi_filename,fold\npiece 0.mid,1\n", "has no column split"),
    ("split,midi_filename\ntrain,other.mid\n", "lists none of the 2 files"),
    ("split,midi_filename\nholdout,piece 0.mid\n", "has split 'holdout'"),
    ("split,midi_filename\ntrain,piece 0.mid\ntest,gone.mid\n", "names 1 files that are not under --input, e.g. gone"),
])
def test_a_split_csv_that_cannot_place_the_files_is_refused(tmp_path, text, message):
    for index in range(2):
        write_tune(tmp_path / "in" / f"piece {index}.mid", seed=index)
    (tmp_path / "split.csv").write_text(text)
    with pytest.raises(UserError, match=message):
        preprocess.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "data"),
                         "--split-from", str(tmp_path / "split.csv")])
    assert not (tmp_path / "data" / "vocab.json").exists()


def test_split_folders_are_kept(tmp_path):
    root = tmp_path / "corpus"
    for split, count in (("train", 4), ("valid", 1), ("test", 2)):
        for index in range(count):
            write_tune(root / split / f"{split} {index}.mid", seed=index)
    write_tune(root / "loose.mid", seed=9)
    output = tmp_path / "data"
    preprocess.main(["--input", str(root), "--output", str(output), "--workers", "1", "--split-from", "folders"])
    table = manifest(output)
    kept = table[table.status == "kept"]
    assert kept.split.value_counts().to_dict() == {"train": 4, "validation": 1, "test": 2}
    assert all(split in source for source, split in zip(kept.index, kept.split.str.replace("validation", "valid")))
    assert table.loc[str(root / "loose.mid"), "status"] == "skipped"


def test_split_folders_without_a_training_folder_are_refused(tmp_path):
    write_tune(tmp_path / "corpus" / "test" / "a.mid", seed=0)
    with pytest.raises(UserError, match="needs a train/ folder"):
        preprocess.main(["--input", str(tmp_path / "corpus"), "--output", str(tmp_path / "data"),
                         "--split-from", "folders"])


def test_an_empty_split_folder_is_refused(tmp_path):
    write_tune(tmp_path / "corpus" / "train" / "a.mid", seed=0)
    (tmp_path / "corpus" / "validation").mkdir()
    with pytest.raises(UserError, match="validation holds no music files"):
        preprocess.main(["--input", str(tmp_path / "corpus"), "--output", str(tmp_path / "data"),
                         "--split-from", "folders"])
    assert not (tmp_path / "data").exists()


def test_dedupe_keeps_copies_of_one_melody_in_one_split(tmp_path, capsys):
    folder = tmp_path / "in"
    for index in range(8):  # one tune under eight names: copies a hash split would scatter
        write_tune(folder / f"copy {index}.mid", seed=1)
    for index in range(4):
        write_tune(folder / f"other {index}.mid", seed=10 + index)
    arguments = ["--input", str(folder), "--workers", "1", "--val-fraction", "0.3", "--test-fraction", "0.3"]
    preprocess.main([*arguments, "--output", str(tmp_path / "plain")])
    preprocess.main([*arguments, "--output", str(tmp_path / "deduped"), "--dedupe"])
    assert "7 pieces open with the same melody as another" in capsys.readouterr().out
    plain, deduped = manifest(tmp_path / "plain"), manifest(tmp_path / "deduped")
    copies = [str(folder / f"copy {index}.mid") for index in range(8)]
    assert plain.loc[copies, "split"].nunique() > 1, "the hash alone scatters them"
    assert deduped.loc[copies, "split"].nunique() == 1
    assert deduped.loc[copies, "opening"].nunique() == 1


@pytest.mark.parametrize("extra, message", [(["--folds", "3"], "does not go with --folds"),
                                            (["--test-fraction", "0.2"], "leave out --val-fraction")])
def test_split_from_conflicts(tmp_path, extra, message):
    write_tune(tmp_path / "in" / "train" / "a.mid", seed=0)
    with pytest.raises(UserError, match=message):
        preprocess.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "data"),
                         "--split-from", "folders", *extra])


def test_the_fingerprint_is_the_same_in_any_key_and_differs_between_melodies():
    import numpy as np

    from musicgen.splits import opening_fingerprint

    rng = np.random.default_rng(0)
    melody = np.array([(4 * i, 4, 60 + int(p), 80, 0) for i, p in enumerate(rng.integers(0, 12, 20))])
    under = melody - [0, 0, 12, 0, 0]  # a lower voice does not change the top one
    assert opening_fingerprint(melody) == opening_fingerprint(melody + [0, 0, 5, 0, 0])
    assert opening_fingerprint(melody) == opening_fingerprint(np.concatenate([melody, under]))
    other = melody.copy()
    other[3, 2] += 1
    assert opening_fingerprint(other) != opening_fingerprint(melody)
    assert opening_fingerprint(melody[:10]) == "", "too short to tell"


def test_dedupe_is_the_default_for_music21s_bundled_corpus_only(tmp_path):
    bundled = preprocess.parse_args(["--corpus", "bach", "--output", str(tmp_path)])
    assert preprocess.collect_files(bundled)[1] is True
    write_tune(tmp_path / "mine" / "a.mid", seed=0)
    mine = preprocess.parse_args(["--input", str(tmp_path / "mine"), "--output", str(tmp_path / "data")])
    assert preprocess.collect_files(mine)[1] is False
