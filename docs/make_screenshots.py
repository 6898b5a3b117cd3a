"""Retake the README's screenshots: python docs/make_screenshots.py (needs Chromium; about two minutes).

A class board of real runs (trained here on the offline sample, posted under made-up nicknames), the Train page
after Overfit on purpose and Fix the overfitting, and the Draw page on a phone-sized screen after a stroke.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ["MNIST_OFFLINE"] = "1"

import appserver  # noqa: E402

STUDENTS = ["Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Dennis", "Margaret", "Linus", "Radia",
            "Tim", "Frances"]
SETTINGS = [dict(epochs=e, batch_size=b, train_size=n) for e, b, n in
            [(5, 128, 0), (20, 32, 500), (2, 256, 2000), (10, 64, 1000), (40, 32, 500), (5, 128, 0), (3, 512, 0),
             (10, 128, 2000), (20, 128, 1000), (1, 128, 0), (10, 32, 0), (5, 64, 500), (15, 256, 0), (30, 64, 1000),
             (5, 32, 2000), (8, 128, 500)]]


def board(folder: Path) -> str:
    """A class with a board of real runs; returns the teacher's workspace id."""
    from mnist_model.classroom import Classroom
    from mnist_model.config import TrainConfig
    from mnist_model.data import load_dataset
    from mnist_model.runs import Run
    from mnist_model.store import Store
    from mnist_model.training import train
    store = Store(folder)
    room = Classroom(store)
    teacher = store.create_workspace()
    taught = room.start_class(teacher)
    ds = load_dataset("mnist")
    for i, kw in enumerate(SETTINGS):
        workspace = store.create_workspace()
        room.join(workspace, taught.code, STUDENTS[i % len(STUDENTS)] + ("" if i < len(STUDENTS) else " B"), "s")
        config = TrainConfig(seed=i, **kw)
        result = train(config, ds, watch_first_layer=False)
        run = Run(config, result.epochs, "finished", ds.title, result.model.get_weights(), name="Run 1",
                  duration_s=result.seconds)
        store.add_run(workspace, run)
        room.post(workspace, run)
    store.close()
    return teacher


def main() -> None:
    from playwright.sync_api import sync_playwright
    data = Path(tempfile.mkdtemp(prefix="mnist-live-shots-"))
    teacher = board(data)
    proc, url = appserver.start(data / "server.log", MNIST_LIVE_DATA=str(data))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=appserver.CHROMIUM, args=appserver.CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 2050})  # the page scrolls inside
            context.add_cookies([{"name": "mnist_live_workspace", "value": teacher, "url": url}])
            page = context.new_page()
            page.goto(url + "/")
            page.get_by_text("Lesson plan").wait_for(timeout=60000)
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Class").click()
            page.get_by_text("Runs on the board", exact=True).wait_for(timeout=60000)
            time.sleep(3)
            page.screenshot(path=str(ROOT / "docs" / "board.png"), full_page=True)
            student = browser.new_context(viewport={"width": 1280, "height": 1500}).new_page()
            student.goto(url + "/?epochs=40&batch_size=32&train_size=500")
            student.get_by_text("Lesson plan").wait_for(timeout=60000)
            student.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
            for preset in (None, "Preset: Fix the overfitting"):
                if preset:
                    student.get_by_role("button", name=preset).click()
                    time.sleep(1)
                student.get_by_role("button", name="Train", exact=True).click()
                student.get_by_text("Run 2: finished" if preset else "Run 1: finished", exact=False).wait_for(
                    timeout=180000)
            student.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=30000)
            time.sleep(2)
            student.screenshot(path=str(ROOT / "docs" / "train.png"))
            phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                        is_mobile=True, has_touch=True).new_page()
            phone.goto(url + "/draw")
            phone.get_by_role("button", name="Quick train").click()
            canvas = phone.locator("canvas.upper-canvas")
            canvas.wait_for(timeout=120000)
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            cdp = phone.context.new_cdp_session(phone)
            points = [(box["x"] + 90 + 100 * t / 20, box["y"] + 60) for t in range(21)] + \
                     [(box["x"] + 190 - 60 * t / 20, box["y"] + 60 + 170 * t / 20) for t in range(21)]
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0],
                                                                                        "y": points[0][1]}]})
            for x, y in points[1:]:
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            phone.get_by_text("Preprocessing + prediction").wait_for(timeout=20000)
            time.sleep(1)
            phone.screenshot(path=str(ROOT / "docs" / "phone.png"))
            browser.close()
    finally:
        appserver.stop(proc)
    print("docs/board.png, docs/train.png, docs/phone.png written")


if __name__ == "__main__":
    main()
