"""What a run's numbers say: the curves in plain words, confusion, mistakes, and sweep plans."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .config import TrainConfig, epochs_text
from .i18n import N_, _, ngettext, number, percent
from .records import EpochMetrics

GAP_WARN = 0.05  # a train-test accuracy gap above this is worth pointing out
RISE = 0.003  # accuracy changes smaller than this are noise


SLIGHT_RISE = 0.05  # test loss this far (5%) above its lowest: the network starts to overfit
CLEAR_RISE = 0.15  # 15% above its lowest, or test accuracy down a point from its best: clearly overfitting
CLEAR_GAP = 0.08  # a train-test accuracy gap of 8 points or more is clear on its own once test stops improving
ACC_DROP = 0.01  # test accuracy this far below its best counts as falling


def overfitting_grade(epochs: list[EpochMetrics]) -> tuple[str, dict]:
    """("none" | "slight" | "clear", the evidence) read from what matters: test loss rising from its lowest
    and test accuracy falling from its best while the training loss keeps falling, and the size of the gap.

    "clear" needs training accuracy more than GAP_WARN above test accuracy (memorising shows there); the grade never
    gets milder as the last epoch's gap widens.
    """
    if len(epochs) < 3:
        return "none", {}
    test_loss = np.array([m.test_loss for m in epochs])
    test_acc = np.array([m.test_accuracy for m in epochs])
    low, best = int(np.argmin(test_loss)), int(np.argmax(test_acc))
    last_i = len(epochs) - 1
    last = epochs[-1]
    rise = test_loss[-1] / max(test_loss[low], 1e-9) - 1
    drop = test_acc[best] - test_acc[-1]
    # Training still improves after test stopped: after the lowest test loss, or (while that is the last epoch)
    # after the best test accuracy; never judged against the best accuracy when the loss bottomed out later, or a
    # lower last test accuracy could move the yardstick and soften the grade.
    train_falling = last.loss < epochs[low if low < last_i else best].loss
    gap = last.accuracy - last.test_accuracy
    evidence = {"low_epoch": low + 1, "best_epoch": best + 1, "rise": float(rise), "drop": float(drop),
                "gap": float(gap), "low_loss": float(test_loss[low]), "last_loss": float(test_loss[-1]),
                "best_acc": float(test_acc[best]), "last_epoch": len(epochs)}
    stalled = low < last_i or best < last_i
    if not train_falling or not stalled:
        return "none", evidence
    if gap > GAP_WARN and (rise >= CLEAR_RISE or drop >= ACC_DROP or (gap >= CLEAR_GAP and rise >= SLIGHT_RISE)):
        return "clear", evidence
    if rise >= SLIGHT_RISE or drop >= ACC_DROP or gap > GAP_WARN:
        return "slight", evidence
    return "none", evidence


def reading_grade(epochs: list[EpochMetrics], best_epoch: int | None = None) -> str:
    """How loudly to show the reading: the grade of the model kept ("none" | "slight" | "clear"); a kept model
    with a wide gap is never "none" (early stopping stops the rise, not the memorising)."""
    kept = epochs[:best_epoch] if best_epoch else epochs
    grade = overfitting_grade(kept)[0]
    if grade == "none" and best_epoch and best_epoch < len(epochs) and kept and \
            kept[-1].accuracy - kept[-1].test_accuracy >= CLEAR_GAP:
        return "slight"
    return grade


def _gap_words(train: float, test: float) -> str:
    """'a gap of 4.8 points', or 'test accuracy 17.5 points above training accuracy' for a negative gap."""
    gap = round((train - test) * 100, 1)
    if gap < 0:
        return _("test accuracy {points} points above training accuracy").format(points=number(-gap, 1))
    return _("a gap of {points} points").format(points=number(abs(gap), 1))


def _behind(epochs: list[EpochMetrics], index: int, dropout: float) -> str:
    """Why test accuracy can be above training accuracy, in the words that apply to epochs[index]."""
    m = epochs[index]
    reasons = []
    if index == 0 or m.accuracy > epochs[index - 1].accuracy + RISE:
        reasons.append(_("the training figure is averaged over the epoch, while the network was still learning, "
                         "and the test figure is measured at its end"))
    if dropout:
        reasons.append(_("dropout switches off {share} of the hidden units while training, which lowers the "
                         "training figure, and the test figure is measured with all of them").format(
            share=percent(dropout)))
    if not reasons:
        reasons.append(_("these test images may simply be easier than the training images"))
    return _("Test accuracy above training accuracy is no sign of trouble: {reasons}.").format(
        reasons=_("; and ").join(reasons))


def read_curves(epochs: list[EpochMetrics], best_epoch: int | None = None, dropout: float = 0.0) -> str:
    """A plain-language reading of one run's train and test curves, graded by how much it overfits.

    best_epoch: early stopping kept this epoch's weights (one-indexed); the reading is then of the kept model.
    dropout: the run's dropout (0-0.5), which lowers the training figure; named when test accuracy is the higher.
    """
    if not epochs:
        return _("No epoch has finished yet, so there are no curves to read.")
    if best_epoch and best_epoch < len(epochs):
        kept = epochs[best_epoch - 1]
        gap = kept.accuracy - kept.test_accuracy
        still = (" " + _("Still, {points} points is a wide gap: early stopping keeps the test loss from rising, but it "
                         "cannot teach the network what it never saw. More training examples narrow the gap most (the "
                         "overfitting lab on Explore shows how much).").format(points=number(gap * 100, 1))
                 if gap >= CLEAR_GAP else "")
        behind = " " + _behind(epochs, best_epoch - 1, dropout) if gap < -GAP_WARN else ""
        words = _gap_words(kept.accuracy, kept.test_accuracy)
        return _("Early stopping kept epoch {epoch}: its network gets {train} of the training images and {test} of "
                 "the test images right ({gap}). The test loss was lowest there and did not improve in the {after} "
                 "epochs after it, while the training loss kept falling: the network had started to memorise, and "
                 "the weights from before that are the ones kept.").format(
            epoch=best_epoch, train=percent(kept.accuracy, 1), test=percent(kept.test_accuracy, 1), gap=words,
            after=len(epochs) - best_epoch) + still + behind
    last = epochs[-1]
    tr, te = last.accuracy, last.test_accuracy
    gap = tr - te
    head = _("After {epochs} the network gets {train} of the training images and {test} of the test images right "
             "({gap}).").format(epochs=epochs_text(len(epochs)), train=percent(tr, 1), test=percent(te, 1),
                                gap=_gap_words(tr, te)) + " "
    behind = [_behind(epochs, len(epochs) - 1, dropout)] if gap < -GAP_WARN else []
    grade, e = overfitting_grade(epochs)
    if grade == "clear":
        return head + _("The network is clearly overfitting: it memorises the training images instead of learning "
                        "what makes a digit. While the training loss kept falling, {signs}. Fewer epochs (or early "
                        "stopping), more training examples, or dropout would help.").format(signs=_signs(e))
    if grade == "slight":
        return head + " ".join([_("It is starting to overfit: while the training loss still falls, {signs}. A few "
                                  "more epochs would widen the gap; fewer would lose nothing.").format(signs=_signs(e))]
                               + behind)
    if gap > GAP_WARN:
        return head + _("The network fits the training images better than new ones, but the test figures are still "
                        "improving: more training examples would narrow the gap.")
    if len(epochs) >= 2 and te > epochs[-2].test_accuracy + RISE:
        behind.append(_("Test accuracy was still rising in the last epoch: more epochs would probably help."))
    if behind:
        return head + " ".join(behind)
    return head + _("Training and test accuracy are close: the network recognises digits it has never seen about "
                    "as well as the ones it learned from.")


def _signs(e: dict) -> str:
    """The evidence of overfitting in words: 'test loss has risen from 0.30 at epoch 4 to 0.36'."""
    signs = []
    if e["rise"] >= SLIGHT_RISE:
        signs.append(_("test loss has risen from {low} at epoch {epoch} to {last} ({rise} higher)").format(
            low=number(e["low_loss"], 2), epoch=e["low_epoch"], last=number(e["last_loss"], 2),
            rise=percent(e["rise"])))
    if e["drop"] >= ACC_DROP:
        signs.append(_("test accuracy fell from its best, {best} at epoch {epoch}").format(
            best=percent(e["best_acc"], 1), epoch=e["best_epoch"]))
    if not signs:
        signs.append(_("test loss stopped falling after epoch {epoch}").format(epoch=e["low_epoch"])
                     if e["low_epoch"] < e["last_epoch"] else
                     _("test accuracy stopped rising after epoch {epoch}").format(epoch=e["best_epoch"]))
    return _(" and ").join(signs)


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


SWEEPS = {  # knob -> (values, how the page names it); the lab trains one run per value, the rest as set
    "train_size": ((500, 2000, 10000, 0), N_("training examples")),  # names translated where shown
    "epochs": ((1, 3, 10, 30), N_("epochs")),
    "dropout": ((0.0, 0.2, 0.4, 0.5), N_("dropout")),
    "l2": ((0.0, 1e-4, 1e-3, 1e-2), N_("L2 weight penalty")),
    "hidden_units": ((16, 64, 256, 1024), N_("hidden units")),
}


def sweep_plan(base: TrainConfig, n_train: int, knob: str = "train_size") -> list[tuple[TrainConfig, str]]:
    """(config, run name) for a sweep of one knob; training-set sizes below n_train, then all of them."""
    values = SWEEPS[knob][0]
    if knob == "train_size":
        sizes = [s for s in values if 0 < s < n_train] + [0]
        return [(replace(base, train_size=s), f"Sweep {'all' if not s else s}") for s in sizes]
    return [(replace(base, **{knob: v}), f"Sweep {knob} {v:g}") for v in values]


def sweep_value(name: str, knob: str) -> float | None:
    """The knob's value in a sweep run's name ('Sweep dropout 0.2' -> 0.2; 'Sweep all' -> 0), or None."""
    parts = name.split()
    if knob == "train_size" and len(parts) == 2 and parts[0] == "Sweep":
        return 0 if parts[1] == "all" else float(parts[1]) if parts[1].isdigit() else None
    if len(parts) == 3 and parts[:2] == ["Sweep", knob]:
        try:
            return float(parts[2])
        except ValueError:
            return None
    return None


KNOB_WORDS = {  # field -> how to say its value in a sentence (in the current language)
    "epochs": lambda v: ngettext("{n} epoch", "{n} epochs", v).format(n=v),
    "batch_size": lambda v: _("batch size {size}").format(size=v),
    "train_size": lambda v: _("all training examples") if not v else _("{n} training examples").format(n=number(v)),
    "learning_rate": lambda v: _("learning rate {rate}").format(rate=f"{v:g}"),
    "hidden_units": lambda v: _("{n} hidden units").format(n=v),
    "hidden_layers": lambda v: ngettext("{n} hidden layer", "{n} hidden layers", v).format(n=v),
    "dropout": lambda v: _("dropout {rate}").format(rate=f"{v:g}"),
    "l2": lambda v: _("L2 {penalty}").format(penalty=f"{v:g}") if v else _("no L2"),
    "patience": lambda v: _("early stopping after {n}").format(n=v) if v else _("no early stopping"),
    "optimizer": lambda v: str(v),
    "architecture": lambda v: {"dense": _("the dense network"), "cnn": _("the CNN")}[v],
    "dataset": lambda v: v}

CHANGES = {  # what -> (rose, fell, stayed): whole clauses, each translated as one
    "gap": (N_("the gap rose from {before} to {after} points"), N_("the gap fell from {before} to {after} points"),
            N_("the gap stayed at {before} points")),
    "test accuracy": (N_("test accuracy rose from {before} to {after}"), N_("test accuracy fell from {before} to "
                                                                            "{after}"),
                      N_("test accuracy stayed at {before}")),
    "test loss": (N_("test loss rose from {before} to {after}"), N_("test loss fell from {before} to {after}"),
                  N_("test loss stayed at {before}")),
}


def compare_runs(previous, current) -> str | None:
    """One sentence when two runs differ in one knob (or two): 'With dropout 0.3 (instead of dropout 0) the gap fell
    from 9.1 to 3.2 points, and test accuracy rose from 85.5% to 88.0%.' None otherwise.

    Epochs are quoted as trained ('9 of 50 epochs' for a run stopped early), and a difference in epochs trained is
    named even when another knob is the one that changed.
    """
    if previous is None or current is None or previous.final is None or current.final is None:
        return None
    changed = current.config.differences(previous.config)
    if not 1 <= len(changed) <= 2 or "dataset" in changed:
        return None
    both = _(" and ")
    now = both.join(_knob_words(current, k) for k in changed)
    before = both.join(_knob_words(previous, k) for k in changed)
    if "epochs" not in changed and len(current.epochs) != len(previous.epochs):
        now = _("{settings}, after {epochs}").format(settings=now, epochs=_knob_words(current, "epochs"))
        before = _("{settings}, after {epochs}").format(settings=before, epochs=_knob_words(previous, "epochs"))
    gap_now = (current.train_accuracy - current.test_accuracy) * 100
    gap = _change("gap", (previous.train_accuracy - previous.test_accuracy) * 100, gap_now,
                  lambda v: number(v, 1), 0.05)
    if gap_now < -GAP_WARN * 100:
        reason = _("dropout lowers the training figure") if current.config.dropout else \
            _("the training figure is averaged over an epoch in which the network was still learning")
        gap = _("{change} (test accuracy above training accuracy: {reason})").format(change=gap, reason=reason)
    test = _change("test accuracy", previous.test_accuracy, current.test_accuracy, lambda v: percent(v, 1), 0.0005)
    loss = _change("test loss", previous.final.test_loss, current.final.test_loss, lambda v: number(v, 3), 0.0005)
    return _("With {now} (instead of {before}) {gap}, {test}, and {loss} ({previous} against {current}).").format(
        now=now, before=before, gap=gap, test=test, loss=loss, previous=previous.name, current=current.name)


def _knob_words(run, knob: str) -> str:
    """A knob's value in words; epochs as trained ('9 of 50 epochs'), not as planned."""
    if knob == "epochs":
        return epochs_text(run.config.epochs, len(run.epochs))
    return KNOB_WORDS[knob](getattr(run.config, knob))


def _change(what: str, before: float, after: float, written, noise: float) -> str:
    """'the gap fell from 9.1 to 3.2 points' / 'test accuracy stayed at 85.5%' (written: a number as text)."""
    rose, fell, stayed = CHANGES[what]
    if abs(after - before) <= noise:
        return _(stayed).format(before=written(before))
    return _(rose if after > before else fell).format(before=written(before), after=written(after))
