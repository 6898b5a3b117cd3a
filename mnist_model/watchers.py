"""Watchers the training loop calls after every epoch: early stopping, and what the first layer learns."""
from __future__ import annotations

from typing import Callable

import numpy as np

MIN_DELTA = 1e-4  # a test loss must fall at least this much to count as better (Keras's EarlyStopping: 0)
SNAPSHOT_UNITS = 16  # hidden units whose weights are sent with every epoch (16 x 784 float16: about 25 kB)
MOVED_UNITS = 64  # hidden units kept with the run for "What it learned": those that moved most from their start
FIRST_EPOCH_MARKS = (0.125, 0.25, 0.5)  # extra frames inside epoch 1, where most strokes form (kept with the run)


class EarlyStopping:
    """Stops when the test loss has not improved for `patience` epochs; remembers the best epoch's weights."""

    def __init__(self, patience: int, min_delta: float = MIN_DELTA):
        self.patience, self.min_delta = patience, min_delta
        self.best_loss, self.best_epoch = float("inf"), 0
        self.best_weights: list[np.ndarray] | None = None
        self.best_probs: np.ndarray | None = None
        self.stopped_early = False

    def epoch_end(self, epoch: int, test_loss: float, weights: Callable[[], list], test_probs: np.ndarray) -> bool:
        """epoch: one-indexed. True when training should stop now."""
        if test_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch = test_loss, epoch
            self.best_weights, self.best_probs = weights(), test_probs
        elif epoch - self.best_epoch >= self.patience:
            self.stopped_early = True
        return self.stopped_early


class FirstLayerWatch:
    """Follows the first layer's weights (784, units): which hidden units change most, and how, epoch by epoch."""

    def __init__(self, initial: np.ndarray):
        self.initial = np.array(initial, np.float32)  # (784, units), a copy
        self.units: np.ndarray | None = None  # chosen after the first epoch, then kept, so frames compare
        self.frames: list[np.ndarray] = []  # (SNAPSHOT_UNITS, 784) float16 per frame, the start first
        self.frame_epochs: list[float] = []  # when each frame was taken: 0, 0.125, 0.25, 0.5, 1, 2, ...
        self._early: list[tuple[float, np.ndarray]] = []  # (fraction of epoch 1, kernel) until the units are chosen

    def during_first_epoch(self, fraction: float, kernel: Callable[[], np.ndarray]) -> None:
        """fraction: of epoch 1 done (0-1); keeps the kernel (read only then) as each FIRST_EPOCH_MARKS passes."""
        marks = [m for m in FIRST_EPOCH_MARKS if m <= fraction < 1 and all(m > f for f, _ in self._early)]
        if marks and self.units is None:
            self._early.append((fraction, np.array(kernel(), np.float32)))

    def epoch_end(self, epoch: int, kernel: np.ndarray) -> dict:
        """The snapshot message for this epoch: {"epoch", "units", "weights" (16, 784) float16[, "initial"]}."""
        if self.units is None:
            self.units = most_moved(self.initial, kernel, SNAPSHOT_UNITS)
            self.frames.append(self.initial[:, self.units].T.astype(np.float16))
            self.frame_epochs.append(0.0)
            for fraction, early in self._early:
                self.frames.append(early[:, self.units].T.astype(np.float16))
                self.frame_epochs.append(round(fraction, 3))
            self._early = []
        self.frame_epochs.append(float(epoch))
        frame = np.asarray(kernel, np.float32)[:, self.units].T.astype(np.float16)
        self.frames.append(frame)
        message = {"epoch": epoch, "units": self.units.astype(np.int32), "weights": frame}
        if epoch == 1:
            message["initial"] = self.frames[0]
        return message

    def summary(self, kernel: np.ndarray) -> dict:
        """Arrays kept with the run: the snapshot frames, and the units that moved most with their start."""
        moved = most_moved(self.initial, kernel, MOVED_UNITS)
        out = {"moved_units": moved.astype(np.int32), "moved_initial": self.initial[:, moved].T.astype(np.float16),
               "initial_kernel": self.initial.astype(np.float16)}  # every unit's start: any tile shows its change
        if self.units is not None:
            out.update(snapshot_units=self.units.astype(np.int32), snapshot_frames=np.stack(self.frames),
                       snapshot_epochs=np.array(self.frame_epochs, np.float32))
        return out


def most_moved(initial: np.ndarray, kernel: np.ndarray, count: int) -> np.ndarray:
    """Indices of the count hidden units (columns) whose 784 weights moved furthest from initial, furthest first."""
    distance = np.linalg.norm(np.asarray(kernel, np.float32) - initial, axis=0)
    return np.argsort(-distance, kind="stable")[:count]
