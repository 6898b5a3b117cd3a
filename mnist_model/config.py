"""TrainConfig: every default the widgets start from (the notebook's), and its URL-query round trip."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Mapping

from .i18n import _, ngettext, number, short

OPTIMIZERS = ("rmsprop", "adam", "sgd")
ARCHITECTURES = ("dense", "cnn")
DATASET_NAMES = ("mnist", "fashion")
BATCH_SIZES = tuple(2 ** k for k in range(4, 12))  # 16 .. 2048
LIMITS = {  # field -> (min, max) for numbers
    "epochs": (1, 50),
    "batch_size": (16, 2048),
    "learning_rate": (1e-5, 1.0),
    "hidden_units": (16, 2048),
    "train_size": (0, 60000),
    "seed": (0, 2 ** 31 - 1),
    "hidden_layers": (1, 3),
    "dropout": (0.0, 0.5),
    "l2": (0.0, 1e-2),
    "patience": (0, 20),
}
MIN_L2 = 1e-5  # a weight penalty below this does nothing visible; 0 turns it off
MIN_TRAIN_SIZE = 100  # fewer examples than this cannot fill a batch of every digit


@dataclass(frozen=True)
class TrainConfig:
    """One training setup; defaults reproduce the Keras MNIST notebook exactly."""

    epochs: int = 5  # the notebook's fit(epochs=5)
    batch_size: int = 128  # the notebook's fit(batch_size=128)
    learning_rate: float = 0.001  # Keras RMSprop's default, what optimizer="rmsprop" uses
    hidden_units: int = 512  # Dense(512, activation="relu")
    optimizer: str = "rmsprop"  # compile(optimizer="rmsprop")
    train_size: int = 0  # training examples used; 0 = all (the notebook uses all 60,000)
    dataset: str = "mnist"  # keras.datasets.mnist
    architecture: str = "dense"  # the notebook's 784-512-10 network; "cnn" for the small conv net
    seed: int = 0  # weights init and example order, so a shared link reproduces a run
    hidden_layers: int = 1  # the notebook's one hidden layer; 2 or 3 stack more of the same size
    dropout: float = 0.0  # share of hidden units dropped at random in each training step (never when predicting)
    l2: float = 0.0  # weight penalty on every kernel (0: off), pulls weights towards zero against memorising
    patience: int = 0  # early stopping: epochs without a better test loss before stopping (0: off); keeps the best

    def to_query(self) -> dict[str, str]:
        """The fields that differ from the defaults, as URL query strings."""
        default = TrainConfig()
        return {f.name: _format(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "TrainConfig":
        """Build from a dict (saved runs); unknown keys are ignored, bad values clamped."""
        config, notices = from_query({k: str(v) for k, v in data.items()})
        return config

    def describe(self, epochs_run: int | None = None) -> str:
        """One short line: '5 epochs, batch 128, all examples, rmsprop lr 0.001, 512 hidden' (+ the fighting knobs).

        epochs_run: epochs a stopped run actually trained ('3 of 50 epochs').
        """
        size = _("all examples") if not self.train_size else _("{n} examples").format(n=number(self.train_size))
        if self.architecture != "dense":
            net = "CNN"
        elif self.hidden_layers > 1:
            net = _("{layers} x {units} hidden").format(layers=self.hidden_layers, units=self.hidden_units)
        else:
            net = _("{units} hidden").format(units=self.hidden_units)
        parts = [epochs_text(self.epochs, epochs_run), _("batch {size}").format(size=self.batch_size), size,
                 _("{optimizer} lr {rate}").format(optimizer=self.optimizer, rate=short(self.learning_rate)), net,
                 _("dropout {rate}").format(rate=short(self.dropout)) if self.dropout else "",
                 _("L2 {penalty}").format(penalty=short(self.l2)) if self.l2 else "",
                 _("early stop {patience}").format(patience=self.patience) if self.patience else ""]
        return ", ".join(p for p in parts if p)

    def brief(self, epochs_run: int | None = None) -> str:
        """Epochs and batch, then only what differs from the notebook: '40 epochs, batch 32, 500 examples, dropout
        0.3, early stop 3' (short enough for a leaderboard column)."""
        d = TrainConfig()
        dense = self.architecture == "dense"
        parts = [epochs_text(self.epochs, epochs_run), _("batch {size}").format(size=self.batch_size),
                 _("{n} examples").format(n=number(self.train_size)) if self.train_size else "",
                 "CNN" if self.architecture == "cnn" else "",
                 _("{layers} layers").format(layers=self.hidden_layers) if dense and self.hidden_layers > 1 else "",
                 _("{units} hidden").format(units=self.hidden_units) if dense and self.hidden_units != d.hidden_units
                 else "",
                 self.optimizer if self.optimizer != d.optimizer else "",
                 _("lr {rate}").format(rate=short(self.learning_rate)) if self.learning_rate != d.learning_rate
                 else "",
                 _("dropout {rate}").format(rate=short(self.dropout)) if self.dropout else "",
                 _("L2 {penalty}").format(penalty=short(self.l2)) if self.l2 else "",
                 _("early stop {patience}").format(patience=self.patience) if self.patience else "",
                 "Fashion" if self.dataset == "fashion" else "",
                 _("seed {seed}").format(seed=self.seed) if self.seed else ""]
        return ", ".join(p for p in parts if p)

    def differences(self, other: "TrainConfig") -> list[str]:
        """The names of the fields (seed aside) where the two configs differ."""
        return [f.name for f in fields(self) if f.name != "seed" and getattr(self, f.name) != getattr(other, f.name)]


