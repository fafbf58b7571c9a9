"""Velocities, instruments, real-time steps and tempo maps: the encoding, seeds, and what generate.py writes."""

import hashlib
import json

import numpy as np
import pretty_midi
import pytest
from conftest import train_tiny_lstm, write_band_tune

from musicgen import readers
from musicgen.encoding import EncodingSettings, count_chords, events_to_notes
from musicgen.encoding_choice import EncodingRequest, piece_traits
from musicgen.errors import UserError
from musicgen.instruments import parse_instrument_list, programs_named
from musicgen.notes import DRUMS
from musicgen.recipe import Recipe
from musicgen.seed import DYNAMICS, parse_seed
from musicgen.tokens import KINDS
from musicgen.vocabulary import Vocabulary

RICH = EncodingSettings(velocity_bins=8, instruments=True)


def test_a_vocabulary_made_before_velocities_and_instruments_keeps_its_hash():
    """Checkpoints record the vocabulary's hash: the new settings must not change it where they are off."""
    settings = EncodingSettings()
    vocabulary = Vocabulary.build(settings, {(60, 64, 67): 3}, min_chord_count=1)
    old_settings = {"steps_per_quarter": 4, "max_duration_quarters": 8, "max_shift_quarters": 8}
    old_hash = hashlib.sha256(json.dumps({"tokens": vocabulary.tokens, "settings": old_settings},
                                         sort_keys=True).encode()).hexdigest()[:16]
    assert vocabulary.hash() == old_hash
    stored = {"format": "musicgen-vocabulary", "version": 1, "hash": old_hash, "settings": old_settings,
              "tokens": vocabulary.tokens}
    assert Vocabulary.from_json(stored).settings == settings
    rich = Vocabulary.build(RICH, {})
    assert Vocabulary.from_json(json.loads(json.dumps(rich.to_json()))).hash() == rich.hash() != vocabulary.hash()


def test_the_grammar_puts_instrument_then_velocity_before_each_note_and_nothing_before_a_rest():
    vocabulary = Vocabulary.build(RICH, {(60, 64): 2})

    def kinds_after(token):
        allowed = vocabulary.allowed_next(np.array([vocabulary.index[token]]))[0]
        return {KINDS[kind] for kind in vocabulary.kinds[allowed]}

    assert kinds_after("shift:0") == kinds_after("<start>") == {"instrument", "rest", "end"}
    assert kinds_after("inst:33") == {"velocity"}
    assert [token for token in vocabulary.tokens if token.startswith("vel:")][:2] == ["vel:9", "vel:25"]
    assert kinds_after("vel:9") == {"note", "chord"}
    assert kinds_after("R") == {"duration"}
    assert {"inst:drums", "inst:0", "inst:127"} <= set(vocabulary.tokens)


def test_the_vocabulary_says_what_each_token_means_so_nothing_else_reads_token_strings():
    from musicgen.chords import parse_symbol

    vocabulary = Vocabulary.build(RICH, {(60, 64): 2}, controls=["key=D minor"], infilling=True,
                                  symbols=[parse_symbol("D7")])
    meaning = {token: (KINDS[vocabulary.kinds[i]], vocabulary.pitches[i], int(vocabulary.duration_steps[i]),
                       int(vocabulary.shift_steps[i]), int(vocabulary.velocities[i]), int(vocabulary.programs[i]),
                       int(vocabulary.symbol_codes[i]), vocabulary.labels[i])
               for i, token in enumerate(vocabulary.tokens)}
    assert meaning["C4.E4"] == ("chord", (60, 64), 0, 0, 0, -1, -1, None)
    assert meaning["A0"] == ("note", (21,), 0, 0, 0, -1, -1, None)
    assert meaning["dur:12"] == ("duration", (), 12, 0, 0, -1, -1, None)
    assert meaning["shift:7"] == ("shift", (), 0, 7, 0, -1, -1, None)
    assert meaning["vel:25"] == ("velocity", (), 0, 0, 25, -1, -1, None)
    assert meaning["inst:33"][5] == 33 and meaning["inst:drums"][5] == DRUMS
    assert meaning["harmony:D7"] == ("harmony", (), 0, 0, 0, -1, parse_symbol("D7"), None)
    assert meaning["key=D minor"] == ("control", (), 0, 0, 0, -1, -1, ("key", "D minor"))
    assert meaning["<hole>"][0] == "hole" and meaning["R"][0] == "rest"
    assert vocabulary.strikes[vocabulary.index["C4.E4"]].nonzero()[0].tolist() == [60, 64]
    assert (vocabulary.duration_id(12), vocabulary.shift_id(7), vocabulary.note_id(21)) == \
        (vocabulary.index["dur:12"], vocabulary.index["shift:7"], vocabulary.index["A0"])
    assert vocabulary.control_id("key", "D minor") == vocabulary.index["key=D minor"]
    assert vocabulary.control_id("key", "E minor") is None
    assert vocabulary.quantized_velocity(30) == 25, "velocity 30 lies in the bin whose middle is 25"


