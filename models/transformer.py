"""A decoder-only causal Transformer (transformer): embedding, pre-norm attention blocks, logits.

    tokens -> embedding -> dropout -> blocks -> LayerNorm -> Dense logits
    block:  x + Dropout(Attention(LayerNorm(x)));  x + Dropout(FeedForward(LayerNorm(x)))

Positions are rotary (RoPE): queries and keys are rotated by an angle proportional
to their position, so attention scores depend only on how far apart two tokens
are. The model has no maximum length of its own; it is trained on windows of
`seq_len` tokens, and its decoder attends to at most that many.

TransformerDecoder keeps every layer's keys and values in a fixed-size cache, so
each new token costs one step through the blocks. When the cache is full it
re-primes: it reruns the model on the most recent `keep` tokens (3/4 of the
context) and goes on from there, so the model never sees a longer context than it
was trained on, and generation can go on for any length. Pinned tokens (a
piece's <start> and labels, see Decoder.pin) stay in front of those, as in
training (musicgen.dataset.pin_controls).
"""


import keras
import numpy as np
import tensorflow as tf
from keras import ops

from musicgen.decoders import Decoder
from musicgen.errors import UserError
from musicgen.spec import ModelSpec

DEFAULTS = {
    "embedding_dim": 128,  # model width: token vectors and the residual stream of every block
    "heads": 4,  # attention heads per block (embedding_dim / heads must be even, for the rotary positions)
    "layers": 4,  # Transformer blocks
    "ff_dim": 512,  # hidden units of each block's feed-forward network
    "dropout": 0.1,  # dropout on the embeddings and on each residual branch, training only
    # The recipe measured on the Bach chorales (docs/results.md, "A training recipe"): 15 epochs of warm-up then cosine
    # decay from 1.5e-3, with AdamW and clipping, reached a validation loss of 1.615 where Adam at a constant 5e-4
    # (the default before) reached 1.653, and the same recipe from 5e-4 only 1.774.
    "learning_rate": 1.5e-3,  # the peak
    "schedule": "cosine",
    "warmup_steps": 200,
    "weight_decay": 0.01,
    "clipnorm": 1.0,
    "batch_size": 16,  # windows per step: the corpus is small, so more, smaller steps per epoch
}

def rotate(x, positions):
    """Rotary position embedding of x (batch, time, heads, head_dim) at `positions` (time,), in float32.

    float32 whatever x's dtype: under mixed precision, float16 angles would be
    off by up to half a radian past position 1024, and the attention scores are
    computed from the rotated queries and keys in float32 too.
    """
    half = x.shape[-1] // 2
    frequencies = 1.0 / (10000.0 ** (ops.arange(half, dtype="float32") / half))
    angles = ops.cast(positions, "float32")[:, None, None] * frequencies[None, None, :]  # (time, 1, half)
    cos, sin = ops.cos(angles), ops.sin(angles)
    x = ops.cast(x, "float32")
    first, second = x[..., :half], x[..., half:]
    return ops.concatenate([first * cos - second * sin, first * sin + second * cos], axis=-1)


