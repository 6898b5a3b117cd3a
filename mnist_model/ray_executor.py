"""RayExecutor: the same FIFO queue and slots as LocalProcessExecutor, each slot a long-lived Ray actor.

Each actor imports TensorFlow once, loads its datasets itself (by name and path, cached per actor) and runs
worker.run_task, the one training code path. The server drains the actor's progress messages about ten
times a second, stops a training through a second actor thread, and gets the result (weights, the .keras
file, test predictions) through Ray's object store. Every blocking call has a timeout: a lost actor or node
fails its job with a readable message, and the slot gets a fresh actor.
"""
from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

import ray

from .executor_base import QueueExecutor, relay
from .jobs import TrainingJob

CPUS_ENV = "MNIST_LIVE_CPUS_PER_SLOT"
PACKAGE = str(Path(__file__).resolve().parent)  # shipped to every node through Ray's object store
FORWARDED_ENV = ("MNIST_OFFLINE", "MNIST_PATH", "FASHION_MNIST_PATH", "TF_CPP_MIN_LOG_LEVEL")  # data choices
POLL_S = 0.1  # how often a slot drains its actor's progress: up to ten updates a second
CALL_TIMEOUT_S = 20  # any single call to an actor (a drain, a stop, a ping)
START_TIMEOUT_S = 300  # a fresh actor imports TensorFlow (and Ray may have to start a worker process first)
RESULT_TIMEOUT_S = 120  # fetching the result (a few MB) once the training has ended
MISSED_DRAINS = 3  # drains in a row that time out before the actor counts as lost
ACTOR_CONCURRENCY = 4  # threads per actor: the training, a drain, a stop, a ping
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps 127.0.0.1 and forms no cluster


def cpus_per_slot() -> float:
    """$MNIST_LIVE_CPUS_PER_SLOT (default 1): the CPUs each training actor reserves."""
    try:
        return max(0.1, float(os.environ.get(CPUS_ENV, 1)))
    except ValueError:
        return 1.0


@ray.remote(max_concurrency=ACTOR_CONCURRENCY)
class TrainingActor:
    """One training slot on the cluster: TensorFlow imported once, tasks run one at a time."""

    def __init__(self, env: dict):
        os.environ.update(env)
        if hasattr(os, "nice"):
            os.nice(10)  # a node that also serves pages keeps them quick
        from . import network  # noqa: F401  (the slow import, once)
        from .worker import WARM_DATASET, _dataset
        try:
            _dataset(WARM_DATASET, None)
        except Exception:  # The first task that needs it reports the reason.
            pass
        self._lock = threading.Lock()
        self._messages: collections.deque = collections.deque()
        self._stop_for: str | None = None

    def where(self) -> str:
        """The id of the node this actor runs on."""
        return ray.get_runtime_context().get_node_id()

    def run(self, job_id: str, task) -> tuple:
        """Train; progress goes to drain(), the last message (result or failure) is returned."""
        from .worker import run_task
        final = []

        def send(message):
            if message[0] in ("result", "failed"):
                final.append(message)
            else:
                with self._lock:
                    self._messages.append(message)
        run_task(task, send, lambda: self._stop_for == job_id)
        return final[-1] if final else ("failed", "the training ended without a result")

    def drain(self) -> list:
        with self._lock:
            out = list(self._messages)
            self._messages.clear()
        return out

    def stop(self, job_id: str) -> None:
        self._stop_for = job_id


