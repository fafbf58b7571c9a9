"""Meters: read from every format, kept in the encoding at their bar lines, generated, written, and counted."""

import music21
import numpy as np
import pytest
import symusic
from conftest import UniformDecoder, shared

import generate
import preprocess
from musicgen import readers
from musicgen.chords import ChordSymbols
from musicgen.dataset import load_processed
from musicgen.encoding import EncodingSettings, event_meters, event_symbols, events_to_notes, notes_to_events
from musicgen.errors import UserError
from musicgen.generation import metered
from musicgen.meters import KNOWN_METERS, Bars, meter_map
from musicgen.midi import write_midi
from musicgen.notation import write_musicxml
from musicgen.notes import DURATION, PROGRAM, VELOCITY
from musicgen.recipe import Recipe
from musicgen.sampling import Onsets, RandomSampler
from musicgen.tokens import KINDS
from musicgen.vocabulary import Vocabulary

_METER, _SHIFT = KINDS.index("meter"), KINDS.index("shift")


def _chorale(name):
    from music21 import corpus

    path = corpus.getWork(name)
    return readers.read_notation(str(path), str(path), source_format=None)


def test_meters_are_read_at_their_bar_lines_with_the_upbeat_before_the_first():
    chorale = _chorale("bwv269")  # 3/4, opening with a one-quarter upbeat
    np.testing.assert_array_equal(chorale.meter_changes, [[-2, 3, 4]])
    assert chorale.time_signature == "3/4"
    tune = readers.read_file(shared("nottingham/ashover1.mid"), readers.TrackSelection())[0]
    # 3/4 with bars of 2/4 between its strains, each signature stated twice in the file
    np.testing.assert_array_equal(tune.meter_changes[:4], [[0, 3, 4], [21, 2, 4], [23, 3, 4], [44, 2, 4]])
    abc = readers.read_file(shared("abc/flowers_of_edinburgh.abc"), readers.TrackSelection())[0]
    np.testing.assert_array_equal(abc.meter_changes, [[-1.5, 2, 4]])


def test_meter_map_sorts_drops_what_is_no_time_signature_and_merges_repeats():
    np.testing.assert_array_equal(meter_map([(8, 3, 4), (0, 3, 4), (4, 3, 4), (8, 6, 8), (12, 7, 6)]),
                                  [[0, 3, 4], [8, 6, 8]])
    np.testing.assert_array_equal(meter_map([(4, 3, 4)]), [[0, 4, 4], [4, 3, 4]]), "4/4 until the first, as MIDI"
    np.testing.assert_array_equal(meter_map([]), [[0, 4, 4]])


def test_bars_count_each_meter_from_where_it_starts_a_short_bar_before_a_change_counting_as_one():
    # 3/4 from step 0 (bars of 12 steps), 2/4 from step 30, in the middle of the third bar
    bars = Bars.of_meters([[0, 3, 4], [30, 2, 4]], 4)
    np.testing.assert_array_equal(bars.index([0, 11, 12, 29, 30, 37, 38]), [0, 0, 1, 2, 3, 3, 4])
    np.testing.assert_array_equal(bars.start([0, 1, 2, 3, 4]), [0, 12, 24, 30, 38])
    np.testing.assert_array_equal(bars.length([0, 2, 3]), [12, 12, 8])
    assert bars.measure(34) == 3.5
    assert Bars.regular(16).measure(40) == 2.5


def test_an_upbeat_begins_with_the_rest_of_its_bar_only_where_the_encoding_keeps_meters():
    chorale = _chorale("bwv269")
    with_meters = Recipe().grid_notes(chorale, EncodingSettings(meters=True))
    without = Recipe().grid_notes(chorale, EncodingSettings())
    assert with_meters.notes[:, 0].min() == 8, "a quarter's upbeat in 3/4 starts on the bar's third beat"
    assert without.notes[:, 0].min() == 0, "the encoding without meters is as it was"
    np.testing.assert_array_equal(with_meters.notes[:, 0], without.notes[:, 0] + 8)
    np.testing.assert_array_equal(with_meters.meters, [[0, 3, 4]])
    np.testing.assert_array_equal(without.meters, [[-8, 3, 4]])
    np.testing.assert_array_equal(with_meters.chord_symbols.onsets, without.chord_symbols.onsets + 8)


