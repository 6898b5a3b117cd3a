"""A class in real browsers: the teacher starts it, three students join with the code on the teacher's screen,
each trains, and the teacher's board lists them with their test accuracies; students cannot clear it."""
import os
import re
import time

import pytest
from playwright.sync_api import expect

from test_browser import CHROMIUM, _open

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Chromium is not installed (apt-get install chromium chromium-driver)")




def _board_text(page) -> str:
    """The leaderboard's accessible copy (the grid itself is drawn on a canvas)."""
    grid = page.get_by_test_id("stDataFrame")
    if not grid.count():
        return ""
    return grid.first.locator("table").first.text_content(timeout=5000) or ""


def start_class(browser, app_url):
    """A teacher's page that has started a class, and the class's join code (as the board shows it)."""
    teacher = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    _open(teacher, app_url, "Class")
    teacher.get_by_role("button", name="Start a class").click()
    big = teacher.locator("div[style*='5.5rem']")
    big.wait_for(timeout=30000)
    return teacher, big.inner_text().strip()


def test_a_class_of_three_on_one_board(app_url, browser):
    teacher, code = start_class(browser, app_url)
    teacher.get_by_text("Scan to join").first.wait_for(timeout=30000)
    students, delays = [], []
    for i, name in enumerate(["Ada", "Grace", "Alan"]):
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        if i == 2:  # the third scans the QR code: the join link fills in the code
            page.goto(f"{app_url}/class?join={code}")
            page.get_by_text("Join a class").wait_for(timeout=60000)
            expect(page.get_by_role("textbox", name="Class code")).to_have_value(code)  # as the form is drawn
        else:
            _open(page, app_url, "Class", "?epochs=1&train_size=500")
            page.get_by_role("textbox", name="Class code").fill(code.lower())
        page.get_by_role("textbox", name="Nickname").fill(name)
        page.get_by_role("button", name="Join").click()
        page.get_by_text(f"You are in as: {name}").wait_for(timeout=30000)
        assert not page.get_by_role("button", name="Clear the board").count()
        assert not page.get_by_role("button", name="Suggest these settings").count()
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text("Test accuracy", exact=True).wait_for(timeout=180000)
        ended = time.perf_counter()
        while name not in _board_text(teacher) and time.perf_counter() - ended < 120:  # it follows by itself
            time.sleep(0.1)
        delays.append(time.perf_counter() - ended)
        students.append(page)
    text = _board_text(teacher)
    assert all(name in text for name in ("Ada", "Grace", "Alan")), text
    assert len(re.findall(r"\d{2}\.\d", text)) >= 6  # train and test accuracy (%) for each of the three
    assert teacher.get_by_test_id("stMetric").filter(has_text="Students joined").get_by_text("3").count()
    print("board updated", ", ".join(f"{d:.1f} s" for d in delays), "after each run ended")  # a figure, no limit
    grace = students[1]  # on her Train page, with her own settings (1 epoch, 500 examples)
    assert not grace.get_by_text("Your teacher suggests").count()
    teacher.get_by_role("button", name="Suggest these settings").click()
    grace.get_by_text("Your teacher suggests: 5 epochs").wait_for(timeout=20000)  # without touching her page
    grace.get_by_role("button", name="Use them").click()
    grace.get_by_role("button", name="Train", exact=True).click()  # at once, before the page has redrawn
    grace.get_by_role("heading", name="Run 2: finished").wait_for(timeout=180000)
    assert not grace.get_by_text("Your teacher suggests").count()
    assert grace.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_test_id(
        "stSliderThumbValue").inner_text() == "5"  # the whole page took them, not only the suggestion
    assert grace.get_by_text(re.compile(
        r"^With 5 epochs and all training examples \(instead of 1 epoch and 500 training examples\)")).count()
    student = students[0]
    student.get_by_test_id("stSidebarNav").get_by_role("link", name="Class").click()
    student.get_by_text("You are in as: Ada").wait_for(timeout=30000)
    assert not student.get_by_role("button", name="Clear the board").count()
    teacher.get_by_role("button", name="Clear the board").click()
    teacher.get_by_role("button", name="Yes, clear the board").click()
    teacher.get_by_text("No runs on the board yet").wait_for(timeout=30000)
    teacher.get_by_text(re.compile(r"^Cleared the board \(\d+ runs\)\.$")).wait_for(timeout=30000)
    teacher.get_by_role("button", name="Remove a nickname").click()
    teacher.get_by_role("combobox", name=re.compile("Student")).click()
    teacher.get_by_role("option", name="Ada").click()
    teacher.get_by_role("button", name="Remove them and their runs").click()
    teacher.get_by_text("Removed Ada and their runs from the board.").wait_for(timeout=30000)
    student.get_by_text("Join a class").wait_for(timeout=30000)  # her open page follows by itself
    alan = students[2]
    alan.get_by_test_id("stSidebarNav").get_by_role("link", name="Class").click()
    alan.get_by_text("You are in as: Alan").wait_for(timeout=30000)
    teacher.get_by_role("button", name="End the class").click()
    teacher.get_by_role("button", name="Yes, end the class").click()
    alan.get_by_text("This class has ended: your new runs are no longer posted").wait_for(timeout=30000)  # by itself
    for page in [teacher, *students]:
        page.context.close()
