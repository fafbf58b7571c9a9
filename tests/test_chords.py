"""Chord symbols: read from ABC, inferred from MIDI, kept as tokens, and given to generate music over."""

import json

import numpy as np
import pretty_midi
import pytest
from conftest import UniformDecoder, shared, train_tiny_lstm, write_tune

import generate
import preprocess
from musicgen import sampling
from musicgen.chords import ChordSymbols, Progression, infer_symbols, parse_symbol, symbol_name
from musicgen.dataset import load_processed
from musicgen.encoding import EncodingSettings, event_symbols
from musicgen.errors import UserError
from musicgen.harmonize import ChordConstraint, chord_tone_share
from musicgen.meters import Bars
from musicgen.vocabulary import Vocabulary


def symbols_of(*rows):
    """ChordSymbols of (onset, duration, chord name) rows."""
    onsets, durations, names = zip(*rows)
    return ChordSymbols(onsets, durations, [parse_symbol(name) for name in names])


def rows_of(symbols):
    return [(onset, duration, symbol_name(code)) for onset, duration, code in symbols]


TUNE = """X:1
T:Over chords
M:4/4
L:1/8
K:G
"G"GABc dBGB|"D7"A2FA DFAc|"Em"B2GB "C"cBAG|"D7"FGAF "G"G4|
"""


@pytest.mark.parametrize("text, name", [("G", "G"), ("D7", "D7"), ("Am/C", "Am"), ("Bbmaj7", "Bbmaj7"), ("A#7", "Bb7"),
                                        ("F#m7b5", "F#m7b5"), ("G9", "G7"), ("C6", "C"), ("E-", "Em"), ("Edim7", "Edim"),
                                        ("G7b9", "G7"), ("Dsus4", "Dsus4"), ("C+", "Caug"), ("G7/b", "G7")])
def test_chord_symbols_are_read_as_lead_sheets_mean_them(text, name):
    assert symbol_name(parse_symbol(text)) == name


@pytest.mark.parametrize("text", ["H7", "Gxyz", "", "7", "Verse"])
def test_a_chord_symbol_that_cannot_be_read_is_refused(text):
    with pytest.raises(ValueError, match="cannot read the chord symbol"):
        parse_symbol(text)


def test_inference_names_the_chord_of_each_half_bar():
    # C major, then F major with A in the bass (still F: most of the sound), then G7, in 4/4 half bars.
    rows = [(0, 2, p) for p in (48, 52, 55, 60)] + [(2, 2, p) for p in (45, 53, 60, 65)] + \
           [(4, 2, p) for p in (43, 59, 62, 65)] + [(6, 2, p) for p in (43, 59, 62, 65)]
    onsets, durations, pitches = (np.array(column, dtype=float) for column in zip(*rows))
    found_onsets, codes = infer_symbols(onsets, durations, pitches, "4/4")
    assert [(onset, symbol_name(code)) for onset, code in zip(found_onsets.tolist(), codes.tolist())] == \
        [(0, "C"), (2, "F"), (4, "G7")]


def test_symbols_survive_encoding_and_come_first_at_their_onset():
    vocabulary = Vocabulary.build(EncodingSettings(), {}, symbols=[parse_symbol("G"), parse_symbol("D7")])
    notes = np.array([(0, 4, 67, 80, 0), (4, 4, 69, 80, 0), (8, 4, 66, 80, 0), (8, 4, 62, 80, 0)])
    symbols = symbols_of((0, 8, "G"), (8, 4, "D7"))
    ids = vocabulary.encode_notes(notes, symbols=symbols)[0]
    tokens = [vocabulary.tokens[i] for i in ids]
    assert tokens[:4] == ["<start>", "harmony:G", "dur:8", "shift:0"]
    assert tokens[tokens.index("harmony:D7") - 1] == "shift:4", "the symbol comes before the notes of its onset"
    assert rows_of(event_symbols(vocabulary.decode(ids))) == [(0, 8, "G"), (8, 4, "D7")]
    assert np.array_equal(vocabulary.allowed_next([ids[0]])[0], vocabulary.allowed_next([ids[3]])[0])


def test_a_vocabulary_token_must_spell_its_symbol_as_the_vocabulary_does():
    tokens = Vocabulary.build(EncodingSettings(), {}, symbols=[parse_symbol("Bb7")]).tokens
    with pytest.raises(UserError, match="should be spelled 'harmony:Bb7'"):
        Vocabulary([t.replace("harmony:Bb7", "harmony:A#7") for t in tokens], EncodingSettings())