def test_settings_without_meters_keep_their_json_and_so_their_vocabulary_hash():
    assert "meters" not in EncodingSettings().to_json()
    assert EncodingSettings(meters=True).to_json()["meters"] is True
    with pytest.raises(UserError, match="beat timing only"):
        EncodingSettings(timing="seconds", steps_per_quarter=50, meters=True).validate()


PIECES = {
    "chorale with an upbeat": lambda: _chorale("bwv269"),
    "folk tune whose meter changes": lambda: readers.read_file(shared("nottingham/ashover1.mid"),
                                                               readers.TrackSelection())[0],
    "ABC tune with an upbeat and chord symbols": lambda: readers.read_file(shared("abc/flowers_of_edinburgh.abc"),
                                                                           readers.TrackSelection())[0],
    "multitrack song with drums": lambda: readers.read_file(
        sorted(shared("real-midi/pop-multitrack").glob("*.mid"), key=lambda p: p.stat().st_size)[0],
        readers.TrackSelection(keep_drums=True))[0],
}
ENCODINGS = {
    "meters": {},
    "meters, velocities and instruments": {"velocity_bins": 16, "instruments": True},
    "meters and triplets": {"steps_per_quarter": 12},
}


@pytest.mark.parametrize("infilling", [False, True], ids=["plain", "infilling markers"])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("piece_name", PIECES)
def test_every_encoding_with_meters_round_trips_real_music_exactly(piece_name, encoding, infilling):
    piece = PIECES[piece_name]()
    settings = EncodingSettings(meters=True, **ENCODINGS[encoding]).validate()
    grid = Recipe(readers.TrackSelection(keep_drums=True), chord_symbols="infer").grid_notes(piece, settings)
    symbols = grid.chord_symbols
    assert len(symbols), "the chord symbols are round-tripped too"
    events, _ = notes_to_events(grid.notes, settings, set(), symbols, grid.meters)
    chords = {event.pitches for event in events if len(event.pitches) > 1}
    vocabulary = Vocabulary.build(settings, dict.fromkeys(chords, 2), controls=["key=C major"],
                                  infilling=infilling, symbols=symbols.codes, meters=grid.meters[:, 1:])
    tokens, _, _ = vocabulary.encode_notes(grid.notes, [vocabulary.control_id("key", "C major")], symbols,
                                           grid.meters)
    decoded = vocabulary.decode(tokens)
    expected = grid.notes.copy()
    expected[:, DURATION] = np.minimum(expected[:, DURATION], settings.max_duration_steps)
    if settings.velocity_bins:
        expected[:, VELOCITY] = [vocabulary.quantized_velocity(v) for v in expected[:, VELOCITY]]
    columns = [0, 1, 2] + ([VELOCITY] if settings.velocity_bins else []) + ([PROGRAM] if settings.instruments else [])
    np.testing.assert_array_equal(events_to_notes(decoded)[:, columns], expected[:, columns])
    np.testing.assert_array_equal(event_meters(decoded), grid.meters)
    np.testing.assert_array_equal(event_symbols(decoded).onsets, symbols.onsets)
    np.testing.assert_array_equal(event_symbols(decoded).codes, symbols.codes)
    assert vocabulary.tokens[tokens[1]] == "key=C major" and vocabulary.kind(tokens[2]) == "meter"


