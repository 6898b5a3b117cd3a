"""The classroom load test (tests/loadtest.py) in its short mode: 10 sessions, 5 of them training."""
import os

import pytest

from test_browser import CHROMIUM

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed")


def test_ten_sessions_five_training_while_five_draw(capsys):
    import loadtest
    figures = loadtest.run(sessions=10, trainers=5, short=True, time_limit_s=400)
    with capsys.disabled():
        print("\nload test (short):\n" + loadtest.report(figures))
    assert figures["trainings finished"] == 5 and figures["finished in the order asked"]
    assert figures["predictions"] >= 5 and figures["prediction p95 s"] < loadtest.P95_LIMIT_S
    assert figures["server peak RSS MB"] < loadtest.RSS_LIMIT_MB and figures["errors"] == 0
    assert figures["ok"]
