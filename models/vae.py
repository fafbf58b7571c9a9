"""Sequence variational autoencoder in the spirit of MusicVAE (`--model vae`).

A segment is one training window of seq_len tokens. A bidirectional LSTM reads
it (padding masked) and gives the mean and log-variance of a latent vector z
(`latent_dim`); z = mu + sigma * noise while training. An LSTM decoder starts
from a state computed from z and gets z concatenated to every input; it
reconstructs the segment with teacher forcing: its logits at position t
predict token t+1, as every model here does (so it reconstructs x[1:] and
predicts one token past the segment).

Loss per segment, divided by the tokens in it so that it reads in nats per token:

    loss = reconstruction + beta_t * max(KL - free_bits, 0) / seq_len

where reconstruction is the cross-entropy in nats per (non-padding) token and KL
is KL(q(z|x) || N(0, I)) in nats per segment. beta_t ramps linearly from 0 to
`beta` over the first `kl_anneal_steps` optimizer steps (counted by the
optimizer, so a resumed run goes on where it was), and KL below `free_bits` nats
per segment is free: both keep the decoder from ignoring z. Validation reports
reconstruction + beta * KL / seq_len with the full beta, no free bits and z
sampled as in training: with beta = 1 that is the negative ELBO per token, an
upper bound on the model's true loss that early stopping can compare across
epochs. Metrics: "loss", "reconstruction" (nats per token), "kl" (nats per
segment), "accuracy" (reconstruction accuracy).

call(x) uses z = mu of x itself, so it is a reconstruction, not a causal
next-token model: the logits at t have seen x[t+1] through z. Generation goes
through `VAEDecoder`, which only ever encodes tokens that already exist.

Interpolation (for generate.py): `interpolate(model, prompt_a, prompt_b, steps)`
gives the latents between the encodings of two seeds, and
`VAEDecoder(model, z=latents)` decodes them, one row per latent.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from musicgen.decoders import Decoder
from musicgen.errors import UserError
from musicgen.optimizer import compile_own_loss
from musicgen.spec import ModelSpec

DEFAULTS = {
    "seq_len": 64,  # tokens per segment (about 21 events), the unit the latent describes
    "embedding_dim": 128,  # size of each token's learned vector (shared by encoder and decoder)
    "encoder_units": 128,  # LSTM units per direction in the bidirectional encoder
    "units": 256,  # decoder LSTM state size
    "latent_dim": 64,  # size of the latent vector z
    "beta": 1.0,  # final weight of the KL term (1 = the true ELBO)
    "kl_anneal_steps": 500,  # optimizer steps over which the KL weight ramps from 0 to beta
    "free_bits": 16.0,  # nats of KL per segment that cost nothing (keeps the latent in use)
    "dropout": 0.2,  # dropout on the decoder's outputs, training only
}


@keras.saving.register_keras_serializable(package="musicgen")
class SequenceVAE(keras.Model):
    """Bidirectional LSTM encoder -> z -> autoregressive LSTM decoder; see the module docstring."""

    def __init__(self, vocabulary_size, segment_tokens, embedding_dim, encoder_units, units, latent_dim,
                 beta, kl_anneal_steps, free_bits, dropout, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.segment_tokens = segment_tokens
        self.embedding_dim = embedding_dim
        self.encoder_units = encoder_units
        self.units = units
        self.latent_dim = latent_dim
        self.beta = beta
        self.kl_anneal_steps = kl_anneal_steps
        self.free_bits = free_bits
        self.dropout_rate = dropout
        self.seed = seed
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.encoder = keras.layers.Bidirectional(keras.layers.LSTM(encoder_units), name="encoder")
        # float32 under mixed precision: z, exp(log_variance) and the KL are computed from them.
        self.to_mu = keras.layers.Dense(latent_dim, dtype="float32", name="mu")
        self.to_log_variance = keras.layers.Dense(latent_dim, kernel_initializer="zeros", dtype="float32",
                                                  name="log_variance")
        self.to_state = keras.layers.Dense(2 * units, activation="tanh", name="initial_state")
        self.decoder = keras.layers.LSTM(units, return_sequences=True, return_state=True, name="decoder")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")  # so is the reconstruction
        self.noise = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def build(self, input_shape):
        self.embedding.build((None, None))
        self.encoder.build((None, None, self.embedding_dim))
        self.to_mu.build((None, 2 * self.encoder_units))
        self.to_log_variance.build((None, 2 * self.encoder_units))
        self.to_state.build((None, self.latent_dim))
        self.decoder.build((None, None, self.embedding_dim + self.latent_dim))
        self.logits.build((None, None, self.units))

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, segment_tokens=self.segment_tokens,
                      embedding_dim=self.embedding_dim, encoder_units=self.encoder_units, units=self.units,
                      latent_dim=self.latent_dim, beta=self.beta, kl_anneal_steps=self.kl_anneal_steps,
                      free_bits=self.free_bits, dropout=self.dropout_rate, seed=self.seed)
        return config

    # The pieces, shared by training, call() and VAEDecoder.

    def encode(self, tokens, training=False):
        """(batch, time) token ids (padding masked) -> (mu, log variance), each (batch, latent_dim)."""
        hidden = self.encoder(self.embedding(tokens), mask=ops.not_equal(tokens, 0), training=training)
        return self.to_mu(hidden), self.to_log_variance(hidden)

    def initial_state(self, z):
        h, c = ops.split(self.to_state(z), 2, axis=-1)
        return [h, c]

    def decoder_inputs(self, tokens, z):
        """Token embeddings with z concatenated at every position."""
        embedded = self.embedding(tokens)
        repeated = ops.repeat(z[:, None, :], ops.shape(tokens)[1], axis=1)
        return ops.concatenate([embedded, ops.cast(repeated, embedded.dtype)], axis=-1)

    def read_out(self, outputs, training=False):
        return self.logits(self.dropout(outputs, training=training))

    def decode(self, tokens, z, training=False):
        """Teacher-forced logits (batch, time, vocabulary) for `tokens` given z (batch, latent_dim)."""
        outputs, _, _ = self.decoder(self.decoder_inputs(tokens, z), initial_state=self.initial_state(z),
                                     training=training)
        return self.read_out(outputs, training=training)

    def call(self, tokens, training=False):
        tokens = ops.cast(tokens, "int32")
        mu, _ = self.encode(tokens, training=training)
        return self.decode(tokens, mu, training=training)

    # Training: the ELBO with KL annealing and free bits.

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker, self.accuracy_tracker]

    def kl_weight(self):
        """beta_t: ramps linearly from 0 to beta over kl_anneal_steps optimizer steps."""
        step = ops.cast(self.optimizer.iterations + 1, "float32")
        return self.beta * ops.minimum(1.0, step / max(1, self.kl_anneal_steps))

    def _terms(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = ops.cast(x, "int32")
        mu, log_variance = self.encode(x, training=training)
        noise = keras.random.normal(ops.shape(mu), seed=self.noise)
        z = mu + ops.exp(0.5 * log_variance) * noise
        logits = self.decode(x, z, training=training)
        weights = ops.ones(ops.shape(y), "float32") if sample_weight is None else ops.cast(sample_weight, "float32")
        cross_entropy = ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
        reconstruction = ops.sum(cross_entropy * weights) / ops.maximum(ops.sum(weights), 1.0)
        kl = 0.5 * ops.sum(ops.exp(log_variance) + ops.square(mu) - 1.0 - log_variance, axis=-1)  # per segment
        tokens = ops.cast(ops.shape(x)[1], "float32")
        return x, y, weights, logits, reconstruction, kl, tokens

    def _track(self, x, y, weights, logits, loss, reconstruction, kl):
        batch = ops.shape(x)[0]
        self.loss_tracker.update_state(loss, sample_weight=batch)
        self.reconstruction_tracker.update_state(reconstruction, sample_weight=batch)
        self.kl_tracker.update_state(ops.mean(kl), sample_weight=batch)
        self.accuracy_tracker.update_state(y, logits, sample_weight=weights)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            x, y, weights, logits, reconstruction, kl, tokens = self._terms(data, training=True)
            penalty = ops.mean(ops.maximum(kl - self.free_bits, 0.0))
            loss = reconstruction + self.kl_weight() * penalty / tokens
            # Replicas' gradients are summed, so each differentiates its share of the mean (as compiled losses do).
            replica_loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(replica_loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._track(x, y, weights, logits, loss, reconstruction, kl)

    def test_step(self, data):
        x, y, weights, logits, reconstruction, kl, tokens = self._terms(data, training=False)
        loss = reconstruction + self.beta * ops.mean(kl) / tokens
        return self._track(x, y, weights, logits, loss, reconstruction, kl)


def build(vocabulary_size, hp):
    for key in ("latent_dim", "encoder_units", "units", "embedding_dim"):
        if hp[key] < 1:
            raise UserError(f"vae: {key} must be at least 1, got {hp[key]}")
    if hp["beta"] < 0 or hp["free_bits"] < 0 or hp["kl_anneal_steps"] < 0:
        raise UserError("vae: beta, free_bits and kl_anneal_steps must not be negative")
    model = SequenceVAE(vocabulary_size, hp["seq_len"], hp["embedding_dim"], hp["encoder_units"], hp["units"],
                        hp["latent_dim"], hp["beta"], hp["kl_anneal_steps"], hp["free_bits"], hp["dropout"],
                        seed=hp["random_seed"], name="vae")
    model.build((None, hp["seq_len"]))
    return model


def _last_segment(model, prompts):
    """The last segment_tokens tokens of each row, left-padded with the pad id 0 when shorter."""
    prompts = np.asarray(prompts, dtype=np.int32)
    if prompts.ndim == 1:
        prompts = prompts[None]
    segment = prompts[:, -model.segment_tokens:]
    missing = model.segment_tokens - segment.shape[1]
    if missing > 0:
        segment = np.concatenate([np.zeros((len(segment), missing), np.int32), segment], axis=1)
    return segment


def encode(model, prompts):
    """mu of each prompt's last seq_len tokens (left-padded, padding masked): float64 (batch, latent_dim).

    `prompts` is (time,) for one seed or (batch, time).
    """
    mu, _ = model.encode(tf.constant(_last_segment(model, prompts)))
    return keras.ops.convert_to_numpy(mu).astype(np.float64)


def interpolate(model, prompt_a, prompt_b, steps, spherical=True):
    """Latents from encode(prompt_a) to encode(prompt_b): float64 (steps, latent_dim), endpoints included.

    Spherical interpolation (slerp) by default, as MusicVAE does: intermediate
    points keep the norm typical of the prior instead of shrinking towards 0.
    Falls back to a straight line when the two encodings are (anti)parallel.
    Decode them with `VAEDecoder(model, z=latents)`, one batch row per latent.
    """
    if steps < 2:
        raise UserError(f"an interpolation needs at least 2 steps (the two seeds' encodings), got {steps}")
    a, b = encode(model, np.asarray(prompt_a).reshape(1, -1))[0], encode(model, np.asarray(prompt_b).reshape(1, -1))[0]
    fractions = np.linspace(0.0, 1.0, steps)[:, None]
    cosine = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))
    if spherical and np.sin(omega) > 1e-6:
        latents = (np.sin((1 - fractions) * omega) * a + np.sin(fractions * omega) * b) / np.sin(omega)
    else:
        latents = (1 - fractions) * a + fractions * b
    latents[0], latents[-1] = a, b  # exactly the encodings, whatever the rounding
    return latents


class VAEDecoder(Decoder):
    """Next-token logits from the VAE's decoder, one LSTM step per token with the state carried.

    Where z comes from:
      mode="posterior" (default): z = mu of the prompt's last seq_len tokens (a continuation);
      mode="prior": z ~ N(0, I), one per batch row, from `seed` (a fresh sample; the prompt,
        e.g. just <start>, only primes the decoder);
      z=array (latent_dim,) or (batch, latent_dim): that z (e.g. from `interpolate`).
    start(prompt) computes z, starts the LSTM from z's initial state and primes it
    with the prompt's last seq_len tokens (the segment z describes), so the decoder
    sees the tokens from position 0 of its segment exactly as in training.

    A segment holds seq_len decoder inputs. When generation runs past that, the
    decoder re-encodes the most recent `overlap` tokens (default seq_len // 2) to
    a fresh z = mu, restarts from its initial state, primes itself on those tokens
    and goes on; this happens every seq_len - overlap tokens, in every mode.

    State: (h, c, z, the tokens of the current segment so far).
    """

    def __init__(self, model, mode="posterior", z=None, seed=None, overlap=None):
        if mode not in ("posterior", "prior"):
            raise UserError(f"VAE decoding mode must be 'posterior' or 'prior', got {mode!r}")
        self.model = model
        self.mode = mode
        self.z = None if z is None else np.atleast_2d(np.asarray(z, dtype=np.float32))
        if self.z is not None and self.z.shape[1] != model.latent_dim:
            raise UserError(f"z has {self.z.shape[1]} dimensions but the model's latent has {model.latent_dim}")
        self.rng = np.random.default_rng(seed)
        self.segment_tokens = model.segment_tokens
        self.overlap = max(1, min(overlap or self.segment_tokens // 2, self.segment_tokens - 1))
        self.cell = model.decoder.cell
        self.sequence = keras.layers.RNN(self.cell, return_sequences=True, return_state=True)
        self._encode = tf.function(lambda tokens: model.encode(tokens)[0], reduce_retracing=True)
        self._prime = tf.function(self._prime_graph, reduce_retracing=True)
        self._step = tf.function(self._step_graph, reduce_retracing=True)

    def _prime_graph(self, tokens, z):
        outputs, h, c = self.sequence(self.model.decoder_inputs(tokens, z), initial_state=self.model.initial_state(z))
        return self.model.read_out(outputs[:, -1]), h, c

    def _step_graph(self, tokens, z, h, c):
        inputs = self.model.decoder_inputs(tokens[:, None], z)[:, 0]
        output, (h, c) = self.cell(inputs, [h, c], training=False)
        return self.model.read_out(output), h, c

    def _begin_segment(self, segment, z):
        logits, h, c = self._prime(tf.constant(segment), tf.constant(z))
        return logits.numpy().astype(np.float64), (h, c, z, segment)

    def start(self, prompt):
        prompt = np.asarray(prompt, dtype=np.int32)
        segment = prompt[:, -self.segment_tokens:]
        if self.z is not None:
            z = np.broadcast_to(self.z, (len(prompt), self.model.latent_dim)).astype(np.float32)
        elif self.mode == "prior":
            z = self.rng.standard_normal((len(prompt), self.model.latent_dim)).astype(np.float32)
        else:
            z = self._posterior(segment)
        return self._begin_segment(segment, z)

    def _posterior(self, tokens):
        return self._encode(tf.constant(_last_segment(self.model, tokens))).numpy()

    def step(self, tokens, state):
        tokens = np.asarray(tokens, dtype=np.int32)
        h, c, z, segment = state
        segment = np.concatenate([segment, tokens[:, None]], axis=1)
        if segment.shape[1] > self.segment_tokens:
            recent = segment[:, -self.overlap:]
            return self._begin_segment(recent, self._posterior(recent))
        logits, h, c = self._step(tf.constant(tokens), tf.constant(z), h, c)
        return logits.numpy().astype(np.float64), (h, c, z, segment)

    def reorder(self, state, rows):
        h, c, z, segment = state
        rows = np.asarray(rows)
        return tf.gather(h, rows), tf.gather(c, rows), z[rows], segment[rows]


SPEC = ModelSpec(
    name="vae",
    build=build,
    defaults=DEFAULTS,
    decoder=VAEDecoder,
    description="sequence variational autoencoder (MusicVAE-style): bidirectional LSTM encoder, latent z, LSTM decoder",
    compile=compile_own_loss,
    output_size=lambda model: model.vocabulary_size,
    prior_decoder=lambda model, seed: VAEDecoder(model, mode="prior", seed=seed),
    interpolation_decoder=lambda model, prompt_a, prompt_b, steps: VAEDecoder(
        model, z=interpolate(model, prompt_a, prompt_b, steps)),
)
