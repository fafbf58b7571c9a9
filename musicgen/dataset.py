"""The processed data on disk: each split in shards, an index of them, and `vocab.json`, read back with checks.

    vocab.json                      the vocabulary (written last: its hash vouches for everything else)
    shards.json                     which shard files make up each split, with their sizes
    train-<run>-00000.npz, ...      shards of about a million tokens each (see ShardWriter)
    validation-<run>-00000.npz, test-<run>-00000.npz
    manifest.csv                    one row per piece: kept or why not, and its split

`preprocess.py --folds K` writes K such folders, fold-0 .. fold-<K-1>, and
folds.json naming them (read_folds).

A shard holds the token ids of whole pieces concatenated (each wrapped in
<start> ... <end>), where each piece begins, each piece's source and tempo, and
the hash of the vocabulary it was encoded with. Nothing is pickled: NumPy
arrays of numbers and fixed-width strings only. Training streams the shards
one at a time (windows), so a corpus need not fit in memory; the other
tools, which look at pieces, read a split whole with load_processed.
"""

import dataclasses
import math
import typing
from pathlib import Path

import numpy as np

from musicgen.errors import UserError
from musicgen.files import atomic_path, read_user_json, write_json
from musicgen.recipe import Recipe
from musicgen.vocabulary import Vocabulary

SPLITS = ("train", "validation", "test")
VOCABULARY_FILE = "vocab.json"
INDEX_FILE = "shards.json"
MANIFEST_FILE = "manifest.csv"
FOLDS_FILE = "folds.json"
TRANSPOSED_MARK = "(transposed"  # sources of transposed training copies read "<file> (transposed +3)"
DEFAULT_SHARD_TOKENS = 1_000_000  # 4 MB of int32 ids; a shard closes once it holds this many
SHARDS_AT_ONCE = 4  # shards a shuffled pass draws windows from at a time
SHUFFLE_WINDOWS = 2048  # windows mixed in the shuffle buffer (256 KB of ids at seq_len 128)


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

    @classmethod
    def join(cls, parts):
        """One split from its shards, in order."""
        if not parts:
            return cls.from_pieces([], [], [])
        starts = np.cumsum([0] + [len(part.tokens) for part in parts[:-1]])
        return cls(
            tokens=np.concatenate([part.tokens for part in parts]),
            offsets=np.concatenate([[0]] + [part.offsets[1:] + start for part, start in zip(parts, starts)]),
            sources=np.concatenate([part.sources for part in parts]),
            tempos=np.concatenate([part.tempos for part in parts]),
        )

    def __len__(self):
        return len(self.sources)

    def piece(self, index):
        return self.tokens[self.offsets[index]: self.offsets[index + 1]]

    def original_indices(self):
        """Indices of the pieces that are not transposed copies."""
        return [i for i, source in enumerate(self.sources) if TRANSPOSED_MARK not in source]


class ShardWriter:
    """Collects one split's pieces and writes them as shards of about `shard_tokens` tokens.

    Shard names carry `run_id`, so the shards of an earlier run stay intact (and
    the index naming them valid) until the new index replaces it.
    """

    def __init__(self, folder, split, run_id, vocabulary_hash, shard_tokens=DEFAULT_SHARD_TOKENS):
        self.folder, self.split, self.run_id = Path(folder), split, run_id
        self.vocabulary_hash, self.shard_tokens = vocabulary_hash, shard_tokens
        self.entries = []  # the index's rows for the shards written so far
        self._pieces, self._sources, self._tempos, self._tokens = [], [], [], 0

    def add(self, tokens, source, tempo):
        self._pieces.append(tokens)
        self._sources.append(source)
        self._tempos.append(tempo)
        self._tokens += len(tokens)
        if self._tokens >= self.shard_tokens:
            self._write()

    def close(self):
        """Write what is left; returns the index entries. An empty split still gets one (empty) shard."""
        if self._pieces or not self.entries:
            self._write()
        return self.entries

    def _write(self):
        name = f"{self.split}-{self.run_id}-{len(self.entries):05d}.npz"
        split = Split.from_pieces(self._pieces, self._sources, self._tempos)
        with atomic_path(self.folder / name) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, tokens=split.tokens, offsets=split.offsets, sources=split.sources,
                         tempos=split.tempos, vocabulary_hash=np.array(self.vocabulary_hash))
        self.entries.append({"file": name, "pieces": len(split), "tokens": int(len(split.tokens))})
        self._pieces, self._sources, self._tempos, self._tokens = [], [], [], 0


def write_index(folder, vocabulary_hash, entries_per_split, recipe):
    write_json(Path(folder) / INDEX_FILE, {"format": "musicgen-shards", "version": 1, "vocabulary_hash": vocabulary_hash,
                                           "recipe": recipe.to_json(), "splits": entries_per_split})


