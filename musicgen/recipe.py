"""The preprocessing recipe: how a piece as read becomes notes on the grid, for training data and seeds alike.

preprocess.py stores it beside the shards, train.py copies it into the run
folder, and every seed generate.py is given (notation, a music file, a passage)
goes through the same recipe, so a melody-only model is never seeded with chords.
"""

import dataclasses

from musicgen import readers
from musicgen.encoding import quantize, shorten_silences
from musicgen.errors import UserError


@dataclasses.dataclass(frozen=True)
class Recipe:
    selection: readers.TrackSelection = readers.TrackSelection()  # which MIDI tracks contribute notes
    melody_only: bool = False  # only the highest note at each onset
    max_silence_quarters: int = 16  # longer silences inside a piece are shortened to this

    def grid_notes(self, piece, steps_per_quarter):
        """(notes (onset, duration, pitch) on the grid, silences shortened) of a readers.RawPiece."""
        notes = quantize(piece.onsets, piece.durations, piece.pitches, steps_per_quarter, self.melody_only)
        return shorten_silences(notes, self.max_silence_quarters * steps_per_quarter)

    def to_json(self):
        programs = self.selection.programs
        return {"keep_drums": self.selection.keep_drums, "programs": sorted(programs) if programs else None,
                "sustain_pedal": self.selection.sustain_pedal, "melody_only": self.melody_only,
                "max_silence_quarters": self.max_silence_quarters}

    @classmethod
    def from_json(cls, values):
        """From to_json's dict; keys it lacks take the defaults (data preprocessed before recipes were kept)."""
        defaults = cls().to_json()
        if not isinstance(values, dict) or set(values) - set(defaults):
            raise UserError(f"a preprocessing recipe must be a JSON object with the keys {', '.join(defaults)}")
        # Data preprocessed before the pedal was read had none applied: a seed must be read the same way.
        values = {**defaults, "sustain_pedal": False, **values}
        programs = values["programs"]
        try:
            selection = readers.TrackSelection(bool(values["keep_drums"]),
                                               frozenset(int(p) for p in programs) if programs else None,
                                               bool(values["sustain_pedal"]))
            return cls(selection, bool(values["melody_only"]), int(values["max_silence_quarters"]))
        except (TypeError, ValueError):
            raise UserError(f"the preprocessing recipe {values} has a value of the wrong type") from None
