"""Labels as control tokens: where they come from, how training keeps them in view, and generate.py --condition."""

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SETTINGS, write_tune

import generate
import preprocess
from models import registry
from musicgen import generate_options, labels, training
from musicgen.dataset import ControlPrefix, load_processed, pin_controls
from musicgen.encoding import EncodingSettings
from musicgen.errors import UserError
from musicgen.hyperparameters import resolve_config
from musicgen.sampling import Onsets
from musicgen.tokens import control_token
from musicgen.vocabulary import Vocabulary

C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
A_MINOR_TUNE = [57, 60, 64, 69, 68, 69, 64, 60, 57, 59, 60, 62, 64, 57]


def notes_of(pitches, duration=4):
    return np.array([(i * duration, duration, p, 80, 0) for i, p in enumerate(pitches)])


def test_the_key_is_estimated_from_the_notes_and_moves_with_a_transposition():
    assert labels.estimate_key(notes_of(C_MAJOR_SCALE)) == "C major"
    assert labels.estimate_key(notes_of(A_MINOR_TUNE)) == "A minor"
    assert labels.estimate_key(notes_of([p + 2 for p in C_MAJOR_SCALE])) == "D major"
    assert labels.estimate_key(notes_of([p - 2 for p in A_MINOR_TUNE])) == "G minor"
    assert labels.estimate_key(notes_of([60] * 4)) is not None
    assert labels.estimate_key(np.zeros((0, 5), int)) is None


