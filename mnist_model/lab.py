"""Lab: the server's one training service. It holds the store and the executor, runs every workspace's
trainings, and writes each result to its workspace when it ends, whether or not a browser is watching."""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import threading
from typing import Callable

from .classroom import Classroom
from .errors import WorkspaceBusy
from .i18n import N_, _, later
from .jobs import Order, TrainingJob, TrainTask
from .runs import Run, runs_dir
from .store import ORPHAN_GRACE_S, Store, StoreConflict, StoreError, is_workspace_id
from .workspace import Workspace

log = logging.getLogger(__name__)
UPKEEP_EVERY_S = 3600  # how often a running server prunes unused workspaces and keeps to the disk cap
SILENT_S = float(os.environ.get("MNIST_LIVE_SERVER_SILENT_S") or 60)  # a server unheard of this long has died:
# its trainings are interrupted and its workspaces free (shared database only)
HEARTBEAT_S = SILENT_S / 6  # how often a server on a shared database says it is alive
SAVE_RETRY_S = 5  # how often runs the store could not take (a database restarting) are offered to it again
WARM_ENV = "MNIST_LIVE_WARM_WORKERS"  # "0": the workers start with the first training, not the server's first page
# view (a server that only serves drawings, or a test's server that never trains, spares their TensorFlow import)


