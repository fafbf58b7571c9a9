"""Whole pieces out: a piece begun from nothing, ended where the model ends it, or after so many bars or seconds."""

import json
import shutil
import time

import numpy as np
import pretty_midi
import pytest
from conftest import TINY_LSTM, TINY_SETTINGS, UniformDecoder, logits, tiny_model, written_notes

import generate
import preprocess
import train
from models import registry
from models.ngram import NgramModel
from musicgen import generate_options, training, whole_pieces
from musicgen.dataset import load_processed
from musicgen.encoding import notes_to_events, EncodingSettings
from musicgen.errors import UserError
from musicgen.meters import Bars
from musicgen.sampling import RandomSampler


class EndingDecoder(UniformDecoder):
    """Logits that want <end> above everything: whether it comes is the sampler's doing."""

    def __init__(self, size, end_id):
        super().__init__(size)
        self.end_id = end_id

    def start(self, tokens):
        logits = np.zeros((len(tokens), self.size))
        logits[:, self.end_id] = 50.0
        return logits, None


def test_a_piece_left_to_end_stops_at_the_first_event_boundary_where_the_model_ends_it(processed):
    vocabulary, _ = load_processed(processed, ())
    prompt = np.array([[vocabulary.start_id]] * 2, dtype=np.int32)
    decoder = EndingDecoder(len(vocabulary), vocabulary.end_id)
    ended = RandomSampler(seed=0).generate(decoder, vocabulary, prompt, num_events=50, to_end=True)
    for row in ended:
        ends = np.flatnonzero(row == vocabulary.end_id)
        assert len(ends) == 1, "one <end>, then only padding"
        assert set(row[ends[0] + 1:].tolist()) <= {vocabulary.pad_id}
        assert len(vocabulary.decode(row)) == 1, "not before the first event, and at once after it"
    unended = RandomSampler(seed=0).generate(decoder, vocabulary, prompt, num_events=5)
    assert vocabulary.end_id not in unended and [len(vocabulary.decode(row)) for row in unended] == [5, 5]


def test_a_piece_of_so_many_steps_stops_once_its_music_fills_them(processed):
    vocabulary, _ = load_processed(processed, ())
    prompt = np.array([[vocabulary.start_id]] * 3, dtype=np.int32)
    rows = RandomSampler(seed=1).generate(UniformDecoder(len(vocabulary)), vocabulary, prompt, num_events=500,
                                          until_steps=32)
    for row in rows:
        shifts = [event.shift for event in vocabulary.decode(row)]
        assert sum(shifts) >= 32 > sum(shifts[:-1]), "the last event reaches the length, none after it"


