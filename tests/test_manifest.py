"""The manifest streamed to disk: rows in file order whatever order they came in, with what was decided later."""

import tracemalloc

import numpy as np
import pandas as pd

from musicgen.dataset import SPLITS
from musicgen.manifest import SPOOL_FILE, Manifest


def row(source, status="kept", split="train", **more):
    return {"source": source, "status": status, "reason": "" if status == "kept" else "a reason", "notes": 9,
            "events": 0, "clipped_notes": 0, "split": split if status == "kept" else "", **more}


def test_rows_come_out_in_file_order_with_the_splits_labels_and_counts_decided_after_the_survey(tmp_path):
    manifest = Manifest(tmp_path, files=3, seed=0, extra_columns=("labels_not_in_vocabulary",))
    manifest.add(2, [row("c.mid")])  # the largest file comes first
    manifest.add(0, [row("a.mid", status="failed")])
    manifest.add(1, [row("b.abc#1", split="validation", key="G major"), row("b.abc#2", status="skipped")])
    assert (tmp_path / SPOOL_FILE).exists() and not (tmp_path / "manifest.csv").exists()
    assert manifest.kept.tolist() == [True, False, True, False]
    assert manifest.splits_of_file(1, 2) == ["validation", ""]

    manifest.splits[manifest.first_piece[2]] = SPLITS.index("test")  # as --dedupe or a small corpus moves it
    manifest.start_counts()
    manifest.events[[0, 2]] = [40, 30]
    manifest.counted["labels_not_in_vocabulary"][2] = 1
    manifest.density = ["high", None, "low", None]
    manifest.write()

    table = pd.read_csv(tmp_path / "manifest.csv", keep_default_na=False)
    assert table.source.tolist() == ["a.mid", "b.abc#1", "b.abc#2", "c.mid"]
    assert table.split.tolist() == ["", "validation", "", "test"]
    assert table.events.tolist() == [0, 30, 0, 40]
    assert table.key.tolist() == ["", "G major", "", ""]
    assert table.density.tolist() == ["", "low", "", "high"]
    assert table.labels_not_in_vocabulary.tolist() == ["", "1", "", "0"], "counted where kept"
    assert not (tmp_path / SPOOL_FILE).exists()


def test_rows_go_to_disk_and_a_few_numbers_per_piece_stay_in_memory(tmp_path):
    manifest = Manifest(tmp_path, files=20_000, seed=0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(20_000):
        manifest.add(index, [row(f"/a/long/path/to/a/collection/piece number {index}.mid", reason="x" * 200)])
    grown = (tracemalloc.get_traced_memory()[0] - before) / 20_000
    tracemalloc.stop()
    assert grown < 100, f"{grown:.0f} bytes held per row"
    manifest.write()
    assert len(pd.read_csv(tmp_path / "manifest.csv")) == 20_000
    assert np.isnan(manifest.notes_per_quarter).all()
