"""Faults and fuzzing: hanging downloads, crashed saves, damaged runs, abandoned jobs, random input."""
import io
import os
import socket
import struct
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_model import data, runs
from mnist_model.config import TrainConfig, from_query
from mnist_model.errors import MnistLiveError, ModelFileError
from mnist_model.jobs import JobState, TrainingJob, TrainTask
from mnist_model.preprocess import canvas_to_mnist, decode_upload

from conftest import kill_worker

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- fuzzing: own error type or a result

@FUZZ
@given(st.one_of(
    st.tuples(st.integers(1, 300), st.integers(1, 300), st.sampled_from([None, 1, 2, 3, 4, 5])),
), st.sampled_from([np.uint8, np.float32, np.float64, np.int64, bool]), st.integers(0, 2**32 - 1))
def test_canvas_to_mnist_never_fails_unexpectedly(shape, dtype, seed):
    h, w, c = shape
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w) if c is None else (h, w, c)).astype(dtype)
    if dtype in (np.float32, np.float64) and seed % 3 == 0:
        arr.flat[seed % arr.size] = np.nan
    try:
        out = canvas_to_mnist(arr)
    except MnistLiveError:
        return
    assert out is None or (out.shape == (28, 28) and np.all(np.isfinite(out)) and 0 <= out.min() <= out.max() <= 1)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 4))
def test_canvas_extremes(seed, kind):
    rng = np.random.default_rng(seed)
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = 255
    if kind == 0:
        rgba[..., :3] = 255  # all ink
    elif kind == 1:
        rgba[rng.integers(0, 280), rng.integers(0, 280), :3] = 255  # a single pixel
    elif kind == 2:
        rgba[...] = rng.integers(0, 256, rgba.shape)  # noise
    elif kind == 3:
        rgba[..., 3] = rng.integers(0, 256, (280, 280))  # random transparency
    else:
        rgba[100:180, 100:180, :3] = rng.integers(0, 256, (80, 80, 3))
    out = canvas_to_mnist(rgba)
    assert out is None or (out.shape == (28, 28) and np.all(np.isfinite(out)))


def _png(seed: int) -> bytes:
    img = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


@FUZZ
@given(st.binary(max_size=4000) | st.tuples(st.integers(0, 1000), st.integers(0, 2000), st.binary(max_size=8)).map(
    lambda t: _png(t[0])[: t[1]] + t[2] + _png(t[0])[t[1] + len(t[2]):]))
def test_decode_upload_never_fails_unexpectedly(blob):
    try:
        rgba = decode_upload(blob)
    except MnistLiveError:
        return
    assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4


@FUZZ
@given(st.binary(max_size=3000), st.booleans())
def test_idx_and_npz_readers_never_fail_unexpectedly(tmp_path_factory, blob, as_idx):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / ("x.idx" if as_idx else "x.npz")
    if as_idx and len(blob) > 4:  # Mostly-valid headers reach deeper code.
        blob = struct.pack(">HBB", 0, 8, 1 + (blob[0] % 3)) + blob[4:]
    path.write_bytes(blob)
    try:
        (data.read_idx if as_idx else data.read_npz)(path)
    except MnistLiveError:
        pass


@FUZZ
@given(st.dictionaries(st.sampled_from(["epochs", "batch_size", "train_size", "learning_rate", "optimizer",
                                         "hidden_units", "seed", "dataset", "architecture", "zz"]),
                       st.text(max_size=30) | st.lists(st.text(max_size=5), max_size=3)))
def test_any_query_string_gives_a_valid_config(params):
    config, notices = from_query(params)
    again, _ = from_query(config.to_query())
    assert again == config and isinstance(notices, list)


# ---------------------------------------------------------------- downloads that fail or hang

def test_hanging_download_falls_back_within_seconds(tmp_path, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)  # accepts connections, never answers
    monkeypatch.delenv("MNIST_OFFLINE")
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path)
    monkeypatch.setattr(data, "KERAS_URL", f"http://127.0.0.1:{server.getsockname()[1]}/")
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 1.0)
    loaded = {}
    loading = threading.Thread(target=lambda: loaded.update(ds=data.load_dataset("mnist")), daemon=True)
    loading.start()
    loading.join(300)  # a guard against a hang, not a speed target: the 1 s timeout must have fired long before
    server.close()
    assert not loading.is_alive(), "the download hung"
    ds = loaded["ds"]
    assert not ds.is_full and any("timed out" in n for n in ds.notes), ds.notes  # the timeout fired: the sample
    assert not list(tmp_path.iterdir())  # no half-downloaded file left behind


# ---------------------------------------------------------------- saved runs

