"""Reporter: a Keras callback that turns fit()'s events into BatchProgress / EpochMetrics calls."""
from __future__ import annotations

import time

import keras
import numpy as np

from .training import BatchProgress, EpochMetrics


class Reporter(keras.callbacks.Callback):
    """Reports progress and metrics through callables, and turns should_stop() into stop_training."""

    # Overriding on_train_batch_end also keeps Keras from moving batch callbacks to a thread.
    def __init__(self, epochs, steps, on_batch=None, on_epoch=None, should_stop=None):
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.on_batch, self.on_epoch, self.should_stop = on_batch, on_epoch, should_stop
        self.history: list[EpochMetrics] = []
        self.stopped = False
        self._t0 = self._epoch_t0 = time.perf_counter()
        self._epoch = 0
        self._batches_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_t0, self._batches_done = epoch + 1, time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches_done = batch + 1
        self._report_batch(logs or {})
        self._check_stop()

    def on_epoch_end(self, epoch, logs=None):
        self._report_epoch(logs or {})
        self._check_stop()

    def _report_batch(self, logs):
        if self.on_batch:
            self.on_batch(BatchProgress(self._epoch, self.epochs, min(self._batches_done, self.steps), self.steps,
                                        _float(logs, "loss"), _float(logs, "accuracy"), time.perf_counter() - self._t0))

    def _report_epoch(self, logs):
        metrics = EpochMetrics(self._epoch, _float(logs, "loss"), _float(logs, "accuracy"),
                               _float(logs, "val_loss"), _float(logs, "val_accuracy"),
                               time.perf_counter() - self._epoch_t0, complete=not self.stopped)
        self.history.append(metrics)
        if self.on_epoch:
            self.on_epoch(metrics)

    def _check_stop(self):
        if not self.stopped and self.should_stop and self.should_stop():
            self.stopped = True
            self.model.stop_training = True


def _float(logs, key) -> float:
    return float(logs.get(key, np.nan))
