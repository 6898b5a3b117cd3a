"""The training loop: fit the network, reporting progress and metrics through plain callables."""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .config import TrainConfig
from .data import Dataset
from .records import BatchProgress, EpochMetrics  # noqa: F401  (re-exported: the loop's records)
from .reporter import Reporter
from .watchers import EarlyStopping, FirstLayerWatch

PROGRESS_UPDATES_PER_EPOCH = 20  # batch reports per epoch: enough for a live bar, few enough to cost nothing
MAX_STEPS_PER_CALL = 32  # batches per compiled call (speed); also bounds how late Stop lands


@dataclass
class TrainResult:
    """What train() returns: the model, its per-epoch metrics, whether Stop cut it short, its test predictions."""

    model: object
    epochs: list[EpochMetrics]
    stopped: bool
    seconds: float
    test_probs: np.ndarray  # (n_test, 10) float32: the kept model's test-set probabilities
    best_epoch: int | None = None  # early stopping: the epoch whose weights the model keeps (one-indexed)
    stopped_early: bool = False  # early stopping ended it (Stop did not)
    extras: dict = field(default_factory=dict)  # first-layer snapshots and most-moved units (dense networks)


def to_inputs(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 28, 28) float32 in [0, 1], as the notebook scales pixels."""
    return np.asarray(images, np.float32) / 255.0


def one_hot(labels: np.ndarray) -> np.ndarray:
    """(n,) labels 0-9 -> (n, 10) float32 one-hot, as the notebook's to_categorical."""
    return np.eye(10, dtype=np.float32)[np.asarray(labels, np.int64)]


