"""A real Ray cluster on this machine (`ray start --head` and `ray start --address`, token authentication on,
loopback addresses only): a 2-slot RayExecutor trains 4 jobs, both nodes train, the queue keeps its order; then
the worker node is killed mid-training: its job fails with a readable message, the next job trains on the node
that is left, and every process of the cluster is gone afterwards. And two app servers on one database submit to
one cluster: when one dies (kill -9) mid-training, the other takes its training over and keeps its run."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appserver import free_port
from conftest import ROOT

pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))

_DRIVER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
from mnist_model.config import TrainConfig
from mnist_model.executors import RayExecutor
from mnist_model.jobs import TrainingJob, TrainTask
ex = RayExecutor(slots=2, address=sys.argv[1])
for slot in ex._slots:
    slot.warm()
started, ended, node_of = [], [], {}
def on_start(job):
    started.append(job.label)
    node_of[job.label] = next(s.node for s in ex._slots if s.job is job)
jobs = [TrainingJob(TrainTask(TrainConfig(epochs=2, train_size=1000)), executor=ex, label=f"job {i}") for i in range(4)]
for job in jobs:
    job.add_callback("start", on_start)
    job.add_callback("end", lambda job: ended.append(job.label))
    job.start()
while sum(j.state.value != "queued" for j in jobs[:2]) < 2:
    time.sleep(0.01)
positions = [job.snapshot().queue_position for job in jobs]
for job in jobs:
    job.wait(600)
print(json.dumps({"states": [j.state.value for j in jobs], "started": started, "ended": ended, "positions": positions,
                  "nodes": sorted(set(node_of.values())), "slot_nodes": sorted(ex.nodes_used()),
                  "messages": [j.snapshot().message for j in jobs]}), flush=True)
# A worker machine disappears mid-lesson: both slots train, the test kills the node at 127.0.0.3.
import ray
long = [TrainingJob(TrainTask(TrainConfig(epochs=50, batch_size=16)), executor=ex, label=f"long {i}").start()
        for i in range(2)]
while not all(j.snapshot().batch for j in long):
    time.sleep(0.05)
print("kill", flush=True)
sys.stdin.readline()
t0 = time.time()
while not any(j.state.done for j in long) and time.time() - t0 < 120:
    time.sleep(0.1)
lost = next((j for j in long if j.state.done), None)
lost_after = time.time() - t0
for j in long:
    j.stop()
    j.wait(60)
after = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500)), executor=ex, label="after").start()
after.wait(400)
print(json.dumps({"lost_state": lost.state.value if lost else None, "lost_message": lost.snapshot().message if lost
                  else None, "lost_after_s": lost_after, "others": [j.state.value for j in long if j is not lost],
                  "after": after.state.value, "after_message": after.snapshot().message}), flush=True)
"""


def _processes_of(marks: list[str]) -> list[int]:
    """Processes whose command line names one of marks (the cluster's temp dir or GCS address) and their children."""
    parents, found = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if any(mark in cmdline for mark in marks):
            found.add(int(entry.name))
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found - {os.getpid()})


def _line(process, timeout: float = 600) -> str:
    """The next line the driver prints (it prints only JSON and "kill")."""
    import select
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the driver said nothing"
    return process.stdout.readline().strip()


def _tear_down(marks: list[str]) -> None:
    pids = _processes_of(marks)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(3 if sig == signal.SIGTERM else 0.5)


_APP_SERVER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from mnist_model.config import TrainConfig
from mnist_model.executors import RayExecutor
from mnist_model.lab import Lab
from mnist_model.store import Store
def say(**what):
    print(json.dumps(what), flush=True)
lab = Lab(Store(sys.argv[4], url=sys.argv[2]), RayExecutor(slots=2 if sys.argv[5] == "A" else 1,
                                                           address=sys.argv[1]))
if sys.argv[5] == "A":  # a student's long training, then this server dies (the test kills it)
    ws = lab.new_workspace()
    job = ws.train(TrainConfig(epochs=50, batch_size=16, hidden_units=1024, hidden_layers=2))  # a minute or more
    while len(job.snapshot().epochs) < 1 or job.where is None:
        time.sleep(0.05)
    say(workspace=ws.id, job=job.id, where=job.where)
    time.sleep(600)
else:  # B: trains a student of its own on the same cluster, then finds A's training and keeps it
    mine = lab.new_workspace()
    mine.train(TrainConfig(epochs=1, train_size=500)).wait(600)
    say(own=[r.status for r in mine.runs()])
    theirs = lab.workspace(sys.stdin.readline().strip())  # A has been killed
    t0 = time.time()
    while not theirs.jobs() and time.time() - t0 < 120:
        time.sleep(0.1)
    [job] = theirs.jobs()
    while not job.snapshot().epochs and time.time() - t0 < 120:  # A's epochs reach the job as its first report
        time.sleep(0.1)  # (listed before the cluster is asked for them: under load that took a while)
    adopted_at = len(job.snapshot().epochs)
    while len(job.snapshot().epochs) <= adopted_at and time.time() - t0 < 300:
        time.sleep(0.1)
    went_on = len(job.snapshot().epochs) > adopted_at
    theirs.stop()  # the student, now on B, clicks Stop
    job.wait(120)
    while theirs.jobs():
        time.sleep(0.05)
    while lab.store.claimed_by(theirs.id) and time.time() - t0 < 330:  # freed just after the job left the list
        time.sleep(0.05)
    import ray
    orphans = lambda: [a for a in ray.util.list_named_actors(all_namespaces=True) if lab.executor.id not in str(a)]
    while orphans() and time.time() - t0 < 300:  # A's idle actor, which nobody calls any more
        time.sleep(0.5)
    runs = theirs.runs()
    say(job=job.id, adopted_after_s=round(time.time() - t0, 1), adopted_at=adopted_at, went_on=went_on,
        runs=[(r.name, r.status, len(r.epochs), [e.epoch for e in r.epochs]) for r in runs], model=theirs.model_run().run_id == runs[0].run_id,
        left=[(r.state, r.message) for r in lab.store.jobs(theirs.id, ("queued", "running", "interrupted"))],
        claimed=lab.store.claimed_by(theirs.id), orphans=orphans())
