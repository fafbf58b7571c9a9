"""Chord symbols ("G", "D7", "Am/C"): read, inferred from notes, kept as tokens, and asked for.

A symbol is kept as a root (pitch class 0..11) and one of a few qualities, as a
lead sheet means it; extensions fold into the quality they extend (G9 is a G7,
C6 a C) and a slash bass is dropped. The pair is one integer, a symbol's
*code*, root + 12 * quality, so a piece's symbols are a small int array that is
cached, transposed and moved along the grid like its notes.

ABC tunes and MusicXML lead sheets carry symbols (music21 reads them as
zero-length ChordSymbols); MIDI files have none, and `--chord-symbols infer`
names one for each bar (each half bar from four beats up) from the notes
sounding in it: the triad or seventh chord that holds most of their length,
preferring the one whose root is in the bass.
"""

import dataclasses
import re

import numpy as np

from musicgen.errors import UserError
from musicgen.meters import bar_quarters, check_meter

ROOT_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
QUALITIES = {"": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10),
             "dim": (0, 3, 6), "m7b5": (0, 3, 6, 10), "aug": (0, 4, 8), "sus4": (0, 5, 7)}
QUALITY_NAMES = list(QUALITIES)
INFERRED_QUALITIES = ("", "m", "7", "dim")  # what inference chooses from: the chords of folk and common-practice music
CHORD_SYMBOL_MODES = ("keep", "infer", "none")
MAX_BARS = 256  # the most bars generate.py --bars writes

_ALIASES = {
    "": ["", "M", "maj", "major", "6", "M6", "maj6", "add9", "add2", "2", "5", "69", "6/9"],
    "m": ["m", "min", "mi", "-", "m6", "min6", "-6", "madd9", "m69"],
    "7": ["7", "9", "11", "13", "dom", "dom7", "7sus4", "7sus", "9sus4", "alt", "7alt"],
    "maj7": ["maj7", "M7", "Maj7", "ma7", "maj9", "M9", "maj13", "Δ", "Δ7", "^7"],
    "m7": ["m7", "min7", "mi7", "-7", "m9", "min9", "-9", "m11", "m13"],
    "dim": ["dim", "o", "°", "dim7", "o7", "°7"],
    "m7b5": ["m7b5", "m7-5", "min7b5", "-7b5", "ø", "ø7"],
    "aug": ["aug", "+", "+5", "#5", "aug5", "+7", "aug7", "7#5", "7+5"],
    "sus4": ["sus", "sus4", "sus2"],
}
_QUALITY_OF = {alias: quality for quality, aliases in _ALIASES.items() for alias in aliases}
_ALTERED_SEVENTH = re.compile(r"^(7|9|11|13)([#b+-](5|9|11|13))+$")  # G7b9, C13#11: dominant sevenths
_SYMBOL = re.compile(r"^([A-Ga-g])([#b♯♭]?)([^/]*)(?:/(.*))?$")


def parse_symbol(text):
    """'G', 'D7', 'Bbmaj7', 'F#m7b5', 'Am/C', 'G9' -> the symbol's code; ValueError for a name it cannot read."""
    match = _SYMBOL.match(text.strip().replace("(", "").replace(")", ""))
    if not match:
        raise ValueError(f"cannot read the chord symbol {text!r}")
    letter, accidental, suffix, _bass = match.groups()
    quality = _QUALITY_OF.get(suffix, "7" if _ALTERED_SEVENTH.match(suffix) else None)
    if quality is None:
        raise ValueError(f"cannot read the chord symbol {text!r} (unknown chord quality {suffix!r})")
    root = (_LETTERS[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)) % 12
    return root + 12 * QUALITY_NAMES.index(quality)


