"""Model-based random walks through the app in Chromium: a seeded generator picks real user actions one after the
other, and after every action the walker checks what must always hold (no error on the page or traceback in the
server's log, the sidebar, the model in use, the predictions, the trainings, the runs and drawings kept).

    python tests/walker.py --seeds 100 --actions 40            # long mode
    python tests/walker.py --seeds 5 --actions 25 --seed-start 7
    python tests/walker.py --replay '[["goto", {"path": "/draw"}], ...]'

A failure is shrunk by replay (the action list with actions taken out, each replay on a fresh server) and printed
with its seed, the shortest list that still fails and the command that replays it.

Each action is (name, params): the generator draws the params from random.Random(seed) when it picks the action,
so that a list replays the same clicks without the generator; an action that makes no sense in the replayed state
(Stop with nothing training, say) is skipped.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

import appserver  # noqa: E402

CHROMIUM = shutil.which("chromium") or appserver.CHROMIUM
PAGES = ["Home", "Train", "Draw", "Explore", "Class"]
HEADING = {"Home": "Lesson plan", "Train": "Train the network", "Draw": "Draw", "Explore": "Explore",
           "Class": "Class"}
PATHS = {"Home": "/", "Train": "/train", "Draw": "/draw", "Explore": "/explore", "Class": "/class"}
PAGE_LIST_JS = (f"() => [...document.querySelectorAll('[data-testid=stSidebarNav] a')]"
                f".filter((a) => a.getClientRects().length > 0).length === {len(PAGES)}")  # shown, not only there
LONG = 300_000  # ms: anything that waits on a training or a server start under load
WAIT = 60_000  # ms: a page's rerun under load
SETTLED_JS = """(quietMs) => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.dataset.testConnectionState === "CONNECTED"
        && !["running", "rerunRequested"].includes(app.dataset.testScriptState)
        && (!quietMs || Date.now() - window.__walkStateSince >= quietMs);
}"""  # Streamlit's own test attributes on its app element; quietMs: no run began for that long (RUN_WATCH_JS)
# The walker's own watch on a tab (an init script): the sockets it opened, and the runs that ended since the last
# one opened. A tab that reconnects after a restart shows "connected, not running" before the new session's first
# run has begun, and that run then hides the page list for a moment (a fresh server's first run starts under the
# pages/ folder's hidden list) and draws the page anew: checks and clicks come after it (seed 14).
RUN_WATCH_JS = """(() => {
    const Native = window.WebSocket;
    window.__walkSockets = 0;
    window.__walkRunsEnded = 0;
    window.__walkSent = [];  // the last requests the tab sent: [ms, the BackMsg's bytes], for a failure's report
    window.__walkStates = [];  // the last script states: [ms, state]
    const keep = (list, item) => { list.push(item); if (list.length > 40) list.shift(); };
    function Watched(...args) {
        const ws = new Native(...args);
        window.__walkSockets += 1;
        window.__walkRunsEnded = 0;
        const send = ws.send.bind(ws);
        ws.send = (data) => {
            try {  // a copy of the bytes; encoded only when a failure reads them (SENT_JS)
                keep(window.__walkSent, [Date.now(), new Uint8Array(data instanceof Uint8Array ? data : data.buffer || data)]);
            } catch (e) { keep(window.__walkSent, [Date.now(), new Uint8Array(0)]); }
            return send(data);
        };
        return ws;
    }
    Watched.prototype = Native.prototype;
    for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Watched[name] = Native[name];
    window.WebSocket = Watched;
    let last = null;
    window.__walkStateSince = Date.now();
    new MutationObserver(() => {
        const app = document.querySelector('[data-testid="stApp"]');
        const state = app ? app.dataset.testScriptState : null;
        if (last === "running" && !["running", "rerunRequested"].includes(state)) window.__walkRunsEnded += 1;
        if (state !== last) { window.__walkStateSince = Date.now(); keep(window.__walkStates, [Date.now(), state]); }
        last = state;
    }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-test-script-state"]});
})();"""
SENT_JS = """() => [(window.__walkSent || []).map(([at, bytes]) => {
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    return [at, btoa(text)];
}), window.__walkStates || []]"""  # RUN_WATCH_JS's record, the requests in base64
APP_STATE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app ? [app.dataset.testConnectionState, app.dataset.testScriptState] : null;
}"""

# Digits drawn on the 280 px canvas, as strokes (polylines in canvas pixels).
DIGITS = {
    "1": [[(140, 40), (138, 140), (136, 240)]],
    "7": [[(60, 50), (220, 50), (200, 90), (160, 160), (130, 240)]],
    "0": [[(140, 40), (90, 70), (75, 140), (90, 210), (140, 240), (190, 210), (205, 140), (190, 70), (140, 40)]],
    "4": [[(80, 40), (60, 150), (200, 150)], [(170, 60), (170, 250)]],
}
SCRIBBLES = [[(40, 60), (240, 80), (60, 120), (230, 150), (50, 200), (250, 230)],
             [(140, 30), (120, 260), (30, 250), (250, 40)], [(100, 100), (180, 120)]]
PHOTO_DIGITS = {"1": [(300, 120), (300, 680)], "7": [(150, 150), (450, 150), (250, 650)]}
SMALL_SIZES = (100, 200, 500, 1000, 2000)
TRAIN_LINKS = ["epochs=1&train_size=500", "epochs=2&train_size=1000", "epochs=1&train_size=2000&architecture=cnn",
               "epochs=3&train_size=200&hidden_layers=2&dropout=0.3", "epochs=2&train_size=100&l2=0.001&patience=1",
               "epochs=1&train_size=1000&dataset=fashion", "epochs=2&train_size=500&batch_size=64&optimizer=adam"]
PRESETS = ["The notebook", "Overfit on purpose", "Quick look", "Fix the overfitting"]


class WalkFailure(AssertionError):
    """An invariant that did not hold (or an action that could not be done): the walk fails."""


def tab_record(page, at_ms: float, before_s: float = 2.0) -> str:
    """What the tab sent (each request: its kind, fragment, pressed buttons' keys) and its script states from
    before_s before at_ms (epoch ms, a click), in seconds from at_ms: for a failure's message (RUN_WATCH_JS keeps
    the last 40 of each)."""
    since_ms = at_ms - before_s * 1000
    import base64
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.runtime.state.common import user_key_from_element_id
    sent, states = page.evaluate(SENT_JS)
    lines = []
    for at, data in sent:
        if at < since_ms:
            continue
        msg, what = BackMsg(), "?"
        try:
            msg.ParseFromString(base64.b64decode(data))
            what = msg.WhichOneof("type") or "?"
            if what == "rerun_script":
                r = msg.rerun_script
                pressed = [user_key_from_element_id(w.id) or w.id for w in r.widget_states.widgets
                           if w.WhichOneof("value") == "trigger_value" and w.trigger_value]
                what += f" fragment={r.fragment_id or '-'} auto={r.is_auto_rerun} pressed={pressed}"
        except Exception as exc:  # a frame the record could not read
            what = f"unreadable ({exc})"
        lines.append((at, f"sent {what}"))
    lines += [(at, f"state {state}") for at, state in states if at >= since_ms]
    return "; ".join(f"{(at - at_ms) / 1000:+.3f} s {text}" for at, text in sorted(lines)) or "nothing"


def check(cond, message):
    if not cond:
        raise WalkFailure(message)


# ---------------------------------------------------------------- the server

def _port_free(port: int) -> bool:
    """Nobody listens on the port. (With SO_REUSEADDR, as the server binds: a killed server's connections linger
    in TIME_WAIT for a minute, which made every restart wait 30 s for nothing.)"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_server(log_path: Path, data: Path, port: int | None = None) -> tuple[subprocess.Popen, int]:
    """appserver.start with a given port (a restart keeps the browser's address) and data folder."""
    port = port or appserver.free_port()
    deadline = time.time() + 30
    while not _port_free(port) and time.time() < deadline:
        time.sleep(0.2)
    env = dict(os.environ, MNIST_OFFLINE="1", MNIST_LIVE_DATA=str(data), TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true",
                                 "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            check(proc.poll() is None, f"the server exited at start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
    raise WalkFailure("the server did not answer on its port within 90 s")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def kill_server(proc: subprocess.Popen, hard: bool) -> None:
    """kill -9 (hard) or terminate the server, then wait until its training workers have gone too."""
    kids = appserver.descendants(proc.pid)
    if hard:
        proc.send_signal(signal.SIGKILL)
    else:
        proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    deadline = time.time() + 30
    while any(_alive(k) for k in kids) and time.time() < deadline:
        time.sleep(0.1)
    for k in kids:  # the server's descendants, by id: never left behind
        if _alive(k):
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass


# ---------------------------------------------------------------- the walk

class Walk:
    """One server, one browser (a main tab, maybe a student's context), the store read beside them, and what the
    walker believes about them."""

    def __init__(self, seed, workdir: Path, verbose: bool = True):
        from playwright.sync_api import sync_playwright
        self.seed, self.workdir, self.verbose = seed, workdir, verbose
        self.data = workdir / "data"
        self.logs: list[Path] = []
        self.proc, self.port = None, None
        self._start()
        try:
            self.pw = sync_playwright().start()
            self.browser = self.pw.chromium.launch(executable_path=CHROMIUM, args=appserver.CHROMIUM_ARGS)
            self.context = self.browser.new_context(viewport={"width": 1280, "height": 1000})
            self.context.add_init_script(RUN_WATCH_JS)
            self.page = self.context.new_page()
        except BaseException:  # no browser: never leave the server running (a failed CI run left three)
            kill_server(self.proc, hard=False)
            raise
        self.student = None  # the student's page, once one joined
        self.student_ws = None
        self.class_code = None  # the class the main workspace teaches
        self.student_class = None  # the class the student joined (Start over leaves it with the old workspace)
        from mnist_model.store import Store
        self.store = Store(self.data)
        # what the walker believes
        self.where = None  # the main tab's page
        self.ws = None  # the main workspace's id
        self.known_runs: dict[str, set] = {}  # workspace -> run ids seen
        self.drawings: dict[str, int] = {}  # workspace -> kept drawings seen
        self.allowed_gone: set = set()  # run ids deleted on purpose
        self.kept_now = 0  # drawings this action kept
        self.canvas_clean = True  # nothing drawn since the last Clear / page open
        self.drawn_digit = None  # the clean digit drawn on an empty canvas, if that is all there is
        self.poked = False  # the Poke sliders moved in this session (they stay until Clear or a page load)
        self.bad_upload = False  # a bad file sits in the uploader
        self.photo = False  # the latest input on Draw is an uploaded photo
        self.stats: dict[str, int] = {}  # how often each check really compared something (not skipped)

    # ------------------------------------------------------------ plumbing

    def _start(self):
        log = self.workdir / f"server-{len(self.logs) + 1}.log"
        self.logs.append(log)
        self.proc, self.port = start_server(log, self.data, self.port)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        for closer in (lambda: self.browser.close(), lambda: self.pw.stop(),
                       lambda: kill_server(self.proc, hard=False), lambda: self.store.close()):
            try:
                closer()
            except Exception:
                pass

    def count(self, what):
        self.stats[what] = self.stats.get(what, 0) + 1

    def say(self, text):
        if self.verbose:
            print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def settle(self, page=None, timeout=WAIT, quiet_ms=0):
        """The page is connected and has finished its rerun (and no run began for quiet_ms). Streamlit's running
        indicator shows only after a run's first moments, and a tab reconnecting after a restart still shows the old
        page: the app element's connection and script states say it."""
        page = page or self.page
        page.wait_for_load_state("domcontentloaded")
        page.get_by_test_id("stApp").wait_for(timeout=timeout)
        page.wait_for_function(SETTLED_JS, arg=quiet_ms, timeout=timeout, polling=50)
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=timeout)

    def wait_page(self, name, page=None, timeout=WAIT):
        page = page or self.page
        if name == "Home":
            page.get_by_text("Lesson plan").first.wait_for(timeout=timeout)
        elif name == "Draw":
            page.get_by_role("heading", name=re.compile(r"^Draw ")).first.wait_for(timeout=timeout)
        else:
            page.get_by_role("heading", name=HEADING[name], exact=True).first.wait_for(timeout=timeout)
        self.settle(page, timeout)

    def workspace_id(self, context=None, wait_change_from=None):
        context = context or self.context
        deadline = time.time() + 30
        while True:
            ws = next((c["value"] for c in context.cookies() if c["name"] == "mnist_live_workspace"), None)
            if ws and ws != wait_change_from or time.time() > deadline:
                return ws
            time.sleep(0.2)

    def new_session(self):
        """A page load: a new Streamlit session (its pokes, uploads and canvas start afresh)."""
        self.poked = self.bad_upload = self.photo = False
        self.canvas_clean, self.drawn_digit = True, None

    def jobs(self, ws=None):
        return self.store.jobs(ws or self.ws, ("queued", "running"))

    def wait_trainings_end(self, ws=None, timeout=LONG / 1000):
        deadline = time.time() + timeout
        while self.jobs(ws) and time.time() < deadline:
            time.sleep(0.3)
        check(not self.jobs(ws), f"a training still runs or waits after {timeout:.0f} s: {self.jobs(ws)}")

    def model_run(self, ws=None):
        ws = ws or self.ws
        chosen = self.store.model_run_id(ws)
        run = self.store.run(chosen, ws) if chosen else None
        if run is None:
            runs = self.store.runs(ws)
            run = runs[-1] if runs else None
        return run

    def nav(self, name, page=None):
        page = page or self.page
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
        self.wait_page(name, page)
        if page is self.page:
            self.where = name

    def goto(self, path, page=None):
        page = page or self.page
        page.goto(self.url + path)
        name = next((n for n, p in PATHS.items() if p != "/" and path.startswith(p)), "Home")
        self.wait_page(name, page, timeout=LONG)
        if page is self.page:
            self.where = name
            self.new_session()
        return name

    def ensure(self, name):
        if self.where != name:
            self.nav(name)

    # ------------------------------------------------------------ invariants

    def check_all(self, action):
        page = self.page
        self.settle()
        self.check_log()
        self.check_errors(page)
        self.check_sidebar(page)
        ws = self.workspace_id()
        check(ws, "the browser has no workspace cookie")
        check(ws == self.ws or action in ("start_over", "first"), f"the workspace changed ({self.ws} -> {ws}) "
              f"without Start over")
        self.ws = ws
        self.check_store()
        self.check_model(page)
        self.check_training_line(page)
        if self.where == "Train":
            self.check_train_settings(page)
        if self.where == "Draw":
            self.check_prediction(page)

    def check_log(self):
        for log in self.logs:
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                raise WalkFailure(f"a traceback in the server's log {log.name}:\n"
                                  f"{text[max(0, text.index('Traceback') - 200):][:3000]}")

    def check_errors(self, page):
        failed_import = page.get_by_text("dynamically imported module")
        if failed_import.count():  # a chart's code did not load (a restart as it was fetched): the page loads
            failed_import.first.wait_for(state="detached", timeout=LONG)  # itself again once the server answers
            page.wait_for_function(PAGE_LIST_JS, timeout=LONG, polling=50)  # the new page's first run is over, not
            self.settle(page, timeout=LONG)  # only its loading begun
        exc = page.get_by_test_id("stException")
        check(not exc.count(), f"an exception on the page: {exc.first.inner_text()[:2000] if exc.count() else ''}")
        for err in page.get_by_test_id("stAlertContentError").all():
            text = err.inner_text()
            if self.bad_upload and text.startswith("That file can't be used"):
                continue
            raise WalkFailure(f"an error box on the page: {text[:2000]}")

    def check_sidebar(self, page, tries=3):
        nav = page.get_by_test_id("stSidebarNav").get_by_role("link")
        for attempt in range(tries):
            names = [t.split("\n")[-1].strip() for t in nav.all_inner_texts()]
            if names == PAGES:
                break
            # A page that is loading itself again (see check_errors) or reconnecting shows no list until its first
            # run, and a fresh server's first run hides the list for a moment (hidden links read 'homeHome': the
            # icons' names run into the labels; seeds 44, 90): the list must come back, right, once the page ran
            try:
                page.wait_for_function(PAGE_LIST_JS, timeout=LONG, polling=50)
                self.settle(page, timeout=LONG)
            except Exception:  # playwright's TimeoutError: the check below says what is missing
                pass
            time.sleep(1.5)
            names = [t.split("\n")[-1].strip() for t in nav.all_inner_texts()]
        check(names == PAGES, f"the sidebar lists {names}, not {PAGES}")  # as last read (a second read raced)
        check(page.get_by_test_id("stSidebar").get_by_text("Your workspace").count() == 1,
              "the sidebar has no 'Your workspace' panel")

    def check_store(self):
        rows = self.store.query("SELECT workspace_id, state FROM jobs")
        states = {s for _, s in rows}
        check(states <= {"queued", "running", "interrupted"}, f"a training in an unknown state: {rows}")
        busy = {}
        for ws, state in rows:
            if state in ("queued", "running"):
                busy[ws] = busy.get(ws, 0) + 1
        check(all(n <= 1 for n in busy.values()), f"more than one training runs or waits in a workspace: {busy}")
        for ws in {self.ws, self.student_ws, *self.known_runs} - {None}:
            runs = {r.run_id for r in self.store.runs(ws)}
            gone = self.known_runs.get(ws, set()) - runs - self.allowed_gone
            check(not gone, f"runs disappeared without Delete from workspace {ws[:6]}: {gone}")
            self.known_runs[ws] = runs
            n = len(self.store.drawings(ws)[0])
            before = self.drawings.get(ws, n)
            expected = before + (self.kept_now if ws == self.ws else 0)
            check(n == expected, f"workspace {ws[:6]} keeps {n} drawings, {expected} expected")
            self.drawings[ws] = n
        self.kept_now = 0

    def sidebar_model(self, page):
        caps = page.get_by_test_id("stSidebar").get_by_test_id("stCaptionContainer").all_inner_texts()
        return next((c.split("Model:", 1)[1].strip() for c in caps if c.startswith("Model:")), None)

    def _until_settled(self, look, tries):
        """look() says what is wrong (or None); asked again, 1.5 s apart, after the page settles (a training may
        end between the reads, and the page follows in a rerun); raises what is wrong at the last try."""
        for attempt in range(tries):
            why = look()
            if why is None:
                return
            if attempt < tries - 1:
                time.sleep(1.5)
                self.settle()
        raise WalkFailure(why)

    def check_model(self, page, tries=3):
        """The sidebar names the model the store says the workspace uses, and so does the page."""
        def look():
            run = self.model_run()
            want = run.label if run is not None else "none yet - train one"
            shown = self.sidebar_model(page)
            if shown != want:
                return f"the sidebar names the model {shown!r}, the store {want!r}"
            if self.where == "Draw":
                caps = page.get_by_test_id("stMain").get_by_test_id("stCaptionContainer").all_inner_texts()
                named = next((c[len("Model: "):] for c in caps if c.startswith("Model: ")), None)
                if named != (run.label if run is not None else None):
                    return f"Draw says 'Model: {named}', the store {want!r}"
            if self.where == "Train" and run is not None and run.run_id in self.known_runs.get(self.ws, ()):
                text = _model_choice(page)
                if text != run.label:
                    return f"Train's model selectbox shows {text!r}, the store {want!r}"
            return None
        self._until_settled(look, tries)
        self.count(f"model named on {self.where}" if self.where in ("Draw", "Train") else "model in sidebar")

    def check_training_line(self, page, tries=4):
        """The sidebar says a training runs or waits only while one does: the page (or the sidebar's own timer)
        reruns when it ends. (After every training on Train the line stayed: seeds 0, 1, 2 and 78.) The other way
        round is allowed: an idle page learns of another tab's training at its next rerun."""
        def look():
            caps = page.get_by_test_id("stSidebar").get_by_test_id("stCaptionContainer").all_inner_texts()
            says = next((c for c in caps if c.startswith("Training:")), None)
            if says is None or self.jobs():
                return None
            return f"the sidebar says {says!r}, but no training runs or waits in the workspace"
        self._until_settled(look, tries)
        self.count("training line")

    def check_train_settings(self, page):
        """The Train page's Epochs slider and the URL show the settings the workspace keeps."""
        from mnist_model.config import from_query
        slider = page.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_role("slider")
        deadline = time.time() + 30  # the last key press's rerun may still be on its way: they agree once it lands
        while True:
            cfg = self.store.settings(self.ws)
            if cfg is None:
                return
            shown = slider.first.get_attribute("aria-valuetext")
            query = dict(parse_qsl(urlsplit(page.url).query))
            if shown == str(cfg.epochs) and from_query(query)[0] == cfg or time.time() > deadline:
                break
            time.sleep(0.2)
        self.count("Train settings = stored settings")
        check(shown == str(cfg.epochs), f"Train's Epochs slider shows {shown}, the workspace keeps {cfg.epochs}")
        check(from_query(query)[0] == cfg, f"the URL's settings {query} are not the workspace's {cfg.to_query()}")

    def _metric(self, page, label_re):
        metric = page.get_by_test_id("stMain").get_by_test_id("stMetric").filter(
            has=page.get_by_test_id("stMetricLabel").filter(has_text=re.compile(label_re)))
        if not metric.count():
            return None
        value = metric.first.get_by_test_id("stMetricValue").inner_text().strip()
        delta = metric.first.get_by_test_id("stMetricDelta")
        return value, (delta.inner_text().strip() if delta.count() else "")

    def seen_image(self, page):
        """The 28x28 image the Draw page shows ("What the network sees"), decoded from its enlarged picture."""
        import numpy as np
        from PIL import Image
        img = page.get_by_test_id("stImage").filter(has_text="What the network sees").locator("img")
        if not img.count():
            return None
        src = img.first.get_attribute("src")
        answer = page.request.get(src if src.startswith("http") else self.url + src)
        try:  # a rerun between reading the address and fetching it replaces the picture (Streamlit drops the old)
            a = np.asarray(Image.open(io.BytesIO(answer.body())).convert("L"), np.float32)
        except Exception as exc:  # noqa: BLE001 - the picture is gone: check_prediction looks again
            raise WalkFailure(f"the 28x28 picture at {src} could not be read ({answer.status}): {exc}") from None
        check(a.shape == (140, 140), f"the 28x28 picture is {a.shape}, not 5x enlarged")
        return a[2::5, 2::5] / 255.0

    def check_prediction(self, page, tries=3):
        """Every answer on Draw is the NumPy predictor's for the 28x28 image the page shows (exact up to the
        picture's encoding), with a sane confidence; a clean digit drawn for a good MNIST model is read right."""
        from mnist_model.data import class_names
        from mnist_model.predict import Predictor
        for attempt in range(tries):
            try:
                return self._check_prediction(page, class_names, Predictor)
            except WalkFailure:
                if attempt == tries - 1:
                    raise
                time.sleep(1.5)
                self.settle()

    def _check_prediction(self, page, class_names, Predictor):
        run = self.model_run()
        first = self._metric(page, r"^Prediction")
        if run is None or first is None:
            return
        value, note = first
        if value == "–":
            check(note == "draw to see", f"no answer yet, but the note says {note!r}")
            return
        names = class_names(run.config.dataset)
        check(value in names, f"the prediction {value!r} is not one of {names}")
        m = re.match(r"(\d+)% sure", note)
        check(m and 10 <= int(m.group(1)) <= 100, f"the prediction's note {note!r} is not 10-100% sure")
        image = self.seen_image(page)
        check(image is not None, "an answer on Draw, but no 28x28 picture of what the network sees")
        probs = Predictor.for_run(run)(image[None])[0]
        shown = names.index(value)
        self.count("prediction = predictor(picture)")
        check(probs[shown] >= probs.max() - 0.03 and abs(probs[shown] * 100 - int(m.group(1))) <= 3,
              f"Draw says {value} ({note}); the model {run.name} says {names[int(probs.argmax())]} "
              f"({probs.max():.0%}), {value} {probs[shown]:.0%} for the picture shown")
        others = [r for r in reversed(self.store.runs(self.ws)) if r.architecture != run.architecture
                  and r.config.dataset == run.config.dataset and r.final is not None][:1]
        second = self._metric(page, r" says$")
        check(bool(others) == (second is not None), f"a second network's answer shown: {second}, expected for "
                                                    f"{[r.name for r in others]}")
        if others:
            self.count("second network = predictor(picture)")
            p = Predictor.for_run(others[0])(image[None])[0]
            v, n = second
            other_names = class_names(others[0].config.dataset)
            pct = int(re.match(r"(\d+)% sure", n).group(1))
            check(v in other_names and p[other_names.index(v)] >= p.max() - 0.03 and
                  abs(p[other_names.index(v)] * 100 - pct) <= 3,
                  f"the other network says {v} ({n}); {others[0].name} says {other_names[int(p.argmax())]} "
                  f"({p.max():.0%})")
        if (self.drawn_digit is not None and not self.poked and not self.photo and run.config.dataset == "mnist"
                and run.final is not None and run.test_accuracy >= 0.9 and "unlike" not in note):
            self.count("clean digit read right")
            check(value == self.drawn_digit, f"a clean {self.drawn_digit} drawn for {run.label}: it says {value} "
                                             f"({note})")

    # ------------------------------------------------------------ running actions

    def do(self, name, params):
        action = ACTIONS[name]
        if not action.ok(self):
            self.say(f"skip {name} {params}")
            return False
        self.say(f"{name} {json.dumps(params)}")
        action.run(self, params)
        self.check_all(name)
        self.count(f"action {name}")
        return True


# ---------------------------------------------------------------- actions

class Action:
    """weight: how often it is picked; ok(walk): whether it makes sense now; gen(rng, walk): its params;
    run(walk, params): do it in the browser."""

    def __init__(self, weight, ok, gen, run):
        self.weight, self.ok, self.gen, self.run = weight, ok, gen, run


def _always(walk):
    return True


def _none(rng, walk):
    return {}


def _navigate(walk, p):
    walk.nav(p["page"])


def _goto(walk, p):
    walk.goto(p["path"])


def _gen_goto(rng, walk):
    return {"path": rng.choice(["/train?" + rng.choice(TRAIN_LINKS), "/train", "/draw", "/explore", "/class", "/"])}


def _reload(walk, p):
    walk.page.reload()
    walk.wait_page(walk.where, timeout=LONG)
    walk.new_session()


SLIDER_TEXT = {"Epochs": lambda k: str(k + 1), "Training examples": lambda k: f"{SMALL_SIZES[k]:,}",
               "Hidden layers": lambda k: str(k + 1), "Dropout": lambda k: "off" if not k else f"{k / 10:g}",
               "L2 weight penalty": lambda k: ["off", "1e-05", "3e-05", "0.0001"][k],
               "Early stopping": lambda k: str(k)}


def _slider_to(page, label, steps, home=True):
    """A slider or select slider: Home, then ArrowRight `steps` times (each a rerun), until it shows the value."""
    slider = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider").first
    keys = (["Home"] if home else []) + ["ArrowRight"] * steps
    for n, key in enumerate(keys):
        # One press at a time, each once its rerun has landed: a press made while the previous press's rerun is
        # on its way can be lost (the rerun sends the slider its value from before; see the report)
        want = SLIDER_TEXT[label](n if home else 0) if label in SLIDER_TEXT and home else None
        slider.focus()
        slider.press(key)
        deadline = time.time() + WAIT / 1000
        while want is not None and slider.get_attribute("aria-valuetext") != want and time.time() < deadline:
            time.sleep(0.1)
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT)
        time.sleep(0.3)
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT)
    want = SLIDER_TEXT[label](steps) if label in SLIDER_TEXT and home else None
    check(want is None or slider.get_attribute("aria-valuetext") == want,
          f"the {label} slider shows {slider.get_attribute('aria-valuetext')}, not {want}")
    return slider


