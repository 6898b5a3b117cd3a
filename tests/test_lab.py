"""The Lab: trainings belong to workspaces; results land in the store whether or not anyone watches; one training
at a time per workspace; sweeps in turn; restarts mark trainings interrupted; workers die with their server."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sqlalchemy import text

from mnist_model.config import TrainConfig
from mnist_model.errors import WorkspaceBusy
from mnist_model.jobs import JobState
from mnist_model.lab import Lab
from mnist_model.store import Store, StoreFull

from conftest import ROOT

QUICK = TrainConfig(epochs=1, train_size=500)


@pytest.fixture(scope="module")
def executor():
    """The Lab's tests are about workspaces, not executors (those run the executor contract against both)."""
    from mnist_model.executors import LocalProcessExecutor
    ex = LocalProcessExecutor(1)
    yield ex
    ex.close()


@pytest.fixture
def lab(tmp_path, executor):
    return Lab(Store(tmp_path / "data"), executor)


def _wait_idle(ws, timeout=180):
    deadline = time.time() + timeout
    while ws.jobs() and time.time() < deadline:
        time.sleep(0.1)
    assert not ws.jobs(), [j.snapshot().message for j in ws.jobs()]


def _claim_after_idle(store, workspace_id: str, timeout: float = 30):
    """Who claims the workspace once its trainings have ended here (a training frees its claim just after it
    leaves the server's list of trainings)."""
    deadline = time.time() + timeout
    while store.claimed_by(workspace_id) is not None and time.time() < deadline:
        time.sleep(0.05)
    return store.claimed_by(workspace_id)


@pytest.mark.parametrize("setting, warmed", [(None, 1), ("1", 1), ("0", 0), ("off", 0)])
def test_a_server_warms_its_workers_at_start_unless_told_not_to(tmp_path, monkeypatch, setting, warmed):
    """On by default, so the day's first Train click starts at once; MNIST_LIVE_WARM_WORKERS=0 leaves the workers
    to the first training (the executor starts them then: tests/test_executor_slots.py submits before any warm)."""
    class Executor:
        warms = 0

        def warm(self):
            self.warms += 1
    if setting is None:
        monkeypatch.delenv("MNIST_LIVE_WARM_WORKERS", raising=False)
    else:
        monkeypatch.setenv("MNIST_LIVE_WARM_WORKERS", setting)
    executor = Executor()
    Lab(Store(tmp_path / "data"), executor).close()
    assert executor.warms == warmed


def test_a_finished_training_lands_in_its_workspace_with_nobody_watching(lab):
    ws = lab.new_workspace()
    job = ws.train(QUICK)
    assert job.label == "Run 1" and ws.jobs() == [job]
    del job  # the browser went away
    _wait_idle(ws)
    again = lab.workspace(ws.id)  # a reload: the same workspace by its id
    runs = again.runs()
    assert [r.name for r in runs] == ["Run 1"] and runs[0].status == "finished"
    assert again.model_run().run_id == runs[0].run_id
    assert runs[0].weights[0].shape == (784, 512) and runs[0].test_probs.shape == (1000, 10)
    assert lab.store.jobs(ws.id, ("queued", "running", "interrupted")) == []  # nothing left to interrupt


def test_one_training_at_a_time_per_workspace_but_others_may_queue(lab):
    ws, other = lab.new_workspace(), lab.new_workspace()
    long = ws.train(TrainConfig(epochs=50, batch_size=16))
    with pytest.raises(WorkspaceBusy, match="already have a training"):
        ws.train(QUICK)
    assert lab.store.next_run_number(ws.id) == 2  # the refused Train took no number: the next run is Run 2
    lab.store.give_back_run_number(ws.id, 2)
    deadline = time.time() + 60  # the slot takes it (a job submitted before that would queue behind it, 2nd)
    while long.state == JobState.QUEUED and time.time() < deadline:
        time.sleep(0.05)
    theirs = other.train(QUICK)  # another person may queue behind it
    assert theirs.snapshot().queue_position == 1 or theirs.state != JobState.QUEUED
    ws.stop()
    assert long.wait(30) and long.state == JobState.STOPPED
    _wait_idle(other)
    _wait_idle(ws)
    assert [r.status for r in ws.runs()] in (["stopped"], [])  # stopped (with weights) unless it had not started
    assert [r.name for r in other.runs()] == ["Run 1"]


