"""Store: workspaces, runs, drawings, jobs and notices in SQLite (WAL); each run's arrays as files beside it.

Why files for the arrays (about 3.5 MB a dense run): measured here, writing one atomically took 4.4 ms against
9.7 ms as a BLOB, reading it 0.2 ms against 0.7 ms, and a deleted file frees its disk at once, while a deleted
BLOB leaves the database file as large as before until a VACUUM (`python -m mnist_model bench` repeats this).
A run's files are written before its row and removed after it, so a crash leaves at most orphan files,
which recover() deletes; never a row without its files.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import MnistLiveError, ModelFileError
from .runs import RUN_ID, Run, arrays_npz, atomic_write, list_runs, load_run, read_arrays, write_run_files

SCHEMA_VERSION = 2
DATA_ENV = "MNIST_LIVE_DATA"
DEFAULT_FOLDER = "mnist-live-data"
DB_FILE = "mnist-live.sqlite3"
RUNS_FOLDER = "runs"  # <run_id>.npz (weights, test predictions) and <run_id>.keras
LOCK_FILE = "server.lock"  # held by the one server that uses this folder
SERVER_WORKSPACE = "server"  # owner of runs imported from the legacy runs/ folder; never pruned
WORKSPACE_ID_BYTES = 24  # 192 random bits, URL-safe base64: 32 characters
BUSY_TIMEOUT_MS = 5000  # how long a write waits for another writer before saying the database is busy
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


class StoreError(MnistLiveError):
    """The store cannot do what was asked; the message says why in plain words."""


class StoreBusy(StoreError):
    """Another program holds the database."""


class StoreFull(StoreError):
    """The disk (or a file size limit) is full."""


class StoreReadOnly(StoreError):
    """The data folder cannot be written."""


class StoreNewer(StoreError):
    """The database was written by a newer version of the app."""


class StoreCorrupt(StoreError):
    """The database file is damaged."""


class StoreInUse(StoreError):
    """Another server uses the data folder."""


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


MIGRATIONS = [  # MIGRATIONS[i] takes the schema from version i to i + 1; never edit one that has shipped
    """
    CREATE TABLE workspaces (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        settings TEXT,
        model_run_id TEXT,
        run_counter INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        meta TEXT NOT NULL,
        created_at REAL NOT NULL,
        pinned INTEGER NOT NULL DEFAULT 0,
        published INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_workspace ON runs(workspace_id, created_at);
    CREATE TABLE drawings (
        id INTEGER PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        label INTEGER NOT NULL,
        pixels BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX drawings_by_workspace ON drawings(workspace_id, id);
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        kind TEXT NOT NULL,
        config TEXT NOT NULL,
        base_run_id TEXT,
        state TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_by_workspace ON jobs(workspace_id, created_at);
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE imports (
        source TEXT PRIMARY KEY,
        imported_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE classes (
        id TEXT PRIMARY KEY,
        code TEXT NOT NULL,
        teacher_workspace TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        key_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        ended_at REAL,
        suggestion TEXT,
        suggested_at REAL
    );
    CREATE INDEX classes_by_code ON classes(code);
    CREATE INDEX classes_by_teacher ON classes(teacher_workspace, created_at);
    CREATE TABLE teacher_keys (
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        PRIMARY KEY (workspace_id, class_id)
    );
    CREATE TABLE members (
        workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
        class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        nickname TEXT NOT NULL,
        skeleton TEXT NOT NULL,
        joined_at REAL NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX members_by_skeleton ON members(class_id, skeleton);
    CREATE TABLE board (
        run_id TEXT PRIMARY KEY,
        class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        nickname TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        epochs_run INTEGER NOT NULL,
        train_accuracy REAL NOT NULL,
        test_accuracy REAL NOT NULL,
        train_loss REAL NOT NULL,
        test_loss REAL NOT NULL,
        seconds REAL NOT NULL,
        posted_at REAL NOT NULL,
        hidden INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX board_by_class ON board(class_id, posted_at);
    """,
]


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


def _readable(exc: BaseException, what: str) -> StoreError:
    """A plain-words StoreError for an sqlite3 or OS error."""
    text = str(exc).lower()
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or "full" in text:
        return StoreFull(f"Could not {what}: the server's disk is full.")
    if "locked" in text or "busy" in text:
        return StoreBusy(f"Could not {what}: the database is busy (another program is using it). Try again "
                         "in a moment.")
    if isinstance(exc, PermissionError) or "readonly" in text or "read-only" in text or (
            isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)):
        return StoreReadOnly(f"Could not {what}: the data folder is read-only.")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreCorrupt(f"Could not {what}: the database file is damaged.")
    return StoreError(f"Could not {what}: {exc.__class__.__name__}: {exc}")


class Store:
    """The data folder: one SQLite database (a connection per thread) and a folder of run files."""

    def __init__(self, folder: str | os.PathLike, limits: StoreLimits | None = None, temporary: bool = False):
        """Open (creating or migrating) the store in folder; StoreError subclasses say why it cannot be used."""
        self.folder = Path(folder)
        self.db_path = self.folder / DB_FILE
        self.runs_path = self.folder / RUNS_FOLDER
        self.limits = limits or StoreLimits.from_env()
        self.temporary = temporary  # a stand-in folder: nothing in it outlives the server
        self.notices: list[str] = []  # server-wide messages, shown on every page
        self.lock: ServerLock | None = None
        self._local = threading.local()
        self._touched: dict[str, float] = {}
        self.generation = 0  # moves when workspaces go or arrive in bulk (prune, import): views keyed on it redraw
        try:
            self.runs_path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.folder, os.W_OK) or not os.access(self.runs_path, os.W_OK):
                raise PermissionError(errno.EACCES, "not writable", str(self.folder))
            probe = self.runs_path / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreReadOnly(f"The data folder {self.folder} cannot be written "
                                f"({exc.strerror or exc}).") from None
        self._migrate()

    # ------------------------------------------------------------ connections and transactions

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=True)
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise _readable(exc, "open the database") from None
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, what: str):
        """A short write transaction (BEGIN IMMEDIATE: writers queue, readers go on); errors in plain words."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _readable(exc, what) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise _readable(exc, what) from None
            raise

    def query(self, sql: str, args=(), what: str = "read the database") -> list[tuple]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _readable(exc, what) from None

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        """Check the file, refuse a newer schema, and apply forward migrations."""
        conn = self._conn()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreCorrupt(f"The database {self.db_path} is damaged ({exc}).") from None
        if version > SCHEMA_VERSION:
            self.close()
            raise StoreNewer(f"The data folder {self.folder} was written by a newer MNIST Live (store version "
                             f"{version}; this app knows versions up to {SCHEMA_VERSION}). It was left untouched.")
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            if version:
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(check)
        except sqlite3.DatabaseError as exc:
            self.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy(f"The database {self.db_path} is locked by another program.") from None
            raise StoreCorrupt(f"The database {self.db_path} is damaged ({exc}).") from None
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._apply_migration(conn, target)

    @staticmethod
    def _apply_migration(conn: sqlite3.Connection, target: int) -> None:
        """Migrate to version target in one transaction (a second process that got there first wins)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("PRAGMA user_version").fetchone()[0] >= target:
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _readable(exc, "update the database") from None

    @property
    def version(self) -> int:
        return self.query("PRAGMA user_version")[0][0]

    # ------------------------------------------------------------ workspaces

    def create_workspace(self, workspace_id: str | None = None) -> str:
        """A new, empty workspace; returns its id."""
        workspace_id = workspace_id or new_workspace_id()
        now = time.time()
        with self.transaction("create a workspace") as db:
            db.execute("INSERT OR IGNORE INTO workspaces (id, created_at, last_seen) VALUES (?, ?, ?)",
                       (workspace_id, now, now))
        self._touched[workspace_id] = now
        return workspace_id

    def has_workspace(self, workspace_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM workspaces WHERE id = ?", (workspace_id,)))

    def touch(self, workspace_id: str) -> None:
        """Note that the workspace is in use (written at most once an hour)."""
        now = time.time()
        if now - self._touched.get(workspace_id, 0) < TOUCH_EVERY_S:
            return
        with self.transaction("note the workspace's use") as db:
            db.execute("UPDATE workspaces SET last_seen = ? WHERE id = ?", (now, workspace_id))
        self._touched[workspace_id] = now

    def settings(self, workspace_id: str) -> TrainConfig | None:
        """The workspace's last Train settings, or None."""
        rows = self.query("SELECT settings FROM workspaces WHERE id = ?", (workspace_id,))
        if not rows or not rows[0][0]:
            return None
        try:
            return TrainConfig.from_dict(json.loads(rows[0][0]))
        except (ValueError, TypeError, AttributeError):
            return None

    def save_settings(self, workspace_id: str, config: TrainConfig) -> None:
        with self.transaction("save the settings") as db:
            db.execute("UPDATE workspaces SET settings = ? WHERE id = ?", (json.dumps(config.to_dict()), workspace_id))

    def model_run_id(self, workspace_id: str) -> str | None:
        rows = self.query("SELECT model_run_id FROM workspaces WHERE id = ?", (workspace_id,))
        return rows[0][0] if rows else None

    def set_model_run_id(self, workspace_id: str, run_id: str | None) -> None:
        with self.transaction("remember the chosen model") as db:
            db.execute("UPDATE workspaces SET model_run_id = ? WHERE id = ?", (run_id, workspace_id))

    def next_run_number(self, workspace_id: str) -> int:
        """1, 2, 3, ... per workspace (for names such as "Run 3")."""
        with self.transaction("number the run") as db:
            db.execute("UPDATE workspaces SET run_counter = run_counter + 1 WHERE id = ?", (workspace_id,))
            row = db.execute("SELECT run_counter FROM workspaces WHERE id = ?", (workspace_id,)).fetchone()
        return row[0] if row else 1

    # ------------------------------------------------------------ runs

    def _files(self, run_id: str) -> tuple[Path, Path]:
        return self.runs_path / f"{run_id}.npz", self.runs_path / f"{run_id}.keras"

    def _loader(self, run_id: str, architecture: str):
        def load() -> dict:
            npz, keras_file = self._files(run_id)
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
        try:
            atomic_write(npz, data)
            if run.keras_bytes:
                atomic_write(keras_file, run.keras_bytes)
        except OSError as exc:
            npz.unlink(missing_ok=True)
            raise _readable(exc, f"save {run.name or 'the run'}") from None
        size = len(data) + len(run.keras_bytes)
        with self.transaction(f"save {run.name or 'the run'}") as db:
            db.execute("INSERT OR REPLACE INTO runs (run_id, workspace_id, meta, created_at, pinned, published, bytes)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", (run.run_id, workspace_id, json.dumps(run.meta()),
                                                       run.created_at, int(run.pinned), int(run.published), size))
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
        rows = db.execute("SELECT run_id, meta FROM runs WHERE workspace_id = ? AND pinned = 0 ORDER BY created_at",
                          (workspace_id,)).fetchall()
        total = db.execute("SELECT COUNT(*) FROM runs WHERE workspace_id = ?", (workspace_id,)).fetchone()[0]
        extra = rows[:max(0, total - self.limits.runs_per_workspace)]
        for run_id, _ in extra:
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        return [(run_id, _name(meta, run_id)) for run_id, meta in extra]

    def runs(self, workspace_id: str) -> list[Run]:
        """The workspace's runs, oldest first (their arrays are read on first use)."""
        rows = self.query("SELECT run_id, meta, pinned, published FROM runs WHERE workspace_id = ? "
                          "ORDER BY created_at", (workspace_id,))
        return [run for run in map(self._run_from_row, rows) if run is not None]

    def run(self, run_id: str, workspace_id: str | None = None) -> Run | None:
        """A run of the workspace, or one published to everyone; None otherwise."""
        rows = self.query("SELECT run_id, meta, pinned, published FROM runs WHERE run_id = ? AND "
                          "(workspace_id = ? OR published = 1)", (run_id, workspace_id))
        return self._run_from_row(rows[0]) if rows else None

    def published_runs(self) -> list[Run]:
        """Runs published to everyone on this server, newest first."""
        rows = self.query("SELECT run_id, meta, pinned, published FROM runs WHERE published = 1 "
                          "ORDER BY created_at DESC")
        return [run for run in map(self._run_from_row, rows) if run is not None]

    def set_pinned(self, workspace_id: str, run_id: str, pinned: bool) -> None:
        with self.transaction("pin the run") as db:
            db.execute("UPDATE runs SET pinned = ? WHERE run_id = ? AND workspace_id = ?",
                       (int(pinned), run_id, workspace_id))

    def set_published(self, workspace_id: str, run_id: str, published: bool) -> None:
        with self.transaction("publish the run") as db:
            db.execute("UPDATE runs SET published = ? WHERE run_id = ? AND workspace_id = ?",
                       (int(published), run_id, workspace_id))

    def delete_run(self, workspace_id: str, run_id: str) -> None:
        """Remove the row, then the files (a crash between leaves orphan files, which recover() removes)."""
        with self.transaction("delete the run") as db:
            gone = db.execute("DELETE FROM runs WHERE run_id = ? AND workspace_id = ?", (run_id, workspace_id)).rowcount
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
        with self.transaction("keep the drawings") as db:
            db.executemany("INSERT INTO drawings (workspace_id, label, pixels, created_at) VALUES (?, ?, ?, ?)",
                           [(workspace_id, int(label), p.tobytes(), now) for p, label in zip(pixels, labels)])

    def drawings(self, workspace_id: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(ids, images (m, 28, 28) float32 in [0, 1], labels (m,) uint8), oldest first."""
        rows = self.query("SELECT id, label, pixels FROM drawings WHERE workspace_id = ? ORDER BY id", (workspace_id,))
        rows = [r for r in rows if len(r[2]) == 784]
        images = np.stack([np.frombuffer(r[2], np.uint8).reshape(28, 28) for r in rows]).astype(np.float32) / 255 \
            if rows else np.zeros((0, 28, 28), np.float32)
        return [r[0] for r in rows], images, np.array([r[1] for r in rows], np.uint8)

    def delete_drawings(self, workspace_id: str, ids) -> None:
        with self.transaction("delete the drawings") as db:
            db.executemany("DELETE FROM drawings WHERE id = ? AND workspace_id = ?",
                           [(int(i), workspace_id) for i in ids])

    # ------------------------------------------------------------ jobs

    def record_job(self, workspace_id: str, job_id: str, label: str, kind: str, config: TrainConfig,
                   base_run_id: str | None = None) -> None:
        """Remember a training that was asked for (queued)."""
        now = time.time()
        with self.transaction("remember the training") as db:
            db.execute("INSERT OR REPLACE INTO jobs (job_id, workspace_id, label, kind, config, base_run_id, state, "
                       "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                       (job_id, workspace_id, label, kind, json.dumps(config.to_dict()), base_run_id, now, now))

    def set_job_state(self, job_id: str, state: str, message: str = "") -> None:
        with self.transaction("update the training") as db:
            db.execute("UPDATE jobs SET state = ?, message = ?, updated_at = ? WHERE job_id = ?",
                       (state, message, time.time(), job_id))

    def forget_job(self, job_id: str) -> None:
        """A training that ended (its run, if any, is kept) or an interrupted one dismissed."""
        with self.transaction("update the training") as db:
            db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def interrupt_unfinished(self) -> int:
        """At server start: every training still queued or running belonged to a server that died."""
        with self.transaction("mark interrupted trainings") as db:
            return db.execute("UPDATE jobs SET state = 'interrupted', message = CASE state WHEN 'running' THEN "
                              "'the server restarted while it was training' ELSE 'the server restarted while it "
                              "was waiting for a training slot' END, updated_at = ? WHERE state IN ('queued', "
                              "'running')", (time.time(),)).rowcount

    def jobs(self, workspace_id: str, states=("interrupted",)) -> list[JobRecord]:
        marks = ",".join("?" * len(states))
        rows = self.query(f"SELECT job_id, label, kind, config, base_run_id, state, message, created_at FROM jobs "
                          f"WHERE workspace_id = ? AND state IN ({marks}) ORDER BY created_at",
                          (workspace_id, *states))
        return [JobRecord(r[0], r[1], r[2], TrainConfig.from_dict(json.loads(r[3])), r[4], r[5], r[6], r[7])
                for r in rows]

    # ------------------------------------------------------------ notices

    def add_notice(self, workspace_id: str, text: str) -> None:
        """A message for the workspace's next page view (shown once)."""
        with self.transaction("leave a message") as db:
            db.execute("INSERT INTO notices (workspace_id, text, created_at) SELECT ?, ?, ? WHERE EXISTS "
                       "(SELECT 1 FROM workspaces WHERE id = ?)", (workspace_id, text, time.time(), workspace_id))

    def take_notices(self, workspace_id: str) -> list[str]:
        """The workspace's messages, oldest first; each is returned once."""
        if not self.query("SELECT 1 FROM notices WHERE workspace_id = ? LIMIT 1", (workspace_id,)):
            return []
        with self.transaction("read messages") as db:
            rows = db.execute("SELECT id, text FROM notices WHERE workspace_id = ? ORDER BY id",
                              (workspace_id,)).fetchall()
            db.execute("DELETE FROM notices WHERE workspace_id = ?", (workspace_id,))
        return [r[1] for r in rows]

    # ------------------------------------------------------------ upkeep

    def recover(self, grace_s: float = ORPHAN_GRACE_S) -> dict:
        """Remove half-written and orphan files (older than grace_s) and rows whose files are gone."""
        known = {r[0] for r in self.query("SELECT run_id FROM runs")}
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
        missing = [r for r in self.query("SELECT run_id, workspace_id, meta FROM runs")
                   if not self._files(r[0])[0].is_file()]
        with self.transaction("remove damaged runs") as db:
            for run_id, _, _ in missing:
                db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        for run_id, workspace_id, meta in missing:
            self.add_notice(workspace_id, f"{_name(meta, run_id)} was removed: its files were missing.")
        return {"orphan_files_removed": removed_files, "runs_without_files_removed": len(missing)}

    def disk_bytes(self) -> int:
        """The runs' files and the database (with its write-ahead log)."""
        runs = self.query("SELECT COALESCE(SUM(bytes), 0) FROM runs")[0][0]
        db = sum(p.stat().st_size for p in self.folder.glob(DB_FILE + "*") if p.is_file())
        return int(runs) + db

    def enforce_disk_cap(self) -> list[str]:
        """Remove the oldest runs (unpinned first) until the store fits its disk cap; returns their names."""
        over = self.disk_bytes() - self.limits.disk_cap_mb * 2**20
        if over <= 0:
            return []
        rows = self.query("SELECT run_id, workspace_id, meta, bytes FROM runs ORDER BY pinned, created_at")
        doomed = []
        for run_id, workspace_id, meta, size in rows:
            if over <= 0:
                break
            doomed.append((run_id, workspace_id, meta))
            over -= size
        with self.transaction("make room on the disk") as db:
            for run_id, _, _ in doomed:
                db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
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
        rows = self.query(
            "SELECT id FROM workspaces w WHERE id != ? AND (last_seen < ? OR (last_seen < ? AND NOT EXISTS "
            "(SELECT 1 FROM runs r WHERE r.workspace_id = w.id) AND NOT EXISTS (SELECT 1 FROM drawings d WHERE "
            "d.workspace_id = w.id) AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.workspace_id = w.id)))",
            (SERVER_WORKSPACE, idle, empty))
        gone = [r[0] for r in rows]
        run_ids = []
        with self.transaction("remove unused workspaces") as db:
            for workspace_id in gone:
                run_ids += [r[0] for r in db.execute("SELECT run_id FROM runs WHERE workspace_id = ?", (workspace_id,))]
                db.execute("DELETE FROM workspaces WHERE id = ?", (workspace_id,))
        self._remove_files(run_ids)
        with self.transaction("remove ended classes") as db:
            classes = db.execute("DELETE FROM classes WHERE ended_at < ?", (idle,)).rowcount
        if gone or classes:
            self.generation += 1
        return {"workspaces_removed": len(gone), "their_runs_removed": len(run_ids), "ended_classes_removed": classes,
                "runs_removed_for_disk_cap": len(self.enforce_disk_cap())}

    def info(self) -> dict:
        """What the store holds, for the admin command."""
        count = lambda table, where="": self.query(f"SELECT COUNT(*) FROM {table} {where}")[0][0]  # noqa: E731
        return {"folder": str(self.folder.resolve()), "store version": self.version,
                "workspaces": count("workspaces", f"WHERE id != '{SERVER_WORKSPACE}'"), "runs": count("runs"),
                "published runs": count("runs", "WHERE published = 1"), "drawings": count("drawings"),
                "interrupted trainings": count("jobs", "WHERE state = 'interrupted'"),
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

    def _import(self, manifest: dict, folder: Path, images: np.ndarray, labels: np.ndarray) -> dict:
        from .handwriting import check_drawings
        workspace_id = manifest["workspace_id"]
        self.create_workspace(workspace_id)
        added, skipped = 0, 0
        for entry in manifest["runs"]:
            run_id = str(entry["run_id"])
            if not RUN_ID.match(run_id) or self.query("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
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
        if not folder.is_dir() or self.query("SELECT 1 FROM imports WHERE source = ?", (source,)):
            return []
        runs, problems = list_runs(folder)
        self.create_workspace(SERVER_WORKSPACE)
        for run in reversed(runs):
            if not self.query("SELECT 1 FROM runs WHERE run_id = ?", (run.run_id,)):
                run.published = True
                self.add_run(SERVER_WORKSPACE, run)
        with self.transaction("remember the import") as db:
            db.execute("INSERT OR REPLACE INTO imports (source, imported_at) VALUES (?, ?)", (source, time.time()))
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
    store stands in. Either way store.notices says what happened, for every page to show."""
    folder = Path(folder) if folder else data_folder()
    notices = []
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
    if not store.temporary:
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