def _more_settings(page):
    if not page.get_by_test_id("stSlider").filter(has_text="Training examples").first.is_visible():
        page.get_by_text("More settings").click()
        page.get_by_test_id("stSlider").filter(has_text="Training examples").first.wait_for(timeout=WAIT)


def _knobs(walk, p):
    """Set the Train knobs through the widgets (each knob a rerun)."""
    walk.ensure("Train")
    page = walk.page
    if "preset" in p:
        page.get_by_role("button", name=f"Preset: {p['preset']}").click()
        page.get_by_text(f"Preset {p['preset']}:").wait_for(timeout=WAIT)
        walk.settle()
        # As a person does, act once the sliders show the preset: the caption may be there from an earlier
        # press, and a key pressed before the preset's rerun lands is overwritten by it (seed 93 after a restart)
        epochs = page.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_role("slider").first
        from mnist_model.config import PRESETS as PRESET_CONFIGS
        want = str(PRESET_CONFIGS[p["preset"]].epochs)
        deadline = time.time() + WAIT / 1000
        while epochs.get_attribute("aria-valuetext") != want and time.time() < deadline:
            time.sleep(0.1)
        walk.settle()
    if "epochs" in p:
        _slider_to(page, "Epochs", p["epochs"] - 1)
    _more_settings(page)
    if "dataset" in p:
        page.get_by_test_id("stRadio").filter(has_text="Dataset").get_by_text(
            {"mnist": "MNIST digits", "fashion": "Fashion-MNIST"}[p["dataset"]]).click()
        walk.settle(timeout=LONG)  # a dataset's first load
    if "network" in p:
        page.get_by_test_id("stRadio").filter(has_text="Network").get_by_text(
            {"dense": "Dense (the notebook)", "cnn": "Small CNN"}[p["network"]]).click()
        walk.settle()
    if "size" in p:
        _slider_to(page, "Training examples", SMALL_SIZES.index(p["size"]))
    for label, key in (("Hidden layers", "layers"), ("Dropout", "dropout"), ("L2 weight penalty", "l2"),
                       ("Early stopping", "patience")):
        if key in p:
            _slider_to(page, label, p[key])
    walk.settle()