def test_a_training_that_frees_its_claim_late_leaves_the_next_trainings_claim(lab, monkeypatch):
    """A student clicks Train again the moment a training ends, before its end has freed the workspace's claim in
    the store: the late free must not free the new training's claim (or a second device could start another)."""
    ws = lab.new_workspace()
    release, ending, go_on, freed = lab.store.release, threading.Event(), threading.Event(), threading.Event()

    def late_release(*args):
        if threading.current_thread() is not threading.main_thread() and not ending.is_set():
            ending.set()  # the first training's end, on its own thread, is about to free its claim...
            go_on.wait(60)
            release(*args)
            freed.set()
        else:
            release(*args)
    monkeypatch.setattr(lab.store, "release", late_release)
    ws.train(QUICK)
    assert ending.wait(180)
    second = ws.train(TrainConfig(epochs=50, batch_size=16))  # ...when the student starts the next
    go_on.set()
    assert freed.wait(30)
    assert ws.jobs() == [second] and lab.store.claimed_by(ws.id) == lab.server_id
    ws.stop()
    _wait_idle(ws)
    assert _claim_after_idle(lab.store, ws.id) is None


def test_a_sweep_runs_in_turn_keeps_the_chosen_model_and_stops_as_one(lab):
    ws = lab.new_workspace()
    ws.train(QUICK)
    _wait_idle(ws)
    chosen = ws.model_run().run_id
    configs = [TrainConfig(epochs=1, train_size=n) for n in (200, 300, 400)]
    jobs = ws.sweep(configs, ["Sweep 200", "Sweep 300", "Sweep 400"])
    assert [j.snapshot().queue_position for j in jobs[1:]] == [None, None]  # not in the server's queue yet
    _wait_idle(ws)
    assert [r.name for r in ws.runs()] == ["Run 1", "Sweep 200", "Sweep 300", "Sweep 400"]
    assert ws.model_run().run_id == chosen
    # Deleting the chosen model: Draw goes back to the latest run, and the store no longer names the deleted one
    ws.choose_model(ws.runs()[1].run_id)
    ws.delete_run(ws.runs()[1].run_id)
    assert ws.store.model_run_id(ws.id) is None and ws.model_run().name == "Sweep 400"
    ws.delete_run(ws.runs()[0].run_id)  # another run than the chosen one: the choice stays
    ws.choose_model(ws.runs()[0].run_id)
    ws.delete_run(ws.runs()[1].run_id)
    assert ws.model_run().name == "Sweep 300" == ws.run(ws.store.model_run_id(ws.id)).name
    jobs = ws.sweep(configs, ["Sweep A", "Sweep B", "Sweep C"])
    ws.stop()
    _wait_idle(ws, 30)
    assert all(j.state.done for j in jobs) and jobs[2].state == JobState.STOPPED and jobs[2].snapshot().result is None


def test_a_model_picked_while_a_training_runs_stays_in_use_when_it_ends(lab):
    """A training's run becomes the model in use when it ends, unless the student picked a model meanwhile: the
    pick was the later wish (walker seed 88: 'chose Run 2, but the workspace uses Run 3')."""
    ws = lab.new_workspace()
    for _ in range(2):
        ws.train(QUICK)
        _wait_idle(ws)
    first, second = ws.runs()
    assert ws.model_run().run_id == second.run_id
    ws.train(QUICK)
    ws.choose_model(first.run_id)  # while Run 3 trains
    _wait_idle(ws)
    assert [r.name for r in ws.runs()] == ["Run 1", "Run 2", "Run 3"] and ws.model_run().name == "Run 1"
    ws.train(QUICK)  # nothing picked while it trains: its run is the model in use
    _wait_idle(ws)
    assert ws.model_run().name == "Run 4"


