"""The worker process: keeps TensorFlow warm and runs one TrainTask at a time, reporting over a pipe."""
from __future__ import annotations

import functools
import os
import tempfile

import numpy as np

from .data import Dataset, load_dataset
from .jobs import TrainTask
from .training import train


@functools.lru_cache(maxsize=4)
def _dataset(name: str, path: str | None) -> Dataset:
    return load_dataset(name, path)


def worker_main(conn, stop_event) -> None:
    """Process entry: import Keras once, then serve tasks until told to quit (None) or the pipe closes."""
    from . import network  # noqa: F401  (the slow import, done before the first task)
    conn.send(("ready",))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        run_task(task, conn.send, stop_event.is_set)


def run_task(task: TrainTask, send, should_stop) -> None:
    """Train as task says; send ('started'|'batch'|'epoch'|'result'|'failed', ...) messages."""
    try:
        dataset = _dataset(task.config.dataset, task.data_path)
        send(("started", f"training on {dataset.title}"))
        result = train(task.config, dataset, on_batch=lambda b: send(("batch", b)),
                       on_epoch=lambda m: send(("epoch", m)), should_stop=should_stop,
                       model=_initial_model(task), extra=_extra(task))
        send(("result", _payload(result, dataset), result.stopped))
    except Exception as exc:  # Any failure becomes a readable failed state, never a dead worker.
        send(("failed", f"{exc.__class__.__name__}: {exc}"))


def _initial_model(task: TrainTask):
    if task.init_weights is None:
        return None
    from .network import build_model
    model = build_model(task.config, jit_compile=True)
    model.set_weights([np.asarray(w, np.float32) for w in task.init_weights])
    return model


def _extra(task: TrainTask):
    if task.extra_images is None or len(task.extra_images) == 0:
        return None
    return np.asarray(task.extra_images, np.uint8), np.asarray(task.extra_labels, np.uint8)


def _payload(result, dataset: Dataset) -> dict:
    from .network import model_inputs
    from .training import to_inputs
    model = result.model
    x_test = model_inputs(to_inputs(dataset.x_test), model.input_shape)
    probs = model.predict(x_test, batch_size=1000, verbose=0).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            keras_bytes = f.read()
    return {"weights": [np.asarray(w, np.float32) for w in model.get_weights()], "keras_bytes": keras_bytes,
            "test_probs": probs, "epochs": result.epochs, "duration_s": result.seconds, "dataset": dataset.title}