def _gen_knobs(rng, walk):
    p = {}
    if rng.random() < 0.3:
        p["preset"] = rng.choice(PRESETS)
    if rng.random() < 0.7:
        p["epochs"] = rng.randint(1, 3)
    if rng.random() < 0.25:
        p["dataset"] = rng.choice(["mnist", "fashion"])
    if rng.random() < 0.3:
        p["network"] = rng.choice(["dense", "cnn"])
    if rng.random() < 0.7:
        p["size"] = rng.choice(SMALL_SIZES)
    for key, top in (("layers", 2), ("dropout", 5), ("l2", 3), ("patience", 3)):
        if rng.random() < 0.2:
            p[key] = rng.randint(0, top)
    return p


def _small(cfg):
    return cfg is not None and cfg.epochs <= 3 and 100 <= cfg.train_size <= 2000 and cfg.batch_size >= 32


def _train(walk, p):
    """Press Train (with small settings: a settings link or the widgets first when they are not), then wait a
    while, maybe Stop, maybe wait for the end."""
    walk.ensure("Train")
    if not _small(walk.store.settings(walk.ws)):
        if p.get("fix") == "widgets":
            _knobs(walk, {"epochs": p.get("epochs", 1), "size": p.get("size", 500)})
        else:
            walk.goto("/train?" + p.get("link", TRAIN_LINKS[0]))
    cfg = walk.store.settings(walk.ws)
    check(_small(cfg), f"the settings are still not small: {cfg}")
    before = {r.run_id for r in walk.store.runs(walk.ws)}
    button = walk.page.get_by_role("button", name="Train", exact=True)
    if button.is_disabled():
        return  # a training runs already (Train is refused by the button itself)
    button.click()
    deadline = time.time() + 60
    while not walk.jobs() and {r.run_id for r in walk.store.runs(walk.ws)} == before and time.time() < deadline:
        time.sleep(0.1)
    if not walk.jobs() and {r.run_id for r in walk.store.runs(walk.ws)} == before:
        alerts = walk.page.get_by_test_id("stAlert").all_inner_texts()
        app = walk.page.evaluate(APP_STATE_JS)
        check(False, f"Train started no training (the page's alerts: {alerts}; the app's connection and script "
                     f"state: {app}; Train disabled: {button.is_disabled()})")
    walk.settle()
    if p["then"] == "stop":
        time.sleep(p["after"])
        _stop(walk, {})
    elif p["then"] == "finish":
        walk.wait_trainings_end()
        walk.page.get_by_text(re.compile(r"Test accuracy|stopped before finishing")).first.wait_for(timeout=WAIT)
        walk.settle()
    else:
        time.sleep(p["after"])


