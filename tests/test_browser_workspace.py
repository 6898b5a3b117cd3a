"""Workspaces in a real browser: reloads, tabs, other people, another device, start over, no cookies,
and a server killed with kill -9 in the middle of a training."""
import contextlib
import os
import re
import signal
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

import appserver
from test_browser import CHROMIUM, _open, _progress_epoch

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Chromium is not installed (apt-get install chromium chromium-driver)")
QUICK = "?epochs=1&train_size=500"




def _train(page, url, query=QUICK):
    """Open the app with query, go to Train, press Train, wait for the result."""
    _open(page, url, "Train", query)
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Test accuracy", exact=True).wait_for(timeout=180000)


def _run_names(page, expect_table: bool = True) -> list[str]:
    """The run names in the runs table (waiting for it unless none is expected)."""
    table = page.get_by_test_id("stDataFrame")
    if expect_table:
        table.first.wait_for(timeout=30000)
    else:
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=30000)  # the page has settled
        time.sleep(0.5)
    if not table.count():
        return []
    text = table.first.locator("table").first.text_content(timeout=10000)  # the grid's accessible copy
    return re.findall(r"Run \d+", text)


def _nav(page, name):
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()


def test_a_run_survives_a_reload_and_draw_still_uses_it(app_url, page):
    _train(page, app_url)
    page.reload()
    page.get_by_text("Test accuracy", exact=True).wait_for(timeout=60000)
    assert _run_names(page) == ["Run 1"]
    _nav(page, "Draw")
    page.locator("canvas.upper-canvas").wait_for(timeout=60000)  # a model is there: no Quick train needed
    assert page.get_by_text("Model: Run 1").count() and not page.get_by_role("button", name="Quick train").count()
    assert "workspace" not in page.url


def test_a_reload_during_a_long_run_shows_its_progress_again(app_url, page):
    _open(page, app_url, "Train", "?epochs=4&batch_size=16&architecture=cnn")
    page.get_by_role("button", name="Train", exact=True).click()
    deadline = time.time() + 120
    while _progress_epoch(page) is None and time.time() < deadline:
        time.sleep(0.1)
    page.reload()
    seen = set()
    deadline = time.time() + 180
    while not page.get_by_text("Test accuracy", exact=True).count() and time.time() < deadline:
        epoch = _progress_epoch(page)
        if epoch:
            seen.add(epoch)
        time.sleep(0.1)
    assert seen, "no progress after the reload"
    assert page.get_by_text("Test accuracy", exact=True).count()
    assert _run_names(page) == ["Run 1"] and page.get_by_text("After 4 epochs").count()


def test_the_same_settings_link_in_another_browser_shares_no_work(app_url, browser):
    mine, theirs = browser.new_context(), browser.new_context()
    page = mine.new_page()
    _train(page, app_url)
    assert "workspace" not in page.url and "epochs=1" in page.url  # the settings link carries no workspace
    link = page.url
    other = theirs.new_page()
    other.goto(link.split("/train")[0] + "/" + link.split("/train")[1])
    other.get_by_text("Lesson plan").wait_for(timeout=60000)
    _nav(other, "Train")
    other.get_by_role("button", name="Train", exact=True).wait_for()
    assert other.get_by_test_id("stSliderThumbValue").first.inner_text() == "1"  # same settings
    assert _run_names(other, False) == [] and not other.get_by_text("Run 1").count()  # none of the work
    mine.close()
    theirs.close()


def test_two_tabs_of_one_browser_share_the_workspace(app_url, context):
    first = context.new_page()
    _train(first, app_url)
    second = context.new_page()
    _open(second, app_url, "Train")
    second.get_by_text("Test accuracy", exact=True).wait_for(timeout=60000)
    assert _run_names(second) == ["Run 1"]