def test_seeds_take_dynamic_marks_and_instruments():
    vocabulary = Vocabulary.build(RICH, {})
    events = vocabulary.decode(parse_seed("C4 p D4@bass R ff E4.G4:2@drums F4@flute", vocabulary))
    # a family stands for its first program; a chord outside the vocabulary is written as its notes
    assert [event.program for event in events] == [0, 32, None, DRUMS, DRUMS, 73]
    velocities = [event.velocity for event in events]
    assert velocities[2] is None, "a rest has no loudness"
    half_bin = 127 / RICH.velocity_bins / 2
    for velocity, mark in zip(velocities[:2] + velocities[3:], ("mf", "p", "ff", "ff", "ff")):
        assert abs(velocity - DYNAMICS[mark]) <= half_bin + 1, (velocity, mark)
    assert vocabulary.decode(parse_seed("inst:33 vel:41 C2 dur:4 shift:4", vocabulary))[0][3:5] == (41, 33)


@pytest.mark.parametrize("seed, problem", [("mf C4", "keeps no velocities"), ("C4@bass", "keeps no instruments")])
def test_a_seed_asks_only_for_what_the_model_keeps(seed, problem):
    with pytest.raises(UserError, match=problem):
        parse_seed(seed, Vocabulary.build(EncodingSettings(), {}))


@pytest.mark.parametrize("seed, message", [("R@bass", "a rest belongs to no instrument"),
                                           ("C4@kazoo-9000", "'kazoo-9000' is not a General MIDI instrument"),
                                           ("ff", "dynamic marks but no notes")])
def test_bad_rich_seeds_are_refused(seed, message):
    with pytest.raises(UserError, match=message):
        parse_seed(seed, Vocabulary.build(RICH, {}))


def test_instrument_names():
    assert programs_named("electric-bass-finger") == [33] and programs_named("Drums") == [DRUMS]
    assert programs_named("bass") == list(range(32, 40)) and programs_named("40") == [40]
    assert parse_instrument_list("piano, bass,drums") == set(range(8)) | set(range(32, 40)) | {DRUMS}
    with pytest.raises(UserError, match="not a General MIDI instrument"):
        programs_named("kazoo")


def test_a_restricted_vocabulary_allows_only_the_instruments_asked_for():
    vocabulary = Vocabulary.build(RICH, {}).restricted_to({33, DRUMS})
    allowed = vocabulary.allowed_next(np.array([vocabulary.index["shift:4"]]))[0]
    assert {token for token, ok in zip(vocabulary.tokens, allowed) if ok and token.startswith("inst:")} == \
        {"inst:33", "inst:drums"}
    with pytest.raises(UserError, match="keeps no instruments"):
        Vocabulary.build(EncodingSettings(), {}).restricted_to({0})


