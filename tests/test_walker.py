"""The model-based random walker's short mode: three seeded walks of 20 real user actions each in Chromium, every
invariant checked after every action (tests/walker.py; its long mode: python tests/walker.py --seeds 100
--actions 40). A failure is shrunk by replay and reported with its seed, the shortest failing action list and the
command that replays it.

Each walk runs in a process of its own: the walker drives Playwright's sync API, which cannot start inside the
asyncio loop that pytest-playwright's browser fixtures leave running in this one."""
import os
import subprocess
import sys

import pytest

import walker

SEEDS = (0, 1, 2)
ACTIONS = 20
SHRINK_BUDGET_S = 300  # a failing walk is shrunk for at most this long

_WALK = r"""
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
import walker
seed, actions, budget = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
done, failure = walker.walk_seed(seed, actions, verbose=True)
if failure is not None:
    print(f"seed {seed} failed after {len(done)} actions, shrinking:\n{failure}", flush=True)
    done, failure = walker.shrink(done, failure, verbose=False, budget_s=budget)
    print("WALK FAILED\n" + walker.report(seed, done, failure), flush=True)
    sys.exit(1)
"""

pytestmark = pytest.mark.skipif(not os.path.exists(walker.CHROMIUM),
                                reason="Chromium is not installed (apt-get install chromium chromium-driver)")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_walk_keeps_every_invariant(seed):
    proc = subprocess.run([sys.executable, "-c", _WALK, str(walker.ROOT), str(seed), str(ACTIONS),
                           str(SHRINK_BUDGET_S)], capture_output=True, text=True, timeout=1800, cwd=walker.ROOT)
    print(proc.stdout[-6000:])
    if proc.returncode != 0:
        report = proc.stdout.split("WALK FAILED\n")[-1] if "WALK FAILED" in proc.stdout else proc.stderr[-4000:]
        pytest.fail(report, pytrace=False)
