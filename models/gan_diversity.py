"""How varied the GAN's segments are for one condition: the measure of mode collapse (benchmarks/gan_diversity.py).

A generator that ignores its noise writes the same segment for a condition
every time; the WGAN-GP objective alone does not prevent it, which is why the
GAN's loss has a mode-seeking term (models/gan.py).
"""

import itertools

import keras
import numpy as np
import tensorflow as tf

from models.gan import last_segment


def sample_diversity(model, conditions, n_samples=8, seed=0):
    """How different the generator's segments are for the same condition (0 = mode collapse).

    For each condition (rows of token ids; the last segment_tokens are used), draws
    `n_samples` segments with fresh noise z and returns:
      pairwise_difference: mean share of positions where two sampled segments differ,
          tokens drawn from softmax(logits) as in training (Gumbel-max);
      distinct_trigrams: distinct token 3-grams / all 3-grams among one condition's samples;
      greedy_pairwise_difference: the same with each token the logits' argmax, so all
          the variety comes from z (0 means the generator ignores its noise).
    Averaged over conditions.
    """
    conditions = last_segment(conditions, model.segment_tokens)
    rng = np.random.default_rng(seed)
    repeated = np.repeat(conditions, n_samples, axis=0)
    z = rng.standard_normal((len(repeated), model.noise_dim)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(model.generator(tf.constant(repeated), tf.constant(z), training=False))
    gumbel = -np.log(-np.log(rng.uniform(1e-6, 1 - 1e-6, logits.shape)))
    shape = (len(conditions), n_samples, model.segment_tokens)
    sampled = (logits + gumbel).argmax(-1).reshape(shape)
    greedy = logits.argmax(-1).reshape(shape)
    pairs = list(itertools.combinations(range(n_samples), 2))

    def pairwise(segments):
        if not pairs:
            return 0.0
        return float(np.mean([(segments[:, i] != segments[:, j]).mean() for i, j in pairs]))

    trigram_shares = []
    for samples in sampled:
        trigrams = [tuple(row[i: i + 3]) for row in samples.tolist() for i in range(len(row) - 2)]
        trigram_shares.append(len(set(trigrams)) / max(1, len(trigrams)))
    return {"pairwise_difference": pairwise(sampled), "distinct_trigrams": float(np.mean(trigram_shares)),
            "greedy_pairwise_difference": pairwise(greedy)}