def _gen_train(rng, walk):
    return {"then": rng.choice(["stop", "finish", "finish", "leave"]), "after": round(rng.uniform(0, 4), 1),
            "fix": rng.choice(["link", "widgets"]), "link": rng.choice(TRAIN_LINKS[:5]),
            "epochs": rng.randint(1, 3), "size": rng.choice(SMALL_SIZES)}


def _stop(walk, p):
    walk.ensure("Train")
    stop = walk.page.get_by_role("button", name="Stop training")
    deadline = time.time() + WAIT / 1000
    while walk.jobs() and time.time() < deadline:  # the training may end (and Stop turn off) as we click
        try:
            if stop.is_enabled():
                stop.click(timeout=3000)
                break
        except Exception:
            pass
        time.sleep(0.2)
    walk.wait_trainings_end(timeout=120)
    walk.settle()


def _busy(walk):
    return bool(walk.jobs())


def _train_twice(walk, p):
    """Press Train in a second tab of the same browser that still shows Train enabled, while the first tab's
    training runs: refused politely, and still one training."""
    walk.ensure("Train")
    if not _small(walk.store.settings(walk.ws)) or walk.jobs():
        return
    second = walk.context.new_page()
    try:
        second.goto(walk.url + "/train")
        walk.wait_page("Train", second, timeout=LONG)
        walk.page.get_by_role("button", name="Train", exact=True).click()
        deadline = time.time() + 60
        while not walk.jobs() and time.time() < deadline:
            time.sleep(0.1)
        again = second.get_by_role("button", name="Train", exact=True)
        running = walk.jobs()
        if not running or again.is_disabled():
            return  # it ended already, or the second tab saw it start: nothing to refuse
        first = running[0].job_id
        again.click()
        refused = second.get_by_text("You already have a training running")
        ended = lambda: first not in [j.job_id for j in walk.jobs()]  # noqa: E731
        # Refused while the first runs; once the first has ended (small trainings take a second), the click may
        # have reached the server after it: a training of its own. Never two at once (checked below and after
        # every action).
        check(_until(lambda: refused.count() or ended()), "a second tab's Train was neither refused nor taken")
        walk.check_errors(second)
        check(len(walk.jobs()) <= 1, f"two trainings in one workspace: {walk.jobs()}")
        if not refused.count():
            # Taken: a training of the second tab's own. The first tab follows it only if it started before the
            # first tab's last rerun (an idle page does not poll; it shows what it drew until its next rerun), so
            # the person reloads it once that training has ended.
            walk.wait_trainings_end(timeout=120)
            walk.goto(PATHS[walk.where])
    finally:
        second.close()
    walk.settle()


