"""The model-based random walker's short mode: three seeded walks of 25 real user actions each in Chromium, every
invariant checked after every action (tests/walker.py; its long mode: python tests/walker.py --seeds 100
--actions 40). A failure is shrunk by replay and reported with its seed, the shortest failing action list and the
command that replays it."""
import os

import pytest

import walker

SEEDS = (0, 1, 2)
ACTIONS = 25
SHRINK_BUDGET_S = 300  # a failing walk is shrunk for at most this long

pytestmark = pytest.mark.skipif(not os.path.exists(walker.CHROMIUM),
                                reason="Chromium is not installed (apt-get install chromium chromium-driver)")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_walk_keeps_every_invariant(seed):
    done, failure = walker.walk_seed(seed, ACTIONS, verbose=True)
    if failure is not None:
        print(f"seed {seed} failed after {len(done)} actions, shrinking:\n{failure}", flush=True)
        done, failure = walker.shrink(done, failure, verbose=False, budget_s=SHRINK_BUDGET_S)
        pytest.fail(walker.report(seed, done, failure), pytrace=False)