@keras.saving.register_keras_serializable(package="musicgen")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head self-attention where each position sees only itself and earlier positions.

    `context` is the window length the model is trained on; the layer itself
    accepts any length, and the cached decoder reads `context` as its cache size.
    """

    def __init__(self, width, heads, context, **kwargs):
        super().__init__(**kwargs)
        self.width, self.heads, self.context = width, heads, context
        self.head_dim = width // heads
        self.query = keras.layers.Dense(width, name="query")
        self.key = keras.layers.Dense(width, name="key")
        self.value = keras.layers.Dense(width, name="value")
        self.output_projection = keras.layers.Dense(width, name="output")

    def build(self, input_shape):
        for projection in (self.query, self.key, self.value, self.output_projection):
            projection.build(input_shape)

    def _heads(self, x):
        """(batch, time, width) -> (batch, time, heads, head_dim)."""
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.heads, self.head_dim))

    def _merge(self, x):
        """(batch, time, heads, head_dim) -> (batch, time, width)."""
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.width))

    def _project(self, x, positions):
        q = rotate(self._heads(self.query(x)), positions)
        k = rotate(self._heads(self.key(x)), positions)
        return q, k, self._heads(self.value(x))

    def _attend(self, q, k, v, mask=None, causal=False):
        """keras.ops.dot_product_attention, which runs flash attention where the backend and device have it (JAX or
        PyTorch on a GPU; TensorFlow has none and computes it plainly). q and k come float32 from rotate, and v is
        cast to match: the scores and their softmax stay float32 under mixed precision too (float16 keeps about
        3 digits of a score)."""
        attended = ops.dot_product_attention(q, k, ops.cast(v, q.dtype), mask=mask, is_causal=causal)
        return self.output_projection(self._merge(ops.cast(attended, v.dtype)))

    def attend_sequence(self, x):
        """Outputs for a whole sequence, plus its keys and values (batch, time, heads, head_dim)."""
        q, k, v = self._project(x, ops.arange(ops.shape(x)[1]))
        return self._attend(q, k, v, causal=True), k, v

    def call(self, x):
        return self.attend_sequence(x)[0]

    def step(self, x, keys, values, index):
        """One new token x (batch, 1, width) at position `index`; caches (batch, size, heads, head_dim)."""
        q, k, v = self._project(x, ops.reshape(index, (1,)))
        start = (0, index, 0, 0)
        keys, values = ops.slice_update(keys, start, k), ops.slice_update(values, start, v)
        visible = ops.reshape(ops.arange(ops.shape(keys)[1]) <= index, (1, 1, 1, -1))  # (batch, heads, 1, size)
        return self._attend(q, keys, values, mask=visible), keys, values

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, heads=self.heads, context=self.context)
        return config


@keras.saving.register_keras_serializable(package="musicgen")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm residual block: attention, then a two-layer GELU feed-forward network."""

    def __init__(self, width, heads, ff_dim, dropout, context, **kwargs):
        super().__init__(**kwargs)
        self.width, self.heads, self.ff_dim, self.dropout_rate, self.context = width, heads, ff_dim, dropout, context
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="attention_norm")
        self.attention = CausalSelfAttention(width, heads, context, name="attention")
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="feed_forward_norm")
        self.feed_forward_in = keras.layers.Dense(ff_dim, activation="gelu", name="feed_forward_in")
        self.feed_forward_out = keras.layers.Dense(width, name="feed_forward_out")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.feed_forward_norm.build(input_shape)
        self.feed_forward_in.build(input_shape)
        self.feed_forward_out.build((*input_shape[:-1], self.ff_dim))

    def _feed_forward(self, x, training):
        hidden = self.feed_forward_out(self.feed_forward_in(self.feed_forward_norm(x)))
        return x + self.dropout(hidden, training=training)

    def call(self, x, training=False):
        x = x + self.dropout(self.attention(self.attention_norm(x)), training=training)
        return self._feed_forward(x, training)

    def prime(self, x):
        """Inference over a whole sequence: (outputs, keys, values)."""
        attended, keys, values = self.attention.attend_sequence(self.attention_norm(x))
        return self._feed_forward(x + attended, False), keys, values

    def step(self, x, keys, values, index):
        attended, keys, values = self.attention.step(self.attention_norm(x), keys, values, index)
        return self._feed_forward(x + attended, False), keys, values

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, heads=self.heads, ff_dim=self.ff_dim, dropout=self.dropout_rate,
                      context=self.context)
        return config


def build(vocabulary_size, hp):
    width, heads = hp["embedding_dim"], hp["heads"]
    if heads < 1 or width % heads or (width // heads) % 2:
        raise UserError(f"embedding_dim ({width}) must split into {heads} heads of an even size each")
    if hp["layers"] < 1 or hp["ff_dim"] < 1:
        raise UserError("layers and ff_dim must be at least 1")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, width, name="embedding")(tokens)
    x = keras.layers.Dropout(hp["dropout"], name="embedding_dropout")(x)
    for i in range(hp["layers"]):
        x = TransformerBlock(width, heads, hp["ff_dim"], hp["dropout"], hp["seq_len"], name=f"block_{i}")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")(x)  # float32 under mixed precision
    return keras.Model(tokens, logits, name="transformer")