def test_another_device_link_opens_the_workspace_and_start_over_empties_it(app_url, browser):
    phone_owner = browser.new_context()
    page = phone_owner.new_page()
    _train(page, app_url)
    page.get_by_text("Your workspace").click()
    page.get_by_text("Use on another device").click()
    code = page.locator("code").filter(has_text="workspace=").first
    try:
        code.wait_for(timeout=30000)
    except PlaywrightTimeout:  # seen once in 16 clean-clone runs, under load: say what the sidebar showed instead
        switches = [c.is_checked() for c in page.get_by_test_id("stSidebar").locator("input[type=checkbox]").all()]
        raise AssertionError(f"no device link after 30 s; sidebar switches on: {switches}, running: "
                             f"{page.get_by_test_id('stStatusWidget').is_visible()}, sidebar: "
                             f"{page.get_by_test_id('stSidebar').inner_text()!r}") from None
    link = code.inner_text().strip()
    assert page.get_by_text("Whoever has this link sees and changes this work").count()
    # the QR code comes after the link in the same rerun: a slow rerun sends it a moment later
    page.get_by_test_id("stSidebar").get_by_role("img", name="QR code of the link to this workspace").wait_for()
    other = browser.new_context().new_page()
    other.goto(link.replace("http://localhost:8501", app_url))
    other.get_by_text("Opened the workspace from your link").wait_for(timeout=60000)
    assert "workspace=" not in other.url
    _nav(other, "Train")
    other.get_by_text("Test accuracy", exact=True).wait_for(timeout=60000)
    assert _run_names(other) == ["Run 1"]
    page.get_by_role("button", name="Start over").click()
    page.get_by_role("button", name="Yes, start over").click()
    # The old runs table goes with the rerun (under load that rerun may start more than a moment after the click)
    expect(page.get_by_test_id("stDataFrame")).to_have_count(0, timeout=60000)
    page.get_by_role("button", name="Train", exact=True).wait_for()
    assert _run_names(page, False) == []
    page.reload()  # the browser now remembers the new, empty workspace
    page.get_by_role("button", name="Train", exact=True).wait_for(timeout=60000)
    assert _run_names(page, False) == []
    phone_owner.close()
    other.context.close()


WATCH_BUTTON_JS = """label => { window.__buttonFrames = []; window.__watching = true;  // each frame: the button's
  const tick = () => {  // top, and whether a click at its centre hits it
    const b = [...document.querySelectorAll('button')].find(e => e.textContent.trim() === label);
    if (b) {
      const r = b.getBoundingClientRect(), at = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
      window.__buttonFrames.push([Math.round(r.top), !!at && b.contains(at)]);
    }
    if (window.__watching) requestAnimationFrame(tick);
  };
  tick(); }"""


def test_the_workspace_panel_stays_put_while_its_buttons_rerun_the_page(app_url, browser):
    """The sidebar's status sat above the workspace panel and is drawn after the page: it used to be emptied for
    each run and filled at its end, so the panel jumped up and back down, and a click aimed at "Yes, start over"
    as it appeared landed on the text above it (walker seed 54). Watched every frame while Start over, Cancel and
    a preset rerun the page, and while a training started and ended (the status below it now, whose lines come and
    go and wrap: a click on "Use on another device" just after a training missed the switch, 2 in 17 CI runs)."""
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    _open(page, app_url, "Train")
    page.get_by_role("heading", name="Train the network").wait_for(timeout=60000)
    page.get_by_test_id("stSidebar").get_by_text("Your workspace").click()
    start_over = page.get_by_role("button", name="Start over", exact=True)
    start_over.wait_for()
    still = [None, 0]
    while still[1] < 3:  # watch from when Start over has stopped moving (the first draws may still come)
        page.wait_for_timeout(200)
        top = start_over.bounding_box()["y"]
        still = [top, still[1] + 1 if top == still[0] else 0]
    tops = {}
    for name in ("Start over", "Cancel", "Preset: Quick look", "Train"):
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=30000)
        page.evaluate(WATCH_BUTTON_JS, "Start over")
        page.get_by_role("button", name=name, exact=True).click()
        if name == "Train":  # the Quick look: 2 epochs of 2,000 examples
            page.get_by_text("Test accuracy", exact=True).wait_for(timeout=180000)
        page.wait_for_timeout(2600)
        page.evaluate("window.__watching = false")
        tops[name] = sorted({top for top, _ in page.evaluate("window.__buttonFrames")})
    assert all(len(t) == 1 for t in tops.values()) and len({t[0] for t in tops.values()}) == 1, tops
    page.context.close()