def epochs_text(planned: int, run: int | None = None) -> str:
    """'1 epoch', '5 epochs', or '3 of 50 epochs' for a run cut short."""
    if run is not None and run != planned:
        return ngettext("{run} of {planned} epoch", "{run} of {planned} epochs", planned).format(run=run,
                                                                                                planned=planned)
    return ngettext("{n} epoch", "{n} epochs", planned).format(n=planned)


def _format(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _parse_number(name: str, raw: str, kind: type, notices: list[str]):
    try:
        value = float(raw)
    except ValueError:
        notices.append(_("Ignored {name}={raw}: not a number.").format(name=name, raw=repr(raw)))
        return None
    if not math.isfinite(value):
        notices.append(_("Ignored {name}={raw}: not a finite number.").format(name=name, raw=repr(raw)))
        return None
    lo, hi = LIMITS[name]
    clamped = min(max(value, lo), hi)
    if kind is int:
        clamped = int(round(clamped))
    if clamped != value:
        notices.append(_("{name}={raw} is outside {low}-{high}: using {value}.").format(
            name=name, raw=raw, low=_format(lo), high=_format(hi), value=_format(clamped)))
    return clamped


def _nearest_batch_size(value: int) -> int:
    return min(BATCH_SIZES, key=lambda b: abs(math.log2(b) - math.log2(max(value, 1))))


def from_query(params: Mapping[str, object]) -> tuple[TrainConfig, list[str]]:
    """Parse URL query params into a config, clamping or ignoring bad values; returns (config, notices)."""
    notices: list[str] = []
    values = {}
    known = {f.name: f for f in fields(TrainConfig)}
    choices = {"optimizer": OPTIMIZERS, "architecture": ARCHITECTURES, "dataset": DATASET_NAMES}
    for name, raw in params.items():
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else ""
        raw = str(raw).strip()[:100]
        if name not in known:
            notices.append(_("Ignored unknown setting {name}.").format(name=repr(name)))
            continue
        if name in choices:
            if raw.lower() in choices[name]:
                values[name] = raw.lower()
            else:
                notices.append(_("Ignored {name}={raw}: choose one of {choices}.").format(
                    name=name, raw=repr(raw), choices=", ".join(choices[name])))
            continue
        kind = float if name in ("learning_rate", "dropout", "l2") else int
        value = _parse_number(name, raw, kind, notices)
        if value is None:
            continue
        if name == "l2" and 0 < value < MIN_L2:
            notices.append(_("l2={raw} is below {least}: using {least}.").format(raw=raw, least=f"{MIN_L2:g}"))
            value = MIN_L2
        if name == "batch_size" and value not in BATCH_SIZES:
            value = _nearest_batch_size(value)
            notices.append(_("batch_size={raw} is not a power of two: using {value}.").format(raw=raw, value=value))
        if name == "train_size" and 0 < value < MIN_TRAIN_SIZE:
            notices.append(_("train_size={raw} is too small: using {least}.").format(raw=raw, least=MIN_TRAIN_SIZE))
            value = MIN_TRAIN_SIZE
        values[name] = value
    return replace(TrainConfig(), **values), notices


_PRESET_NAMES = (_("The notebook"), _("Overfit on purpose"), _("Quick look"), _("Fix the overfitting"))  # catalog
PRESETS = {  # name -> config; the Train page offers these as one-click setups
    "The notebook": TrainConfig(),
    "Overfit on purpose": TrainConfig(epochs=40, batch_size=32, train_size=500),
    "Quick look": TrainConfig(epochs=2, train_size=2000),
    # Dropout 0.5 narrowed the gap most on 500 examples (0.3, or L2 on top, less).
    "Fix the overfitting": TrainConfig(epochs=40, batch_size=32, train_size=500, dropout=0.5, patience=3),
}
