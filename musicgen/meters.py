"""Meters (time signatures) and the bars they make: read from files, kept on the grid, counted everywhere.

A piece's meters are an (k, 3) int array of (grid step, numerator, denominator),
sorted, the first at step 0, which is a bar line: the recipe moves a piece that
begins with an upbeat so that its first bar line falls on step 0 (musicgen/recipe.py).
A meter may change at any step; its bars count from there. Bars turns the meters
into bar lines, so that infilling, --chords, --bars and the form statistics count
bars as the music has them. Music whose meter is not known counts 4/4 bars.
"""

import re

import numpy as np

from musicgen.errors import UserError

DEFAULT_METER = (4, 4)
DENOMINATORS = (2, 4, 8, 16)
MAX_NUMERATOR = 16
# The meters an encoding with meters may have a token for: every numerator to MAX_NUMERATOR over each of
# DENOMINATORS; a vocabulary holds those its training pieces have. A piece's meter outside its vocabulary is left
# out of its encoding (its bars then count in the meter before it).
KNOWN_METERS = tuple((numerator, denominator) for denominator in DENOMINATORS
                     for numerator in range(1, MAX_NUMERATOR + 1))
_METER_PATTERN = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{1,2})\s*$")


def parse_meter(text):
    """'6/8' -> (6, 8); ValueError unless it reads as a time signature (a denominator a power of two up to 64)."""
    match = _METER_PATTERN.match(text or "")
    if not match or not is_meter(int(match.group(1)), int(match.group(2))):
        raise ValueError(f"not a time signature: {text!r}")
    return int(match.group(1)), int(match.group(2))


def is_meter(numerator, denominator):
    """Whether numerator/denominator is a time signature: a numerator from 1 to 99 over a power of two up to 64."""
    return 1 <= numerator <= 99 and denominator in (1, 2, 4, 8, 16, 32, 64)


def meter_name(numerator, denominator):
    return f"{numerator}/{denominator}"


def check_meter(text):
    """A time signature given by the user ('3/4', '6/8') in its plain spelling, refused unless it reads as one."""
    try:
        return meter_name(*parse_meter(text))
    except ValueError:
        raise UserError(f"--meter takes a time signature such as 4/4, 3/4 or 6/8, got {text!r}") from None


def bar_quarters(time_signature):
    """'6/8' -> 3.0: a bar's length in quarter notes (4/4 for a signature it cannot read)."""
    try:
        numerator, denominator = parse_meter(time_signature)
    except ValueError:
        numerator, denominator = DEFAULT_METER
    return 4.0 * numerator / denominator


def bar_steps(numerator, denominator, steps_per_quarter):
    """Grid steps in a bar of numerator/denominator (at least one)."""
    return max(1, round(4 * numerator * steps_per_quarter / denominator))


def meter_map(changes):
    """[(quarter, numerator, denominator)] as a file states them -> (k, 3) float array: sorted, signatures that are
    not ones dropped, one per position (the last stated), repeats of the meter before merged, and 4/4 from 0
    where the file states none by then (as MIDI has it). The first may stand before 0: the bar line an upbeat
    leads to, less a bar."""
    rows = []
    for quarter, numerator, denominator in sorted(((float(q), int(n), int(d)) for q, n, d in changes),
                                                  key=lambda change: change[0]):
        if not is_meter(numerator, denominator):
            continue
        if rows and rows[-1][0] == quarter:
            rows.pop()
        if not rows or rows[-1][1:] != (numerator, denominator):
            rows.append((quarter, numerator, denominator))
    if not rows or rows[0][0] > 0:
        rows.insert(0, (0.0, *DEFAULT_METER))
    return np.array(rows, dtype=np.float64)


def default_meters(meter=DEFAULT_METER):
    """The meters of music in one meter throughout, its first bar at step 0."""
    return np.array([[0, *meter]], dtype=np.int64)


def on_bar_lines(meters, steps_per_quarter):
    """The meters with each change moved to the first bar line of the meter before it at or after its step (of
    several at one bar line the last counts): as sheet music, which has no bar cut short, can write them."""
    meters = np.asarray(meters, dtype=np.int64).reshape(-1, 3)
    kept = [meters[0].tolist()]
    for step, numerator, denominator in meters[1:].tolist():
        bars = Bars.of_meters(kept, steps_per_quarter)
        bar = int(bars.index(step))
        line = step if int(bars.start(bar)) == step else int(bars.start(bar + 1))
        if line == kept[-1][0]:
            kept.pop()
        kept.append([line, numerator, denominator])
    return np.array(kept, dtype=np.int64)


class Bars:
    """Where the bars of a piece begin on its grid: each meter's bars from the step it starts at (the last bar
    before a change may be short), or every `steps` steps (Bars.regular)."""

    def __init__(self, starts, lengths):
        self.starts = np.asarray(starts, dtype=np.int64)  # where each meter starts, the first at 0
        self.lengths = np.asarray(lengths, dtype=np.int64)  # the steps of its bars
        spans = np.diff(self.starts)
        # bars_before[i]: the bars before meter i starts (a short last bar counts as one)
        self.bars_before = np.concatenate([[0], np.cumsum(-(-spans // self.lengths[:-1]))]).astype(np.int64)

    @classmethod
    def of_meters(cls, meters, steps_per_quarter):
        meters = np.asarray(meters, dtype=np.int64).reshape(-1, 3)
        if not len(meters):
            meters = default_meters()
        return cls(meters[:, 0], [bar_steps(n, d, steps_per_quarter) for n, d in meters[:, 1:].tolist()])

    @classmethod
    def regular(cls, steps):
        return cls([0], [steps])

    def index(self, steps):
        """The bar (counted from 0) each grid step falls in."""
        steps = np.asarray(steps, dtype=np.int64)
        meter = np.maximum(np.searchsorted(self.starts, steps, side="right") - 1, 0)
        return self.bars_before[meter] + (steps - self.starts[meter]) // self.lengths[meter]

    def start(self, bars):
        """The grid step where each bar (counted from 0) begins."""
        bars = np.asarray(bars, dtype=np.int64)
        meter = np.searchsorted(self.bars_before, bars, side="right") - 1
        return self.starts[meter] + (bars - self.bars_before[meter]) * self.lengths[meter]

    def length(self, bars):
        """The grid steps of each bar (counted from 0), as its meter has them."""
        return self.lengths[np.searchsorted(self.bars_before, np.asarray(bars, dtype=np.int64), side="right") - 1]

    def measure(self, step):
        """How many bars lie before grid step `step`, a bar begun counting for its part."""
        bar = int(self.index(step))
        return bar + (step - int(self.start(bar))) / int(self.length(bar))