def write_vocabulary(folder, vocabulary):
    write_json(Path(folder) / VOCABULARY_FILE, vocabulary.to_json())


def read_vocabulary(path):
    return Vocabulary.from_json(read_user_json(path, f"{path} does not exist"))


def read_index(folder):
    """(vocabulary, {split: [shard entry, ...]}) of a preprocess.py output, checked to belong together.

    An entry is {"file", "pieces", "tokens"}; shard_files(folder, entries) locates them.
    """
    vocabulary, index = _read_index(folder)
    return vocabulary, index["splits"]


def read_recipe(folder):
    """The preprocessing recipe the data in `folder` was made with."""
    return Recipe.from_json(_read_index(folder)[1].get("recipe", {}))


def _read_index(folder):
    folder = Path(folder)
    if not (folder / VOCABULARY_FILE).exists():
        raise UserError(f"no processed data in {folder}/ (run `python preprocess.py` first, or give the folder it wrote)")
    vocabulary = read_vocabulary(folder / VOCABULARY_FILE)
    path = folder / INDEX_FILE
    if not path.exists() and (folder / "train.npz").exists():
        raise UserError(f"{folder}/ was made by an older preprocess.py, without shards; run `python preprocess.py` "
                        "again (it rereads nothing it has read before)")
    index = read_user_json(path, f"{path} is missing (run `python preprocess.py` again)")
    try:
        stored_hash = index["vocabulary_hash"]
        splits = {name: [dict(file=str(e["file"]), pieces=int(e["pieces"]), tokens=int(e["tokens"]))
                         for e in index["splits"].get(name, [])] for name in SPLITS}
    except (TypeError, KeyError, AttributeError, ValueError):
        raise UserError(f"{path} is damaged; run `python preprocess.py` again") from None
    if stored_hash != vocabulary.hash():
        raise UserError(f"{path} was written with another vocabulary than {folder / VOCABULARY_FILE} "
                        "(an interrupted preprocess?); run `python preprocess.py` again")
    return vocabulary, {**index, "splits": splits}


def write_folds(folder, names, split_seed):
    write_json(Path(folder) / FOLDS_FILE, {"format": "musicgen-folds", "version": 1, "split_seed": split_seed,
                                           "folders": list(names)})


def read_folds(folder):
    """The fold folders of a `preprocess.py --folds K` output, in order."""
    folder = Path(folder)
    path = folder / FOLDS_FILE
    if not path.exists():
        raise UserError(f"{folder}/ holds no cross-validation folds (make them with `python preprocess.py "
                        f"--folds 10 --output {folder}`)")
    data = read_user_json(path, f"{path} does not exist")
    try:
        return [folder / str(name) for name in data["folders"]]
    except (TypeError, KeyError):
        raise UserError(f"{path} is damaged; run `python preprocess.py --folds K` again") from None


class ShardFile(typing.NamedTuple):
    path: Path
    tokens: int  # how many tokens it holds, from the index


def shard_files(folder, entries):
    return [ShardFile(Path(folder) / entry["file"], entry["tokens"]) for entry in entries]


def read_tokens(path):
    """The token ids of one shard, unchecked (read_shard checks them)."""
    with np.load(path, allow_pickle=False) as arrays:
        return arrays["tokens"].astype(np.int32)


def read_shard(path, vocabulary, fields=("tokens", "offsets", "sources", "tempos")):
    """One shard as a Split (fields left out are empty), refused if it does not match `vocabulary`."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            stored_hash = str(arrays["vocabulary_hash"])
            values = {name: arrays[name] if name in fields else np.zeros(0) for name in
                      ("tokens", "offsets", "sources", "tempos")}
    except FileNotFoundError:
        raise UserError(f"{path} is missing (run `python preprocess.py` again)") from None
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{path} is damaged ({error}); run `python preprocess.py` again") from None
    if stored_hash != vocabulary.hash():
        raise UserError(f"{path} was encoded with another vocabulary than the one beside it "
                        "(an interrupted preprocess?); run `python preprocess.py` again")
    tokens = values["tokens"]
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(vocabulary)):
        raise UserError(f"{path} holds token ids outside the vocabulary")
    return Split(**values)


def load_processed(folder, splits=SPLITS):
    """(vocabulary, {split: Split}): the named splits read whole, every shard checked against vocab.json."""
    vocabulary, index = read_index(folder)
    return vocabulary, {name: Split.join([read_shard(shard.path, vocabulary) for shard in shard_files(folder, index[name])])
                        for name in splits}


def remove_other_shards(folder, index):
    """Delete shard files the index does not name: those of earlier runs (and pre-shard split files)."""
    named = {entry["file"] for entries in index.values() for entry in entries}
    for path in Path(folder).glob("*.npz"):
        if path.name not in named and path.name.split("-")[0].split(".")[0] in SPLITS:
            path.unlink(missing_ok=True)


def _padded_lengths(shards, seq_len):
    """Each shard's length in tokens, at least one window (shorter arrays are padded)."""
    return [max(shard.tokens if isinstance(shard, ShardFile) else len(shard), seq_len + 1) for shard in shards]


