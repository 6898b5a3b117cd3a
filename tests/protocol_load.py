"""A class of protocol students against a fresh server: how much server one student costs.

Each student is a tests/protocol.Session (no browser) following a lesson script with think times: open the app,
join the teacher's class, set Epochs and Training examples, Train, wait for the run, draw a real digit on Draw,
poke it, and watch the board on Class. The teacher keeps the board open. Every answer is checked: each run
finishes and reaches the teacher's board, each prediction is the digit that the student's own model (read from the
store, run in NumPy) gives for the very image sent, and the server logs no error.

The server runs on one core (taskset) and this process on another; its training workers may use any core, and
their CPU is reported apart from the server's.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import io
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import appserver
import protocol
from protocol import ProtocolError, Session

CANVAS = "drawable_canvas"
EXAMPLES = "500"  # a run of 1 epoch on 500 examples: a few seconds, and clearly right on most digits
THINK_S = (0.5, 2.5)  # a student's pause between two actions
WATCH_S = 5.0  # how long a student watches the board at the end
ARRIVE_S = (0.0, 0.2)  # the pause between two students opening the app (100 students: about 10 s)
PACES = {  # (think_s, watch_s, arrive_s)
    # every step as fast as a student can click, everyone in within ~10 s: the server's worst minute
    "stress": (THINK_S, WATCH_S, ARRIVE_S),
    # a class told "open the link now": in within a minute, a few seconds to read a page or type a code
    "class": ((3.0, 10.0), 10.0, (0.0, 1.2)),
}


@dataclass
class Student:
    """One student's record: what they did, how long each answer took, what went wrong."""
    name: str
    workspace: str = ""
    finished_at: float | None = None  # the run's heading seen (perf_counter)
    predictions: list[tuple[str, str]] = field(default_factory=list)  # (shown, expected)
    timings: list[tuple[str, float]] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)
    polls_absorbed: int = 0
    unfinished_runs: int = 0
    stalled_runs: int = 0
    error: str = ""


def digit_canvas(image: np.ndarray, px: int = 280) -> np.ndarray:
    """A (28, 28) digit in [0, 1] as the canvas would hold it: (px, px, 4) uint8, white ink on black."""
    from PIL import Image
    big = np.asarray(Image.fromarray((image * 255).astype(np.uint8)).resize((px, px), Image.BILINEAR))
    rgba = np.zeros((px, px, 4), np.uint8)
    rgba[..., :3] = big[..., None]
    rgba[..., 3] = 255
    return rgba


