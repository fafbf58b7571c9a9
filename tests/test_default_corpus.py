"""The main job's data: music21's Bach chorales preprocess to exactly the tokens they always have.

The hash below was taken from preprocess.py's output before the encoding code was
split into notes, events and the vocabulary (musicgen/notes.py, encoding.py,
vocabulary.py): a refactoring that changes one token of one chorale fails here.
Every token, every piece boundary and every split counts. A change of the encoding
that is meant must say so and take the new hash (and explain why the shipped
model's vocabulary still fits); so may an upgrade of music21 that reads a score
differently.

Meters (docs/preprocess.md, "Meters") became part of the default encoding after
the shipped models were trained: with `--no-meters` the chorales still give the
tokens below and the shipped model's vocabulary; by default the same notes, each
piece moved by its upbeat, with its meters.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

import preprocess
from conftest import tokens_digest
from musicgen.dataset import load_processed
from musicgen.encoding import events_to_notes

ROOT = Path(__file__).resolve().parents[1]
TOKENS_SHA256 = "6e3af752adb05cb3355aeef96e1dface7fbf77ca4027d96e1afcf68bf3891f09"
METERED_TOKENS_SHA256 = "446d86f87aaec00658b26b5c05c877194e93351f918622e68fba39451dfe352a"  # taken at 865f45e
PIECES = {"train": 333, "validation": 41, "test": 39}


def test_the_default_corpus_preprocesses_to_the_same_tokens_and_the_shipped_models_vocabulary(tmp_path):
    preprocess.main(["--corpus", "bach", "--output", str(tmp_path / "plain"), "--workers", "2", "--no-meters"])
    vocabulary, splits = load_processed(tmp_path / "plain")
    assert {name: len(split) for name, split in splits.items()} == PIECES
    assert vocabulary.hash() == json.loads((ROOT / "pretrained" / "bach" / "vocab.json").read_text())["hash"]
    assert tokens_digest(splits) == TOKENS_SHA256

    preprocess.main(["--corpus", "bach", "--output", str(tmp_path / "metered"), "--workers", "2"])
    metered, metered_splits = load_processed(tmp_path / "metered")
    assert metered.settings == dataclasses.replace(vocabulary.settings, meters=True)
    assert tokens_digest(metered_splits) == METERED_TOKENS_SHA256
    upbeats = 0
    for name, split in splits.items():
        assert len(metered_splits[name]) == len(split)
        for index in range(len(split)):
            plain_notes = events_to_notes(vocabulary.decode(split.piece(index)))
            events = metered.decode(metered_splits[name].piece(index))
            notes = events_to_notes(events)
            assert events[0].meter is not None, "each chorale opens on its meter"
            upbeat = notes[0, 0]
            upbeats += upbeat > 0
            np.testing.assert_array_equal(notes[:, 1:3], plain_notes[:, 1:3])
            np.testing.assert_array_equal(notes[:, 0], plain_notes[:, 0] + upbeat)
    assert upbeats > len(splits["train"]) // 2, "most chorales open with an upbeat"
