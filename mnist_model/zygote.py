"""The zygote: one process per server that imports TensorFlow once and forks a training worker on request.

A forked worker is ready in a fraction of a second instead of ~5 s of CPU: every slot after the first, and every
worker that replaces one that died, starts at once and shares the zygote's memory. The zygote only imports and
loads data; it never runs TensorFlow, so forking it is safe.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

ZYGOTE_START_TIMEOUT_S = 180  # importing TensorFlow in a fresh process takes ~5 s, more on a busy machine
FORK_TIMEOUT_S = 30  # a fork answers in milliseconds; longer means the zygote hangs
PARENT_CHECK_S = 0.1  # how often the zygote checks that its server is still there
MAX_REQUEST_BYTES = 1 << 20  # one request: the server's environment and folder, as JSON
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # so the zygote imports this very package


class ForkedWorker:
    """A worker the zygote forked, with Popen's pid, poll(), kill() and wait() (it is not this process's child,
    so it is watched through a pidfd, which no later process can reuse)."""

    def __init__(self, pid: int):
        self.pid = pid
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:  # it died before we looked
            self._fd = None

    def poll(self) -> int | None:
        """None while it runs; -1 once it has ended (its exit status belongs to the zygote)."""
        if self._fd is not None and not select.select([self._fd], [], [], 0)[0]:
            return None
        self._release()
        return -1

    def kill(self) -> None:
        if self._fd is not None:
            try:
                signal.pidfd_send_signal(self._fd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        if self._fd is not None and not select.select([self._fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
        self._release()
        return -1

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self._release()


class Zygote:
    """This server's handle on its zygote process: started at the first fork, started again if it died."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._socket: socket.socket | None = None

    def fork_worker(self, child_fds: tuple[int, int, int]) -> ForkedWorker:
        """A new worker process serving these pipe ends (tasks, messages, control); raises RuntimeError if the
        zygote cannot start or answer twice in a row."""
        request = json.dumps({"env": _worker_env(), "cwd": os.getcwd()}).encode()
        with self._lock:
            for attempt in (1, 2):  # a zygote that died since its last fork is replaced once
                try:
                    self._ensure()
                    socket.send_fds(self._socket, [request], list(child_fds))
                    if not select.select([self._socket], [], [], FORK_TIMEOUT_S)[0]:
                        raise TimeoutError("the zygote did not answer")
                    return ForkedWorker(int(self._socket.recv(64)))
                except (OSError, ValueError) as exc:
                    self._close()
                    if attempt == 2:
                        raise RuntimeError(f"the training process did not start: {exc}") from exc

    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _ensure(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # one request per message
        try:
            # A plain subprocess, not multiprocessing: that would re-run Streamlit's page script as __main__.
            self._process = subprocess.Popen([sys.executable, "-m", "mnist_model.zygote", str(theirs.fileno())],
                                             pass_fds=[theirs.fileno()], env=_worker_env(), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._socket = ours
        if not select.select([ours], [], [], ZYGOTE_START_TIMEOUT_S)[0] or ours.recv(64) != b"ready":
            raise OSError("the zygote did not start")

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()  # the zygote reads the end of its request stream and exits
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)
        self._process = self._socket = None


def _worker_env() -> dict:
    """The environment a worker runs in: this server's, with this package importable."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))


_zygote = Zygote()


def shared_zygote() -> Zygote:
    """This server's one zygote (every local executor forks from it)."""
    return _zygote


def zygote_main(requests: socket.socket) -> None:
    """Import Keras and the warm dataset (if it is local), then fork one worker per request until the server goes."""
    started_env = dict(os.environ)  # before Keras sets its defaults in it
    from . import worker
    if hasattr(os, "nice"):
        os.nice(worker.WORKER_NICENESS)  # its workers inherit it
    from . import network  # noqa: F401  (the slow import, paid once)
    worker.warm_dataset()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the workers; each has its own pidfd watcher
    try:
        requests.send(b"ready")
    except OSError:  # the server went while this process was importing (a restart right after a first page view)
        os._exit(0)
    parent = os.getppid()
    while True:
        if not select.select([requests], [], [], PARENT_CHECK_S)[0]:
            if os.getppid() != parent:
                os._exit(0)
            continue
        try:
            message, fds, _, _ = socket.recv_fds(requests, MAX_REQUEST_BYTES, 3)
        except OSError:
            os._exit(0)
        if not message:  # the server closed its end (or died)
            os._exit(0)
        sys.stdout.flush()
        sys.stderr.flush()
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:
            _worker_child(requests, json.loads(message), fds, started_env, zygote)
        for fd in fds:
            os.close(fd)
        try:
            requests.send(str(pid).encode())
        except OSError:
            os._exit(0)


def _worker_child(requests: socket.socket, request: dict, fds: list[int], started_env: dict, zygote: int) -> None:
    """In the forked child: become a worker with the server's environment of now; never returns."""
    from . import worker
    status = 0
    try:
        requests.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if request["env"] != started_env:  # the server's environment changed since the zygote started (tests do)
            worker.forget_datasets()
            os.environ.clear()
            os.environ.update(request["env"])
        os.chdir(request["cwd"])
        worker.exit_with_parent(zygote)  # the zygote ends within PARENT_CHECK_S of its server
        worker.serve(Connection(fds[0], writable=False), Connection(fds[1], readable=False),
                     Connection(fds[2], writable=False))
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # never unwind into the zygote's loop, never run its exit handlers


if __name__ == "__main__":  # python -m mnist_model.zygote SOCKET_FD
    zygote_main(socket.socket(fileno=int(sys.argv[1])))
