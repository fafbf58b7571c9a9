"""preprocess -> train -> generate on a tiny corpus, resume, and the errors a user can make."""

import json
import shutil

import keras
import mido
import music21
import numpy as np
import pretty_midi
import pytest
from conftest import TINY_LSTM, assert_picture, written_notes

import generate
import train
from models import registry
from musicgen import training
from musicgen.encoding import events_to_notes
from musicgen.errors import UserError
from musicgen.hyperparameters import resolve_config
from musicgen.midi import write_midi
from musicgen.notes import DRUMS
from musicgen.saving import load_model


def test_training_writes_a_complete_run_folder(trained_run):
    for name in ("best.keras", "last.keras", "run_config.json", "vocab.json", "history.csv", "loss.png"):
        assert (trained_run / name).is_file(), name
    assert any((trained_run / "logs").rglob("*tfevents*")), "TensorBoard logs"
    run_config = json.loads((trained_run / "run_config.json").read_text())
    assert run_config["model"] == "lstm" and run_config["config"]["units"] == TINY_LSTM["units"]
    assert run_config["progress"]["epochs_completed"] == 1
    assert np.isfinite(run_config["progress"]["best_val_loss"])
    assert run_config["default_bpm"] == 120.0
    assert_picture(trained_run / "loss.png", 1000, 400)


def test_generate_writes_midi_that_three_libraries_read(trained_run, tmp_path, capsys):
    output = tmp_path / "song.mid"
    generate.main(["--checkpoint", str(trained_run), "--seed", "C4 E4 G4 C4.E4.G4:2 R:1", "--length", "20",
                   "--output", str(output), "--random-seed", "3", "--program", "40", "--bpm", "90"])
    assert "wrote" in capsys.readouterr().out
    midi = pretty_midi.PrettyMIDI(str(output))
    assert midi.instruments[0].program == 40
    assert midi.get_tempo_changes()[1][0] == pytest.approx(90, abs=0.01)
    assert len(midi.instruments[0].notes) >= 20
    assert len(mido.MidiFile(str(output)).tracks) >= 1
    assert len(music21.converter.parse(str(output)).flatten().notes) > 0
    first_notes = sorted((round(n.start, 3), n.pitch) for n in midi.instruments[0].notes)[:3]
    assert first_notes == [(0.0, 60), (0.667, 64), (1.333, 67)], "the seed comes first, at 90 bpm"


def test_written_notes_match_the_events(tmp_path):
    notes = np.array([[0, 4, 60], [0, 8, 64], [6, 2, 67], [16, 1, 72]])
    write_midi(tmp_path / "x.mid", notes, steps_per_quarter=4, bpm=120)
    [instrument] = pretty_midi.PrettyMIDI(str(tmp_path / "x.mid")).instruments
    got = sorted((round(n.start / 0.125), round((n.end - n.start) / 0.125), n.pitch) for n in instrument.notes)
    assert got == sorted(map(tuple, notes.tolist()))
    assert instrument.program == 0 and not instrument.is_drum
    assert {n.velocity for n in instrument.notes} == {80}


def test_written_midi_keeps_velocities_instruments_drums_and_the_tempo_map(tmp_path):
    notes = np.array([[0, 4, 60, 30, 0], [0, 4, 36, 100, DRUMS], [4, 2, 40, 64, 33], [8, 4, 60, 127, 0]])
    write_midi(tmp_path / "x.mid", notes, steps_per_quarter=4, bpm=120, tempo_changes=[[0, 120], [8, 60]])
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "x.mid"))
    by_program = {(i.program, i.is_drum): sorted((n.pitch, n.velocity) for n in i.notes) for i in midi.instruments}
    assert by_program == {(0, False): [(60, 30), (60, 127)], (0, True): [(36, 100)], (33, False): [(40, 64)]}
    times, tempi = midi.get_tempo_changes()
    assert times.tolist() == [0.0, 1.0] and np.allclose(tempi, [120, 60])
    [last] = [n for i in midi.instruments for n in i.notes if n.velocity == 127]
    assert np.isclose(last.start, 1.0) and np.isclose(last.end, 2.0)  # one quarter at 60 bpm is a second


