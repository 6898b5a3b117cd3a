"""Run: a trained model with its config and metrics; its files (metadata .json, arrays .npz, model .keras)."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from .config import TrainConfig
from .errors import ModelFileError
from .i18n import _, number, percent
from .predict import check_weights
from .records import EpochMetrics

RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")  # generated names only: never a user's file name
RUN_FORMAT = "mnist-live-run/1"
DATA_SHORT = {"mnist": "MNIST", "fashion": "Fashion"}  # the runs table's data column


def runs_dir() -> Path:
    """The legacy shared runs folder, imported once into the store: $MNIST_LIVE_RUNS or runs/."""
    return Path(os.environ.get("MNIST_LIVE_RUNS", "runs"))


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


class Run:
    """A trained (or stopped) model: config, per-epoch metrics, and its arrays.

    The arrays (weights, the .keras file, test-set predictions) are given, or read on first use through
    `loader` (a run listed from the store costs nothing until its model is used).
    """

    def __init__(self, config: TrainConfig, epochs: list[EpochMetrics], status: str, dataset: str,
                 weights: list[np.ndarray] | None = None, keras_bytes: bytes = b"",
                 test_probs: np.ndarray | None = None, duration_s: float = 0.0, created_at: float | None = None,
                 run_id: str | None = None, name: str = "", *, pinned: bool = False, published: bool = False,
                 best_epoch: int | None = None, base_run_id: str | None = None, stopped_early: bool = False,
                 extras: dict | None = None, loader: Callable[[], dict] | None = None):
        self.config = config
        self.epochs = list(epochs)
        self.status = status  # "finished" or "stopped"
        self.dataset = dataset  # human title of the data it was trained on, e.g. "MNIST (full)"
        self.duration_s = duration_s
        self.created_at = time.time() if created_at is None else created_at
        self.run_id = run_id or new_run_id()
        self.name = name  # e.g. "Run 3"; set by whoever keeps a list of runs
        self.pinned = pinned  # kept when the workspace's oldest runs make room
        self.published = published  # offered to everyone on this server
        self.best_epoch = best_epoch  # early stopping: the epoch whose weights were kept (one-indexed)
        self.base_run_id = base_run_id  # fine-tuning: the run it continued
        self.stopped_early = stopped_early  # early stopping ended it
        self._arrays = None if loader else {"weights": weights, "keras_bytes": keras_bytes, "test_probs": test_probs,
                                            "extras": dict(extras or {})}
        self._loader = loader
        self._lock = threading.Lock()

    def _array(self, name: str):
        if self._arrays is None:
            with self._lock:
                if self._arrays is None:
                    self._arrays = self._loader()
        return self._arrays[name]

    @property
    def weights(self) -> list[np.ndarray]:
        """Keras order: kernel, bias per layer."""
        return self._array("weights")

    @property
    def keras_bytes(self) -> bytes:
        """The model as a .keras file, for download (b"" when there is none)."""
        return self._array("keras_bytes") or b""

    @property
    def test_probs(self) -> np.ndarray | None:
        """(n_test, 10) float32: the model's test-set predictions, when training left them."""
        return self._array("test_probs")

    @property
    def extras(self) -> dict:
        """Arrays beyond the model: first-layer snapshots per epoch and the most-moved units (dense networks)."""
        return self._array("extras") or {}

    def file_stem(self) -> str:
        """A download's name without its extension: 'mnist-live-run-2-my-drawings' (the id when unnamed)."""
        slug = re.sub(r"[^a-z0-9]+", "-", (self.name or "").lower()).strip("-")[:60]
        return f"mnist-live-{slug or self.run_id}"

    def first_layer_change(self) -> np.ndarray | None:
        """(784, units) float32: what training changed in the dense network's first layer (its weights minus their
        random start), or None for a CNN or a run saved without its start. The raw weights are mostly that noise."""
        if self.architecture != "dense" or "initial_kernel" not in self.extras:
            return None
        start = self.extras["initial_kernel"]
        if start.shape != self.weights[0].shape:
            return None
        return self.weights[0] - start.astype(np.float32)

    @property
    def early_stop_note(self) -> str:
        """'stopped early at epoch 7, kept epoch 4' (or '' when early stopping did not act)."""
        if not self.best_epoch:
            return ""
        head = f"stopped early at epoch {self.epochs_run}" if self.stopped_early else f"ran {self.epochs_run} epochs"
        return f"{head}, kept epoch {self.best_epoch}" if self.best_epoch != self.epochs_run or self.stopped_early \
            else ""

    @property
    def final(self) -> EpochMetrics | None:
        """The metrics the model ended with: the kept (best) epoch's under early stopping, else the last."""
        if self.best_epoch and 0 < self.best_epoch <= len(self.epochs):
            return self.epochs[self.best_epoch - 1]
        return self.epochs[-1] if self.epochs else None

    @property
    def train_accuracy(self) -> float:
        return self.final.accuracy if self.final else float("nan")

    @property
    def test_accuracy(self) -> float:
        return self.final.test_accuracy if self.final else float("nan")

    @property
    def architecture(self) -> str:
        return self.config.architecture

    @property
    def epochs_run(self) -> int:
        """Epochs trained (a stopped run's cut-short epoch counts)."""
        return len(self.epochs)

    @property
    def label(self) -> str:
        """'Run 3 · 97.8% test · 5 epochs, batch 128, ...'"""
        acc = _("{accuracy} test").format(accuracy=percent(self.test_accuracy, 1)) if self.final else _("no epoch")
        return f"{self.name or self.run_id} · {acc} · {self.config.describe(epochs_run=self.epochs_run)}"

    def metrics_csv(self) -> str:
        """Per-epoch metrics as CSV text."""
        out = io.StringIO()
        names = list(EpochMetrics.__dataclass_fields__)
        writer = csv.writer(out)
        writer.writerow(names)
        for m in self.epochs:
            writer.writerow([getattr(m, n) for n in names])
        return out.getvalue()

    def summary(self) -> dict:
        """One row of a runs table; every column keeps one type."""
        c = self.config
        status = {"finished": _("finished"), "stopped": _("stopped")}.get(self.status, self.status)
        return {"run": self.name or self.run_id, "status": status, "data": DATA_SHORT.get(c.dataset, c.dataset),
                "model": c.architecture, "epochs": self.epochs_run, "batch": c.batch_size,
                "examples": number(c.train_size) if c.train_size else _("all"), "optimizer": c.optimizer,
                "lr": c.learning_rate, "train acc": round(self.train_accuracy, 4),
                "test acc": round(self.test_accuracy, 4), "seconds": round(self.duration_s, 1)}

    def meta(self) -> dict:
        """The run's metadata as plain JSON data (no arrays)."""
        return {"format": RUN_FORMAT, "run_id": self.run_id, "name": self.name, "status": self.status,
                "dataset": self.dataset, "config": self.config.to_dict(), "created_at": self.created_at,
                "duration_s": self.duration_s, "epochs": [asdict(m) for m in self.epochs],
                "best_epoch": self.best_epoch, "base_run_id": self.base_run_id, "stopped_early": self.stopped_early}

    @classmethod
    def from_meta(cls, meta: dict, loader: Callable[[], dict] | None = None, **flags) -> "Run":
        """A Run from meta() data; ModelFileError when it is damaged."""
        try:
            return cls(TrainConfig.from_dict(meta["config"]), [EpochMetrics(**m) for m in meta["epochs"]],
                       str(meta["status"]), str(meta["dataset"]), duration_s=float(meta.get("duration_s", 0)),
                       created_at=float(meta.get("created_at", 0)), run_id=str(meta["run_id"]),
                       name=str(meta.get("name", "")), best_epoch=meta.get("best_epoch"),
                       base_run_id=meta.get("base_run_id"), stopped_early=bool(meta.get("stopped_early")),
                       loader=loader, **flags)
        except Exception as exc:  # Any failure to parse is the data's fault.
            raise ModelFileError(f"damaged run data ({exc.__class__.__name__}: {exc})") from None