def test_tempo_and_density_bins():
    assert [labels.tempo_label(bpm) for bpm in (60, 76, 119.9, 120, 180)] == ["slow", "moderate", "moderate",
                                                                             "fast", "fast"]
    edges = labels.density_edges([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert [labels.density_label(d, edges) for d in (1.0, 3.5, 6.0)] == ["low", "medium", "high"]
    assert labels.notes_per_quarter(notes_of([60] * 8, duration=2), steps_per_quarter=4) == pytest.approx(2.0)


def test_labels_from_folders_file_names_and_a_csv(tmp_path):
    files = [tmp_path / "chopin" / "op10" / "a.mid", tmp_path / "liszt" / "jigs12.mid", tmp_path / "reels3.mid"]
    assert labels.folder_labels(files, [tmp_path], "composer") == {
        str(files[0]): {"composer": "chopin"}, str(files[1]): {"composer": "liszt"}}
    assert labels.pattern_labels(files, "style=^(jigs|reels)") == {str(files[1]): {"style": "jigs"},
                                                                   str(files[2]): {"style": "reels"}}
    table = tmp_path / "meta.csv"
    pd.DataFrame({"midi_filename": ["op10/a.mid", "liszt/jigs12.mid"], "canonical_composer": ["Chopin", "Liszt"],
                  "year": [1830, 1840]}).to_csv(table, index=False)
    found, unlisted = labels.csv_labels(files, table, ["canonical_composer"])
    assert found == {str(files[0]): {"canonical_composer": "Chopin"}, str(files[1]): {"canonical_composer": "Liszt"}}
    assert unlisted == [str(files[2])]
    with pytest.raises(UserError, match="has no column genre"):
        labels.csv_labels(files, table, ["genre"])
    with pytest.raises(UserError, match="naming each file"):
        labels.csv_labels(files, table, ["year"], file_column="path")
    for bad in ("style", "style=(", "split=^a"):
        with pytest.raises(UserError, match="label-pattern"):
            labels.pattern_labels(files, bad)


def test_a_linked_file_takes_the_folder_it_is_linked_from(tmp_path, monkeypatch):
    (tmp_path / "collection").mkdir()
    (tmp_path / "collection" / "tune.abc").write_text("X:1\n")
    (tmp_path / "styles" / "irish").mkdir(parents=True)
    link = tmp_path / "styles" / "irish" / "tune.abc"
    link.symlink_to(tmp_path / "collection" / "tune.abc")
    assert labels.folder_labels([link], [tmp_path / "styles"], "style") == {str(link): {"style": "irish"}}
    monkeypatch.chdir(tmp_path)
    relative = Path("styles") / "irish" / "tune.abc"
    assert labels.folder_labels([relative], [Path("styles")], "style") == {str(relative): {"style": "irish"}}, \
        "each file is named as given"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Twelve tunes in two composers' folders, labelled by folder, key and density, transposed -1..1."""
    folder = tmp_path_factory.mktemp("by-composer")
    for index in range(12):
        write_tune(folder / ("chopin" if index % 2 else "bach") / f"tune {index:02d}.mid", seed=index)
    output = tmp_path_factory.mktemp("labelled")
    preprocess.main(["--input", str(folder), "--output", str(output), "--workers", "1", "--transpose", "-1..1",
                     "--label-from", "folders=composer", "--compute-labels", "key,density"])
    return output


def test_every_piece_opens_with_its_labels_and_the_manifest_has_a_column_per_label(labelled):
    vocabulary, splits = load_processed(labelled)
    assert set(vocabulary.controls) == {"composer", "key", "density"}
    assert vocabulary.controls["composer"] == ["bach", "chopin"]
    manifest = pd.read_csv(labelled / "manifest.csv")
    assert {"composer", "key", "density"} <= set(manifest.columns)
    assert set(manifest["composer"]) == {"bach", "chopin"}
    keys_of_copies = set()
    for split in splits.values():
        for index in range(len(split)):
            piece = split.piece(index)
            opening = [vocabulary.tokens[t] for t in piece[:vocabulary.opening_length(piece)]]
            assert opening[0] == "<start>" and [t.split("=")[0] for t in opening[1:]] == ["composer", "density", "key"]
            composer = "chopin" if "chopin" in split.sources[index] else "bach"
            assert opening[1] == control_token("composer", composer)
            keys_of_copies.add(opening[3])
            assert not vocabulary.is_control[piece[vocabulary.opening_length(piece):]].any(), "labels open only"
    assert {"key=B major", "key=C major", "key=Db major"} <= keys_of_copies, "each transposed copy has its key"


def test_label_flags_refuse_bad_values(tune_folder, tmp_path):
    for argv, message in ((["--label-from", "files"], "folders"), (["--compute-labels", "mood"], "compute-labels"),
                          (["--labels", str(tmp_path / "none.csv"), "--label-columns", "x"], "does not exist"),
                          (["--label-columns", "x"], "go together")):
        with pytest.raises(UserError, match=message):
            preprocess.main(["--input", str(tune_folder), "--output", str(tmp_path / "out"), *argv])


def small_vocabulary():
    return Vocabulary.build(EncodingSettings(), {}, controls=["key=C major", "key=D major", "style=jig"])


def test_windows_keep_the_labels_in_view_and_never_learn_them():
    vocabulary = small_vocabulary()
    start, key, style = vocabulary.start_id, vocabulary.index["key=D major"], vocabulary.index["style=jig"]
    body = np.tile([vocabulary.index["C4"], vocabulary.index["dur:4"], vocabulary.index["shift:4"]], 10)
    tokens = np.concatenate([[start, key, style], body, [vocabulary.end_id]]).astype(np.int32)
    prefix = ControlPrefix.of(vocabulary)
    windows, unlearned = pin_controls(tokens, np.array([0, 1, 10]), 8, prefix)
    assert windows[0].tolist() == tokens[:8].tolist() and unlearned[0] == 0, "a piece's opening is left as it is"
    assert windows[2].tolist() == [start, key, style, *tokens[10:15]] and unlearned[2] == 3
    dropped, unlearned = pin_controls(tokens, np.array([0, 10]), 8, ControlPrefix.of(vocabulary, dropout=1.0),
                                      np.random.default_rng(0))
    assert not vocabulary.is_control[dropped].any() and not unlearned.any()
    assert dropped[0].tolist() == [start, *body[:7]]
    assert ControlPrefix.of(Vocabulary.build(EncodingSettings(), {})) is None, "no labels, nothing to pin"


def test_label_dropout_also_leaves_labels_out_one_at_a_time():
    vocabulary = small_vocabulary()
    start, key, style = vocabulary.start_id, vocabulary.index["key=D major"], vocabulary.index["style=jig"]
    body = np.tile([vocabulary.index["C4"], vocabulary.index["dur:4"], vocabulary.index["shift:4"]], 10)
    tokens = np.concatenate([[start, key, style], body, [vocabulary.end_id]]).astype(np.int32)
    windows, unlearned = pin_controls(tokens, np.full(400, 10), 8, ControlPrefix.of(vocabulary, dropout=0.3),
                                      np.random.default_rng(0))
    openings = Counter()
    for window, pinned in zip(windows.tolist(), unlearned.tolist()):
        labels = window[1: pinned] if pinned else []
        openings[tuple(labels)] += 1
        assert window[pinned:] == tokens[10: 10 + 8 - pinned].tolist() if pinned else start not in window[1:]
    assert set(openings) == {(key, style), (key,), (style,), ()}, "every subset, in the vocabulary's order"
    assert openings[(key, style)] / 400 == pytest.approx(0.7 * 0.7 * 0.7, abs=0.07)


def test_training_batches_weigh_neither_labels_nor_the_token_after_a_pinned_prefix(labelled):
    from musicgen.dataset import read_index, shard_files, windows

    vocabulary, index = read_index(labelled)
    batches = windows(shard_files(labelled, index["validation"]), 12, 64, vocabulary.pad_id, shuffle=False,
                      prefix=ControlPrefix.of(vocabulary))
    for inputs, targets, weights in batches:
        inputs, targets, weights = (np.asarray(x) for x in (inputs, targets, weights))
        assert not weights[vocabulary.is_control[targets]].any()
        pinned = (inputs[:, 0] == vocabulary.start_id) & vocabulary.is_control[inputs[:, 1]]
        assert pinned.any()
        assert vocabulary.is_control[inputs[pinned, 1:4]].all(), "the three labels follow <start>"
        assert weights[pinned, 3].sum() < pinned.sum(), "the token after the prefix is cut from its event"
        learnable = ~vocabulary.is_control[targets] & (targets != vocabulary.pad_id)
        assert (weights[pinned, 4:] == learnable[pinned, 4:]).all(), "the rest is learned, as in any window"


def test_controls_are_never_sampled():
    vocabulary = small_vocabulary()
    prompts = np.array([[vocabulary.start_id], [vocabulary.index["key=C major"]]])
    allowed = Onsets(vocabulary, prompts).allowed(prompts[:, -1])
    assert not allowed[:, vocabulary.is_control].any()
    assert allowed[:, vocabulary.index["C4"]].all()


def tiny_transformer_run(data, tmp_path_factory, name):
    """A tiny transformer trained on `data`, in a fresh run folder."""
    spec = registry.get("transformer")
    config = resolve_config(spec, overrides={**TINY_SETTINGS["transformer"], "seq_len": 16})
    run_dir = tmp_path_factory.mktemp(name) / "transformer"
    training.train(spec, config, data, run_dir, log=lambda *args: None, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def labelled_run(labelled, tmp_path_factory):
    return tiny_transformer_run(labelled, tmp_path_factory, "labelled-run")


def test_generate_opens_the_prompt_with_the_conditions_and_refuses_unknown_ones(labelled_run, tmp_path, capsys):
    generate.main(["--checkpoint", str(labelled_run), "--seed", "C4 E4", "--condition", "key=c major",
                   "--condition", "composer=Chopin", "--length", "40", "--output", str(tmp_path / "a.mid")])
    assert "labels composer=chopin, key=C major" in capsys.readouterr().out, "as the vocabulary spells them"
    for condition, message in (("mood=sad", "unknown label 'mood'; this model knows: composer, density, key"),
                               ("key=F# minor", "never seen in training; known values of key: B major"),
                               ("key", "LABEL=VALUE")):
        with pytest.raises(UserError, match=message):
            generate.main(["--checkpoint", str(labelled_run), "--condition", condition, "--length", "4",
                           "--output", str(tmp_path / "b.mid")])


def test_a_run_without_labels_takes_no_condition(trained_run, tmp_path):
    with pytest.raises(UserError, match="trained without labels"):
        generate.main(["--checkpoint", str(trained_run), "--seed", "C4", "--condition", "key=C major",
                       "--output", str(tmp_path / "c.mid")])


def test_the_transformer_decoder_keeps_pinned_tokens_in_front_of_the_recent_ones(labelled_run):
    import keras

    from musicgen.guidance import conditioned

    run = registry.load_run(labelled_run)
    vocabulary = run.vocabulary
    prompt = conditioned(np.array([vocabulary.start_id]), vocabulary, {"key": "C major", "composer": "bach"})
    assert vocabulary.opening_length(prompt) == 3
    decoder = run.spec.decoder(run.model)
    decoder.pin(3)
    logits, state = decoder.start(prompt[None])
    body = np.tile([vocabulary.index["C4"], vocabulary.index["dur:4"], vocabulary.index["shift:4"]], 8)
    for token in body:
        logits, state = decoder.step(np.array([token]), state)
    held = state[0][0]
    assert held[:3].tolist() == prompt.tolist(), "after re-priming, the labels still lead"
    assert held[3:].tolist() == body[len(body) - (len(held) - 3):].tolist()
    full = keras.ops.convert_to_numpy(run.model(held[None], training=False))[0, -1]
    np.testing.assert_allclose(logits[0], full, atol=1e-4)


class LabelReader:
    """A decoder whose next-token logits favour C4 by 1 when the prompt it read holds a label, whatever follows."""

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary

    def _logits(self, labelled):
        logits = np.zeros((len(labelled), len(self.vocabulary)))
        logits[labelled, self.vocabulary.index["C4"]] = 1.0
        return logits

    def start(self, prompt):
        labelled = self.vocabulary.is_control[np.asarray(prompt)].any(axis=1)
        return self._logits(labelled), labelled

    def step(self, tokens, state):
        return self._logits(state), state

    def reorder(self, state, rows):
        return state[rows]

    def pin(self, count):
        """Sees everything anyway."""


def test_guidance_pushes_the_labels_harder_and_weight_one_is_plain_conditioning():
    from musicgen.guidance import GuidedDecoder

    vocabulary = small_vocabulary()
    prompt = np.array([[vocabulary.start_id, vocabulary.index["key=D major"]]] * 2)
    c4 = vocabulary.index["C4"]
    plain, _ = LabelReader(vocabulary).start(prompt)
    plain = plain - np.logaddexp.reduce(plain, axis=1, keepdims=True)
    for weight, expected in ((1.0, 1.0), (3.0, 3.0)):
        decoder = GuidedDecoder(LabelReader(vocabulary), LabelReader(vocabulary), vocabulary, weight)
        decoder.pin(2)
        logits, state = decoder.start(prompt)
        logits, state = decoder.step(np.array([c4, c4]), decoder.reorder(state, np.array([1, 0])))
        assert logits[0, c4] - logits[0, vocabulary.index["D4"]] == pytest.approx(expected)
        np.testing.assert_allclose(np.exp(logits).sum(axis=1), 1.0)
        if weight == 1.0:
            np.testing.assert_allclose(logits, plain)
    unlabelled = GuidedDecoder(LabelReader(vocabulary), LabelReader(vocabulary), vocabulary, 3.0)
    logits, _ = unlabelled.start(np.array([[vocabulary.start_id]]))
    assert logits[0, c4] == pytest.approx(logits[0, vocabulary.index["D4"]]), "without labels nothing to push"


def test_guidance_needs_a_condition(labelled_run, tmp_path, capsys):
    with pytest.raises(UserError, match="give --condition too"):
        generate.main(["--checkpoint", str(labelled_run), "--guidance", "2", "--output", str(tmp_path / "g.mid")])
    generate.main(["--checkpoint", str(labelled_run), "--condition", "key=C major", "--guidance", "2", "--length",
                   "8", "--output", str(tmp_path / "g.mid")])
    assert (tmp_path / "g.mid").is_file()
    assert "labels key=C major (guidance 2)" in capsys.readouterr().out


def test_generate_samples_from_the_guided_distribution(labelled_run, tmp_path, monkeypatch):
    import keras

    from musicgen import sampling

    sampled_from = []  # (first next-token distribution, prompts) of each generate.py call
    generate_original = sampling.Sampler.generate

    def spy(self, decoder, vocabulary, prompts, *args, **kwargs):
        sampled_from.append((softmax(decoder.start(prompts)[0]), prompts))
        return generate_original(self, decoder, vocabulary, prompts, *args, **kwargs)

    monkeypatch.setattr(sampling.Sampler, "generate", spy)
    for weight in ("1", "4", None):
        generate.main(["--checkpoint", str(labelled_run), "--seed", "C4 E4", "--condition", "key=C major",
                       "--length", "4", "--output", str(tmp_path / f"w{weight}.mid")]
                      + (["--guidance", weight] if weight else []))
    (plain, prompts), (guided, _), (by_default, _) = sampled_from
    assert generate_options.LABEL_GUIDANCE == 4 and np.array_equal(by_default, guided), "labels are guided by default"
    run = registry.load_run(labelled_run)
    unlabelled = prompts[:, ~run.vocabulary.is_control[prompts[0]]]
    assert prompts.shape[1] == unlabelled.shape[1] + 1, "the prompt opens with <start> and the label"

    def log_probabilities(tokens):
        logits = keras.ops.convert_to_numpy(run.model(tokens, training=False))[:, -1].astype(np.float64)
        return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)

    with_label, without = log_probabilities(prompts), log_probabilities(unlabelled)
    np.testing.assert_allclose(plain, np.exp(with_label), atol=1e-5)
    np.testing.assert_allclose(guided, softmax(without + 4 * (with_label - without)), atol=1e-5)
    assert np.abs(guided - plain).max() > 1e-3, "guidance 4 moves the distribution"


def softmax(logits):
    return np.exp(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))


def test_scoring_opens_on_the_labels_keeps_them_in_view_and_counts_none_of_them(labelled_run, labelled):
    from musicgen import evaluation

    run = registry.load_run(labelled_run)
    test = load_processed(labelled, ("test",))[1]["test"]
    decoder = run.spec.decoder(run.model)
    pinned = []
    keep_in_view = decoder.pin
    decoder.pin = lambda count: (pinned.append(count), keep_in_view(count))
    table = evaluation.likelihood_table(decoder, test, run.vocabulary)
    assert set(pinned) == {4}, "<start> and the three labels"
    assert decoder.pinned == 4
    assert (table["tokens"] == [len(test.piece(i)) - 4 for i in range(len(test))]).all()
    assert np.isfinite(table["nll_nats"]).all() and (table["nll_nats"] > 0).all()
    assert max(len(test.piece(i)) for i in range(len(test))) > 16, "longer than the model's window"


@pytest.fixture(scope="module")
def styled_run(tmp_path_factory):
    """A tiny transformer trained on tunes in two style folders (jig, reel), labelled style=jig and style=reel."""
    folder = tmp_path_factory.mktemp("by-style")
    for index in range(10):
        write_tune(folder / ("reel" if index % 2 else "jig") / f"tune {index:02d}.mid", seed=index)
    data = tmp_path_factory.mktemp("styled")
    preprocess.main(["--input", str(folder), "--output", str(data), "--workers", "1", "--label-from", "folders=style"])
    return tiny_transformer_run(data, tmp_path_factory, "styled-run")


def test_a_model_of_styles_plays_one_chosen_at_random_where_none_is_asked_for(styled_run, tmp_path, capsys):
    def generate_with(*flags):
        generate.main(["--checkpoint", str(styled_run), "--length", "8", "--output", str(tmp_path / "a.mid"),
                       *flags])
        return capsys.readouterr().out

    chosen = set()
    for seed in range(6):
        out = generate_with("--random-seed", str(seed))
        style = out.split("style=", 1)[1].split(",", 1)[0]
        assert f"style={style}, chosen at random (--condition style=NAME for another: jig, reel)" in out
        assert f"labels style={style}" in out, "and the piece opens with it"
        assert generate_with("--random-seed", str(seed)).count(f"style={style}, chosen") == 1, "the seed decides"
        chosen.add(style)
    assert chosen == {"jig", "reel"}
    out = generate_with("--condition", "style=reel")
    assert "chosen at random" not in out and "labels style=reel" in out


def test_evaluate_by_style_judges_each_styles_whole_pieces_against_its_own(styled_run, tmp_path):
    import evaluate
    from musicgen import whole_pieces

    evaluate.main(["--checkpoint", str(styled_run), "--by", "style", "--split", "validation", "--pieces", "1",
                   "--length", "8", "--whole-pieces", "2", "--resamples", "50", "--output", str(tmp_path)])
    table = pd.read_csv(tmp_path / "whole_pieces_by_style.csv")
    data = Path(registry.load_run(styled_run).run_config["data"])
    vocabulary, splits = load_processed(data)
    held_out = splits["validation"]
    for style in ("jig", "reel"):
        mine = [i for i, source in enumerate(held_out.sources) if f"{style}/" in source.replace("\\", "/")][:2]
        rows = table[(table["value"] == style) & (table["statistic"] == "bars")].set_index("model")
        assert len(rows) == 2 and (rows["pieces"] == len(mine)).all()
        real_bars = [whole_pieces.piece_values(vocabulary.decode(held_out.piece(i)),
                                               vocabulary.settings.steps_per_quarter)["bars"] for i in mine]
        assert rows["real"].tolist() == pytest.approx([np.mean(real_bars)] * 2), "its own real pieces, none other"
