"""The preprocessing recipe: how a piece as read becomes notes on the grid, for training data and seeds alike.

preprocess.py stores it beside the shards, train.py copies it into the run
folder, and every seed generate.py is given (notation, a music file, a passage)
goes through the same recipe, so a melody-only model is never seeded with chords.
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from musicgen import readers
from musicgen.chords import CHORD_SYMBOL_MODES, ChordSymbols, infer_symbols
from musicgen.errors import UserError
from musicgen.meters import bar_steps, default_meters
from musicgen.notes import DRUMS, quantize, shorten_silences

SECONDS_TIMING_BPM = 120.0  # in seconds timing a "quarter" is half a second: the quarter note of 120 bpm


class GridPiece(NamedTuple):
    notes: np.ndarray  # (n, 5): onset, duration, pitch, velocity, program; times in grid steps
    silences_shortened: int
    tempo_changes: np.ndarray  # (k, 2): (grid step, bpm), the first at step 0; what plays the notes as read
    chord_symbols: ChordSymbols
    # (k, 3): (grid step, numerator, denominator), the first the bar line at or before the first note (musicgen/
    # meters.py); where the encoding keeps meters, the notes are moved so that it falls on step 0
    meters: np.ndarray


@dataclasses.dataclass(frozen=True)
class Recipe:
    selection: readers.TrackSelection = readers.TrackSelection()  # which MIDI tracks contribute notes
    melody_only: bool = False  # only the highest note at each onset
    max_silence_quarters: int = 16  # longer silences inside a piece are shortened to this
    chord_symbols: str = "keep"  # a file's chord symbols: "keep" them, "infer" them where it has none, or "none"

    def grid_notes(self, piece, settings):
        """A readers.RawPiece on the grid of `settings` (encoding.EncodingSettings), as a GridPiece.

        In beat timing the notes keep the piece's beats and the tempo map comes
        with them; in seconds timing they are first put in real time (through the
        tempo map), then counted at 120 bpm. Without instruments every note is on
        program 0, one stream, as before instruments were kept. Where the encoding
        keeps meters, a piece that begins with an upbeat begins with the rest of
        its bar, so that bars count from step 0.
        """
        spq = settings.steps_per_quarter
        onsets, durations = piece.onsets, piece.durations
        tempo_changes = piece.tempo_changes
        if settings.timing == "seconds":
            starts = piece.seconds(onsets)
            onsets, durations = starts * SECONDS_TIMING_BPM / 60, (piece.seconds(onsets + durations) - starts) * SECONDS_TIMING_BPM / 60
            tempo_changes = np.array([[0.0, SECONDS_TIMING_BPM]])
        programs = piece.programs if settings.instruments else None
        notes = quantize(onsets, durations, piece.pitches, spq, self.melody_only, piece.velocities, programs)
        notes, cuts = shorten_silences(notes, self.max_silence_quarters * spq)
        first_step = np.rint(onsets.min() * spq) if len(onsets) else 0
        symbol_onsets, codes = self._symbols_of(piece)
        if settings.timing == "seconds":
            symbol_onsets = piece.seconds(symbol_onsets) * SECONDS_TIMING_BPM / 60
        end = int((notes[:, 0] + notes[:, 1]).max()) if len(notes) else 0
        tempo_changes = _grid_tempo_changes(tempo_changes, spq, first_step, cuts)
        symbols = _grid_symbols(symbol_onsets, codes, spq, first_step, cuts, end)
        meters = (default_meters() if settings.timing == "seconds"
                  else _grid_meters(piece.meter_changes, spq, first_step, cuts, end))
        upbeat = -int(meters[0, 0])
        if settings.meters and upbeat:
            notes = notes.copy()
            notes[:, 0] += upbeat
            tempo_changes = tempo_changes.copy()
            tempo_changes[1:, 0] += upbeat  # the first tempo plays from the start
            symbols = ChordSymbols(symbols.onsets + upbeat, symbols.durations, symbols.codes)
            meters = meters + [[upbeat, 0, 0]]
        return GridPiece(notes, len(cuts), tempo_changes, symbols, meters)

    def _symbols_of(self, piece):
        """(onsets in quarters, codes) of the piece's chord symbols, as this recipe keeps or infers them."""
        if self.chord_symbols == "none":
            return np.zeros(0), np.zeros(0, np.int64)
        if self.chord_symbols == "infer" and not len(piece.chord_codes):
            pitched = piece.programs != DRUMS
            return infer_symbols(piece.onsets[pitched], piece.durations[pitched], piece.pitches[pitched],
                                 piece.time_signature)
        return piece.chord_onsets, piece.chord_codes

    def read_first(self, path, settings, flag):
        """The GridPiece of the first piece in a music file; a missing file or one without notes is refused, naming
        the command-line `flag` that gave it."""
        if not path.is_file():
            raise UserError(f"{flag} file {path} does not exist")
        piece = next((p for p in readers.read_file(path, self.selection) if isinstance(p, readers.RawPiece)), None)
        grid = self.grid_notes(piece, settings) if piece is not None else None
        if grid is None or not len(grid.notes):
            raise UserError(f"{flag} file {path} has no notes")
        return grid

    def to_json(self):
        programs = self.selection.programs
        return {"keep_drums": self.selection.keep_drums, "programs": sorted(programs) if programs else None,
                "sustain_pedal": self.selection.sustain_pedal, "melody_only": self.melody_only,
                "max_silence_quarters": self.max_silence_quarters, "chord_symbols": self.chord_symbols}

    @classmethod
    def from_json(cls, values):
        """From to_json's dict; keys it lacks take the defaults (data preprocessed before recipes were kept)."""
        defaults = cls().to_json()
        if not isinstance(values, dict) or set(values) - set(defaults):
            raise UserError(f"a preprocessing recipe must be a JSON object with the keys {', '.join(defaults)}")
        # Data preprocessed before the pedal was read had none applied, and before chord symbols were kept had
        # none: a seed must be read the same way.
        values = {**defaults, "sustain_pedal": False, "chord_symbols": "none", **values}
        programs = values["programs"]
        try:
            selection = readers.TrackSelection(bool(values["keep_drums"]),
                                               frozenset(int(p) for p in programs) if programs else None,
                                               bool(values["sustain_pedal"]))
            recipe = cls(selection, bool(values["melody_only"]), int(values["max_silence_quarters"]),
                         str(values["chord_symbols"]))
        except (TypeError, ValueError):
            raise UserError(f"the preprocessing recipe {values} has a value of the wrong type") from None
        if recipe.chord_symbols not in CHORD_SYMBOL_MODES:
            raise UserError(f"the preprocessing recipe's chord_symbols must be one of {', '.join(CHORD_SYMBOL_MODES)}")
        return recipe


