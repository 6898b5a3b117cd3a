"""Run: a trained model with its config and metrics; atomic save/load in a runs folder."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import ModelFileError
from .predict import check_weights
from .training import EpochMetrics

RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")  # generated names only: never a user's file name


def runs_dir() -> Path:
    """The shared runs folder: $MNIST_LIVE_RUNS or runs/ in the working directory."""
    return Path(os.environ.get("MNIST_LIVE_RUNS", "runs"))


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass
class Run:
    """A trained (or stopped) model: config, per-epoch metrics, weights and the .keras file."""

    config: TrainConfig
    epochs: list[EpochMetrics]
    status: str  # "finished" or "stopped"
    dataset: str  # human title of the data it was trained on, e.g. "MNIST (full)"
    weights: list[np.ndarray]  # Keras order: kernel, bias per layer
    keras_bytes: bytes = b""  # the model as a .keras file, for download
    test_probs: np.ndarray | None = None  # (n_test, 10) float32: the model's test-set predictions
    duration_s: float = 0.0
    created_at: float = field(default_factory=time.time)
    run_id: str = field(default_factory=new_run_id)
    name: str = ""  # e.g. "Run 3"; set by whoever keeps a list of runs

    @property
    def final(self) -> EpochMetrics | None:
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
    def label(self) -> str:
        """'Run 3 · 97.8% test · 5 epochs, batch 128, ...'"""
        acc = f"{self.test_accuracy:.1%} test" if self.final else "no epoch"
        return f"{self.name or self.run_id} · {acc} · {self.config.describe()}"

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
        """One row of a runs table."""
        c = self.config
        return {"run": self.name or self.run_id, "status": self.status, "dataset": self.dataset,
                "model": c.architecture, "epochs": len(self.epochs), "batch": c.batch_size,
                "examples": c.train_size or "all", "optimizer": c.optimizer, "lr": c.learning_rate,
                "train acc": round(self.train_accuracy, 4), "test acc": round(self.test_accuracy, 4),
                "seconds": round(self.duration_s, 1)}


# ---------------------------------------------------------------- saving

def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _weights_npz(weights: list[np.ndarray]) -> bytes:
    out = io.BytesIO()
    np.savez(out, *[np.asarray(w, np.float32) for w in weights])
    return out.getvalue()


def save_run(run: Run, folder: str | os.PathLike | None = None) -> Path:
    """Write <id>.keras, <id>.npz (weights) and, last, <id>.json; each write is atomic."""
    folder = Path(folder) if folder else runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if run.keras_bytes:
        _atomic_write(folder / f"{run.run_id}.keras", run.keras_bytes)
    _atomic_write(folder / f"{run.run_id}.npz", _weights_npz(run.weights))
    meta = {"format": "mnist-live-run/1", "run_id": run.run_id, "name": run.name, "status": run.status,
            "dataset": run.dataset, "config": run.config.to_dict(), "created_at": run.created_at,
            "duration_s": run.duration_s, "epochs": [asdict(m) for m in run.epochs]}
    _atomic_write(folder / f"{run.run_id}.json", json.dumps(meta, indent=1).encode())
    return folder / f"{run.run_id}.json"


# ---------------------------------------------------------------- loading

def _read_weights(path: Path) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return [npz[f"arr_{i}"] for i in range(len(npz.files))]
    except Exception as exc:  # Any failure to parse is the file's fault.
        raise ModelFileError(f"{path.name}: unreadable weights ({exc.__class__.__name__}: {exc})") from None


def load_run(run_id: str, folder: str | os.PathLike | None = None) -> Run:
    """Load a saved run (metadata and weights; no TensorFlow needed)."""
    folder = Path(folder) if folder else runs_dir()
    if not RUN_ID.match(run_id):
        raise ModelFileError(f"{run_id!r} is not a run name")
    meta_path = folder / f"{run_id}.json"
    try:
        meta = json.loads(meta_path.read_text())
        config = TrainConfig.from_dict(meta["config"])
        epochs = [EpochMetrics(**m) for m in meta["epochs"]]
        status, dataset = str(meta["status"]), str(meta["dataset"])
    except Exception as exc:  # Any failure to parse is the file's fault.
        raise ModelFileError(f"{meta_path.name}: damaged run file ({exc.__class__.__name__}: {exc})") from None
    weights = _read_weights(folder / f"{run_id}.npz")
    check_weights(config.architecture, weights, f"{run_id}.npz")
    keras_path = folder / f"{run_id}.keras"
    return Run(config=config, epochs=epochs, status=status, dataset=dataset, weights=weights,
               keras_bytes=keras_path.read_bytes() if keras_path.is_file() else b"",
               duration_s=float(meta.get("duration_s", 0)), created_at=float(meta.get("created_at", 0)),
               run_id=run_id, name=str(meta.get("name", "")))


def list_runs(folder: str | os.PathLike | None = None) -> tuple[list[Run], list[str]]:
    """Every saved run that loads, newest first, and a message for each damaged one."""
    folder = Path(folder) if folder else runs_dir()
    runs, problems = [], []
    for meta in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            runs.append(load_run(meta.stem, folder))
        except ModelFileError as exc:
            problems.append(str(exc))
    return runs, problems


def load_keras_model(path: str | os.PathLike):
    """Load a .keras model in Keras's safe mode; anything corrupt, foreign or unsafe is a ModelFileError."""
    import keras
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
