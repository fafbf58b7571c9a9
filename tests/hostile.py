"""Builders for the broken and pathological files real collections contain (issue: nothing lost, nobody in)."""

import struct

import mido


def _track(*messages):
    track = mido.MidiTrack()
    track.extend(messages)
    return track


def _notes(pitches, step=240, length=240, channel=0):
    messages = []
    for pitch in pitches:
        messages.append(mido.Message("note_on", note=pitch, velocity=80, time=0, channel=channel))
        messages.append(mido.Message("note_off", note=pitch, velocity=0, time=length, channel=channel))
    return messages


def save(midi, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def good_tune(path, pitches=(60, 62, 64, 65, 67, 69, 71, 72, 74, 76)):
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(_track(mido.MetaMessage("set_tempo", tempo=500000), *_notes(pitches)))
    return save(midi, path)


def zero_tempo(path):
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(_track(mido.MetaMessage("set_tempo", tempo=0), *_notes(range(60, 72))))
    return save(midi, path)


def many_tempo_changes(path, count=5000):
    midi = mido.MidiFile(ticks_per_beat=480)
    tempos = [mido.MetaMessage("set_tempo", tempo=400000 + (i % 50) * 1000, time=10) for i in range(count)]
    midi.tracks.append(_track(*tempos))
    midi.tracks.append(_track(*_notes(range(60, 72))))
    midi.type = 1
    return save(midi, path)


def type_2(path):
    midi = mido.MidiFile(type=2, ticks_per_beat=480)
    midi.tracks.append(_track(*_notes(range(60, 70))))
    midi.tracks.append(_track(*_notes(range(70, 80))))
    return save(midi, path)


def zero_length_and_restruck_notes(path):
    messages = []
    for pitch in range(60, 70):  # zero-length notes
        messages += [mido.Message("note_on", note=pitch, velocity=80, time=0),
                     mido.Message("note_off", note=pitch, velocity=0, time=0)]
    messages += [mido.Message("note_on", note=64, velocity=80, time=120) for _ in range(30)]  # started 30 times
    messages.append(mido.Message("note_off", note=64, velocity=0, time=480))
    messages += _notes([0, 127, 0, 127, 0, 127, 0, 127])  # the extreme pitches
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(_track(*messages))
    return save(midi, path)


def drums_only(path):
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(_track(*_notes([36, 38, 42] * 8, channel=9)))
    return save(midi, path)


def ten_hours_apart(path, extra_notes=10):
    """Some notes, then silence for ten hours, then more notes."""
    ticks = 480 * 2 * 3600 * 10  # 120 bpm: 2 beats a second
    messages = _notes(range(60, 60 + extra_notes))
    messages += [mido.Message("note_on", note=72, velocity=80, time=ticks),
                 mido.Message("note_off", note=72, velocity=0, time=480)]
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(_track(*messages))
    return save(midi, path)


def huge(path, notes=300_000):
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(_track(*_notes([60 + i % 24 for i in range(notes)], step=60, length=60)))
    return save(midi, path)


def smpte_division(path):
    """A valid header whose division is SMPTE (25 fps, 40 ticks per frame) instead of ticks per quarter."""
    good_tune(path)
    data = bytearray(path.read_bytes())
    data[12:14] = struct.pack(">bB", -25, 40)
    path.write_bytes(bytes(data))
    return path


def header_without_tracks(path):
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 1, 0, 480))
    return path


def truncated(path):
    good_tune(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def random_bytes(path, size=2000, seed=0):
    import random

    path.write_bytes(bytes(random.Random(seed).randrange(256) for _ in range(size)))
    return path


TRUNCATED_MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Music</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions></attributes>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration></note>
<note><pitch><step>D</step>"""
