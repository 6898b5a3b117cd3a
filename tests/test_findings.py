"""The walkthroughs' smaller findings, each as it was seen: the lab's network, fine-tune names, download names, the
CNN preset notice, Draw beside a shared model, the running loss of a long run, the board at 1280 px, the robustness
charts, notebook files' mode."""
import json
import os
import stat
import subprocess
import sys
import time

import numpy as np
from streamlit.testing.v1 import AppTest

from mnist_model.config import TrainConfig
from mnist_model.jobs import TrainingJob, TrainTask
from mnist_model.records import BatchProgress

from conftest import ROOT
from train_knobs import knob

APP = str(ROOT / "app.py")


def _page(path, ws=None):
    at = AppTest.from_file(APP, default_timeout=60)
    if ws is not None:
        at.session_state["workspace"] = ws
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def _wait_idle(ws, timeout=300):
    deadline = time.time() + timeout
    while ws.jobs() and time.time() < deadline:
        time.sleep(0.1)
    assert not ws.jobs()


def test_the_lab_names_its_network_and_data_and_sweeps_the_one_chosen():
    from pages import common
    ws = common.lab().new_workspace()
    ws.save_settings(TrainConfig(architecture="cnn", epochs=1))  # the Train page was left on the CNN
    at = _page("pages/explore.py", ws)
    assert at.radio(key="lab_architecture__en").value == "dense"  # the lab's own choice, said on the page
    assert any("dense network (the notebook's) on MNIST digits" in c.value for c in at.caption)
    at.radio(key="lab_architecture__en").set_value("cnn").run()
    assert any("small CNN on MNIST digits" in c.value for c in at.caption)
    at.radio(key="lab_architecture__en").set_value("dense").run()
    next(b for b in at.button if b.label == "Run the sweep").click().run()
    assert {j.config.architecture for j in ws.jobs()} == {"dense"}
    ws.stop()
    _wait_idle(ws)


def test_fine_tuned_runs_and_downloads_have_names_of_their_own():
    from pages import common
    ws = common.lab().new_workspace()
    ws.train(TrainConfig(epochs=1, train_size=200, hidden_units=32), label="Run 2")
    _wait_idle(ws)
    assert ws.unique_name("Run 2") == "Run 2 (2)" and ws.unique_name("Run 2 + my drawings") == "Run 2 + my drawings"
    run = ws.runs()[0]
    run.name = "Run 2 + my drawings (2)"
    assert run.file_stem() == "mnist-live-run-2-my-drawings-2"  # the Train page's downloads (was the run's id)
    run.name = ""
    assert run.file_stem() == f"mnist-live-{run.run_id}"


def test_a_preset_says_what_it_set_for_the_cnn():
    at = _page("pages/train.py")
    knob(at, "architecture").set_value("cnn").run()
    next(b for b in at.button if b.label == "Preset: The notebook").click().run()
    notice = next(i.value for i in at.info if i.value.startswith("Preset The notebook"))
    assert "CNN" in notice and "hidden" not in notice, notice


def test_draw_beside_a_shared_model_offers_quick_train_without_saying_there_is_none():
    from pages import common
    owner = common.lab().new_workspace()
    owner.train(TrainConfig(epochs=1, train_size=200, hidden_units=32))
    _wait_idle(owner)
    owner.publish(owner.model_run().run_id)
    try:
        at = _page("pages/draw.py", common.lab().new_workspace())
    finally:
        owner.publish(owner.model_run().run_id, published=False)  # later tests expect a server with no shared model
    assert any(s.label == "Use a model shared on this server" for s in at.selectbox)
    texts = [i.value for i in at.info]
    assert not any("no trained model yet" in t for t in texts), texts
    assert any(t.startswith("Or train a model of your own") for t in texts), texts


def test_the_running_loss_of_a_long_run_keeps_every_epoch():
    job = TrainingJob(TrainTask(TrainConfig(epochs=50)), executor=None)
    batches = 469
    for epoch in range(1, 51):
        for batch in range(1, batches + 1, 5):
            job.on_batch(BatchProgress(epoch, 50, batch, batches, 0.5, 0.9, 1.0))
    points = job.snapshot().batch_losses
    assert len(points) <= 400
    assert points[0][0] < 1 and points[-1][0] > 49  # the first epoch is still there (it kept the last ~20)
    gaps = np.diff([p[0] for p in points])
    assert gaps.max() < 2 * gaps.min() + 1e-9  # evenly spaced


def test_the_leaderboard_keeps_its_time_column_on_screen_at_1280_px():
    from pages import common
    lab = common.lab()
    teacher, student = lab.new_workspace(), lab.new_workspace()
    taught = teacher.start_class()
    student.join_class(taught.code, "Ada", "s1")
    student.train(TrainConfig(epochs=1, train_size=200, hidden_units=32))
    _wait_idle(student)
    at = _page("pages/class.py", teacher)
    frame = at.dataframe[0]
    columns = list(frame.value.columns)
    assert columns.index("time") < columns.index("settings")
    config = json.loads(frame.proto.columns)
    widths = [config[c]["width"] for c in columns]
    assert all(isinstance(w, int) for w in widths) and sum(widths) <= 810, dict(zip(columns, widths))


def test_robustness_charts_give_each_network_its_colour_and_span_the_sliders():
    from mnist_model.poke import robustness
    from pages import common

    def predict(images):
        return np.tile(np.linspace(0.1, 0.9, 10), (len(images), 1))
    found = robustness({"dense network": predict, "CNN": predict}, np.zeros((28, 28), np.float32), 3)
    assert min(found.angles) == -30 and max(found.angles) == 30  # the Turn slider's range
    for chart in common.robustness_charts(found, "3"):
        scale = chart.to_dict()["encoding"]["color"]["scale"]
        assert scale["domain"] == ["dense network", "CNN"] and len(set(scale["range"])) == 2


def test_a_notebook_written_by_the_cli_is_readable_like_any_file(tmp_path):
    out = tmp_path / "run.ipynb"
    proc = subprocess.run([sys.executable, "-m", "mnist_model", "notebook", "--output", str(out), "--epochs", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # was 0600