def _three_note_piece(path, index):
    """Three notes of one, two and four quarters (at 120 bpm), each from pitches of its own, so that even a
    bigram model knows which note comes next, and that the third ends the piece."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(0)
    for start, end, lowest in ((0.0, 0.5, 40), (0.5, 1.5, 60), (1.5, 3.5, 80)):
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=lowest + index, start=start, end=end))
    midi.instruments.append(piano)
    midi.write(str(path))


@pytest.fixture(scope="module")
def short_pieces_run(tmp_path_factory):
    """An n-gram trained on pieces of three notes: it always writes three notes and ends the piece."""
    music = tmp_path_factory.mktemp("short")
    for index in range(16):
        _three_note_piece(music / f"piece {index:02d}.mid", index)
    data = tmp_path_factory.mktemp("short-data")
    preprocess.main(["--input", str(music), "--output", str(data), "--min-notes", "3"])
    checkpoints = tmp_path_factory.mktemp("short-checkpoints")
    train.main(["--model", "ngram", "--data", str(data), "--checkpoints", str(checkpoints), "--set", "max_order=3"])
    return checkpoints / "ngram"


def test_generate_with_no_seed_writes_a_piece_until_the_model_ends_it(short_pieces_run, tmp_path, capsys):
    generate.main(["--checkpoint", str(short_pieces_run), "--random-seed", "3", "--num-outputs", "2",
                   "--output", str(tmp_path / "piece.mid")])
    out = capsys.readouterr().out
    assert "no seed: a piece from its beginning" in out and "until the model ends the piece" in out
    assert out.count("wrote ") == 2 and out.count("3 events, 3 notes") == 2 and out.count("; ended by the model") == 2
    for path in (tmp_path / "piece-01.mid", tmp_path / "piece-02.mid"):
        assert [(onset, duration) for onset, duration, _ in written_notes(path)] == [(0, 4), (4, 8), (12, 16)]


def test_generate_writes_so_many_bars_or_seconds(trained_run, tmp_path, capsys):
    generate.main(["--checkpoint", str(trained_run), "--bars", "2", "--random-seed", "0",
                   "--output", str(tmp_path / "bars.mid")])
    assert "2 bars of 4/4" in capsys.readouterr().out
    onsets = [onset for onset, _, _ in written_notes(tmp_path / "bars.mid")]
    assert onsets and max(onsets) < 2 * 16, "every note begins within two bars of four quarters"
    with pytest.raises(UserError, match="this model has no token for the meter 3/4; it knows 4/4"):
        generate.main(["--checkpoint", str(trained_run), "--bars", "2", "--meter", "3/4",
                       "--output", str(tmp_path / "waltz.mid")])
    generate.main(["--checkpoint", str(trained_run), "--seconds", "3", "--bpm", "60", "--random-seed", "0",
                   "--output", str(tmp_path / "seconds.mid")])
    assert "3 seconds" in capsys.readouterr().out
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "seconds.mid"))
    assert max(note.start for note in midi.instruments[0].notes) < 3.0


@pytest.mark.parametrize("argv, message", [
    (["--length", "8", "--bars", "2"], "give one of --length, --bars and --seconds"),
    (["--bars", "2", "--strategy", "beam"], "beam search writes a number of events"),
    (["--seconds", "4", "--chords", "C G"], "--chords writes for the bars of its chords"),
    (["--bars", "0"], "--bars must be in 1..256"),
    (["--length", "0"], "--length must be 1 to 2000 events"),
    (["--seconds", "-1"], "--seconds must be above 0"),
])
def test_lengths_that_cannot_be_are_refused_in_one_line(argv, message, tmp_path):
    with pytest.raises(UserError, match=message):
        generate_options.check_args(generate.parse_args(argv))


def events_from_notes(notes):
    return notes_to_events(notes, EncodingSettings(), set())[0]


def _melody(pitches, steps=4, start=0, velocity=80):
    """Notes (onset, duration, pitch, velocity, program) of one pitch a quarter (4 steps) after another."""
    return np.array([[start + index * steps, steps, pitch, velocity, 0] for index, pitch in enumerate(pitches)],
                    dtype=np.int64)


C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]
F_SHARP_MAJOR = [66, 68, 70, 71, 73, 75, 77, 78]


def test_key_agreement_is_the_share_of_four_bar_windows_in_the_whole_pieces_key():
    assert whole_pieces.key_agreement(_melody(C_MAJOR * 8), Bars.regular(16)) == 1.0, "16 bars of C major"
    wanders = _melody(C_MAJOR * 6 + F_SHARP_MAJOR * 2)  # three 4-bar windows in C major, then one in F# major
    assert whole_pieces.key_agreement(wanders, Bars.regular(16)) == 0.75


def test_sections_that_come_back_are_counted_after_the_first():
    a, b = C_MAJOR * 2, F_SHARP_MAJOR * 2  # each four bars of four quarters
    aabb = _melody(a + a + b + b)
    assert whole_pieces.returning_sections(aabb, Bars.regular(16)) == pytest.approx(2 / 3), "A again and B again; B first is new"
    abcd = _melody(a + b + [p + 1 for p in a] + [p - 1 for p in b])
    assert whole_pieces.returning_sections(abcd, Bars.regular(16)) == 0.0
    assert np.isnan(whole_pieces.returning_sections(_melody(a), Bars.regular(16))), "one section has nothing to come back to"


def test_a_piece_that_ends_on_a_long_tonic_in_the_bass_is_told_from_one_that_does_not():
    ends_home = np.concatenate([_melody(C_MAJOR * 2), [[64, 16, 48, 80, 0], [64, 8, 64, 80, 0]]])
    assert whole_pieces.ending(ends_home, 4) == (1.0, 4.0)
    ends_away = np.concatenate([_melody(C_MAJOR * 2), [[64, 2, 55, 80, 0]]])
    assert whole_pieces.ending(ends_away, 4) == (0.0, 0.5)


def test_muspy_judges_the_notes_as_written():
    chords = np.array([[onset, 4, pitch, 80, 0] for onset in (0, 4, 8, 12) for pitch in (60, 64, 67)] +
                      [[24, 4, 71, 80, 0]])  # a C major triad four times, two beats' rest, then a B
    values = whole_pieces.muspy_statistics(chords, 4, 16)
    assert values["muspy_scale_consistency"] == 1.0 and values["muspy_pitch_range"] == 11
    assert values["muspy_polyphony"] == pytest.approx(13 / 5), "three notes at four onsets, one at the fifth"
    assert values["muspy_pitch_class_entropy"] == pytest.approx(-sum(p * np.log2(p) for p in (4 / 13,) * 3 + (1 / 13,)))
    # MusPy counts beats 0 to 7 (the last note ends at beat 7) and each note's end beat as played: beat 5 is silent
    assert values["muspy_empty_beat_rate"] == 1 / 8


def test_a_piece_without_notes_has_no_muspy_values_and_is_left_out_of_the_means():
    empty = whole_pieces.muspy_statistics(np.zeros((0, 5), dtype=np.int64), 4, 16)
    assert set(empty) == set(whole_pieces.MUSPY_STATISTICS) and all(np.isnan(value) for value in empty.values())
    real = [events_from_notes(_melody(C_MAJOR * 4))]
    table = whole_pieces.judge([(events_from_notes(_melody(C_MAJOR * 4)), True), ([], True)], real * 2, 4)
    assert table["muspy_scale_consistency"][0] == 1.0, "the mean of the piece that has notes"


def test_whole_pieces_are_judged_on_their_real_partners_length_but_their_length_as_written():
    real = [events_from_notes(_melody(C_MAJOR * 4))]  # 8 bars
    long_repeat = events_from_notes(_melody(C_MAJOR * 4 + F_SHARP_MAJOR * 8))  # the same 8 bars, then 16 in F#
    table = whole_pieces.judge([(long_repeat, False)], real, 4)
    assert table["bars"][:2] == (24.0, 8.0) and table["ended"][0] == 0.0
    assert table["key_agreement"][0] == 1.0, "cut at 8 bars, the generated piece never leaves C major"
    assert table["muspy_pitch_range"][0] == 12.0 == table["muspy_pitch_range"][1]


def test_the_window_is_chosen_to_hold_most_training_pieces_whole(processed, tmp_path, capsys):
    _, splits = load_processed(processed, ("train",))
    lengths = np.diff(splits["train"].offsets)
    window, why = training.corpus_window(processed, 512)
    assert window in (128, 256, 512) and np.quantile(lengths, 0.9) <= window
    assert window == 128 or np.quantile(lengths, 0.9) > window // 2, "the shortest power of two that holds them"
    assert f"{np.mean(lengths <= window):.0%} of the training pieces" in why
    assert training.corpus_window(processed, 128)[0] == 128, "never longer than the model allows"
    train.main(["--data", str(processed), "--show-config", "--seq-len", "auto"])
    out = capsys.readouterr().out
    assert f"window {window} tokens, chosen from the corpus" in out and f'"seq_len": {window}' in out
    batch = json.loads(out[out.index("{"):])["batch_size"]
    assert batch * window == 16 * 128, "as many tokens a batch as the transformer's 16 windows of 128"
    train.main(["--data", str(processed), "--show-config", "--seq-len", "auto", "--batch-size", "8"])
    assert '"batch_size": 8' in capsys.readouterr().out, "a batch size given is kept"
    train.main(["--data", str(processed), "--show-config"])
    out = capsys.readouterr().out
    assert "chosen from the corpus" not in out and '"seq_len": 128' in out, "the default window stays 128"
    with pytest.raises(UserError, match="the cnn model's window is its own"):
        train.main(["--data", str(processed), "--model", "cnn", "--seq-len", "auto", "--show-config"])


def test_a_run_resumes_with_the_window_it_began_with(trained_run, processed, tmp_path, capsys):
    shutil.copytree(trained_run, tmp_path / "lstm")
    train.main(["--data", str(processed), "--model", "lstm", "--checkpoints", str(tmp_path), "--show-config",
                "--seq-len", "auto"])
    assert f'"seq_len": {TINY_LSTM["seq_len"]}' in capsys.readouterr().out


@pytest.mark.parametrize("name", list(registry.REGISTRY))
def test_every_model_writes_a_piece_far_past_its_window(name, processed):
    vocabulary, splits = load_processed(processed, ("train",))
    if name == "ngram":
        model = NgramModel.fit(splits["train"].tokens, len(vocabulary), TINY_SETTINGS[name]["max_order"])
    else:
        model = tiny_model(name, len(vocabulary))
    decoder = registry.get(name).decoder(model, seed=0)
    prompt = np.full((2, 1), vocabulary.start_id, dtype=np.int32)
    rows = RandomSampler(seed=0).generate(decoder, vocabulary, prompt, num_events=60, to_end=True)
    for row in rows:
        ended = np.flatnonzero(row == vocabulary.end_id)
        events = vocabulary.decode(row)
        # ended by the model: once, after its first event and before the cap, then only padding; else whole events
        # up to the cap, past every model's window
        assert len(ended) <= 1 and (row[(ended[0] if len(ended) else len(row)) + 1:] == vocabulary.pad_id).all()
        assert 1 <= len(events) <= 60 and (len(events) < 60) == bool(len(ended))


@pytest.mark.parametrize("name", [name for name, spec in registry.REGISTRY.items() if spec.longest_window])
def test_models_that_choose_their_window_train_on_the_longest_one(name):
    spec = registry.get(name)
    model = tiny_model(name, 40, seq_len=spec.longest_window)
    tokens = np.random.default_rng(0).integers(1, 40, (2, spec.longest_window + 1)).astype(np.int32)
    loss = model.train_on_batch(tokens[:, :-1], tokens[:, 1:])
    assert np.isfinite(np.ravel(loss)[0])
    assert logits(model, tokens[:, :-1]).shape == (2, spec.longest_window, 40)


class SlowDecoder(UniformDecoder):
    def step(self, tokens, state):
        time.sleep(0.3)
        return self.start(tokens)


def test_a_progress_bar_shows_once_generating_takes_over_a_second(processed, capsys):
    vocabulary, _ = load_processed(processed, ())
    prompt = np.array([[vocabulary.start_id]], dtype=np.int32)
    RandomSampler(seed=0, progress=True).generate(SlowDecoder(len(vocabulary)), vocabulary, prompt, num_events=3)
    assert "generating" in capsys.readouterr().err
    RandomSampler(seed=0).generate(SlowDecoder(len(vocabulary)), vocabulary, prompt, num_events=3)
    assert "generating" not in capsys.readouterr().err, "only where asked for (generate.py asks)"