class _RaySlot:
    """A slot backed by one TrainingActor, replaced when it dies."""

    def __init__(self, index: int, executor: "RayExecutor"):
        self.index, self.executor = index, executor
        self.job: TrainingJob | None = None
        self._actor = None
        self._lock = threading.Lock()
        self.node: str | None = None

    def warm(self) -> None:
        self._ready_actor()

    def _ready_actor(self):
        """This slot's actor, started (and waited for) if there is none."""
        with self._lock:
            if self._actor is None:
                self.executor.connect()
                env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
                actor = TrainingActor.options(num_cpus=self.executor.cpus_per_slot,
                                              scheduling_strategy="SPREAD").remote(env)
                try:
                    self.node = ray.get(actor.where.remote(), timeout=START_TIMEOUT_S)
                except Exception:
                    ray.kill(actor)
                    raise
                self._actor = actor
            return self._actor

    def signal_stop(self, job: TrainingJob) -> None:
        actor = self._actor
        if actor is not None:
            actor.stop.remote(job.id)  # fire and forget: the training checks it after every compiled call

    def kill(self) -> None:
        with self._lock:
            if self._actor is not None:
                try:
                    ray.kill(self._actor, no_restart=True)
                except Exception:  # Already gone.
                    pass
            self._actor = None

    def run(self, job: TrainingJob) -> None:
        """Run one job on this slot's actor, relaying its progress as it happens."""
        job.on_started("starting on the cluster")
        for attempt in (1, 2):  # An idle actor may have died since its last job: then start a fresh one.
            try:
                actor = self._ready_actor()
                ray.get(actor.drain.remote(), timeout=CALL_TIMEOUT_S)  # alive, and nothing left over
                break
            except Exception as exc:  # noqa: BLE001  (Ray raises many kinds; all mean "no actor here")
                self.kill()
                if attempt == 2:
                    job.on_failed(f"could not start training on the cluster: {_plain(exc)}")
                    return
        result = actor.run.remote(job.id, job.task)
        if job.stop_requested:
            self.signal_stop(job)
        missed = 0
        while True:
            done, _ = ray.wait([result], timeout=POLL_S)
            try:
                for message in ray.get(actor.drain.remote(), timeout=CALL_TIMEOUT_S):
                    relay(job, message)
                missed = 0
            except ray.exceptions.GetTimeoutError:
                missed += 1
                if missed >= MISSED_DRAINS:
                    return self._lost(job, "the training machine stopped answering")
            except Exception as exc:  # noqa: BLE001  (the actor or its node died)
                return self._lost(job, f"the training actor died ({_plain(exc)})")
            if done:
                try:
                    relay(job, ray.get(result, timeout=RESULT_TIMEOUT_S))
                except Exception as exc:  # noqa: BLE001
                    self._lost(job, f"the training actor died ({_plain(exc)})")
                return

    def _lost(self, job: TrainingJob, message: str) -> None:
        self.kill()
        job.on_failed(message)


class RayExecutor(QueueExecutor):
    """Runs jobs in order on `slots` Ray actors; the rest wait in one queue across the cluster.

    address: a running cluster ("127.0.0.1:6379", "ray://..."); None means $RAY_ADDRESS if set, else a local
    Ray started on this machine, listening on loopback only.
    """

    def __init__(self, slots: int = 1, address: str | None = None, cpus_per_slot_: float | None = None):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.cpus_per_slot = cpus_per_slot_ or cpus_per_slot()
        self.runtime_env = {"py_modules": [PACKAGE]}  # this very package, on every node, whatever is installed there
        self._connected = threading.Event()
        self._connect_lock = threading.Lock()
        self._connect_error: Exception | None = None
        self._owner: threading.Thread | None = None
        super().__init__([_RaySlot(i, self) for i in range(slots)])

    def connect(self) -> None:
        """Join the cluster (or start a local one) once; later calls wait for that."""
        with self._connect_lock:
            if self._owner is None:  # once: slots warm and take jobs on threads of their own, at the same time
                # Ray ties the processes it starts to the thread that started them: use one that lives on.
                self._owner = threading.Thread(target=self._own_ray, daemon=True, name="ray-owner")
                self._owner.start()
        if not self._connected.wait(START_TIMEOUT_S):
            raise RuntimeError("the Ray cluster did not answer")
        if self._connect_error is not None:
            raise RuntimeError(f"cannot reach the Ray cluster: {_plain(self._connect_error)}")

    def _own_ray(self) -> None:
        try:
            if not ray.is_initialized():
                if self.address:
                    ray.init(address=self.address, runtime_env=self.runtime_env, log_to_driver=False,
                             configure_logging=False)
                else:
                    # Loopback only: told that this machine forms no cluster, Ray keeps 127.0.0.1 as the node's
                    # address and binds its servers there (else it swaps in the machine's network address).
                    from ray._private import ray_constants
                    before = os.environ.get(LOOPBACK_ENV)
                    os.environ[LOOPBACK_ENV] = "0"  # for the processes Ray starts now
                    ray_constants.ENABLE_RAY_CLUSTER = False  # for this one, which read it at import
                    try:
                        ray.init(_node_ip_address="127.0.0.1", runtime_env=self.runtime_env, include_dashboard=False,
                                 log_to_driver=False, configure_logging=False,
                                 num_cpus=max(os.cpu_count() or 1, int(self.slots * self.cpus_per_slot + 0.999)))
                    finally:  # later processes of this server (a `ray start` of its own, say) are not told so
                        if before is None:
                            os.environ.pop(LOOPBACK_ENV, None)
                        else:
                            os.environ[LOOPBACK_ENV] = before
        except Exception as exc:  # noqa: BLE001  (reported to whoever waits in connect())
            self._connect_error = exc
        finally:
            self._connected.set()
        threading.Event().wait()

    def nodes_used(self) -> set[str]:
        """The nodes the slots' actors run on (for tests and the README's recipe)."""
        return {slot.node for slot in self._slots if slot.node}

    def close(self) -> None:
        super().close()


def _plain(exc: BaseException) -> str:
    """An exception as one readable line (Ray's carry long tracebacks)."""
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip() and "Traceback" not in line), "")
    return f"{exc.__class__.__name__}: {first[:200]}" if first else exc.__class__.__name__
