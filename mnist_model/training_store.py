"""Trainings in the store: what each workspace asked for (to say "interrupted" after a server died), which app
server runs a workspace's trainings (one at a time across servers: a claim), and which servers are alive."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from . import schema as t
from .config import TrainConfig
from .i18n import N_


@dataclass(frozen=True)
class JobRecord:
    """A training as the store remembers it (to tell its workspace it was interrupted)."""

    job_id: str
    label: str
    kind: str  # "train", "sweep" or "fine-tune"
    config: TrainConfig
    base_run_id: str | None
    state: str  # queued, running or interrupted
    message: str
    created_at: float


class TrainingStore:
    """Store's trainings (a part of Store: it uses the store's query and transaction)."""

    def record_job(self, workspace_id: str, job_id: str, label: str, kind: str, config: TrainConfig,
                   base_run_id: str | None = None, server: str | None = None, db=None) -> None:
        """Remember a training that was asked for (queued), run by server; in db's transaction when given."""
        if db is None:
            with self.transaction(N_("remember the training")) as db:
                return self.record_job(workspace_id, job_id, label, kind, config, base_run_id, server, db)
        now = time.time()
        row = dict(job_id=job_id, workspace_id=workspace_id, label=label, kind=kind,
                   config=json.dumps(config.to_dict()), base_run_id=base_run_id, state="queued", message="",
                   created_at=now, updated_at=now, server=server)
        insert = self._insert(t.jobs).values(**row)
        db.execute(insert.on_conflict_do_update(index_elements=["job_id"],
                                                set_={k: insert.excluded[k] for k in row if k != "job_id"}))

    def claim(self, workspace_id: str, server: str, jobs: list[tuple]) -> None:
        """The workspace's trainings (record_job's arguments after workspace_id) for server, all or none;
        StoreConflict when the workspace has one running or waiting already, on any server."""
        with self.transaction(N_("start the training")) as db:
            db.execute(t.claims.insert().values(workspace_id=workspace_id, server=server, since=time.time(),
                                                job_id=jobs[0][0]))
            for job in jobs:
                self.record_job(workspace_id, *job, server=server, db=db)

    def release(self, workspace_id: str, job_id: str | None) -> None:
        """The trainings claimed with job_id (the first one's id) have all ended; a later claim stays."""
        c = t.claims.c
        with self.transaction(N_("end the training")) as db:
            db.execute(delete(t.claims).where(c.workspace_id == workspace_id, c.job_id.is_not_distinct_from(job_id)))

    def claim_of(self, workspace_id: str) -> tuple[str, str | None] | None:
        """(server, first job id) of the workspace's claim, or None when it trains nowhere."""
        rows = self.query(select(t.claims.c.server, t.claims.c.job_id).where(t.claims.c.workspace_id == workspace_id))
        return tuple(rows[0]) if rows else None

    def claimed_by(self, workspace_id: str) -> str | None:
        """The server that runs the workspace's trainings now, or None."""
        claim = self.claim_of(workspace_id)
        return claim[0] if claim else None

    def server_seen(self, server: str) -> None:
        """Note that server is alive (a server's heartbeat)."""
        now = time.time()
        with self.transaction(N_("note the server")) as db:
            insert = self._insert(t.servers).values(id=server, started_at=now, seen_at=now)
            db.execute(insert.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now}))

    def server_left(self, server: str) -> None:
        with self.transaction(N_("note the server")) as db:
            db.execute(delete(t.servers).where(t.servers.c.id == server))

    def dead_servers(self, silent_s: float, alive: str | None = None) -> list[str]:
        """Servers not seen for silent_s (never alive)."""
        s_ = t.servers
        return [r[0] for r in self.query(select(s_.c.id).where(s_.c.seen_at < time.time() - silent_s,
                                                                 s_.c.id != (alive or "")))]

    def forget_servers(self, servers: list[str]) -> None:
        with self.transaction(N_("forget a server")) as db:
            db.execute(delete(t.servers).where(t.servers.c.id.in_(servers)))

    def interrupt_dead_servers(self, silent_s: float, alive: str | None = None) -> int:
        """Trainings of servers not seen for silent_s (never alive's) become interrupted and free their
        workspaces; returns how many."""
        dead = self.dead_servers(silent_s, alive)
        if not dead:
            return 0
        count = self.interrupt_unfinished(dead)
        self.forget_servers(dead)
        return count

    def running_elsewhere(self, servers: list[str]) -> list[tuple[str, str, str]]:
        """(job id, workspace id, where) of servers' running trainings that can outlive them."""
        j = t.jobs
        return [tuple(r) for r in self.query(select(j.c.job_id, j.c.workspace_id, j.c.runs_at)
                                             .where(j.c.server.in_(servers), j.c.state == "running",
                                                    j.c.runs_at.is_not(None)))]

    def take_over(self, job_id: str, workspace_id: str, dead: str, server: str) -> bool:
        """The dead server's running training (and its workspace's claim) become server's; False when another
        server took it first."""
        j, c = t.jobs, t.claims
        with self.transaction(N_("take over the training")) as db:
            moved = db.execute(update(j).where(j.c.job_id == job_id, j.c.server == dead, j.c.state == "running")
                               .values(server=server, updated_at=time.time())).rowcount
            if moved:
                db.execute(update(c).where(c.c.workspace_id == workspace_id, c.c.server == dead).values(server=server))
            return bool(moved)

    def set_job_state(self, job_id: str, state: str, message: str = "", runs_at: str | None = None) -> None:
        """runs_at: where another server can find it running (a detached Ray actor's name), if anywhere."""
        with self.transaction(N_("update the training")) as db:
            db.execute(update(t.jobs).where(t.jobs.c.job_id == job_id)
                       .values(state=state, message=message, updated_at=time.time(), runs_at=runs_at))

    def forget_job(self, job_id: str) -> None:
        """A training that ended (its run, if any, is kept) or an interrupted one dismissed."""
        with self.transaction(N_("update the training")) as db:
            db.execute(delete(t.jobs).where(t.jobs.c.job_id == job_id))

    def interrupt_unfinished(self, servers: list[str] | None = None) -> int:
        """Trainings still queued or running that belonged to a server that died: every one (a server alone on
        its store, at start) or those of servers; their workspaces are free again."""
        j, c = t.jobs, t.claims
        server = "the server it ran on stopped" if servers else "the server restarted"
        restarted = {"running": f"{server} while it was training",
                     "queued": f"{server} while it was waiting for a training slot"}
        with self.transaction(N_("mark interrupted trainings")) as db:
            count = sum(db.execute(update(j).where(j.c.state == state, *([j.c.server.in_(servers)] if servers else []))
                                   .values(state="interrupted", message=message, updated_at=time.time())).rowcount
                        for state, message in restarted.items())
            db.execute(delete(c).where(*([c.c.server.in_(servers)] if servers else [])))
            return count

    def jobs(self, workspace_id: str, states=("interrupted",)) -> list[JobRecord]:
        j = t.jobs
        rows = self.query(select(j.c.job_id, j.c.label, j.c.kind, j.c.config, j.c.base_run_id, j.c.state,
                                 j.c.message, j.c.created_at)
                          .where(j.c.workspace_id == workspace_id, j.c.state.in_(list(states)))
                          .order_by(j.c.created_at))
        return [JobRecord(r[0], r[1], r[2], TrainConfig.from_dict(json.loads(r[3])), r[4], r[5], r[6], r[7])
                for r in rows]
