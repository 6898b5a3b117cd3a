"""Store: workspaces, runs, drawings, jobs and notices in one database (database.py: an SQLite file by default,
PostgreSQL for several servers); each run's arrays as files beside an SQLite file, or in the database.

Why files beside SQLite (about 3.5 MB a dense run): measured here, writing one atomically took 4.4 ms against
9.7 ms as a BLOB, reading it 0.2 ms against 0.7 ms, and a deleted file frees its disk at once, while a deleted
BLOB leaves the database file as large as before until a VACUUM (`python -m mnist_model bench` repeats this).
A run's files are written before its row and removed after it, so a crash leaves at most orphan files,
which recover() deletes; never a row without its files. With PostgreSQL, servers share no folder: the arrays go
in the run's own transaction (run_blobs), so there are no orphans at all.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import and_, delete, exists, func, not_, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from . import schema as t
from .config import TrainConfig
from .database import (Database, StoreBusy, StoreConflict, StoreCorrupt, StoreError, StoreFull, StoreInUse,  # noqa
                       StoreNewer, StoreReadOnly, StoreUnreachable, database_url, readable)
from .errors import ModelFileError
from .runs import RUN_ID, Run, arrays_npz, atomic_write, list_runs, load_run, read_arrays, write_run_files

DATA_ENV = "MNIST_LIVE_DATA"
DEFAULT_FOLDER = "mnist-live-data"
DB_FILE = "mnist-live.sqlite3"
RUNS_FOLDER = "runs"  # <run_id>.npz (weights, test predictions) and <run_id>.keras
LOCK_FILE = "server.lock"  # held by the one server that uses this folder
SERVER_WORKSPACE = "server"  # owner of runs imported from the legacy runs/ folder; never pruned
WORKSPACE_ID_BYTES = 24  # 192 random bits, URL-safe base64: 32 characters
ORPHAN_GRACE_S = 600  # files without a row are only removed when this old (a run may be half written now)
EMPTY_WORKSPACE_DAYS = 1.0  # a workspace that never kept anything goes sooner than an idle one
TOUCH_EVERY_S = 3600  # last_seen is written at most this often per workspace
UNFINISHED = ("queued", "running")
EXPORT_FORMAT = "mnist-live-workspace/1"
MAX_IMPORT_BYTES = 500 * 2**20


@dataclass(frozen=True)
class StoreLimits:
    """What the store keeps; each can be set by an environment variable."""

    runs_per_workspace: int = 30  # about 3.5 MB a run; the oldest unpinned go first
    keep_days: float = 30.0  # workspaces unused this long are removed
    disk_cap_mb: float = 5000.0  # runs' files and the database together; the oldest runs go first

    @classmethod
    def from_env(cls) -> "StoreLimits":
        """$MNIST_LIVE_RUNS_PER_WORKSPACE, $MNIST_LIVE_KEEP_DAYS, $MNIST_LIVE_DISK_CAP_MB (bad values: defaults)."""
        d = cls()

        def read(name, default, kind):
            try:
                value = kind(os.environ.get(name, default))
                return value if value > 0 else default
            except ValueError:
                return default
        return cls(read("MNIST_LIVE_RUNS_PER_WORKSPACE", d.runs_per_workspace, int),
                   read("MNIST_LIVE_KEEP_DAYS", d.keep_days, float),
                   read("MNIST_LIVE_DISK_CAP_MB", d.disk_cap_mb, float))


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


def new_workspace_id() -> str:
    """An unguessable workspace id: 192 random bits from `secrets`, 32 URL-safe characters, never starting with
    "-" (the admin command line would read one as an option)."""
    while True:
        workspace_id = secrets.token_urlsafe(WORKSPACE_ID_BYTES)
        if not workspace_id.startswith("-"):
            return workspace_id


def is_workspace_id(text) -> bool:
    """True for strings shaped like new_workspace_id()'s (checked before any look-up)."""
    return (isinstance(text, str) and len(text) == 32
            and all(c.isascii() and (c.isalnum() or c in "-_") for c in text))