def test_several_outputs_each_a_piece_from_its_beginning(trained_run, tmp_path, capsys):
    generate.main(["--checkpoint", str(trained_run), "--num-outputs", "3", "--length", "8", "--output", str(tmp_path)])
    out = capsys.readouterr().out
    assert "no seed: a piece from its beginning" in out and "8 events" in out
    files = sorted(tmp_path.glob("lstm-*.mid"))
    assert len(files) == 3 and [f.name[-6:] for f in files] == ["01.mid", "02.mid", "03.mid"]
    pieces = [written_notes(path) for path in files]
    assert len({tuple(piece) for piece in pieces}) == 3, "three pieces drawn, not one written thrice"


def test_beam_search_outputs_are_the_best_beams(trained_run, tmp_path, capsys):
    from musicgen.sampling import BeamSearch
    from musicgen.seed import seed_tokens

    generate.main(["--checkpoint", str(trained_run), "--seed", "C4 D4", "--strategy", "beam", "--beam-width", "3",
                   "--num-outputs", "2", "--length", "6", "--output", str(tmp_path / "beam.mid")])
    assert "beam decoding" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beam-01.mid", "beam-02.mid"]
    run = registry.load_run(trained_run)
    prompt = seed_tokens(run, "C4 D4").tokens
    beams, scores = BeamSearch(width=3).search(run.spec.decoder(run.model), run.vocabulary, prompt, 6)
    assert scores[0] >= scores[1] >= scores[2] > -np.inf
    events = [run.vocabulary.decode(np.concatenate([prompt, beam])) for beam in beams]
    assert events[0] != events[1], "two different beams (which may differ in their meters alone)"
    best = [[tuple(row) for row in events_to_notes(piece)[:, :3]] for piece in events]
    assert written_notes(tmp_path / "beam-01.mid") == sorted(best[0]), "the best beam first"
    assert written_notes(tmp_path / "beam-02.mid") == sorted(best[1]), "then the second best"


def test_seed_midi(trained_run, tune_folder, tmp_path, capsys):
    from musicgen.seed import seed_tokens

    tune = tune_folder / "tune 01.mid"
    generate.main(["--checkpoint", str(trained_run), "--seed-midi", str(tune), "--seed-events", "5", "--length", "4",
                   "--output", str(tmp_path / "a.mid")])
    assert "(5 from the seed)" in capsys.readouterr().out
    run = registry.load_run(trained_run)
    seed_events = run.vocabulary.decode(seed_tokens(run, music_file=tune, events=5).tokens)
    seed_notes = [tuple(row) for row in events_to_notes(seed_events)[:, :3].tolist()]
    seed_end = sum(event.shift for event in seed_events)
    assert seed_events[0].meter == (4, 4), "the file's meter comes first, and is not counted"
    assert len(seed_events) == 6 and len(seed_notes) >= 5
    tune_notes = written_notes(tune)
    assert set(seed_notes) == {(onset, min(duration, 32), pitch) for onset, duration, pitch in tune_notes
                               if onset < seed_end}, "the seed is the file's opening, read with the run's recipe"
    written = written_notes(tmp_path / "a.mid")
    assert [note for note in written if note[0] < seed_end] == sorted(seed_notes), "the output opens with the seed"


def test_rerunning_an_interrupted_training_resumes_it(trained_run, processed, tmp_path):
    run = tmp_path / "lstm"
    shutil.copytree(trained_run, run)
    iterations_after_one_epoch = load_model(run / "last.keras").optimizer.iterations.numpy()
    messages = []
    config = resolve_config(registry.get("lstm"), overrides={**TINY_LSTM, "epochs": 2})
    run_config = training.train(registry.get("lstm"), config, processed, run, log=messages.append, verbose=0)
    assert any("resuming" in m and "after epoch 1" in m for m in messages)
    assert [row["epoch"] for row in run_config["progress"]["history"]] == [1, 2]
    resumed = load_model(run / "last.keras")
    assert resumed.optimizer.iterations.numpy() == 2 * iterations_after_one_epoch, "optimizer state carried over"
    # a third run has nothing left to do
    messages.clear()
    training.train(registry.get("lstm"), config, processed, run, log=messages.append, verbose=0)
    assert "has finished training" in messages[0]


