"""Executors run TrainingJobs: here, a server-wide pool of warm worker processes with N training slots.

An executor needs three methods, submit(job), stop(job) and queue_position(job), and reports to the
job through its on_* hooks; a cluster executor could replace LocalProcessExecutor without touching the pages.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque

from .jobs import TrainingJob
from .runs import Run

SLOTS_ENV = "MNIST_LIVE_TRAINING_SLOTS"
WORKER_START_TIMEOUT_S = 180  # importing TensorFlow in a fresh process takes ~6 s, more on a busy machine
POLL_S = 0.1  # how often a slot checks its worker while waiting for messages


def slots_from_env(default: int = 1) -> int:
    """How many trainings run at once: $MNIST_LIVE_TRAINING_SLOTS, else default (at least 1)."""
    try:
        return max(1, int(os.environ.get(SLOTS_ENV, default)))
    except ValueError:
        return default


class _Slot:
    """One training slot: a warm worker process and the job it is running."""

    def __init__(self, index: int, ctx):
        self.index, self.ctx = index, ctx
        self.job: TrainingJob | None = None
        self.stop_event = ctx.Event()
        self._lock = threading.Lock()
        self._process = self._conn = None

    def ensure_worker(self):
        """Start the worker process if it is not running; wait until it has imported TensorFlow."""
        from .worker import worker_main
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return self._conn
            parent, child = self.ctx.Pipe()
            process = self.ctx.Process(target=worker_main, args=(child, self.stop_event), daemon=True,
                                       name=f"mnist-live-worker-{self.index}")
            process.start()
            child.close()
            if not parent.poll(WORKER_START_TIMEOUT_S) or parent.recv() != ("ready",):
                process.kill()
                raise RuntimeError("the training process did not start")
            self._process, self._conn = process, parent
            return parent

    def kill(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.kill()
                self._process.join(5)
            self._process = self._conn = None

    def run(self, job: TrainingJob) -> None:
        """Run one job to its end on this slot's worker, relaying its messages."""
        job.on_started("starting the training process")
        try:
            conn = self.ensure_worker()
            conn.send(job.task)
        except (RuntimeError, OSError) as exc:
            self.kill()
            job.on_failed(f"could not start training: {exc}")
            return
        while True:
            if conn.poll(POLL_S):
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    message = ("failed", "the training process ended unexpectedly")
                if self._relay(job, message):
                    return
            elif not self._process.is_alive():
                self._relay(job, ("failed", "the training process died (out of memory?)"))
                return

    def _relay(self, job: TrainingJob, message: tuple) -> bool:
        """Pass one worker message to the job; True when the job is done."""
        kind = message[0]
        if kind == "started":
            job.on_started(message[1])
        elif kind == "batch":
            job.on_batch(message[1])
        elif kind == "epoch":
            job.on_epoch(message[1])
        elif kind == "result":
            job.on_result(_run_from_payload(job, message[1], stopped=message[2]), stopped=message[2])
            return True
        else:
            if self._process is not None and not self._process.is_alive():
                self.kill()
            job.on_failed(message[1])
            return True
        return False


def _run_from_payload(job: TrainingJob, payload: dict, stopped: bool) -> Run:
    return Run(config=job.config, epochs=list(payload["epochs"]), status="stopped" if stopped else "finished",
               dataset=payload["dataset"], weights=payload["weights"], keras_bytes=payload["keras_bytes"],
               test_probs=payload["test_probs"], duration_s=payload["duration_s"], name=job.label)


class LocalProcessExecutor:
    """Runs jobs in order on `slots` warm worker processes; the rest wait in a queue."""

    def __init__(self, slots: int = 1):
        self._ctx = multiprocessing.get_context("spawn")
        self._queue: deque[TrainingJob] = deque()
        self._cond = threading.Condition()
        self._slots = [_Slot(i, self._ctx) for i in range(slots)]
        for slot in self._slots:
            threading.Thread(target=self._serve, args=(slot,), daemon=True,
                             name=f"mnist-live-slot-{slot.index}").start()

    @property
    def slots(self) -> int:
        return len(self._slots)

    def submit(self, job: TrainingJob) -> None:
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()

    def stop(self, job: TrainingJob) -> None:
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
                job.on_cancelled()
                return
            for slot in self._slots:
                if slot.job is job:
                    slot.stop_event.set()

    def queue_position(self, job: TrainingJob) -> int | None:
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else None

    def busy(self) -> int:
        """How many slots are training now."""
        return sum(slot.job is not None for slot in self._slots)

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def warm(self) -> None:
        """Start the worker processes in the background so the first Train click starts at once."""
        for slot in self._slots:
            threading.Thread(target=_quietly, args=(slot.ensure_worker,), daemon=True).start()

    def _serve(self, slot: _Slot) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                job = self._queue.popleft()
                slot.stop_event.clear()
                slot.job = job
            try:
                slot.run(job)
            except Exception as exc:  # A slot thread must never die: fail the job and go on.
                job.on_failed(f"{exc.__class__.__name__}: {exc}")
            finally:
                with self._cond:
                    slot.job = None


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # Warming is best effort; the next job reports any real failure.
        pass


_DEFAULT: LocalProcessExecutor | None = None
_DEFAULT_LOCK = threading.Lock()


def default_executor() -> LocalProcessExecutor:
    """The server-wide executor, created on first use with $MNIST_LIVE_TRAINING_SLOTS slots."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = LocalProcessExecutor(slots_from_env())
        return _DEFAULT