def test_a_store_that_cannot_save_keeps_the_run_in_memory_and_says_why(lab, monkeypatch):
    ws = lab.new_workspace()

    def full(*args, **kwargs):
        raise StoreFull("Could not save Run 1: the server's disk is full.")
    monkeypatch.setattr(lab.store, "add_run", full)
    ws.train(QUICK)
    _wait_idle(ws)
    assert [r.name for r in ws.runs()] == ["Run 1"] and ws.runs()[0].weights[0].shape == (784, 512)
    notes = ws.notices()
    assert len(notes) == 1 and "disk is full" in notes[0] and "download" in notes[0]


def test_a_run_that_ends_while_the_database_is_away_is_saved_and_posted_when_it_is_back(lab, monkeypatch):
    """PostgreSQL restarting as a training ends: the run waits in the server's memory (on the student's pages
    meanwhile), then lands in the store, becomes the model and reaches the class board by itself."""
    from mnist_model.store import StoreUnreachable
    monkeypatch.setattr("mnist_model.lab.SAVE_RETRY_S", 0.2)
    teacher, ws = lab.new_workspace(), lab.new_workspace()
    taught = lab.classroom.start_class(teacher.id)
    lab.classroom.join(ws.id, taught.code, "Ada", "s")
    away = threading.Event()
    away.set()
    for name in ("add_run", "transaction"):
        real = getattr(lab.store, name)

        def failing(*args, _real=real, **kwargs):
            if away.is_set() and threading.current_thread() is not threading.main_thread():
                raise StoreUnreachable("Could not save: the database server does not answer.")
            return _real(*args, **kwargs)
        monkeypatch.setattr(lab.store, name, failing)
    ws.train(QUICK)
    _wait_idle(ws)
    assert [r.name for r in ws.runs()] == ["Run 1"] and lab.store.runs(ws.id) == []  # in memory only
    assert lab.classroom.board(taught.id) == []
    away.clear()  # the database is back
    deadline = time.time() + 30
    while (not lab.classroom.board(taught.id) or lab.unsaved_runs(ws.id)) and time.time() < deadline:
        time.sleep(0.05)
    [run] = lab.store.runs(ws.id)
    assert run.name == "Run 1" and lab.unsaved_runs(ws.id) == [] and ws.model_run().run_id == run.run_id
    assert [e.nickname for e in lab.classroom.board(taught.id)] == ["Ada"]
    assert any("Run 1 is saved now" in text for text in ws.notices())
    assert _claim_after_idle(lab.store, ws.id) is None  # its claim, which could not be freed then, is free now
    assert lab.store.jobs(ws.id, ("queued", "running", "interrupted")) == []  # nobody is told it still runs


def test_after_a_restart_interrupted_trainings_can_train_again(tmp_path, executor):
    store = Store(tmp_path / "data")
    ws_id = store.create_workspace()
    store.record_job(ws_id, "abc", "Run 4", "train", TrainConfig(epochs=1, train_size=300, batch_size=64))
    store.set_job_state("abc", "running")
    lab = Lab(Store(tmp_path / "data"), executor)  # the restarted server
    assert lab.interrupted_at_start == 1
    ws = lab.workspace(ws_id)
    [record] = ws.interrupted()
    assert record.label == "Run 4" and "while it was training" in record.message
    job = ws.train_again("abc")
    assert job.label == "Run 4" and ws.interrupted() == []
    _wait_idle(ws)
    [run] = ws.runs()
    assert run.name == "Run 4" and run.config.batch_size == 64 and run.config.train_size == 300


