"""Fill in the middle: the training order, cutting a piece at bars, and generate.py --infill."""

import numpy as np
import pretty_midi
import pytest
from conftest import TINY_SETTINGS, UniformDecoder, assert_picture, write_tune

import generate
import preprocess
from models import registry
from musicgen import infilling, sampling, training
from musicgen.dataset import Infilling, fill_in_the_middle, read_index, shard_files, windows
from musicgen.encoding import EncodingSettings, events_to_notes
from musicgen.errors import UserError
from musicgen.hyperparameters import resolve_config
from musicgen.meters import Bars
from musicgen.notes import sort_notes
from musicgen.tokens import FILL, HOLE
from musicgen.vocabulary import Vocabulary


def vocabulary_with_markers():
    return Vocabulary.build(EncodingSettings(), {}, infilling=True)


def event_tokens(vocabulary, pitches):
    return [t for p in pitches for t in (vocabulary.index[p], vocabulary.index["dur:4"], vocabulary.index["shift:4"])]


def test_a_window_in_fill_in_the_middle_order_moves_whole_events_behind_the_markers():
    vocabulary = vocabulary_with_markers()
    window = np.array(event_tokens(vocabulary, ["C4", "D4", "E4", "F4", "G4", "A4"]), np.int32)
    order = Infilling.of(vocabulary, rate=1.0)
    for seed in range(10):
        rearranged = fill_in_the_middle(window, 0, order, np.random.default_rng(seed))
        assert len(rearranged) == len(window)
        assert rearranged[0] == vocabulary.index[HOLE]
        fill = int(np.flatnonzero(rearranged == vocabulary.index[FILL])[0])
        gap, after, before_and_middle = rearranged[1], rearranged[2:fill], rearranged[fill + 1:]
        assert len(after) % 3 == 0 and len(after) > 0, "whole events"
        np.testing.assert_array_equal(after, window[len(window) - len(after):], "what follows the gap, first")
        np.testing.assert_array_equal(before_and_middle, window[:len(before_and_middle)], "then the music in order")
        middle_steps = vocabulary.shift_steps[gap]
        assert middle_steps % 4 == 0 and 0 < middle_steps <= 4 * (6 - len(after) // 3), "how long the middle is"
    assert fill_in_the_middle(window[:6], 0, order, np.random.default_rng(0)) is None, "too few events to cut"
    assert Infilling.of(Vocabulary.build(EncodingSettings(), {}), rate=0.5) is None


def test_generation_can_stop_once_the_music_has_moved_on_far_enough():
    vocabulary = vocabulary_with_markers()
    prompts = np.full((3, 1), vocabulary.start_id)
    generated = sampling.get("sample", seed=1).generate(UniformDecoder(len(vocabulary)), vocabulary, prompts, num_events=1000,
                                                        until_steps=40)
    for row in generated:
        events = vocabulary.decode(row)
        times = np.cumsum([event.shift for event in events])
        assert times[-1] >= 40 and (len(times) == 1 or times[-2] < 40), "the event that reaches 40 steps is the last"
        assert (row[len(vocabulary.encode(events, start=False, end=False)):] == vocabulary.pad_id).all()


def two_voice_notes(bars=6):
    """A melody of quarter notes over a bass of half notes, 4/4, 4 steps a quarter."""
    melody = [(beat * 4, 4, 67 + beat % 5, 80, 0) for beat in range(bars * 4)]
    bass = [(beat * 8, 8, 48 + beat % 3, 80, 0) for beat in range(bars * 2)]
    return sort_notes(melody + bass)


def test_a_piece_cut_at_bars_gives_back_every_note():
    vocabulary = vocabulary_with_markers()
    notes = two_voice_notes()
    gap = infilling.split_at(notes, vocabulary, 3, 4, Bars.regular(16))
    assert (gap.start, gap.length) == (32, 32)
    assert sum(event.shift for event in gap.before) == 32 and sum(event.shift for event in gap.middle) == 32
    np.testing.assert_array_equal(events_to_notes(gap.before + gap.middle + gap.after), notes)
    with pytest.raises(UserError, match="out of range: the piece has 6 bars"):
        infilling.split_at(notes, vocabulary, 5, 7, Bars.regular(16))
    prompt = infilling.prompt(vocabulary, gap)
    tokens = [vocabulary.tokens[t] for t in prompt]
    assert tokens[0] == "<start>" and tokens.count(FILL) == 1 and tokens.count(HOLE) == 1
    assert vocabulary.decode(prompt[tokens.index(FILL) + 1:]) == gap.before, "the music before the gap comes last"
    assert tokens[1] == HOLE and tokens[2] == "shift:32", "the gap's length follows the hole"
    short = infilling.prompt(vocabulary, gap, context=60, middle_tokens=24)
    assert len(short) <= 60 - 24 and vocabulary.decode(short[1:]), "trimmed to whole events that fit"
    with pytest.raises(UserError, match="fill fewer bars"):
        infilling.prompt(vocabulary, gap, context=40, middle_tokens=36)


def test_a_middle_is_cut_or_padded_to_the_length_of_its_bars():
    settings = EncodingSettings()
    vocabulary = vocabulary_with_markers()
    events = vocabulary.decode(event_tokens(vocabulary, ["C4", "D4", "E4"]))
    assert sum(e.shift for e in infilling.fit_middle(events, 10, settings)) == 10
    assert len(infilling.fit_middle(events, 10, settings)) == 3
    padded = infilling.fit_middle(events, 20, settings)
    assert sum(e.shift for e in padded) == 20 and padded[-1].pitches == ()


def test_gap_tokens_add_up_to_the_gap():
    vocabulary = vocabulary_with_markers()
    for steps in (0, 5, 32, 33, 100):
        assert sum(vocabulary.shift_steps[vocabulary.gap_tokens(steps)]) == steps


def test_parse_bars():
    assert infilling.parse_bars("5-8") == (5, 8) and infilling.parse_bars("3") == (3, 3)
    for bad in ("8-5", "0-2", "five", ""):
        with pytest.raises(UserError, match="--infill-bars"):
            infilling.parse_bars(bad)


@pytest.fixture(scope="module")
def infill_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fill-tunes")
    for index in range(8):
        write_tune(folder / f"tune {index}.mid", seed=index)
    data = tmp_path_factory.mktemp("fill-data")
    preprocess.main(["--input", str(folder), "--output", str(data), "--workers", "1", "--infilling"])
    spec = registry.get("transformer")
    config = resolve_config(spec, overrides={**TINY_SETTINGS["transformer"], "seq_len": 96})
    run_dir = tmp_path_factory.mktemp("fill-run") / "transformer"
    training.train(spec, config, data, run_dir, log=lambda *args: None, verbose=0)
    return folder, data, run_dir


def test_training_windows_are_put_in_fill_in_the_middle_order_at_the_rate_asked(infill_run):
    _, data, _ = infill_run
    vocabulary, index = read_index(data)
    batches = windows(shard_files(data, index["train"]), 48, 256, vocabulary.pad_id, shuffle=True,
                      infilling=Infilling.of(vocabulary, rate=0.5))
    inputs = np.concatenate([np.asarray(x) for x, _, _ in batches])
    share = np.mean((inputs == vocabulary.index[HOLE]).any(axis=1))
    assert 0.35 < share < 0.65


def sounding(path, low, high):
    midi = pretty_midi.PrettyMIDI(str(path))
    return sorted((round(n.start, 3), n.pitch) for i in midi.instruments for n in i.notes if low <= n.start < high)


def test_infill_rewrites_only_the_bars_asked_for(infill_run, tmp_path, capsys):
    folder, _, run_dir = infill_run
    tune = folder / "tune 0.mid"
    output = tmp_path / "filled.mid"
    generate.main(["--checkpoint", str(run_dir), "--infill", str(tune), "--infill-bars", "3", "--output", str(output),
                   "--random-seed", "0", "--plot"])
    assert "bars 3-3 of" in capsys.readouterr().out
    assert_picture(tmp_path / "filled.png", 1200, 450)
    # 120 bpm, 4/4: bar 3 is 4 s to 6 s.
    assert sounding(output, 0, 4) == sounding(tune, 0, 4)
    assert sounding(output, 6, 99) == sounding(tune, 6, 99)
    assert sounding(output, 4, 6), "the bar is filled"


@pytest.mark.parametrize("argv, message", [
    (["--infill-bars", "3"], "go together"),
    (["--infill", "FILE"], "go together"),
    (["--infill", "FILE", "--bars", "5-8"], "the bars to fill in are --infill-bars, e.g. --infill FILE --infill-bars 5-8"),
    (["--infill", "FILE", "--infill-bars", "30-31"], "out of range"),
    (["--infill", "FILE", "--infill-bars", "2-1"], "FIRST <= LAST"),
    (["--infill", "FILE", "--infill-bars", "2", "--strategy", "beam"], "strategy other than beam"),
    (["--infill", "FILE", "--infill-bars", "2", "--seed", "C4"], "give one of"),
    (["--infill", "missing.mid", "--infill-bars", "2"], "does not exist"),
])
def test_infill_argument_errors(infill_run, tmp_path, argv, message):
    folder, _, run_dir = infill_run
    argv = [str(folder / "tune 1.mid") if item == "FILE" else item for item in argv]
    with pytest.raises(UserError, match=message):
        generate.main(["--checkpoint", str(run_dir), "--output", str(tmp_path / "x.mid"), *argv])


def test_a_model_not_trained_to_fill_in_is_refused(trained_run, tune_folder, tmp_path):
    with pytest.raises(UserError, match="not trained to fill in"):
        generate.main(["--checkpoint", str(trained_run), "--infill", str(tune_folder / "tune 00.mid"), "--infill-bars",
                       "2", "--output", str(tmp_path / "x.mid")])
