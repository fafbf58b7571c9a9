"""Mode-collapse check for a trained gan: how different are its samples for the same condition?

    python benchmarks/gan_diversity.py checkpoints/gan --pieces 16

Conditions are the openings of validation pieces; see models.gan_diversity.sample_diversity for the three figures
(0 = every sample the same, i.e. collapse; the greedy one is 0 when the generator ignores its noise).
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from models import registry  # noqa: E402
from models.gan_diversity import sample_diversity  # noqa: E402
from musicgen.dataset import load_processed  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a gan run folder")
    parser.add_argument("--pieces", type=int, default=16, help="validation pieces used as conditions")
    parser.add_argument("--samples", type=int, default=8, help="samples drawn per condition")
    args = parser.parse_args()
    run = registry.load_run(args.run)
    model = run.model
    _, splits = load_processed(run.run_config["data"], ("validation",))
    validation = splits["validation"]
    length = model.segment_tokens
    conditions = np.stack([validation.piece(i)[:length] for i in range(len(validation))
                           if len(validation.piece(i)) >= length][: args.pieces])
    for name, value in sample_diversity(model, conditions, args.samples).items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()