class Store:
    """The data folder and the database: an SQLite file in the folder, or PostgreSQL at $MNIST_LIVE_DATABASE_URL
    (then the folder only holds what is this server's own: its lock and temporary files)."""

    def __init__(self, folder: str | os.PathLike, limits: StoreLimits | None = None, temporary: bool = False,
                 url: str | None = None):
        """Open (creating or migrating) the store; StoreError subclasses say why it cannot be used. url: the
        database (default: $MNIST_LIVE_DATABASE_URL, else an SQLite file in folder; a temporary store is SQLite)."""
        self.folder = Path(folder)
        self.db_path = self.folder / DB_FILE
        self.runs_path = self.folder / RUNS_FOLDER
        self.limits = limits or StoreLimits.from_env()
        self.temporary = temporary  # a stand-in folder: nothing in it outlives the server
        self.notices: list[str] = []  # server-wide messages, shown on every page
        self.lock: ServerLock | None = None
        self._touched: dict[str, float] = {}
        try:
            self.runs_path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.folder, os.W_OK) or not os.access(self.runs_path, os.W_OK):
                raise PermissionError(13, "not writable", str(self.folder))
            probe = self.runs_path / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreReadOnly(f"The data folder {self.folder} cannot be written "
                                f"({exc.strerror or exc}).") from None
        self.db = Database(f"sqlite:///{self.db_path.resolve()}" if temporary else
                           url or database_url(self.folder, DB_FILE))
        self.arrays_in_database = not self.db.is_sqlite  # servers that share a database share no folder
        self.where = str(self.db_path) if self.db.is_sqlite else f"The database {self.db.safe_url}"
        if self.db.is_sqlite:
            self._check_sqlite_file()
        self.db.upgrade(f"The data folder {self.folder}" if self.db.is_sqlite else self.where)

    def _check_sqlite_file(self) -> None:
        """WAL mode and a quick check of an existing file (a damaged one raises StoreCorrupt)."""
        try:
            with self.db.reader.connect() as conn:
                existing = conn.exec_driver_sql("PRAGMA user_version").scalar()
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                if existing:
                    check = conn.exec_driver_sql("PRAGMA quick_check").scalar()
                    if check != "ok":
                        raise StoreCorrupt(f"The database {self.db_path} is damaged ({check}).")
        except StoreError:
            self.db.dispose()
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3 or SQLAlchemy: said in plain words
            self.db.dispose()
            error = readable(exc, "open the database")
            if isinstance(error, StoreBusy):
                raise StoreBusy(f"The database {self.db_path} is locked by another program.") from None
            if isinstance(error, (StoreReadOnly, StoreFull)):
                raise error from None
            raise StoreCorrupt(f"The database {self.db_path} is damaged ({error}).") from None

    # ------------------------------------------------------------ connections and transactions

    def transaction(self, what: str):
        """A short write transaction yielding its SQLAlchemy Connection; errors in plain words."""
        return self.db.write(what)

    def query(self, statement, args: dict | None = None, what: str = "read the database") -> list[tuple]:
        """The rows of a Core statement, or of SQL text with :named arguments."""
        if isinstance(statement, str):
            statement = text(statement).bindparams(**(args or {}))
        return [tuple(r) for r in self.db.read(statement, what)]

    def close(self) -> None:
        """Close the database's connections (the store opens new ones if used again)."""
        self.db.dispose()

    @property
    def version(self) -> str | None:
        """The schema's revision."""
        return self.db.revision()

    def bump(self, db, name: str) -> None:
        """Move counter name on, inside the write's own transaction db (every server sees it with the write)."""
        insert = self._insert(t.counters).values(name=name, value=1)
        db.execute(insert.on_conflict_do_update(index_elements=["name"], set_={"value": t.counters.c.value + 1}))

    def counters(self, *names: str) -> tuple[int, ...]:
        """The counters' values (0 for one never bumped), read in one statement: pages poll these, not tables."""
        values = dict(self.query(select(t.counters.c.name, t.counters.c.value).where(t.counters.c.name.in_(names))))
        return tuple(values.get(name, 0) for name in names)

    def ping(self) -> None:
        """StoreUnreachable (or another StoreError) when the database cannot answer now."""
        self.counters("generation")

    def _insert(self, table):
        """An INSERT that can say what to do on a clash, in this database's own words."""
        return (sqlite if self.db.is_sqlite else postgresql).insert(table)

    # ------------------------------------------------------------ workspaces

    def create_workspace(self, workspace_id: str | None = None) -> str:
        """A new, empty workspace; returns its id."""
        workspace_id = workspace_id or new_workspace_id()
        now = time.time()
        with self.transaction("create a workspace") as db:
            db.execute(self._insert(t.workspaces).values(id=workspace_id, created_at=now, last_seen=now)
                       .on_conflict_do_nothing(index_elements=["id"]))
        self._touched[workspace_id] = now
        return workspace_id

    def has_workspace(self, workspace_id: str) -> bool:
        return bool(self.query(select(1).where(t.workspaces.c.id == workspace_id)))

    def touch(self, workspace_id: str) -> None:
        """Note that the workspace is in use (written at most once an hour)."""
        now = time.time()
        if now - self._touched.get(workspace_id, 0) < TOUCH_EVERY_S:
            return
        with self.transaction("note the workspace's use") as db:
            db.execute(update(t.workspaces).where(t.workspaces.c.id == workspace_id).values(last_seen=now))
        self._touched[workspace_id] = now

    def _workspace_field(self, column, workspace_id: str):
        rows = self.query(select(column).where(t.workspaces.c.id == workspace_id))
        return rows[0][0] if rows else None

    def _set_workspace(self, what: str, workspace_id: str, **values) -> None:
        with self.transaction(what) as db:
            db.execute(update(t.workspaces).where(t.workspaces.c.id == workspace_id).values(**values))

    def settings(self, workspace_id: str) -> TrainConfig | None:
        """The workspace's last Train settings, or None."""
        saved = self._workspace_field(t.workspaces.c.settings, workspace_id)
        if not saved:
            return None
        try:
            return TrainConfig.from_dict(json.loads(saved))
        except (ValueError, TypeError, AttributeError):
            return None

    def save_settings(self, workspace_id: str, config: TrainConfig) -> None:
        self._set_workspace("save the settings", workspace_id, settings=json.dumps(config.to_dict()))

    def model_run_id(self, workspace_id: str) -> str | None:
        return self._workspace_field(t.workspaces.c.model_run_id, workspace_id)

    def set_model_run_id(self, workspace_id: str, run_id: str | None) -> None:
        self._set_workspace("remember the chosen model", workspace_id, model_run_id=run_id)

    def next_run_number(self, workspace_id: str) -> int:
        """1, 2, 3, ... per workspace (for names such as "Run 3")."""
        w = t.workspaces
        with self.transaction("number the run") as db:
            row = db.execute(update(w).where(w.c.id == workspace_id).values(run_counter=w.c.run_counter + 1)
                             .returning(w.c.run_counter)).first()
        return row[0] if row else 1

    # ------------------------------------------------------------ runs

    def _files(self, run_id: str) -> tuple[Path, Path]:
        return self.runs_path / f"{run_id}.npz", self.runs_path / f"{run_id}.keras"

    def _loader(self, run_id: str, architecture: str):
        def load() -> dict:
            npz, keras_file = self._files(run_id)
            if self.arrays_in_database:
                rows = self.query(select(t.run_blobs.c.npz, t.run_blobs.c.keras).where(t.run_blobs.c.run_id == run_id),
                                  what="read the run")
                if not rows:
                    raise ModelFileError(f"{npz.name}: the run's arrays are missing")
                arrays = read_arrays(npz, architecture, bytes(rows[0][0]))
                arrays["keras_bytes"] = bytes(rows[0][1])
                return arrays
            arrays = read_arrays(npz, architecture)
            try:
                arrays["keras_bytes"] = keras_file.read_bytes()
            except OSError:
                arrays["keras_bytes"] = b""
            return arrays
        return load

    def _run_from_row(self, row) -> Run | None:
        run_id, meta, pinned, published = row
        try:
            run = Run.from_meta(json.loads(meta), pinned=bool(pinned), published=bool(published))
        except (ModelFileError, ValueError):
            return None
        run._loader, run._arrays = self._loader(run_id, run.architecture), None
        return run

    def add_run(self, workspace_id: str, run: Run) -> list[str]:
        """Keep run in the workspace (files first, then the row); returns the names removed to make room."""
        npz, keras_file = self._files(run.run_id)
        data = arrays_npz(run.weights, run.test_probs, run.extras)
        if not self.arrays_in_database:
            try:
                atomic_write(npz, data)
                if run.keras_bytes:
                    atomic_write(keras_file, run.keras_bytes)
            except OSError as exc:
                npz.unlink(missing_ok=True)
                raise readable(exc, f"save {run.name or 'the run'}") from None
        size = len(data) + len(run.keras_bytes)
        row = dict(run_id=run.run_id, workspace_id=workspace_id, meta=json.dumps(run.meta()),
                   created_at=run.created_at, pinned=int(run.pinned), published=int(run.published), bytes=size)
        with self.transaction(f"save {run.name or 'the run'}") as db:
            insert = self._insert(t.runs).values(**row)
            db.execute(insert.on_conflict_do_update(index_elements=["run_id"],
                                                    set_={k: insert.excluded[k] for k in row if k != "run_id"}))
            if self.arrays_in_database:
                blob = self._insert(t.run_blobs).values(run_id=run.run_id, npz=data, keras=run.keras_bytes)
                db.execute(blob.on_conflict_do_update(index_elements=["run_id"],
                                                      set_={"npz": blob.excluded.npz, "keras": blob.excluded.keras}))
            removed = self._over_workspace_limit(db, workspace_id)
        self._remove_files(r for r, _ in removed)
        names = [name for _, name in removed]
        if names:
            self.add_notice(workspace_id, f"{_and(names)} {'was' if len(names) == 1 else 'were'} removed to keep "
                                          f"this workspace's latest {self.limits.runs_per_workspace} runs (pin a run "
                                          "to keep it).")
        self.enforce_disk_cap()
        return names

    def _over_workspace_limit(self, db, workspace_id: str) -> list[tuple[str, str]]:
        r = t.runs
        rows = db.execute(select(r.c.run_id, r.c.meta).where(r.c.workspace_id == workspace_id, r.c.pinned == 0)
                          .order_by(r.c.created_at)).all()
        total = db.execute(select(func.count()).select_from(r).where(r.c.workspace_id == workspace_id)).scalar()
        extra = rows[:max(0, total - self.limits.runs_per_workspace)]
        if extra:
            db.execute(delete(r).where(r.c.run_id.in_([run_id for run_id, _ in extra])))
        return [(run_id, _name(meta, run_id)) for run_id, meta in extra]

    _RUN_COLUMNS = (t.runs.c.run_id, t.runs.c.meta, t.runs.c.pinned, t.runs.c.published)

    def runs(self, workspace_id: str) -> list[Run]:
        """The workspace's runs, oldest first (their arrays are read on first use)."""
        rows = self.query(select(*self._RUN_COLUMNS).where(t.runs.c.workspace_id == workspace_id)
                          .order_by(t.runs.c.created_at))
        return [run for run in map(self._run_from_row, rows) if run is not None]

    def run(self, run_id: str, workspace_id: str | None = None) -> Run | None:
        """A run of the workspace, or one published to everyone; None otherwise."""
        rows = self.query(select(*self._RUN_COLUMNS).where(
            t.runs.c.run_id == run_id, or_(t.runs.c.workspace_id == workspace_id, t.runs.c.published == 1)))
        return self._run_from_row(rows[0]) if rows else None

    def published_runs(self) -> list[Run]:
        """Runs published to everyone on this server, newest first."""
        rows = self.query(select(*self._RUN_COLUMNS).where(t.runs.c.published == 1)
                          .order_by(t.runs.c.created_at.desc()))
        return [run for run in map(self._run_from_row, rows) if run is not None]

    def _set_run(self, what: str, workspace_id: str, run_id: str, **values) -> None:
        with self.transaction(what) as db:
            db.execute(update(t.runs).where(t.runs.c.run_id == run_id, t.runs.c.workspace_id == workspace_id)
                       .values(**values))

    def set_pinned(self, workspace_id: str, run_id: str, pinned: bool) -> None:
        self._set_run("pin the run", workspace_id, run_id, pinned=int(pinned))

    def set_published(self, workspace_id: str, run_id: str, published: bool) -> None:
        self._set_run("publish the run", workspace_id, run_id, published=int(published))

    def delete_run(self, workspace_id: str, run_id: str) -> None:
        """Remove the row, then the files (a crash between leaves orphan files, which recover() removes)."""
        with self.transaction("delete the run") as db:
            gone = db.execute(delete(t.runs).where(t.runs.c.run_id == run_id,
                                                   t.runs.c.workspace_id == workspace_id)).rowcount
        if gone:
            self._remove_files([run_id])

    def _remove_files(self, run_ids) -> None:
        for run_id in run_ids:
            for path in self._files(run_id):
                try:
                    path.unlink(missing_ok=True)
                except OSError:  # Left for recover(): a file that cannot be removed now is an orphan later.
                    pass

    # ------------------------------------------------------------ drawings

    def add_drawings(self, workspace_id: str, images: np.ndarray, labels: np.ndarray) -> None:
        """images (m, 28, 28) float32 in [0, 1] (kept as uint8), labels (m,) 0-9."""
        pixels = np.round(np.asarray(images, np.float32) * 255).clip(0, 255).astype(np.uint8)
        now = time.time()
        rows = [dict(workspace_id=workspace_id, label=int(label), pixels=p.tobytes(), created_at=now)
                for p, label in zip(pixels, labels)]
        if rows:
            with self.transaction("keep the drawings") as db:
                db.execute(t.drawings.insert(), rows)

    def drawings(self, workspace_id: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(ids, images (m, 28, 28) float32 in [0, 1], labels (m,) uint8), oldest first."""
        d = t.drawings
        rows = self.query(select(d.c.id, d.c.label, d.c.pixels).where(d.c.workspace_id == workspace_id)
                          .order_by(d.c.id))
        rows = [r for r in rows if len(r[2]) == 784]
        images = np.stack([np.frombuffer(bytes(r[2]), np.uint8).reshape(28, 28) for r in rows]).astype(np.float32) \
            / 255 if rows else np.zeros((0, 28, 28), np.float32)
        return [r[0] for r in rows], images, np.array([r[1] for r in rows], np.uint8)

    def delete_drawings(self, workspace_id: str, ids) -> None:
        with self.transaction("delete the drawings") as db:
            db.execute(delete(t.drawings).where(t.drawings.c.id.in_([int(i) for i in ids]),
                                                t.drawings.c.workspace_id == workspace_id))

    # ------------------------------------------------------------ jobs

    def record_job(self, workspace_id: str, job_id: str, label: str, kind: str, config: TrainConfig,
                   base_run_id: str | None = None, server: str | None = None, db=None) -> None:
        """Remember a training that was asked for (queued), run by server; in db's transaction when given."""
        if db is None:
            with self.transaction("remember the training") as db:
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
        with self.transaction("start the training") as db:
            db.execute(t.claims.insert().values(workspace_id=workspace_id, server=server, since=time.time()))
            for job in jobs:
                self.record_job(workspace_id, *job, server=server, db=db)

    def release(self, workspace_id: str, server: str) -> None:
        """The workspace's trainings on server have all ended."""
        with self.transaction("end the training") as db:
            db.execute(delete(t.claims).where(t.claims.c.workspace_id == workspace_id, t.claims.c.server == server))

    def claimed_by(self, workspace_id: str) -> str | None:
        """The server that runs the workspace's trainings now, or None."""
        rows = self.query(select(t.claims.c.server).where(t.claims.c.workspace_id == workspace_id))
        return rows[0][0] if rows else None

    def server_seen(self, server: str) -> None:
        """Note that server is alive (a server's heartbeat)."""
        now = time.time()
        with self.transaction("note the server") as db:
            insert = self._insert(t.servers).values(id=server, started_at=now, seen_at=now)
            db.execute(insert.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now}))

    def server_left(self, server: str) -> None:
        with self.transaction("note the server") as db:
            db.execute(delete(t.servers).where(t.servers.c.id == server))

    def interrupt_dead_servers(self, silent_s: float, alive: str | None = None) -> int:
        """Trainings of servers not seen for silent_s (never alive's) become interrupted and free their
        workspaces; returns how many."""
        s_ = t.servers
        dead = [r[0] for r in self.query(select(s_.c.id).where(s_.c.seen_at < time.time() - silent_s,
                                                                s_.c.id != (alive or "")))]
        if not dead:
            return 0
        count = self.interrupt_unfinished(dead)
        with self.transaction("forget a server") as db:
            db.execute(delete(s_).where(s_.c.id.in_(dead)))
        return count

    def set_job_state(self, job_id: str, state: str, message: str = "") -> None:
        with self.transaction("update the training") as db:
            db.execute(update(t.jobs).where(t.jobs.c.job_id == job_id)
                       .values(state=state, message=message, updated_at=time.time()))

    def forget_job(self, job_id: str) -> None:
        """A training that ended (its run, if any, is kept) or an interrupted one dismissed."""
        with self.transaction("update the training") as db:
            db.execute(delete(t.jobs).where(t.jobs.c.job_id == job_id))

    def interrupt_unfinished(self, servers: list[str] | None = None) -> int:
        """Trainings still queued or running that belonged to a server that died: every one (a server alone on
        its store, at start) or those of servers; their workspaces are free again."""
        j, c = t.jobs, t.claims
        restarted = {"running": "the server restarted while it was training",
                     "queued": "the server restarted while it was waiting for a training slot"}
        with self.transaction("mark interrupted trainings") as db:
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

    # ------------------------------------------------------------ notices

    def add_notice(self, workspace_id: str, text_: str) -> None:
        """A message for the workspace's next page view (shown once)."""
        with self.transaction("leave a message") as db:
            if db.execute(select(1).where(t.workspaces.c.id == workspace_id)).first():
                db.execute(t.notices.insert().values(workspace_id=workspace_id, text=text_, created_at=time.time()))

    def take_notices(self, workspace_id: str) -> list[str]:
        """The workspace's messages, oldest first; each is returned once."""
        n = t.notices
        if not self.query(select(1).where(n.c.workspace_id == workspace_id).limit(1)):
            return []
        with self.transaction("read messages") as db:
            rows = db.execute(delete(n).where(n.c.workspace_id == workspace_id).returning(n.c.id, n.c.text)).all()
        return [r[1] for r in sorted(rows)]

    # ------------------------------------------------------------ upkeep

    def recover(self, grace_s: float = ORPHAN_GRACE_S) -> dict:
        """Remove half-written and orphan files (older than grace_s) and rows whose files are gone."""
        if self.arrays_in_database:  # a run and its arrays are written in one transaction: nothing half done
            return {"orphan_files_removed": 0, "runs_without_files_removed": 0}
        known = {r[0] for r in self.query(select(t.runs.c.run_id))}
        now, removed_files = time.time(), 0
        for path in self.runs_path.iterdir():
            run_id = path.name.split(".")[0] if not path.name.startswith(".") else None
            orphan = path.name.startswith(".") and path.name.endswith(".part") or (run_id is not None and
                                                                                    run_id not in known)
            try:
                if orphan and now - path.stat().st_mtime >= grace_s:
                    path.unlink()
                    removed_files += 1
            except OSError:
                pass
        missing = [r for r in self.query(select(t.runs.c.run_id, t.runs.c.workspace_id, t.runs.c.meta))
                   if not self._files(r[0])[0].is_file()]
        if missing:
            with self.transaction("remove damaged runs") as db:
                db.execute(delete(t.runs).where(t.runs.c.run_id.in_([r[0] for r in missing])))
        for run_id, workspace_id, meta in missing:
            self.add_notice(workspace_id, f"{_name(meta, run_id)} was removed: its files were missing.")
        return {"orphan_files_removed": removed_files, "runs_without_files_removed": len(missing)}

    def disk_bytes(self) -> int:
        """The runs' arrays and the database (an SQLite file with its write-ahead log)."""
        runs = self.query(select(func.coalesce(func.sum(t.runs.c.bytes), 0)))[0][0]
        db = sum(p.stat().st_size for p in self.folder.glob(DB_FILE + "*") if p.is_file()) if self.db.is_sqlite \
            else 0
        return int(runs) + db

    def enforce_disk_cap(self) -> list[str]:
        """Remove the oldest runs (unpinned first) until the store fits its disk cap; returns their names."""
        over = self.disk_bytes() - self.limits.disk_cap_mb * 2**20
        if over <= 0:
            return []
        r = t.runs
        rows = self.query(select(r.c.run_id, r.c.workspace_id, r.c.meta, r.c.bytes).order_by(r.c.pinned,
                                                                                             r.c.created_at))
        doomed = []
        for run_id, workspace_id, meta, size in rows:
            if over <= 0:
                break
            doomed.append((run_id, workspace_id, meta))
            over -= size
        with self.transaction("make room on the disk") as db:
            db.execute(delete(r).where(r.c.run_id.in_([run_id for run_id, _, _ in doomed])))
        self._remove_files(r for r, _, _ in doomed)
        for run_id, workspace_id, meta in doomed:
            self.add_notice(workspace_id, f"{_name(meta, run_id)} was removed: the server's store reached its "
                                          f"{self.limits.disk_cap_mb:,.0f} MB limit (oldest runs go first).")
        return [_name(meta, run_id) for run_id, _, meta in doomed]

    def prune(self, now: float | None = None) -> dict:
        """Remove workspaces unused for keep_days (empty ones after a day), then keep to the disk cap."""
        now = time.time() if now is None else now
        idle = now - self.limits.keep_days * 86400
        empty = now - EMPTY_WORKSPACE_DAYS * 86400
        w = t.workspaces
        owns = [exists().where(table.c.workspace_id == w.c.id) for table in (t.runs, t.drawings, t.jobs)]
        gone = [r[0] for r in self.query(select(w.c.id).where(
            w.c.id != SERVER_WORKSPACE, or_(w.c.last_seen < idle, and_(w.c.last_seen < empty,
                                                                      *[not_(o) for o in owns]))))]
        run_ids = []
        if gone:
            with self.transaction("remove unused workspaces") as db:
                run_ids = [r[0] for r in db.execute(select(t.runs.c.run_id).where(t.runs.c.workspace_id.in_(gone)))]
                db.execute(delete(w).where(w.c.id.in_(gone)))
        self._remove_files(run_ids)
        with self.transaction("remove ended classes") as db:
            classes = db.execute(delete(t.classes).where(t.classes.c.ended_at < idle)).rowcount
            if gone or classes:
                self.bump(db, "generation")  # views keyed on what went redraw
        return {"workspaces_removed": len(gone), "their_runs_removed": len(run_ids), "ended_classes_removed": classes,
                "runs_removed_for_disk_cap": len(self.enforce_disk_cap())}

    def info(self) -> dict:
        """What the store holds, for the admin command."""
        def count(table, *where) -> int:
            return self.query(select(func.count()).select_from(table).where(*where))[0][0]
        return {"folder": str(self.folder.resolve()), "database": self.db.safe_url, "store version": self.version,
                "workspaces": count(t.workspaces, t.workspaces.c.id != SERVER_WORKSPACE), "runs": count(t.runs),
                "published runs": count(t.runs, t.runs.c.published == 1), "drawings": count(t.drawings),
                "interrupted trainings": count(t.jobs, t.jobs.c.state == "interrupted"),
                "disk MB": round(self.disk_bytes() / 2**20, 1),
                "limits": f"{self.limits.runs_per_workspace} runs per workspace, workspaces kept "
                          f"{self.limits.keep_days:g} days unused, disk cap {self.limits.disk_cap_mb:,.0f} MB"}

    # ------------------------------------------------------------ export and import

    def export_workspace(self, workspace_id: str, path: str | os.PathLike) -> dict:
        """Write the workspace (settings, runs with their files, drawings) to a zip file."""
        if not self.has_workspace(workspace_id):
            raise StoreError(f"There is no workspace {workspace_id!r} here.")
        runs = self.runs(workspace_id)
        _, images, labels = self.drawings(workspace_id)
        settings = self.settings(workspace_id)
        manifest = {"format": EXPORT_FORMAT, "workspace_id": workspace_id,
                    "settings": settings.to_dict() if settings else None,
                    "model_run_id": self.model_run_id(workspace_id),
                    "runs": [{"run_id": r.run_id, "pinned": r.pinned, "published": r.published} for r in runs]}
        path = Path(path)
        with tempfile.TemporaryDirectory() as tmp:
            for run in runs:
                write_run_files(run, Path(tmp) / "runs")
            drawings = Path(tmp) / "drawings.npz"
            np.savez_compressed(drawings, images=np.round(images * 255).astype(np.uint8), labels=labels)
            part = path.with_name(path.name + ".part")
            with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("workspace.json", json.dumps(manifest, indent=1))
                zf.write(drawings, "drawings.npz")
                for file in sorted((Path(tmp) / "runs").glob("*")) if runs else []:
                    zf.write(file, f"runs/{file.name}")
            os.replace(part, path)
        return {"workspace": workspace_id, "runs": len(runs), "drawings": len(labels), "file": str(path)}

    def import_workspace(self, path: str | os.PathLike) -> dict:
        """Read an export_workspace zip back: the same workspace id; runs already here are skipped."""
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as zf:
                if sum(i.file_size for i in zf.infolist()) > MAX_IMPORT_BYTES:
                    raise StoreError(f"{path.name}: larger than {MAX_IMPORT_BYTES >> 20} MB unpacked")
                manifest = json.loads(zf.read("workspace.json"))
                if manifest.get("format") != EXPORT_FORMAT or not is_workspace_id(manifest.get("workspace_id")):
                    raise StoreError(f"{path.name}: not an MNIST Live workspace export")
                with tempfile.TemporaryDirectory() as tmp:
                    wanted = {f"runs/{r['run_id']}.{ext}" for r in manifest["runs"] if RUN_ID.match(str(r["run_id"]))
                              for ext in ("json", "npz", "keras")}
                    for name in zf.namelist():  # Only the names we expect: no path ever comes from the zip.
                        if name in wanted:
                            (Path(tmp) / Path(name).name).write_bytes(zf.read(name))
                    with np.load(zf.open("drawings.npz"), allow_pickle=False) as npz:
                        images, labels = npz["images"], npz["labels"]
                    return self._import(manifest, Path(tmp), images, labels)
        except StoreError:
            raise
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, ModelFileError) as exc:
            raise StoreError(f"{path.name}: not a readable workspace export ({exc.__class__.__name__}: {exc})") \
                from None

    def _has_run(self, run_id: str) -> bool:
        return bool(self.query(select(1).where(t.runs.c.run_id == run_id)))

    def _import(self, manifest: dict, folder: Path, images: np.ndarray, labels: np.ndarray) -> dict:
        from .handwriting import check_drawings
        workspace_id = manifest["workspace_id"]
        self.create_workspace(workspace_id)
        added, skipped = 0, 0
        for entry in manifest["runs"]:
            run_id = str(entry["run_id"])
            if not RUN_ID.match(run_id) or self._has_run(run_id):
                skipped += 1
                continue
            run = load_run(run_id, folder)
            run.pinned, run.published = bool(entry.get("pinned")), bool(entry.get("published"))
            self.add_run(workspace_id, run)
            added += 1
        if manifest.get("settings"):
            self.save_settings(workspace_id, TrainConfig.from_dict(manifest["settings"]))
        if manifest.get("model_run_id") and self.run(manifest["model_run_id"], workspace_id):
            self.set_model_run_id(workspace_id, manifest["model_run_id"])
        drawn = 0
        if len(labels):
            images, labels = check_drawings(images, labels)
            self.add_drawings(workspace_id, images, labels)
            drawn = len(labels)
        return {"workspace": workspace_id, "runs added": added, "runs already here": skipped, "drawings": drawn}

    def import_legacy_runs(self, folder: str | os.PathLike) -> list[str]:
        """Once per folder: the runs saved on the server before the store, published to everyone."""
        folder = Path(folder)
        source = str(folder.resolve())
        if not folder.is_dir() or self.query(select(1).where(t.imports.c.source == source)):
            return []
        runs, problems = list_runs(folder)
        self.create_workspace(SERVER_WORKSPACE)
        for run in reversed(runs):
            if not self._has_run(run.run_id):
                run.published = True
                self.add_run(SERVER_WORKSPACE, run)
        with self.transaction("remember the import") as db:
            insert = self._insert(t.imports).values(source=source, imported_at=time.time())
            db.execute(insert.on_conflict_do_update(index_elements=["source"],
                                                    set_={"imported_at": insert.excluded.imported_at}))
        return problems