def _choose_model(walk, p):
    walk.ensure("Train")
    page = walk.page
    runs = walk.store.runs(walk.ws)
    box = page.get_by_test_id("stSelectbox").filter(has_text="Model for the Draw")
    if not runs or not box.count():
        return
    run = runs[p["index"] % len(runs)]
    already = getattr(walk.model_run(), "run_id", None) == run.run_id
    option = page.get_by_role("option", name=run.label, exact=True)
    appserver.choose(page, box, option)
    # The model in use, not the stored choice: after a Delete of the chosen run, the only run left is already the
    # model in use, and picking it again changes nothing. Nor does it while a training runs: the selectbox keeps its
    # value and calls nothing, and that training's run becomes the model when it ends, as it would have anyway
    # (seed 28: one run left, picked while a training ran, then Run 3 ended). A pick that changes the model outlives
    # the training (test_a_model_picked_while_a_training_runs_stays_in_use_when_it_ends).
    known = {r.run_id for r in runs}

    def in_use():
        now = getattr(walk.model_run(), "run_id", None)
        return now == run.run_id or (already and now not in known)
    check(_until(in_use), f"chose {run.name}, but the workspace uses {getattr(walk.model_run(), 'name', None)}")
    walk.settle()


def _until(condition, timeout=WAIT / 1000):
    """Wait for a condition on the store (what a click must cause); its last value."""
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.1)
    return condition()


def _has_runs(walk):
    return bool(walk.store.runs(walk.ws))


def _model_choice(page):
    """The label that Train's "Model for the Draw and Explore pages" shows, or None without one."""
    box = page.get_by_test_id("stSelectbox").filter(has_text="Model for the Draw").locator("input")
    return box.first.input_value() if box.count() else None


def _chosen_run(walk):
    """The run the Train page's buttons act on (its model selectbox's choice)."""
    text = _model_choice(walk.page)
    return next((r for r in walk.store.runs(walk.ws) if r.label == text), None)


def _run_on_train(walk):
    """On the Train page: the run its buttons act on, or None when it has no runs."""
    walk.ensure("Train")
    if not walk.page.get_by_test_id("stSelectbox").filter(has_text="Model for the Draw").count():
        return None
    return _chosen_run(walk)


