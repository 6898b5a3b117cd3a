"""Records of training progress: plain data that every floor above (training, jobs, runs, store) shares."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchProgress:
    """Where training is within an epoch; epoch and batch are one-indexed."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float  # running mean of the training loss over this epoch so far
    accuracy: float
    elapsed_s: float  # since training started


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's results: training (running mean over the epoch) and test-set figures."""

    epoch: int  # One-indexed.
    loss: float
    accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    complete: bool = True  # False for the epoch that Stop cut short
