"""Every kind of run the app can make, on every page and every tab (AppTest): each kind in a workspace of its own,
made the way the app makes it (the server's Lab, its executor, the store), then every page opened with it."""
import time
from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from mnist_model.config import TrainConfig
from mnist_model.handwriting import fine_tune_task
from mnist_model.jobs import TrainTask

from conftest import ROOT

APP = str(ROOT / "app.py")
PAGES = ["pages/home.py", "pages/train.py", "pages/draw.py", "pages/explore.py", "pages/class.py"]
SMALL = TrainConfig(epochs=1, train_size=500, hidden_units=64)
KINDS = {  # name -> the config of a plain training (None: made otherwise below)
    "dense": SMALL, "two layers": replace(SMALL, hidden_layers=2, epochs=2),
    "three layers": replace(SMALL, hidden_layers=3, epochs=2), "dropout": replace(SMALL, dropout=0.5, epochs=2),
    "l2": replace(SMALL, l2=1e-3, epochs=2), "early-stopped": replace(SMALL, train_size=200, epochs=15, patience=1),
    "cnn": replace(SMALL, architecture="cnn"), "fashion": replace(SMALL, dataset="fashion"),
    "stopped in epoch 1": None, "failed": None, "interrupted": None, "shared": None, "fine-tuned": None,
    "imported": None,
}


def _wait(ws, timeout=300):
    deadline = time.time() + timeout
    while ws.jobs() and time.time() < deadline:
        time.sleep(0.1)
    assert not ws.jobs()


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """name -> the id of a workspace whose model (or latest training) is that kind of run."""
    from mnist_model.data import load_dataset
    from mnist_model.errors import DataError
    from mnist_model.store import Store
    from pages import common
    lab = common.lab()  # the very Lab the AppTests' pages use (same process)
    made = {}
    for name, config in KINDS.items():
        if config is None:
            continue
        if config.dataset == "fashion":
            try:
                load_dataset("fashion")
            except DataError:
                continue  # the Fashion-MNIST package is not installed here: that kind is skipped below
        ws = lab.new_workspace()
        ws.train(config)
        _wait(ws)
        assert ws.model_run() is not None, name
        made[name] = ws.id
    ws = lab.new_workspace()  # Stop before the first epoch ends: a run with no epochs
    job = ws.train(TrainConfig(epochs=5, batch_size=16))
    while not job.snapshot().batch:
        time.sleep(0.02)
    ws.stop()
    _wait(ws)
    assert ws.model_run().status == "stopped" and not any(m.complete for m in ws.model_run().epochs)
    made["stopped in epoch 1"] = ws.id
    ws = lab.new_workspace()  # a training that failed (its data could not be read)
    ws.start(TrainTask(SMALL, data_path="/nonexistent/mnist.npz"), label="Run 1")
    _wait(ws)
    assert ws.latest_job().state.value == "failed" and ws.model_run() is None
    made["failed"] = ws.id
    ws = lab.new_workspace()  # a server restart cut a training off
    lab.store.record_job(ws.id, "0" * 32, "Run 1", "train", SMALL)
    lab.store.set_job_state("0" * 32, "running")
    lab.store.interrupt_unfinished()
    assert ws.interrupted()
    made["interrupted"] = ws.id
    owner, ws = lab.workspace(made["dense"]), lab.new_workspace()  # a model shared by someone else
    owner.publish(owner.model_run().run_id)
    ws.choose_model(owner.model_run().run_id)
    assert ws.model_run() is not None and not ws.runs()
    made["shared"] = ws.id
    ws = lab.new_workspace()  # fine-tuned on kept drawings
    ws.train(SMALL)
    _wait(ws)
    digits = load_dataset("mnist")
    ws.keep_drawings(digits.x_test[:6] / 255.0, digits.y_test[:6])
    base = ws.model_run()
    ws.start(fine_tune_task(base, *ws.drawings()[1:]), label="Run 1 + my drawings", kind="fine-tune",
             base_run_id=base.run_id)
    _wait(ws)
    assert ws.model_run().base_run_id == base.run_id
    made["fine-tuned"] = ws.id
    from mnist_model.lab import Lab
    elsewhere = Lab(Store(tmp_path_factory.mktemp("elsewhere")), lab.executor)  # another server's export
    away = elsewhere.new_workspace()
    away.train(replace(SMALL, hidden_layers=2))
    _wait(away)
    other = away.id
    zipped = tmp_path_factory.mktemp("export") / "ws.zip"
    elsewhere.store.export_workspace(other, zipped)
    lab.store.import_workspace(zipped)
    assert lab.workspace(other).runs()
    made["imported"] = other
    yield made
    owner.publish(owner.model_run().run_id, published=False)  # later tests expect a server with no shared model


def _errors(at) -> list[str]:
    return [e.value for e in at.error] + [str(x.value) for x in at.exception]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_page_renders_every_kind_of_run(kind, workspaces):
    if kind not in workspaces:
        pytest.skip(f"{kind}: its dataset is not installed here")
    from pages import common
    ws = common.lab().workspace(workspaces[kind])
    for path in PAGES:
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["workspace"] = ws
        at.run()
        at.switch_page(path).run()
        expected = [e for e in _errors(at)
                    if kind == "failed" and e.startswith(("Run 1 failed: ", "The last training failed: "))]
        assert not [e for e in _errors(at) if e not in expected], (kind, path, _errors(at))
        if kind == "failed" and path in ("pages/train.py", "pages/draw.py"):
            assert expected or any("failed" in e.value for e in at.error), (path, _errors(at))
        if path == "pages/explore.py" and ws.model_run() is not None:
            assert len(at.tabs) == 3
            if ws.model_run().final is not None:
                assert any("test images right" in c.value for c in at.caption), (kind, [c.value for c in at.caption])
        if path == "pages/train.py" and kind == "interrupted":
            assert any("was interrupted" in w.value for w in at.warning)
        charts = at.get("vega_lite_chart")  # every chart has its numbers in a table below it, in words
        numbers = [e for e in at.expander if e.label.startswith("The numbers:")]
        assert len(numbers) == len(charts), (kind, path, len(charts), [e.label for e in numbers])
        assert all(len(e.table) == 1 and len(e.table[0].value) for e in numbers), (kind, path)
        assert all(e.table[0].value.index.name for e in numbers), (kind, path)  # each row named by its x value
        assert not [e.label for e in numbers if e.label.endswith("this chart")], (kind, path)  # each says which


@pytest.mark.parametrize("path", PAGES)
def test_a_training_that_ends_while_a_page_draws_breaks_nothing(path, workspaces, monkeypatch):
    """The page reads the workspace's trainings several times; the training may end between any two reads."""
    from mnist_model.jobs import TrainingJob
    from pages import common
    lab = common.lab()
    ws = lab.workspace(workspaces["dense"])
    job = TrainingJob(TrainTask(SMALL), label="Run 9")  # waiting for its turn; never started
    reads = {"left": None, "count": 0}

    def jobs(workspace_id):  # the training is there for the first reads["left"] reads of this page view
        reads["count"] += 1
        return [job] if reads["left"] is None or reads["count"] <= reads["left"] else []

    def view(left):
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["workspace"] = ws
        at.run()
        reads["left"], reads["count"] = left, 0
        at.switch_page(path).run()
        return at
    monkeypatch.setattr(lab, "jobs", jobs)
    view(None)
    total = reads["count"]
    assert total >= 1, path
    for left in range(total + 1):
        at = view(left)
        assert not _errors(at), (path, left, total, _errors(at))
