"""Reporter: turns the training loop's events into BatchProgress / EpochMetrics calls and Stop checks."""
from __future__ import annotations

import time

from .records import BatchProgress, EpochMetrics


class Reporter:
    """Keeps the epoch history, reports through callables, and remembers whether should_stop() said so."""

    def __init__(self, epochs, steps, on_batch=None, on_epoch=None, should_stop=None):
        self.epochs, self.steps = epochs, steps
        self.on_batch, self.on_epoch, self.should_stop = on_batch, on_epoch, should_stop
        self.history: list[EpochMetrics] = []
        self.stopped = False
        self._t0 = self._epoch_t0 = time.perf_counter()
        self._epoch = 0

    def epoch_begin(self, epoch: int):
        """epoch: one-indexed."""
        self._epoch, self._epoch_t0 = epoch, time.perf_counter()

    def batches_done(self, batches: int, loss: float, accuracy: float):
        self._report_batch(batches, loss, accuracy)
        self._check_stop()

    def epoch_end(self, loss: float, accuracy: float, test_loss: float, test_accuracy: float):
        self._report_epoch(loss, accuracy, test_loss, test_accuracy)
        self._check_stop()

    def _report_batch(self, batches, loss, accuracy):
        if self.on_batch:
            self.on_batch(BatchProgress(self._epoch, self.epochs, min(batches, self.steps), self.steps,
                                        loss, accuracy, time.perf_counter() - self._t0))

    def _report_epoch(self, loss, accuracy, test_loss, test_accuracy):
        metrics = EpochMetrics(self._epoch, loss, accuracy, test_loss, test_accuracy,
                               time.perf_counter() - self._epoch_t0, complete=not self.stopped)
        self.history.append(metrics)
        if self.on_epoch:
            self.on_epoch(metrics)

    def _check_stop(self):
        if not self.stopped and self.should_stop and self.should_stop():
            self.stopped = True
