"""A throw-away PostgreSQL for tests: initdb into a temporary folder, a free port on loopback only, a password.

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user (Debian's package makes it).
"""
from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
USER = "mnist"


def binary(name: str) -> str | None:
    for folder in BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def missing() -> str | None:
    """Why no PostgreSQL can be started here, or None."""
    if not binary("initdb") or not binary("pg_ctl"):
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.getuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user to run PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One cluster; database() makes a fresh, empty database in it and returns its URL."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="mnist-live-pg-"))
        self.data = self.folder / "data"
        self.password = secrets.token_urlsafe(16)
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as = []
        if os.getuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(binary("initdb"), "-D", str(self.data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        self.start()

    def _run(self, *args) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @contextmanager
    def down(self):
        """Stopped for the with block, and running again after it, also when the block fails (the session's other
        tests use this cluster)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database's URL."""
        import psycopg
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url().replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        try:
            return (self.folder / "log").read_text()
        except OSError:
            return ""

    def close(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
