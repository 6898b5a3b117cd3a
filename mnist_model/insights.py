"""What a run's numbers say: the curves in plain words, confusion, mistakes, and sweep plans."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .config import TrainConfig, epochs_text
from .records import EpochMetrics

SWEEP_SIZES = (500, 2000, 10000, 0)  # training examples per sweep run; 0 = all
GAP_WARN = 0.05  # a train-test accuracy gap above this is worth pointing out
RISE = 0.003  # accuracy changes smaller than this are noise


SLIGHT_RISE = 0.05  # test loss this far (5%) above its lowest: the network starts to overfit
CLEAR_RISE = 0.15  # 15% above its lowest, or test accuracy down a point from its best: clearly overfitting
CLEAR_GAP = 0.08  # a train-test accuracy gap of 8 points or more is clear on its own once test stops improving
ACC_DROP = 0.01  # test accuracy this far below its best counts as falling


def overfitting_grade(epochs: list[EpochMetrics]) -> tuple[str, dict]:
    """("none" | "slight" | "clear", the evidence) read from what matters: test loss rising from its lowest
    and test accuracy falling from its best while the training loss keeps falling, and the size of the gap."""
    if len(epochs) < 3:
        return "none", {}
    test_loss = np.array([m.test_loss for m in epochs])
    test_acc = np.array([m.test_accuracy for m in epochs])
    low, best = int(np.argmin(test_loss)), int(np.argmax(test_acc))
    last = epochs[-1]
    rise = test_loss[-1] / max(test_loss[low], 1e-9) - 1
    drop = test_acc[best] - test_acc[-1]
    train_falling = last.loss < epochs[min(low, best)].loss  # training still improves after test stopped
    gap = last.accuracy - last.test_accuracy
    evidence = {"low_epoch": low + 1, "best_epoch": best + 1, "rise": float(rise), "drop": float(drop),
                "gap": float(gap), "low_loss": float(test_loss[low]), "last_loss": float(test_loss[-1]),
                "best_acc": float(test_acc[best])}
    stalled = low < len(epochs) - 1 or best < len(epochs) - 1
    if not train_falling or not stalled:
        return "none", evidence
    if rise >= CLEAR_RISE or drop >= ACC_DROP or (gap >= CLEAR_GAP and rise >= SLIGHT_RISE):
        return "clear", evidence
    if rise >= SLIGHT_RISE or gap >= GAP_WARN:
        return "slight", evidence
    return "none", evidence


def read_curves(epochs: list[EpochMetrics]) -> str:
    """A plain-language reading of one run's train and test curves, graded by how much it overfits."""
    if not epochs:
        return "No epoch has finished yet, so there are no curves to read."
    last = epochs[-1]
    tr, te = last.accuracy, last.test_accuracy
    gap = tr - te
    head = (f"After {epochs_text(len(epochs))} the network gets {tr:.1%} of the training images "
            f"and {te:.1%} of the test images right (a gap of {gap * 100:.1f} points). ")
    grade, e = overfitting_grade(epochs)
    if grade == "clear":
        signs = []
        if e["rise"] >= SLIGHT_RISE:
            signs.append(f"test loss has risen from {e['low_loss']:.2f} at epoch {e['low_epoch']} to "
                         f"{e['last_loss']:.2f}")
        if e["drop"] >= ACC_DROP:
            signs.append(f"test accuracy fell from its best, {e['best_acc']:.1%} at epoch {e['best_epoch']}")
        return head + (f"The network is clearly overfitting: it memorises the training images instead of learning "
                       f"what makes a digit. While the training loss kept falling, {' and '.join(signs) or 'test accuracy stopped improving'}. "
                       "Fewer epochs (or early stopping), more training examples, or dropout would help.")
    if grade == "slight":
        return head + (f"It is starting to overfit: test loss has been lowest at epoch {e['low_epoch']} and is now "
                       f"{e['rise']:.0%} higher, while the training loss still falls. A few more epochs would "
                       "widen the gap; fewer would lose nothing.")
    if gap > GAP_WARN:
        return head + ("The network fits the training images better than new ones, but the test figures are still "
                       "improving: more training examples would narrow the gap.")
    if len(epochs) >= 2 and te > epochs[-2].test_accuracy + RISE:
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
