"""The sustain pedal, read the way a listener hears it."""

import numpy as np
import pretty_midi
import pytest
from conftest import only_the_fallback_reader, shared

from musicgen import readers
from musicgen.notes import DURATION, ONSET, PITCH
from musicgen.recipe import Recipe

WITH_PEDAL = readers.TrackSelection()
WITHOUT_PEDAL = readers.TrackSelection(sustain_pedal=False)


def pedalled_file(path, notes, pedal_changes):
    """A 120 bpm piano file (so one second is two quarter notes): notes (start, end, pitch) in seconds,
    pedal_changes (time, value) as CC 64 messages."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(80, pitch, start, end) for start, end, pitch in notes]
    piano.control_changes = [pretty_midi.ControlChange(64, value, time) for time, value in pedal_changes]
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def notes_of(piece):
    """(onset, end, pitch) in quarter notes, sorted by onset then pitch."""
    rows = zip(piece.onsets, piece.onsets + piece.durations, piece.pitches)
    return sorted((round(float(a), 3), round(float(b), 3), int(p)) for a, b, p in rows)


def test_a_key_released_under_the_pedal_sounds_until_the_pedal_comes_up():
    ends = readers.sustained_ends(starts=[0, 0, 500], ends=[100, 100, 600], pitches=[60, 64, 67],
                                  pedal_starts=[50], pedal_ends=[400])
    assert ends.tolist() == [400, 400, 600], "held to the release; a note after the pedal is untouched"


def test_striking_the_same_key_again_ends_the_sustained_note_and_nothing_gets_shorter():
    ends = readers.sustained_ends(starts=[0, 200, 100], ends=[50, 250, 300], pitches=[60, 60, 62],
                                  pedal_starts=[0], pedal_ends=[1000])
    assert ends.tolist() == [200, 1000, 1000]
    # A key still down at the next strike keeps its played length (normalise_notes cuts overlaps later).
    assert readers.sustained_ends([0, 100], [300, 150], [60, 60], [0], [1000]).tolist() == [300, 1000]


def test_a_key_released_exactly_as_the_pedal_comes_up_or_before_it_goes_down_is_unchanged():
    ends = readers.sustained_ends([0, 0], [400, 40], [60, 62], pedal_starts=[50], pedal_ends=[400])
    assert ends.tolist() == [400, 40]


def test_pedal_changes_become_presses_and_a_press_never_released_is_dropped():
    starts, ends = readers.pedal_intervals([(10, True), (20, True), (30, False), (35, False), (50, True)])
    assert starts.tolist() == [10] and ends.tolist() == [30]


@pytest.mark.parametrize("reader", ["symusic", "pretty_midi"])
def test_both_midi_readers_apply_the_pedal_by_default_and_not_when_asked(tmp_path, reader, monkeypatch):
    path = pedalled_file(tmp_path / "pedal.mid",
                         notes=[(0.0, 0.25, 60), (0.0, 0.25, 64), (1.0, 1.25, 60), (2.5, 2.75, 67)],
                         pedal_changes=[(0.1, 127), (1.5, 0), (2.0, 100), (2.4, 20)])
    if reader == "pretty_midi":
        only_the_fallback_reader(monkeypatch)
    pedalled = notes_of(readers.read_midi(path, WITH_PEDAL))
    assert pedalled == [(0.0, 2.0, 60), (0.0, 3.0, 64), (2.0, 3.0, 60), (5.0, 5.5, 67)], \
        "C4 ends where it is struck again, E4 and the second C4 at the pedal's release, G4 after the pedal is untouched"
    assert notes_of(readers.read_midi(path, WITHOUT_PEDAL)) == [(0.0, 0.5, 60), (0.0, 0.5, 64), (2.0, 2.5, 60),
                                                                 (5.0, 5.5, 67)]


def test_a_file_with_pedal_messages_but_no_notes_is_skipped_as_having_no_notes(tmp_path):
    path = pedalled_file(tmp_path / "only-pedal.mid", notes=[], pedal_changes=[(0.0, 127), (1.0, 0)] * 3)
    failure = readers.read_midi(path, WITH_PEDAL)
    assert isinstance(failure, readers.ReadFailure) and (failure.status, failure.reason) == ("skipped", "no notes")


def test_the_recipe_keeps_the_pedal_choice_and_older_data_reads_without_it():
    assert Recipe.from_json(Recipe().to_json()).selection.sustain_pedal is True
    off = Recipe(WITHOUT_PEDAL)
    assert Recipe.from_json(off.to_json()) == off
    made_before_the_pedal = {"keep_drums": False, "programs": None, "melody_only": False, "max_silence_quarters": 16}
    assert Recipe.from_json(made_before_the_pedal).selection.sustain_pedal is False


def test_preprocess_applies_the_pedal_unless_told_not_to(tmp_path):
    import json

    import preprocess

    (tmp_path / "in").mkdir()
    pedalled_file(tmp_path / "in" / "piece.mid", notes=[(i * 0.25, i * 0.25 + 0.1, 60 + i % 12) for i in range(16)],
                  pedal_changes=[(0.0, 127), (4.5, 0)])
    preprocess.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "on"), "--workers", "1"])
    preprocess.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "off"), "--workers", "1",
                     "--no-sustain-pedal"])
    assert json.loads((tmp_path / "on" / "shards.json").read_text())["recipe"]["sustain_pedal"] is True
    assert json.loads((tmp_path / "off" / "shards.json").read_text())["recipe"]["sustain_pedal"] is False
    held, played = encoded_notes(tmp_path / "on"), encoded_notes(tmp_path / "off")
    assert np.array_equal(held[:, [ONSET, PITCH]], played[:, [ONSET, PITCH]]), "the same 16 keys struck"
    assert (played[:, DURATION] == 1).all(), "without the pedal, 0.1 s keys are one sixteenth"
    # Under the pedal each note sounds until it comes up at 4.5 s (quarter 9, step 36), or until its key is
    # struck again: keys 60-63, struck at steps 0-6, come again 12 notes (24 steps) later.
    struck_again = (played[:, PITCH] < 64) & (played[:, ONSET] < 24)
    assert held[:, DURATION].tolist() == np.where(struck_again, 24, 36 - played[:, ONSET]).tolist()


def encoded_notes(data):
    """The notes of the one piece preprocessed into `data`, decoded from its tokens."""
    from musicgen.dataset import load_processed
    from musicgen.encoding import events_to_notes

    vocabulary, splits = load_processed(data)
    tokens = np.concatenate([split.tokens for split in splits.values()])
    return events_to_notes(vocabulary.decode(tokens))


def test_maestro_performances_keep_every_note_and_sound_as_long_as_the_pedal_holds_them():
    folder = shared("real-midi/piano-performance")
    for name in ("Maestro_1.mid", "Maestro_3.mid"):
        played = readers.read_midi(folder / name, WITHOUT_PEDAL)
        heard = readers.read_midi(folder / name, WITH_PEDAL)
        assert len(heard.pitches) == len(played.pitches) and np.array_equal(heard.onsets, played.onsets)
        assert np.all(heard.durations >= played.durations - 1e-9), "the pedal never shortens a note"
        longer = heard.durations > played.durations + 1e-9
        assert longer.mean() > 0.3, f"{name}: a pedalled performance holds many of its notes with the pedal"
        assert heard.durations.mean() > 1.5 * played.durations.mean()


@pytest.mark.parametrize("reader", ["symusic", "pretty_midi"])
def test_a_note_on_of_velocity_zero_ends_the_note_even_under_the_pedal(tmp_path, reader, monkeypatch):
    import mido

    track = mido.MidiTrack([mido.Message("control_change", control=64, value=127, time=0),
                            mido.Message("note_on", note=60, velocity=90, time=0),
                            mido.Message("note_on", note=60, velocity=0, time=240),  # a note-off, as many files write it
                            mido.Message("note_on", note=62, velocity=90, time=0),
                            mido.Message("note_on", note=62, velocity=0, time=240),
                            mido.Message("control_change", control=64, value=0, time=480)])
    path = tmp_path / "running-status.mid"
    mido.MidiFile(ticks_per_beat=480, tracks=[track]).save(str(path))
    if reader == "pretty_midi":
        only_the_fallback_reader(monkeypatch)
    assert notes_of(readers.read_midi(path, WITH_PEDAL)) == [(0.0, 2.0, 60), (0.5, 2.0, 62)]
    assert notes_of(readers.read_midi(path, WITHOUT_PEDAL)) == [(0.0, 0.5, 60), (0.5, 1.0, 62)]
