"""Compiled training steps: several batches per XLA call, gathered from data kept on the device as one tensor."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .network import keras  # first: network quiets TensorFlow's logging before importing it

import tensorflow as tf  # noqa: E402

EVAL_CHUNK = 2000  # test examples per compiled call: one shape for every chunk, small enough for the CNN


def epoch_plan(order: np.ndarray, batch_size: int, steps_per_call: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Cut one epoch's example order into calls of steps_per_call batches.

    Yields (indices (k, b) int32, mask (k, b) float32, steps): the last batch is padded with masked-out
    examples and the last call with unused batches, so that every call has one shape (one compilation).
    """
    n = len(order)
    b = min(batch_size, n)
    steps = -(-n // b)
    indices, mask = np.zeros((steps, b), np.int32), np.zeros((steps, b), np.float32)
    indices.reshape(-1)[:n], mask.reshape(-1)[:n] = order, 1.0
    for start in range(0, steps, steps_per_call):
        used = min(steps_per_call, steps - start)
        call_indices, call_mask = np.zeros((steps_per_call, b), np.int32), np.zeros((steps_per_call, b), np.float32)
        call_indices[:used], call_mask[:used] = indices[start:start + used], mask[start:start + used]
        yield call_indices, call_mask, used


class CompiledSteps:
    """fit()'s training step for a compiled Keras model (its loss is categorical crossentropy), run in bulk.

    Keras's fit() pays about 0.7 ms of bookkeeping per batch (data iterator, metric objects, one XLA call per
    step); here a single XLA call runs many batches, gathering them from x and y by index.
    """

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray, jit_compile: bool = True):
        """x: (n, ...) float32 model inputs; y: (n, 10) float32 one-hot labels.

        jit_compile: XLA (dense: 0.40 s an epoch instead of 0.62); off for convolutions, which XLA runs
        about 20x slower than TensorFlow's own kernels on this CPU.
        """
        self.model = model
        self._x, self._y = tf.constant(x), tf.constant(y)
        model.optimizer.build(model.trainable_variables)
        self._train_calls = tf.function(self._train_steps, jit_compile=jit_compile)
        self._eval_calls = tf.function(self._eval_chunk, jit_compile=jit_compile)

    def train(self, indices: np.ndarray, mask: np.ndarray, steps: int) -> tuple[float, float]:
        """Train on the first `steps` batches of an epoch_plan() call; returns (summed loss, number right)."""
        loss, right = self._train_calls(tf.constant(indices), tf.constant(mask), tf.constant(steps, tf.int32))
        return float(loss), float(right)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean loss, accuracy) on x (m, ...) float32 and y (m, 10) one-hot, as model.evaluate() reports them."""
        loss = right = 0.0
        for start in range(0, len(x), EVAL_CHUNK):
            xs, ys = x[start:start + EVAL_CHUNK], y[start:start + EVAL_CHUNK]
            used = len(xs)
            mask = np.zeros(EVAL_CHUNK, np.float32)
            mask[:used] = 1.0
            if used < EVAL_CHUNK:
                xs, ys = _pad(xs, EVAL_CHUNK), _pad(ys, EVAL_CHUNK)
            chunk_loss, chunk_right = self._eval_calls(tf.constant(xs), tf.constant(ys), tf.constant(mask))
            loss, right = loss + float(chunk_loss), right + float(chunk_right)
        return loss / len(x), right / len(x)

    def _train_steps(self, indices, mask, steps):
        loss_sum, right = tf.zeros(()), tf.zeros(())
        for i in tf.range(steps):
            batch_loss, batch_right = self._train_step(indices[i], mask[i])
            loss_sum, right = loss_sum + batch_loss, right + batch_right
        return loss_sum, right

    def _train_step(self, indices, mask):
        x, y = tf.gather(self._x, indices), tf.gather(self._y, indices)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            probs = self.model(x, training=True)
            losses = keras.losses.categorical_crossentropy(y, probs) * mask
            # The mean over the real examples only: a short last batch is padded with masked-out ones.
            loss = tf.reduce_sum(losses) / tf.reduce_sum(mask)
        self.model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return tf.reduce_sum(losses), tf.reduce_sum(_right(y, probs) * mask)

    def _eval_chunk(self, x, y, mask):
        probs = self.model(x, training=False)
        return (tf.reduce_sum(keras.losses.categorical_crossentropy(y, probs) * mask),
                tf.reduce_sum(_right(y, probs) * mask))


def _right(y, probs):
    """1.0 where the most probable class is the labelled one, else 0.0."""
    return tf.cast(tf.equal(tf.argmax(probs, 1), tf.argmax(y, 1)), tf.float32)


def _pad(a: np.ndarray, length: int) -> np.ndarray:
    return np.concatenate([a, np.zeros((length - len(a),) + a.shape[1:], a.dtype)])