def test_a_meter_comes_first_at_its_onset_and_a_meter_the_vocabulary_lacks_is_left_out():
    settings = EncodingSettings(meters=True)
    vocabulary = Vocabulary.build(settings, {}, symbols=[7], meters=[(3, 4), (2, 4), (6, 8), (17, 8)])
    notes = np.array([[0, 4, 60, 80, 0], [12, 4, 62, 80, 0], [20, 4, 64, 80, 0]])
    symbols = ChordSymbols([12], [8], [7])
    ids, _, _ = vocabulary.encode_notes(notes, symbols=symbols, meters=[[0, 3, 4], [12, 2, 4], [20, 17, 8]])
    spelled = [vocabulary.tokens[i] for i in ids]
    assert spelled[:5] == ["<start>", "meter:3/4", "shift:0", "C4", "dur:4"]
    assert spelled[6:12] == ["meter:2/4", "shift:0", "harmony:G", "dur:8", "shift:0", "D4"]
    assert "meter:17/8" not in vocabulary.index and not any("17/8" in token for token in spelled)
    assert list(vocabulary.meters) == [(2, 4), (3, 4), (6, 8)], "those of the training pieces that are meters"
    assert len(KNOWN_METERS) == 64


def test_sampled_meters_are_always_followed_by_a_shift_and_prompts_take_the_meter_asked_for():
    vocabulary = Vocabulary.build(EncodingSettings(meters=True), {}, meters=KNOWN_METERS)
    prompt = np.full((16, 1), vocabulary.start_id, dtype=np.int32)
    rows = RandomSampler(seed=0).generate(UniformDecoder(len(vocabulary)), vocabulary, prompt, num_events=80)
    meters, changes = 0, 0
    for row in rows:
        kinds = vocabulary.kinds[row]
        following = kinds[np.flatnonzero(kinds[:-1] == _METER) + 1]
        assert (following == _SHIFT).all()
        meters += len(following)
        events = vocabulary.decode(row)
        assert len(events) == 80
        line, bar, time, named_at = 0, 16, 0, None  # 4/4 until the first meter
        for event in events:
            if event.meter is not None:
                assert (time - line) % bar == 0, "a meter only on a bar line of the meter before it"
                assert time != named_at, "one meter at a time"
                line, bar, named_at = time, Bars.of_meters([[0, *event.meter]], 4).lengths[0], time
                changes += time > 0
            time += event.shift
    assert meters > 0 and changes > 0, "the sampler drew meters, and changes of meter"
    hole = Vocabulary.build(EncodingSettings(meters=True), {}, infilling=True, meters=[(3, 4)])
    filling = np.array([[hole.start_id, hole.hole_id]])
    assert not Onsets(hole, filling).allowed(filling[:, -1])[0, hole.meters[(3, 4)]], "filled bars keep their meter"
    begun = np.array([[hole.start_id]])
    assert Onsets(hole, begun).allowed(begun[:, -1])[0, hole.meters[(3, 4)]]
    start = np.array([vocabulary.start_id], dtype=np.int32)
    asked = metered(start, vocabulary, "6/8")
    assert [vocabulary.tokens[i] for i in asked] == ["<start>", "meter:6/8", "shift:0"]
    np.testing.assert_array_equal(metered(asked, vocabulary, "3/4"), asked), "a prompt naming a meter keeps it"
    with pytest.raises(UserError, match="no token for the meter 5/32; it knows 1/2, 2/2"):
        metered(start, vocabulary, "5/32")
    plain = Vocabulary.build(EncodingSettings(), {})
    np.testing.assert_array_equal(metered(start, plain, "6/8"), start), "a model without meters is given none"


def test_midi_and_musicxml_are_written_in_the_meters(tmp_path):
    notes = np.array([[step, 4, 60 + step % 12, 80, 0] for step in range(0, 64, 4)])
    meters = np.array([[0, 3, 4], [24, 6, 8]])
    write_midi(tmp_path / "x.mid", notes, 4, 120, meters=meters)
    score = symusic.Score(str(tmp_path / "x.mid"))
    assert [(s.time, s.numerator, s.denominator) for s in score.time_signatures] == [(0, 3, 4), (2880, 6, 8)]
    write_musicxml(tmp_path / "x.musicxml", notes, 4, 120, meters=meters)
    part = music21.converter.parse(str(tmp_path / "x.musicxml")).parts[0]
    measures = list(part.getElementsByClass("Measure"))
    assert [m.timeSignature.ratioString for m in measures if m.timeSignature] == ["3/4", "6/8"]
    assert [float(m.offset) for m in measures[:4]] == [0.0, 3.0, 6.0, 9.0]