def _window_count(length, seq_len, shuffle):
    return max(1, (length - 1) // seq_len) if shuffle else (length - seq_len - 1) // seq_len + 1


def batch_count(shards, seq_len, batch_size, shuffle):
    """How many batches windows() yields per pass over `shards`, read from their lengths alone."""
    counts = (_window_count(length, seq_len, shuffle) for length in _padded_lengths(shards, seq_len))
    return math.ceil(sum(counts) / batch_size)


@dataclasses.dataclass(frozen=True)
class ControlPrefix:
    """How windows keep each piece's control tokens (its labels) in view; see pin_controls."""

    start_id: int
    pad_id: int
    is_control: np.ndarray  # bool per token id
    dropout: float = 0.0  # the share of training windows whose controls are all left out, and of each one alone

    @classmethod
    def of(cls, vocabulary, dropout=0.0):
        """The ControlPrefix of a vocabulary with control tokens, else None."""
        if not vocabulary.is_control.any():
            return None
        return cls(vocabulary.start_id, vocabulary.pad_id, vocabulary.is_control, dropout)


def pin_controls(tokens, starts, length, prefix, rng=None):
    """Windows of `length` tokens from `tokens` at `starts`, each opening with its piece's <start> and controls,
    and the number of leading targets (window[1:]) that are not to be learned.

    A window that begins inside a piece after its controls becomes <start>, the controls, then the piece from
    the window's start on: the labels stay in view however far into the piece a window lies, as they do for
    generate.py (TransformerDecoder.pin). The target right after that prefix (a token cut from its event)
    and the controls themselves carry no loss. With `rng`, a share `prefix.dropout` of the windows have every
    control taken out instead, so one model also learns to play without labels; and in the others each control
    is left out on its own with that chance, so that it also learns to play with any of its labels without the
    others (`--condition key=...` alone, of a model trained on style, key and density).
    """
    piece_starts = np.flatnonzero(tokens == prefix.start_id)
    controls = prefix.is_control[tokens]
    windows = np.empty((len(starts), length), dtype=np.int32)
    unlearned = np.zeros(len(starts), dtype=np.int64)
    for row, begin in enumerate(starts.tolist()):
        if rng is not None and rng.random() < prefix.dropout:
            ahead = slice(begin, begin + 2 * length)  # a window's worth of tokens, and room for the controls dropped
            kept = tokens[ahead][~controls[ahead]][:length]
            windows[row] = np.concatenate([kept, np.full(length - len(kept), prefix.pad_id, np.int32)])
            continue
        owner = np.searchsorted(piece_starts, begin, side="right") - 1
        opening = piece_starts[owner] if owner >= 0 else -1
        end_of_controls = opening + 1
        while opening >= 0 and end_of_controls < len(tokens) and controls[end_of_controls]:
            end_of_controls += 1
        if opening < 0 or begin < end_of_controls or end_of_controls == opening + 1:
            windows[row] = tokens[begin: begin + length]
            continue
        pinned = tokens[opening:end_of_controls]
        if rng is not None and prefix.dropout:  # each label left out on its own, so any subset of them is taught
            pinned = np.concatenate([pinned[:1], pinned[1:][rng.random(len(pinned) - 1) >= prefix.dropout]])
        windows[row] = np.concatenate([pinned, tokens[begin: begin + length - len(pinned)]])
        unlearned[row] = len(pinned)
    return windows, unlearned


@dataclasses.dataclass(frozen=True)
class Infilling:
    """How a share of training windows is put in fill-in-the-middle order; see fill_in_the_middle."""

    hole_id: int
    fill_id: int
    ends_event: np.ndarray  # bool per token id: tokens ending an event (a shift), after which a new one begins
    shift_steps: np.ndarray  # grid steps each token id moves on (0 but for tokens holding a shift)
    gap_tokens: typing.Callable  # steps -> the shift tokens saying how long a gap is (Vocabulary.gap_tokens)
    rate: float  # the share of training windows rearranged

    @classmethod
    def of(cls, vocabulary, rate):
        """The Infilling of a vocabulary with the infilling markers, else None."""
        if not vocabulary.infilling:
            return None
        return cls(vocabulary.hole_id, vocabulary.fill_id, vocabulary.ends_event,
                   vocabulary.shift_steps, vocabulary.gap_tokens, rate)


def fill_in_the_middle(window, skip, infilling, rng):
    """`window` with its tokens after the first `skip` (a pinned prefix) rearranged as
    <hole> gap after <fill> before middle (musicgen/vocabulary.py), as long as it was (the end of the middle
    makes room for the markers and the gap), the middle being a run of whole events drawn at random; None where
    the window holds fewer than three event boundaries."""
    body = window[skip:]
    boundaries = np.flatnonzero(infilling.ends_event[body[:-1]]) + 1
    if len(boundaries) < 3:
        return None
    first, second = np.sort(rng.choice(boundaries, 2, replace=False))
    gap = infilling.gap_tokens(int(infilling.shift_steps[body[first:second]].sum()))
    return np.concatenate([window[:skip], [infilling.hole_id], gap, body[second:], [infilling.fill_id],
                           body[:second]])[:len(window)].astype(np.int32)


def windows(shards, seq_len, batch_size, pad_id, shuffle, seed=0, prefix=None, infilling=None, transposition=None):
    """Batches of (inputs, targets, weights) cut on the fly from token arrays, streamed one shard at a time.

    `shards` are ShardFiles (each read when its turn comes, so a corpus need not
    fit in memory) or token arrays. Every position of a window is a training
    target (the next token). Shuffled, each pass visits the shards in a new order,
    a few at a time, and cuts about len(tokens) / seq_len windows from each at
    random offsets, mixed in a buffer of SHUFFLE_WINDOWS; unshuffled, the windows
    tile each shard in order. Arrays shorter than one window are padded, and
    padding gets weight 0 in the loss and the metrics. With a ControlPrefix,
    every window keeps its piece's controls in view (pin_controls), and control
    tokens are never targets. With an Infilling, a share of the training windows
    is in fill-in-the-middle order (fill_in_the_middle), learned throughout. With a
    Transposition (musicgen/transposition.py), shuffled windows are transposed, each by a random shift.
    """
    import tensorflow as tf  # here, not at the top: preprocessing reads this module and needs no TensorFlow

    shards = list(shards)
    lengths = _padded_lengths(shards, seq_len)

    def cut_windows(index, random_seed):
        shard = shards[index]
        tokens = read_tokens(shard.path) if isinstance(shard, ShardFile) else np.asarray(shard, dtype=np.int32)
        tokens = np.concatenate([tokens, np.full(lengths[index] - len(tokens), pad_id, np.int32)])
        last_start = len(tokens) - seq_len - 1
        random = np.random.default_rng(random_seed & (2**63 - 1)) if shuffle else None
        if shuffle:
            starts = random.integers(0, last_start + 1, _window_count(len(tokens), seq_len, shuffle))
        else:
            starts = np.arange(_window_count(len(tokens), seq_len, shuffle)) * seq_len
        if prefix is None:
            cut, unlearned = tokens[starts[:, None] + np.arange(seq_len + 1)], np.zeros(len(starts), np.int64)
        else:
            cut, unlearned = pin_controls(tokens, starts, seq_len + 1, prefix, random)
        if infilling is not None and shuffle:
            for row in np.flatnonzero(random.random(len(cut)) < infilling.rate):
                rearranged = fill_in_the_middle(cut[row], unlearned[row], infilling, random)
                if rearranged is not None:
                    cut[row] = rearranged
        if transposition is not None and shuffle:
            cut = transposition(cut, random)
        targets = cut[:, 1:]
        learned = (targets != pad_id) & (np.arange(seq_len)[None, :] >= unlearned[:, None])
        if prefix is not None:
            learned &= ~prefix.is_control[targets]
        return cut, learned.astype(np.float32)

    def shard_windows(index, random_seed):
        cut, weights = tf.numpy_function(cut_windows, [index, random_seed], (tf.int32, tf.float32), stateful=False)
        return tf.data.Dataset.from_tensor_slices((tf.ensure_shape(cut, [None, seq_len + 1]),
                                                   tf.ensure_shape(weights, [None, seq_len])))

    order = tf.data.Dataset.range(len(shards))
    if shuffle:
        order = order.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
        random_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        cut = tf.data.Dataset.zip(order, random_seeds).interleave(
            shard_windows, cycle_length=min(len(shards), SHARDS_AT_ONCE), num_parallel_calls=tf.data.AUTOTUNE)
        cut = cut.shuffle(SHUFFLE_WINDOWS, seed=seed, reshuffle_each_iteration=True)
    else:
        cut = order.flat_map(lambda index: shard_windows(index, tf.constant(0, tf.int64)))

    def as_example(window, weights):
        return window[:, :-1], window[:, 1:], weights

    batches = batch_count(shards, seq_len, batch_size, shuffle)
    return (cut.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))
            .map(as_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
