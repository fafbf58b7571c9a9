import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402
import pytest  # noqa: E402

from musicgen.backend import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly, before any test module imports keras

SHARED_DATA = ROOT.parent / "shared" / "data"


def shared(relative):
    """A path under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not here (real-file tier)")
    return path


def tokens_digest(splits):
    """A SHA-256 over each split's tokens and piece boundaries, in order: pins a processed data set."""
    from musicgen.dataset import SPLITS

    digest = hashlib.sha256()
    for name in SPLITS:
        digest.update(name.encode())
        digest.update(splits[name].tokens.astype("<i4").tobytes())
        digest.update(splits[name].offsets.astype("<i8").tobytes())
    return digest.hexdigest()


def assert_picture(path, width, height):
    """`path` is a PNG of width x height pixels with something drawn on it (not one flat colour)."""
    import matplotlib.image

    assert path.is_file(), path
    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[:2] == (height, width)
    colours, counts = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0, return_counts=True)
    assert len(colours) > 20, "a drawing has lines, text and shading"
    assert counts.max() < 0.97 * counts.sum(), "more than 3% of the picture differs from its background"


def write_tune(path, seed, bars=8, with_drums=False, program=0):
    """A small MIDI tune on a 120 bpm grid: a melody in eighths and quarters over block chords."""
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    melody = pretty_midi.Instrument(program=program)
    chords = pretty_midi.Instrument(program=program)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    time = 0.0
    for bar in range(bars):
        root = [48, 53, 55, 48][bar % 4]
        for offset in (0.0, 1.0):  # two half-note chords per bar (one beat = 0.5 s)
            start = bar * 2.0 + offset
            for pitch in (root, root + 4, root + 7):
                chords.notes.append(pretty_midi.Note(70, pitch, start, start + 1.0))
        while time < (bar + 1) * 2.0 - 1e-9:
            length = float(rng.choice([0.25, 0.5]))
            melody.notes.append(pretty_midi.Note(90, int(rng.choice(scale)), time, time + length))
            time += length
    midi.instruments += [melody, chords]
    if with_drums:
        drums = pretty_midi.Instrument(program=0, is_drum=True)
        drums.notes += [pretty_midi.Note(100, 36, t * 0.5, t * 0.5 + 0.1) for t in range(bars * 4)]
        midi.instruments.append(drums)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


def written_notes(path, steps_per_quarter=4):
    """The (onset, duration, pitch) rows of a MIDI file on its grid, sorted, as generate.py wrote them."""
    from musicgen import readers

    piece = readers.read_midi(path, readers.TrackSelection(keep_drums=True))
    rows = zip(np.rint(piece.onsets * steps_per_quarter), np.rint(piece.durations * steps_per_quarter), piece.pitches)
    return sorted((int(onset), int(duration), int(pitch)) for onset, duration, pitch in rows)


class UniformDecoder:
    """A decoder whose logits are all alike, so what comes out is the sampler's and its masks' doing."""

    def __init__(self, size):
        self.size = size

    def start(self, tokens):
        return np.zeros((len(tokens), self.size)), None

    def step(self, tokens, state):
        return self.start(tokens)

    def reorder(self, state, rows):
        return state

    def pin(self, count):
        """Nothing to keep in view: every step is alike."""


class TrapDecoder:
    """Next-token probabilities from the previous token alone: G4 (0.6) or A4 (0.4) to begin an event, then
    G4's durations spread thin (0.4, 0.3, 0.3) and A4's sure (dur:4); every event moves on a quarter. Greedy
    falls for G4 (0.6 * 0.4 = 0.24); beam search finds A4 (0.4 * 1.0 = 0.4). Records what it is asked."""

    DURATIONS = {"G4": {"dur:1": 0.4, "dur:2": 0.3, "dur:3": 0.3}, "A4": {"dur:4": 1.0}}

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary
        self.prompts, self.steps = [], 0

    def logits(self, previous):
        vocabulary, rows = self.vocabulary, []
        for token in previous:
            kind = vocabulary.kind(token)
            probabilities = ({"G4": 0.6, "A4": 0.4} if kind in ("shift", "start") else
                             self.DURATIONS.get(vocabulary.tokens[token], {}) if kind == "note" else {"shift:4": 1.0})
            row = np.full(len(vocabulary), -30.0)
            for name, p in probabilities.items():
                row[vocabulary.index[name]] = np.log(p)
            rows.append(row)
        return np.array(rows)

    def start(self, prompt):
        self.prompts.append(np.array(prompt))
        return self.logits(prompt[:, -1]), prompt[:, -1]

    def step(self, tokens, state):
        self.steps += 1
        return self.logits(tokens), tokens

    def reorder(self, state, rows):
        return state[rows]

    def pin(self, count):
        """Nothing to keep in view: the next token depends on the previous one alone."""


def only_the_fallback_reader(monkeypatch):
    """Make symusic refuse every file, so read_midi falls back to pretty_midi."""
    import symusic

    def refuse(*args, **kwargs):
        raise RuntimeError("symusic refuses this file")
    monkeypatch.setattr(symusic, "Score", refuse)


