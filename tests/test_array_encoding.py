"""Encoding in whole arrays (encoding.event_table, spelling.Spelling) writes exactly the tokens of the loops it
replaced.

The digests below were taken from preprocess.py's output at commit 865f45e, before notes became events and
tokens in whole arrays, on real files with every part of the encoding in use: chord tokens, chord symbols,
computed labels, transposed copies, infilling markers, merged tokens, performances in seconds with
velocities, multitrack songs with instruments and drums, meters and their changes, and melodies from ABC.
Every token, piece boundary and split counts, and so does the vocabulary (its hash). The default corpus is
pinned by tests/test_default_corpus.py.
"""

import numpy as np
import pytest

import preprocess
from conftest import shared, tokens_digest
from musicgen.chords import ChordSymbols
from musicgen.dataset import load_processed
from musicgen.encoding import EncodingSettings, EventTable, event_table, notes_to_events

DIGESTS = {
    "nottingham, chord symbols, chord tokens, labels, transposed": (
        "0e28d62cb668e324f29dff39028f25030c87c1ad997bdd6ac564472b77d5b6f4", "5c8570ddb3c4bff4"),
    "nottingham, infilling, merged tokens": (
        "e98bc7e33a4dce2a45d2d6a1755fcafb69684be553d54de75568f79ed8c9fb92", "dd353805cf46f373"),
    "performances": ("eefb315e74741f69d92cb8c01ba50338a1528bb0d555e756e2628215e4c62c60", "f724a6428af90feb"),
    "multitrack with drums and chord tokens": (
        "f58a714ac9b2414b01534d7e9f2d380ea47a4bf362415998feeb66f9424f60e0", "94ea0e77a3b40001"),
    "ABC tunes, melody only": ("ff2567ddf0d83ad0c738e801eddde206ee9d8b2b1d09af49515856c64d06afde", "b8d059a8edf94824"),
}


def arguments(name):
    nottingham = sorted(shared("nottingham").rglob("*.mid"))
    if name == "nottingham, chord symbols, chord tokens, labels, transposed":
        return inputs(nottingham[:120]) + ["--chord-symbols", "keep", "--max-chords", "1024", "--transpose", "-1..1",
                                           "--compute-labels", "key,density"]
    if name == "nottingham, infilling, merged tokens":
        return inputs(nottingham[:60]) + ["--infilling", "--merges", "100"]
    if name == "performances":
        return ["--input", str(shared("real-midi/piano-performance"))]
    if name == "multitrack with drums and chord tokens":
        return ["--input", str(shared("real-midi/pop-multitrack")), "--keep-drums", "--max-chords", "64"]
    tunes = [path for path in sorted(shared("abc").glob("*.abc")) if path.name != "irish.abc"]
    return inputs(tunes) + ["--melody-only"]


def inputs(paths):
    return [argument for path in paths for argument in ("--input", str(path))]


@pytest.mark.parametrize("name", DIGESTS)
def test_preprocessing_writes_the_tokens_of_the_encoder_it_replaced(name, tmp_path):
    preprocess.main(arguments(name) + ["--output", str(tmp_path), "--workers", "1"])
    vocabulary, splits = load_processed(tmp_path)
    assert (tokens_digest(splits), vocabulary.hash()) == DIGESTS[name]


def test_events_from_the_table_are_those_the_loops_made():
    """Expected rows as notes_to_events gave them at 865f45e: at an onset the meter first, then the chord
    symbol (its duration clipped), then the piano's events before the bass's (program order), the top voice
    first, a chord the vocabulary knows whole; a clipped note, and a gap longer than the largest shift going on
    as a rest."""
    settings = EncodingSettings(meters=True, velocity_bins=8, instruments=True)
    notes = [[0, 4, 60, 90, 0], [0, 4, 64, 90, 0], [0, 2, 67, 30, 0], [0, 4, 40, 90, 33], [4, 40, 62, 80, 0],
             [80, 4, 65, 80, 0]]
    symbols = ChordSymbols(np.array([0, 48]), np.array([48, 40]), np.array([7, 2]))
    meters = [[0, 3, 4], [48, 2, 4]]
    events, clipped = notes_to_events(notes, settings, {(60, 64)}, symbols, meters)
    assert clipped == 1
    assert [tuple(event) for event in events] == [
        ((), 0, 0, None, None, None, (3, 4)),
        ((), 32, 0, None, None, 7, None),
        ((67,), 2, 0, 25, 0, None, None),
        ((60, 64), 4, 0, 88, 0, None, None),
        ((40,), 4, 4, 88, 33, None, None),
        ((62,), 32, 32, 72, 0, None, None),
        ((), 12, 12, None, None, None, None),
        ((), 0, 0, None, None, None, (2, 4)),
        ((), 32, 32, None, None, 2, None),
        ((65,), 4, 4, 72, 0, None, None),
    ]
    table = event_table(notes, settings, {(60, 64)}, symbols, meters)
    assert EventTable.from_events(events).events() == table.events() == events