def add_tempo_change(path, quarter, bpm):
    """Insert a tempo change at `quarter` into the first track of a MIDI file."""
    import mido

    midi = mido.MidiFile(path)
    track, time = [], 0
    for message in midi.tracks[0]:
        time += message.time
        track.append((time, message))
    at = round(quarter * midi.ticks_per_beat)
    track.append((at, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    track.sort(key=lambda item: (item[0], item[1].type == "end_of_track"))
    midi.tracks[0] = mido.MidiTrack(message.copy(time=time - before) for (time, message), before
                                    in zip(track, [0] + [time for time, _ in track]))
    midi.save(path)


def performance_file(path, seed=0, notes=120):
    """A played piano piece: onsets off any beat grid, varied velocities, and a tempo change at beat 4."""
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(program=0)
    starts = np.cumsum(rng.uniform(0.03, 0.4, notes))
    for start in starts:
        piano.notes.append(pretty_midi.Note(int(rng.integers(20, 120)), int(rng.integers(40, 90)), start,
                                            start + rng.uniform(0.05, 1.5)))
    midi.instruments.append(piano)
    midi.write(str(path))
    add_tempo_change(path, 4, 70)
    return path


def test_a_performance_gets_10_ms_steps_and_comes_back_within_10_ms(tmp_path):
    piece = readers.read_file(performance_file(tmp_path / "played.mid"), readers.TrackSelection())[0]
    assert len(piece.tempo_changes) == 2, "the tempo change was read"
    settings = EncodingRequest().settings([piece_traits(piece)])
    assert (settings.timing, settings.steps_per_quarter, settings.velocity_bins, settings.instruments) == \
        ("seconds", 50, 32, False)
    grid = Recipe().grid_notes(piece, settings)
    vocabulary = Vocabulary.build(settings, count_chords(grid.notes, settings))
    notes = events_to_notes(vocabulary.decode(vocabulary.encode_notes(grid.notes)[0]))
    seconds = piece.seconds(piece.onsets)
    order = np.argsort(seconds, kind="stable")
    assert len(notes) == len(piece.pitches)
    moved = np.rint(seconds.min() / 0.01) * 0.01  # the first onset moves to 0 by whole steps
    np.testing.assert_allclose(notes[:, 0] * 0.01, seconds[order] - moved, atol=0.0051)
    np.testing.assert_array_equal(notes[:, 2], piece.pitches[order])
    assert np.abs(notes[:, 3] - piece.velocities[order]).max() <= 2


def test_tempo_changes_follow_the_notes_through_shortened_silences():
    piece = readers.RawPiece(source="x", onsets=np.array([1.0, 12.0]), durations=np.array([1.0, 1.0]),
                             pitches=np.array([60, 62]), tempo_bpm=120.0, time_signature="4/4",
                             tempo_changes=np.array([[0.0, 120.0], [4.0, 90.0], [6.0, 60.0], [12.0, 80.0]]))
    grid = Recipe(max_silence_quarters=2).grid_notes(piece, EncodingSettings())
    assert grid.notes[:, 0].tolist() == [0, 12], "the 10-quarter silence after the first note is cut to 2 quarters"
    # 90 and 60 bpm begin where the cut does or inside it, and 80 where it ends: all land at step 12, the last heard.
    assert grid.tempo_changes.tolist() == [[0.0, 120.0], [12.0, 80.0]]
    grid = Recipe().grid_notes(piece, EncodingSettings())
    assert grid.tempo_changes.tolist() == [[0.0, 120.0], [12.0, 90.0], [20.0, 60.0], [44.0, 80.0]]


@pytest.fixture(scope="module")
def band_run(band, tmp_path_factory):
    return train_tiny_lstm(band, tmp_path_factory.mktemp("band-checkpoints"))


def test_generate_writes_each_instrument_on_its_program_and_keeps_to_the_instruments_asked_for(band_run, tmp_path,
                                                                                                   capsys):
    import generate

    output = tmp_path / "band.mid"
    generate.main(["--checkpoint", str(band_run), "--seed", "mf C2@bass ff C4@drums", "--instruments", "bass,drums",
                   "--length", "40", "--temperature", "2", "--random-seed", "1", "--output", str(output),
                   "--musicxml", "--plot"])
    midi = pretty_midi.PrettyMIDI(str(output))
    played = {DRUMS if instrument.is_drum else instrument.program for instrument in midi.instruments}
    assert played <= set(range(32, 40)) | {DRUMS} and len(played) > 2, "a family stands for its eight basses"
    assert len({note.velocity for instrument in midi.instruments for note in instrument.notes}) > 2
    import music21

    parts = music21.converter.parse(str(output.with_suffix(".musicxml"))).parts
    assert len(parts) == len(played), "one part per instrument"
    assert "Acoustic Bass" in capsys.readouterr().out, "the summary names the instruments"


def test_a_multitrack_seed_file_lends_the_output_its_instruments_and_tempo_map(band_run, tmp_path):
    import generate

    seed = write_band_tune(tmp_path / "seed.mid", seed=42)
    add_tempo_change(seed, 2, 90)
    generate.main(["--checkpoint", str(band_run), "--seed-midi", str(seed), "--seed-events", "12", "--length", "8",
                   "--random-seed", "0", "--output", str(tmp_path / "out.mid")])
    out = pretty_midi.PrettyMIDI(str(tmp_path / "out.mid"))
    times, tempi = out.get_tempo_changes()
    assert np.allclose(tempi, [120, 90]) and np.isclose(times[1], 1.0)
    first_beat = sorted((n.start, n.pitch, i.is_drum) for i in out.instruments for n in i.notes if n.start < 0.01)
    assert {(pitch, is_drum) for _, pitch, is_drum in first_beat} >= {(36, True)}, "the seed's kick drum"


def test_a_performance_in_10_ms_steps_is_written_as_sheet_music_in_sixteenths(tmp_path):
    """music21 cannot write a 50th of a quarter: the score of a performance is snapped to sixteenths."""
    import music21

    from musicgen.notation import write_musicxml

    notes = np.array([[0, 23, 60, 80, 0], [26, 12, 64, 50, 0], [51, 100, 67, 100, 40]])  # 10 ms steps
    write_musicxml(tmp_path / "played.musicxml", notes, 50, 120)
    parts = music21.converter.parse(str(tmp_path / "played.musicxml")).parts
    written = sorted((float(n.offset), float(n.quarterLength), n.pitch.midi, part.getInstrument().midiProgram)
                     for part in parts for n in part.recurse().notes)
    assert written == [(0.0, 0.5, 60, 0), (0.5, 0.25, 64, 0), (1.0, 2.0, 67, 40)]