def test_a_question_asked_as_its_panel_opens_stays_where_it_is_drawn(app_url, browser):
    """Streamlit's expander animates its height for half a second on opening and whenever its content grows:
    "Yes, start over", asked for as the workspace panel opened, showed clipped and slid by up to 50 px for its
    first 40-85 ms (every time, in a loop), and the long walker's click then never reached it (seeds 58, 61, 76,
    86). Panel opened and Start over pressed at once; every frame from the question's first: the button is where
    it was first drawn and is what a click at its centre hits."""
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    _open(page, app_url, "Draw")
    page.get_by_role("heading", name=re.compile(r"^Draw ")).first.wait_for(timeout=60000)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=30000)
    page.evaluate(WATCH_BUTTON_JS, "Yes, start over")
    page.get_by_test_id("stSidebar").get_by_text("Your workspace").click()
    page.get_by_role("button", name="Start over", exact=True).click()
    page.get_by_role("button", name="Yes, start over").wait_for(timeout=30000)
    page.wait_for_timeout(1000)
    page.evaluate("window.__watching = false")
    frames = page.evaluate("window.__buttonFrames")
    assert len(frames) > 10 and {top for top, _ in frames} == {frames[0][0]} and all(hit for _, hit in frames), \
        frames
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_role("button", name="Yes, start over").wait_for(state="hidden", timeout=30000)
    page.context.close()


def test_a_chart_whose_code_did_not_load_comes_back_by_itself(app_url, browser):
    """Streamlit fetches a chart's code when the first chart shows. When that fetch fails (the server restarted
    just then: walker seed 52; a network blip) the browser keeps the failure, and the chart said "TypeError: Failed
    to fetch dynamically imported module" until someone reloaded. The page now loads itself again."""
    page = browser.new_context().new_page()
    failed = []

    def fail_once(route):
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.abort()

    page.route(re.compile(r".*/static/js/ArrowVegaLiteChart[^/]*\.js$"), fail_once)
    page.goto(app_url + "/")
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=60000)
    assert failed, "the chart's code was never fetched: nothing was tested"
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=30000)
    assert not page.get_by_text("dynamically imported module").count()
    page.context.close()


def test_without_cookies_it_works_for_the_tab_and_says_so_once(app_url, browser):
    context = browser.new_context()
    page = context.new_page()
    context.new_cdp_session(page).send("Emulation.setDocumentCookieDisabled", {"disabled": True})
    page.goto(app_url + "/")
    page.get_by_text("does not keep cookies").wait_for(timeout=60000)
    _nav(page, "Train")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Test accuracy", exact=True).wait_for(timeout=180000)
    assert _run_names(page) == ["Run 1"]
    assert not page.get_by_text("does not keep cookies").count()  # said once
    context.close()