@pytest.fixture(scope="module")
def metered_corpus(tmp_path_factory):
    """Nottingham tunes in 3/4 and 2/4 (and 6/8), preprocessed by default, and an n-gram trained on them."""
    import shutil

    import train

    music = tmp_path_factory.mktemp("metered-music")
    for name in ("ashover1.mid", "ashover11.mid", "ashover10.mid", "ashover12.mid", "ashover13.mid",
                 "ashover14.mid", "ashover15.mid", "ashover16.mid"):
        shutil.copy(shared(f"nottingham/{name}"), music / name)
    data = tmp_path_factory.mktemp("metered-data")
    preprocess.main(["--input", str(music), "--output", str(data), "--val-fraction", "0.2",
                     "--test-fraction", "0.2"])
    checkpoints = tmp_path_factory.mktemp("metered-runs")
    train.main(["--model", "ngram", "--data", str(data), "--checkpoints", str(checkpoints), "--run-name", "ngram"])
    return data, checkpoints / "ngram"


def test_preprocessing_keeps_meters_by_default_and_leaves_them_out_when_asked(metered_corpus, tmp_path):
    data, _ = metered_corpus
    vocabulary, splits = load_processed(data, ("train",))
    assert vocabulary.settings.meters
    first_meters = [event_meters(vocabulary.decode(splits["train"].piece(i)))[0].tolist()
                    for i in range(len(splits["train"]))]
    assert {tuple(meter) for meter in first_meters} >= {(0, 3, 4), (0, 4, 4)}
    preprocess.main(["--input", str(shared("nottingham/ashover1.mid")), "--output", str(tmp_path / "plain"),
                     "--no-meters", "--min-notes", "1"])
    plain, _ = load_processed(tmp_path / "plain", ())
    assert not plain.settings.meters and not plain.meters


def test_generate_writes_bars_of_the_meter_asked_for_into_the_midi_file(metered_corpus, tmp_path, capsys):
    _, run = metered_corpus
    out = tmp_path / "waltz.mid"
    generate.main(["--checkpoint", str(run), "--meter", "3/4", "--bars", "8", "--output", str(out),
                   "--random-seed", "1"])
    assert ", in 3/4" in capsys.readouterr().out
    score = symusic.Score(str(out))
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (3, 4)
    notes = [note for track in score.tracks for note in track.notes]
    ticks_per_bar = 3 * score.tpq
    assert max(note.time for note in notes) < 8 * ticks_per_bar, "8 bars of 3/4, not of 4/4"
    assert max(note.time for note in notes) >= 6 * ticks_per_bar, "and about that long"


def test_sheet_music_keeps_every_note_in_place_across_a_change_into_a_long_bar(tmp_path):
    # 3/4 (bars of 12 steps), then 16/8 (bars of 32) from step 24: notes held over bar lines in two voices, and
    # rests of more than four quarters inside long bars, which music21 left to itself misplaced (it read a
    # whole rest as filling its bar)
    notes = np.array([[39, 27, 50, 80, 0], [57, 24, 96, 80, 0], [184, 7, 55, 80, 0], [264, 19, 80, 80, 0]])
    write_musicxml(tmp_path / "x.musicxml", notes, 4, 120, meters=np.array([[0, 3, 4], [24, 16, 8]]))
    piece = readers.read_notation(str(tmp_path / "x.musicxml"), "x", None)
    read = sorted(zip(np.rint(piece.onsets * 4).astype(int).tolist(), np.rint(piece.durations * 4).astype(int).tolist(),
                      piece.pitches.tolist()))
    assert read == sorted(map(tuple, notes[:, :3].tolist()))
    np.testing.assert_array_equal(piece.meter_changes, [[0, 3, 4], [6, 16, 8]])
