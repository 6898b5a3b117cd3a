"""RayExecutor: the same FIFO queue and slots as LocalProcessExecutor, each slot a long-lived Ray actor.

Each actor imports TensorFlow once, loads its datasets itself (by name and path, cached per actor) and runs
worker.run_task, the one training code path. The server drains the actor's progress messages about ten
times a second, stops a training through a second actor thread, and gets the result (weights, the .keras
file, test predictions) through Ray's object store. Every blocking call has a timeout: a lost actor or node
fails its job with a readable message, and the slot gets a fresh actor.

On a cluster of its own (an address: several app servers share it) each actor is detached and named, so that a
training outlives the server that started it: another server adopts it by name (adopt()) and keeps its run. An
actor that nobody calls for ORPHAN_S while it is not training (its server died and nobody adopted it) exits.
"""
from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from pathlib import Path

import ray

from .executor_base import QueueExecutor, relay
from .i18n import N_
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
NAMESPACE = "mnist_live"  # where the servers of one deployment find each other's actors by name
ORPHAN_S_ENV = "MNIST_LIVE_RAY_ORPHAN_S"  # a detached actor's silence before it exits (120 s by default)
KEEPALIVE_S = 10  # how often a server tells its idle detached actors it is still there


def cpus_per_slot() -> float:
    """$MNIST_LIVE_CPUS_PER_SLOT (default 1): the CPUs each training actor reserves."""
    try:
        return max(0.1, float(os.environ.get(CPUS_ENV, 1)))
    except ValueError:
        return 1.0


@ray.remote(max_concurrency=ACTOR_CONCURRENCY)
class TrainingActor:
    """One training slot on the cluster: TensorFlow imported once, tasks run one at a time."""

    def __init__(self, env: dict, orphan_s: float | None = None):
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
        self._running: str | None = None  # the job training now
        self._history: list = []  # its epochs and latest snapshot so far, for a server that adopts it
        self._finals: dict[str, tuple] = {}  # job id -> its last message, until a server has it
        self._called = time.monotonic()
        if orphan_s:
            threading.Thread(target=self._exit_when_orphaned, args=(orphan_s,), daemon=True).start()

    def _exit_when_orphaned(self, orphan_s: float) -> None:
        while True:
            time.sleep(min(5.0, orphan_s / 4))
            if self._running is None and time.monotonic() - self._called > orphan_s:
                os._exit(0)  # nobody will fetch a result or send a training: free the cluster's CPUs

    def where(self) -> str:
        """The id of the node this actor runs on."""
        self._called = time.monotonic()
        return ray.get_runtime_context().get_node_id()

    def run(self, job_id: str, task) -> tuple:
        """Train; progress goes to drain(), the last message (result or failure) is returned (and kept for
        outcome() until forget())."""
        from .worker import run_task
        final = []

        def send(message):
            if message[0] in ("result", "failed"):
                final.append(message)
            else:
                with self._lock:
                    self._messages.append(message)
                    if message[0] == "epoch":
                        self._history.append(message)
                    elif message[0] == "snapshot":
                        self._history = [m for m in self._history if m[0] != "snapshot"] + [message]
        self._called = time.monotonic()
        with self._lock:
            self._running, self._history = job_id, []
        try:
            run_task(task, send, lambda: self._stop_for == job_id)
        finally:
            with self._lock:
                self._finals[job_id] = final[-1] if final else ("failed", "the training ended without a result")
                self._running = None
                self._called = time.monotonic()
        return self._finals[job_id]

    def drain(self) -> list:
        self._called = time.monotonic()
        with self._lock:
            out = list(self._messages)
            self._messages.clear()
        return out

    def history(self, job_id: str) -> list | None:
        """The running job's epochs and latest snapshot so far (drain() goes on from there); None when job_id is
        not training here."""
        self._called = time.monotonic()
        with self._lock:
            if self._running != job_id:
                return None
            self._messages.clear()
            return list(self._history)

    def outcome(self, job_id: str) -> tuple | None:
        """("running",) while job_id trains here, its last message once it has ended (handed over once), else
        None."""
        self._called = time.monotonic()
        with self._lock:
            if self._running == job_id:
                return ("running",)
            return self._finals.pop(job_id, None)

    def forget(self, job_id: str) -> None:
        """Its server has the job's last message: drop the copy."""
        with self._lock:
            self._finals.pop(job_id, None)

    def stop(self, job_id: str) -> None:
        self._called = time.monotonic()
        self._stop_for = job_id

    def ping(self) -> None:
        self._called = time.monotonic()


