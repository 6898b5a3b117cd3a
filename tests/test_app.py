"""AppTest: Home, Train (train, stop, runs, bad links) and Draw's non-canvas parts."""
import subprocess
import sys
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mnist_model.config import TrainConfig

from conftest import ROOT
from train_knobs import knob

APP = str(ROOT / "app.py")


def _metric(at, label):
    return next((m.value for m in at.metric if m.label == label), None)


def _wait_for(at, predicate, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the app")


def _start_training(**widgets):
    """A new session: open Train, set the knobs (by setting), press Train."""
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    for name, value in widgets.items():
        knob(at, name).set_value(value).run()
    next(b for b in at.button if b.label == "Train").click().run()
    return at


def _progress_epoch(at) -> int:
    """The epoch number the progress bar shows (0 when there is none)."""
    for p in at.get("progress"):
        text = p.proto.text or ""
        if "epoch " in text:
            return int(text.split("epoch ")[1].split("/")[0])
    return 0


def test_home_opens_without_tensorflow():
    code = (f"import sys; from streamlit.testing.v1 import AppTest; at = AppTest.from_file({APP!r}, "
            "default_timeout=60); at.run(); assert not at.exception, at.exception; "  # a busy machine's first run
            "print('TF' if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 'noTF'); "
            "print(at.title[0].value); print(next(c.value for c in at.sidebar.caption if c.value.startswith('**Data:**')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")
    assert lines[0] == "noTF" and lines[1] == "MNIST Live"
    assert "offline sample of 5,000 digits" in lines[2]


def test_home_shows_the_data_as_the_notebook_prints_it():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    code = at.code[0].value
    assert "(4000, 28, 28)" in code and "(1000, 28, 28)" in code and "len(train_labels)   4000" in code
    assert any("Lesson plan" == s.value for s in at.subheader)


def test_train_with_sliders_shows_train_and_test_accuracy_then_draw_uses_it():
    at = _trained_app(epochs=2, batch_size=256, train_size=2000)
    assert at.query_params["epochs"] in (["2"], "2")  # the settings are in the URL
    train_acc, test_acc = _metric(at, "Train accuracy"), _metric(at, "Test accuracy")
    assert 0.7 < float(train_acc.rstrip("%")) / 100 <= 1 and 0.7 < float(test_acc.rstrip("%")) / 100 <= 1
    assert any("After 2 epochs" in s.value for s in at.success)
    rows = at.dataframe[0].value
    assert list(rows["run"]) == ["Run 1"] and rows["batch"][0] == 256 and rows["status"][0] == "finished"
    assert rows["test acc"][0] == round(rows["test acc"][0], 1) == pytest.approx(float(test_acc.rstrip("%")), abs=0.051)
    at.switch_page("pages/draw.py").run()
    assert not at.exception
    assert any("Run 1" in c.value for c in at.caption)
    assert at.slider(key="pen_width").value == 20
    # Without drawing (the keyboard's way): a test image picked by its number is read, and its label named.
    from mnist_model.data import load_dataset
    from mnist_model.predict import Predictor
    digits = load_dataset("mnist")
    at.number_input(key="test_image_0").set_value(3).run()
    assert not at.exception
    run = at.session_state["workspace"].model_run()
    answer = int(Predictor.for_run(run)(digits.x_test[3:4] / 255.0).argmax())
    assert _metric(at, "Prediction") == str(answer)
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert any(f"test image 3, which the test set labels {digits.y_test[3]}" in c for c in captions), captions
    assert next(b for b in at.button if b.label == "Keep it").disabled  # not the student's handwriting


def test_stop_during_a_long_run_keeps_a_usable_model():
    at = _start_training(epochs=20, batch_size=16)
    _wait_for(at, lambda a: _progress_epoch(a) >= 2)
    next(b for b in at.button if b.label == "Stop training").click().run()
    _wait_for(at, lambda a: _metric(a, "Test accuracy") is not None, timeout=60)
    assert at.dataframe[0].value["status"][0] == "stopped"
    assert any(s.value.startswith("Run 1: stopped") for s in at.subheader)
    at.switch_page("pages/draw.py").run()  # the stopped model is the one the Draw page uses
    assert not at.exception and any(c.value.startswith("Model: Run 1") for c in at.caption)
    run = at.session_state["workspace"].runs()[0]
    from mnist_model.predict import Predictor
    probs = Predictor.for_run(run)(np.zeros((1, 28, 28), np.float32))
    assert probs.shape == (1, 10) and abs(probs.sum() - 1) < 1e-5


def test_bad_query_string_is_clamped_with_notices():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"epochs": "-4", "batch_size": "abc", "train_size": "999999999", "x": "<b>"})
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert knob(at, "epochs").value == 1 and knob(at, "batch_size").value == 128
    text = " ".join(w.value for w in at.warning)
    assert "epochs" in text and "batch_size" in text and "'x'" in text


def test_preset_overfit_sets_the_widgets():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    next(b for b in at.button if b.label == "Preset: Overfit on purpose").click().run()
    assert knob(at, "epochs").value == 40 and knob(at, "train_size").value == 500


def test_draw_without_a_model_offers_quick_train():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/draw.py").run()
    assert not at.exception
    assert any(b.label == "Quick train" for b in at.button)
    assert any("no trained model" in i.value for i in at.info)


@pytest.mark.parametrize("page", ["pages/explore.py"])
def test_other_pages_render_without_a_model(page):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception


def _trained_app(**widgets):
    """A session that has trained once with these Train-page settings."""
    at = _start_training(**widgets)
    _wait_for(at, lambda a: _metric(a, "Test accuracy") is not None)
    return at


