"""Every generated file is well-formed: no key struck twice at once, in MIDI, in MusicXML, and as MuseScore reads it."""

import os
import shutil
import subprocess
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from conftest import tiny_model

from models import registry
from musicgen import readers, sampling
from musicgen.dataset import load_processed
from musicgen.encoding import Event, event_notes, events_to_notes
from musicgen.midi import write_midi
from musicgen.notation import notatable, write_musicxml
from musicgen.notes import DURATION, ONSET, PITCH, PROGRAM, as_notes, normalise_notes

STEPS_PER_QUARTER = 4


def ill_formed_note_ons(path):
    """Note-ons of a key that is still sounding on its channel (no note-off between), read with mido."""
    sounding, problems = set(), []
    for track in mido.MidiFile(str(path)).tracks:
        time = 0
        for message in track:
            time += message.time
            if message.type == "note_on" and message.velocity > 0:
                key = (message.channel, message.note)
                if key in sounding:
                    problems.append((time, *key))
                sounding.add(key)
            elif message.type in ("note_off", "note_on"):
                sounding.discard((message.channel, message.note))
    return problems


def score_notes(path):
    """The notes of a MusicXML file as our reader sees them (ties joined), in grid steps, not normalised."""
    piece = readers.read_file(Path(path), readers.TrackSelection())[0]
    return np.round(np.stack([piece.onsets * STEPS_PER_QUARTER, piece.durations * STEPS_PER_QUARTER,
                              piece.pitches], axis=1)).astype(int)


def overlapping_keys(notes):
    """(onset, pitch) of every note that starts while another of its pitch on its instrument still sounds, or with it."""
    notes = sorted(map(tuple, as_notes(notes).tolist()), key=lambda note: (note[PROGRAM], note[PITCH], note[ONSET]))
    return [(b[ONSET], b[PITCH]) for a, b in zip(notes, notes[1:])
            if a[PROGRAM] == b[PROGRAM] and a[PITCH] == b[PITCH] and b[ONSET] < a[ONSET] + a[DURATION]]


@pytest.fixture(scope="module")
def hot_pieces(processed):
    """16 pieces of 96 events from a random-weight LSTM sampled at temperature 2: collisions galore if allowed."""
    vocabulary, splits = load_processed(processed)
    model = tiny_model("lstm", len(vocabulary))
    train = splits["train"]
    prompts = np.stack([train.piece(i % len(train))[:31] for i in range(16)])  # <start> and 10 events each
    strategy = sampling.get("sample", temperature=2.0, seed=0)
    generated = strategy.generate(registry.get("lstm").decoder(model), vocabulary, prompts, 96)
    return vocabulary, [vocabulary.decode(np.concatenate([prompt, row])) for prompt, row in zip(prompts, generated)]


def test_sampling_never_strikes_a_key_twice_at_one_onset(hot_pieces):
    vocabulary, pieces = hot_pieces
    simultaneous = sum(event.shift == 0 for piece in pieces for event in piece)
    assert simultaneous > 50, "the sampler writes many events at one onset: where doubled notes could arise"
    for piece in pieces:
        notes = event_notes(piece)
        assert len({(onset, pitch) for onset, _, pitch, *_ in notes}) == len(notes), "no (onset, key) twice"


def test_generated_midi_never_has_two_note_ons_of_a_key_without_a_note_off(hot_pieces, tmp_path):
    _, pieces = hot_pieces
    re_struck = 0
    for index, piece in enumerate(pieces):
        raw = event_notes(piece)
        re_struck += len(overlapping_keys(raw))
        write_midi(tmp_path / f"{index}.mid", events_to_notes(piece), STEPS_PER_QUARTER, 120)
        assert ill_formed_note_ons(tmp_path / f"{index}.mid") == []
    assert re_struck > 0, "the pieces did re-strike sounding keys: the MIDI check had something to catch"


def test_normalising_merges_doubled_notes_and_cuts_re_struck_ones():
    events = [Event((60,), 4, 0), Event((60, 64, 67), 8, 2), Event((64,), 2, 2)]  # 60 twice at 0; 64 again at 2
    raw = event_notes(events)
    assert overlapping_keys(raw) == [(0, 60), (2, 64)], "the raw notes strike 60 twice at 0 and 64 again at 2"
    notes, merged, cut = normalise_notes(raw)
    assert (merged, cut) == (1, 1) and overlapping_keys(notes) == []
    assert notes[:, :3].tolist() == [[0, 8, 60], [0, 2, 64], [0, 8, 67], [2, 2, 64]]


def test_doubled_notes_written_as_midi_and_musicxml_are_well_formed(tmp_path):
    events = [Event((60,), 4, 0), Event((60, 64, 67), 8, 2), Event((64,), 2, 2), Event((5,), 4, 0),
              Event((17,), 4, 4)]  # pitch 5 goes up an octave in MusicXML, onto the 17 struck with it
    notes = events_to_notes(events)
    write_midi(tmp_path / "x.mid", notes, STEPS_PER_QUARTER, 100)
    assert ill_formed_note_ons(tmp_path / "x.mid") == []
    write_musicxml(tmp_path / "x.musicxml", notes, STEPS_PER_QUARTER, 100)
    parsed = score_notes(tmp_path / "x.musicxml")
    assert overlapping_keys(parsed) == [], "the score holds no key twice at once"
    assert sorted((onset, pitch) for onset, _, pitch in parsed.tolist()) == [(0, 60), (0, 64), (0, 67), (2, 64),
                                                                            (4, 17)]


def test_generated_musicxml_parses_back_without_a_key_held_twice(hot_pieces, tmp_path):
    _, pieces = hot_pieces
    for index, piece in enumerate(pieces[:4]):
        notes = notatable(events_to_notes(piece))[0]
        write_musicxml(tmp_path / f"{index}.musicxml", notes, STEPS_PER_QUARTER, 120)
        parsed = score_notes(tmp_path / f"{index}.musicxml")
        assert overlapping_keys(parsed) == []
        assert sorted(map(tuple, parsed.tolist())) == sorted(map(tuple, notes[:, :3].tolist()))


MUSESCORE = next((shutil.which(name) for name in ("musescore3", "mscore3", "mscore", "musescore") if shutil.which(name)),
                 None)


@pytest.mark.skipif(MUSESCORE is None, reason="MuseScore is not installed (Debian: apt-get install musescore3)")
@pytest.mark.filterwarnings("ignore:Tempo, Key or Time signature:RuntimeWarning")  # MuseScore's tempo, every track
def test_musescore_reads_our_musicxml_as_the_notes_of_our_midi(hot_pieces, tmp_path):
    _, pieces = hot_pieces
    notes = notatable(events_to_notes(pieces[0]))[0]  # as the score holds them: no key below C0
    write_midi(tmp_path / "ours.mid", notes, STEPS_PER_QUARTER, 120)
    write_musicxml(tmp_path / "ours.musicxml", notes, STEPS_PER_QUARTER, 120)
    subprocess.run([MUSESCORE, "-o", str(tmp_path / "musescore.mid"), str(tmp_path / "ours.musicxml")], check=True,
                   capture_output=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})

    def onsets_and_keys(path):
        return sorted((round(note.start, 2), note.pitch) for instrument in pretty_midi.PrettyMIDI(str(path)).instruments
                      for note in instrument.notes)

    assert onsets_and_keys(tmp_path / "musescore.mid") == onsets_and_keys(tmp_path / "ours.mid")
    assert ill_formed_note_ons(tmp_path / "musescore.mid") == []
