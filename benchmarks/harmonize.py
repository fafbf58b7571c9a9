"""How well does generate.py --harmonize write the voices under a melody? Held-out chorales, their sopranos kept.

    python benchmarks/harmonize.py checkpoints/bach-notes-transformer checkpoints/bach-notes-ngram --pieces 12

For each of the first --pieces test pieces of the runs' data, every run harmonizes the
piece's top voice (musicgen/harmonize.py) and the table gives:

- lower voices, nats per note: the held-out piece's own notes under its soprano
  (every note but the highest of its onset), scored with the model reading the
  piece as written, so the soprano so far and at the current onset is in view;
- beats on a triad: the share of beats whose sounding pitch classes all lie in
  one major or minor triad (harmonize.triad_share), of the harmonizations
  generated, against the real pieces (the same melodies as Bach set them);
- notes per melody note: how full the harmonizations are, against the real pieces.
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from models import registry  # noqa: E402
from musicgen import sampling  # noqa: E402
from musicgen.dataset import load_processed  # noqa: E402
from musicgen.encoding import events_to_notes  # noqa: E402
from musicgen.evaluation import score_pieces  # noqa: E402
from musicgen.harmonize import MelodyConstraint, triad_share  # noqa: E402


def top_voice_flags(vocabulary, piece):
    """Per token after the first: whether it belongs to the first (highest) note event of its onset."""
    flags, first_of_onset, in_top = [], True, False
    for token in piece[1:].tolist():
        kind = vocabulary.kind(token)
        if kind in ("note", "chord", "rest", "velocity"):
            in_top = first_of_onset
            first_of_onset = False
        flags.append(in_top or kind in ("start", "end", "control"))
        if kind == "shift":
            in_top = False
            first_of_onset = vocabulary.shift_steps[token] > 0 or first_of_onset
    return np.array(flags)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of the same data")
    parser.add_argument("--pieces", type=int, default=12, help="test pieces harmonized (default: 12)")
    parser.add_argument("--random-seed", type=int, default=0)
    args = parser.parse_args()
    runs = [registry.load_run(path) for path in args.runs]
    vocabulary = runs[0].vocabulary
    _, splits = load_processed(runs[0].run_config["data"], ("test",))
    test = splits["test"]
    indices = test.original_indices()[: args.pieces]
    spq = vocabulary.settings.steps_per_quarter
    real = [events_to_notes(vocabulary.decode(test.piece(i))) for i in indices]
    melody_recipe = dataclasses.replace(runs[0].recipe, melody_only=True)
    melodies = [melody_recipe.read_first(Path(str(test.sources[i])), vocabulary.settings, "test piece").notes
                for i in indices]
    print(f"{len(indices)} test pieces of {runs[0].run_config['data']}")
    print("| harmonized by | lower voices, nats per note | beats on a triad | notes per melody note |")
    print("|---|---|---|---|")
    for run in runs:
        pieces = [test.piece(i) for i in indices]
        scores = score_pieces(run.spec.decoder(run.model), pieces, run.vocabulary.pad_id)
        lower_nll = lower_notes = 0.0
        for piece, (log_probabilities, _) in zip(pieces, scores):
            lower = ~top_voice_flags(run.vocabulary, piece)
            lower_nll -= log_probabilities[lower].sum()
            lower_notes += run.vocabulary.strikes[piece[1:][lower]].sum()
        strategy = sampling.get("top-p", seed=args.random_seed)
        made = []
        for melody in melodies:
            prompt = np.array([[run.vocabulary.start_id]], np.int32)
            tokens = strategy.generate(run.spec.decoder(run.model), run.vocabulary, prompt, len(melody) * 16 + 64,
                                       constraint=MelodyConstraint(run.vocabulary, melody, 1))[0]
            made.append(events_to_notes(run.vocabulary.decode(tokens)))
        triads = np.mean([triad_share(notes, spq) for notes in made])
        fullness = sum(map(len, made)) / sum(map(len, melodies))
        print(f"| {run.name} | {lower_nll / lower_notes:.3f} | {triads:.2f} | {fullness:.2f} |")
    real_triads = np.mean([triad_share(notes, spq) for notes in real])
    print(f"| Bach (the real pieces) | - | {real_triads:.2f} | {sum(map(len, real)) / sum(map(len, melodies)):.2f} |")


if __name__ == "__main__":
    main()
