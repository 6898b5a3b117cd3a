"""Predictor: the trained network's forward pass in NumPy, so a prediction costs microseconds."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import ModelFileError

# Expected weight shapes per architecture; None matches any size (the dense net's hidden units).
WEIGHT_SHAPES = {
    "cnn": [(3, 3, 1, 32), (32,), (3, 3, 32, 64), (64,), (1600, 10), (10,)],
}
MAX_HIDDEN_LAYERS = 3


def _dense_shapes(weights: list) -> list[tuple] | None:
    """The shapes a dense network of len(weights) // 2 layers must have: 784 -> h (-> h ...) -> 10."""
    layers = len(weights) // 2
    if len(weights) % 2 or not 2 <= layers <= MAX_HIDDEN_LAYERS + 1 or np.ndim(weights[0]) != 2:
        return None
    h = np.shape(weights[0])[1]
    ins, outs = [784] + [h] * (layers - 1), [h] * (layers - 1) + [10]
    return [s for i, o in zip(ins, outs) for s in ((i, o), (o,))]


def check_weights(architecture: str, weights: list[np.ndarray], where: str = "weights") -> None:
    """Raise ModelFileError unless weights fit the architecture (and agree with each other)."""
    if architecture not in ("dense", "cnn"):
        raise ModelFileError(f"{where}: unknown architecture {architecture!r}")
    expected = _dense_shapes(weights) if architecture == "dense" else WEIGHT_SHAPES["cnn"]
    shapes = [tuple(np.shape(w)) for w in weights]
    if expected is None or shapes != [tuple(e) for e in expected]:
        raise ModelFileError(f"{where}: weight shapes {shapes} do not fit the {architecture} network")
    if not all(np.all(np.isfinite(w)) for w in weights):
        raise ModelFileError(f"{where}: weights hold NaN or infinity")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _conv_relu_pool(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(n, h, w, c) -> valid 3x3 conv, relu, 2x2 max-pool (floor), as Keras's Conv2D + MaxPooling2D."""
    windows = sliding_window_view(x, (3, 3), axis=(1, 2))  # (n, h-2, w-2, c, 3, 3)
    y = np.maximum(np.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True) + bias, 0)
    n, h, w, c = y.shape
    y = y[:, : h // 2 * 2, : w // 2 * 2]
    return y.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class Predictor:
    """Predictor(model)(images): images (n, 28, 28) float32 in [0, 1] -> probabilities (n, 10) float32."""

    def __init__(self, model=None, *, architecture: str | None = None, weights: list | None = None):
        if model is not None:
            architecture = "cnn" if len(model.input_shape) == 4 else "dense"
            weights = model.get_weights()
        if architecture is None or weights is None:
            raise ValueError("Predictor needs a Keras model or architecture= and weights=")
        weights = [np.asarray(w, np.float32) for w in weights]
        check_weights(architecture, weights)
        self.architecture, self.weights = architecture, weights

    @classmethod
    def for_run(cls, run) -> "Predictor":
        return cls(architecture=run.architecture, weights=run.weights)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, np.float32)
        if x.ndim == 2:
            x = x[None]
        if x.shape[1:] != (28, 28):
            raise ValueError(f"images must be (n, 28, 28), got {x.shape}")
        if self.architecture == "dense":
            return _softmax(self._dense_logits(x))
        return _softmax(self._cnn_logits(x))

    def hidden(self, images: np.ndarray) -> np.ndarray:
        """First hidden layer activations (n, units) of the dense network."""
        if self.architecture != "dense":
            raise ValueError("hidden activations are shown for the dense network only")
        w1, b1 = self.weights[:2]
        return np.maximum(np.asarray(images, np.float32).reshape(-1, 784) @ w1 + b1, 0)

    def unit_votes(self, unit: int, images: np.ndarray) -> np.ndarray:
        """(10,) how much first-layer `unit` raises each class's score per unit of its activation: its output
        weights with one hidden layer; with more, measured on images (n, 28, 28) by switching it off where it fires."""
        if len(self.weights) == 4:
            return self.weights[2][unit].copy()
        h = self.hidden(images)
        firing = h[:, unit] > 0
        if not firing.any():
            return np.zeros(10, np.float32)
        h = h[firing]
        off = h.copy()
        off[:, unit] = 0
        change = self._logits_from_hidden(h) - self._logits_from_hidden(off)
        return (change / h[:, unit:unit + 1]).mean(axis=0)

    def _dense_logits(self, x: np.ndarray) -> np.ndarray:
        return self._logits_from_hidden(self.hidden(x))

    def _logits_from_hidden(self, h: np.ndarray) -> np.ndarray:
        """relu through the later hidden layers (dropout is for training only: never here), then the output layer."""
        for w, b in zip(self.weights[2:-2:2], self.weights[3:-2:2]):
            h = np.maximum(h @ w + b, 0)
        return h @ self.weights[-2] + self.weights[-1]

    def _cnn_logits(self, x: np.ndarray) -> np.ndarray:
        k1, b1, k2, b2, w, b = self.weights
        y = _conv_relu_pool(x[..., None], k1, b1)
        y = _conv_relu_pool(y, k2, b2)
        return y.reshape(len(x), -1) @ w + b