"""


def _start_cluster(temp: str, worker: bool, cpus: int = 2):
    """`ray start --head` (and a worker node) with token authentication; returns (address, env, marks)."""
    port, dashboard = free_port(), free_port()
    head_ip, worker_ip = "127.0.0.2", "127.0.0.3"  # loopback addresses that Ray does not swap for the network's
    address = f"{head_ip}:{port}"
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), MNIST_OFFLINE="1",
               RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # a local Ray's loopback-only switch: not for a cluster
    env.pop("RAY_ADDRESS", None)
    head = subprocess.run([RAY, "start", "--head", f"--node-ip-address={head_ip}", f"--port={port}", f"--num-cpus={cpus}",
                           f"--temp-dir={temp}", "--include-dashboard=false", f"--dashboard-port={dashboard}",
                           "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=180)
    assert head.returncode == 0, head.stderr[-2000:]
    if worker:
        node = subprocess.run([RAY, "start", f"--address={address}", f"--node-ip-address={worker_ip}",
                               "--num-cpus=1", "--disable-usage-stats"], env=env, capture_output=True, text=True,
                              timeout=180)
        assert node.returncode == 0, node.stderr[-2000:]
    return address, env


def test_a_training_on_the_cluster_outlives_its_app_server(tmp_path, postgres):
    """Server A dies (kill -9) while a student trains on the cluster; server B, on the same database and cluster,
    takes the training over: it goes on, the student stops it from B, and the run lands in her workspace."""
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    marks = [temp]
    servers = []
    try:
        address, env = _start_cluster(temp, worker=False, cpus=3)  # A's two slots and B's one
        marks.append(address)
        url = postgres.database()
        env.update(MNIST_LIVE_SERVER_SILENT_S="4", MNIST_LIVE_RAY_ORPHAN_S="6")
        for name in ("A", "B"):
            servers.append(subprocess.Popen([sys.executable, "-c", _APP_SERVER, address, url, str(ROOT),
                                             str(tmp_path / name), name], env=env, text=True, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=open(tmp_path / f"{name}.log", "w")))
        a, b = servers
        started = json.loads(_line(a))
        assert started["where"].startswith("mnist-live-")
        assert json.loads(_line(b))["own"] == ["finished"]  # both servers train on the one cluster
        a.kill()  # kill -9: nothing of A's runs any more
        a.wait(30)
        b.stdin.write(started["workspace"] + "\n")
        b.stdin.flush()
        kept = json.loads(_line(b))
        print("taken over:", kept)
        assert kept["job"] == started["job"] and kept["went_on"], kept  # the same training, and it went on
        [(name, status, epochs, numbers)] = kept["runs"]
        assert (name, status) == ("Run 1", "stopped") and epochs > kept["adopted_at"] >= 1 and kept["model"]
        assert numbers == list(range(1, epochs + 1))  # every epoch, A's and B's, none lost at the takeover
        assert kept["left"] == [] and kept["claimed"] is None  # nothing left running, the workspace is free
        assert kept["orphans"] == []  # A's actors are gone: the adopted one, and its idle one by itself
        assert b.wait(60) == 0
        for name in ("A", "B"):
            log = (tmp_path / f"{name}.log").read_text()
            assert "Traceback" not in log and postgres.password not in log, log[-3000:]
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
        _tear_down(marks)
        shutil.rmtree(temp, ignore_errors=True)
    assert _processes_of(marks) == []


def test_two_nodes_train_four_jobs_in_order():
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 107 characters
    worker_ip = "127.0.0.3"
    marks = [temp]
    driver = None
    try:
        address, env = _start_cluster(temp, worker=True)
        marks.append(address)
        stranger = subprocess.run([sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1])", address],
                                  env={k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"},
                                  capture_output=True, text=True, timeout=120)
        assert stranger.returncode != 0  # without the token the cluster lets nobody in
        driver = subprocess.Popen([sys.executable, "-c", _DRIVER, address, str(ROOT)], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(Path(temp) / "driver.log", "w"))
        result = json.loads(_line(driver))
        assert result["states"] == ["finished"] * 4, result["messages"]
        assert len(result["slot_nodes"]) == 2 and len(result["nodes"]) == 2  # both nodes trained
        assert result["positions"][2:] == [1, 2]  # two run at once, the others wait in order
        assert set(result["started"][:2]) == {"job 0", "job 1"} and result["started"][2:] == ["job 2", "job 3"]
        print("started:", result["started"], "ended:", result["ended"])
        assert _line(driver) == "kill"
        _tear_down([f"--node_ip_address={worker_ip}", f"--node-ip-address={worker_ip}"])  # its machine is gone
        driver.stdin.write("killed\n")
        driver.stdin.flush()
        loss = json.loads(_line(driver))
        print("a node lost mid-training:", loss)
        assert loss["lost_state"] == "failed", loss
        assert "training actor died" in loss["lost_message"] or "stopped answering" in loss["lost_message"]
        assert "Traceback" not in loss["lost_message"]  # failed, not hung: the driver waits at most 120 s for it
        assert loss["after"] == "finished", loss["after_message"]  # the remaining node takes the next job
        assert driver.wait(60) == 0
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
        _tear_down(marks)
        shutil.rmtree(temp, ignore_errors=True)
    assert _processes_of(marks) == []