def test_explore_shows_mistakes_and_weights_for_a_trained_run():
    at = _trained_app(epochs=2)
    at.switch_page("pages/explore.py").run()
    assert not at.exception
    assert any("of 1,000 test images right" in c.value for c in at.caption)
    assert at.selectbox[0].label.startswith("Show test images")
    assert any(s.value == "The most confident mistakes" for s in at.subheader)
    assert len(at.get("image")) >= 4  # cell images, mistakes gallery, weights grid, one unit


def test_overfitting_lab_sweep_runs_in_order_and_lands_in_the_run_table():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    knob(at, "epochs").set_value(3).run()
    at.switch_page("pages/explore.py").run()
    next(b for b in at.button if b.label == "Run the sweep").click().run()
    _wait_for(at, lambda a: len([r for r in a.session_state["workspace"].runs() if r.name.startswith("Sweep")]) == 3)
    runs = at.session_state["workspace"].runs()
    assert [r.name for r in runs] == ["Sweep 500", "Sweep 2000", "Sweep all"]
    assert [r.config.train_size for r in runs] == [500, 2000, 0]
    gap = [r.train_accuracy - r.test_accuracy for r in runs]
    assert gap[0] > gap[-1]  # fewer examples, wider gap
    at.switch_page("pages/train.py").run()
    assert list(at.dataframe[0].value["run"]) == ["Sweep 500", "Sweep 2000", "Sweep all"]


def test_share_on_the_server_and_pick_it_in_a_new_workspace():
    at = _trained_app(epochs=1)
    next(b for b in at.button if b.label == "Share").click().run()
    run = at.session_state["workspace"].runs()[-1]
    assert run.published and any(b.label == "Unshare" for b in at.button)
    fresh = AppTest.from_file(APP, default_timeout=60).run()  # another person, another workspace
    fresh.switch_page("pages/draw.py").run()
    picker = next(s for s in fresh.selectbox if s.label == "Use a model shared on this server")
    picker.select(run.run_id).run()
    assert not fresh.exception and any(c.value.startswith("Model: Run 1") for c in fresh.caption)
    assert fresh.session_state["workspace"].runs() == []  # sharing a model shares none of the runs
    at.session_state["workspace"].publish(run.run_id, published=False)  # later tests expect no shared model


def test_delete_asks_about_the_run_on_screen_and_a_run_that_lands_meanwhile_closes_the_question():
    at = _trained_app(epochs=1)
    ws = at.session_state["workspace"]
    first = ws.runs()[-1]
    next(b for b in at.button if b.label == "Delete run").click().run()
    assert [b.label for b in at.button if b.label.startswith("Yes, delete")] == [f"Yes, delete {first.name}"]
    next(b for b in at.button if b.label == "Train").click().run()  # a training that ends while the question waits
    _wait_for(at, lambda a: len(ws.runs()) == 2 and not ws.jobs() and _metric(a, "Test accuracy") is not None)
    # The page now shows the new run: the question about the first one closed; it never asks the same of the new one
    assert not [b.label for b in at.button if b.label.startswith("Yes, delete")]
    # ... and it stays closed when the first run is shown again (it came back unasked in a walkthrough)
    picker = next(s for s in at.selectbox if s.label == "Model for the Draw and Explore pages")
    picker.set_value(first.run_id).run()
    assert ws.model_run().run_id == first.run_id
    assert not [b.label for b in at.button if b.label.startswith("Yes, delete")]
    next(b for b in at.button if b.label == "Delete run").click().run()
    yes = next(b for b in at.button if b.label.startswith("Yes, delete"))
    assert yes.label == f"Yes, delete {first.name}"
    yes.click().run()
    assert not at.exception and first.run_id not in [r.run_id for r in ws.runs()] and len(ws.runs()) == 1


def test_pin_and_share_act_on_the_run_they_were_shown_for_even_when_a_new_run_lands_first():
    """A click made on Run 1's page that reaches the server after Run 2 has landed (the page then shows Run 2)."""
    at = _trained_app(epochs=1)
    ws = at.session_state["workspace"]
    first = ws.runs()[-1]
    ws.train(TrainConfig(epochs=1, train_size=500))  # ends before the clicks below reach the app
    for job in ws.jobs():
        job.wait(120)
    assert len(ws.runs()) == 2
    next(b for b in at.button if b.label == "Pin (keep)").click()  # the buttons drawn for Run 1
    next(b for b in at.button if b.label == "Share").click().run()
    assert not at.exception
    runs = {r.run_id: r for r in ws.runs()}
    second = next(r for r in ws.runs() if r.run_id != first.run_id)
    assert runs[first.run_id].pinned and runs[first.run_id].published
    assert not second.pinned and not second.published
    ws.publish(first.run_id, published=False)  # later tests expect no shared model


def test_fashion_mnist_trains_and_explores():
    at = _trained_app(dataset="fashion", train_size=2000, epochs=1)
    assert at.dataframe[0].value["data"][0] == "Fashion"
    at.switch_page("pages/explore.py").run()
    assert not at.exception
    assert any("of 10,000 test images right" in c.value for c in at.caption)
    assert "Ankle boot" in [o for o in at.selectbox[0].options]
    at.switch_page("pages/draw.py").run()
    assert not at.exception


def test_switching_pages_keeps_a_running_training():
    at = _start_training(epochs=6, batch_size=16)
    at.switch_page("pages/home.py").run()
    assert not at.exception and not at.session_state["workspace"].jobs()[0].state.done  # still going while away
    at.switch_page("pages/train.py").run()
    _wait_for(at, lambda a: _metric(a, "Test accuracy") is not None)
    assert at.dataframe[0].value["status"][0] == "finished" and at.dataframe[0].value["epochs"][0] == 6
