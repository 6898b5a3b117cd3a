"""The classroom load test (tests/loadtest.py) in its short mode: 10 sessions, 5 of them training."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_browser import CHROMIUM

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed")


def test_ten_sessions_five_training_while_five_draw(capsys):
    # Its own process: pytest-playwright's event loop in this one would refuse a second sync Playwright.
    script = Path(__file__).with_name("loadtest.py")
    out = subprocess.run([sys.executable, str(script), "--short"], capture_output=True, text=True, timeout=600)
    report = "\n".join(line for line in out.stdout.splitlines() if line[:5] not in ("I0000", "E0000", "W0000"))
    with capsys.disabled():
        print("\nload test (short, 10 sessions, 5 training):\n" + report)
    assert out.returncode == 0, report + out.stderr[-3000:]
    figures = dict((line[:36].strip(), line[36:].strip())
                   for line in report.splitlines() if line.strip())
    assert figures["trainings finished"] == "5" and figures["finished in the order asked"] == "True"
    assert figures["errors"] == "0" and float(figures["prediction p95 s"]) < 1.0