def write_band_tune(path, seed, bars=6):
    """A flute melody played with varied loudness over a bass line and a drum beat, on a 120 bpm grid."""
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    flute, bass = pretty_midi.Instrument(program=73), pretty_midi.Instrument(program=33)
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    for beat in range(bars * 4):
        start = beat * 0.5
        flute.notes.append(pretty_midi.Note(int(rng.integers(30, 120)), int(rng.choice([67, 69, 71, 72, 74])),
                                            start, start + 0.5))
        drums.notes.append(pretty_midi.Note(100 if beat % 2 == 0 else 70, 36 if beat % 2 == 0 else 38,
                                            start, start + 0.1))
        if beat % 2 == 0:
            bass.notes.append(pretty_midi.Note(90, int(rng.choice([43, 45, 48])), start, start + 1.0))
    midi.instruments += [flute, bass, drums]
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


@pytest.fixture(scope="session")
def band(tmp_path_factory):
    """Ten band tunes with dynamics and three instruments (drums kept), preprocessed with the corpus' own choice."""
    import preprocess

    folder = tmp_path_factory.mktemp("band")
    for index in range(10):
        write_band_tune(folder / f"band {index}.mid", seed=index)
    output = tmp_path_factory.mktemp("band-processed")
    preprocess.main(["--input", str(folder), "--output", str(output), "--keep-drums", "--workers", "1",
                     "--val-fraction", "0.2", "--test-fraction", "0.3"])
    return output


@pytest.fixture(scope="session")
def tune_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tunes")
    for i in range(12):
        write_tune(folder / f"tune {i:02d}.mid", seed=i, with_drums=(i % 3 == 0))
    return folder


@pytest.fixture(scope="session")
def processed(tune_folder, tmp_path_factory):
    """The tiny corpus, preprocessed with default settings."""
    import preprocess

    output = tmp_path_factory.mktemp("processed")
    preprocess.main(["--input", str(tune_folder), "--output", str(output), "--min-chord-count", "1"])
    return output


# Every model's tiny test settings, in one table: a step of training takes well under a second.
_TINY_RECURRENT = {"units": 16, "embedding_dim": 8, "layers": 1, "seq_len": 24, "batch_size": 8, "epochs": 1}
TINY_SETTINGS = {
    "rnn": _TINY_RECURRENT,
    "lstm": _TINY_RECURRENT,
    "gru": _TINY_RECURRENT,
    "cnn": {"embedding_dim": 8, "channels": 8, "skip_channels": 8, "kernel_size": 2, "layers": 3, "stacks": 2,
            "dropout": 0.1, "seq_len": 16, "batch_size": 4, "epochs": 1},  # receptive field 1 + 2 * (2**3 - 1) = 15
    "seq2seq": {"phrase_tokens": 6, "seq_len": 12, "embedding_dim": 8, "encoder_units": 8, "units": 12,
                "dropout": 0.1},
    "transformer": {"embedding_dim": 16, "heads": 2, "layers": 2, "ff_dim": 32, "dropout": 0.1, "seq_len": 8,
                    "batch_size": 4, "epochs": 1},
    "vae": {"seq_len": 12, "embedding_dim": 8, "encoder_units": 8, "units": 12, "latent_dim": 4,
            "kl_anneal_steps": 10, "free_bits": 2.0, "dropout": 0.0},
    "gan": {"segment_tokens": 6, "seq_len": 12, "units": 12, "embedding_dim": 8, "noise_dim": 4, "critic_filters": 8,
            "n_critic": 2},
    "ngram": {"max_order": 3},
}
TINY_LSTM = TINY_SETTINGS["lstm"]


def tiny_settings(name, **changes):
    """The model's full settings with its tiny ones (and `changes`) applied."""
    from models import registry
    from musicgen.hyperparameters import resolve_config

    return resolve_config(registry.get(name), overrides={**TINY_SETTINGS[name], **changes})


def tiny_model(name, vocabulary_size=30, **changes):
    """A freshly built, compiled, seeded tiny Keras model of `name`."""
    import keras

    from models import registry
    from musicgen.optimizer import OptimizerSettings

    keras.utils.set_random_seed(0)
    spec = registry.get(name)
    model = spec.build(vocabulary_size, tiny_settings(name, **changes))
    spec.compile_model(model, OptimizerSettings(learning_rate=1e-2))
    return model


def logits(model, tokens):
    """The model's logits for every position of `tokens`, as NumPy."""
    import keras

    return keras.ops.convert_to_numpy(model(tokens, training=False))


def train_tiny_lstm(data, checkpoints):
    """A tiny LSTM trained for one epoch on `data` with train.py; returns its run folder."""
    import train

    args = ["--model", "lstm", "--data", str(data), "--checkpoints", str(checkpoints)]
    for key, value in TINY_LSTM.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    train.main(args)
    return checkpoints / "lstm"


@pytest.fixture(scope="session")
def trained_run(processed, tmp_path_factory):
    """A tiny LSTM trained for one epoch on the tiny corpus."""
    return train_tiny_lstm(processed, tmp_path_factory.mktemp("checkpoints"))