def training_subset(dataset: Dataset, train_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first train_size examples of a seeded shuffle (all of them when train_size is 0)."""
    n = len(dataset.x_train)
    if not train_size or train_size >= n:
        return dataset.x_train, dataset.y_train
    idx = np.random.default_rng(seed).permutation(n)[:train_size]
    return dataset.x_train[idx], dataset.y_train[idx]


def steps_per_call(steps_per_epoch: int) -> int:
    """Batches per compiled call: fast, while still reporting about PROGRESS_UPDATES_PER_EPOCH times an epoch."""
    return int(max(1, min(MAX_STEPS_PER_CALL, steps_per_epoch // PROGRESS_UPDATES_PER_EPOCH)))


class KeptNetworks:
    """A worker's last few networks with their compiled training steps, by shape: a training whose network has the
    shape of a kept one takes it over (fresh weights, a fresh optimizer state) and skips the ~1 s of tracing and
    compiling that a new network's first epoch pays. Each is lent to one training at a time."""

    def __init__(self, size: int = 3):
        self.size = size  # networks kept: each a few MB (weights, optimizer state, compiled steps)
        self._kept: collections.OrderedDict = collections.OrderedDict()

    def network(self, config: TrainConfig, inputs: tuple, test: tuple):
        """(model, CompiledSteps) for config, on these data; the model holds the weights build_model(config) makes."""
        from .network import build_model
        from .steps import CompiledSteps
        fresh = build_model(config)
        key = _network_shape(config)
        kept = self._kept.pop(key, None)
        if kept is None:
            kept = fresh, CompiledSteps(fresh, inputs, test, jit_compile=_xla(config), seed=config.seed)
        else:
            model, runner = kept
            model.set_weights(fresh.get_weights())
            fresh.optimizer.build(fresh.trainable_variables)
            for mine, new in zip(model.optimizer.variables, fresh.optimizer.variables, strict=True):
                mine.assign(new)  # iterations, learning rate, every slot: as a new optimizer has them
            runner.restart(inputs, test, config.seed)
        self._kept[key] = kept
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return kept

    def held_bytes(self) -> int:
        """Bytes of training data the kept networks hold (0 between trainings)."""
        return sum(runner.held_bytes() for _model, runner in self._kept.values())


def _network_shape(config: TrainConfig) -> tuple:
    """What a network's compiled steps depend on (its data and seed excepted)."""
    return (config.architecture, config.hidden_units, config.hidden_layers, config.dropout, config.l2,
            config.optimizer, config.learning_rate)


def _xla(config: TrainConfig) -> bool:
    return config.architecture == "dense"


def train(config: TrainConfig, dataset: Dataset,
          on_batch: Callable[[BatchProgress], None] | None = None,
          on_epoch: Callable[[EpochMetrics], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          init_weights: list[np.ndarray] | None = None,
          extra: tuple[np.ndarray, np.ndarray] | None = None,
          on_snapshot: Callable[[dict], None] | None = None, watch_first_layer: bool = True,
          kept: KeptNetworks | None = None) -> TrainResult:
    """Fit config's network on dataset as the notebook's fit() does, evaluating the test set after every epoch.

    init_weights: start from these weights (fine-tuning) instead of fresh ones.
    extra: (images (m, 28, 28) uint8, labels (m,)) added to the training examples.
    on_snapshot: gets, after every epoch, a small snapshot of what the dense network's first layer learned.
    kept: a worker's KeptNetworks, to reuse a compiled network of the same shape (the result's model is then lent:
    the next training of that shape takes it over).
    With config.patience, training stops once the test loss has not improved for that many epochs, and the
    model keeps the best epoch's weights (after Stop too).
    """
    from .network import build_model, input_shape, model_inputs
    from .steps import CompiledSteps

    x, y = training_subset(dataset, config.train_size, config.seed)
    if extra is not None:
        x, y = np.concatenate([x, extra[0]]), np.concatenate([y, extra[1]])
    shape = input_shape(config)
    inputs = (model_inputs(to_inputs(x), shape), one_hot(y))
    test = (model_inputs(to_inputs(dataset.x_test), shape), one_hot(dataset.y_test))
    if kept is not None:
        model, runner = kept.network(config, inputs, test)
    else:
        model = build_model(config)
        runner = CompiledSteps(model, inputs, test, jit_compile=_xla(config), seed=config.seed)
    if init_weights is not None:
        model.set_weights([np.asarray(w, np.float32) for w in init_weights])
    try:
        reporter = Reporter(config.epochs, -(-len(x) // config.batch_size), on_batch, on_epoch, should_stop)
        stopper = EarlyStopping(config.patience) if config.patience else None
        first = model.layers[0]
        watch = FirstLayerWatch(first.kernel.numpy()) if config.architecture == "dense" and watch_first_layer else None
        order = np.random.default_rng(config.seed)  # a fresh shuffle every epoch, as fit(shuffle=True)
        t0 = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            reporter.epoch_begin(epoch)
            during = (lambda done: watch.during_first_epoch(done, first.kernel.numpy)) if watch is not None and \
                epoch == 1 else None
            loss, accuracy = _train_epoch(runner, order.permutation(len(x)), config.batch_size, reporter, during)
            test_loss, test_accuracy, test_probs = runner.evaluate()
            reporter.epoch_end(loss, accuracy, test_loss, test_accuracy)
            if watch is not None:
                snapshot = watch.epoch_end(epoch, first.kernel.numpy())
                if on_snapshot:
                    on_snapshot(snapshot)
            if stopper is not None and stopper.epoch_end(epoch, test_loss, model.get_weights, test_probs):
                break
            if reporter.stopped:
                break
        best_epoch = None
        if stopper is not None and stopper.best_weights is not None:
            best_epoch = stopper.best_epoch
            if best_epoch != len(reporter.history):
                model.set_weights(stopper.best_weights)
                test_probs = stopper.best_probs
        extras = watch.summary(first.kernel.numpy()) if watch is not None else {}
        return TrainResult(model, reporter.history, reporter.stopped, time.perf_counter() - t0, test_probs, best_epoch,
                           bool(stopper and stopper.stopped_early), extras)
    finally:  # a kept network waits for its next training without this one's examples (~220 MB with all of MNIST)
        runner.release()


def _train_epoch(runner, order: np.ndarray, batch_size: int, reporter, during=None) -> tuple[float, float]:
    """One pass over order (or until Stop); returns the running (mean loss, accuracy) as fit() reports them.
    during: called with the fraction of the epoch done after every compiled call."""
    from .steps import epoch_plan

    loss = right = seen = batches = 0.0
    for indices, mask, steps in epoch_plan(order, batch_size, steps_per_call(reporter.steps)):
        call_loss, call_right = runner.train(indices, mask, steps)
        loss, right, seen, batches = loss + call_loss, right + call_right, seen + float(mask.sum()), batches + steps
        reporter.batches_done(int(batches), loss / seen, right / seen)
        if during is not None:
            during(batches / reporter.steps)
        if reporter.stopped:
            break
    return loss / seen, right / seen
