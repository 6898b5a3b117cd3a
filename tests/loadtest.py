"""Load test: a classroom on one server. Sessions in real browser contexts; some train, the rest draw.

python tests/loadtest.py [--sessions 10] [--trainers 5] [--short]

Starts its own server on a free loopback port, trains and saves one model for the drawers first, then:
the trainers press Train at about the same time (one training slot: the rest queue), while the drawers
draw strokes and time each prediction. Checks that every session gets its result, trainings finish in
the order they were asked for, predictions stay fast, memory stays bounded and the server logs no
error. Bounded in count and time; it stops by itself. Exit status 0 when every check passes.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import appserver  # noqa: E402  (beside this file)
CHROMIUM = shutil.which("chromium") or appserver.CHROMIUM
ARGS = appserver.CHROMIUM_ARGS
P95_LIMIT_S = 1.0  # a drawing's prediction must show within this, at p95, while trainings run
RSS_LIMIT_MB = 1000  # the server process (TensorFlow lives in the worker, not here)
PREDICTION_SHOWN = ("() => [...document.querySelectorAll('[data-testid=stMetric]')]"
                    ".some(e => e.innerText.includes('Prediction'))")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _is_error(line: str) -> bool:
    """A Python traceback or an error logged by the app; TensorFlow's C++ start-up chatter is not one."""
    if line[:5] in ("E0000", "W0000", "I0000"):  # e.g. "failed call to cuInit" on a machine without a GPU
        return False
    return "Traceback" in line or " ERROR " in line or "Exception" in line


def _saved_model(runs_dir: Path) -> None:
    """One trained run in the server's runs folder, for the drawers."""
    from mnist_model.config import TrainConfig
    from mnist_model.data import load_dataset
    from mnist_model.runs import Run, write_run_files
    from mnist_model.training import train
    config = TrainConfig(epochs=1, train_size=2000)
    ds = load_dataset("mnist")
    result = train(config, ds)
    write_run_files(Run(config, result.epochs, "finished", ds.title, result.model.get_weights(), name="Shared"),
             runs_dir)


def _open(page, url: str, query: str = "") -> None:
    page.goto(url + "/" + query)
    page.get_by_text("Lesson plan").wait_for(timeout=120000)


def _nav(page, name: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()


def _pick_saved_model(page) -> None:
    _nav(page, "Draw")
    page.get_by_test_id("stSelectbox").filter(has_text="Use a model shared").click(timeout=60000)
    page.get_by_role("option").filter(has_text="Shared").first.click()
    page.locator("canvas.upper-canvas").wait_for(timeout=60000)


def _stroke_latency(page, i: int) -> float:
    """Draw one stroke; seconds from releasing the mouse to the prediction on screen."""
    box = page.locator("canvas.upper-canvas").bounding_box()
    x = 70 + (i * 37) % 140
    page.mouse.move(box["x"] + x, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + x + 20, box["y"] + 240, steps=5)
    t0 = time.perf_counter()
    page.mouse.up()
    # Polled every animation frame: Playwright's own waits back off to 500 ms between checks.
    page.wait_for_function(PREDICTION_SHOWN, polling="raf", timeout=30000)
    latency = time.perf_counter() - t0
    page.get_by_role("button", name="Clear").click()
    page.get_by_text("Draw a digit on the black square").first.wait_for(timeout=30000)
    return latency


def run(sessions: int = 10, trainers: int = 5, short: bool = False, time_limit_s: float = 600) -> dict:
    from playwright.sync_api import sync_playwright
    deadline = time.time() + time_limit_s
    tmp = Path(tempfile.mkdtemp(prefix="mnist-live-load-"))
    runs_dir, log_path = tmp / "runs", tmp / "server.log"
    _saved_model(runs_dir)
    server, url = appserver.start(log_path, MNIST_LIVE_RUNS=str(runs_dir), MNIST_LIVE_TRAINING_SLOTS="1",
                                  MNIST_LIVE_DATA=str(tmp / "data"))
    figures = {"sessions": sessions, "trainings": trainers}
    try:
        query = "?epochs=1&train_size=1000" if short else "?epochs=2&train_size=2000"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pages = [browser.new_context(viewport={"width": 1100, "height": 1100}).new_page()
                     for _ in range(sessions)]
            train_pages, draw_pages = pages[:trainers], pages[trainers:]
            for page in train_pages:
                _open(page, url, query)
                _nav(page, "Train")
                page.get_by_role("button", name="Train", exact=True).wait_for(timeout=60000)
            for page in draw_pages:
                _open(page, url)
                _pick_saved_model(page)
            clicked = []
            for i, page in enumerate(train_pages):  # everyone presses Train at once
                page.get_by_role("button", name="Train", exact=True).click()
                clicked.append(i)
            finished_at: dict[int, float] = {}
            saw_queue = 0
            latencies, peak = [], _rss_mb(server.pid)
            stroke = 0
            while len(finished_at) < trainers and time.time() < deadline:
                for i, page in enumerate(train_pages):
                    if i not in finished_at:
                        if page.get_by_text("Test accuracy", exact=True).count():
                            finished_at[i] = time.perf_counter()
                        elif page.get_by_text("in the queue").count():
                            saw_queue += 1
                for page in draw_pages:
                    latencies.append(_stroke_latency(page, stroke))
                    stroke += 1
                peak = max(peak, _rss_mb(server.pid))
                if not draw_pages:
                    time.sleep(0.5)
            for page in draw_pages:  # a few more strokes after the trainings, for the record
                latencies.append(_stroke_latency(page, stroke))
            order = sorted(finished_at, key=finished_at.get)
            figures.update({
                "trainings finished": len(finished_at), "finished in the order asked": order == clicked[:len(order)],
                "sessions that saw a queue position": min(saw_queue, trainers),
                "drawing sessions": len(draw_pages), "predictions": len(latencies),
                "prediction p50 s": float(np.percentile(latencies, 50)) if latencies else float("nan"),
                "prediction p95 s": float(np.percentile(latencies, 95)) if latencies else float("nan"),
                "server peak RSS MB": peak})
            browser.close()
    finally:
        appserver.stop(server)
    figures["errors"] = sum(1 for line in log_path.read_text().splitlines() if _is_error(line))
    figures["ok"] = bool(figures.get("trainings finished") == trainers and figures.get("finished in the order asked")
                         and figures.get("predictions", 0) >= len(draw_pages)
                         and figures.get("prediction p95 s", 99) < P95_LIMIT_S
                         and figures.get("server peak RSS MB", 1e9) < RSS_LIMIT_MB and figures["errors"] == 0)
    if figures["ok"]:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        figures["server log"] = str(log_path)
    return figures


def report(figures: dict) -> str:
    return "\n".join(f"{k:36s} {v:.3g}" if isinstance(v, float) else f"{k:36s} {v}" for k, v in figures.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--trainers", type=int, default=5)
    parser.add_argument("--short", action="store_true", help="shorter trainings, for CI")
    args = parser.parse_args()
    figures = run(args.sessions, min(args.trainers, args.sessions), args.short)
    print(report(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
