"""A worker process (forked by the zygote, TensorFlow already imported) runs one TrainTask at a time, reporting
over a pipe."""
from __future__ import annotations

import functools
import os
import tempfile
import threading
import time

from multiprocessing.connection import Connection

import numpy as np

from .data import Dataset, load_dataset, needs_download
from .i18n import N_
from .jobs import TrainTask
from .training import KeptNetworks, train


WORKER_NICENESS = 10  # training yields the CPU to the server, so drawing and pages stay instant meanwhile
PARENT_CHECK_S = 0.1  # how often the worker checks that its server is still there
WARM_DATASET = "mnist"  # loaded while the worker warms up, so the first training starts at once


_kept = KeptNetworks()  # this worker's compiled networks: a retrain of the same shape starts at once


@functools.lru_cache(maxsize=4)
def _dataset(name: str, path: str | None) -> Dataset:
    return load_dataset(name, path)


class StopSignal:
    """should_stop() for a task: true once the parent has written to the control pipe."""

    def __init__(self, control: Connection):
        self.control, self.job_id, self.stopped = control, "", False

    def start(self, job_id: str) -> None:
        self.job_id, self.stopped = job_id, False

    def __call__(self) -> bool:
        while not self.stopped and self.control.poll():  # Stops meant for earlier jobs are dropped.
            self.stopped = self.control.recv_bytes().decode() == self.job_id
        return self.stopped


def warm_dataset() -> None:
    """Load the usual dataset now, so the first training starts at once; a download is left to that training
    (a slow one would otherwise hold up the zygote's start)."""
    if needs_download(WARM_DATASET):
        return
    try:
        _dataset(WARM_DATASET, None)
    except Exception:  # The first task that needs it reports the reason.
        pass


def forget_datasets() -> None:
    """Drop the loaded datasets (the environment that says where they are has changed)."""
    _dataset.cache_clear()


def serve(tasks: Connection, messages: Connection, control: Connection) -> None:
    """Serve tasks until told to quit (None) or the pipe closes; Keras is already imported."""
    _send(messages, ("ready",))
    stop = StopSignal(control)
    while True:
        try:
            message = tasks.recv()
        except (EOFError, OSError):
            os._exit(0)
        if message is None:
            return
        job_id, task = message
        stop.start(job_id)
        run_task(task, functools.partial(_send, messages), stop)


def _send(messages: Connection, message: tuple) -> None:
    """Send to the server; a closed pipe means it died: end at once (unwinding would print a traceback into its
    log and take seconds to unload TensorFlow)."""
    try:
        messages.send(message)
    except (BrokenPipeError, EOFError, OSError):
        os._exit(0)


def exit_with_parent(parent: int | None = None) -> None:
    """End this process within PARENT_CHECK_S of its parent's death (its server's, or its zygote's), even in the
    middle of a training; parent: the pid it had when it started."""
    parent = parent or os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)
    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def run_task(task: TrainTask, send, should_stop) -> None:
    """Train as task says; send ('started'|'batch'|'epoch'|'result'|'failed', ...) messages."""
    try:
        dataset = _dataset(task.config.dataset, task.data_path)
        send(("started", (N_("training on {data}"), {"data": dataset.title})))  # said in the page's language
        result = train(task.config, dataset, on_batch=lambda b: send(("batch", b)),
                       on_epoch=lambda m: send(("epoch", m)), should_stop=should_stop,
                       init_weights=task.init_weights, extra=_extra(task),
                       on_snapshot=lambda snap: send(("snapshot", snap)), kept=_kept)
        send(("result", _payload(result, dataset), result.stopped))
    except Exception as exc:  # Any failure becomes a readable failed state, never a dead worker.
        send(("failed", f"{exc.__class__.__name__}: {exc}"))


def _extra(task: TrainTask):
    if task.extra_images is None or len(task.extra_images) == 0:
        return None
    return np.asarray(task.extra_images, np.uint8), np.asarray(task.extra_labels, np.uint8)


def _payload(result, dataset: Dataset) -> dict:
    model = result.model
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            keras_bytes = f.read()
    return {"weights": [np.asarray(w, np.float32) for w in model.get_weights()], "keras_bytes": keras_bytes,
            "test_probs": result.test_probs, "epochs": result.epochs, "duration_s": result.seconds,
            "dataset": dataset.title, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
            "extras": result.extras}