def canvas_value(rgba: np.ndarray) -> dict:
    """The canvas component's state as the browser reports it: the drawing's PNG as a data URL."""
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(rgba).save(out, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    return {"drawing": {"raw": {"version": "7.4.0", "objects": []}, "data": url}}


def _expected(store, workspace: str, rgba: np.ndarray, **pokes) -> str:
    """The digit the workspace's model in use gives for this canvas (the server's own preprocessing, in NumPy)."""
    from mnist_model.poke import poke
    from mnist_model.predict import Predictor
    from mnist_model.preprocess import canvas_to_mnist
    run = store.run(store.model_run_id(workspace), workspace)
    image = canvas_to_mnist(rgba)
    if pokes:
        image = poke(image, **pokes)
    return str(int(Predictor.for_run(run)(image[None])[0].argmax()))


async def teacher_starts(url: str, cookies: dict | None = None) -> tuple[Session, str]:
    """The teacher opens Class, starts a class and keeps the board open; returns the session and the join code."""
    teacher = await Session.open(url, cookies=cookies)
    await teacher.goto("class")
    await teacher.click("Start a class")
    await teacher.until(lambda s: any("5.5rem" in t for t in s.texts()), 60, "the join code")
    code = next(t for t in teacher.texts() if "5.5rem" in t).split(">")[1].split("<")[0].strip()
    return teacher, code


def board_names(teacher: Session) -> set[str]:
    names = set()
    for frame in teacher.dataframes():
        if "nickname" in frame.columns:
            names.update(frame["nickname"].astype(str))
    return names


async def lesson(url: str, code: str, student: Student, digits, store, rng: random.Random,
                 time_limit_s: float, cookies: dict | None = None, think_s=THINK_S, watch_s=WATCH_S) -> None:
    """One student's lesson; fills in the Student record, and its error when something went wrong. cookies: the
    browser's (nginx's sticky one, in a district)."""
    async def think():
        await asyncio.sleep(rng.uniform(*think_s))

    s = None
    try:
        s = await Session.open(url, cookies=cookies)
        cookie = s.component_data("workspace_cookie") or {}
        student.workspace = cookie.get("id", "")
        await think()
        await s.goto("class")
        await s.set_value("text_input", "Class code", "type the code", string_value=code)
        await s.set_value("text_input", "Nickname", "type a nickname", string_value=student.name)
        await s.click("Join")
        await s.until(lambda p: f"You are in as: {student.name}" in p.texts(), 30, "the class to take them")
        await think()
        await s.goto("train")
        await s.set_value("slider", "Epochs", "set epochs", double_array_value=[1])
        await s.set_value("slider", "Training examples", "set examples", string_array_value=[EXAMPLES])
        await think()
        await s.click("Train")
        await s.until(lambda p: "Run 1: finished" in p.texts(), time_limit_s, "Run 1 to finish")
        student.finished_at = time.perf_counter()
        await think()
        await s.goto("draw")
        for image, label in digits:
            rgba = digit_canvas(image)
            await s.set_component(CANVAS, canvas_value(rgba), "draw a digit")
            expected = _expected(store, student.workspace, rgba)
            await s.until(lambda p: p.metric("Prediction") not in (None, "–"), 30, "a prediction")
            student.predictions.append((s.metric("Prediction"), expected))
            await think()
        await s.set_value("slider", "Move sideways (px)", "poke", double_array_value=[3.0])
        student.predictions.append((s.metric("Prediction"), _expected(store, student.workspace, rgba, dx=3)))
        await think()
        await s.goto("class")
        await asyncio.sleep(watch_s)
        if s.errors:
            raise ProtocolError(s.errors[0])
    except Exception as exc:  # a student's failure is a finding, reported with the others
        student.error = f"{type(exc).__name__}: {exc}"
    finally:
        if s is not None:
            student.timings, student.polls, student.unfinished_runs = s.timings, s.polls, s.unfinished_runs
            student.stalled_runs = s.stalled_runs
            student.polls_absorbed = s.polls_absorbed
            await s.close()


def _sum(measure, pids: list[int]) -> float:
    return sum(measure(pid) for pid in pids)


def _cpu_s(pid: int) -> float:
    """The process's own user + system CPU seconds (not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _workers_cpu_s(pid: int) -> float:
    total = 0.0
    for child in appserver.descendants(pid):
        try:
            total += _cpu_s(child)
        except OSError:
            pass
    return total


def _free_workers(pid: int) -> None:
    """The server's training workers may use every core (they inherit the server's one-core affinity)."""
    for child in appserver.descendants(pid):
        try:
            os.sched_setaffinity(child, range(os.cpu_count()))
        except OSError:
            pass


async def class_of(url: str, server_pids: list[int], store, students: int, seed: int, time_limit_s: float,
                   browsers: bool = False, sticky: bool = False, think_s=THINK_S, watch_s=WATCH_S,
                   arrive_s=ARRIVE_S) -> dict:
    """The lesson for `students` protocol students (or Chromium pages) and one teacher; returns the figures (the
    servers' CPU and memory added up). sticky: each student brings nginx's sticky cookie of their own. think_s:
    the range of a student's pauses; watch_s: how long each watches the board at the end; arrive_s: the range of
    the gap before the next student opens the app."""
    from mnist_model.data import load_dataset
    rng = random.Random(seed)
    test = load_dataset("mnist")
    picks = rng.sample(range(len(test.y_test)), 2 * students)
    playwright = browser = None
    if browsers:
        import browser_lesson
        from playwright.async_api import async_playwright
        from walker import DIGITS
        playwright = await async_playwright().start()
        browser = await browser_lesson.launch(playwright)
    cookies = (lambda who: {"mnist_live_server": who}) if sticky else (lambda who: None)
    teacher, code = await teacher_starts(url, cookies("teacher"))
    for pid in server_pids:
        _free_workers(pid)
    base_rss = _sum(_rss_mb, server_pids)
    idle_mb = await idle_mb_per_session(url, server_pids, students, cookies)
    cpu0, workers0, t0 = _sum(_cpu_s, server_pids), _sum(_workers_cpu_s, server_pids), time.perf_counter()
    client0 = time.process_time()
    records = [Student(f"Student {i + 1}") for i in range(students)]
    seen: dict[str, float] = {}

    async def watch_board():  # the board's table is read again only when the teacher's page has changed
        read = -1
        while True:
            if teacher.version != read:
                read = teacher.version
                for name in board_names(teacher) - set(seen):
                    seen[name] = time.perf_counter()
            await asyncio.sleep(0.02)
    watcher = asyncio.create_task(watch_board())
    tasks = []
    for i, student in enumerate(records):
        mine = random.Random(seed * 1000 + i)
        if browsers:  # digits drawn with the mouse, from the walker's strokes
            tasks.append(asyncio.create_task(browser_lesson.lesson(
                browser, url, code, student, mine.sample(sorted(DIGITS), 2), store, mine, time_limit_s, think_s,
                watch_s)))
        else:
            digits = [(test.x_test[j], int(test.y_test[j])) for j in picks[2 * i: 2 * i + 2]]
            tasks.append(asyncio.create_task(lesson(url, code, student, digits, store, mine, time_limit_s,
                                                    cookies(f"student-{i}"), think_s, watch_s)))
        await asyncio.sleep(rng.uniform(*arrive_s))
    all_in_rss = _sum(_rss_mb, server_pids)  # every student connected (at the stress pace, most on the first page)
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and any(r.name not in seen for r in records if r.finished_at):
        await asyncio.sleep(0.1)
    watcher.cancel()
    if browser is not None:
        await browser.close()
        await playwright.stop()
    minutes = (time.perf_counter() - t0) / 60
    cpu, workers = _sum(_cpu_s, server_pids) - cpu0, _sum(_workers_cpu_s, server_pids) - workers0
    client = time.process_time() - client0
    peak_rss = _sum(_rss_mb, server_pids)
    await teacher.close()
    timings = [t for r in records for _, t in r.timings]
    polls = [t for r in records for t in r.polls]
    delays = [seen[r.name] - r.finished_at for r in records if r.finished_at and r.name in seen]
    wrong = [(r.name, shown, expected) for r in records for shown, expected in r.predictions if shown != expected]
    finished = sum(1 for r in records if r.finished_at)
    on_board = sum(1 for r in records if r.finished_at and r.name in seen)
    errors = [f"{r.name}: {r.error}" for r in records if r.error] + teacher.errors
    return {
        "students": students, "finished": finished, "on_board": on_board,
        "predictions": sum(len(r.predictions) for r in records), "wrong_predictions": len(wrong),
        "errors": len(errors), "first_errors": errors[:5] + [f"{n}: showed {s}, expected {e}" for n, s, e in wrong[:5]],
        "interactions": len(timings),
        "runs_without_finish": sum(r.unfinished_runs for r in records),  # runs whose end Streamlit dropped
        "runs_without_finish_then_a_fragment": sum(r.stalled_runs for r in records),  # the page stopped updating
        "p50_s": _pct(timings, 50), "p95_s": _pct(timings, 95), "max_s": max(timings, default=float("nan")),
        "poll_p95_s": _pct(polls, 95), "polls": len(polls),
        "polls_absorbed": sum(r.polls_absorbed for r in records),
        "board_delay_max_s": max(delays, default=float("nan")), "board_delay_p50_s": _pct(delays, 50),
        "minutes": round(minutes, 2),
        "server_cpu_s": round(cpu, 1), "server_cpu_share": round(cpu / (minutes * 60), 2),
        "server_cpu_s_per_student_min": round(cpu / (students * minutes), 3),
        "workers_cpu_s": round(workers, 1),
        "client_cpu_share": round(client / (minutes * 60), 2),  # near 1: the clients, not the server, set the pace
        "server_mb_per_session": idle_mb,
        "server_rss_mb": {"start": round(base_rss), "all_connected": round(all_in_rss), "end": round(peak_rss)},
    }


async def idle_mb_per_session(url: str, server_pids: list[int], n: int, cookies) -> float:
    """The servers' memory per idle session, before the lesson: n sessions open the app and stay on Home (each a
    workspace of its own); the growth of the servers' RSS over n. They are closed again."""
    before = _sum(_rss_mb, server_pids)
    sessions = []
    for i in range(n):  # one after another, as fast as the server answers
        sessions.append(await Session.open(url, cookies=cookies(f"idle-{i}")))
    await asyncio.sleep(1)
    grown = _sum(_rss_mb, server_pids) - before
    for s in sessions:
        await s.close()
    await asyncio.sleep(2)  # the servers let them go before the lesson starts
    return round(max(grown, 0) / n, 2)


