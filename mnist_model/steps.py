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
    step); here a single XLA call runs many batches, gathering them from the training data by index.
    """

    def __init__(self, model: keras.Model, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                 jit_compile: bool = True, seed: int = 0):
        """train, test: (x (n, ...) float32 model inputs, y (n, 10) float32 one-hot labels).

        jit_compile: XLA (dense: 0.40 s an epoch instead of 0.62); off for convolutions, which XLA runs
        about 20x slower than TensorFlow's own kernels on this CPU.
        seed: for the dropout masks (the same seed, the same run).
        """
        self.model = model
        model.optimizer.build(model.trainable_variables)
        self._dropouts = any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
        regs = [getattr(layer, "kernel_regularizer", None) for layer in model.layers]
        self._l2 = float(next((r.l2 for r in regs if r is not None), 0.0))
        self._kernels = {id(layer.kernel) for layer in model.layers if getattr(layer, "kernel_regularizer", None)}
        self._rng = "threefry" if jit_compile else "auto_select"  # threefry has no plain TensorFlow kernel here
        # The data are arguments, not captured constants: the traced and compiled steps serve the next training of
        # this model too (KeptNetworks), whatever its examples (another number of them traces once more).
        self._train_calls = tf.function(self._train_steps, jit_compile=jit_compile, reduce_retracing=True)
        self._eval_calls = tf.function(self._eval_chunk, jit_compile=jit_compile, reduce_retracing=True)
        self.restart(train, test, seed)

    def restart(self, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], seed: int) -> None:
        """Train on these data with this seed from now on (as the constructor takes them); the weights and the
        optimizer's state are the caller's to set."""
        self._x, self._y = tf.constant(train[0]), tf.constant(train[1])
        self._x_test, self._y_test = tf.constant(test[0]), tf.constant(test[1])
        self._test_labels = np.asarray(test[1]).argmax(1)
        self._seeds = np.random.default_rng(seed)

    def release(self) -> None:
        """Let go of the data until the next restart (the compiled steps stay)."""
        self._x = self._y = self._x_test = self._y_test = None

    def held_bytes(self) -> int:
        """Bytes of data held for training and evaluation (0 after release)."""
        held = (self._x, self._y, self._x_test, self._y_test)
        return sum(int(tf.size(t)) * t.dtype.size for t in held if t is not None)

    def train(self, indices: np.ndarray, mask: np.ndarray, steps: int) -> tuple[float, float]:
        """Train on the first `steps` batches of an epoch_plan() call; returns (summed loss, number right)."""
        seed = tf.constant(self._seeds.integers(0, 2**31 - 1, 2), tf.int32)  # this call's dropout masks
        loss, right = self._train_calls(self._x, self._y, tf.constant(indices), tf.constant(mask),
                                        tf.constant(steps, tf.int32), seed)
        return float(loss), float(right)

    def evaluate(self) -> tuple[float, float, np.ndarray]:
        """The test set's mean loss and accuracy (as model.evaluate() reports them) and probabilities (m, 10)."""
        m = len(self._test_labels)
        loss, probs = 0.0, []
        for indices, mask, _ in epoch_plan(np.arange(m), EVAL_CHUNK, 1):
            chunk_loss, chunk_probs = self._eval_calls(self._x_test, self._y_test, tf.constant(indices[0]),
                                                       tf.constant(mask[0]))
            loss += float(chunk_loss)
            probs.append(chunk_probs.numpy()[mask[0] > 0])
        probs = np.concatenate(probs)
        accuracy = float(np.mean(probs.argmax(1) == self._test_labels))
        return loss / m, accuracy, probs

    def _train_steps(self, x, y, indices, mask, steps, seed):
        # The weight penalty in the reported loss is the one at the start of the call: its exact value at every
        # step would cost a fifth of the training time (a pass over every kernel), to move the running loss by
        # about a thousandth. The gradients, and so the weights, are exactly fit()'s.
        loss_sum, right, penalty = tf.zeros(()), tf.zeros(()), self._penalty()
        for i in tf.range(steps):
            batch_loss, batch_right = self._train_step(x, y, indices[i], mask[i], seed + [i * 64, 0], penalty)
            loss_sum, right = loss_sum + batch_loss, right + batch_right
        return loss_sum, right

    def _is_kernel(self, variable) -> bool:
        return id(variable) in self._kernels

    def _penalty(self):
        """The L2 weight penalty as fit() adds it to every batch's loss (0 when there is none)."""
        losses = self.model.losses
        return tf.add_n(losses) if losses else tf.zeros(())

    def _forward_training(self, x, seed):
        """The model in training mode. Dropout draws its masks with the threefry generator: Keras's own choice of
        generator ("auto_select") takes about 10 ms per 128x512 mask under XLA on this CPU, threefry 0.13 ms."""
        if not self._dropouts:
            return self.model(x, training=True)
        for i, layer in enumerate(self.model.layers):
            if isinstance(layer, keras.layers.Dropout):
                keep = tf.random.stateless_uniform(tf.shape(x), seed=seed + [0, i], alg=self._rng) >= layer.rate
                x = x * tf.cast(keep, x.dtype) / (1.0 - layer.rate)
            else:
                x = layer(x, training=True)
        return x

    def _train_step(self, x_all, y_all, indices, mask, seed, penalty):
        x, y = tf.gather(x_all, indices), tf.gather(y_all, indices)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            probs = self._forward_training(x, seed)  # dropout is active here only
            losses = keras.losses.categorical_crossentropy(y, probs) * mask
            # The mean over the real examples only: a short last batch is padded with masked-out ones.
            loss = tf.reduce_sum(losses) / tf.reduce_sum(mask)
        grads = tape.gradient(loss, variables)
        if self._l2:  # the penalty's gradient is 2 * l2 * kernel: added directly, cheaper than differentiating it
            grads = [g + 2.0 * self._l2 * v if self._is_kernel(v) else g for g, v in zip(grads, variables)]
        self.model.optimizer.apply_gradients(zip(grads, variables))
        right = tf.cast(tf.equal(tf.argmax(probs, 1), tf.argmax(y, 1)), tf.float32)
        return tf.reduce_sum(losses) + penalty * tf.reduce_sum(mask), tf.reduce_sum(right * mask)

    def _eval_chunk(self, x_test, y_test, indices, mask):
        y = tf.gather(y_test, indices)
        probs = self.model(tf.gather(x_test, indices), training=False)
        penalty = self._penalty() * tf.reduce_sum(mask)  # model.evaluate() counts it too
        return tf.reduce_sum(keras.losses.categorical_crossentropy(y, probs) * mask) + penalty, probs