def _run():
    from mnist_model.training import EpochMetrics
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype(np.float32) for s in ((784, 16), (16,), (16, 10), (10,))]
    return runs.Run(TrainConfig(hidden_units=16, epochs=1), [EpochMetrics(1, 0.5, 0.8, 0.6, 0.75, 1.0)],
                    "finished", "MNIST (test)", weights, keras_bytes=b"PK fake")


def test_saved_run_round_trip(tmp_path):
    run = _run()
    runs.write_run_files(run, tmp_path)
    back = runs.load_run(run.run_id, tmp_path)
    assert back.config == run.config and back.epochs == run.epochs and back.keras_bytes == b"PK fake"
    for a, b in zip(back.weights, run.weights):
        np.testing.assert_array_equal(a, b)
    assert "test_accuracy" in back.metrics_csv().splitlines()[0]


def test_crash_while_saving_leaves_no_half_written_file(tmp_path, monkeypatch):
    run = _run()
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt("killed")  # the server dies just before the last rename
        real_replace(src, dst)
    monkeypatch.setattr(runs.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        runs.write_run_files(run, tmp_path)
    monkeypatch.setattr(runs.os, "replace", real_replace)
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.part"))
    assert runs.list_runs(tmp_path) == ([], [])  # the orphan weights are not a run


def test_damaged_runs_are_skipped_and_reported(tmp_path):
    good, bad, worse = _run(), _run(), _run()
    for r in (good, bad, worse):
        runs.write_run_files(r, tmp_path)
    (tmp_path / f"{bad.run_id}.json").write_text("{ not json")
    (tmp_path / f"{worse.run_id}.npz").write_bytes(b"garbage")
    loaded, problems = runs.list_runs(tmp_path)
    assert [r.run_id for r in loaded] == [good.run_id] and len(problems) == 2
    assert any("damaged run file" in p for p in problems) and any("unreadable weights" in p for p in problems)
    with pytest.raises(ModelFileError, match="not a run name"):
        runs.load_run("../../etc/passwd", tmp_path)


def test_keras_files_corrupt_foreign_or_unsafe_are_refused(tmp_path):
    import keras
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 this is no zip")
    with pytest.raises(ModelFileError, match="corrupt.keras"):
        runs.load_keras_model(tmp_path / "corrupt.keras")
    wrong = keras.Sequential([keras.Input((32,)), keras.layers.Dense(10, name="out")])
    wrong.save(tmp_path / "wrong.keras")
    with pytest.raises(ModelFileError, match=r"takes \(32,\)"):
        runs.load_keras_model(tmp_path / "wrong.keras")
    unsafe = keras.Sequential([keras.Input((784,)), keras.layers.Lambda(lambda x: x * 2, name="code"),
                               keras.layers.Dense(10, name="out")])
    unsafe.save(tmp_path / "unsafe.keras")
    with pytest.raises(ModelFileError, match="unsafe.keras"):
        runs.load_keras_model(tmp_path / "unsafe.keras")
    good = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax", name="out")])
    good.save(tmp_path / "good.keras")
    assert runs.load_keras_model(tmp_path / "good.keras").output_shape == (None, 10)


# ---------------------------------------------------------------- abandoned jobs

def test_abandoned_jobs_finish_free_their_slot_and_leak_no_threads(executor):
    before = threading.active_count()
    jobs = [TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=200, batch_size=64)), executor=executor).start()
            for _ in range(8)]  # eight tabs that start a training and close (more than any slot count here)
    del jobs  # nobody holds them any more but the executor
    deadline = time.time() + 240
    while (executor.busy() or executor.queued()) and time.time() < deadline:
        time.sleep(0.2)
    assert executor.busy() == 0 and executor.queued() == 0
    assert threading.active_count() <= before
    after = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=200)), executor=executor).start()
    assert after.wait(60) and after.state == JobState.FINISHED


def test_a_worker_that_dies_fails_its_job_and_the_next_job_gets_a_new_one(executor):
    long = TrainingJob(TrainTask(TrainConfig(epochs=50, batch_size=16)), executor=executor).start()
    deadline = time.time() + 120
    while not long.snapshot().batch and time.time() < deadline:
        time.sleep(0.05)
    kill_worker(executor, long)  # out of memory, or its machine left the cluster
    assert long.wait(30)
    message = long.snapshot().message
    assert long.state == JobState.FAILED and ("training process" in message or "training actor died" in message)
    assert "Traceback" not in message and len(message) < 300
    after = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500)), executor=executor).start()
    assert after.wait(300) and after.state == JobState.FINISHED


def test_an_idle_worker_that_died_is_replaced_for_the_next_job(executor):
    first = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500)), executor=executor).start()
    assert first.wait(120) and first.state == JobState.FINISHED
    kill_worker(executor)
    time.sleep(0.5)
    after = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500)), executor=executor).start()
    assert after.wait(300) and after.state == JobState.FINISHED, after.snapshot().message