def _pin_or_share(walk, p):
    """Press Pin or Share under the run the picker shows: that run flips, never another. A click that lands as the
    page changes to another run (a training ended) may be lost, as any click on a button that goes away: then the
    person sees the button unchanged and presses it again, and so does the walk."""
    for attempt in range(2):
        run, page = _run_on_train(walk), walk.page
        if run is None:
            return
        what = p["what"]
        flag = run.pinned if what == "pin" else run.published
        before = {r.run_id: (r.pinned, r.published) for r in walk.store.runs(walk.ws)}
        button = page.locator(f".st-key-{what}_{run.run_id}_{flag}").get_by_role("button")
        try:
            button.click(timeout=5000)
        except Exception:
            if attempt == 0:
                walk.settle()
                continue  # the page moved on before the click: the person clicks what is there now
            raise

        def flipped(run=run):
            after = walk.store.run(run.run_id, walk.ws)
            return (after.pinned != run.pinned) if what == "pin" else (after.published != run.published)
        done = _until(flipped, timeout=10 if attempt == 0 else WAIT / 1000)
        others = {r.run_id for r in walk.store.runs(walk.ws)
                  if r.run_id != run.run_id and before.get(r.run_id, (r.pinned, r.published)) != (r.pinned, r.published)}
        check(not others, f"{what} of {run.name} changed another run: {others}")
        if done:
            break
        walk.settle()
        moved = _chosen_run(walk)
        check(attempt == 0 and moved is not None and moved.run_id != run.run_id,
              f"{what} left {run.name} as it was")
        walk.count("click lost as the page changed run")
    walk.settle()


def _delete(walk, p):
    """Delete run, then Yes: that run goes, no other. When the page comes to show another run before Yes (a
    training ended), the question closes (it was about the old one) or the Yes lands as it changes and is lost;
    the person then sees the new run and asks again, and so does the walk."""
    for attempt in range(2):
        run, page = _run_on_train(walk), walk.page
        if run is None:
            return
        before = {r.run_id for r in walk.store.runs(walk.ws)}
        try:
            yes = page.get_by_role("button", name=f"Yes, delete {run.name}", exact=True)
            if not yes.count():  # (a retry after a slow rerun finds the question open already)
                page.get_by_role("button", name="Delete run").click(timeout=5000)
            yes.wait_for(timeout=WAIT if attempt else 10000)
            walk.allowed_gone.add(run.run_id)
            yes.click(timeout=5000)
        except Exception:
            if attempt:
                raise
            walk.count("click lost as the page changed run")
            walk.settle()
            continue
        gone = _until(lambda: run.run_id not in {r.run_id for r in walk.store.runs(walk.ws)},
                      timeout=10 if attempt == 0 else WAIT / 1000)
        others = before - {run.run_id} - {r.run_id for r in walk.store.runs(walk.ws)}
        check(not others, f"Delete of {run.name} deleted another run: {others}")
        if gone:
            break
        walk.settle()
        moved = _chosen_run(walk)
        check(attempt == 0 and moved is not None and moved.run_id != run.run_id, f"{run.name} still listed after Delete")
        walk.count("click lost as the page changed run")
    walk.settle()


def _canvas(walk):
    canvas = walk.page.locator("canvas.upper-canvas")
    from playwright.sync_api import expect
    expect(canvas).to_have_count(1, timeout=WAIT)
    canvas.scroll_into_view_if_needed()
    return canvas


def _canvas_there(walk):
    """Draw shows its canvas whenever the workspace has a model (waited for: it mounts after the page)."""
    if walk.model_run() is None:
        return False
    walk.page.locator("canvas.upper-canvas").first.wait_for(timeout=WAIT)
    return True


def _has_canvas(walk):
    return walk.model_run() is not None


def _draw(walk, p):
    walk.ensure("Draw")
    if not _canvas_there(walk):
        return
    canvas = _canvas(walk)
    strokes = DIGITS[p["digit"]] if "digit" in p else [SCRIBBLES[i] for i in p["scribble"]]
    clean = walk.canvas_clean and "digit" in p
    for stroke in strokes:
        appserver.stroke(walk.page, canvas.bounding_box(), stroke, steps=6)
        time.sleep(0.3)
    walk.canvas_clean = False
    walk.drawn_digit = p["digit"] if clean else None
    walk.photo = False
    walk.settle()
    walk.page.get_by_text(re.compile("What the network sees")).first.wait_for(timeout=WAIT)
    walk.settle()


def _gen_draw(rng, walk):
    if rng.random() < 0.7:
        return {"digit": rng.choice(sorted(DIGITS))}
    return {"scribble": rng.sample(range(len(SCRIBBLES)), rng.randint(1, 2))}


def _clear(walk, p):
    walk.ensure("Draw")
    if not _canvas_there(walk):
        return
    appserver.clear_canvas(walk.page, timeout=WAIT)
    walk.canvas_clean, walk.drawn_digit, walk.poked = True, None, False  # Clear resets the pokes too
    walk.settle()


def _photo_bytes(digit):
    from PIL import Image, ImageDraw
    photo = Image.new("RGB", (600, 800), (235, 230, 220))
    ImageDraw.Draw(photo).line(PHOTO_DIGITS[digit], fill=(40, 40, 50), width=45)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=85)
    return out.getvalue()


def _upload(walk, p):
    walk.ensure("Draw")
    upload = walk.page.get_by_test_id("stFileUploader").filter(has_text="upload a photo").locator("input[type=file]")
    if not upload.count():
        return
    if p["good"]:
        upload.set_input_files({"name": f"digit-{p['digit']}.jpg", "mimeType": "image/jpeg",
                                "buffer": _photo_bytes(p["digit"])})
        walk.page.get_by_text("from the uploaded photo").wait_for(timeout=WAIT)
        walk.bad_upload, walk.photo, walk.drawn_digit = False, True, None
    else:
        walk.bad_upload = True
        upload.set_input_files({"name": "photo.png", "mimeType": "image/png", "buffer": b"this is not an image\n" * 9})
        walk.page.get_by_text("That file can't be used").wait_for(timeout=WAIT)
    walk.settle()


def _gen_upload(rng, walk):
    return {"good": rng.random() < 0.6, "digit": rng.choice(sorted(PHOTO_DIGITS))}


def _test_image(walk, p):
    """Type a test image's number into the Draw page's box and press Enter (the keyboard's way to a prediction)."""
    walk.ensure("Draw")
    box = walk.page.get_by_role("spinbutton", name=re.compile("pick a test image"))
    if not box.count():
        return
    box.fill(str(p["number"]))
    box.press("Enter")
    walk.page.get_by_text(f"from test image {p['number']},").wait_for(timeout=WAIT)
    walk.photo, walk.drawn_digit = False, None
    walk.settle()


def _poke(walk, p):
    walk.ensure("Draw")
    page = walk.page
    if not page.get_by_text("Poke your drawing").count():
        return
    label = p["slider"]
    if not page.get_by_test_id("stSlider").filter(has_text=label).first.is_visible():
        page.get_by_text("Poke your drawing").click()
        page.get_by_test_id("stSlider").filter(has_text=label).first.wait_for(timeout=WAIT)
    slider = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider").first
    slider.focus()
    for _ in range(p["steps"]):
        slider.press(p["key"])
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT)
    walk.poked = True
    walk.settle()


