"""Building and compiling the networks (imports Keras: only workers and model users load this)."""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
KERAS_EXTRAS = ("sklearn", "pandas", "matplotlib")  # what Keras loads when installed, for integrations unused here


def _import_keras():
    """Keras, without the extras it would load for its scikit-learn wrapper, pandas inputs and image plots (1.6 s of
    a worker's 5.8 s start, which each new worker, actor and training command pays). They stay importable."""
    hidden = [name for name in KERAS_EXTRAS if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))  # None: "not installed", which Keras handles
    try:
        import keras
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return keras


keras = _import_keras()
import numpy as np  # noqa: E402

from .config import TrainConfig  # noqa: E402


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """rmsprop (the notebook's), adam or sgd at the given learning rate."""
    classes = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    return classes[name](learning_rate=learning_rate)


DENSE_INPUT = (784,)  # one example as the dense network takes it: the 28x28 pixels in a row
CNN_INPUT = (28, 28, 1)  # ... and as the CNN does: an image with one channel


def input_shape(config: TrainConfig) -> tuple:
    """The model's input_shape for config's network, before it is built: (None, 784) or (None, 28, 28, 1)."""
    return (None,) + (CNN_INPUT if config.architecture == "cnn" else DENSE_INPUT)


def build_dense(hidden_units: int = 512, hidden_layers: int = 1, dropout: float = 0.0, l2: float = 0.0) -> keras.Model:
    """The notebook's network, 784 -> Dense(hidden, relu) -> Dense(10, softmax), with as many hidden layers as asked,
    dropout after each and an L2 penalty on every kernel when asked (the defaults add nothing: the notebook's own)."""
    # Explicit names: Streamlit's clear_session() resets Keras's automatic name counters.
    penalty = keras.regularizers.L2(l2) if l2 else None
    layers = [keras.Input(DENSE_INPUT, name="pixels")]
    for i in range(hidden_layers):
        suffix = "" if i == 0 else str(i + 1)
        layers.append(keras.layers.Dense(hidden_units, activation="relu", kernel_regularizer=penalty,
                                         name=f"hidden{suffix}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout{suffix}"))
    layers.append(keras.layers.Dense(10, activation="softmax", kernel_regularizer=penalty, name="output"))
    return keras.Sequential(layers, name="dense_mnist")


def build_cnn() -> keras.Model:
    """A small convolutional network: (28, 28, 1) -> 2 x (conv 3x3, max-pool 2) -> Dense(10, softmax)."""
    return keras.Sequential([
        keras.Input(CNN_INPUT, name="pixels"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(64, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dropout(0.25, name="dropout"),
        keras.layers.Dense(10, activation="softmax", name="output"),
    ], name="cnn_mnist")


def build_model(config: TrainConfig = TrainConfig()) -> keras.Model:
    """Build and compile the network that config asks for, seeded."""
    keras.utils.set_random_seed(config.seed)
    model = build_cnn() if config.architecture == "cnn" else build_dense(
        config.hidden_units, config.hidden_layers, config.dropout, config.l2)
    model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def model_inputs(images: np.ndarray, model_input_shape: tuple) -> np.ndarray:
    """(n, 28, 28) images in [0, 1] reshaped to what the model takes: (n, 784) or (n, 28, 28, 1)."""
    return np.asarray(images, np.float32).reshape((-1,) + tuple(model_input_shape[1:]))