def symbol_name(code):
    """A symbol's code -> its name as the vocabulary spells it: 'G', 'D7', 'Bbmaj7'."""
    return ROOT_NAMES[code % 12] + QUALITY_NAMES[code // 12]


def chord_tones(code):
    """The pitch classes of a symbol's chord."""
    return {(code % 12 + interval) % 12 for interval in QUALITIES[QUALITY_NAMES[code // 12]]}


@dataclasses.dataclass(frozen=True, eq=False)
class ChordSymbols:
    """A piece's chord symbols on the grid: where each starts and how long it holds, in grid steps, and its code.

    Made once, where a piece is put on the grid (musicgen/recipe.py), a progression
    is asked for (progression) or tokens are decoded (encoding.event_symbols), and
    carried as it is: transposed, narrowed to those a vocabulary knows, encoded.
    Iterating gives (onset, duration, code) of each symbol, in time order.
    """

    onsets: np.ndarray
    durations: np.ndarray
    codes: np.ndarray

    def __post_init__(self):
        for name in ("onsets", "durations", "codes"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
        if not len(self.onsets) == len(self.durations) == len(self.codes):
            raise ValueError("chord symbols need as many durations and codes as onsets")

    @classmethod
    def none(cls):
        return cls((), (), ())

    def __len__(self):
        return len(self.codes)

    def __iter__(self):
        return zip(self.onsets.tolist(), self.durations.tolist(), self.codes.tolist())

    @property
    def end(self):
        """Where the last symbol stops holding (0 for none)."""
        return int((self.onsets + self.durations).max()) if len(self) else 0

    def names(self):
        """The symbols' names in order, e.g. ['G', 'D7']."""
        return [symbol_name(code) for code in self.codes.tolist()]

    def where(self, mask):
        """The symbols where `mask` (one bool per symbol) holds."""
        mask = np.asarray(mask, dtype=bool)
        return ChordSymbols(self.onsets[mask], self.durations[mask], self.codes[mask])

    def cut_at(self, step):
        """The same symbols, one sounding across `step` cut in two there: music from `step` on names it again."""
        across = (self.onsets < step) & (self.onsets + self.durations > step)
        onsets = np.concatenate([self.onsets, np.full(across.sum(), step)])
        durations = np.concatenate([np.where(across, step - self.onsets, self.durations),
                                    self.onsets[across] + self.durations[across] - step])
        order = np.argsort(onsets, kind="stable")
        return ChordSymbols(onsets[order], durations[order], np.concatenate([self.codes, self.codes[across]])[order])

    def transposed(self, semitones):
        """The same symbols with their roots moved by `semitones`."""
        codes = self.codes
        return ChordSymbols(self.onsets, self.durations, codes - codes % 12 + (codes % 12 + semitones) % 12)


def harmonic_window(time_signature):
    """Quarters between the strong beats where chords change: a bar, or half a bar from four quarters up."""
    bar = bar_quarters(time_signature)
    return bar / 2 if bar >= 4 else bar


def infer_symbols(onsets, durations, pitches, time_signature):
    """(onsets in quarters, codes) of the symbols named for each bar, or half bar from four quarters up, where
    one differs from the one before; windows without notes name none. Notes are in quarters (a RawPiece's)."""
    onsets, durations, pitches = (np.asarray(a, dtype=np.float64) for a in (onsets, durations, pitches))
    if not len(onsets):
        return np.zeros(0), np.zeros(0, np.int64)
    window = harmonic_window(time_signature)
    ends = onsets + durations
    qualities = [QUALITY_NAMES.index(q) for q in INFERRED_QUALITIES]
    codes = [root + 12 * q for q in qualities for root in range(12)]  # triads before sevenths: ties go to triads
    templates = np.array([[pc in chord_tones(code) for pc in range(12)] for code in codes], dtype=np.float64)
    roots = np.array([code % 12 for code in codes])
    found, previous = [], None
    for start in np.arange(0.0, ends.max(), window):
        overlap = np.clip(np.minimum(ends, start + window) - np.maximum(onsets, start), 0, None)
        if not overlap.any():
            continue
        weights = np.bincount(pitches.astype(np.int64) % 12, weights=overlap, minlength=12)
        bass = int(pitches[overlap > 0].min()) % 12
        scores = templates @ weights - (1 - templates) @ weights + 0.25 * weights.sum() * (roots == bass)
        code = codes[int(np.argmax(scores))]
        if code != previous:
            found.append((start, code))
            previous = code
    return np.array([start for start, _ in found], dtype=np.float64), np.array([code for _, code in found], np.int64)


@dataclasses.dataclass(frozen=True)
class Progression:
    """generate.py --chords, as written: the chord codes of each bar, repeated to fill `bars` bars in `meter`."""

    written: tuple  # a tuple of chord codes per bar
    bars: int
    meter: str

    @classmethod
    def parse(cls, text, bars=None, meter="4/4"):
        """'G D7 G C' (a chord a bar) or 'G D7 | G C' (bars split evenly among their chords), for `bars` bars
        (None: the bars written); refused in one line where a name or a count cannot be read."""
        meter = check_meter(meter)
        written = [bar.split() for bar in text.split("|")] if "|" in text else [[name] for name in text.split()]
        written = [bar for bar in written if bar]
        if not written:
            raise UserError("--chords is empty; give chord symbols such as \"G D7 G C\"")
        codes = []
        for bar in written:
            try:
                codes.append(tuple(parse_symbol(name) for name in bar))
            except ValueError as error:
                raise UserError(f"--chords: {error}") from None
        bars = len(written) if bars is None else bars
        if not 1 <= bars <= MAX_BARS:
            raise UserError(f"--bars must be in 1..{MAX_BARS}, got {bars}")
        return cls(tuple(codes), bars, meter)

    def on_grid(self, steps_per_quarter):
        """The ChordSymbols of the progression on a grid of `steps_per_quarter`."""
        length = bar_quarters(self.meter)
        rows = []
        for index in range(self.bars):
            chords = self.written[index % len(self.written)]
            rows.extend((index * length + part * length / len(chords), length / len(chords), code)
                        for part, code in enumerate(chords))
        quarters = np.array([row[:2] for row in rows], dtype=np.float64)
        steps = np.rint(quarters * steps_per_quarter).astype(np.int64)
        return ChordSymbols(steps[:, 0], steps[:, 1], [row[2] for row in rows])
