"""Executors run TrainingJobs: here, a server-wide pool of warm worker processes with N training slots.

An executor needs three methods, submit(job), stop(job) and queue_position(job), and reports to the
job through its on_* hooks; a cluster executor could replace LocalProcessExecutor without touching the pages.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

from .jobs import TrainingJob
from .runs import Run

SLOTS_ENV = "MNIST_LIVE_TRAINING_SLOTS"
WORKER_START_TIMEOUT_S = 180  # importing TensorFlow in a fresh process takes ~6 s, more on a busy machine
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # so the worker imports this very package
POLL_S = 0.1  # how often a slot checks its worker while waiting for messages


def slots_from_env(default: int = 1) -> int:
    """How many trainings run at once: $MNIST_LIVE_TRAINING_SLOTS, else default (at least 1)."""
    try:
        return max(1, int(os.environ.get(SLOTS_ENV, default)))
    except ValueError:
        return default


class _Slot:
    """One training slot: a warm worker process and the job it is running."""

    def __init__(self, index: int):
        self.index = index
        self.job: TrainingJob | None = None
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._tasks = self._messages = self._control = None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ensure_worker(self) -> None:
        """Start the worker process if it is not running; wait until it has imported TensorFlow."""
        with self._lock:
            if self.alive():
                return
            self._close()
            # A plain subprocess, not multiprocessing: that would re-run Streamlit's page script as __main__.
            pipes = [os.pipe() for _ in range(3)]  # tasks (to), messages (from), control (to)
            child_fds = (pipes[0][0], pipes[1][1], pipes[2][0])
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get(
                "PYTHONPATH")])))
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "mnist_model.worker", *map(str, child_fds)], pass_fds=child_fds,
                    env=env, stdin=subprocess.DEVNULL, start_new_session=False)
            finally:
                for fd in child_fds:
                    os.close(fd)
            self._tasks = Connection(pipes[0][1], readable=False)
            self._messages = Connection(pipes[1][0], writable=False)
            self._control = Connection(pipes[2][1], readable=False)
            if not self._messages.poll(WORKER_START_TIMEOUT_S) or self._messages.recv() != ("ready",):
                self._close()
                raise RuntimeError("the training process did not start")

    def signal_stop(self, job: TrainingJob) -> None:
        """Tell the worker to stop job; never waits (a worker still starting up holds the lock for seconds,
        and run() passes on a stop that arrives before the task does)."""
        control = self._control
        if control is not None:
            try:
                control.send_bytes(job.id.encode())
            except (OSError, ValueError):  # the worker just died or was closed: nothing left to stop
                pass

    def kill(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)
        for conn in (self._tasks, self._messages, self._control):
            if conn is not None:
                conn.close()
        self._process = self._tasks = self._messages = self._control = None

    def run(self, job: TrainingJob) -> None:
        """Run one job to its end on this slot's worker, relaying its messages."""
        job.on_started("starting the training process")
        for attempt in (1, 2):  # An idle worker may have died since its last job: then start a fresh one.
            try:
                self.ensure_worker()
                self._tasks.send((job.id, job.task))
                break
            except (RuntimeError, OSError) as exc:
                self.kill()
                if attempt == 2:
                    job.on_failed(f"could not start training: {exc}")
                    return
        if job.stop_requested:
            self.signal_stop(job)
        conn = self._messages
        while True:
            if conn.poll(POLL_S):
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # The pipe closes a moment before the process counts as exited.
                    self._worker_lost(job, "the training process ended unexpectedly")
                    return
                if self._relay(job, message):
                    return
            elif not self.alive():
                self._worker_lost(job, "the training process died (out of memory?)")
                return

    def _worker_lost(self, job: TrainingJob, message: str) -> None:
        """The worker is gone: fail its job and clear the slot, so the next job starts a fresh one."""
        self.kill()
        job.on_failed(message)

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
        else:  # "failed": the worker caught the error and is still fine
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
        self._queue: deque[TrainingJob] = deque()
        self._cond = threading.Condition()
        self._slots = [_Slot(i) for i in range(slots)]
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
                    slot.signal_stop(job)

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
