"""The database under the store: one SQLAlchemy engine (an SQLite file by default, PostgreSQL by URL), short
transactions, errors in plain words, and Alembic migrations run when it opens."""
from __future__ import annotations

import errno
import json
import os
import sqlite3  # noqa: F401 - before a server drops its privileges: SQLAlchemy imports the driver late
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, exc as sa_exc, inspect, text
from sqlalchemy.engine import URL, Connection, make_url

from .errors import MnistLiveError
from .i18n import N_, later, later_text

DATABASE_URL_ENV = "MNIST_LIVE_DATABASE_URL"  # postgresql://user:password@host/db: several servers share one
BUSY_TIMEOUT_MS = 5000  # how long a write waits for another writer before saying the database is busy
CONNECT_TIMEOUT_S = 5  # how long a server waits for PostgreSQL before saying it cannot be reached
MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_LOCATIONS = [MIGRATIONS / "versions"]
ALEMBIC_ERA = 3  # SQLite's user_version once Alembic keeps the schema: an app from before refuses the file
LEGACY_VERSION = 2  # the hand-written migrations' last user_version; revision 0001 is that schema
MIGRATION_LOCK = 7_226_001  # PostgreSQL advisory lock: servers starting together migrate one at a time
# The class tables, added by the last hand-written migration (user_version 1 -> 2); kept for files that old.
LEGACY_CLASS_TABLES = """
CREATE TABLE classes (id TEXT PRIMARY KEY, code TEXT NOT NULL, teacher_workspace TEXT NOT NULL REFERENCES
    workspaces(id) ON DELETE CASCADE, key_hash TEXT NOT NULL, created_at REAL NOT NULL, ended_at REAL,
    suggestion TEXT, suggested_at REAL);
CREATE INDEX classes_by_code ON classes(code);
CREATE INDEX classes_by_teacher ON classes(teacher_workspace, created_at);
CREATE TABLE teacher_keys (workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE, class_id TEXT
    NOT NULL REFERENCES classes(id) ON DELETE CASCADE, key TEXT NOT NULL, PRIMARY KEY (workspace_id, class_id));
CREATE TABLE members (workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE, class_id TEXT
    NOT NULL REFERENCES classes(id) ON DELETE CASCADE, nickname TEXT NOT NULL, skeleton TEXT NOT NULL, joined_at
    REAL NOT NULL, seen_at REAL NOT NULL);
CREATE UNIQUE INDEX members_by_skeleton ON members(class_id, skeleton);
CREATE TABLE board (run_id TEXT PRIMARY KEY, class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE, nickname TEXT NOT NULL, config TEXT NOT
    NULL, status TEXT NOT NULL, epochs_run INTEGER NOT NULL, train_accuracy REAL NOT NULL, test_accuracy REAL NOT
    NULL, train_loss REAL NOT NULL, test_loss REAL NOT NULL, seconds REAL NOT NULL, posted_at REAL NOT NULL, hidden
    INTEGER NOT NULL DEFAULT 0);
CREATE INDEX board_by_class ON board(class_id, posted_at)
"""


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


class StoreUnreachable(StoreError):
    """The database server does not answer (restarting, or the network)."""


class StoreConflict(StoreError):
    """The write broke a rule the database keeps (one training per workspace, one nickname per look)."""


_PASSWORDS: set[str] = set()  # the databases' passwords this process knows: never in a message, whatever said them


def readable(exc: BaseException, what: str) -> StoreError:
    """A plain-words StoreError for a database or OS error; never the SQL, its values or a password.
    what: what was being done, marked with N_ ("save the drawings") or a later() text, said in the reader's language."""
    error = _readable(exc, later_text(what))
    message = error.args[0]
    for password in _PASSWORDS:
        message = message.replace(password, "***").replace(json.dumps(password, ensure_ascii=False)[1:-1], "***")
    return error if message == error.args[0] else type(error)(message)


def _could_not(kind: type, message: str, what: str, **fields) -> StoreError:
    return kind(later(message, what=what, **fields))


