"""A conditional, segment-by-segment GAN (in the spirit of MidiNet), trained with WGAN-GP.

A training window of 2 * segment_tokens tokens is cut in two: the first half is
the condition (the previous segment), the second half the real continuation.

    generator G(condition, z): embedding + GRU over the condition (plus the
        condition's last event fed in directly, which tells G where in the
        3-token event cycle the segment starts), mixed with noise z, then a GRU
        decoder over learned position vectors -> logits for every position of
        the next segment at once (not autoregressive over tokens). A Gumbel-max
        draw from those logits is a segment of one-hot tokens; gradients reach
        G through the Gumbel-softmax relaxation (straight-through by default, so
        the critic only ever sees one-hot vectors and cannot tell fakes by
        their softness).
    critic D(condition, segment): one projection matrix embeds both the
        condition's ids and the segment's one-hot (or soft) vectors (batch,
        tokens, vocabulary), strided convolutions read the two as one sequence,
        a linear layer gives a score.

Objective: Wasserstein GAN with gradient penalty (Gulrajani et al. 2017) on
interpolates between real one-hot and fake segments, `n_critic` critic updates
per generator update, two Adam optimizers with beta_1=0.5, beta_2=0.9. The
generator's loss is -mean D(fake), plus two optional terms (on by default, see
DEFAULTS): `mle_weight` times the cross-entropy of G's logits against the real
continuation (a stabiliser that teaches the token statistics quickly), and
`diversity_weight` times a mode-seeking term (Mao et al. 2019) that keeps G from
ignoring z. Set both to 0 for a pure WGAN-GP.

Reported metrics: "loss" is the critic's estimate of the Wasserstein distance,
mean D(real) - mean D(fake), without the penalty; on validation windows it is
what early stopping minimises (lower: the current critic separates held-out
music from fakes less well). It is relative to a critic that keeps learning, so
it is noisy: it rises while the critic gets sharper and falls when G catches
up; hence the longer patience. "critic_loss" = -loss + gp_weight *
gradient_penalty, "generator_loss" = G's whole loss (on validation -mean
D(fake)), "gradient_penalty", and, for information, "nll" (nats per token) and
"accuracy" of G's logits on the real continuation (z random in training, z = 0
on validation).

The model contract (token ids in, next-token logits out): call(x) splits x
into segments of segment_tokens; logits at position t (predicting token t + 1)
are G's logits for that token given the previous complete segment, with z = 0
so that predictions are deterministic. Positions before the first complete
segment (t < segment_tokens - 1) get zero logits, i.e. a uniform distribution.
Generation does not use call(): GANDecoder draws a fresh z per segment.
"""

import keras
import numpy as np
import tensorflow as tf

from musicgen.decoders import Decoder
from musicgen.errors import UserError
from musicgen.spec import ModelSpec

DEFAULTS = {
    "segment_tokens": 48,  # tokens per generated segment (16 events); condition and continuation are one each
    "seq_len": 96,  # training window: one condition segment + one real continuation (must be 2 * segment_tokens)
    "batch_size": 16,  # windows per step; small, so that an epoch has ~100 generator updates
    "patience": 8,  # the validation Wasserstein estimate is noisy (the critic keeps changing): wait longer
    "embedding_dim": 64,  # token vectors of the generator and the critic's projection
    "units": 128,  # GRU size of the generator's condition encoder and segment decoder
    "noise_dim": 32,  # size of the noise vector z, one per segment
    "critic_filters": 128,  # channels of the critic's convolutions
    "n_critic": 2,  # critic updates per generator update (5 measured no better, at twice the time)
    "gp_weight": 10.0,  # weight of the gradient penalty (lambda in WGAN-GP)
    "gumbel_temperature": 1.0,  # temperature of the Gumbel-softmax relaxation the generator's gradients go through
    "straight_through": True,  # critic sees hard one-hot fakes (soft gradients) instead of soft vectors
    "mle_weight": 0.5,  # weight of the cross-entropy of G's logits against the real continuation (0: pure GAN)
    "diversity_weight": 0.01,  # weight of the mode-seeking term rewarding different segments for different z
    "condition_dropout": 0.2,  # share of conditions whose beginning is replaced by padding (short seeds)
    "adam_beta_1": 0.5,  # Adam's first-moment decay for both optimizers (WGAN-GP uses 0.5 or 0)
    "adam_beta_2": 0.9,  # Adam's second-moment decay for both optimizers
    # WGAN-GP's critic is kept in check by its gradient penalty, not by weight decay, clipping or a decaying rate:
    # the plain Adam it was measured with.
    "schedule": "constant",
    "weight_decay": 0.0,
    "clipnorm": 0.0,
}