def test_resuming_with_other_settings_or_data_is_refused(trained_run, processed, tmp_path):
    run = tmp_path / "lstm"
    shutil.copytree(trained_run, run)
    config = resolve_config(registry.get("lstm"), overrides={**TINY_LSTM, "units": 32, "epochs": 2})
    with pytest.raises(UserError, match="units 16 -> 32"):
        training.train(registry.get("lstm"), config, processed, run)
    run_config = json.loads((run / "run_config.json").read_text())
    run_config["vocabulary_hash"] = "0" * 16
    (run / "run_config.json").write_text(json.dumps(run_config))
    with pytest.raises(UserError, match="another vocabulary"):
        training.train(registry.get("lstm"), resolve_config(registry.get("lstm"), overrides={**TINY_LSTM, "epochs": 2}), processed, run)


def test_mixed_precision_trains_in_float16_and_leaves_the_policy_as_it_was(processed, tmp_path):
    messages = []
    config = resolve_config(registry.get("lstm"), overrides=TINY_LSTM)
    run_config = training.train(registry.get("lstm"), config, processed, tmp_path / "run", mixed_precision=True,
                                log=messages.append, verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert np.isfinite(run_config["progress"]["best_val_loss"])
    model = load_model(tmp_path / "run" / "best.keras", compile=False)
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert recurrent and all(layer.compute_dtype == "float16" for layer in recurrent)
    assert model.output.dtype == "float32", "the logits (and the loss) stay in float32"
    assert any("mixed precision helps on GPUs" in message for message in messages)
    with pytest.raises(UserError, match="trained with mixed precision"):
        training.train(registry.get("lstm"), {**config, "epochs": 2}, processed, tmp_path / "run", log=messages.append)


def test_mixed_precision_is_refused_for_models_that_train_in_float32_only(processed, tmp_path):
    with pytest.raises(UserError, match="mixed precision is not available for the gan model"):
        train.main(["--model", "gan", "--data", str(processed), "--checkpoints", str(tmp_path), "--mixed-precision"])
    assert not (tmp_path / "gan").exists()


def test_generate_refuses_a_vocabulary_that_does_not_match_the_weights(trained_run, tmp_path):
    run = tmp_path / "lstm"
    shutil.copytree(trained_run, run)
    vocabulary = json.loads((run / "vocab.json").read_text())
    vocabulary["tokens"].append("C4.D4.E4.F4")
    vocabulary.pop("hash")
    (run / "vocab.json").write_text(json.dumps(vocabulary))
    with pytest.raises(UserError, match="does not match"):
        registry.load_run(run)


def test_config_file_and_flags_layer_over_the_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"units": 64, "dropout": 0.5}))
    config = resolve_config(registry.get("gru"), path, {"units": "32"})
    assert config["units"] == 32 and config["dropout"] == 0.5 and config["layers"] == 2
    path.write_text(json.dumps({"unitz": 64}))
    with pytest.raises(UserError, match="'unitz'.*not a setting"):
        resolve_config(registry.get("gru"), path)
    with pytest.raises(UserError, match="must be int"):
        resolve_config(registry.get("gru"), None, {"units": "many"})


@pytest.mark.parametrize("argv, message", [
    (["--model", "wavenet"], "model must be one of"),
    (["--data", "/no/such/dir"], "run `python preprocess.py` first"),
    (["--epochs", "0"], "epochs must be at least 1"),
    (["--set", "dropout"], "KEY=VALUE"),
])
def test_train_argument_errors(argv, message):
    with pytest.raises(UserError, match=message):
        train.main(argv)


