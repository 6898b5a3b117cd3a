"""Executors run TrainingJobs. The contract: submit(job), stop(job), queue_position(job), busy(), queued(),
slots, warm() and close(); progress and results reach the job through its on_* hooks. Jobs wait in one FIFO
queue; a job whose stop was asked before a slot took it is cancelled, never run.

LocalProcessExecutor (the default) runs jobs on warm worker processes of this machine; RayExecutor
(MNIST_LIVE_EXECUTOR=ray) on the actors of a Ray cluster. Both run worker.run_task: one training code path.
"""
from __future__ import annotations

import os
import threading
from multiprocessing.connection import Connection

from . import zygote
from .executor_base import QueueExecutor, relay, slots_from_env
from .i18n import N_
from .jobs import TrainingJob

EXECUTOR_ENV = "MNIST_LIVE_EXECUTOR"  # "local" (default) or "ray"
WORKER_START_TIMEOUT_S = 60  # a forked worker is ready in well under a second; the zygote has its own timeout
POLL_S = 0.1  # how often a slot checks its worker while waiting for messages


class _ProcessSlot:
    """One training slot: a warm worker process and the job it is running."""

    def __init__(self, index: int):
        self.index = index
        self.job: TrainingJob | None = None
        self._lock = threading.Lock()
        self._process: zygote.ForkedWorker | None = None
        self._tasks = self._messages = self._control = None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def warm(self) -> None:
        self.ensure_worker()

    def ensure_worker(self) -> None:
        """Start the worker process (forked by this server's zygote) if it is not running; wait until it is ready."""
        with self._lock:
            if self.alive():
                return
            self._close()
            pipes = [os.pipe() for _ in range(3)]  # tasks (to), messages (from), control (to)
            child_fds = (pipes[0][0], pipes[1][1], pipes[2][0])
            try:
                self._process = zygote.shared_zygote().fork_worker(child_fds)
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
        job.on_started(N_("starting the training process"))
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
                if relay(job, message):
                    return
            elif not self.alive():
                self._worker_lost(job, "the training process died (out of memory?)")
                return

    def _worker_lost(self, job: TrainingJob, message: str) -> None:
        """The worker is gone: fail its job and clear the slot, so the next job starts a fresh one."""
        self.kill()
        job.on_failed(message)


class LocalProcessExecutor(QueueExecutor):
    """Runs jobs in order on `slots` warm worker processes of this machine; the rest wait in a queue."""

    def __init__(self, slots: int = 1):
        super().__init__([_ProcessSlot(i) for i in range(slots)])


def make_executor(kind: str | None = None, slots: int | None = None):
    """The executor a server uses: $MNIST_LIVE_EXECUTOR's kind with $MNIST_LIVE_TRAINING_SLOTS slots."""
    kind = (kind or os.environ.get(EXECUTOR_ENV) or "local").strip().lower()
    slots = slots or slots_from_env()
    if kind == "ray":
        from .ray_executor import RayExecutor
        return RayExecutor(slots=slots)
    if kind != "local":
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: choose local or ray")
    return LocalProcessExecutor(slots)


def __getattr__(name: str):
    if name == "RayExecutor":  # `from mnist_model.executors import RayExecutor`; Ray loads only then.
        from .ray_executor import RayExecutor
        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
