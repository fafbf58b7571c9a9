"""Phrase-to-phrase encoder-decoder with attention (`--model seq2seq`).

The token stream is cut into phrases of `phrase_tokens` tokens. A bidirectional
LSTM encodes the previous phrase; an LSTM decoder writes the next phrase one
token at a time, starting from a state computed from the encoder's final states
and attending (dot-product attention with a learned scale) over the encoder's
outputs at every step. The logits are a linear read-out of the decoder output
concatenated with the attention context (a tanh layer between them, as in
Luong et al., trained markedly slower here: 3.57 vs 2.52 validation nats per
token after 100 steps on the Bach chorales).

Training windows are [previous phrase | next phrase] (seq_len = 2 * phrase_tokens).
The decoder's first input is the last token of the previous phrase (it plays
the part of a "go" token and tells the decoder where in an event it stands, since
phrases start at any token), then the next phrase's own tokens, teacher-forced.
So in window positions the decoder's logits sit at P-1 .. 2P-2 (P = phrase_tokens)
and predict exactly the tokens of the next phrase, x[P] .. x[2P-1]: the custom
train_step/test_step compute only these and the loss is nats per token of the
predicted phrase. The first phrase of a window is context only and is never
scored (for the default window this also means validation scores every other
phrase of the validation split).

call(x) still returns logits for every position, as every model here does: it
treats the window as a chain of phrases preceded by a phrase of padding, i.e.
position t gives what `PhraseDecoder` would give after being started on
x[:P] and fed x[P..t] (for t >= P-1; positions before that come from a decoder
that has seen only padding as its previous phrase). seq_len may be any length
of at least 2 * phrase_tokens - 1; each whole phrase after the first is scored.

Padding (id 0) is masked in the encoder, so a seed shorter than a phrase is
left-padded and encoded as a shorter phrase.
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
    "phrase_tokens": 48,  # tokens per phrase (3 per event: 16 events)
    "seq_len": 96,  # training window: previous phrase + next phrase (2 * phrase_tokens)
    "embedding_dim": 128,  # size of each token's learned vector (shared by encoder and decoder)
    "encoder_units": 128,  # LSTM units per direction in the bidirectional encoder
    "units": 256,  # decoder LSTM state size (also the attention size)
    "dropout": 0.2,  # dropout on the decoder's output and attention context, training only
}


@keras.saving.register_keras_serializable(package="musicgen")
class PhraseSeq2Seq(keras.Model):
    """Encoder-decoder over consecutive phrases; see the module docstring for the window layout."""

    def __init__(self, vocabulary_size, phrase_tokens, embedding_dim, encoder_units, units, dropout, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.phrase_tokens = phrase_tokens
        self.embedding_dim = embedding_dim
        self.encoder_units = encoder_units
        self.units = units
        self.dropout_rate = dropout
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.encoder = keras.layers.Bidirectional(
            keras.layers.LSTM(encoder_units, return_sequences=True, return_state=True), name="encoder")
        self.bridge_h = keras.layers.Dense(units, activation="tanh", name="bridge_h")
        self.bridge_c = keras.layers.Dense(units, name="bridge_c")
        self.memory = keras.layers.Dense(units, use_bias=False, name="memory")
        self.decoder = keras.layers.LSTM(units, return_sequences=True, return_state=True, name="decoder")
        self.attention = keras.layers.Attention(use_scale=True, name="attention")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")  # float32 in mixed precision
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def build(self, input_shape):
        phrase, units = self.phrase_tokens, self.units
        self.embedding.build((None, None))
        self.encoder.build((None, phrase, self.embedding_dim))
        self.bridge_h.build((None, 2 * self.encoder_units))
        self.bridge_c.build((None, 2 * self.encoder_units))
        self.memory.build((None, phrase, 2 * self.encoder_units))
        self.decoder.build((None, None, self.embedding_dim))
        self.attention.build([(None, None, units), (None, phrase, units)])
        self.logits.build((None, None, 2 * units))

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, phrase_tokens=self.phrase_tokens,
                      embedding_dim=self.embedding_dim, encoder_units=self.encoder_units, units=self.units,
                      dropout=self.dropout_rate)
        return config

    # The pieces, shared by training, call() and PhraseDecoder.

    def encode(self, phrases, training=False):
        """(n, P) token ids -> (memory (n, P, units), memory mask (n, P), decoder initial state [h, c])."""
        mask = ops.not_equal(phrases, 0)
        outputs, forward_h, forward_c, backward_h, backward_c = self.encoder(
            self.embedding(phrases), mask=mask, training=training)
        h = self.bridge_h(ops.concatenate([forward_h, backward_h], axis=-1))
        c = self.bridge_c(ops.concatenate([forward_c, backward_c], axis=-1))
        return self.memory(outputs), mask, [h, c]

    def read_out(self, decoder_outputs, memory, memory_mask, training=False):
        """Decoder outputs (n, t, units) -> logits (n, t, vocabulary), attending over the encoded phrase."""
        context = self.attention([decoder_outputs, memory], mask=[None, memory_mask])
        features = ops.concatenate([decoder_outputs, context], axis=-1)
        return self.logits(self.dropout(features, training=training))

    def decode_phrases(self, previous, inputs, training=False):
        """Encode `previous` (n, P) and run the decoder over `inputs` (n, t), teacher-forced -> logits (n, t, V)."""
        memory, memory_mask, state = self.encode(previous, training=training)
        outputs, _, _ = self.decoder(self.embedding(inputs), initial_state=state, training=training)
        return self.read_out(outputs, memory, memory_mask, training=training)

    def call(self, tokens, training=False):
        phrase = self.phrase_tokens
        tokens = ops.cast(tokens, "int32")
        batch, length = ops.shape(tokens)[0], ops.shape(tokens)[1]
        count = (length + phrase) // phrase  # phrases covering one padding "go" token plus the window
        total = count * phrase
        # Phrase k of the chain is decoded from inputs [last token of phrase k-1, phrase k without its
        # last token], after encoding phrase k-1; phrase -1 is all padding.
        previous = ops.concatenate([ops.zeros((batch, phrase), "int32"), tokens, ops.zeros((batch, phrase), "int32")], 1)
        inputs = ops.concatenate([ops.zeros((batch, 1), "int32"), tokens, ops.zeros((batch, phrase), "int32")], 1)
        previous = ops.reshape(previous[:, :total], (batch * count, phrase))
        inputs = ops.reshape(inputs[:, :total], (batch * count, phrase))
        logits = self.decode_phrases(previous, inputs, training=training)
        logits = ops.reshape(logits, (batch, total, self.vocabulary_size))
        return logits[:, 1:length + 1]  # output j predicts chain token j; drop the prediction of x[0]

    # Training on the scored phrases only, with the loss a compiled next-token model has (cross-entropy summed
    # over the scored tokens' weights, divided by the number of scored positions) and accuracy weighted like it.

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def _scored(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, tf.int32)
        phrase = self.phrase_tokens
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        count = (length + 1) // phrase - 1  # whole phrases after the first that the window holds
        tf.debugging.assert_positive(count, f"seq2seq windows need at least 2 * phrase_tokens - 1 = "
                                            f"{2 * phrase - 1} tokens")
        span = count * phrase
        previous = tf.reshape(x[:, :span], (batch * count, phrase))
        inputs = tf.reshape(x[:, phrase - 1:phrase - 1 + span], (batch * count, phrase))
        logits = self.decode_phrases(previous, inputs, training=training)
        logits = tf.reshape(logits, (batch, span, self.vocabulary_size))
        targets = y[:, phrase - 1:phrase - 1 + span]
        if sample_weight is None:
            weights = tf.ones(tf.shape(targets), tf.float32)
        else:
            weights = tf.cast(sample_weight[:, phrase - 1:phrase - 1 + span], tf.float32)
        return x, targets, weights, logits

    def _loss(self, targets, weights, logits):
        cross_entropy = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        return tf.reduce_sum(cross_entropy * weights) / tf.cast(tf.size(cross_entropy), tf.float32)

    def _track(self, x, targets, weights, logits, loss):
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        self.accuracy_tracker.update_state(targets, logits, sample_weight=weights)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            x, targets, weights, logits = self._scored(data, training=True)
            loss = self._loss(targets, weights, logits)
            # Replicas' gradients are summed, so each differentiates its share of the mean (as compiled losses do).
            replica_loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(replica_loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._track(x, targets, weights, logits, loss)

    def test_step(self, data):
        x, targets, weights, logits = self._scored(data, training=False)
        return self._track(x, targets, weights, logits, self._loss(targets, weights, logits))


def build(vocabulary_size, hp):
    if hp["seq_len"] < 2 * hp["phrase_tokens"] - 1:
        raise UserError(f"seq2seq: seq_len ({hp['seq_len']}) must be at least 2 * phrase_tokens - 1 "
                        f"({2 * hp['phrase_tokens'] - 1}); the default is 2 * phrase_tokens")
    if hp["phrase_tokens"] < 2:
        raise UserError(f"seq2seq: phrase_tokens must be at least 2, got {hp['phrase_tokens']}")
    model = PhraseSeq2Seq(vocabulary_size, hp["phrase_tokens"], hp["embedding_dim"], hp["encoder_units"],
                          hp["units"], hp["dropout"], name="seq2seq")
    model.build((None, hp["seq_len"]))
    return model


class PhraseDecoder(Decoder):
    """Writes phrase after phrase: one decoder LSTM step per token, one encoding per phrase.

    start(prompt) encodes the prompt's last phrase_tokens tokens (left-padded
    with the pad id 0 when shorter; padding is masked) and feeds its last token
    as the decoder's first input. Each step feeds one token with the recurrent
    state carried; when phrase_tokens new tokens complete a phrase, that phrase
    is encoded, the decoder restarts from the new encoding and the phrase's last
    token is fed as its first input -- exactly how the model was trained, so the
    logits equal call() over the same tokens.

    State: (h, c, memory, memory mask, tokens written in the current phrase).
    """

    def __init__(self, model, seed=None):  # deterministic: `seed` is unused
        self.model = model
        self.phrase_tokens = model.phrase_tokens
        self.cell = model.decoder.cell
        self._encode = tf.function(self._encode_graph, reduce_retracing=True)
        self._step = tf.function(self._step_graph, reduce_retracing=True)

    def _encode_graph(self, phrases):
        memory, mask, state = self.model.encode(phrases)
        return memory, mask, state[0], state[1]

    def _step_graph(self, tokens, h, c, memory, mask):
        output, (h, c) = self.cell(self.model.embedding(tokens), [h, c], training=False)
        logits = self.model.read_out(output[:, None], memory, mask)[:, 0]
        return logits, h, c

    def _begin_phrase(self, previous):
        """Encode `previous` (batch, P) and feed its last token: logits and state for the phrase after it."""
        memory, mask, h, c = self._encode(tf.constant(previous))
        go = previous[:, -1]
        logits, h, c = self._step(tf.constant(go), h, c, memory, mask)
        written = np.zeros((len(previous), 0), dtype=np.int32)
        return logits.numpy().astype(np.float64), (h, c, memory, mask, written)

    def start(self, prompt):
        prompt = np.asarray(prompt, dtype=np.int32)
        previous = prompt[:, -self.phrase_tokens:]
        missing = self.phrase_tokens - previous.shape[1]
        if missing > 0:
            previous = np.concatenate([np.zeros((len(prompt), missing), np.int32), previous], axis=1)
        return self._begin_phrase(previous)

    def step(self, tokens, state):
        tokens = np.asarray(tokens, dtype=np.int32)
        h, c, memory, mask, written = state
        written = np.concatenate([written, tokens[:, None]], axis=1)
        if written.shape[1] == self.phrase_tokens:
            return self._begin_phrase(written)
        logits, h, c = self._step(tf.constant(tokens), h, c, memory, mask)
        return logits.numpy().astype(np.float64), (h, c, memory, mask, written)

    def reorder(self, state, rows):
        h, c, memory, mask, written = state
        rows_tensor = tf.constant(np.asarray(rows))
        return (tf.gather(h, rows_tensor), tf.gather(c, rows_tensor), tf.gather(memory, rows_tensor),
                tf.gather(mask, rows_tensor), written[np.asarray(rows)])


SPEC = ModelSpec(
    name="seq2seq",
    build=build,
    defaults=DEFAULTS,
    decoder=PhraseDecoder,
    description="phrase-to-phrase encoder-decoder with attention (reads the previous phrase, writes the next)",
    compile=compile_own_loss,
    output_size=lambda model: model.vocabulary_size,
)