def test_kill_9_during_a_training_then_restart(tmp_path, browser):
    data, log = tmp_path / "data", tmp_path / "server-before.log"
    proc, url = appserver.start(log, MNIST_LIVE_DATA=str(data))
    context = browser.new_context()
    page = context.new_page()
    try:
        _train(page, url)
        page.get_by_test_id("stSliderThumbValue").first.wait_for()
        _open(page, url, "Train", "?epochs=3&batch_size=16&architecture=cnn")  # killed in epoch 1, trained again whole
        page.get_by_role("button", name="Train", exact=True).click()
        deadline = time.time() + 120
        while _progress_epoch(page) is None and time.time() < deadline:
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        log = tmp_path / "server-after.log"
        proc, url = appserver.start(log, MNIST_LIVE_DATA=str(data))  # the same data folder, a new port
        _open(page, url, "Train")
        page.get_by_text("was interrupted").wait_for(timeout=60000)
        assert page.get_by_text("Run 2", exact=False).count() and _run_names(page)[:1] == ["Run 1"]
        page.get_by_text("the server restarted while it was training").wait_for()
        page.get_by_role("button", name="Stop training").wait_for()
        page.get_by_test_id("stSlider").first.wait_for()
        page.get_by_role("button", name="Train again").click()
        deadline = time.time() + 300
        while "Run 2" not in _run_names(page) and time.time() < deadline:
            time.sleep(0.5)
        assert _run_names(page) == ["Run 1", "Run 2"] and not page.get_by_text("was interrupted").count()
    finally:
        context.close()
        appserver.stop(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@contextlib.contextmanager
def _draw_tab_across_a_restart(tmp_path, browser):
    """A Draw tab with a quick-trained model; yields (page, url, restart), where restart() kills its server with
    kill -9 and starts a new one on the same address and data. The new server's log must hold no traceback."""
    import walker
    data = tmp_path / "data"
    proc, port = walker.start_server(tmp_path / "before.log", data)
    servers = [proc]
    url = f"http://127.0.0.1:{port}"
    page = browser.new_context(viewport={"width": 1280, "height": 1100}).new_page()

    def restart():
        walker.kill_server(servers[-1], hard=True)
        servers.append(walker.start_server(tmp_path / "after.log", data, port)[0])
    try:
        _open(page, url, "Draw")
        page.get_by_role("button", name="Quick train").click()
        page.locator("canvas.upper-canvas").wait_for(timeout=120000)
        yield page, url, restart
    finally:
        page.context.close()
        appserver.stop(servers[-1])
    log = (tmp_path / "after.log").read_text()
    assert "Traceback" not in log, log[-3000:]


_SOCKET_OPENS_JS = """() => {  // record when the app's socket opens again (wrapping the app's own watcher)
    const Outer = window.WebSocket;
    window.__testSocketOpens = [];
    const Recorded = function (url, protocols) {
        const socket = protocols === undefined ? new Outer(url) : new Outer(url, protocols);
        socket.addEventListener("open", () => window.__testSocketOpens.push(Date.now()));
        return socket;
    };
    Recorded.prototype = Outer.prototype;
    for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Recorded[name] = Outer[name];
    window.WebSocket = Recorded;
}"""


def _picture_on_new_server(page, url):
    """The 28x28 picture Draw shows, if the server at url serves it (a new session answered), else None."""
    import io

    import numpy as np
    from PIL import Image
    img = page.get_by_test_id("stImage").filter(has_text="What the network sees").locator("img")
    if not img.count():
        return None
    try:  # a rerun may replace the picture between the two reads
        src = img.first.get_attribute("src", timeout=2000) or ""
    except Exception:  # noqa: BLE001 - Playwright's timeout: look again
        return None
    answer = page.request.get(src if src.startswith("http") else url + src)
    if answer.status != 200:
        return None  # still the old server's picture (the page shows it until the new session draws)
    return np.asarray(Image.open(io.BytesIO(answer.body())).convert("L"), np.float32)[2::5, 2::5] / 255.0


def test_a_reconnected_tab_keeps_its_drawing_after_clear_and_answers_a_stroke_made_as_it_reconnects(tmp_path,
                                                                                                    browser):
    """kill -9 and a new server while a Draw tab stays open, after Clear (the canvas has a new key) and with a stroke
    made right after the tab's socket opens again (while the new session runs the page for the first time): the tab
    keeps the canvas it shows and the new session answers the whole drawing. (The new session drew an empty
    canvas under its first key, and Streamlit dropped the early stroke as a rerun of a fragment it did not know
    yet: the drawing on screen got no answer; walker seed 39.)"""
    with _draw_tab_across_a_restart(tmp_path, browser) as (page, url, restart):
        page.get_by_role("button", name="Clear").click()
        canvas = page.locator(".st-key-canvas_1 canvas.upper-canvas")
        canvas.wait_for(timeout=30000)
        appserver.stroke(page, canvas.bounding_box(), [(140, 60), (139, 150), (138, 240)])  # a 1
        appserver.answered_or_explain(page, "a stroke on the canvas Clear made")
        page.evaluate(_SOCKET_OPENS_JS)
        restart()
        page.wait_for_function("() => window.__testSocketOpens.length > 0", timeout=60000, polling=20)
        appserver.stroke(page, canvas.bounding_box(), [(60, 60), (140, 58), (220, 56)])  # its top bar: a 7
        picture, deadline = None, time.time() + 60
        while time.time() < deadline:
            picture = _picture_on_new_server(page, url)
            if picture is not None and (picture > 0.5).any(axis=0).sum() >= 12:
                break  # wide: the bar is in the picture, not only the 1
            time.sleep(0.5)
        assert picture is not None, "the new session never answered the drawing on screen"
        columns = int((picture > 0.5).any(axis=0).sum())
        assert columns >= 12, f"the new session answered without the stroke made as it reconnected ({columns} columns)"
        assert page.locator(".st-key-canvas_1").count() == 1, "the reconnected tab was given another canvas"



def test_a_tab_that_switched_page_just_before_a_restart_answers_its_next_stroke(tmp_path, browser):
    """A click on Draw in the sidebar (its run over), then at once kill -9 and a new server: the tab, which waits
    for a page switch's run before its reconnection rerun, waited for a run that never came (the switch's was over
    and the new server runs nothing unasked), so the new session never ran, dropped the stroke, and the drawing
    on screen got no answer (walker seed 39)."""
    with _draw_tab_across_a_restart(tmp_path, browser) as (page, url, restart):
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw").click()
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60000)
        page.evaluate(_SOCKET_OPENS_JS)
        restart()
        page.wait_for_function("() => window.__testSocketOpens.length > 0", timeout=60000, polling=20)
        canvas = page.locator("canvas.upper-canvas")
        appserver.stroke(page, canvas.bounding_box(), [(140, 60), (139, 150), (138, 240)])
        appserver.answered_or_explain(page, "a stroke made as the tab reconnected")