def _readable(exc: BaseException, what: str) -> StoreError:
    if isinstance(exc, sa_exc.IntegrityError):
        return _could_not(StoreConflict, N_("Could not {what}: it clashes with something saved meanwhile."), what)
    connection_lost = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text_ = str(exc).lower()
    if connection_lost or any(w in text_ for w in ("connection refused", "could not connect", "server closed the",
                                                     "terminating connection", "connection timeout", "no route",
                                                     "the database system is", "connection is closed")):
        return _could_not(StoreUnreachable, N_("Could not {what}: the database server does not answer. Try again in "
                                               "a moment."), what)
    if "failed to resolve host" in text_ or "name or service not known" in text_:
        return _could_not(StoreUnreachable, N_("Could not {what}: the database server's name in {setting} is not "
                                               "known on this network."), what, setting=DATABASE_URL_ENV)
    if "password authentication failed" in text_ or "no password supplied" in text_:
        return _could_not(StoreError, N_("Could not {what}: the database refused the user name or password in "
                                         "{setting}."), what, setting=DATABASE_URL_ENV)
    if "database" in text_ and "does not exist" in text_:
        return _could_not(StoreError, N_("Could not {what}: the database named in {setting} does not exist on its "
                                         "server (create it first, empty)."), what, setting=DATABASE_URL_ENV)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or "full" in text_:
        return _could_not(StoreFull, N_("Could not {what}: the server's disk is full."), what)
    if "locked" in text_ or "busy" in text_:
        return _could_not(StoreBusy, N_("Could not {what}: the database is busy (another program is using it). Try "
                                        "again in a moment."), what)
    if isinstance(exc, PermissionError) or "readonly" in text_ or "read-only" in text_ or (
            isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)):
        return _could_not(StoreReadOnly, N_("Could not {what}: the data folder is read-only."), what)
    if "not a database" in text_ or "malformed" in text_ or "corrupt" in text_:
        return _could_not(StoreCorrupt, N_("Could not {what}: the database file is damaged."), what)
    return _could_not(StoreError, N_("Could not {what}: {detail}"), what,
                      detail=f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def database_url(folder: Path, db_file: str) -> str:
    """$MNIST_LIVE_DATABASE_URL, else the SQLite file in the data folder."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{(folder / db_file).resolve()}"


class Database:
    """One engine; write(what) is a short transaction (SQLite: BEGIN IMMEDIATE, so writers queue); read(...)
    runs one statement. Both raise StoreError subclasses."""

    def __init__(self, url: str | URL):
        url = make_url(url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's default psycopg2
        self.url = url
        if url.password:
            _PASSWORDS.add(str(url.password))
        self.dialect = url.get_backend_name()  # "sqlite" or "postgresql"
        self.is_sqlite = self.dialect == "sqlite"
        try:
            self.engine = self._engine(write=True)
            self.reader = self._engine(write=False)  # one statement each, in autocommit: no BEGIN, no ROLLBACK
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise StoreError(later(N_("The database address {url} cannot be used ({detail})."), url=self.safe_url,
                                   detail=exc.__class__.__name__)) from None

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden (for logs and messages)."""
        return self.url.render_as_string(hide_password=True)

    def _engine(self, write: bool):
        """The writers' engine (transactions; SQLite's BEGIN IMMEDIATE) or the readers' (autocommit)."""
        reading = {} if write else {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=30, pool_timeout=30,
                                 connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, **reading)
        engine = create_engine(self.url, pool_size=5, max_overflow=40, pool_timeout=30,
                               connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}, **reading)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # transactions are begun below, not by the driver
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        if write:
            @event.listens_for(engine, "begin")
            def _begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # readers go on; writers wait their turn
        return engine

    @contextmanager
    def write(self, what: str):
        """A short write transaction yielding its Connection; errors in plain words."""
        try:
            conn = self.engine.connect()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise readable(exc, what) from None
        try:
            try:
                transaction = conn.begin()
            except (sa_exc.SQLAlchemyError, OSError) as exc:
                raise readable(exc, what) from None
            try:
                yield conn
                transaction.commit()
            except BaseException as exc:
                try:
                    transaction.rollback()
                except (sa_exc.SQLAlchemyError, OSError):
                    pass
                if isinstance(exc, (sa_exc.SQLAlchemyError, OSError)):
                    raise readable(exc, what) from None
                raise
        finally:
            conn.close()

    def read(self, statement, what: str = N_("read the database")) -> list:
        """The rows of one statement (a Core statement, or text with :names)."""
        try:
            with self.reader.connect() as conn:
                return conn.execute(statement).all()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise readable(exc, what) from None

    def scalar(self, statement, what: str = N_("read the database")):
        rows = self.read(statement, what)
        return rows[0][0] if rows else None

    def dispose(self) -> None:
        self.engine.dispose()
        self.reader.dispose()

    # ------------------------------------------------------------ schema

    def _alembic(self, conn: Connection):
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("version_locations", " ".join(str(p) for p in VERSION_LOCATIONS))
        config.attributes["connection"] = conn
        return config

    def revision(self) -> str | None:
        """The schema's Alembic revision (None for an empty database)."""
        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise readable(exc, N_("read the database's version")) from None

    def upgrade(self, where: str) -> None:
        """Create or migrate the schema to the newest revision (a file from before Alembic is stamped first);
        a database from a newer app raises StoreNewer and is left untouched. where: how messages name it."""
        try:
            with self.engine.connect() as conn, conn.begin():
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                legacy = conn.exec_driver_sql("PRAGMA user_version").scalar() if self.is_sqlite else 0
                current = MigrationContext.configure(conn).get_current_revision()
                config = self._alembic(conn)
                known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
                if legacy > ALEMBIC_ERA or current is not None and current not in known:
                    raise StoreNewer(f"{where} was written by a newer MNIST Live (store version "
                                     f"{legacy if legacy > ALEMBIC_ERA else current}; this app knows versions up to "
                                     f"{ScriptDirectory.from_config(config).get_current_head()}). It was left "
                                     "untouched.")
                if current is None and legacy:
                    if legacy < LEGACY_VERSION and "classes" not in inspect(conn).get_table_names():
                        for statement in LEGACY_CLASS_TABLES.split(";"):
                            conn.exec_driver_sql(statement)
                    command.stamp(config, "0001")
                command.upgrade(config, "head")
                if self.is_sqlite:
                    conn.exec_driver_sql(f"PRAGMA user_version={ALEMBIC_ERA}")
        except StoreError:
            raise
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise readable(exc, N_("open the database")) from None
