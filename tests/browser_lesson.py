"""The protocol students' lesson done by Chromium pages, for calibrating the protocol client against a browser.

The steps are the protocol lesson's (tests/protocol_load.py), as a person does them: the class's join link and a
nickname, Train from a settings link (1 epoch, 500 examples), the run's end, two digits drawn with the mouse on
Draw and one poke, then the board. Each answer on Draw is checked against the NumPy predictor of the student's
own model for the 28x28 picture the page shows. Server-side times are read off the page's own websocket: from
each rerun request the browser sends to the end of the run that answers it (the protocol client's rule).
"""
from __future__ import annotations

import asyncio
import io
import random
import re
import time

import numpy as np
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

import appserver
from protocol import DONE, ProtocolError
from walker import DIGITS

WAIT_MS = 60_000  # a rerun under load
SHOWN = "What the network sees"


class WireClock:
    """Answer times seen on a page's websocket: a request is answered by the end of the first run of its scope
    (the whole page, or its fragment) that starts after it; ticks that a full run answered are counted apart."""

    def __init__(self):
        self.timings: list[float] = []  # the user's requests (clicks, strokes, slider moves, page loads)
        self.polls: list[float] = []  # fragments' timer ticks
        self.polls_absorbed = 0
        self._pending: list[dict] = []

    def attach(self, websocket) -> None:
        if websocket.url.endswith("/_stcore/stream"):
            websocket.on("framesent", self._sent)
            websocket.on("framereceived", self._received)

    def _sent(self, payload) -> None:
        if isinstance(payload, str):
            return
        msg = BackMsg()
        msg.ParseFromString(payload)
        if msg.WhichOneof("type") == "rerun_script":
            r = msg.rerun_script
            self._pending.append({"scope": r.fragment_id, "auto": r.is_auto_rerun, "sent": time.perf_counter(),
                                  "run": None, "absorbed": False})

    def _received(self, payload) -> None:
        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        msg.ParseFromString(payload)
        kind, run = msg.WhichOneof("type"), msg.metadata.run.script_run_id
        if kind == "new_session":
            scopes = set(msg.metadata.run.fragment_ids) or {""}
            for request in self._pending:
                if request["run"] is None and (request["scope"] in scopes or "" in scopes):
                    request["run"], request["absorbed"] = run, request["scope"] not in scopes
        elif kind == "script_finished":
            now = time.perf_counter()
            for request in [r for r in self._pending if r["run"] == run]:
                if msg.script_finished not in DONE:
                    request["run"] = None  # cut short by a newer request: the next run answers
                    continue
                self._pending.remove(request)
                if not request["auto"]:
                    self.timings.append(now - request["sent"])
                elif request["absorbed"]:
                    self.polls_absorbed += 1
                else:
                    self.polls.append(now - request["sent"])


async def _settle(page) -> None:
    await page.get_by_test_id("stApp").wait_for(timeout=WAIT_MS)
    await page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT_MS)


async def _stroke(page, box, points, steps: int = 6) -> None:
    await page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    await page.mouse.up()


async def _shown_image(page, url: str) -> np.ndarray | None:
    """The 28x28 picture Draw shows (its 5x enlarged image, decoded), in [0, 1]."""
    from PIL import Image
    img = page.get_by_test_id("stImage").filter(has_text=SHOWN).locator("img")
    if not await img.count():
        return None
    src = await img.first.get_attribute("src")
    body = await (await page.request.get(src if src.startswith("http") else url + src)).body()
    a = np.asarray(Image.open(io.BytesIO(body)).convert("L"), np.float32)
    return a[2::5, 2::5] / 255.0