def warms_workers() -> bool:
    """Whether a server's workers start warming at its first page view ($MNIST_LIVE_WARM_WORKERS, on by default)."""
    return os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class Lab:
    """Trainings of every workspace on one executor, with their results kept in one store."""

    def __init__(self, store: Store, executor):
        self.store, self.executor = store, executor
        self._lock = threading.Lock()
        self._jobs: dict[str, list[TrainingJob]] = {}  # workspace -> its trainings not yet ended, in order
        self._orders: dict[str, Order] = {}  # job id -> what was asked
        self._owner: dict[str, str] = {}  # job id -> workspace
        self._claim: dict[str, str] = {}  # job id -> the id its submission's store claim carries (its first job's)
        self._submitted: set[str] = set()  # job ids handed to the executor
        self._latest: dict[str, TrainingJob] = {}  # workspace -> its latest training (for the last message)
        self._unsaved: dict[str, list[Run]] = {}  # runs the store could not keep (a full disk, say)
        self._unposted: list[tuple[str, Run]] = []  # runs the board could not take yet (the database away)
        self._later: list[Callable[[], None]] = []  # store clean-ups that failed (a training's end), tried again
        self._model_wanted: set[str] = set()  # unsaved runs that become the model once kept, if still the newest
        self._saving_later = False  # a thread offers them to the store again (SAVE_RETRY_S)
        self._messages: dict[str, list[str]] = {}  # notices that could not go to the store
        self.scratch: dict[str, dict] = {}  # workspace -> things of the moment (the last drawing)
        self.classroom = Classroom(store)
        self.run_listeners: list[Callable[[str, Run], None]] = [self.classroom.post]  # (workspace, run), once kept
        self.server_id = secrets.token_hex(6)  # this process, among the servers sharing the database
        self.shared = not store.db.is_sqlite  # a server alone on its store (SQLite) knows every training's server
        if self.shared:
            store.server_seen(self.server_id)
            self.interrupted_at_start = self._take_over_dead_servers()
        else:
            self.interrupted_at_start = store.interrupt_unfinished()
        store.recover(grace_s=0 if store.lock else ORPHAN_GRACE_S)
        store.prune()
        self.import_problems = store.import_legacy_runs(runs_dir())
        self._closed = threading.Event()
        threading.Thread(target=self._upkeep, daemon=True, name="mnist-live-upkeep").start()
        if self.shared:
            threading.Thread(target=self._heartbeat, daemon=True, name="mnist-live-heartbeat").start()
        if hasattr(executor, "warm") and warms_workers():
            executor.warm()

    def _upkeep(self) -> None:
        while not self._closed.wait(UPKEEP_EVERY_S):
            try:
                self.store.recover()
                self.store.prune()
            except StoreError as exc:  # Tried again in an hour; pages keep working meanwhile.
                log.warning("store upkeep: %s", exc)

    def _heartbeat(self) -> None:
        """Say this server is alive; interrupt the trainings of servers that died (their students find them so)."""
        while not self._closed.wait(HEARTBEAT_S):
            try:
                self.store.server_seen(self.server_id)
                self._take_over_dead_servers()
            except StoreError as exc:  # the database restarting, say: the next beat tries again
                log.warning("heartbeat: %s", exc)

    def _take_over_dead_servers(self) -> int:
        """Follow the trainings of servers that died which still run on the cluster (a Ray actor of their own);
        interrupt the rest (Train again) and free their workspaces. Returns how many were interrupted."""
        dead = self.store.dead_servers(SILENT_S, alive=self.server_id)
        if not dead:
            return 0
        lost = sum(not self._adopt(job_id, workspace_id, server, where) for server in dead
                   for job_id, workspace_id, where in self.store.running_elsewhere([server]))
        count = self.store.interrupt_unfinished(dead)
        self.store.forget_servers(dead)
        return count + lost

    def _adopt(self, job_id: str, workspace_id: str, dead: str, where: str) -> bool:
        """Take over a dead server's training that still runs at where; False when it had to be interrupted
        (it was not there)."""
        if not self.store.take_over(job_id, workspace_id, dead, self.server_id):
            return True  # another server took it
        record = next((r for r in self.store.jobs(workspace_id, ("running",)) if r.job_id == job_id), None)
        claim = self.store.claim_of(workspace_id)
        token = claim[1] if claim else job_id
        if record is None:
            return True  # it ended meanwhile
        job = TrainingJob(TrainTask(record.config), label=record.label, executor=self.executor, id=job_id,
                          created_at=record.created_at)
        job.where = where  # still there if this server dies too
        with self._lock:
            self._orders[job.id] = Order(job.task, record.label, record.kind, record.base_run_id)
            self._owner[job.id], self._claim[job.id] = workspace_id, token
            self._jobs[workspace_id], self._latest[workspace_id] = [job], job
            self._submitted.add(job.id)
        job.add_callback("start", self._on_start)
        job.add_callback("end", self._on_end)
        if self.executor.adopt(job, where):
            log.info("took over training %s of workspace %s... from server %s", job_id, workspace_id[:6], dead)
            return True
        with self._lock:
            self._jobs.pop(workspace_id, None), self._latest.pop(workspace_id, None)
            for table in (self._orders, self._owner, self._claim):
                table.pop(job.id, None)
            self._submitted.discard(job.id)
        self.store.set_job_state(job_id, "interrupted", "the server it ran on stopped while it was training")
        self._release(workspace_id, token)
        return False

    def close(self) -> None:
        """Stop the upkeep thread (the executor belongs to whoever made it)."""
        self._closed.set()
        if self.shared:  # its trainings end with it: said at once, not a minute later by another server
            try:
                self.store.interrupt_unfinished([self.server_id])
                self.store.server_left(self.server_id)
            except StoreError:
                pass

    # ------------------------------------------------------------ workspaces

    def workspace(self, workspace_id: str) -> Workspace | None:
        """The workspace with this id, or None when there is none."""
        if not is_workspace_id(workspace_id) or not self.store.has_workspace(workspace_id):
            return None
        self.store.touch(workspace_id)
        return Workspace(self, workspace_id)

    def new_workspace(self) -> Workspace:
        """A fresh, empty workspace."""
        return Workspace(self, self.store.create_workspace())

    # ------------------------------------------------------------ trainings

    def submit(self, workspace_id: str, orders: list[Order]) -> list[TrainingJob]:
        """Queue the workspace's trainings, one after the other; WorkspaceBusy if it has one already (here, or
        on another server of the same database)."""
        try:
            model = self.store.model_run_id(workspace_id)
            orders = [dataclasses.replace(o, model_before=model, model_before_known=True) for o in orders]
        except StoreError:  # then its run becomes the model in use when it ends, as if nothing was picked
            pass
        with self._lock:
            if self._jobs.get(workspace_id):
                raise WorkspaceBusy(_("You already have a training running or waiting: stop it first, or wait "
                                      "for it to end."))
            jobs = [TrainingJob(order.task, label=order.label, executor=self.executor) for order in orders]
            for job, order in zip(jobs, orders):
                self._orders[job.id], self._owner[job.id], self._claim[job.id] = order, workspace_id, jobs[0].id
                job.add_callback("start", self._on_start)
                job.add_callback("placed", self._on_start)
                job.add_callback("end", self._on_end)
            self._jobs[workspace_id] = list(jobs)  # held while the store is asked (a Stop meanwhile is heard)
        recorded = [(job.id, order.label, order.kind, order.task.config, order.base_run_id)
                    for job, order in zip(jobs, orders)]
        try:
            try:
                self.store.claim(workspace_id, self.server_id, recorded)
            except StoreConflict:
                held = self.store.claim_of(workspace_id)
                if held is not None and held[0] != self.server_id:
                    raise
                if held is not None:  # this server's own, from trainings that have just ended (none is left here)
                    self._release(workspace_id, held[1])
                self.store.claim(workspace_id, self.server_id, recorded)
        except StoreConflict:
            with self._lock:
                self._jobs.pop(workspace_id, None)
                for job in jobs:
                    self._orders.pop(job.id, None), self._owner.pop(job.id, None), self._claim.pop(job.id, None)
            raise WorkspaceBusy(_("Your workspace already has a training running or waiting in another tab or "
                                  "on another device: stop it there first, or wait for it to end.")) from None
        except StoreError as exc:  # The training still runs; only a restart would not know of it.
            self._note(workspace_id, exc.args[0])  # said in the reader's language
        if all(job.ending is not None for job in jobs):  # stopped while the store was asked: nothing to keep
            self._release(workspace_id, jobs[0].id)
            for job in jobs:
                try:
                    self.store.forget_job(job.id)
                except StoreError:
                    pass
        with self._lock:
            self._latest[workspace_id] = jobs[-1]
        self._start(jobs[0])
        return jobs

    def _start(self, job: TrainingJob) -> None:
        with self._lock:
            if job.stop_requested or job.id in self._submitted:
                return
            self._submitted.add(job.id)
        job.start()

    def jobs(self, workspace_id: str) -> list[TrainingJob]:
        """The workspace's trainings that have not ended: the running one first, then those waiting."""
        with self._lock:
            return list(self._jobs.get(workspace_id, ()))

    def training_elsewhere(self, workspace_id: str):
        """The workspace's training (a JobRecord) that another server of a shared database runs, or None."""
        if not self.shared or self.jobs(workspace_id):
            return None
        server = self.store.claimed_by(workspace_id)
        if server in (None, self.server_id):
            return None
        records = self.store.jobs(workspace_id, ("running", "queued"))
        return records[0] if records else None

    def latest_job(self, workspace_id: str) -> TrainingJob | None:
        with self._lock:
            return self._latest.get(workspace_id)

    def stop(self, workspace_id: str) -> None:
        """Stop all of the workspace's trainings; a running one keeps what it has learned."""
        for job in self.jobs(workspace_id):
            with self._lock:
                job.stop_requested = True
                submitted = job.id in self._submitted
            if submitted:
                job.stop()
            else:
                job.on_cancelled()  # still waiting for its turn within the workspace: never reached the executor

    def order(self, job: TrainingJob) -> Order | None:
        with self._lock:
            return self._orders.get(job.id)

    def _on_start(self, job: TrainingJob) -> None:
        try:
            self.store.set_job_state(job.id, "running", runs_at=job.where)
        except StoreError:
            pass  # Only a restart would need it; the training goes on.

    def _on_end(self, job: TrainingJob) -> None:
        """Keep the result in its workspace, then start the workspace's next training, if any."""
        state, message, result = job.ending
        with self._lock:
            workspace_id, order, claim = self._owner.get(job.id), self._orders.get(job.id), self._claim.get(job.id)
        if result is not None:
            self._keep(workspace_id, result, job.label, order)
        try:
            self.store.forget_job(job.id)
        except StoreError:  # else other servers would go on showing it as running
            self._retry_later(lambda job_id=job.id: self.store.forget_job(job_id))
        with self._lock:
            waiting = self._jobs.get(workspace_id, [])
            if job in waiting:
                waiting.remove(job)
            following = waiting[0] if waiting and not job.stop_requested else None
            if not waiting:
                self._jobs.pop(workspace_id, None)
            self._submitted.discard(job.id)
            self._orders.pop(job.id, None)
            self._owner.pop(job.id, None)
            self._claim.pop(job.id, None)
        if not waiting:
            self._release(workspace_id, claim)
        if following is not None:
            self._start(following)

    def _release(self, workspace_id: str, claim: str | None) -> None:
        try:
            self.store.release(workspace_id, claim)
        except StoreError:  # freed when the database is back (or by another server, if this one dies)
            log.warning("could not free workspace %s...'s training claim yet", workspace_id[:6])  # ids are keys
            self._retry_later(lambda: self.store.release(workspace_id, claim))

    def _keep(self, workspace_id: str, run: Run, label: str, order: Order | None) -> None:
        run.name = label
        run.base_run_id = order.base_run_id if order else None
        becomes_model = order is None or order.kind != "sweep"  # A sweep's runs never replace the model in use.
        try:
            if becomes_model and order is not None and order.model_before_known:
                now = self.store.model_run_id(workspace_id)  # nor does it replace a model picked while it trained
                becomes_model = now is None or now == order.model_before
            self.store.add_run(workspace_id, run)
            if becomes_model:
                self.store.set_model_run_id(workspace_id, run.run_id)
        except StoreError as exc:
            with self._lock:
                self._unsaved.setdefault(workspace_id, []).append(run)
                if becomes_model:
                    self._model_wanted.add(run.run_id)
            self._note(workspace_id, later(N_("{problem} {label} is kept in the server's memory and saved as soon "
                                              "as the database takes it (download the model to be sure)."),
                                           problem=exc.args[0], label=label))
            self._save_later()
        self._tell_listeners(workspace_id, run)

    def _tell_listeners(self, workspace_id: str, run: Run) -> None:
        for listener in self.run_listeners:
            try:
                listener(workspace_id, run)
            except StoreError as exc:  # the database away: the board gets it when it is back
                log.warning("the class board will get a run later: %s", exc)
                with self._lock:
                    self._unposted.append((workspace_id, run))
                self._save_later()
            except Exception:  # A listener (the class board) must never lose the run.
                log.exception("run listener failed")

    def _retry_later(self, action: Callable[[], None]) -> None:
        with self._lock:
            self._later.append(action)
        self._save_later()

    def _save_later(self) -> None:
        with self._lock:
            if self._saving_later:
                return
            self._saving_later = True
        threading.Thread(target=self._offer_again, daemon=True, name="mnist-live-save-later").start()

    def _offer_again(self) -> None:
        """Every SAVE_RETRY_S, the runs the store or the board could not take, until all are in."""
        while not self._closed.wait(SAVE_RETRY_S):
            with self._lock:
                unsaved = [(ws, run) for ws, runs in self._unsaved.items() for run in runs]
                unposted, self._unposted = self._unposted, []
                retries, self._later = self._later, []
            for action in retries:
                try:
                    action()
                except StoreError:
                    with self._lock:
                        self._later.append(action)
            for workspace_id, run in unsaved:
                try:
                    self.store.add_run(workspace_id, run)
                    model = self.store.model_run_id(workspace_id)
                    current = self.store.run(model, workspace_id) if model else None
                    with self._lock:
                        wanted = run.run_id in self._model_wanted
                    if wanted and (current is None or current.created_at < run.created_at):
                        self.store.set_model_run_id(workspace_id, run.run_id)
                except StoreError:
                    break  # still away: the next round
                with self._lock:
                    self._unsaved[workspace_id].remove(run)
                    if not self._unsaved[workspace_id]:
                        del self._unsaved[workspace_id]
                    self._model_wanted.discard(run.run_id)
                self._note(workspace_id, later(N_("{name} is saved now."), name=run.name))
                unposted.append((workspace_id, run))
            for workspace_id, run in unposted:
                self._tell_listeners(workspace_id, run)
            with self._lock:
                if not self._unsaved and not self._unposted and not self._later:
                    self._saving_later = False
                    return

    def unsaved_runs(self, workspace_id: str) -> list[Run]:
        with self._lock:
            return list(self._unsaved.get(workspace_id, ()))

    def _note(self, workspace_id: str, text: str) -> None:
        with self._lock:
            self._messages.setdefault(workspace_id, []).append(text)

    def take_messages(self, workspace_id: str) -> list[str]:
        with self._lock:
            return self._messages.pop(workspace_id, [])