def _gen_poke(rng, walk):
    return {"slider": rng.choice(["Move sideways (px)", "Move up/down (px)", "Turn (degrees)", "Scale", "Strokes"]),
            "key": rng.choice(["ArrowLeft", "ArrowRight"]), "steps": rng.randint(1, 3)}


def _keep(walk, p):
    walk.ensure("Draw")
    keep = walk.page.get_by_role("button", name="Keep it", exact=True)
    if not keep.count() or keep.is_disabled():
        return
    before = len(walk.store.drawings(walk.ws)[0])
    keep.click()
    walk.page.get_by_role("button", name="Kept", exact=True).wait_for(timeout=WAIT)
    walk.kept_now = 1
    walk.settle()
    check(len(walk.store.drawings(walk.ws)[0]) == before + 1, "Keep it kept nothing")


def _explore(walk, p):
    walk.ensure("Explore")
    page = walk.page
    for tab in p["tabs"]:
        page.get_by_role("tab", name=tab).click()
        walk.settle()
    chart = page.get_by_test_id("stVegaLiteChart").filter(has_text="Confusion matrix")
    if p.get("cell") and chart.count() and chart.first.is_visible():
        t, q = p["cell"]
        check(appserver.steady_chart(chart.first), "the confusion matrix was drawn anew again and again for 15 s")
        cell = chart.first.locator(f"path[aria-label*='true label: {t};'][aria-label*='predicted: {q};']").first
        if not cell.count():
            cell = chart.first.locator(f"path[aria-label*='true label: {t}'][aria-label*='predicted: {q}']").first
        cell.get_attribute("aria-label", timeout=WAIT)  # it is drawn
        cell.click()

        def wanted() -> str:
            """What the page says below the chart for that cell, by the cell's count in the chart as drawn now: a
            training that ends during the action redraws the chart for the new model (seed 78 expected the old
            model's count)."""
            label = cell.get_attribute("aria-label", timeout=WAIT)
            count = int(re.search(r"test images: (\d+)", label).group(1))
            return (f"{count} test image{'' if count == 1 else 's'}: true {t}, predicted {q}" if count else
                    "No test image falls in that cell.")  # one image: "1 test image: ..." (seed 0 waited "images")
        check(_until(lambda: page.get_by_text(wanted()).count()), f"the click on the cell ({t}, {q}) showed "
              f"nothing for it; the chart's cell says {wanted()!r}")
        walk.settle()
        check(page.get_by_text(wanted()).count(), f"after the page settled it does not say {wanted()!r}")


def _gen_explore(rng, walk):
    tabs = ["Mistakes", "What it learned", "Overfitting lab"]
    rng.shuffle(tabs)
    return {"tabs": tabs[:rng.randint(1, 3)] + ["Mistakes"], "cell": [rng.randint(0, 9), rng.randint(0, 9)]}


def _explore_ok(walk):
    run = walk.model_run()
    return run is not None and run.config.dataset == "mnist"  # the cells are named by digit


def _start_class(walk, p):
    walk.ensure("Class")
    page = walk.page
    start = page.get_by_role("button", name="Start a class")
    if start.count():
        start.click()
    code = page.locator("div[style*='5.5rem']")
    code.wait_for(timeout=WAIT)
    walk.class_code = code.inner_text().strip()
    walk.settle()


