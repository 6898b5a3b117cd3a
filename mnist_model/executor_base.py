"""What every executor shares: one FIFO queue of jobs served by a thread per slot, and the relay of a worker's
messages (started / batch / epoch / result / failed) to the job's on_* hooks.

An executor is a QueueExecutor over its own kind of slot; a slot runs one job at a time to its end.
"""
from __future__ import annotations

import os
import threading
from collections import deque

from .jobs import TrainingJob
from .runs import Run

SLOTS_ENV = "MNIST_LIVE_TRAINING_SLOTS"


def slots_from_env(default: int = 1) -> int:
    """How many trainings run at once: $MNIST_LIVE_TRAINING_SLOTS, else default (at least 1)."""
    try:
        return max(1, int(os.environ.get(SLOTS_ENV, default)))
    except ValueError:
        return default


class QueueExecutor:
    """Runs jobs in the order submitted on its slots; the rest wait in one queue.

    A slot has index, job, run(job) (to the job's end, reporting through relay()), signal_stop(job), warm()
    and kill().
    """

    def __init__(self, slots: list):
        self._queue: deque[TrainingJob] = deque()
        self._cond = threading.Condition()
        self._slots = slots
        self._closed = False
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
        """A waiting job is cancelled at once; a running one is told to stop and keeps what it learned."""
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
                cancelled = True
            else:
                cancelled = False
                for slot in self._slots:
                    if slot.job is job:
                        slot.signal_stop(job)
        if cancelled:
            job.on_cancelled()

    def queue_position(self, job: TrainingJob) -> int | None:
        """1 for the next job to run; None when the job is not waiting."""
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else None

    def busy(self) -> int:
        """How many slots are training now."""
        return sum(slot.job is not None for slot in self._slots)

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def adopt(self, job: TrainingJob, where: str) -> bool:
        """Follow a job that a server that died started at where (its job.on_placed); False when it is not
        there (a worker process dies with its server: only a cluster's trainings outlive it)."""
        return False

    def warm(self) -> None:
        """Get every slot ready in the background, so the first job starts at once."""
        for slot in self._slots:
            threading.Thread(target=_quietly, args=(slot.warm,), daemon=True).start()

    def close(self) -> None:
        """Cancel waiting jobs and end the slots' workers (a running job fails)."""
        with self._cond:
            waiting, self._queue, self._closed = list(self._queue), deque(), True
            self._cond.notify_all()
        for job in waiting:
            job.on_cancelled()
        for slot in self._slots:
            slot.kill()

    def _next(self, slot) -> TrainingJob | None:
        """The next job for slot (None once closed); jobs whose stop came before a slot took them never run."""
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                job = self._queue.popleft()
                if not job.stop_requested:
                    slot.job = job
                    return job
            job.on_cancelled()

    def _serve(self, slot) -> None:
        while (job := self._next(slot)) is not None:
            try:
                slot.run(job)
            except Exception as exc:  # A slot thread must never die: fail the job and go on.
                job.on_failed(f"{exc.__class__.__name__}: {exc}")
            finally:
                with self._cond:
                    slot.job = None


def relay(job: TrainingJob, message: tuple) -> bool:
    """Pass one worker message to the job's hooks; True when the job is done."""
    kind = message[0]
    if kind == "started":
        job.on_started(message[1])
    elif kind == "batch":
        job.on_batch(message[1])
    elif kind == "epoch":
        job.on_epoch(message[1])
    elif kind == "snapshot":
        job.on_snapshot(message[1])
    elif kind == "result":
        job.on_result(run_from_payload(job, message[1], stopped=message[2]), stopped=message[2])
        return True
    else:  # "failed": the worker caught the error and is still fine
        job.on_failed(message[1])
        return True
    return False


def run_from_payload(job: TrainingJob, payload: dict, stopped: bool) -> Run:
    """The Run a worker's result payload describes."""
    return Run(config=job.config, epochs=list(payload["epochs"]), status="stopped" if stopped else "finished",
               dataset=payload["dataset"], weights=payload["weights"], keras_bytes=payload["keras_bytes"],
               test_probs=payload["test_probs"], duration_s=payload["duration_s"], name=job.label,
               best_epoch=payload.get("best_epoch"), stopped_early=payload.get("stopped_early", False),
               extras=payload.get("extras") or {})


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # Warming is best effort; the next job reports any real failure.
        pass
