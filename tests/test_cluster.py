"""A real two-node Ray cluster on this machine (`ray start --head` and `ray start --address`, token authentication
on, loopback addresses only): a 2-slot RayExecutor trains 4 jobs, both nodes train, the queue keeps its order;
then the worker node is killed mid-training: its job fails with a readable message, the next job trains on the
node that is left, and every process of the cluster is gone afterwards."""
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


def test_two_nodes_train_four_jobs_in_order():
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 107 characters
    port, dashboard = free_port(), free_port()
    head_ip, worker_ip = "127.0.0.2", "127.0.0.3"  # loopback addresses that Ray does not swap for the network's
    address = f"{head_ip}:{port}"
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), MNIST_OFFLINE="1",
               RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # a local Ray's loopback-only switch: not for a cluster
    env.pop("RAY_ADDRESS", None)
    marks = [temp, address]
    driver = None
    try:
        head = subprocess.run([RAY, "start", "--head", f"--node-ip-address={head_ip}", f"--port={port}", "--num-cpus=2",
                               f"--temp-dir={temp}", "--include-dashboard=false", f"--dashboard-port={dashboard}",
                               "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=180)
        assert head.returncode == 0, head.stderr[-2000:]
        node = subprocess.run([RAY, "start", f"--address={address}", f"--node-ip-address={worker_ip}", "--num-cpus=1",
                               "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=180)
        assert node.returncode == 0, node.stderr[-2000:]
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
        assert "Traceback" not in loss["lost_message"] and loss["lost_after_s"] < 90  # the server never hangs
        assert loss["after"] == "finished", loss["after_message"]  # the remaining node takes the next job
        assert driver.wait(60) == 0
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
        _tear_down(marks)
        shutil.rmtree(temp, ignore_errors=True)
    assert _processes_of(marks) == []