def test_drawings_are_kept_and_fine_tuning_links_its_base(lab):
    ws = lab.new_workspace()
    ws.train(QUICK)
    _wait_idle(ws)
    base = ws.model_run()
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    ws.keep_drawings(images, [1, 2, 3, 4, 5])
    ids, back, labels = lab.workspace(ws.id).drawings()
    assert len(ids) == 5 and list(labels) == [1, 2, 3, 4, 5] and np.abs(back - images).max() < 1 / 255
    from mnist_model.handwriting import fine_tune_task
    ws.start(fine_tune_task(base, back, labels), label="Run 1 + my drawings", kind="fine-tune",
             base_run_id=base.run_id)
    _wait_idle(ws)
    tuned = ws.model_run()
    assert tuned.name == "Run 1 + my drawings" and tuned.base_run_id == base.run_id


_SERVER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from mnist_model.config import TrainConfig
from mnist_model.executors import LocalProcessExecutor
from mnist_model.jobs import TrainingJob, TrainTask
ex = LocalProcessExecutor(1)
job = TrainingJob(TrainTask(TrainConfig(epochs=50, batch_size=16)), executor=ex).start()
while not job.snapshot().batch:
    time.sleep(0.05)
print(ex._slots[0]._process.pid, flush=True)
time.sleep(600)
"""


def test_workers_exit_within_seconds_when_their_server_dies():
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(ROOT)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        worker = int(server.stdout.readline())
        os.kill(server.pid, signal.SIGKILL)  # kill -9: no clean-up code runs
        server.wait(10)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 10:
            if not _alive(worker):
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the worker kept training for nobody")
        print(f"worker gone {time.perf_counter() - t0:.2f} s after its server")
        log = server.stderr.read()  # the server's log, which the worker shares: no traceback from its exit
        assert "Traceback" not in log and "BrokenPipeError" not in log, log[-2000:]
    finally:
        server.kill()


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie that nobody has reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


def test_two_servers_on_one_database_one_training_per_workspace_and_a_dead_servers_are_interrupted(
        tmp_path, executor, postgres, monkeypatch):
    """Two app servers share a PostgreSQL database: a workspace trains on one of them at a time, and when a server
    dies, another marks its trainings interrupted (Train again) and frees its workspaces."""
    url = postgres.database()
    a, b = (Lab(Store(tmp_path / name, url=url), executor) for name in ("a", "b"))
    try:
        on_a = a.new_workspace()
        on_b = b.workspace(on_a.id)  # the same person, a second device that nginx sent to the other server
        on_a.train(TrainConfig(epochs=50, batch_size=16))
        with pytest.raises(WorkspaceBusy, match="another tab or on another device"):
            on_b.train(QUICK)
        assert a.store.claimed_by(on_a.id) == a.server_id
        a._closed.set()  # server A dies (kill -9): its heartbeat stops, nothing else is said
        with b.store.transaction("test") as db:  # ...and a minute passes
            db.execute(text("UPDATE servers SET seen_at = seen_at - 120 WHERE id = :id"), {"id": a.server_id})
            # it said its training ran where it outlives it (a Ray actor), but nothing runs there any more
            db.execute(text("UPDATE jobs SET runs_at = 'mnist-live-gone' WHERE server = :id"), {"id": a.server_id})
        monkeypatch.setattr("mnist_model.lab.SILENT_S", 60)
        assert b._take_over_dead_servers() == 1 and b.jobs(on_a.id) == []  # tried to take it over: not there
        assert b.store.dead_servers(60) == []
        [record] = on_b.interrupted()
        assert "while it was training" in record.message and b.store.claimed_by(on_a.id) is None
        job = on_b.train_again(record.job_id)  # the workspace is free on B now
        assert job.label == "Run 1"
        on_b.stop()
        _wait_idle(on_b)
        assert _claim_after_idle(b.store, on_a.id) is None
    finally:
        a.stop(on_a.id)
        _wait_idle(on_a)
        a.close()
        b.close()