def test_abc_chord_symbols_become_tokens_and_transpose_with_the_music(tmp_path):
    folder = tmp_path / "tunes"
    folder.mkdir()
    for index in range(4):
        (folder / f"tune{index}.abc").write_text(TUNE.replace("X:1", f"X:{index + 1}"))
    output = tmp_path / "data"
    preprocess.main(["--input", str(folder), "--output", str(output), "--workers", "1", "--transpose", "0..2",
                     "--val-fraction", "0", "--test-fraction", "0"])
    vocabulary, splits = load_processed(output)
    names = {symbol_name(code) for code in vocabulary.symbols}
    assert {"G", "D7", "Em", "C", "A", "E7", "F#m", "D"} <= names, "the written symbols and their transpositions"
    train = splits["train"]
    first = next(i for i, source in enumerate(train.sources) if "transposed" not in str(source))
    events = vocabulary.decode(train.tokens[train.offsets[first]:train.offsets[first + 1]])
    assert event_symbols(events).names() == ["G", "D7", "Em", "C", "D7", "G"]
    assert event_symbols(events).onsets.tolist() == [0, 16, 32, 40, 48, 56]  # 4 steps a quarter, 4/4 bars
    manifest = (output / "manifest.csv").read_text()
    assert "chord_symbols" in manifest.splitlines()[0]


def test_midi_chords_are_inferred_only_when_asked(tmp_path):
    folder = tmp_path / "tunes"
    for index in range(3):
        write_tune(folder / f"tune {index}.mid", seed=index)  # block chords C F G C, two a bar
    inferred, plain = tmp_path / "inferred", tmp_path / "plain"
    preprocess.main(["--input", str(folder), "--output", str(inferred), "--workers", "1", "--melody-only",
                     "--chord-symbols", "infer"])
    preprocess.main(["--input", str(folder), "--output", str(plain), "--workers", "1", "--melody-only"])
    vocabulary, splits = load_processed(inferred)
    assert {"C", "F", "G"} <= {symbol_name(code) for code in vocabulary.symbols} <= {"C", "F", "G", "G7"}
    train = splits["train"]
    symbols = event_symbols(vocabulary.decode(train.tokens[train.offsets[0]:train.offsets[1]]))
    sounding = [symbols.codes[symbols.onsets <= bar * 16][-1] for bar in range(8)]
    assert [symbol_name(code)[0] for code in sounding] == list("CFGCCFGC"), "a melody F may make G a G7"
    assert rows_of(symbols)[0][:2] == (0, 16) and symbols.onsets[1] == 16
    assert not load_processed(plain)[0].symbols
    recipe = json.loads((inferred / "shards.json").read_text())["recipe"]
    assert recipe["chord_symbols"] == "infer"


def test_nottingham_chord_tracks_give_plain_folk_harmony(tmp_path):
    from musicgen import readers
    from musicgen.encoding import EncodingSettings as Settings
    from musicgen.recipe import Recipe

    files = sorted(shared("nottingham").rglob("*.mid"))[:20]
    recipe = Recipe(melody_only=True, chord_symbols="infer")
    names, shares = set(), []
    for path in files:
        piece = readers.read_midi(path, readers.TrackSelection())
        grid = recipe.grid_notes(piece, Settings())
        names |= set(grid.chord_symbols.names())
        shares.append(chord_tone_share(grid.notes, grid.chord_symbols, 4, piece.time_signature))
    assert {"G", "D", "D7", "C"} <= names
    assert np.mean(shares) > 0.6, "a folk melody's strong beats mostly sound its chord"


def test_the_given_chords_are_kept_and_the_music_ends_with_them():
    codes = [parse_symbol(name) for name in ("C", "F", "G7")]
    vocabulary = Vocabulary.build(EncodingSettings(), {}, symbols=codes)
    given = symbols_of((0, 16, "C"), (16, 8, "F"), (24, 8, "G7"), (32, 16, "C"))
    constraint = ChordConstraint(vocabulary, given, rows=3)
    generated = sampling.get("sample", seed=4).generate(UniformDecoder(len(vocabulary)), vocabulary,
                                                        np.full((3, 1), vocabulary.start_id), 400,
                                                        constraint=constraint)
    assert constraint.done.all()
    for row in generated:
        events = vocabulary.decode(row)
        assert rows_of(event_symbols(events)) == rows_of(given), "each chord where it was given, and no other"
        assert sum(event.shift for event in events) == 48


def test_chords_a_model_cannot_take_are_refused():
    with pytest.raises(UserError, match="trained without chord symbols"):
        ChordConstraint(Vocabulary.build(EncodingSettings(), {}), symbols_of((0, 4, "C")), rows=1)
    vocabulary = Vocabulary.build(EncodingSettings(), {}, symbols=[parse_symbol("C")])
    with pytest.raises(UserError, match="never saw the chord Bbmaj7 in training; it knows: C"):
        ChordConstraint(vocabulary, symbols_of((0, 4, "Bbmaj7")), rows=1)


def test_a_progression_is_spread_over_bars_and_repeated():
    symbols = Progression.parse("G D7 | C", 4, "3/4").on_grid(steps_per_quarter=2)
    assert symbols.names() == ["G", "D7", "C", "G", "D7", "C"]
    assert symbols.onsets.tolist() == [0, 3, 6, 12, 15, 18] and symbols.durations.tolist() == [3, 3, 6, 3, 3, 6]


