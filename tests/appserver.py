"""Start the app's Streamlit server on a free loopback port (browser tests and the load test)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(log_path: Path, pin: str | None = None, **env) -> tuple[subprocess.Popen, str]:
    """The server (offline, its own data folder unless env names one), logging to log_path; returns once its
    port answers. pin: the CPU list it runs on (taskset), for load measurements."""
    own_data = "MNIST_LIVE_DATA" not in env
    if own_data:
        env["MNIST_LIVE_DATA"] = tempfile.mkdtemp(prefix="mnist-live-server-data-")
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*(["taskset", "-c", pin] if pin else []),
                                 sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=ROOT,
                                env=dict(os.environ, MNIST_OFFLINE="1", **env), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.2)
    proc.own_data = env["MNIST_LIVE_DATA"] if own_data else None  # stop() removes it
    return proc, f"http://127.0.0.1:{port}"


def descendants(pid: int) -> list[int]:
    """pid's children, their children (a server's zygote and its training workers), and so on; [] once it ended."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            out += [int(k) for k in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            pass
    return out + [g for k in out for g in descendants(k)]


def wait_ready(url: str, timeout: float = 60) -> None:
    """Until the server's health check answers ok."""
    import urllib.request
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.time() > deadline:
                raise
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """Stop the server and remove the data folder start() made for it."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(15)
    if getattr(proc, "own_data", None):
        shutil.rmtree(proc.own_data, ignore_errors=True)


def stroke(page, box: dict, points, steps: int = 4) -> None:
    """Draw one stroke with the mouse through points (px from the box's top left corner)."""
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    page.mouse.up()


INK_JS = """all => all.map(c => {  // white pixels on each canvas's drawing layer (the one under the mouse's)
  const lower = c.parentElement.querySelector('canvas.lower-canvas');
  const d = lower.getContext('2d').getImageData(0, 0, lower.width, lower.height).data;
  let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++;
  return n; })"""


def answered_or_explain(page, what: str, answer=None, timeout_ms: int = 30000) -> None:
    """Wait for Draw's answer to a stroke (answer: a locator; "What the network sees" unless given); else fail
    saying what the page showed (its answers, the canvases and the ink on each, a run going, errors) and whether a
    second stroke got an answer: a stroke lost in the browser, or a session that answers nothing."""
    answer = answer or page.get_by_text("What the network sees").first
    try:
        answer.wait_for(timeout=timeout_ms)
        return
    except Exception:  # noqa: BLE001 - Playwright's timeout: gather what the page shows, then fail
        pass
    canvas = page.locator("canvas.upper-canvas")
    seen = {"answers": [m.inner_text() for m in page.get_by_test_id("stMetric").all()],
            "ink on each canvas": canvas.evaluate_all(INK_JS),
            "running": page.get_by_test_id("stStatusWidget").count() > 0,
            "errors": page.get_by_test_id("stException").count() + page.get_by_test_id("stAlertContentError").count()}
    stroke(page, canvas.last.bounding_box(), [(200, 60), (199, 150), (198, 240)])
    try:
        page.get_by_text("What the network sees").first.wait_for(timeout=timeout_ms)
        seen["a second stroke"] = "answered"
    except Exception:  # noqa: BLE001
        seen["a second stroke"] = "not answered either"
    raise AssertionError(f"no answer to {what} within {timeout_ms / 1000:.0f} s; the page: {seen}")


def choose(page, box, option) -> None:
    """Open a selectbox (a locator) and click one of its options (a locator)."""
    for _ in range(4):  # a rerun that lands as the list opens closes it, and so does a scroll (the list of a box at
        box.evaluate("e => e.scrollIntoView({block: 'center'})")  # the window's bottom edge, scrolled to its
        box.click()  # option): the box in the middle of the window, open it again
        try:
            option.wait_for(timeout=3000)
            option.click(timeout=5000)
            return
        except Exception:
            page.keyboard.press("Escape")
    box.click()
    option.click()


STEADY_CHART_JS = """(chart, [quiet, limit]) => new Promise(resolve => {
  const t0 = performance.now(); let last = chart.querySelector('svg.marks, canvas.marks'), since = t0;
  const tick = () => {
    const now = chart.querySelector('svg.marks, canvas.marks');
    if (now !== last) { last = now; since = performance.now(); }
    if (now && performance.now() - since >= quiet) resolve(true);
    else if (performance.now() - t0 > limit) resolve(false); else setTimeout(tick, 20);
  };
  tick();
})"""


def steady_chart(chart, quiet_ms: int = 500, limit_ms: int = 15000) -> bool:
    """Wait until a Vega chart (a locator) has kept the same drawing for quiet_ms; False after limit_ms.

    Streamlit draws a chart anew some 100 ms after it shows again (a tab opened: its width is measured anew); a
    click on the drawing being replaced is lost (walker seeds 44 and 46 clicked a confusion cell within 50 ms of
    opening the Mistakes tab). A person's click comes later than that; a test's must too."""
    return chart.evaluate(STEADY_CHART_JS, [quiet_ms, limit_ms])


def clear_canvas(page, timeout: float = 60000):
    """Press Draw's Clear and return the canvas once the new, empty one is the only one on the page (the old one
    stays in the page for a moment while the new one mounts)."""
    from playwright.sync_api import expect
    canvas = page.locator("canvas.upper-canvas")
    canvas.evaluate_all("all => all.forEach(c => { c.dataset.cleared = '1'; })")
    page.get_by_role("button", name="Clear", exact=True).click()  # not the number box's "Clear value"
    fresh = page.locator("canvas.upper-canvas:not([data-cleared])")
    expect(fresh).to_have_count(1, timeout=timeout)
    expect(canvas).to_have_count(1, timeout=timeout)
    fresh.wait_for(state="visible", timeout=timeout)
    return canvas
