"""The processed data on disk: one `.npz` per split plus `vocab.json`, read back with checks.

Each split file holds the token ids of all its pieces concatenated (each piece
wrapped in <start> ... <end>), the offset where each piece begins, the piece's
source and tempo, and the hash of the vocabulary it was encoded with. Nothing is
pickled: NumPy arrays of numbers and fixed-width strings only.
"""

import dataclasses
from pathlib import Path

import numpy as np

from musicgen.encoding import Vocabulary
from musicgen.errors import UserError
from musicgen.files import atomic_path, read_user_json, write_json

SPLITS = ("train", "validation", "test")
VOCABULARY_FILE = "vocab.json"
MANIFEST_FILE = "manifest.csv"
TRANSPOSED_MARK = "(transposed"  # sources of transposed training copies read "<file> (transposed +3)"


@dataclasses.dataclass
class Split:
    tokens: np.ndarray  # int32, all pieces concatenated
    offsets: np.ndarray  # int64, len(pieces) + 1; piece i is tokens[offsets[i]:offsets[i + 1]]
    sources: np.ndarray  # str, one per piece
    tempos: np.ndarray  # float, beats per minute, one per piece

    @classmethod
    def from_pieces(cls, pieces, sources, tempos):
        lengths = [len(p) for p in pieces]
        return cls(
            tokens=np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            sources=np.array(sources, dtype=str),
            tempos=np.array(tempos, dtype=np.float64),
        )

    def __len__(self):
        return len(self.sources)

    def piece(self, index):
        return self.tokens[self.offsets[index]: self.offsets[index + 1]]

    def original_indices(self):
        """Indices of the pieces that are not transposed copies."""
        return [i for i, source in enumerate(self.sources) if TRANSPOSED_MARK not in source]


def split_path(folder, name):
    return Path(folder) / f"{name}.npz"


def write_split(folder, name, split, vocabulary_hash):
    with atomic_path(split_path(folder, name)) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, tokens=split.tokens, offsets=split.offsets, sources=split.sources,
                     tempos=split.tempos, vocabulary_hash=np.array(vocabulary_hash))


def write_vocabulary(folder, vocabulary):
    write_json(Path(folder) / VOCABULARY_FILE, vocabulary.to_json())


def read_vocabulary(path):
    return Vocabulary.from_json(read_user_json(path, f"{path} does not exist"))


def load_processed(folder, splits=SPLITS):
    """Read vocab.json and the named splits, checking that they belong together."""
    folder = Path(folder)
    if not (folder / VOCABULARY_FILE).exists():
        raise UserError(f"no processed data in {folder}/ (run `python preprocess.py` first, or pass --data)")
    vocabulary = read_vocabulary(folder / VOCABULARY_FILE)
    loaded = {}
    for name in splits:
        path = split_path(folder, name)
        try:
            with np.load(path, allow_pickle=False) as arrays:
                split = Split(arrays["tokens"], arrays["offsets"], arrays["sources"], arrays["tempos"])
                stored_hash = str(arrays["vocabulary_hash"])
        except FileNotFoundError:
            raise UserError(f"{path} is missing (run `python preprocess.py` again)") from None
        except (OSError, ValueError, KeyError) as error:
            raise UserError(f"{path} is damaged ({error}); run `python preprocess.py` again") from None
        if stored_hash != vocabulary.hash():
            raise UserError(f"{path} was encoded with another vocabulary than {folder / VOCABULARY_FILE} "
                            "(an interrupted preprocess?); run `python preprocess.py` again")
        if len(split.tokens) and (split.tokens.min() < 0 or split.tokens.max() >= len(vocabulary)):
            raise UserError(f"{path} holds token ids outside the vocabulary")
        loaded[name] = split
    return vocabulary, loaded