class TransformerDecoder(Decoder):
    """Per-layer key/value caches of `context` slots; re-primes from the last `keep` tokens when full.

    The state is (tokens held in the cache, [(keys, values) per block], pinned
    tokens). The logits of every step equal a full run of the model over the
    tokens held.
    """

    def __init__(self, model, seed=None, *, context=None, keep=None):  # deterministic: `seed` is unused
        self.embedding = model.get_layer("embedding")
        self.blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
        self.final_norm = model.get_layer("final_norm")
        self.logits = model.get_layer("logits")
        self.context = context or self.blocks[0].context
        self.keep = min(keep or max(1, self.context * 3 // 4), self.context - 1) if self.context > 1 else 1
        self._prime = tf.function(self._prime_graph, reduce_retracing=True)
        self._step = tf.function(self._step_graph, reduce_retracing=True)
        self.pinned = 0

    def _head(self, x):
        return self.logits(self.final_norm(x))

    def _prime_graph(self, tokens):
        x = self.embedding(tokens)
        caches = []
        free = self.context - tf.shape(tokens)[1]
        for block in self.blocks:
            x, keys, values = block.prime(x)
            padding = [[0, 0], [0, free], [0, 0], [0, 0]]
            caches.append((tf.pad(keys, padding), tf.pad(values, padding)))
        return self._head(x[:, -1]), caches

    def _step_graph(self, tokens, caches, index):
        x = self.embedding(tokens[:, None])
        new_caches = []
        for block, (keys, values) in zip(self.blocks, caches):
            x, keys, values = block.step(x, keys, values, index)
            new_caches.append((keys, values))
        return self._head(x[:, 0]), new_caches

    def pin(self, count):
        self.pinned = min(count, self.keep - 1)

    def start(self, prompt):
        prompt = np.asarray(prompt, dtype=np.int32)
        pinned = prompt[:, :self.pinned]
        return self._restart(self._recent(prompt, pinned, self.context), pinned)

    @staticmethod
    def _recent(held, pinned, size):
        """At most `size` tokens: the pinned ones, then the most recent."""
        if held.shape[1] <= size:
            return held
        return np.concatenate([pinned, held[:, held.shape[1] - (size - pinned.shape[1]):]], axis=1)

    def _restart(self, held, pinned):
        logits, caches = self._prime(tf.constant(held))
        return logits.numpy().astype(np.float64), (held, caches, pinned)

    def step(self, tokens, state):
        held, caches, pinned = state
        tokens = np.asarray(tokens, dtype=np.int32)
        held = np.concatenate([held, tokens[:, None]], axis=1)
        if held.shape[1] > self.context:  # cache full: start again from the pinned and the most recent tokens
            return self._restart(self._recent(held, pinned, self.keep), pinned)
        index = tf.constant(held.shape[1] - 1, dtype=tf.int32)
        logits, caches = self._step(tf.constant(tokens), caches, index)
        return logits.numpy().astype(np.float64), (held, caches, pinned)

    def reorder(self, state, rows):
        held, caches, pinned = state
        return held[rows], [(tf.gather(keys, rows), tf.gather(values, rows)) for keys, values in caches], pinned[rows]


SPEC = ModelSpec(
    name="transformer",
    build=build,
    defaults=DEFAULTS,
    decoder=TransformerDecoder,
    description="decoder-only causal Transformer with rotary positions and a key/value cache",
    # On a 2-core CPU a token trains at 0.71 of its speed in a window of 512 as of 128, and at half of it in one
    # of 1024 (docs/benchmarks.md, "Window lengths"); 512 holds a whole chorale with merged tokens.
    longest_window=512,
)