# ---------------------------------------------------------------- the arrays file

def arrays_npz(weights: list[np.ndarray], test_probs: np.ndarray | None, extras: dict | None = None) -> bytes:
    """Weights (arr_0, arr_1, ... in Keras order), test predictions and extras (x_<name>) as one npz."""
    out = io.BytesIO()
    named = {} if test_probs is None else {"test_probs": np.asarray(test_probs, np.float32)}
    named.update({f"x_{k}": np.asarray(v) for k, v in (extras or {}).items()})
    np.savez(out, *[np.asarray(w, np.float32) for w in weights], **named)
    return out.getvalue()


def read_arrays(path: Path, architecture: str, data: bytes | None = None) -> dict:
    """{"weights": [...], "test_probs": array or None, "extras": {...}} from arrays_npz's file (or its bytes, data,
    named by path); ModelFileError if damaged."""
    try:
        with np.load(path if data is None else io.BytesIO(data), allow_pickle=False) as npz:
            count = sum(1 for k in npz.files if k.startswith("arr_"))
            weights = [npz[f"arr_{i}"] for i in range(count)]
            test_probs = npz["test_probs"] if "test_probs" in npz.files else None
            extras = {k[2:]: npz[k] for k in npz.files if k.startswith("x_")}
    except Exception as exc:  # Any failure to parse is the file's fault.
        raise ModelFileError(f"{path.name}: unreadable weights ({exc.__class__.__name__}: {exc})") from None
    check_weights(architecture, weights, path.name)
    return {"weights": weights, "test_probs": test_probs, "extras": extras}


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to path so that a crash leaves either the old file or the new one, never half; with the mode an
    ordinary new file gets (mkstemp's own is 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- a folder of run files (legacy runs/, exports)

def write_run_files(run: Run, folder: str | os.PathLike) -> Path:
    """Write <id>.keras, <id>.npz (arrays) and, last, <id>.json; each write is atomic."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if run.keras_bytes:
        atomic_write(folder / f"{run.run_id}.keras", run.keras_bytes)
    atomic_write(folder / f"{run.run_id}.npz", arrays_npz(run.weights, run.test_probs, run.extras))
    atomic_write(folder / f"{run.run_id}.json", json.dumps(run.meta(), indent=1).encode())
    return folder / f"{run.run_id}.json"


def load_run(run_id: str, folder: str | os.PathLike) -> Run:
    """Load a run written by write_run_files (metadata and arrays; no TensorFlow needed)."""
    folder = Path(folder)
    if not RUN_ID.match(run_id):
        raise ModelFileError(f"{run_id!r} is not a run name")
    meta_path = folder / f"{run_id}.json"
    try:
        meta = json.loads(meta_path.read_text())
    except Exception as exc:  # Any failure to parse is the file's fault.
        raise ModelFileError(f"{meta_path.name}: damaged run file ({exc.__class__.__name__}: {exc})") from None
    try:
        run = Run.from_meta({**meta, "run_id": run_id})
    except ModelFileError as exc:
        raise ModelFileError(f"{meta_path.name}: damaged run file ({exc})") from None
    arrays = read_arrays(folder / f"{run_id}.npz", run.architecture)
    keras_path = folder / f"{run_id}.keras"
    arrays["keras_bytes"] = keras_path.read_bytes() if keras_path.is_file() else b""
    run._arrays = arrays
    return run


def list_runs(folder: str | os.PathLike) -> tuple[list[Run], list[str]]:
    """Every run in folder that loads, newest first, and a message for each damaged one."""
    folder = Path(folder)
    runs, problems = [], []
    for meta in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            runs.append(load_run(meta.stem, folder))
        except ModelFileError as exc:
            problems.append(str(exc))
    return runs, problems


def load_keras_model(path: str | os.PathLike):
    """Load a .keras model in Keras's safe mode; anything corrupt, foreign or unsafe is a ModelFileError."""
    from .network import keras  # without the extras it would load
    path = Path(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for bad files.
        raise ModelFileError(f"{path.name}: cannot load as a Keras model ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0][:300] if str(exc) else ''})") from None
    shape = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    out = tuple(model.output_shape[1:]) if hasattr(model, "output_shape") else None
    if shape not in ((784,), (28, 28, 1), (28, 28)) or out != (10,):
        raise ModelFileError(f"{path.name}: takes {shape} and gives {out}; expected MNIST images in, 10 classes out")
    return model
