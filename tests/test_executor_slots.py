"""The executor contract by slot count: each executor with 1, 2 and 4 slots, in a fresh process, with jobs submitted
before anything warmed or connected (as a server's first page view does): every job finishes, a queued job's Stop
cancels it, a running job's Stop keeps its model, and a slot whose worker or actor is killed fails only its job."""
import json
import os
import subprocess
import sys

import pytest

from conftest import EXECUTORS, ROOT

_DRIVER = r"""
import json, os, signal, sys, time
sys.path.insert(0, sys.argv[3])
from mnist_model.config import TrainConfig
from mnist_model.executors import make_executor
from mnist_model.jobs import JobState, TrainingJob, TrainTask

kind, slots = sys.argv[1], int(sys.argv[2])
ex = make_executor(kind, slots=slots)
tiny = lambda i: TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=200, batch_size=64, hidden_units=32)),
                             executor=ex, label=f"tiny {i}")
jobs = [tiny(i).start() for i in range(slots + 1)]  # more than the slots, before any slot warmed
extra = tiny("queued").start()
extra.stop()  # still waiting: cancelled at once, never run
for job in jobs:
    job.wait(600)
out = {"tiny": [j.snapshot().state.value for j in jobs], "tiny_messages": [j.snapshot().message for j in jobs],
       "queued_stop": extra.snapshot().state.value, "queued_result": extra.snapshot().result is not None}
if out["tiny"] != ["finished"] * len(jobs):
    print("RESULT " + json.dumps(out), flush=True)
    sys.exit(0)
long = [TrainingJob(TrainTask(TrainConfig(epochs=50, batch_size=16)), executor=ex, label=f"long {i}").start()
        for i in range(slots)]
deadline = time.time() + 300
while not all(j.snapshot().batch or j.state.done for j in long) and time.time() < deadline:
    time.sleep(0.05)
t0 = time.time()
long[0].stop()
long[0].wait(60)
out["stop_s"] = time.time() - t0
out["stopped"] = long[0].snapshot().state.value
out["stopped_has_model"] = long[0].snapshot().result is not None
if slots > 1:  # kill the worker (or actor) of the second long job: only that job fails
    slot = next(s for s in ex._slots if s.job is long[1])
    if hasattr(slot, "_process"):
        os.kill(slot._process.pid, signal.SIGKILL)
    else:
        import ray
        ray.kill(slot._actor, no_restart=True)
    long[1].wait(120)
    out["killed"] = long[1].snapshot().state.value
for j in long[1:]:
    j.stop()
    j.wait(60)
after = [tiny(f"after {i}").start() for i in range(slots)]
for j in after:
    j.wait(600)
out["after"] = [j.snapshot().state.value for j in after]
ex.close()
print("RESULT " + json.dumps(out), flush=True)
"""


@pytest.mark.parametrize("kind", EXECUTORS)
@pytest.mark.parametrize("slots", [1, 2, 4])
def test_every_slot_count_runs_stops_and_survives_a_killed_worker(kind, slots):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _DRIVER, kind, str(slots), str(ROOT)], capture_output=True, text=True,
                          timeout=900, env=env, cwd=str(ROOT))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    out = json.loads(line[len("RESULT "):])
    assert out["tiny"] == ["finished"] * (slots + 1), out["tiny_messages"]
    assert out["queued_stop"] == "stopped" and not out["queued_result"]
    assert out["stopped"] == "stopped" and out["stopped_has_model"]
    if slots > 1:
        assert out["killed"] == "failed"
    assert out["after"] == ["finished"] * slots
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
