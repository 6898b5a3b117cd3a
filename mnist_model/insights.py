"""What a run's numbers say: the curves in plain words, confusion, mistakes, and sweep plans."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .config import TrainConfig
from .training import EpochMetrics

SWEEP_SIZES = (500, 2000, 10000, 0)  # training examples per sweep run; 0 = all
GAP_WARN = 0.05  # a train-test accuracy gap above this is worth pointing out
RISE = 0.003  # accuracy changes smaller than this are noise


def read_curves(epochs: list[EpochMetrics]) -> str:
    """A plain-language reading of one run's train and test curves."""
    if not epochs:
        return "No epoch has finished yet, so there are no curves to read."
    last = epochs[-1]
    tr, te = last.accuracy, last.test_accuracy
    gap = tr - te
    head = (f"After {len(epochs)} epoch{'s' * (len(epochs) > 1)} the network gets {tr:.1%} of the training images "
            f"and {te:.1%} of the test images right (a gap of {gap * 100:.1f} points). ")
    test_acc = [m.test_accuracy for m in epochs]
    best = int(np.argmax(test_acc))
    test_loss = [m.test_loss for m in epochs]
    low = int(np.argmin(test_loss))
    if len(epochs) >= 3 and best < len(epochs) - 1 and tr > epochs[best].accuracy + RISE and (
            te < test_acc[best] - RISE or test_loss[-1] > test_loss[low] * 1.1):
        body = (f"Test accuracy stopped improving after epoch {best + 1} ({test_acc[best]:.1%}) while training "
                f"accuracy kept rising to {tr:.1%}: the network is memorising the training images (overfitting).")
        if low < len(epochs) - 1 and test_loss[-1] > test_loss[low] * 1.1:
            body += f" Test loss has risen since epoch {low + 1}, the classic sign."
        return head + body + " Fewer epochs or more training examples would help."
    if gap > GAP_WARN:
        return head + ("The network fits the training images much better than new ones: it is starting to "
                       "memorise. More training examples would narrow the gap.")
    if len(epochs) >= 2 and te > test_acc[-2] + RISE:
        return head + "Test accuracy was still rising in the last epoch: more epochs would probably help."
    return head + ("Training and test accuracy are close: the network recognises digits it has never seen "
                   "about as well as the ones it learned from.")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """(classes, classes) int counts: rows are true labels, columns predictions."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """(classes,) share of each true class predicted right (NaN for a class with no examples)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def confident_mistakes(probs: np.ndarray, y_true: np.ndarray, k: int = 24) -> np.ndarray:
    """Indices of the k wrong predictions made with the highest confidence, most confident first."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != np.asarray(y_true))
    conf = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-conf, kind="stable")][:k]


def sweep_plan(base: TrainConfig, n_train: int, sizes=SWEEP_SIZES) -> list[TrainConfig]:
    """Configs for a training-set-size sweep: sizes below n_train, then all of them."""
    plan = [replace(base, train_size=s) for s in sizes if 0 < s < n_train]
    return plan + [replace(base, train_size=0)]