def _grid_steps(quarters, steps_per_quarter, first_step, cuts):
    """Positions in quarters -> grid steps, moved as the notes were: the first note to step 0 and the shortened
    silences taken out (a position inside a cut lands where the cut is)."""
    steps = np.rint(np.asarray(quarters, dtype=np.float64) * steps_per_quarter) - first_step
    if len(cuts):  # cuts[i] = (where a cut ends, steps taken out just before it), the first note already at 0
        cut_starts = cuts[:, 0] - cuts[:, 1]
        steps -= np.clip(steps[:, None] - cut_starts[None, :], 0, cuts[None, :, 1]).sum(axis=1)
    return steps


def _grid_symbols(onsets, codes, steps_per_quarter, first_step, cuts, end):
    """Chord symbols named at `onsets` (quarters) -> ChordSymbols, each lasting until the next or the piece's
    `end`: one sounding before the first note starts at step 0, of several at one step the last counts, and a
    symbol repeating the one before it is left out."""
    if not len(codes):
        return ChordSymbols.none()  # as most MIDI files have: no NumPy calls for nothing
    steps = np.maximum(_grid_steps(onsets, steps_per_quarter, first_step, cuts), 0).astype(np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    last_at_step = np.append(steps[1:] != steps[:-1], True) & (steps < end)
    steps, codes = steps[last_at_step], codes[last_at_step]
    changes = np.ones(len(codes), dtype=bool)
    changes[1:] = codes[1:] != codes[:-1]
    steps, codes = steps[changes], codes[changes]
    return ChordSymbols(steps, np.diff(np.append(steps, end)), codes)


def _grid_meters(meter_changes, steps_per_quarter, first_step, cuts, end):
    """(quarter, numerator, denominator) meters -> (grid step, numerator, denominator), moved as the notes were
    (_grid_steps): the first is the bar line, at or before step 0, of the bar the first note sounds in; meters
    from the piece's `end` on are left out, and of several at one step the last counts."""
    steps = _grid_steps(meter_changes[:, 0], steps_per_quarter, first_step, cuts).astype(np.int64)
    meters = meter_changes[:, 1:].astype(np.int64)
    sounding = max(int(np.searchsorted(steps, 0, side="right")) - 1, 0)
    numerator, denominator = meters[sounding]
    bar = bar_steps(numerator, denominator, steps_per_quarter)
    first = -((-steps[sounding]) % bar) if steps[sounding] <= 0 else 0
    rows = np.column_stack([np.append(first, steps[sounding + 1:]), meters[sounding:]])
    rows = rows[(rows[:, 0] < max(end, 1))]
    return rows[np.append(rows[1:, 0] != rows[:-1, 0], True)]


def _grid_tempo_changes(tempo_changes, steps_per_quarter, first_step, cuts):
    """(quarter, bpm) tempo changes -> (grid step, bpm), moved as the notes were (_grid_steps). The tempo sounding
    at the first note starts at step 0."""
    steps = _grid_steps(tempo_changes[:, 0], steps_per_quarter, first_step, cuts)
    sounding = max(int(np.searchsorted(steps, 0, side="right")) - 1, 0)
    rows = np.column_stack([np.maximum(steps, 0), tempo_changes[:, 1]])[sounding:]
    return rows[np.append(rows[1:, 0] != rows[:-1, 0], True)]  # at one step, the last tempo