def _join(walk, p):
    ctx = walk.browser.new_context(viewport={"width": 1280, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{walk.url}/class?join={walk.class_code}")
    walk.wait_page("Class", page, timeout=LONG)
    from playwright.sync_api import expect
    expect(page.get_by_role("textbox", name="Class code")).to_have_value(walk.class_code, timeout=WAIT)
    page.get_by_role("textbox", name="Nickname").fill(p["nickname"])
    page.get_by_role("button", name="Join").click()
    page.get_by_text(f"You are in as: {p['nickname']}").wait_for(timeout=WAIT)
    walk.check_errors(page)
    walk.student, walk.student_class = page, walk.class_code
    walk.student_ws = walk.workspace_id(ctx)
    page.goto(walk.url + "/")  # the student waits on Home (no board ticking every second)
    walk.wait_page("Home", page, timeout=LONG)


def _can_join(walk):
    return walk.class_code is not None and walk.student is None


def _suggest(walk, p):
    walk.ensure("Class")
    page = walk.page
    button = page.get_by_role("button", name="Suggest these settings")
    if not button.count():
        return
    button.click()
    walk.settle()
    teacher = walk.store.settings(walk.ws)
    if walk.student is None or teacher is None or walk.student_class != walk.class_code:
        return  # (a class started after Start over is not the one the student is in: seed 60)
    student = walk.student
    walk.nav("Train", student)
    mine = walk.store.settings(walk.student_ws)
    if mine == teacher:
        return
    student.get_by_text("Your teacher suggests").wait_for(timeout=WAIT)
    student.get_by_role("button", name="Use them").click()
    student.get_by_text("Your teacher suggests").wait_for(state="hidden", timeout=WAIT)
    walk.settle(student)
    walk.check_errors(student)
    check(walk.store.settings(walk.student_ws) == teacher, "the student's Train page did not take the suggestion")
    walk.nav("Home", student)


def _teaching(walk):
    return walk.class_code is not None


def _start_over(walk, p):
    page = walk.page
    old = walk.ws
    panel = page.get_by_test_id("stSidebar").get_by_text("Your workspace")
    yes = page.get_by_role("button", name="Yes, start over")
    for attempt in range(4):  # a rerun that lands as the panel opens can close it: open it again
        walk.settle()
        if yes.is_visible():
            break
        start = page.get_by_role("button", name="Start over", exact=True)
        if not start.is_visible():
            panel.click()
            try:
                start.wait_for(state="visible", timeout=10000)
            except Exception:
                continue
        start.click()
        try:
            yes.wait_for(state="visible", timeout=15000)
        except Exception:
            continue
    clicked_ms = page.evaluate("() => Date.now()")
    yes.click()
    new = walk.workspace_id(wait_change_from=old)
    if not (new and new != old):  # seeds 58 and 61 of 4 December: the question stayed open, no workspace was made
        check(False, f"Start over kept the old workspace in the cookie (the tab around the Yes click: "
                     f"{tab_record(page, clicked_ms)})")
    walk.settle()
    walk.class_code = None
    walk.canvas_clean, walk.drawn_digit = True, None


def _restart(walk, p):
    """kill -9 the server (or stop it) and start a new one on the same data folder and port."""
    sockets = walk.page.evaluate("() => window.__walkSockets")
    kill_server(walk.proc, hard=p["hard"])
    walk._start()
    if p["reload"]:
        walk.page.reload()
        sockets = 0
    # the new session's first run is over (see RUN_WATCH_JS), not only the tab connected again
    walk.page.wait_for_function(f"() => window.__walkSockets > {sockets} && window.__walkRunsEnded > 0",
                                timeout=LONG, polling=50)
    walk.wait_page(walk.where or "Home", timeout=LONG)
    # A tab that reconnects shows its old page with no page list until the new session's first run has drawn it
    # (Streamlit keeps the list hidden until app.py names the pages): the checks come after that run, not in it.
    walk.page.wait_for_function(PAGE_LIST_JS, timeout=LONG, polling=50)
    # Quiet for half a second too: a reconnected tab's runs come several in a row (the fresh server's first, the page
    # list's, the tab's reports), each drawing the page anew, 10-150 ms apart. In such a gap the page held the old
    # photo uploader beside the new one until a run finished (seed 90's replays).
    walk.settle(timeout=LONG, quiet_ms=500)
    if p["reload"]:
        walk.new_session()
    else:  # the tab reconnects to a new session: the browser keeps its canvas and uploader, the server not the
        walk.poked = True  # pokes (so no clean-digit check until a page load)
        walk.canvas_clean, walk.drawn_digit = False, None
    if walk.student is not None:
        walk.student.reload()
        walk.wait_page("Home", walk.student, timeout=LONG)


def _interrupted(walk):
    return bool(walk.store.jobs(walk.ws, ("interrupted",)))


def _again_or_dismiss(walk, p):
    walk.ensure("Train")
    button = walk.page.get_by_role("button", name=p["which"]).first
    if not button.count() or button.is_disabled():
        return
    if p["which"] == "Train again" and not _small(walk.store.jobs(walk.ws, ("interrupted",))[0].config):
        return
    button.click()
    walk.settle()


ACTIONS = {
    "navigate": Action(6, _always, lambda rng, w: {"page": rng.choice(PAGES)}, _navigate),
    "goto": Action(3, _always, _gen_goto, _goto),
    "reload": Action(1, _always, _none, _reload),
    "knobs": Action(3, _always, _gen_knobs, _knobs),
    "train": Action(5, lambda w: not _busy(w), _gen_train, _train),
    "stop": Action(2, _busy, _none, _stop),
    "train_twice": Action(1, lambda w: not _busy(w), _none, _train_twice),
    "choose_model": Action(2, _has_runs, lambda rng, w: {"index": rng.randint(0, 9)}, _choose_model),
    "pin_or_share": Action(2, _has_runs, lambda rng, w: {"what": rng.choice(["pin", "share"])}, _pin_or_share),
    "delete": Action(1, _has_runs, _none, _delete),
    "draw": Action(6, _has_canvas, _gen_draw, _draw),
    "clear": Action(3, _has_canvas, _none, _clear),
    "upload": Action(2, _has_canvas, _gen_upload, _upload),
    "test_image": Action(2, _has_canvas, lambda rng, w: {"number": rng.randint(0, 999)}, _test_image),
    "poke": Action(2, _has_canvas, _gen_poke, _poke),
    "keep": Action(2, _has_canvas, _none, _keep),
    "explore": Action(2, _explore_ok, _gen_explore, _explore),
    "start_class": Action(1, lambda w: w.class_code is None, _none, _start_class),
    "join": Action(2, _can_join, lambda rng, w: {"nickname": rng.choice(["Ada", "Grace", "Alan", "Kim"])}, _join),
    "suggest": Action(2, _teaching, _none, _suggest),
    "start_over": Action(1, _always, _none, _start_over),
    "restart": Action(1, _always, lambda rng, w: {"hard": rng.random() < 0.8, "reload": rng.random() < 0.5},
                      _restart),
    "again_or_dismiss": Action(2, _interrupted, lambda rng, w: {"which": rng.choice(["Train again", "Dismiss"])},
                               _again_or_dismiss),
}


# ---------------------------------------------------------------- walks, shrinking, replay

def _workdir(tag):
    return Path(tempfile.mkdtemp(prefix=f"mnist-live-walk-{tag}-"))


def _begin(walk):
    walk.goto("/")
    walk.check_all("first")


def walk_seed(seed: int, n_actions: int, verbose=True):
    """Generate and run a walk; returns (actions done, None) or (actions done, the failure's text)."""
    rng = random.Random(seed)
    walk = Walk(seed, _workdir(f"s{seed}"), verbose)
    done, failure = [], None
    try:
        _begin(walk)
        for _ in range(n_actions):
            names = [n for n, a in ACTIONS.items() if a.ok(walk)]
            name = rng.choices(names, [ACTIONS[n].weight for n in names])[0]
            params = ACTIONS[name].gen(rng, walk)
            done.append([name, params])
            walk.do(name, params)
    except Exception as exc:
        failure = _failure_text(exc, walk)
    finally:
        print(f"seed {seed} checks: {json.dumps(dict(sorted(walk.stats.items())))}", flush=True)
        _close(walk, failure)
    return done, failure


def _close(walk, failure) -> None:
    """Stop the walk's server and browser; its work folder stays only when the walk failed (its logs)."""
    walk.close()
    if failure is None:
        shutil.rmtree(walk.workdir, ignore_errors=True)


def _failure_text(exc, walk):
    for page, name in ((walk.page, "failure.png"), (walk.student, "failure-student.png")):
        try:  # what the pages showed, beside the logs in the work folder
            if page is not None:
                page.screenshot(path=str(walk.workdir / name), full_page=True, timeout=10000)
        except Exception:
            pass
    text = f"{exc.__class__.__name__}: {exc}" if isinstance(exc, WalkFailure) else traceback.format_exc()
    logs = "\n".join(f"--- {log.name} (last lines)\n{log.read_text(errors='replace')[-1500:]}" for log in walk.logs
                     if log.exists())
    return f"{text[:4000]}\n{logs}\n(work folder {walk.workdir})"


def replay(actions, verbose=True):
    """Run a list of [name, params] on a fresh server; None when it passes, else the failure's text."""
    walk = Walk(None, _workdir("replay"), verbose)
    failure = None
    try:
        _begin(walk)
        for name, params in actions:
            walk.do(name, params)
    except Exception as exc:
        failure = _failure_text(exc, walk)
    finally:
        _close(walk, failure)
    return failure


def _same_kind(a: str, b: str) -> bool:
    """Two failures are the same when their first lines agree once numbers and ids are taken out."""
    def norm(t):
        return re.sub(r"[0-9a-f]{6,}|\d+", "#", t.strip().split("\n")[0])[:120]
    return norm(a) == norm(b)


def shrink(actions, failure, verbose=False, budget_s=1800):
    """Remove chunks, then single actions, keeping every removal after which a replay still fails the same
    way; returns (shortest list, its failure)."""
    deadline = time.time() + budget_s
    current, why = list(actions), failure
    chunk = max(1, len(current) // 2)
    while chunk >= 1 and time.time() < deadline:
        i, shrunk = 0, False
        while i < len(current) and time.time() < deadline:
            candidate = current[:i] + current[i + chunk:]
            print(f"shrink: try {len(candidate)} actions (without {i}..{i + chunk - 1})", flush=True)
            got = replay(candidate, verbose)
            if got is not None and _same_kind(got, failure):
                current, why, shrunk = candidate, got, True
            else:
                i += chunk
        if not shrunk or chunk > 1:
            chunk //= 2
    return current, why


def report(seed, actions, failure):
    listing = json.dumps(actions)
    return (f"\nWALK FAILED: seed {seed}, {len(actions)} actions\n{failure}\n"
            f"shortest failing list: {listing}\n"
            f"replay: .venv/bin/python tests/walker.py --replay '{listing}'\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--actions", type=int, default=25)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--replay", help="a JSON list of [name, params] to run once")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.replay:
        failure = replay(json.loads(args.replay), not args.quiet)
        print("PASSED" if failure is None else f"FAILED\n{failure}")
        return 0 if failure is None else 1
    failed = 0
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        t0 = time.time()
        print(f"seed {seed}: {args.actions} actions", flush=True)
        done, failure = walk_seed(seed, args.actions, not args.quiet)
        if failure is None:
            print(f"seed {seed}: passed in {time.time() - t0:.0f} s", flush=True)
            continue
        failed += 1
        print(f"seed {seed}: FAILED after {len(done)} actions in {time.time() - t0:.0f} s\n{failure}", flush=True)
        if not args.no_shrink:
            done, failure = shrink(done, failure, not args.quiet)
        print(report(seed, done, failure), flush=True)
    print(f"{args.seeds - failed} of {args.seeds} seeds passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
