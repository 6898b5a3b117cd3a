"""A real browser: open /, go to Draw through the sidebar, Quick train, draw a 1 and a 0 with the mouse."""
import math
import os
import shutil
import time

import pytest

import appserver
from appserver import stroke as _stroke
from conftest import ROOT

CHROMIUM = shutil.which("chromium") or appserver.CHROMIUM
ARGS = appserver.CHROMIUM_ARGS

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Chromium is not installed (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, url = appserver.start(log, MNIST_LIVE_RUNS=str(tmp_path_factory.mktemp("runs")))
    yield url, log
    appserver.stop(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _prediction_after(page, previous: str | None) -> str:
    """The Prediction metric's value once it shows (and differs from previous, if given)."""
    value = page.locator('[data-testid="stMetric"]', has_text="Prediction").locator('[data-testid="stMetricValue"]')
    deadline = time.time() + 20
    while time.time() < deadline:
        if value.count() and value.first.inner_text() not in (previous, "–"):
            return value.first.inner_text()
        time.sleep(0.2)
    metrics = page.get_by_test_id("stMetric").all_inner_texts()
    alerts = page.get_by_test_id("stAlert").all_inner_texts()
    canvas = page.locator("canvas.upper-canvas")
    box = canvas.first.bounding_box() if canvas.count() else None
    raise AssertionError(f"no new prediction shown (before: {previous!r}); metrics {metrics}, alerts {alerts}, "
                         f"canvas at {box}, {page.url}")


def _open(page, url, name, query=""):
    """Open the app at / and go to a page through the sidebar (a deep link would start a new session)."""
    page.set_viewport_size({"width": 1280, "height": 1200})
    page.goto(url + "/" + query)
    page.get_by_text("Lesson plan").wait_for(timeout=60000)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()


def test_draw_a_one_and_a_zero(server, page):
    url, _ = server
    _open(page, url, "Draw")
    page.get_by_role("button", name="Quick train").click()
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(timeout=120000)
    box = canvas.bounding_box()
    _stroke(page, box, [(140, 40), (138, 140), (136, 240)])
    assert _prediction_after(page, None) == "1"
    canvas = appserver.clear_canvas(page)
    page.get_by_text("Draw a digit on the black square").first.wait_for(timeout=10000)
    box = canvas.bounding_box()
    _stroke(page, box, [(140 + 65 * math.sin(t / 24 * 2 * math.pi), 140 - 95 * math.cos(t / 24 * 2 * math.pi))
                        for t in range(26)])
    assert _prediction_after(page, "1") == "0"
    page.screenshot(path=str(ROOT / "tests" / "last-draw.png"))


def _progress_epoch(page) -> int | None:
    """The epoch the progress bar shows, or None (no bar now, or it vanished while being read)."""
    from playwright.sync_api import Error
    try:
        text = page.get_by_test_id("stProgress").first.inner_text(timeout=300)
    except Error:
        return None
    return int(text.split("epoch ")[1].split("/")[0]) if "epoch " in text else None


@pytest.mark.parametrize("query, epochs", [("?epochs=2&train_size=2000", 2),
                                           ("?epochs=6&batch_size=16&architecture=cnn", 6)])
def test_train_page_from_a_shared_link_trains_with_live_curves(server, page, query, epochs):
    url, _ = server
    _open(page, url, "Train", query)
    thumb = page.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_test_id("stSliderThumbValue")
    assert thumb.inner_text() == str(epochs)  # the link's settings survived the page switch
    page.get_by_role("button", name="Train", exact=True).click()
    seen_epochs, charts_while_training = set(), 0
    deadline = time.time() + 180
    while time.time() < deadline and not page.get_by_text("Test accuracy", exact=True).count():
        epoch = _progress_epoch(page)
        if epoch is not None:
            seen_epochs.add(epoch)
            charts_while_training += page.get_by_test_id("stVegaLiteChart").count() > 0 and epoch > 1
        time.sleep(0.1)
    assert page.get_by_text("Test accuracy", exact=True).count(), "no Test accuracy metric"
    assert page.get_by_text("Train accuracy", exact=True).count()
    assert page.get_by_text(f"After {epochs} epochs").count()  # the reading of this run's curves
    if epochs > 2:  # long enough to watch: the CNN with batch 16 takes about 0.7 s an epoch on the sample
        assert len(seen_epochs) >= 3, seen_epochs  # the progress bar moved through the epochs
        assert charts_while_training  # and the curves were drawn while later epochs ran


def test_phone_sized_screen_and_touch_drawing(server, browser):
    """A phone: the sidebar closes after a page switch, the canvas fits, and a finger's stroke gets a prediction
    that is on screen together with the canvas."""
    url, _ = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(url + "/")
    page.get_by_text("Lesson plan").wait_for(timeout=60000)
    page.get_by_test_id("stExpandSidebarButton").click()
    sidebar = page.get_by_test_id("stSidebar")
    page.wait_for_function("() => document.querySelector('[data-testid=stSidebar]').getBoundingClientRect().right"
                           " > 200")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw").click()
    page.get_by_role("button", name="Quick train").wait_for(timeout=60000)
    page.wait_for_function("() => document.querySelector('[data-testid=stSidebar]').getBoundingClientRect().right <= 0",
                           timeout=10000)  # closed by itself: the page is visible
    assert sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"] <= 0
    page.get_by_role("button", name="Quick train").click()
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(timeout=120000)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # fits the screen, no sideways scrolling
    cdp = context.new_cdp_session(page)
    points = [(box["x"] + 140, box["y"] + 40 + 10 * i) for i in range(21)]
    cdp.send("Input.dispatchTouchEvent",
             {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
    for x, y in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert _prediction_after(page, None) == "1"
    metric = page.locator('[data-testid="stMetric"]', has_text="Prediction").first.bounding_box()
    canvas_box = canvas.bounding_box()
    assert 0 <= metric["y"] and metric["y"] + metric["height"] <= 844  # the answer is on screen...
    assert canvas_box["y"] < 844 and canvas_box["y"] + canvas_box["height"] > 0  # ...with the canvas
    page.screenshot(path=str(ROOT / "tests" / "last-phone.png"))
    context.close()


def test_upload_a_photo_and_a_bad_file(server, page, tmp_path):
    from PIL import Image, ImageDraw
    photo = Image.new("RGB", (600, 800), (235, 230, 220))  # a 7 in dark ink on paper
    ImageDraw.Draw(photo).line([(150, 150), (450, 150), (250, 650)], fill=(40, 40, 50), width=45)
    photo.save(tmp_path / "seven.jpg", quality=85)
    (tmp_path / "notes.png").write_bytes(b"this is not really a PNG")
    Image.new("RGBA", (100, 100), (0, 0, 0, 0)).save(tmp_path / "clear.png")  # read, but nothing in it
    url, _ = server
    _open(page, url, "Draw")
    page.get_by_role("button", name="Quick train").click()
    upload = page.get_by_test_id("stFileUploader").filter(has_text="upload a photo").locator("input[type=file]")
    upload.wait_for(state="attached", timeout=120000)
    upload.set_input_files(str(tmp_path / "seven.jpg"))
    assert _prediction_after(page, None) == "7"
    page.get_by_text("from the uploaded photo").wait_for(timeout=10000)
    canvas = page.locator("canvas.upper-canvas")
    _stroke(page, canvas.bounding_box(), [(140, 40), (138, 140), (136, 240)])  # the latest input wins
    assert _prediction_after(page, "7") == "1"
    page.get_by_text("from your drawing").wait_for(timeout=10000)
    upload.set_input_files(str(tmp_path / "notes.png"))
    page.get_by_text("That file can't be used: this file is not a picture we can read (PNG or JPEG)").wait_for(
        timeout=20000)
    assert not page.get_by_text("Error:").count() and not page.get_by_text("BytesIO").count()
    upload.set_input_files(str(tmp_path / "clear.png"))  # it only asked for a drawing before
    page.get_by_text("There is nothing to read in that picture: it is blank, one colour or transparent.").wait_for(
        timeout=20000)
    (tmp_path / "drawings.npz").write_bytes(b"not an npz")  # the drawings' own uploader says it the same way
    page.get_by_test_id("stFileUploader").filter(has_text="Load drawings saved earlier").locator(
        "input[type=file]").set_input_files(str(tmp_path / "drawings.npz"))
    page.get_by_text("That file can't be used: this file is not a drawings file saved by MNIST Live (.npz)").wait_for(
        timeout=20000)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_train_and_stop_then_draw_with_each_executor(executor, tmp_path, page):
    """The same pages, whichever executor trains (Ray with 2 slots, as the README's recipe has more): Stop keeps the
    model, and Draw uses it."""
    if executor == "ray":
        pytest.importorskip("ray")
    proc, url = appserver.start(tmp_path / "server.log", MNIST_LIVE_EXECUTOR=executor,
                                MNIST_LIVE_TRAINING_SLOTS="2" if executor == "ray" else "1")
    try:
        _open(page, url, "Train", "?epochs=40&batch_size=16&architecture=cnn&train_size=1000")
        page.get_by_role("button", name="Train", exact=True).click()
        deadline, seen = time.time() + 300, 0
        while seen < 2 and time.time() < deadline:  # what the bar said (read again, it may be mid-redraw)
            seen = _progress_epoch(page) or seen
            time.sleep(0.1)
        assert seen >= 2
        t0 = time.perf_counter()
        page.get_by_role("button", name="Stop training").click()
        page.get_by_text("Run 1: stopped").wait_for(timeout=30000)
        print(f"{executor}: stopped and shown {time.perf_counter() - t0:.2f} s after the click")
        page.get_by_text("Test accuracy", exact=True).wait_for(timeout=10000)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw").click()
        page.locator("canvas.upper-canvas").wait_for(timeout=60000)
        assert page.get_by_text("Model: Run 1").count()
    finally:
        appserver.stop(proc)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
