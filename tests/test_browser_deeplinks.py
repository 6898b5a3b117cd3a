"""Every page URL, with and without settings, as the first request of a fresh server: the app routes it (five pages
in the sidebar, never the raw pages/ folder, the workspace panel, the page's own content)."""
import asyncio
import os
import shutil

import pytest
from streamlit.proto.Navigation_pb2 import Navigation

import appserver
import protocol
from protocol import Session

CHROMIUM = shutil.which("chromium") or appserver.CHROMIUM
PAGES = ["Home", "Train", "Draw", "Explore", "Class"]

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason="Chromium is not installed (apt-get install chromium chromium-driver)")


def test_a_fresh_server_never_lists_the_raw_pages_folder_not_even_for_a_moment(tmp_path):
    """Every navigation message of a fresh server's first requests, several at once (a class's tabs reconnecting
    after a restart): each lists the app's five pages or is hidden. The browser test below sees the page once it is
    routed; a tab showed the file names app, class, common, ... for the second its first run took. And the last
    run's first message shows the list: the browser takes that switch from it alone, and the first runs of a fresh
    server all started with it hidden, so a tab that had no second run kept no page list (walker seed 93); and such
    a run draws nothing before the rerun that shows the list (drawn first, the sidebar then moved down by the list's
    height, under a click: walker seed 10)."""
    proc, url = appserver.start(tmp_path / "server.log")

    async def first_requests():
        sessions = await asyncio.gather(*(Session.open(url, path) for path in ("draw", "", "class", "train")))
        later = await Session.open(url, "train")  # the server's next new tab: told to show the list from the start
        for s in sessions + [later]:
            await s.close()
        return sessions, later
    try:
        sessions, later = protocol.run(first_requests())
    finally:
        appserver.stop(proc)
    # A run's first message is made on the server's event loop, after its script started: a new tab whose message
    # was still to come was taken for one that hid the list, reran ~8 times and lost its page (walker seed 13)
    assert later.nav_hidden == [False] and later.page_hash == later.pages["train"], (later.nav_hidden, later.page_hash)
    for s in sessions:
        assert not s.errors, s.errors
        shown = [names for position, names in s.navigations if position != Navigation.Position.HIDDEN]
        assert shown and all(names == PAGES for names in shown), (s.path, s.navigations)
        assert s.nav_hidden and not s.nav_hidden[-1], (s.path, s.nav_hidden)  # the browser shows the list it got
        assert s.drawn_without_page_list == 0, (s.path, s.drawn_without_page_list)  # nothing moved under a click
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]




@needs_chromium
@pytest.mark.parametrize("path, shows", [
    ("/train?epochs=3", "Train the network"),
    ("/train", "Train the network"),
    ("/?epochs=2&batch_size=256", "Lesson plan"),
    ("/draw?dataset=fashion", "Draw a piece of clothing"),
    ("/explore?hidden_layers=3&dropout=0.3", "Explore"),
    ("/draw", "Draw a digit"),
    ("/explore", "Explore"),
    ("/class?join=ABCDEF", "Class"),
    ("/home", "Lesson plan"),
    ("/common", "Lesson plan"),  # a helper module is never a page: the app's home page instead
])
def test_a_deep_link_as_a_fresh_servers_first_request(path, shows, tmp_path, page):
    proc, url = appserver.start(tmp_path / "server.log")
    try:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(url + path)  # at once: the server has answered on its port, no page has run yet
        page.get_by_role("heading", name=shows).first.wait_for(timeout=90000) if shows != "Lesson plan" else \
            page.get_by_text(shows).first.wait_for(timeout=90000)
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60000)
        # Streamlit's "Page not found" dialog (it blocks every click): for a path that is no page's (Home's is /),
        # and only then (/class met it while Streamlit still read pages/ as the page list, and it has no file there)
        assert bool(page.get_by_text("Page not found").count()) == path.startswith(("/common", "/home")), path
        nav = page.get_by_test_id("stSidebarNav").get_by_role("link")
        assert [nav.nth(i).inner_text().split("\n")[-1].strip() for i in range(nav.count())] == PAGES
        page.get_by_text("Your workspace").wait_for(timeout=10000)
        assert page.title() == "MNIST Live" or page.title().endswith("MNIST Live")
        if "epochs=3" in path:
            slider = page.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_role("slider")
            assert slider.get_attribute("aria-valuetext") == "3"
    finally:
        appserver.stop(proc)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