def test_a_symbol_sounding_across_a_cut_is_named_again_after_it():
    symbols = symbols_of((0, 16, "C"), (16, 32, "F"), (48, 16, "G"))
    assert rows_of(symbols.cut_at(32)) == [(0, 16, "C"), (16, 16, "F"), (32, 16, "F"), (48, 16, "G")]
    assert rows_of(symbols.cut_at(48)) == rows_of(symbols), "a symbol starting at the cut is left as it is"
    assert rows_of(symbols.transposed(2).where([True, False, True])) == [(0, 16, "D"), (48, 16, "A")]


def test_chord_tone_share_counts_strong_beats_on_the_chord():
    symbols = symbols_of((0, 16, "C"), (16, 16, "G"))
    on_chord = np.array([(0, 8, 64, 80, 0), (8, 8, 67, 80, 0), (16, 8, 62, 80, 0), (24, 8, 71, 80, 0)])
    assert chord_tone_share(on_chord, symbols, 4, "4/4") == 1.0
    off = on_chord.copy()
    off[[0, 2], 2] = [65, 69]  # F over C, A over G: half the strong beats
    assert chord_tone_share(off, symbols, 4, "4/4") == 0.5


@pytest.fixture(scope="module")
def chord_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chord-tunes")
    for index in range(6):
        write_tune(folder / f"tune {index}.mid", seed=index)
    data = tmp_path_factory.mktemp("chord-data")
    preprocess.main(["--input", str(folder), "--output", str(data), "--workers", "1", "--melody-only",
                     "--chord-symbols", "infer"])
    return train_tiny_lstm(data, tmp_path_factory.mktemp("chord-checkpoints"))


def test_generate_writes_a_melody_over_the_chords_and_plays_them(chord_run, tmp_path, capsys):
    output = tmp_path / "over-chords.mid"
    generate.main(["--checkpoint", str(chord_run), "--chords", "C | F G", "--bars", "4", "--output", str(output),
                   "--random-seed", "3"])
    printed = capsys.readouterr().out
    assert "music over the chords C F G C F G" in printed and "played as chords under the melody" in printed
    notes = [n for i in pretty_midi.PrettyMIDI(str(output)).instruments for n in i.notes]
    assert {53, 57, 60} <= {n.pitch for n in notes if abs(n.start - 2.0) < 1e-3}, "bar 2 opens on F, from F3"
    assert max(n.end for n in notes) == pytest.approx(8.0), "four bars of 4/4 at 120 bpm"


@pytest.mark.parametrize("argv, message", [
    (["--chords", "G Hm7"], "cannot read the chord symbol 'Hm7'"),
    (["--chords", "G Cxyz7"], "unknown chord quality"),
    (["--chords", "C F", "--bars", "2-3"], "--bars is how many bars to write"),
    (["--chords", "C F", "--bars", "0"], "--bars must be in 1..256"),
    (["--chords", "C", "--meter", "5/3"], "--meter takes a time signature"),
    (["--chords", "C", "--seed", "C4"], "give one of"),
    (["--chords", "C", "--strategy", "beam"], "other than beam"),
    (["--chords", "Bbmaj7"], "never saw the chord Bbmaj7"),
])
def test_chords_argument_errors(chord_run, tmp_path, argv, message):
    with pytest.raises(UserError, match=message):
        generate.main(["--checkpoint", str(chord_run), "--output", str(tmp_path / "x.mid"), *argv])
    assert not (tmp_path / "x.mid").exists()


def test_an_unreadable_chord_is_one_line_and_exit_2(chord_run, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "generate.py", "--checkpoint", str(chord_run), "--chords", "G Q7",
                             "--output", str(tmp_path / "x.mid")], capture_output=True, text=True,
                            cwd=generate.__file__.rsplit("/", 1)[0])
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --chords: cannot read the chord symbol 'Q7'"


def test_a_seed_file_and_a_piece_to_fill_in_keep_their_chord_symbols(chord_run, tmp_path):
    from models import registry
    from musicgen.infilling import split_at
    from musicgen.seed import seed_tokens

    tune = write_tune(tmp_path / "seed.mid", seed=7)  # block chords C F G C under the melody
    run = registry.load_run(chord_run)
    seed = seed_tokens(run, None, tune, 12)
    assert [run.vocabulary.tokens[i] for i in seed.tokens[1:4]] == ["meter:4/4", "shift:0", "harmony:C"], \
        "the seed opens on its meter, then its chord"
    vocabulary = Vocabulary.build(EncodingSettings(), {}, symbols=[parse_symbol(n) for n in ("C", "F", "G")])
    notes = np.array([(step, 4, 72, 80, 0) for step in range(0, 64, 4)])
    symbols = symbols_of((0, 16, "C"), (16, 16, "F"), (32, 16, "G"), (48, 16, "C"))
    gap = split_at(notes, vocabulary, 2, 3, Bars.regular(16), symbols)
    assert event_symbols(gap.before).names() == ["C"]
    assert event_symbols(gap.middle).names() == ["F", "G"]
    assert event_symbols(gap.after).names() == ["C"]
