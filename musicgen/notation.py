"""Writing notes on the grid as MusicXML sheet music through music21, for MuseScore and other score editors."""

from fractions import Fraction

import numpy as np

from musicgen.files import atomic_path
from musicgen.meters import Bars, default_meters, meter_name, on_bar_lines
from musicgen.notes import DRUMS, DURATION, ONSET, PITCH, PROGRAM, as_notes, normalise_notes

LOWEST_WRITABLE_PITCH = 12  # C0; MusicXML octaves run 0..9
SIXTEENTHS = 4  # steps per quarter of the score of music on a grid sheet music cannot write


def voices(notes):
    """Split notes (onset, duration, pitch in grid steps) into voices a score can show.

    Notes that start together with the same duration form one chord; each voice
    is a list of (onset, duration, pitches) that never overlap, because one
    staff voice cannot hold a note while the next one starts. Overlapping chords
    go to the first voice that is free by then, so a melody over held chords
    becomes two voices.
    """
    chords = {}
    for onset, duration, pitch in as_notes(notes)[:, :3].tolist():
        chords.setdefault((int(onset), int(duration)), []).append(int(pitch))
    result, ends = [], []
    for (onset, duration), pitches in sorted(chords.items()):
        free = next((i for i, end in enumerate(ends) if end <= onset), None)
        if free is None:
            result.append([])
            ends.append(0)
            free = len(result) - 1
        result[free].append((onset, duration, sorted(pitches)))
        ends[free] = onset + duration
    return result


def build_score(notes, steps_per_quarter, bpm, title=None, meters=None):
    """A music21 Score, one part per instrument (the notes' programs), in the meters (rows of grid step,
    numerator, denominator, each change on a bar line: on_bar_lines; 4/4 throughout where None).

    The bars are made here, each voice's notes cut at the bar lines and tied, its rests written to the end of
    the last bar, none longer than a half note unless it fills its bar: music21 reads a whole rest back as
    filling its bar, so the whole rests its own bar making writes inside a bar longer than four quarters (16/8,
    say) moved every later note of the voice when the file was read again, by music21 and so by preprocess.py.
    """
    import music21

    notes = as_notes(notes)
    meters = default_meters() if meters is None else np.asarray(meters, dtype=np.int64)
    bars = Bars.of_meters(meters, steps_per_quarter)
    count = int(bars.index(int((notes[:, ONSET] + notes[:, DURATION]).max()) - 1)) + 1 if len(notes) else 1
    lines = bars.start(np.arange(count + 1)).tolist()  # where each bar begins, and where the last one ends
    signatures = {step: meter_name(numerator, denominator) for step, numerator, denominator in meters.tolist()}

    def within_bars(start, stop):
        """(bar, start, stop) of each part of the span start..stop that bar lines cut."""
        first, last = int(bars.index(start)), int(bars.index(stop - 1))
        edges = [start] + lines[first + 1: last + 1] + [stop]
        return [(first + index, begin, end) for index, (begin, end) in enumerate(zip(edges, edges[1:]))]

    parts = []
    for program in np.unique(notes[:, PROGRAM]).tolist():
        measures = [music21.stream.Measure(number=index + 1) for index in range(count)]
        measures[0].insert(0, music21.instrument.Percussion() if program == DRUMS
                           else music21.instrument.instrumentFromMidiProgram(program))
        if not parts:
            measures[0].insert(0, music21.tempo.MetronomeMark(number=round(bpm, 2)))
        for measure, line in zip(measures, lines):
            if line in signatures:
                measure.timeSignature = music21.meter.TimeSignature(signatures[line])
        for number, voice_notes in enumerate(voices(notes[notes[:, PROGRAM] == program]), start=1):
            in_bars = [music21.stream.Voice(id=str(number)) for _ in range(count)]
            time = 0
            for onset, duration, pitches in voice_notes + [(lines[-1], 0, None)]:
                for bar, start, stop in within_bars(time, onset) if onset > time else []:
                    whole_bar = (start, stop) == (lines[bar], lines[bar + 1])
                    step = stop - start if whole_bar else 2 * steps_per_quarter
                    for begin in range(start, stop, step):
                        in_bars[bar].insert(Fraction(begin - lines[bar], steps_per_quarter), music21.note.Rest(
                            quarterLength=Fraction(min(step, stop - begin), steps_per_quarter)))
                if pitches is None:
                    break
                spans = within_bars(onset, onset + duration)
                for index, (bar, start, stop) in enumerate(spans):
                    element = music21.note.Note(pitches[0]) if len(pitches) == 1 else music21.chord.Chord(pitches)
                    element.quarterLength = Fraction(stop - start, steps_per_quarter)
                    if len(spans) > 1:
                        element.tie = music21.tie.Tie("start" if index == 0 else
                                                      "stop" if index == len(spans) - 1 else "continue")
                    in_bars[bar].insert(Fraction(start - lines[bar], steps_per_quarter), element)
                time = onset + duration
            for measure, voice in zip(measures, in_bars):
                measure.insert(0, voice)
        part = music21.stream.Part()
        for measure, line in zip(measures, lines):
            part.insert(Fraction(line, steps_per_quarter), measure)
        parts.append(part)
    score = music21.stream.Score(parts)
    score.insert(0, music21.metadata.Metadata(title=title or "", composer="musicgen"))
    return score


def notatable(notes):
    """(notes, how many moved): MusicXML has no octave below 0, so MIDI pitches 0-11 go up an octave.

    A moved note that lands on a key already struck is merged with it, as everywhere (normalise_notes).
    """
    notes = as_notes(notes).copy()
    too_low = notes[:, PITCH] < LOWEST_WRITABLE_PITCH
    notes[too_low, PITCH] += 12
    return normalise_notes(notes)[0], int(too_low.sum())


def notation_grid(notes, steps_per_quarter):
    """(notes, steps per quarter) on a grid that sheet music can write: the notes' own when it divides 48 (down to
    64th notes and triplets), else sixteenths, such as a performance in 10 ms steps (50 per "quarter") becomes."""
    if 48 % steps_per_quarter == 0:
        return notes, steps_per_quarter
    notes = as_notes(notes).copy()
    starts = np.rint(notes[:, ONSET] * SIXTEENTHS / steps_per_quarter).astype(np.int64)
    ends = np.rint((notes[:, ONSET] + notes[:, DURATION]) * SIXTEENTHS / steps_per_quarter).astype(np.int64)
    notes[:, ONSET], notes[:, DURATION] = starts, np.maximum(ends - starts, 1)
    return normalise_notes(notes)[0], SIXTEENTHS


def write_musicxml(path, notes, steps_per_quarter, bpm, title=None, meters=None):
    """Write notes as an uncompressed MusicXML file, atomically, in the meters (rows of grid step, numerator,
    denominator; 4/4 throughout where None); returns how many notes went up an octave."""
    if meters is not None:  # music of a grid sheet music can write (notation_grid), so its steps stay
        meters = on_bar_lines(meters, steps_per_quarter)
    notes, steps_per_quarter = notation_grid(notes, steps_per_quarter)
    notes, moved = notatable(notes)
    score = build_score(notes, steps_per_quarter, bpm, title, meters)
    with atomic_path(path) as temporary:
        score.write("musicxml", fp=str(temporary))
    return moved