def test_a_page_switch_clicked_as_the_tab_reconnects_is_not_taken_back(tmp_path, browser):
    """kill -9 and a new server while a Draw tab stays open; a click on Explore in the sidebar right as the tab's
    socket opens again (the tab's own reconnection reruns follow it, naming Draw) still goes to Explore. Tried at
    two moments after the socket opens. (Walker seed 66: the click was taken back and the tab stayed put. Still
    open: at 450 ms it was taken back once in two runs with two walkers beside it, by another request.)"""
    with _draw_tab_across_a_restart(tmp_path, browser) as (page, url, restart):
        stayed = []
        for delay_ms in (0, 150):
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw").click()
            page.get_by_role("heading", name="Draw a digit").wait_for(timeout=60000)
            page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60000)
            page.evaluate(_SOCKET_OPENS_JS)
            restart()
            page.wait_for_function("() => window.__testSocketOpens.length > 0", timeout=60000, polling=10)
            page.wait_for_timeout(delay_ms)
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explore").click()
            try:
                page.get_by_role("heading", name="Explore", exact=True).wait_for(timeout=20000)
                page.wait_for_timeout(3000)  # and it stays there once the reconnection's reruns are over
                page.get_by_role("heading", name="Explore", exact=True).wait_for(timeout=1000)
            except Exception:  # noqa: BLE001 - Playwright's timeout: the switch was taken back
                stayed.append(delay_ms)
        assert not stayed, f"a click on Explore made this long after the socket opened was taken back: {stayed} ms"


def test_an_open_draw_tab_answers_a_drawing_after_the_server_restarts(tmp_path, browser):
    """kill -9 and a new server on the same address while a Draw tab stays open: its next drawing gets an answer.
    (The tab reconnects to a new session, which did not know the drawing's fragment and dropped the stroke: the
    random walker found it.)"""
    with _draw_tab_across_a_restart(tmp_path, browser) as (page, url, restart):
        restart()
        answered = page.get_by_text("What the network sees")
        for attempt in range(4):  # strokes made while the tab is still reconnecting may be lost: draw again
            canvas = page.locator("canvas.upper-canvas")
            appserver.stroke(page, canvas.bounding_box(), [(140, 40), (138, 140), (136, 240)])
            try:
                answered.first.wait_for(timeout=15000)
                break
            except Exception:  # noqa: BLE001 - Playwright's timeout: try another stroke
                continue
        assert answered.count(), "no drawing got an answer after the restart"