def _pct(values, q) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def run(students: int = 20, slots: int = 1, seed: int = 0, time_limit_s: float = 900, server_core: int = 0,
        browsers: bool = False, servers: int = 0, think_s=THINK_S, watch_s=WATCH_S, arrive_s=ARRIVE_S) -> dict:
    """A fresh server (one core, its own data folder), the lesson, the figures (with "ok" and the log's errors).
    browsers: Chromium pages do the lesson instead of protocol clients (tests/browser_lesson.py).
    servers: that many app servers on a throw-away PostgreSQL behind nginx (deploy/nginx.conf), each on a core
    of its own, students spread by nginx's sticky cookie (0: one server on its SQLite store, no nginx).
    think_s, watch_s, arrive_s: the students' pauses, their last look at the board, the gaps between their
    arrivals (class_of; PACES)."""
    import tempfile

    from loadtest import _is_error
    from mnist_model.store import Store
    tmp = Path(tempfile.mkdtemp(prefix="mnist-live-protocol-"))
    log_path, data = tmp / "server.log", tmp / "data"
    cores = sorted(os.sched_getaffinity(0))
    pins = [str(cores[(server_core + i) % len(cores)]) for i in range(max(servers, 1))]
    postgres = district = server = store = None
    client_cores = [c for c in cores if str(c) not in pins] or cores
    try:
        if servers:
            import deployment
            from postgres import Postgres
            postgres = Postgres()
            database_url = postgres.database()
            district = deployment.Deployment(database_url, servers, pins=pins, MNIST_LIVE_TRAINING_SLOTS=str(slots))
            url, pids, logs = district.url, [p.pid for p in district.procs], district.logs
            store = Store(data, url=database_url)
        else:
            server, url = appserver.start(log_path, pin=pins[0], MNIST_LIVE_DATA=str(data),
                                          MNIST_LIVE_TRAINING_SLOTS=str(slots))
            pids, logs = [server.pid], [log_path]
            appserver.wait_ready(url)
            store = Store(data)
        os.sched_setaffinity(0, client_cores)
        figures = protocol.run(class_of(url, pids, store, students, seed, time_limit_s, browsers,
                                        sticky=bool(servers), think_s=think_s, watch_s=watch_s,
                                        arrive_s=arrive_s))
        log_errors = [line for log in logs for line in log.read_text().splitlines() if _is_error(line)]
        if district is not None:  # how nginx spread them
            figures["students_per_server"] = sorted(collections.Counter(
                district.server_of(f"student-{i}") for i in range(students)).values())
    finally:
        os.sched_setaffinity(0, cores)
        if store is not None:
            store.close()
        if server is not None:
            appserver.stop(server)
        if district is not None:
            import shutil
            for i, log in enumerate(district.logs):  # kept with the figures when something went wrong
                shutil.copy(log, tmp / f"server{i}.log")
            district.close()
        if postgres is not None:
            postgres.close()
    figures.update({"slots": slots, "servers": max(servers, 1), "store": "postgresql" if servers else "sqlite",
                    "server_cores": ",".join(pins), "log_errors": len(log_errors),
                    "clients": "chromium" if browsers else "protocol"})
    figures["ok"] = (figures["finished"] == students and figures["on_board"] == students and not figures["errors"]
                     and not figures["wrong_predictions"] and figures["predictions"] == 3 * students
                     and not log_errors)
    if not figures["ok"]:
        figures["server_log"] = str(tmp)
        figures["first_log_errors"] = log_errors[:5]
    else:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


CALIBRATED = ("finished", "on_board", "predictions", "wrong_predictions", "errors", "log_errors", "p50_s", "p95_s",
              "poll_p95_s", "board_delay_max_s", "server_cpu_s_per_student_min", "server_mb_per_session")


def calibrate(students: int = 5, seed: int = 0) -> dict:
    """The same lesson by protocol clients and by Chromium pages, each against a fresh server: their figures side
    by side (the browsers' own CPU is not in client_cpu_share)."""
    both = {"protocol": run(students, seed=seed, time_limit_s=300),
            "chromium": run(students, seed=seed, time_limit_s=300, browsers=True)}
    return {"students": students, "ok": all(f["ok"] for f in both.values()),
            "side_by_side": {k: (both["protocol"].get(k), both["chromium"].get(k)) for k in CALIBRATED},
            **both}
