"""Reading music files as a user's collection holds them: the pedal and the meter of MIDI with either reader,
ABC files without titles, numbers or tunes, in other encodings, with a shared header; MusicXML ties, drums,
grace notes, tempos and broken files; the reasons written for what cannot be read."""

import os
import subprocess
import sys

import hostile
import mido
import numpy as np
import pytest
from conftest import ROOT, only_the_fallback_reader, shared

from musicgen import readers
from musicgen.chords import symbol_name
from musicgen.midi import BPM_RANGE

READERS = ["symusic", "pretty_midi"]
TICKS = 480  # per quarter note


# --- MIDI -------------------------------------------------------------------------------------------------------

def midi_file(path, events, meta=()):
    """A one-track MIDI file: `events` are (tick, mido message) in the order the file holds them."""
    track = mido.MidiTrack(meta)
    last = 0
    for tick, message in events:
        track.append(message.copy(time=tick - last))
        last = tick
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    midi.tracks.append(track)
    midi.save(str(path))
    return path


def key(tick, pitch, down=True):
    kind, velocity = ("note_on", 80) if down else ("note_off", 0)
    return tick, mido.Message(kind, note=pitch, velocity=velocity)


def pedal(tick, value):
    return tick, mido.Message("control_change", control=64, value=value)


def read_midi(path, reader):
    """readers.read_midi with the default selection (the pedal applied), by symusic or by the pretty_midi fallback."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        if reader == "pretty_midi":
            only_the_fallback_reader(monkeypatch)
        return readers.read_midi(path, readers.TrackSelection())


def notes_of(piece):
    """(onset, end, pitch) in quarter notes, sorted."""
    rows = zip(piece.onsets.tolist(), (piece.onsets + piece.durations).tolist(), piece.pitches.tolist())
    return sorted((round(onset, 3), round(end, 3), int(pitch)) for onset, end, pitch in rows)


@pytest.mark.parametrize("reader", READERS)
def test_a_pedal_at_value_64_is_down_and_at_63_up_for_both_readers(tmp_path, reader):
    path = midi_file(tmp_path / "half-pedal.mid", [pedal(0, 64), key(0, 60), key(240, 60, down=False),
                                                   pedal(960, 63), key(1200, 62), key(1440, 62, down=False)])
    assert notes_of(read_midi(path, reader)) == [(0.0, 2.0, 60), (2.5, 3.0, 62)], \
        "C4 is held by the pedal (64 is down, as General MIDI has it) until it comes up at 63"


@pytest.mark.parametrize("reader", READERS)
def test_a_pedal_pressed_and_released_at_one_tick_holds_nothing_after_it(tmp_path, reader):
    # A quantized file taps the pedal: down then up at tick 480, in that order; the next press is at 1440.
    path = midi_file(tmp_path / "tap.mid", [key(0, 60), key(240, 60, down=False), pedal(480, 127), pedal(480, 0),
                                            key(480, 64), key(720, 64, down=False), pedal(1440, 127),
                                            pedal(1920, 0)])
    assert notes_of(read_midi(path, reader)) == [(0.0, 0.5, 60), (1.0, 1.5, 64)], \
        "E4 is released with the pedal up, so it is not held until the release at 1920"
    starts, ends = readers.pedal_intervals([(480, True), (480, False), (1440, True), (1920, False)])
    assert starts.tolist() == [480, 1440] and ends.tolist() == [480, 1920], "changes at one tick keep file order"


@pytest.mark.parametrize("reader", READERS)
def test_both_readers_give_the_first_time_signature_and_4_4_for_a_file_without_one(tmp_path, reader):
    signatures = [mido.MetaMessage("time_signature", numerator=3, denominator=4),
                  mido.MetaMessage("time_signature", numerator=6, denominator=8, time=TICKS * 6)]
    waltz = midi_file(tmp_path / "waltz.mid", [key(0, 60), key(TICKS * 8, 60, down=False)], meta=signatures)
    plain = midi_file(tmp_path / "plain.mid", [key(0, 60), key(TICKS, 60, down=False)])
    assert read_midi(waltz, reader).time_signature == "3/4"
    assert read_midi(plain, reader).time_signature == "4/4"


# --- ABC --------------------------------------------------------------------------------------------------------

def only_pieces(results):
    assert all(isinstance(result, readers.RawPiece) for result in results), results
    return results


def test_an_abc_file_without_an_x_line_is_one_tune_named_tune_1(tmp_path):
    path = tmp_path / "no number.abc"
    path.write_text("T:No number\nM:3/4\nL:1/4\nK:G\nGAB|cde|\n")
    [piece] = only_pieces(readers.read_file(path, readers.TrackSelection()))
    assert piece.source == f"{path}#tune 1"
    assert piece.pitches.tolist() == [67, 69, 71, 72, 74, 76] and piece.time_signature == "3/4"


@pytest.mark.parametrize("text", ["", "\n  \n\t\n"])
def test_a_blank_abc_file_is_skipped_as_having_no_tunes(tmp_path, text):
    path = tmp_path / "blank.abc"
    path.write_text(text)
    assert readers.read_file(path, readers.TrackSelection()) == [
        readers.ReadFailure(str(path), "skipped", "no ABC tunes in file")]


def test_an_abc_tune_without_a_title_is_labelled_by_its_x_line(tmp_path):
    text = "X:7\nM:3/4\nL:1/4\nK:C\nCDE|\n\nX:8\nT:  Titled \nM:3/4\nL:1/4\nK:C\nEDC|\n"
    assert [label for label, _ in readers.split_abc_tunes(text)] == ["X:7", "X:8 Titled"]
    path = tmp_path / "untitled.abc"
    path.write_text(text)
    pieces = only_pieces(readers.read_abc_file(path))
    assert [piece.source for piece in pieces] == [f"{path}#X:7", f"{path}#X:8 Titled"]
    assert [piece.pitches.tolist() for piece in pieces] == [[60, 62, 64], [64, 62, 60]]


def test_the_file_header_before_the_first_tune_applies_to_every_tune(tmp_path):
    # ABC's file header: fields before the first X: hold for all tunes (here 3/4, a quarter per letter, 90 bpm).
    path = tmp_path / "header.abc"
    path.write_text("%abc-2.1\nM:3/4\nL:1/4\nQ:1/4=90\n\nX:1\nT:One\nK:C\nCDE|\n\nX:2\nT:Two\nK:G\nGAB|d3|\n")
    pieces = only_pieces(readers.read_abc_file(path))
    assert [(piece.time_signature, piece.tempo_bpm) for piece in pieces] == [("3/4", 90.0), ("3/4", 90.0)]
    assert [piece.durations.tolist() for piece in pieces] == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 3.0]]


def test_remarks_and_macros_in_the_file_header_do_not_spoil_the_tunes(tmp_path):
    path = tmp_path / "remarks.abc"
    path.write_text("r:collected in Clare, 1950\nm:~n2=(3o/n/m/\nM:3/4\nL:1/4\n\n"
                    "X:1\nT:One\nK:C\nCDE|\n\nX:2\nT:Two\nK:G\nGAB|\n")
    pieces = only_pieces(readers.read_abc_file(path))
    assert [piece.pitches.tolist() for piece in pieces] == [[60, 62, 64], [67, 69, 71]]
    assert [piece.time_signature for piece in pieces] == ["3/4", "3/4"], "the header's fields still hold"


def test_an_abc_file_in_latin_1_is_read_with_the_odd_bytes_replaced(tmp_path):
    path = tmp_path / "latin-1.abc"
    path.write_bytes("X:1\nT:Café\nM:3/4\nL:1/4\nK:C\nCDE|\n".encode("latin-1"))
    [piece] = only_pieces(readers.read_file(path, readers.TrackSelection()))
    assert piece.source == f"{path}#X:1 Caf\ufffd" and piece.pitches.tolist() == [60, 62, 64]


def test_an_abc_file_is_read_as_utf8_whatever_the_locale_says(tmp_path):
    path = tmp_path / "utf-8.abc"
    path.write_text("X:1\nT:Café Noël\nM:3/4\nL:1/4\nK:C\nCDE|\n", encoding="utf-8")
    # A machine whose locale encoding is ASCII (as cp1252 is not UTF-8 on Windows): no UTF-8 mode, no coercion.
    environment = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    script = ("import sys; from pathlib import Path; from musicgen import readers; "
              "print(ascii(readers.read_abc_file(Path(sys.argv[1]))[0].source))")
    result = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, env=environment,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ascii(f"{path}#X:1 Café Noël")


def test_abc_grace_notes_are_left_out(tmp_path):
    path = tmp_path / "grace.abc"
    path.write_text("X:1\nT:Grace\nM:4/4\nL:1/4\nK:C\n{g}AB{ag}cd|\n")
    [piece] = only_pieces(readers.read_abc_file(path))
    assert notes_of(piece) == [(0.0, 1.0, 69), (1.0, 2.0, 71), (2.0, 3.0, 72), (3.0, 4.0, 74)]


@pytest.mark.parametrize("name, meter", [("a_morning_in_summer.abc", "6/8"), ("flowers_of_edinburgh.abc", "2/4"),
                                         ("the_wheels_of_the_world.abc", "2/2")])
def test_real_abc_tunes_keep_their_meter(name, meter):
    [piece] = only_pieces(readers.read_abc_file(shared(f"abc/{name}")))
    assert piece.time_signature == meter


def test_a_tempo_in_dotted_quarters_is_read_in_quarter_notes_per_minute(tmp_path):
    path = tmp_path / "jig.abc"
    path.write_text("X:1\nT:Jig\nM:6/8\nL:1/8\nQ:3/8=60\nK:D\nABc def|\n")
    [piece] = only_pieces(readers.read_abc_file(path))
    assert (piece.tempo_bpm, piece.time_signature) == (90.0, "6/8")
    assert piece.tempo_changes.tolist() == [[0.0, 90.0]]


def test_a_chord_symbol_the_reader_cannot_name_is_passed_over_and_the_rest_kept(tmp_path):
    path = tmp_path / "no chord.abc"
    path.write_text('X:1\nT:N.C.\nM:4/4\nL:1/4\nK:G\n"G"G "N.C."A "D7"F "G"G|"Cpedal"c "Em"B A2|\n')
    [piece] = only_pieces(readers.read_abc_file(path))
    assert piece.chord_onsets.tolist() == [0.0, 2.0, 3.0, 5.0]
    assert [symbol_name(code) for code in piece.chord_codes] == ["G", "D7", "G", "Em"]


# --- MusicXML ---------------------------------------------------------------------------------------------------

def musicxml(*parts, meter="3/4", tempo=None):
    """A partwise MusicXML score, one quarter note a division: each part a list of measures, each a string of
    <note> elements (note(), drum(), rest()); the first measure states the meter and tempo unless they are None."""
    names = "".join(f'<score-part id="P{i}"><part-name>P{i}</part-name></score-part>' for i in range(len(parts)))
    body = ""
    for i, measures in enumerate(parts):
        body += f'<part id="P{i}">'
        for number, notes in enumerate(measures, start=1):
            opening = ""
            if number == 1:
                beats, beat_type = meter.split("/") if meter else (None, None)
                time = f"<time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time>" if meter else ""
                opening = f"<attributes><divisions>1</divisions>{time}</attributes>"
                if tempo is not None:
                    opening += (f"<direction><direction-type><metronome><beat-unit>quarter</beat-unit>"
                                f"<per-minute>{tempo}</per-minute></metronome></direction-type></direction>")
            body += f'<measure number="{number}">{opening}{notes}</measure>'
        body += "</part>"
    return (f'<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><part-list>{names}</part-list>'
            f"{body}</score-partwise>")


def note(name, quarters=1, tie=None, grace=False):
    """A pitched note ('C4'); tie: 'start', 'stop' or 'stop,start'; a grace note has no duration."""
    ties = tie.split(",") if tie else []
    return ("<note>" + ("<grace/>" if grace else "")
            + f"<pitch><step>{name[0]}</step><octave>{name[1]}</octave></pitch>"
            + ("" if grace else f"<duration>{quarters}</duration>")
            + "".join(f'<tie type="{kind}"/>' for kind in ties)
            + ("<notations>" + "".join(f'<tied type="{kind}"/>' for kind in ties) + "</notations>" if ties else "")
            + "</note>")


def drum(name, quarters=1, chord=False):
    """An unpitched percussion note, drawn on the staff at `name`; chord: struck with the note before it."""
    return (f'<note>{"<chord/>" if chord else ""}<unpitched><display-step>{name[0]}</display-step>'
            f"<display-octave>{name[1]}</display-octave></unpitched><duration>{quarters}</duration></note>")


def rest(quarters=1):
    return f"<note><rest/><duration>{quarters}</duration></note>"


def read_score(tmp_path, text, name="score.musicxml"):
    path = tmp_path / name
    path.write_text(text)
    [result] = readers.read_file(path, readers.TrackSelection())
    return result


@pytest.mark.parametrize("bpm, read_as", [(BPM_RANGE[0] - 1, 120.0), (BPM_RANGE[0], BPM_RANGE[0]), (90, 90.0),
                                          (BPM_RANGE[1], BPM_RANGE[1]), (BPM_RANGE[1] + 1, 120.0)])
def test_a_score_tempo_is_kept_within_the_tempo_range_and_120_bpm_outside_it(tmp_path, bpm, read_as):
    piece = read_score(tmp_path, musicxml([note("C4") + note("D4") + note("E4")], tempo=bpm))
    assert piece.tempo_bpm == read_as and piece.tempo_changes.tolist() == [[0.0, read_as]]


def test_a_score_without_a_meter_is_read_in_4_4_and_one_with_a_meter_in_it(tmp_path):
    notes = note("C4") + note("D4") + note("E4")
    assert read_score(tmp_path, musicxml([notes], meter=None)).time_signature == "4/4"
    assert read_score(tmp_path, musicxml([notes], meter="3/4")).time_signature == "3/4"


def test_score_pitches_are_integer_midi_numbers_as_midi_files_give_them(tmp_path):
    piece = read_score(tmp_path, musicxml([note("C4") + note("D4") + note("E4")]))
    assert piece.pitches.tolist() == [60, 62, 64] and piece.pitches.dtype == np.int64


def test_drums_in_a_score_are_left_out_struck_alone_or_together(tmp_path):
    notes = note("C4") + drum("E4") + drum("F5") + drum("C5", chord=True)
    piece = read_score(tmp_path, musicxml([notes + rest(), note("E4") + rest(3)], meter="4/4"))
    assert notes_of(piece) == [(0.0, 1.0, 60), (4.0, 5.0, 64)]


def test_score_grace_notes_are_left_out(tmp_path):
    piece = read_score(tmp_path, musicxml([note("G4", grace=True) + note("C4") + note("D4") + note("E4")]))
    assert notes_of(piece) == [(0.0, 1.0, 60), (1.0, 2.0, 62), (2.0, 3.0, 64)]


@pytest.mark.parametrize("measures, expected", [
    # a tie that starts in the bar before an excerpt begins: a plain note
    ([note("C4", tie="stop") + note("D4") + note("E4")], [(0.0, 1.0, 60), (1.0, 2.0, 62), (2.0, 3.0, 64)]),
    # a tie to a note a rest away joins nothing
    ([note("D4") + note("C4", tie="start") + rest(), note("C4", tie="stop") + rest(2)],
     [(0.0, 1.0, 62), (1.0, 2.0, 60), (3.0, 4.0, 60)]),
    # a tie never ended: the note as written
    ([note("D4") + note("E4") + note("C4", tie="start")], [(0.0, 1.0, 62), (1.0, 2.0, 64), (2.0, 3.0, 60)]),
    # a tie over two bar lines: one note
    ([note("D4") + note("C4", 2, tie="start"), note("C4", 3, tie="stop,start"), note("C4", tie="stop") + rest(2)],
     [(0.0, 1.0, 62), (1.0, 7.0, 60)]),
], ids=["stop-without-start", "start-rest-stop", "start-without-stop", "over-two-bar-lines"])
def test_tied_notes_are_joined_only_where_one_ends_as_the_next_begins(tmp_path, measures, expected):
    assert notes_of(read_score(tmp_path, musicxml(measures))) == expected


def test_a_note_tied_in_one_part_is_not_cut_by_the_same_key_struck_in_another(tmp_path):
    # Piano: the right hand strikes C4 on the second downbeat while the left hand holds its C4 over the bar line.
    right = [note("E4") + note("F4") + note("G4"), note("C4", 3)]
    left = [note("C4", 3, tie="start"), note("C4", tie="stop") + rest(2)]
    assert notes_of(read_score(tmp_path, musicxml(right, left))) == [
        (0.0, 1.0, 64), (0.0, 4.0, 60), (1.0, 2.0, 65), (2.0, 3.0, 67), (3.0, 6.0, 60)]


def test_a_score_of_rests_is_skipped_as_having_no_notes(tmp_path):
    path = tmp_path / "silence.musicxml"
    path.write_text(musicxml([rest(3), rest(3)]))
    assert readers.read_file(path, readers.TrackSelection()) == [readers.ReadFailure(str(path), "skipped", "no notes")]


def test_a_broken_score_fails_with_the_parsers_reason(tmp_path):
    path = tmp_path / "cut off.musicxml"
    path.write_text(hostile.TRUNCATED_MUSICXML)  # ends inside the second note, at line 5, column 27
    assert readers.read_file(path, readers.TrackSelection()) == [
        readers.ReadFailure(str(path), "failed", "music21 could not parse it (no element found: line 5, column 27)")]


@pytest.mark.parametrize("error, reason", [
    (ValueError("bad measure 3\n  in part 2\n  at offset 4.0"), "bad measure 3"),
    (ValueError("x" * 300), "x" * 200),
    (NotImplementedError(), "NotImplementedError"),
    (ValueError("   \n"), "ValueError"),
])
def test_a_parse_error_is_reported_by_its_first_line_cut_to_200_characters_or_else_its_kind(tmp_path, monkeypatch,
                                                                                            error, reason):
    import music21

    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(music21.converter, "parse", fail)
    path = tmp_path / "score.musicxml"
    path.write_text(musicxml([note("C4")]))
    assert readers.read_file(path, readers.TrackSelection()) == [
        readers.ReadFailure(str(path), "failed", f"music21 could not parse it ({reason})")]


# --- music21's corpus -------------------------------------------------------------------------------------------

def test_a_music21_corpus_gives_its_readable_files_sorted():
    from music21 import corpus

    files = readers.music21_corpus_files("bach")
    assert len(files) > 400 and files == sorted(files)
    assert {path.suffix.lower() for path in files} <= set(readers.SUPPORTED_SUFFIXES)
    assert corpus.getWork("bwv66.6") in files
