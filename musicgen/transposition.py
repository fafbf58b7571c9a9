"""Training windows transposed as they are cut (train.py --transpose N): every token moved with the music.

A window is transposed by one shift, all its tokens together, through a table
from each token id to its transposed twin's (transposed_ids). A window holding a
token without a twin for its shift (a pitch past MIDI's range, a chord, chord
symbol or merged token the vocabulary lacks, the drum kit) stays as it is.
"""

import dataclasses

import numpy as np

from musicgen.labels import KEYS
from musicgen.notes import DRUMS
from musicgen.tokens import chord_name, control_token, harmony_token, merged_token


def transposed_ids(vocabulary, semitones):
    """(vocabulary,) int: each token id's twin transposed by `semitones`, -1 where the vocabulary has none: a
    pitch out of range, a chord, chord symbol or merged token it lacks, and the drum kit, whose pitches are
    sounds. A key label moves with the music; other tokens stay as they are."""
    if not semitones:
        return np.arange(len(vocabulary), dtype=np.int32)
    spelled = {}
    for token, meaning in zip(vocabulary.tokens, vocabulary.meanings):
        if meaning["kind"] in ("note", "chord"):
            pitches = [pitch + semitones for pitch in meaning["pitches"]]
            spelled[token] = chord_name(pitches) if 0 <= min(pitches) and max(pitches) <= 127 else None
        elif meaning["kind"] == "harmony":
            code = meaning["symbol"]
            spelled[token] = harmony_token(code - code % 12 + (code % 12 + semitones) % 12)
        elif meaning["kind"] == "instrument" and meaning["program"] == DRUMS:
            spelled[token] = None
        elif meaning["kind"] == "control" and meaning["label"][0] == "key" and meaning["label"][1] in KEYS:
            key = KEYS.index(meaning["label"][1])
            spelled[token] = control_token("key", KEYS[key - key % 12 + (key % 12 + semitones) % 12])
        elif meaning["kind"] != "merged":
            spelled[token] = token
    for token, meaning in zip(vocabulary.tokens, vocabulary.meanings):
        if meaning["kind"] == "merged":
            parts = [spelled[vocabulary.tokens[part]] for part in meaning["parts"]]
            spelled[token] = None if None in parts else merged_token(parts)
    return np.array([vocabulary.index.get(spelled[token], -1) if spelled[token] else -1
                     for token in vocabulary.tokens], dtype=np.int32)


@dataclasses.dataclass(frozen=True)
class Transposition:
    """How training windows are transposed as they are cut: each by a shift drawn from -semitones..semitones."""

    tables: np.ndarray  # (2 * semitones + 1, vocabulary) int32: each token id transposed by each shift, -1: none

    @classmethod
    def of(cls, vocabulary, semitones):
        """The Transposition of up to `semitones` each way, else None (0)."""
        if not semitones:
            return None
        return cls(np.stack([transposed_ids(vocabulary, shift) for shift in range(-semitones, semitones + 1)]))

    def __call__(self, windows, rng):
        """The windows, each transposed by a shift of its own; a window holding a token that has no twin for its
        shift stays as it is."""
        shifted = self.tables[rng.integers(0, len(self.tables), len(windows))[:, None], windows]
        return np.where((shifted < 0).any(axis=1, keepdims=True), windows, shifted).astype(np.int32)
