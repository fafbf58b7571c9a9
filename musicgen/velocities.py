"""Velocity bins: how an encoding with velocities keeps a note's loudness, and what each bin plays back as.

`--velocity-bins N` cuts MIDI velocities 1..127 into N equal bins; a note keeps
its bin, and comes back at the bin's middle, so off by at most half a bin. The
vocabulary has one `vel:` token per bin, spelled with the bin's middle.
"""

import numpy as np


def velocity_bin(velocities, bins):
    """MIDI velocities 1..127 -> their bin 0..bins-1 of `bins` equal bins."""
    return np.minimum((np.clip(np.asarray(velocities), 1, 127) - 1) * bins // 127, bins - 1)


def bin_middles(bins):
    """The MIDI velocity at the middle (rounded) of each of `bins` equal bins: what each bin decodes to, so a
    velocity comes back off by at most half a bin, rounded up. Kept within the velocities of its bin, which
    only 127 bins (one velocity each) need: the middle of 1..127 cut in 127 would play velocity 1 as 2."""
    lowest = 1 + (np.arange(bins + 1) * 127 + bins - 1) // bins  # the lowest velocity of each bin, and 128
    middles = np.rint(1 + (np.arange(bins) + 0.5) * 127 / bins).astype(np.int64)
    return np.clip(middles, lowest[:-1], lowest[1:] - 1)


def quantize_velocity(velocities, bins):
    """MIDI velocities -> the middle of their bin: what the encoding keeps of each."""
    return bin_middles(bins)[velocity_bin(velocities, bins)]