def _name(meta: str, run_id: str) -> str:
    try:
        return json.loads(meta).get("name") or run_id
    except ValueError:
        return run_id


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# ---------------------------------------------------------------- opening the server's store

def data_folder() -> Path:
    """$MNIST_LIVE_DATA, else mnist-live-data/ in the working directory."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_FOLDER)


class ServerLock:
    """An exclusive lock on the data folder for one server (released by the kernel if the server dies)."""

    def __init__(self, folder: Path):
        self._file = open(folder / LOCK_FILE, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise StoreInUse(f"Another MNIST Live server is using the data folder {folder}.") from None


def open_server_store(folder: str | os.PathLike | None = None, limits: StoreLimits | None = None) -> Store:
    """The store a server uses. A damaged database is moved aside and a fresh one started; a folder that is
    read-only, locked, in use by another server or from a newer version is left untouched and a temporary
    store stands in. Either way store.notices says what happened, for every page to show. A shared database
    (PostgreSQL) that fails raises its StoreError instead: a stand-in would split the servers' work apart."""
    folder = Path(folder) if folder else data_folder()
    notices = []
    if not database_url(folder, DB_FILE).startswith("sqlite"):
        return Store(folder, limits)
    try:
        store = Store(folder, limits)
    except StoreCorrupt as exc:
        aside = _move_aside(folder)
        notices.append(f"{exc} It was moved aside to {aside.name} and a fresh database was started: earlier "
                       "work is in that file, not lost.")
        try:
            store = Store(folder, limits)
        except StoreError as again:
            store = _temporary(limits, f"{again}")
    except StoreError as exc:
        store = _temporary(limits, str(exc))
    if not store.temporary and store.db.is_sqlite:  # PostgreSQL: many servers, one database, by design
        try:
            store.lock = ServerLock(folder)
        except (StoreInUse, OSError) as exc:
            store = _temporary(limits, str(exc))
    store.notices[:0] = notices
    return store


def _temporary(limits: StoreLimits | None, why: str) -> Store:
    store = Store(tempfile.mkdtemp(prefix="mnist-live-temporary-"), limits, temporary=True)
    store.notices.append(f"{why} Until that is fixed, work is kept in a temporary folder and is lost when the "
                         "server stops.")
    return store


def _move_aside(folder: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder / f"{DB_FILE}.damaged-{stamp}"
    for suffix in ("", "-wal", "-shm"):
        src = folder / (DB_FILE + suffix)
        if src.exists():
            shutil.move(str(src), str(folder / f"{aside.name}{suffix}"))
    return aside
