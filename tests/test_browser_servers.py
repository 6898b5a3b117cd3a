"""Several app servers on one PostgreSQL database behind nginx (deploy/nginx.conf), in Chromium: a class spans
the servers, a server killed mid-lesson loses nobody's work, and a database restart shows a message, never a
traceback."""
import os
import time

import pytest
from playwright.sync_api import expect

from test_browser import CHROMIUM, _open
from test_browser_class import _board_text

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Chromium is not installed (apt-get install chromium chromium-driver)")
SILENT_S = 6  # a server unheard of this long has died (60 s by default; short here so the test waits less)


@pytest.fixture
def district(postgres):
    import deployment
    why = deployment.missing()
    if why:
        if os.environ.get("MNIST_LIVE_REQUIRE_POSTGRES"):  # CI installs nginx beside PostgreSQL
            pytest.fail(why)
        pytest.skip(why)
    d = deployment.Deployment(postgres.database(), servers=2, MNIST_LIVE_SERVER_SILENT_S=str(SILENT_S))
    yield d
    logs = [d.log(i) for i in range(len(d.procs))]
    d.close()
    for log in logs:
        assert "Traceback" not in log, log[-3000:]
        assert postgres.password not in log  # the database's password never reaches a log


def _browser_on(browser, district, server: int):
    """A new browser (context) that nginx's sticky cookie sends to server."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    context.add_cookies([{"name": "mnist_live_server", "value": district.server_cookie(server),
                          "url": district.url}])
    return context.new_page()


def _until(predicate, timeout: float, what: str) -> float:
    """Seconds until predicate() holds (a functional limit, not a speed target)."""
    t0 = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.perf_counter() - t0


def _join(page, url, code, name):
    _open(page, url, "Class", "?epochs=1&train_size=500")
    page.get_by_role("textbox", name="Class code").fill(code)
    page.get_by_role("textbox", name="Nickname").fill(name)
    page.get_by_role("button", name="Join").click()
    page.get_by_text(f"You are in as: {name}").wait_for(timeout=30000)


def _train(page):
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    page.get_by_role("button", name="Train", exact=True).click()


def test_a_class_across_two_servers_a_dead_server_and_a_database_restart(district, postgres, browser):
    url = district.url
    teacher = _browser_on(browser, district, 0)
    _open(teacher, url, "Class")
    teacher.get_by_role("button", name="Start a class").click()
    big = teacher.locator("div[style*='5.5rem']")
    big.wait_for(timeout=30000)
    code = big.inner_text().strip()
    ada, grace = _browser_on(browser, district, 0), _browser_on(browser, district, 1)
    for page, name in ((ada, "Ada"), (grace, "Grace")):
        _join(page, url, code, name)
        _train(page)
    for page, name in ((ada, "Ada"), (grace, "Grace")):
        page.get_by_text("Test accuracy", exact=True).wait_for(timeout=180000)
        delay = _until(lambda: name in _board_text(teacher), 30, f"{name}'s run on the teacher's board")
        print(f"{name} (server {0 if page is ada else 1}) on the board of the teacher (server 0) {delay:.1f} s after "
              "her page showed the run")
    teacher.get_by_role("button", name="Suggest these settings").click()
    grace.get_by_text("Your teacher suggests: 5 epochs").wait_for(timeout=20000)  # across servers too

    # Grace starts a long training on server 1. Her phone, which nginx sent to server 0, shows it training
    # elsewhere; then server 1 dies: the phone's page turns it into "interrupted" (Train again) by itself, and
    # her laptop reconnects through nginx to server 0, which finds her workspace, her run and her class.
    grace.goto(f"{url}/train?epochs=50&batch_size=16")  # a long one
    grace.get_by_role("button", name="Train", exact=True).click()
    expect(grace.get_by_role("button", name="Stop training")).to_be_enabled(timeout=30000)  # it trains
    phone = _browser_on(browser, district, 0)
    phone.context.add_cookies([c for c in grace.context.cookies() if c["name"] == "mnist_live_workspace"])
    _open(phone, url, "Train")
    phone.get_by_text("is training for this workspace on another of this school's servers").wait_for(timeout=60000)
    expect(phone.get_by_role("button", name="Train", exact=True)).to_be_disabled()
    district.kill(1)
    phone.get_by_text("was interrupted").wait_for(timeout=60000 + 4000 * SILENT_S)
    grace.get_by_text("was interrupted").wait_for(timeout=60000 + 4000 * SILENT_S)
    assert grace.get_by_role("button", name="Train again").count()
    grace.get_by_test_id("stSidebarNav").get_by_role("link", name="Class").click()
    grace.get_by_text("You are in as: Grace").wait_for(timeout=30000)
    assert "Grace" in _board_text(teacher) and "Ada" in _board_text(teacher)  # the board lost nothing

    # PostgreSQL goes down while every page is open: a plain message, and each page comes back by itself.
    with postgres.down():
        ada.get_by_test_id("stSidebarNav").get_by_role("link", name="Class").click()
        # The whole page's message (the Train page's suggestion check, ticking in its place until the switch's run
        # draws Class, says only its own "Could not ...": CI, 4 December)
        ada.get_by_text("Nothing you saved is lost").wait_for(timeout=60000)
        assert ada.get_by_text("the database server does not answer").count()
    ada.get_by_text("You are in as: Ada").wait_for(timeout=60000)  # without a click
    ada.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    ada.get_by_role("button", name="Train", exact=True).click()
    ada.get_by_role("heading", name="Run 2: finished").wait_for(timeout=180000)
    _until(lambda: _board_text(teacher).count("Ada") == 2, 30, "Ada's second run on the board")
    for page in (teacher, ada, grace, phone):
        assert not page.get_by_text("Traceback").count()
        page.context.close()
