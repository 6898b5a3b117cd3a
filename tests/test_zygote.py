"""The zygote forks every local training worker: TensorFlow is imported once per server, a lost worker is
replaced by a fork, a lost zygote by a new one, and a worker runs in its server's environment of the moment."""
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_idx
from mnist_model import zygote
from mnist_model.config import TrainConfig
from mnist_model.data import load_dataset
from mnist_model.executors import LocalProcessExecutor
from mnist_model.jobs import TrainingJob, TrainTask


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _gone(pid: int, within_s: float = 10) -> bool:
    """True once pid has ended (a zombie counts as ended)."""
    deadline = time.time() + within_s
    while time.time() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def _train(executor, **settings) -> TrainingJob:
    job = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500, **settings)), executor=executor).start()
    job.wait(300)
    return job


def test_the_workers_are_forks_of_one_zygote_and_a_killed_one_is_forked_again():
    executor = LocalProcessExecutor(2)
    try:
        for slot in executor._slots:
            slot.warm()
        parent = zygote.shared_zygote().pid()
        workers = [slot._process.pid for slot in executor._slots]
        assert parent and len(set(workers)) == 2 and all(_parent(pid) == parent for pid in workers)
        assert "tensorflow" in Path(f"/proc/{parent}/maps").read_text()

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.time() + 10
        while executor._slots[0].alive() and time.time() < deadline:  # all its threads have ended
            time.sleep(0.05)
        assert not executor._slots[0].alive()
        executor._slots[0].ensure_worker()
        replacement = executor._slots[0]._process.pid
        assert replacement not in workers and _parent(replacement) == parent == zygote.shared_zygote().pid()

        jobs = [TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500)), executor=executor).start()
                for _ in range(2)]  # one on each slot: the fork and the first worker train alike
        for job in jobs:
            job.wait(300)
        assert [job.state.value for job in jobs] == ["finished", "finished"]
        first, second = (job.snapshot().epochs[-1] for job in jobs)
        assert first.test_accuracy == second.test_accuracy and first.loss == pytest.approx(second.loss, rel=1e-6)
    finally:
        executor.close()


def test_a_killed_zygote_takes_its_idle_workers_and_the_next_training_starts_a_new_one():
    executor = LocalProcessExecutor(1)
    try:
        executor._slots[0].warm()
        old_zygote, old_worker = zygote.shared_zygote().pid(), executor._slots[0]._process.pid
        os.kill(old_zygote, signal.SIGKILL)
        assert _gone(old_zygote) and _gone(old_worker), "a worker outlived its zygote"
        job = _train(executor)
        assert job.state.value == "finished", job.snapshot().message
        new_zygote = zygote.shared_zygote().pid()
        assert new_zygote not in (None, old_zygote) and _parent(executor._slots[0]._process.pid) == new_zygote
    finally:
        executor.close()


def test_a_worker_forked_after_the_environment_changed_reads_the_new_one(tmp_path, monkeypatch, sample):
    executor = LocalProcessExecutor(1)
    try:
        executor._slots[0].warm()  # the zygote has loaded the usual dataset already
        executor._slots[0].kill()
        for key, name in (("x_train", "train-images-idx3-ubyte"), ("y_train", "train-labels-idx1-ubyte"),
                          ("x_test", "t10k-images-idx3-ubyte"), ("y_test", "t10k-labels-idx1-ubyte")):
            write_idx(tmp_path / name, getattr(sample, key)[:300])
        monkeypatch.setenv("MNIST_PATH", str(tmp_path))
        job = _train(executor)
        assert job.state.value == "finished", job.snapshot().message
        run = job.snapshot().result
        assert run.dataset == load_dataset("mnist").title != sample.title  # the folder this process reads now
        assert run.test_probs.shape == (300, 10)  # this folder's 300 test digits, not the sample's
        assert np.isclose(run.test_probs.sum(axis=1), 1, atol=1e-3).all()
    finally:
        executor.close()


def test_a_zygote_whose_server_went_while_it_started_ends_quietly():
    """A server killed during its zygote's start (a restart right after the first page view): the zygote's
    "ready" finds nobody, and it ends without a traceback in the server's log (the walker's seed 52)."""
    import socket
    import subprocess
    import sys
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-m", "mnist_model.zygote", str(theirs.fileno())],
                            pass_fds=[theirs.fileno()], env=zygote._worker_env(), stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    theirs.close()
    ours.close()  # the server's end is gone before the zygote says ready
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
