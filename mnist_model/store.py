"""Store: everything a person makes, by workspace, in one database (database.py: an SQLite file by default,
PostgreSQL for several servers). This module holds the workspaces, drawings, notices, counters, limits and
upkeep, and opens the server's store; runs are in run_store.py, trainings in training_store.py, export and
import in workspace_transfer.py.

Why a run's arrays are files beside SQLite (about 3.5 MB a dense run): measured here, writing one atomically
took 4.4 ms against 9.7 ms as a BLOB, reading it 0.2 ms against 0.7 ms, and a deleted file frees its disk at
once, while a deleted BLOB leaves the database file as large as before until a VACUUM (`python -m mnist_model
bench` repeats this). With PostgreSQL, servers share no folder: the arrays go in the run's own transaction.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import and_, delete, exists, func, not_, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from . import schema as t
from .config import TrainConfig
from .database import (Database, StoreBusy, StoreConflict, StoreCorrupt, StoreError, StoreFull, StoreInUse,  # noqa
                       StoreNewer, StoreReadOnly, StoreUnreachable, database_url, readable)
from .i18n import N_, later
from .run_store import ORPHAN_GRACE_S, RunStore  # noqa: F401 (the server's upkeep uses the grace)
from .training_store import JobRecord, TrainingStore  # noqa: F401
from .workspace_ids import SERVER_WORKSPACE, is_workspace_id, new_workspace_id  # noqa: F401
from .workspace_transfer import WorkspaceTransfer

DATA_ENV = "MNIST_LIVE_DATA"
DEFAULT_FOLDER = "mnist-live-data"
DB_FILE = "mnist-live.sqlite3"
RUNS_FOLDER = "runs"  # <run_id>.npz (weights, test predictions) and <run_id>.keras
LOCK_FILE = "server.lock"  # held by the one server that uses this folder
EMPTY_WORKSPACE_DAYS = 1.0  # a workspace that never kept anything goes sooner than an idle one
TOUCH_EVERY_S = 3600  # last_seen is written at most this often per workspace


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


class Store(RunStore, TrainingStore, WorkspaceTransfer):
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
            raise StoreReadOnly(later(N_("The data folder {folder} cannot be written ({detail})."),
                                      folder=str(self.folder), detail=str(exc.strerror or exc))) from None
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
                        raise StoreCorrupt(later(N_("The database {path} is damaged ({detail})."),
                                                 path=str(self.db_path), detail=str(check)))
        except StoreError:
            self.db.dispose()
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3 or SQLAlchemy: said in plain words
            self.db.dispose()
            error = readable(exc, N_("open the database"))
            if isinstance(error, StoreBusy):
                raise StoreBusy(later(N_("The database {path} is locked by another program."),
                                      path=str(self.db_path))) from None
            if isinstance(error, (StoreReadOnly, StoreFull)):
                raise error from None
            raise StoreCorrupt(later(N_("The database {path} is damaged ({detail})."), path=str(self.db_path),
                                     detail=error.args[0])) from None

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
        with self.transaction(N_("create a workspace")) as db:
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
        with self.transaction(N_("note the workspace's use")) as db:
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

    def language(self, workspace_id: str) -> str | None:
        """The language chosen for the workspace, or None (the browser's then)."""
        return self._workspace_field(t.workspaces.c.language, workspace_id)

    def save_language(self, workspace_id: str, language: str) -> None:
        self._set_workspace("remember the language", workspace_id, language=language)

    def model_run_id(self, workspace_id: str) -> str | None:
        return self._workspace_field(t.workspaces.c.model_run_id, workspace_id)

    def set_model_run_id(self, workspace_id: str, run_id: str | None) -> None:
        self._set_workspace("remember the chosen model", workspace_id, model_run_id=run_id)

    def next_run_number(self, workspace_id: str) -> int:
        """1, 2, 3, ... per workspace (for names such as "Run 3")."""
        w = t.workspaces
        with self.transaction(N_("number the run")) as db:
            row = db.execute(update(w).where(w.c.id == workspace_id).values(run_counter=w.c.run_counter + 1)
                             .returning(w.c.run_counter)).first()
        return row[0] if row else 1

    def give_back_run_number(self, workspace_id: str, number: int) -> None:
        """Number the next run `number` again, unless another was numbered since."""
        w = t.workspaces
        with self.transaction(N_("number the run")) as db:
            db.execute(update(w).where(w.c.id == workspace_id, w.c.run_counter == number)
                       .values(run_counter=number - 1))

    # ------------------------------------------------------------ drawings

    def add_drawings(self, workspace_id: str, images: np.ndarray, labels: np.ndarray) -> None:
        """images (m, 28, 28) float32 in [0, 1] (kept as uint8), labels (m,) 0-9."""
        pixels = np.round(np.asarray(images, np.float32) * 255).clip(0, 255).astype(np.uint8)
        now = time.time()
        rows = [dict(workspace_id=workspace_id, label=int(label), pixels=p.tobytes(), created_at=now)
                for p, label in zip(pixels, labels)]
        if rows:
            with self.transaction(N_("keep the drawings")) as db:
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
        with self.transaction(N_("delete the drawings")) as db:
            db.execute(delete(t.drawings).where(t.drawings.c.id.in_([int(i) for i in ids]),
                                                t.drawings.c.workspace_id == workspace_id))

    # ------------------------------------------------------------ notices

    def add_notice(self, workspace_id: str, text_: str) -> None:
        """A message for the workspace's next page view (shown once)."""
        with self.transaction(N_("leave a message")) as db:
            if db.execute(select(1).where(t.workspaces.c.id == workspace_id)).first():
                db.execute(t.notices.insert().values(workspace_id=workspace_id, text=text_, created_at=time.time()))

    def take_notices(self, workspace_id: str) -> list[str]:
        """The workspace's messages, oldest first; each is returned once."""
        n = t.notices
        if not self.query(select(1).where(n.c.workspace_id == workspace_id).limit(1)):
            return []
        with self.transaction(N_("read messages")) as db:
            rows = db.execute(delete(n).where(n.c.workspace_id == workspace_id).returning(n.c.id, n.c.text)).all()
        return [r[1] for r in sorted(rows)]

    # ------------------------------------------------------------ upkeep

    def disk_bytes(self) -> int:
        """The runs' arrays and the database (an SQLite file with its write-ahead log)."""
        runs = self.query(select(func.coalesce(func.sum(t.runs.c.bytes), 0)))[0][0]
        db = sum(p.stat().st_size for p in self.folder.glob(DB_FILE + "*") if p.is_file()) if self.db.is_sqlite \
            else 0
        return int(runs) + db

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
            with self.transaction(N_("remove unused workspaces")) as db:
                run_ids = [r[0] for r in db.execute(select(t.runs.c.run_id).where(t.runs.c.workspace_id.in_(gone)))]
                db.execute(delete(w).where(w.c.id.in_(gone)))
        self._remove_files(run_ids)
        with self.transaction(N_("remove ended classes")) as db:
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
            raise StoreInUse(later(N_("Another MNIST Live server is using the data folder {folder}."),
                                   folder=str(folder))) from None


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
        notices.append(later(N_("{problem} It was moved aside to {file} and a fresh database was started: earlier "
                                "work is in that file, not lost."), problem=exc.args[0], file=aside.name))
        try:
            store = Store(folder, limits)
        except StoreError as again:
            store = _temporary(limits, again.args[0])
    except StoreError as exc:
        store = _temporary(limits, exc.args[0])
    if not store.temporary and store.db.is_sqlite:  # PostgreSQL: many servers, one database, by design
        try:
            store.lock = ServerLock(folder)
        except (StoreInUse, OSError) as exc:
            store = _temporary(limits, exc.args[0] if isinstance(exc, StoreInUse) else str(exc))
    store.notices[:0] = notices
    return store


def _temporary(limits: StoreLimits | None, why: str) -> Store:
    store = Store(tempfile.mkdtemp(prefix="mnist-live-temporary-"), limits, temporary=True)
    store.notices.append(later(N_("{problem} Until that is fixed, work is kept in a temporary folder and is lost "
                                  "when the server stops."), problem=why))
    return store


def _move_aside(folder: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder / f"{DB_FILE}.damaged-{stamp}"
    for suffix in ("", "-wal", "-shm"):
        src = folder / (DB_FILE + suffix)
        if src.exists():
            shutil.move(str(src), str(folder / f"{aside.name}{suffix}"))
    return aside
