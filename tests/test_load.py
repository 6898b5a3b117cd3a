"""The classroom load test (tests/loadtest.py) in its short class mode: correctness is asserted, times are reported.

Its sessions-only mode (no teacher, no board) is the same scenario less the board: the class mode covers it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_browser import CHROMIUM

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed")


def _load_test(capsys, *args) -> dict:
    # Its own process: pytest-playwright's event loop in this one would refuse a second sync Playwright.
    script = Path(__file__).with_name("loadtest.py")
    out = subprocess.run([sys.executable, str(script), "--short", *args], capture_output=True, text=True,
                         timeout=900)
    report = "\n".join(line for line in out.stdout.splitlines() if line[:5] not in ("I0000", "E0000", "W0000"))
    with capsys.disabled():
        print(f"\nload test ({' '.join(['--short', *args])}):\n" + report)
    assert out.returncode == 0, report + out.stderr[-3000:]
    return dict((line[:36].strip(), line[36:].strip()) for line in report.splitlines() if line.strip())


def test_a_class_with_the_board_open_while_students_train_and_draw(capsys):
    # Four students, two of whom train (one after the other on the one slot) while two draw: the class mode's
    # every path at the least cost (the full class is the load test's own default, 30 students)
    figures = _load_test(capsys, "--class", "--sessions", "4", "--trainers", "2")
    assert figures["trainings finished"] == "2" and figures["finished in the order asked"] == "True"
    assert figures["board updated for every run"] == "True" and figures["errors"] == "0"
    assert int(figures["predictions"]) >= 2  # every drawing student got answers while the trainings ran