async def _prediction(page, url: str, store, workspace: str, time_limit_s: float):
    """(shown, expected): Draw's answer once there is one, and the NumPy predictor's for the picture the page shows
    with it."""
    from mnist_model.predict import Predictor
    metric = page.get_by_test_id("stMetric").filter(has_text=re.compile("^Prediction"))
    deadline = time.perf_counter() + time_limit_s
    while True:
        await _settle(page)
        if await metric.count():
            value = (await metric.first.get_by_test_id("stMetricValue").inner_text()).strip()
            shown = await _shown_image(page, url)
            if value != "–" and shown is not None:
                run = store.run(store.model_run_id(workspace), workspace)
                return value, str(int(Predictor.for_run(run)(shown[None])[0].argmax()))
        if time.perf_counter() > deadline:
            raise ProtocolError(f"no new answer on Draw within {time_limit_s:.0f} s")
        await asyncio.sleep(0.3)


async def lesson(browser, url: str, code: str, student, digits, store, rng: random.Random, time_limit_s: float,
                 think_s: tuple[float, float], watch_s: float) -> None:
    """One student's lesson in a Chromium page of its own; fills in the Student record (see protocol_load)."""
    async def think():
        await asyncio.sleep(rng.uniform(*think_s))

    clock = WireClock()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        page.on("websocket", clock.attach)
        await page.goto(f"{url}/class?join={code}")
        await _settle(page)
        from playwright.async_api import expect
        await expect(page.get_by_role("textbox", name="Class code")).to_have_value(code, timeout=WAIT_MS)
        await page.get_by_role("textbox", name="Nickname").fill(student.name)
        await page.get_by_role("button", name="Join", exact=True).click()
        await page.get_by_text(f"You are in as: {student.name}").wait_for(timeout=WAIT_MS)
        student.workspace = next(c["value"] for c in await context.cookies() if c["name"] == "mnist_live_workspace")
        await think()
        await page.goto(f"{url}/train?epochs=1&train_size=500")  # the teacher's settings link
        await _settle(page)
        await think()
        await page.get_by_role("button", name="Train", exact=True).click()
        await page.get_by_text("Run 1: finished").wait_for(timeout=time_limit_s * 1000)
        student.finished_at = time.perf_counter()
        await think()
        await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw").click()
        canvas = page.locator("canvas.upper-canvas")
        await canvas.first.wait_for(timeout=WAIT_MS)
        for n, digit in enumerate(digits):
            if n:
                await page.get_by_role("button", name="Clear", exact=True).click()
                await page.locator("canvas.upper-canvas").first.wait_for(timeout=WAIT_MS)
                await _settle(page)
                await asyncio.sleep(0.5)
            box = await page.locator("canvas.upper-canvas").last.bounding_box()
            for points in DIGITS[digit]:
                await _stroke(page, box, points)
                await asyncio.sleep(0.3)
            shown, expected = await _prediction(page, url, store, student.workspace, 60)
            student.predictions.append((shown, expected))
            await think()
        await page.get_by_text("Poke your drawing").click()
        slider = page.get_by_test_id("stSlider").filter(has_text="Move sideways (px)").get_by_role("slider").first
        await slider.wait_for(timeout=WAIT_MS)
        for _ in range(3):  # 0 -> 3 px, one press at a time once its rerun has landed
            await slider.focus()
            await slider.press("ArrowRight")
            await _settle(page)
            await asyncio.sleep(0.3)
        student.predictions.append(await _prediction(page, url, store, student.workspace, 60))
        await think()
        await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Class").click()
        await asyncio.sleep(watch_s)
        if await page.get_by_test_id("stException").count():
            raise ProtocolError("an exception on the page")
    except Exception as exc:  # a student's failure is a finding, reported with the others
        student.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        student.timings = [("browser", t) for t in clock.timings]
        student.polls, student.polls_absorbed = clock.polls, clock.polls_absorbed
        await context.close()


async def launch(playwright):
    """Debian's Chromium, headless (Playwright cannot download its own browser here)."""
    import shutil
    return await playwright.chromium.launch(executable_path=shutil.which("chromium") or appserver.CHROMIUM,
                                            args=appserver.CHROMIUM_ARGS)
