"""A district on one machine, for tests: app servers sharing one PostgreSQL database, behind nginx configured by
deploy/nginx.conf (its upstream and port replaced). Browsers go through nginx; server_cookie() finds the sticky
cookie value that lands on a given server."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import appserver

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def missing() -> str | None:
    return None if os.path.exists(NGINX) else "nginx is not installed (apt-get install nginx)"


class Deployment:
    """servers app servers on database_url, and nginx in front; url is nginx's."""

    def __init__(self, database_url: str, servers: int = 2, pins: list[str] | None = None, **env):
        """pins: the CPU list each server runs on (taskset), for load measurements."""
        self.pins = pins or [None] * servers
        self.folder = Path(tempfile.mkdtemp(prefix="mnist-live-district-"))
        self.env = dict(env, MNIST_LIVE_DATABASE_URL=database_url,
                        STREAMLIT_SERVER_COOKIE_SECRET=secrets.token_hex(16))  # the same on every server
        self.procs, self.urls, self.logs = [], [], []
        for i in range(servers):
            self._start_server(i)
        for url in self.urls:
            appserver.wait_ready(url)
        self.port = appserver.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._start_nginx()

    def _start_server(self, i: int) -> None:
        log = self.folder / f"server{i}.log"
        data = self.folder / f"data{i}"
        data.mkdir(exist_ok=True)
        proc, url = appserver.start(log, pin=self.pins[i], MNIST_LIVE_DATA=str(data), **self.env)
        if i < len(self.procs):
            self.procs[i], self.urls[i] = proc, url
        else:
            self.procs.append(proc), self.urls.append(url), self.logs.append(log)

    def _start_nginx(self) -> None:
        conf = (ROOT / "deploy" / "nginx.conf").read_text()
        upstream = "\n".join(f"        server {u.split('//')[1]} max_fails=1 fail_timeout=10s;" for u in self.urls)
        conf = re.sub(r"(?m)^\s*server 127\.0\.0\.1:85\d\d.*\n", "", conf)
        conf = conf.replace("hash $mnist_live_sticky consistent;  # the same cookie, the same server (while it is up)",
                            "hash $mnist_live_sticky consistent;\n" + upstream)
        conf = conf.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        conf = conf.replace("worker_processes auto;", "worker_processes 1;")
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            conf = conf.replace("http {\n", f"http {{\n    {name}_temp_path {self.folder}/{name};\n", 1)
        conf = (f"pid {self.folder}/nginx.pid;\nerror_log {self.folder}/nginx-error.log;\n"
                + ("user root;\n" if os.getuid() == 0 else "") + conf)
        conf = conf.replace("http {\n", f"http {{\n    access_log {self.folder}/nginx-access.log;\n", 1)
        (self.folder / "nginx.conf").write_text(conf)
        self.nginx = subprocess.Popen([NGINX, "-c", str(self.folder / "nginx.conf"), "-p", str(self.folder),
                                       "-g", "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        appserver.wait_ready(self.url)

    def server_of(self, cookie: str) -> int:
        """Which server (index) nginx sends a browser with this sticky cookie to."""
        request = urllib.request.Request(f"{self.url}/_stcore/health", headers={"Cookie": f"mnist_live_server={cookie}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            upstream = answer.headers["X-MNIST-Live-Server"]
        return [u.split("//")[1] for u in self.urls].index(upstream)

    def server_cookie(self, index: int) -> str:
        """A sticky cookie value that lands on server index."""
        for n in range(1000):
            if self.server_of(f"browser-{n}") == index:
                return f"browser-{n}"
        raise AssertionError(f"no cookie lands on server {index}")

    def kill(self, index: int) -> None:
        """kill -9 one app server."""
        self.procs[index].kill()
        self.procs[index].wait(15)

    def log(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")

    def close(self) -> None:
        self.nginx.terminate()
        self.nginx.wait(15)
        for proc in self.procs:
            if proc.poll() is None:
                appserver.stop(proc)
        shutil.rmtree(self.folder, ignore_errors=True)