PAD_ID = 0  # musicgen.vocabulary.SPECIAL_TOKENS starts with <pad>
LAST_TOKENS = 3  # the condition's last event, fed to the generator's context directly as well as through its GRU


@keras.saving.register_keras_serializable(package="musicgen")
class SegmentGenerator(keras.layers.Layer):
    """(condition ids (batch, segment), z (batch, noise_dim)) -> logits (batch, segment, vocabulary)."""

    def __init__(self, vocabulary_size, segment_tokens, embedding_dim, units, noise_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.segment_tokens = segment_tokens
        self.embedding_dim = embedding_dim
        self.units = units
        self.noise_dim = noise_dim
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding",
                                                embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.encoder = keras.layers.GRU(units, name="encoder")
        self.context = keras.layers.Dense(units, activation="tanh", name="context")
        self.decoder = keras.layers.GRU(units, return_sequences=True, name="decoder")
        self.logits = keras.layers.Dense(vocabulary_size, name="logits")

    def build(self, input_shape=None):
        self.positions = self.add_weight(shape=(self.segment_tokens, self.embedding_dim), name="positions",
                                         initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.embedding.build((None, self.segment_tokens))
        self.encoder.build((None, self.segment_tokens, self.embedding_dim))
        self.context.build((None, self.units + LAST_TOKENS * self.embedding_dim + self.noise_dim))
        self.decoder.build((None, self.segment_tokens, self.embedding_dim + self.units))
        self.logits.build((None, self.segment_tokens, self.units))

    def call(self, condition, z, training=False):
        condition = tf.cast(condition, "int32")
        # Left padding (a seed shorter than a segment) is skipped: the GRU state starts at the first real token.
        embedded = self.embedding(condition)
        encoded = self.encoder(embedded, mask=condition != PAD_ID, training=training)
        # The last event's tokens also go straight in: they fix where in the 3-token event cycle the segment starts.
        last = tf.reshape(embedded[:, -LAST_TOKENS:], [-1, LAST_TOKENS * self.embedding_dim])
        context = self.context(tf.concat([encoded, last, tf.cast(z, encoded.dtype)], axis=-1))
        batch = tf.shape(condition)[0]
        positions = tf.broadcast_to(self.positions[None], [batch, self.segment_tokens, self.embedding_dim])
        repeated = tf.broadcast_to(context[:, None], [batch, self.segment_tokens, self.units])
        hidden = self.decoder(tf.concat([positions, repeated], axis=-1), initial_state=context, training=training)
        return self.logits(hidden)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, segment_tokens=self.segment_tokens,
                      embedding_dim=self.embedding_dim, units=self.units, noise_dim=self.noise_dim)
        return config


@keras.saving.register_keras_serializable(package="musicgen")
class SegmentCritic(keras.layers.Layer):
    """(condition ids (batch, segment), segment (batch, segment, vocabulary) one-hot or soft) -> score (batch,).

    One projection matrix serves both: the condition's ids pick its rows, the
    segment's vectors are multiplied by it, so a one-hot segment and the same
    ids as a condition look the same to the convolutions.
    """

    def __init__(self, vocabulary_size, segment_tokens, embedding_dim, filters, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.segment_tokens = segment_tokens
        self.embedding_dim = embedding_dim
        self.filters = filters
        # 2 * segment positions -> halved three times; each convolution sees 5 positions.
        self.convolutions = [keras.layers.Conv1D(filters, 5, strides=2, padding="same", name=f"conv_{i}")
                             for i in range(3)]
        self.score = keras.layers.Dense(1, use_bias=False, name="score")  # a bias cancels out of every WGAN term

    def build(self, input_shape=None):
        self.projection = self.add_weight(shape=(self.vocabulary_size, self.embedding_dim), name="projection",
                                          initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.positions = self.add_weight(shape=(2 * self.segment_tokens, self.embedding_dim), name="positions",
                                         initializer=keras.initializers.RandomNormal(stddev=0.1))
        length, channels = 2 * self.segment_tokens, self.embedding_dim
        for convolution in self.convolutions:
            convolution.build((None, length, channels))
            length, channels = (length + 1) // 2, self.filters
        self.score.build((None, length * channels))

    def call(self, condition, segment):
        """`segment`: token ids (batch, segment), read as exact one-hot vectors, or vectors (batch, segment, vocab)."""
        condition = tf.gather(self.projection, tf.cast(condition, "int32"))
        if segment.dtype.is_integer:  # the same as one-hot vectors times the projection, without the big matmul
            segment = tf.gather(self.projection, tf.cast(segment, "int32"))
        else:
            segment = tf.einsum("btv,ve->bte", tf.cast(segment, self.projection.dtype), self.projection)
        x = tf.concat([condition, segment], axis=1) + self.positions[None]
        for convolution in self.convolutions:
            x = tf.nn.leaky_relu(convolution(x), alpha=0.2)
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        return self.score(x)[:, 0]

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, segment_tokens=self.segment_tokens,
                      embedding_dim=self.embedding_dim, filters=self.filters)
        return config


@keras.saving.register_keras_serializable(package="musicgen")
class SegmentGAN(keras.Model):
    """Generator + critic trained adversarially; call() is the generator's (z = 0) next-token logits."""

    def __init__(self, vocabulary_size, segment_tokens=48, embedding_dim=64, units=128, noise_dim=32,
                 critic_filters=128, n_critic=2, gp_weight=10.0, gumbel_temperature=1.0, straight_through=True,
                 mle_weight=0.5, diversity_weight=0.01, condition_dropout=0.2, adam_beta_1=0.5, adam_beta_2=0.9,
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.segment_tokens = segment_tokens
        self.embedding_dim = embedding_dim
        self.units = units
        self.noise_dim = noise_dim
        self.critic_filters = critic_filters
        self.n_critic = n_critic
        self.gp_weight = gp_weight
        self.gumbel_temperature = gumbel_temperature
        self.straight_through = straight_through
        self.mle_weight = mle_weight
        self.diversity_weight = diversity_weight
        self.condition_dropout = condition_dropout
        self.adam_beta_1 = adam_beta_1
        self.adam_beta_2 = adam_beta_2
        self.seed = seed
        self.generator = SegmentGenerator(vocabulary_size, segment_tokens, embedding_dim, units, noise_dim,
                                          name="generator")
        self.critic = SegmentCritic(vocabulary_size, segment_tokens, embedding_dim, critic_filters, name="critic")
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         ("loss", "critic_loss", "generator_loss", "gradient_penalty", "nll")}
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.critic_optimizer = None

    def build(self, input_shape=None):
        self.generator.build()
        self.critic.build()
        self.built = True

    # --- the model contract: next-token logits ---------------------------------------------------------------

    def call(self, tokens, training=False):
        tokens = tf.cast(tokens, "int32")
        segment = self.segment_tokens
        batch, time = tf.shape(tokens)[0], tf.shape(tokens)[1]
        complete = time // segment
        conditions = tf.reshape(tokens[:, : complete * segment], [batch * complete, segment])
        z = tf.zeros([batch * complete, self.noise_dim])
        logits = self.generator(conditions, z, training=False)  # token j * segment + i given segment j - 1
        logits = tf.reshape(logits, [batch, complete * segment, self.vocabulary_size])
        uniform = tf.minimum(segment - 1, time)  # positions whose next token has no complete segment before it
        return tf.concat([tf.zeros([batch, uniform, self.vocabulary_size], logits.dtype),
                          logits[:, : time - uniform]], axis=1)

    # --- training ------------------------------------------------------------------------------------------------

    @property
    def metrics(self):
        return [*self.trackers.values(), self.accuracy_tracker]

    def compile(self, optimizer, critic_optimizer, **kwargs):
        """Train the generator with `optimizer` and the critic with `critic_optimizer` (see compile_gan).

        The GAN computes and reports its own losses, so no loss or metrics are compiled.
        """
        super().compile(optimizer=optimizer, **kwargs)
        self.critic_optimizer = keras.optimizers.get(critic_optimizer)
        if self.built:
            self._build_optimizers()

    def _build_optimizers(self):
        # Each optimizer owns one network's variables, always in the same order, so that saved slots load back.
        if not self.optimizer.built:
            self.optimizer.build(self.generator.trainable_variables)
        if not self.critic_optimizer.built:
            self.critic_optimizer.build(self.critic.trainable_variables)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self.critic_optimizer is not None:
            config["critic_optimizer"] = keras.saving.serialize_keras_object(self.critic_optimizer)
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    def _split(self, x):
        x = tf.cast(x, "int32")
        return x[:, : self.segment_tokens], x[:, self.segment_tokens: 2 * self.segment_tokens]

    def _noise(self, batch):
        return keras.random.normal((batch, self.noise_dim), seed=self.seed_generator)

    def _relax(self, logits):
        """A Gumbel-max draw from softmax(logits), as one-hot vectors whose gradient is the Gumbel-softmax's.

        Without straight_through, the soft Gumbel-softmax vectors themselves.
        """
        uniform = keras.random.uniform(tf.shape(logits), minval=1e-6, maxval=1.0 - 1e-6, seed=self.seed_generator)
        perturbed = logits - tf.math.log(-tf.math.log(uniform))
        soft = tf.nn.softmax(perturbed / self.gumbel_temperature, axis=-1)
        if not self.straight_through:
            return soft
        hard = tf.one_hot(tf.argmax(perturbed, axis=-1), self.vocabulary_size, dtype=soft.dtype)
        return hard + soft - tf.stop_gradient(soft)

    def _fakes(self, condition, copies, training):
        """Segments for the critic (no gradient to G): `copies` draws per condition, each with its own z.

        Token ids (the critic reads them as one-hot) when straight_through, else soft vectors.
        """
        condition = tf.tile(condition, [copies, 1])
        logits = tf.stop_gradient(self.generator(condition, self._noise(tf.shape(condition)[0]), training=training))
        if not self.straight_through:
            return tf.split(self._relax(logits), copies)
        flat = tf.reshape(logits, [-1, self.vocabulary_size])
        ids = tf.reshape(keras.random.categorical(flat, 1, dtype="int32", seed=self.seed_generator),
                         [-1, self.segment_tokens])
        return tf.split(ids, copies)

    def _drop_condition(self, condition):
        """Pad a random-length beginning of some conditions, as a short seed would be."""
        batch = tf.shape(condition)[0]
        dropped = keras.random.uniform((batch, 1), seed=self.seed_generator) < self.condition_dropout
        cut = tf.cast(keras.random.uniform((batch, 1), seed=self.seed_generator) * self.segment_tokens, "int32")
        position = tf.range(self.segment_tokens)[None]
        return tf.where(dropped & (position < cut), PAD_ID, condition)

    def _critic_terms(self, condition, real, fake):
        """(Wasserstein estimate, gradient penalty, mean fake score) for real ids and fake ids or vectors."""
        as_vectors = [tf.one_hot(x, self.vocabulary_size) if x.dtype.is_integer else x for x in (real, fake)]
        epsilon = keras.random.uniform((tf.shape(real)[0], 1, 1), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            mixed = epsilon * as_vectors[0] + (1.0 - epsilon) * as_vectors[1]
            tape.watch(mixed)
            mixed_score = self.critic(condition, mixed)
        gradient = tape.gradient(mixed_score, mixed)
        norm = tf.sqrt(tf.reduce_sum(tf.square(gradient), axis=[1, 2]) + 1e-12)
        penalty = tf.reduce_mean(tf.square(norm - 1.0))
        real_score = tf.reduce_mean(self.critic(condition, real))
        fake_score = tf.reduce_mean(self.critic(condition, fake))
        return real_score - fake_score, penalty, fake_score

    def _likelihood_metrics(self, logits, continuation, sample_weight):
        weights = None
        if sample_weight is not None:
            weights = tf.cast(sample_weight, logits.dtype)[:, self.segment_tokens - 1: 2 * self.segment_tokens - 1]
        nll = keras.losses.sparse_categorical_crossentropy(continuation, logits, from_logits=True)
        self.trackers["nll"].update_state(nll, sample_weight=weights)
        self.accuracy_tracker.update_state(continuation, logits, sample_weight=weights)

    def _report(self, **values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {metric.name: metric.result() for metric in self.metrics}

    def _generator_loss(self, condition, continuation):
        """(-mean D(fake) plus the optional cross-entropy and mode-seeking terms, G's logits for the batch)."""
        batch = tf.shape(condition)[0]
        copies = 2 if self.diversity_weight else 1
        z = self._noise(copies * batch)
        logits = self.generator(tf.tile(condition, [copies, 1]), z, training=True)
        loss = -tf.reduce_mean(self.critic(tf.tile(condition, [copies, 1]), self._relax(logits)))
        if self.mle_weight:
            loss += self.mle_weight * tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(continuation, logits[:batch], from_logits=True))
        if self.diversity_weight:
            # Mode seeking (Mao et al. 2019): two noises for one condition should give different segments.
            first, second = tf.split(tf.nn.softmax(logits), 2)
            z_first, z_second = tf.split(z, 2)
            ratio = (tf.reduce_mean(tf.abs(first - second), axis=[1, 2]) * self.vocabulary_size / 2
                     / tf.reduce_mean(tf.abs(z_first - z_second), axis=1))
            loss += self.diversity_weight / (tf.reduce_mean(ratio) + 1e-5)
        return loss, logits[:batch]

    def train_step(self, data):
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        condition, continuation = self._split(x)
        condition = self._drop_condition(condition)
        # G does not change during the critic updates, so all their fakes come from one (batched) pass.
        fakes = self._fakes(condition, self.n_critic, training=True)
        # Replicas' gradients are summed, so each differentiates its share of the mean losses (as compiled losses do).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        critic_variables = self.critic.trainable_variables
        for fake in fakes:
            with tf.GradientTape() as tape:
                distance, penalty, _ = self._critic_terms(condition, continuation, fake)
                critic_loss = -distance + self.gp_weight * penalty
                replica_loss = critic_loss / replicas
            self.critic_optimizer.apply_gradients(zip(tape.gradient(replica_loss, critic_variables), critic_variables))
        generator_variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            generator_loss, logits = self._generator_loss(condition, continuation)
            replica_loss = generator_loss / replicas
        self.optimizer.apply_gradients(zip(tape.gradient(replica_loss, generator_variables), generator_variables))
        self._likelihood_metrics(logits, continuation, sample_weight)  # with this step's random z
        return self._report(loss=distance, critic_loss=critic_loss, generator_loss=generator_loss,
                            gradient_penalty=penalty)

    def test_step(self, data):
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        condition, continuation = self._split(x)
        (fake,) = self._fakes(condition, 1, training=False)
        distance, penalty, fake_score = self._critic_terms(condition, continuation, fake)
        zeros = tf.zeros([tf.shape(condition)[0], self.noise_dim])
        self._likelihood_metrics(self.generator(condition, zeros, training=False), continuation, sample_weight)
        return self._report(loss=distance, critic_loss=-distance + self.gp_weight * penalty,
                            generator_loss=-fake_score, gradient_penalty=penalty)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, segment_tokens=self.segment_tokens,
                      embedding_dim=self.embedding_dim, units=self.units, noise_dim=self.noise_dim,
                      critic_filters=self.critic_filters, n_critic=self.n_critic, gp_weight=self.gp_weight,
                      gumbel_temperature=self.gumbel_temperature, straight_through=self.straight_through,
                      mle_weight=self.mle_weight, diversity_weight=self.diversity_weight,
                      condition_dropout=self.condition_dropout, adam_beta_1=self.adam_beta_1,
                      adam_beta_2=self.adam_beta_2, seed=self.seed)
        return config


def build(vocabulary_size, hp):
    segment = hp["segment_tokens"]
    if segment < LAST_TOKENS:
        raise UserError(f"segment_tokens must be at least {LAST_TOKENS} (one event), got {segment}")
    if hp["seq_len"] != 2 * segment:
        raise UserError(f"the gan trains on windows of one condition and one continuation segment: seq_len "
                        f"must be 2 * segment_tokens = {2 * segment}, got {hp['seq_len']}")
    for key in ("noise_dim", "n_critic", "units", "embedding_dim", "critic_filters"):
        if hp[key] < 1:
            raise UserError(f"{key} must be at least 1, got {hp[key]}")
    for key in ("gp_weight", "mle_weight", "diversity_weight"):
        if hp[key] < 0:
            raise UserError(f"{key} must not be negative, got {hp[key]}")
    if not hp["gumbel_temperature"] > 0:
        raise UserError(f"gumbel_temperature must be positive, got {hp['gumbel_temperature']}")
    if not 0 <= hp["condition_dropout"] <= 1:
        raise UserError(f"condition_dropout must be in [0, 1], got {hp['condition_dropout']}")
    model = SegmentGAN(vocabulary_size, segment_tokens=segment, embedding_dim=hp["embedding_dim"],
                       units=hp["units"], noise_dim=hp["noise_dim"], critic_filters=hp["critic_filters"],
                       n_critic=hp["n_critic"], gp_weight=hp["gp_weight"],
                       gumbel_temperature=hp["gumbel_temperature"], straight_through=hp["straight_through"],
                       mle_weight=hp["mle_weight"], diversity_weight=hp["diversity_weight"],
                       condition_dropout=hp["condition_dropout"], adam_beta_1=hp["adam_beta_1"],
                       adam_beta_2=hp["adam_beta_2"], seed=hp["random_seed"], name="gan")
    model.build((None, hp["seq_len"]))
    return model


def compile_gan(model, optimizer_settings):
    """Two optimizers of the run's settings with the GAN's own betas: one for the generator, one for the critic."""
    def adam(name):
        return optimizer_settings.build(model, beta_1=model.adam_beta_1, beta_2=model.adam_beta_2, name=name)

    model.compile(optimizer=adam("generator_adam"), critic_optimizer=adam("critic_adam"))


def last_segment(tokens, segment):
    """The last `segment` tokens of each row, left-padded with <pad> where a row is shorter."""
    tokens = np.asarray(tokens, dtype=np.int32)[:, -segment:]
    return np.concatenate([np.full((len(tokens), segment - tokens.shape[1]), PAD_ID, np.int32), tokens], axis=1)


class GANDecoder(Decoder):
    """Extends a sequence one segment at a time: one generator pass per segment, not per token.

    The condition is the last segment_tokens tokens that exist (a shorter prompt is
    left-padded; a lone <start> amounts to sampling from noise). G's logits for the
    whole next segment are handed out one position per step while the sampler picks
    the actual tokens; when the segment is complete it becomes the next condition and
    a new z is drawn. `seed` makes the noise reproducible.
    """

    def __init__(self, model, seed=None):
        self.model = model
        self.segment = model.segment_tokens
        self.rng = np.random.default_rng(seed)
        self._generate = tf.function(lambda condition, z: model.generator(condition, z, training=False),
                                     reduce_retracing=True)

    def _segment_logits(self, condition):
        z = self.rng.standard_normal((len(condition), self.model.noise_dim)).astype(np.float32)
        return self._generate(tf.constant(condition), tf.constant(z)).numpy().astype(np.float64)

    def start(self, prompt):
        recent = last_segment(prompt, self.segment)
        state = {"recent": recent, "logits": self._segment_logits(recent), "position": 0}
        return state["logits"][:, 0], state

    def step(self, tokens, state):
        recent = np.concatenate([state["recent"][:, 1:], np.asarray(tokens, dtype=np.int32)[:, None]], axis=1)
        position, logits = state["position"] + 1, state["logits"]
        if position == self.segment:  # the segment is complete: it is the next condition
            position, logits = 0, self._segment_logits(recent)
        state = {"recent": recent, "logits": logits, "position": position}
        return logits[:, position], state

    def reorder(self, state, rows):
        return {"recent": state["recent"][rows], "logits": state["logits"][rows], "position": state["position"]}


SPEC = ModelSpec(
    name="gan",
    build=build,
    defaults=DEFAULTS,
    decoder=GANDecoder,
    description="conditional segment-by-segment WGAN-GP (generator + critic over relaxed one-hot segments)",
    compile=compile_gan,
    output_size=lambda model: model.vocabulary_size,
    likelihood=False,
    # Not under mixed_float16: its train_step mixes float16 critic scores with float32 terms, and neither the
    # critic's optimizer nor the gradient penalty's inner gradient would get loss scaling.
    mixed_precision=False,
)