class _RaySlot:
    """A slot backed by one TrainingActor, replaced when it dies."""

    def __init__(self, index: int, executor: "RayExecutor"):
        self.index, self.executor = index, executor
        self.job: TrainingJob | None = None
        self._actor = None
        self._lock = threading.Lock()
        self.node: str | None = None
        self.name: str | None = None  # a detached actor's name on the cluster

    def warm(self) -> None:
        self._ready_actor()

    def _ready_actor(self):
        """This slot's actor, started (and waited for) if there is none."""
        with self._lock:
            if self._actor is None:
                self.executor.connect()
                env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
                options = dict(num_cpus=self.executor.cpus_per_slot, scheduling_strategy="SPREAD")
                name = None
                if self.executor.detached:
                    name = f"mnist-live-{self.executor.id}-{self.index}-{uuid.uuid4().hex[:6]}"
                    options.update(name=name, namespace=NAMESPACE, lifetime="detached")
                actor = TrainingActor.options(**options).remote(env, self.executor.orphan_s)
                try:
                    self.node = ray.get(actor.where.remote(), timeout=START_TIMEOUT_S)
                except Exception:
                    ray.kill(actor)
                    raise
                self._actor, self.name = actor, name
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
        job.on_started(N_("starting on the cluster"))
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
        if self.name:
            job.on_placed(self.name)
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
                    actor.forget.remote(job.id)
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
        self.detached = self.address is not None  # a cluster of its own: trainings outlive this server
        self.id = uuid.uuid4().hex[:8]  # in its actors' names
        self.orphan_s = float(os.environ.get(ORPHAN_S_ENV, 120)) if self.detached else None
        self._adopted: dict[str, object] = {}  # job id -> the actor of a training taken over from another server
        super().__init__([_RaySlot(i, self) for i in range(slots)])
        if self.detached:
            threading.Thread(target=self._keep_actors, daemon=True, name="ray-keepalive").start()

    def _keep_actors(self) -> None:
        """Tell idle detached actors that their server is alive (else they exit after ORPHAN_S)."""
        while not self._closed:
            time.sleep(min(KEEPALIVE_S, self.orphan_s / 3))
            for slot in self._slots:
                actor = slot._actor
                if actor is not None:
                    try:
                        actor.ping.remote()
                    except Exception:  # noqa: BLE001  (a lost actor is replaced at its next job)
                        pass

    def adopt(self, job: TrainingJob, where: str) -> bool:
        """Follow job, started by a server that has died, on the actor named where: its progress and end reach
        job's hooks; False when that actor no longer runs it (or this executor has no cluster of its own)."""
        if not self.detached:
            return False
        try:
            self.connect()
            actor = ray.get_actor(where, namespace=NAMESPACE)
            history = ray.get(actor.history.remote(job.id), timeout=CALL_TIMEOUT_S)
            ended = None if history is not None else ray.get(actor.outcome.remote(job.id), timeout=CALL_TIMEOUT_S)
            if history is None and ended in (None, ("running",)):
                return False
        except Exception:  # noqa: BLE001  (no such actor, or it died)
            return False
        self._adopted[job.id] = actor
        threading.Thread(target=self._follow, args=(job, actor, history or [], ended), daemon=True,
                         name=f"ray-adopted-{job.id}").start()
        return True

    def _follow(self, job: TrainingJob, actor, history: list, ended: tuple | None) -> None:
        """Relay an adopted training (ended: its last message, when it had ended before it was adopted)."""
        job.on_started(N_("on the cluster (taken over from a server that stopped)"))
        try:
            for message in history:
                relay(job, message)
            while True:
                final, ended = ended or ray.get(actor.outcome.remote(job.id), timeout=CALL_TIMEOUT_S), None
                for message in ray.get(actor.drain.remote(), timeout=CALL_TIMEOUT_S):
                    relay(job, message)
                if final is None:
                    job.on_failed("the training's result was lost on the cluster")
                    return
                if final != ("running",):
                    relay(job, final)
                    return
                time.sleep(POLL_S)
        except Exception as exc:  # noqa: BLE001  (the actor or its node died)
            job.on_failed(f"the training actor died ({_plain(exc)})")
        finally:
            self._adopted.pop(job.id, None)
            try:
                ray.kill(actor, no_restart=True)  # its server is gone: the slot it served is no more
            except Exception:  # noqa: BLE001
                pass

    def stop(self, job: TrainingJob) -> None:
        actor = self._adopted.get(job.id)
        if actor is not None:
            actor.stop.remote(job.id)
        else:
            super().stop(job)

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
                             configure_logging=False, namespace=NAMESPACE)
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
