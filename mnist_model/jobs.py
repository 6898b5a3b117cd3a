"""TrainingJob: one user's training that a UI starts, polls and stops; an executor runs it."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from .config import TrainConfig
from .data import translated_title
from .i18n import N_, _
from .records import BatchProgress, EpochMetrics

BATCH_HISTORY = 400  # running-loss points kept for the within-epoch chart


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        return self in (JobState.STOPPED, JobState.FINISHED, JobState.FAILED)


@dataclass(frozen=True)
class TrainTask:
    """What an executor needs to run a job anywhere: plain, picklable data."""

    config: TrainConfig
    data_path: str | None = None
    init_weights: list | None = None  # fine-tuning: start from these weights
    extra_images: object = None  # (m, 28, 28) uint8 added to the training examples
    extra_labels: object = None  # (m,) uint8


@dataclass(frozen=True)
class Order:
    """One training a workspace asks for: the task, its run's name, and what kind it is."""

    task: TrainTask
    label: str
    kind: str = "train"  # "train", "sweep" (its runs keep the chosen model) or "fine-tune"
    base_run_id: str | None = None  # fine-tuning: the run it continues
    model_before: str | None = None  # the model in use when it was asked for: a model picked since stays in use
    model_before_known: bool = False  # False: adopted from a server that died, which did not say


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's progress for a page to draw."""

    state: JobState
    epochs: tuple[EpochMetrics, ...]
    batch: BatchProgress | None
    batch_losses: tuple[tuple[float, float], ...]  # (fractional epoch, running loss)
    queue_position: int | None  # 1 = next to run
    message: str  # what is happening now, or the error
    elapsed_s: float
    eta_s: float | None
    result: object = None  # the Run, once stopped or finished with a model
    first_layer: dict | None = None  # the latest first-layer snapshot (dense networks)
    first_layer_start: object = None  # (16, 784) float16: the same units before training

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]."""
        if self.state == JobState.FINISHED:
            return 1.0
        if not self.batch:
            return 0.0
        b = self.batch
        return min(1.0, ((b.epoch - 1) + b.batch / max(b.batches, 1)) / max(b.epochs, 1))


@dataclass
class TrainingJob:
    """A training run in the background: start(), snapshot(), stop(), wait()."""

    task: TrainTask
    label: str = ""
    executor: object = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: float = field(default_factory=time.time)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._state = JobState.QUEUED
        self._epochs: list[EpochMetrics] = []
        self._batch: BatchProgress | None = None
        self._batch_losses: list[tuple[float, float]] = []
        self._batch_reports, self._batch_stride = 0, 1  # the running-loss chart keeps every stride-th report
        self._message: str | tuple[str, dict] = N_("waiting for a training slot")  # translated in snapshot()
        self._started: float | None = None
        self._ended: float | None = None
        self._result = None
        self._snapshot: dict | None = None
        self._initial = None
        self._callbacks: dict[str, list] = defaultdict(list)
        self.ending: tuple[JobState, str, object] | None = None  # (state, message, result) during "end" callbacks
        self.stop_requested = False
        self.where: str | None = None  # where another server can find it running if its own dies (on_placed)

    @property
    def config(self) -> TrainConfig:
        return self.task.config

    @property
    def state(self) -> JobState:
        return self._state

    def add_callback(self, onevent: str, callback: Callable[["TrainingJob"], None]) -> None:
        """Call callback(job) on "start" (a slot took it) or "end" (before the job counts as done)."""
        self._callbacks[onevent].append(callback)

    def start(self) -> "TrainingJob":
        """Queue the job on its executor (whoever starts a job chooses it)."""
        if self.executor is None:
            raise ValueError("a TrainingJob needs an executor to start")
        self.executor.submit(self)
        return self

    def stop(self) -> None:
        """Ask the job to stop; a running job keeps the weights it has so far."""
        self.stop_requested = True
        if self.executor is not None and not self._state.done:
            self.executor.stop(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done; True if it is."""
        return self._done.wait(timeout)

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            now = self._ended or time.time()
            elapsed = now - self._started if self._started else 0.0
            position = None
            if self._state == JobState.QUEUED and self.executor is not None:
                position = self.executor.queue_position(self)
            return JobSnapshot(self._state, tuple(self._epochs), self._batch, tuple(self._batch_losses),
                               position, _said(self._message), elapsed, self._eta(elapsed), self._result,
                               self._snapshot, self._initial)

    def _eta(self, elapsed: float) -> float | None:
        b = self._batch
        if self._state != JobState.RUNNING or b is None or b.elapsed_s <= 0:
            return None
        done = (b.epoch - 1) + b.batch / max(b.batches, 1)
        return max(0.0, b.elapsed_s / max(done, 1e-9) * (b.epochs - done))

    # ------------------------------------------------------------ executor hooks
    def on_started(self, message: str | tuple[str, dict] = N_("loading data and building the network")) -> None:
        with self._lock:
            first = self._state == JobState.QUEUED
            self._state, self._message = JobState.RUNNING, message
            self._started = self._started or time.time()
        if first:
            self._trigger("start")

    def on_placed(self, where: str) -> None:
        """It runs where it outlives its server (a detached Ray actor's name): other servers can take it over."""
        self.where = where
        self._trigger("placed")

    def on_batch(self, progress: BatchProgress) -> None:
        with self._lock:
            self._batch = progress
            self._message = (N_("epoch {epoch}/{epochs}, batch {batch}/{batches}"), dict(
                epoch=progress.epoch, epochs=progress.epochs, batch=progress.batch, batches=progress.batches))
            self._batch_reports += 1
            if self._batch_reports % self._batch_stride == 0:  # evenly spaced over the whole run, never cut
                self._batch_losses.append((progress.epoch - 1 + progress.batch / max(progress.batches, 1),
                                           progress.loss))
                if len(self._batch_losses) > BATCH_HISTORY:
                    self._batch_losses[:] = self._batch_losses[1::2]
                    self._batch_stride *= 2

    def on_epoch(self, metrics: EpochMetrics) -> None:
        with self._lock:
            self._epochs.append(metrics)

    def on_snapshot(self, snapshot: dict) -> None:
        """The first layer after an epoch: {"epoch", "units", "weights" (16, 784) float16[, "initial"]}."""
        with self._lock:
            self._snapshot = snapshot
            if "initial" in snapshot:
                self._initial = snapshot["initial"]

    def on_result(self, result, stopped: bool) -> None:
        self._finish(JobState.STOPPED if stopped else JobState.FINISHED,
                     "stopped: the model keeps what it learned" if stopped else "finished", result)

    def on_failed(self, message: str) -> None:
        self._finish(JobState.FAILED, message)

    def on_cancelled(self) -> None:
        self._finish(JobState.STOPPED, "stopped before it started")

    def _finish(self, state: JobState, message: str, result=None) -> None:
        with self._lock:
            if self.ending is not None:  # Ended already (a stop racing the result, say).
                return
            self.ending = (state, message, result)
        self._trigger("end")
        with self._lock:
            self._state, self._message, self._result = state, message, result
            self._ended = time.time()
        self._done.set()

    def _trigger(self, onevent: str) -> None:
        for callback in self._callbacks.get(onevent, []):
            try:
                callback(self)
            except Exception:  # A listener's failure must never break the executor's slot.
                logging.getLogger(__name__).exception("job %s: %s callback failed", self.id, onevent)


def _said(message) -> str:
    """A job's message in the language of the page that asks (it was set in another thread): a catalog text, a
    (template, values) pair, or the words of an error as they came."""
    if isinstance(message, tuple):
        template, values = message
        return _(template).format(**{k: translated_title(v) if isinstance(v, str) else v for k, v in values.items()})
    return _(message)
