"""Which encoding a corpus gets when preprocess.py is not told: measured from the music, one choice per corpus.

A folder of performances (MAESTRO, POP909: notes off any beat grid, many
velocities) gets real-time steps and dynamics; a folder of multitrack songs
(Lakh) gets its instruments; scores (the Bach chorales, ABC tunes) have neither
velocities nor off-grid notes and keep today's compact beat encoding. A trait
is chosen when at least half the pieces have it, and each flag given
overrides its part of the choice.

The thresholds, on the files of ../shared/data/real-midi: the MAESTRO and
POP909 files have 67-97 % of their onsets more than 20 ms off the grid that
fits them better (sixteenths or eighth triplets; notes played at random times
would have 68 %) and 57-119 distinct velocities; the pop songs 0-36 %, 13-113
velocities and 6-12 programs; a score has no velocities at all.
"""

import dataclasses

import numpy as np

from musicgen.encoding import EncodingSettings

OFF_GRID_SECONDS = 0.02  # an onset further than this from every grid point is played, not written
PERFORMANCE_SHARE = 0.5  # a piece with more of its onsets off the grid that fits it best is a performance
GRIDS_PER_QUARTER = (4, 3)  # sixteenths and eighth triplets: where written notes fall
DYNAMICS_MIN_VELOCITIES = 8  # fewer distinct velocities are a sequencer's fixed levels, not playing
PERFORMANCE_STEPS_PER_QUARTER = 50  # 10 ms steps: a "quarter" is half a second in seconds timing
PERFORMANCE_MAX_SHIFT_QUARTERS = 2  # 1 s, as Performance RNN; longer gaps become rests
DEFAULT_VELOCITY_BINS = 32  # as Performance RNN: within 2 of any velocity, below what a listener tells apart
BEAT_DEFAULTS = {"steps_per_quarter": 4, "max_duration_quarters": 8, "max_shift_quarters": 8}
SECONDS_DEFAULTS = {"steps_per_quarter": PERFORMANCE_STEPS_PER_QUARTER, "max_duration_quarters": 8,
                    "max_shift_quarters": PERFORMANCE_MAX_SHIFT_QUARTERS}


@dataclasses.dataclass(frozen=True)
class PieceTraits:
    performance: bool  # most onsets are off the beat grid
    dynamics: bool  # enough distinct velocities to be played dynamics
    instruments: bool  # notes on two or more programs (drums count as one)


def piece_traits(piece):
    """The PieceTraits of a readers.RawPiece; scores (no velocities) are never performances."""
    if piece.velocities is None or len(piece.onsets) == 0:
        return PieceTraits(False, False, len(np.unique(piece.programs)) >= 2)
    onsets = piece.onsets
    played_at = piece.seconds(onsets)
    off_grid_share = min((np.abs(played_at - piece.seconds(np.rint(onsets * grid) / grid)) > OFF_GRID_SECONDS).mean()
                         for grid in GRIDS_PER_QUARTER)
    return PieceTraits(performance=bool(off_grid_share > PERFORMANCE_SHARE),
                       dynamics=len(np.unique(piece.velocities)) >= DYNAMICS_MIN_VELOCITIES,
                       instruments=len(np.unique(piece.programs)) >= 2)


def describe_traits(traits):
    """How many pieces have each trait, e.g. 'of 7 pieces, 7 performances, 7 with dynamics, 0 with instruments'."""
    def count(name):
        return sum(getattr(piece, name) for piece in traits)

    return (f"of {len(traits)} pieces, {count('performance')} performances, {count('dynamics')} with dynamics, "
            f"{count('instruments')} with instruments")


@dataclasses.dataclass(frozen=True)
class EncodingRequest:
    """What the command line asked for; None (and timing "auto") leaves that part to the corpus."""

    timing: str = "auto"
    velocity_bins: int = None
    instruments: bool = None
    steps_per_quarter: int = None
    max_duration_quarters: int = None
    max_shift_quarters: int = None
    meters: bool = None  # None: kept in beat timing

    @property
    def needs_corpus(self):
        return self.timing == "auto" or self.velocity_bins is None or self.instruments is None

    def settings(self, traits=()):
        """The EncodingSettings for a corpus whose pieces have `traits` (a list of PieceTraits)."""
        def most(name):
            return bool(traits) and 2 * sum(getattr(piece, name) for piece in traits) >= len(traits)

        timing = self.timing if self.timing != "auto" else "seconds" if most("performance") else "beats"
        grid = {name: value if value is not None else (SECONDS_DEFAULTS if timing == "seconds" else BEAT_DEFAULTS)[name]
                for name, value in (("steps_per_quarter", self.steps_per_quarter),
                                    ("max_duration_quarters", self.max_duration_quarters),
                                    ("max_shift_quarters", self.max_shift_quarters))}
        bins = self.velocity_bins if self.velocity_bins is not None else DEFAULT_VELOCITY_BINS if most("dynamics") else 0
        instruments = self.instruments if self.instruments is not None else most("instruments")
        meters = self.meters if self.meters is not None else timing == "beats"
        return EncodingSettings(**grid, timing=timing, velocity_bins=bins, instruments=instruments,
                                meters=meters).validate()