@pytest.mark.parametrize("argv, message", [
    (["--length", "0"], "--length"),
    (["--temperature", "-1"], "temperature must be positive"),
    (["--top-p", "1.5"], "top-p must be in"),
    (["--program", "128"], "--program"),
    (["--checkpoint", "/no/such/run"], "does not exist"),
    (["--seed", "C4", "--seed-midi", "x.mid"], "give one of --seed, --seed-midi"),
    (["--strategy", "beam", "--num-outputs", "5", "--beam-width", "4"], "at most beam width"),
])
def test_generate_argument_errors(argv, message, trained_run):
    if "--checkpoint" not in argv:
        argv = argv + ["--checkpoint", str(trained_run)]
    with pytest.raises(UserError, match=message):
        generate.main(argv)


def test_generated_tokens_decode_to_the_written_notes(trained_run):
    from models import registry
    from musicgen import sampling
    from musicgen.seed import parse_seed

    run = registry.load_run(trained_run)
    vocabulary = run.vocabulary
    model = run.model
    seed = parse_seed("D4 F#4 A4", vocabulary)
    new = sampling.get("sample", seed=0).generate(registry.get("lstm").decoder(model), vocabulary, seed[None], 10)
    events = vocabulary.decode(np.concatenate([seed, new[0]]))
    assert len(events) == 13
    assert events_to_notes(events)[:3, :3].tolist() == [[0, 4, 62], [4, 4, 66], [8, 4, 69]]


@pytest.fixture(scope="module")
def melody_only_run(tune_folder, tmp_path_factory):
    """An n-gram trained on the tiny corpus preprocessed with --melody-only (counted in a second)."""
    from conftest import tiny_settings

    import preprocess

    folder = tmp_path_factory.mktemp("melody")
    preprocess.main(["--input", str(tune_folder), "--output", str(folder / "data"), "--melody-only"])
    training.train(registry.get("ngram"), tiny_settings("ngram"), folder / "data", folder / "ngram", log=lambda *_: None)
    return registry.load_run(folder / "ngram")


def test_every_seed_of_a_melody_only_run_is_a_melody(melody_only_run, tune_folder, tmp_path):
    from musicgen.seed import seed_tokens

    assert melody_only_run.recipe.melody_only, "the run keeps the recipe its data was made with"
    chordal = tune_folder / "tune 01.mid"  # a melody over block chords
    for tokens, *_ in (seed_tokens(melody_only_run, music_file=chordal, events=12),
                      seed_tokens(melody_only_run, text="C4.E4.G4:2 D4 F3.A3.C4")):
        events = [event for event in melody_only_run.vocabulary.decode(tokens) if event.meter is None]
        assert events and all(len(event.pitches) == 1 and event.shift > 0 for event in events), events
    assert [e.pitches for e in melody_only_run.vocabulary.decode(seed_tokens(melody_only_run, text="C4.E4.G4")[0])] \
        == [(67,)], "a written chord becomes its top note"

    generate.main(["--checkpoint", str(melody_only_run.path), "--seed-midi", str(chordal), "--seed-events", "12",
                   "--length", "1", "--output", str(tmp_path / "seeded.mid")])
    onsets = sorted(note.start for note in pretty_midi.PrettyMIDI(str(tmp_path / "seeded.mid")).instruments[0].notes)
    assert len(onsets[:12]) == len(set(onsets[:12])), "no two seed notes start together"


def test_each_epoch_says_how_long_the_run_has_left_at_most():
    from musicgen.callbacks import TimeLeft

    run_config = {"config": {"epochs": 10, "patience": 3},
                  "progress": {"epochs_without_improvement": 1, "stopped_early": False}}
    lines = []
    callback = TimeLeft(run_config, lines.append)
    callback.on_train_begin()
    callback.on_epoch_end(3)  # a resumed run: its fourth epoch, the first of this session
    assert lines[0].startswith("epoch 4/10 done") and "left (6 epochs)" in lines[0]
    assert "within 2 epochs without improvement" in lines[0]
    run_config["progress"]["stopped_early"] = True
    callback.on_epoch_end(4)
    assert "left" not in lines[1], "a run that stopped has nothing left"
