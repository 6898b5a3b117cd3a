"""Shared fixtures: offline data only, small real datasets, one warm executor for the whole session."""
import atexit
import collections
import gzip
import importlib.util
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ["MNIST_OFFLINE"] = "1"  # No test downloads anything.
os.environ["MNIST_LIVE_DATA"] = tempfile.mkdtemp(prefix="mnist-live-test-data-")  # never the working directory's
os.environ["MNIST_LIVE_RUNS"] = tempfile.mkdtemp(prefix="mnist-live-test-runs-")
for _folder in (os.environ["MNIST_LIVE_DATA"], os.environ["MNIST_LIVE_RUNS"]):
    atexit.register(shutil.rmtree, _folder, ignore_errors=True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The app servers and Labs the tests start warm no training worker at their first page view: most never train, and
# each worker imports TensorFlow (seconds of CPU that the other pytest worker wants). Those that train start theirs
# with the first training, as the executor contract tests do. bench measures the warm server, and says so.
os.environ.setdefault("MNIST_LIVE_WARM_WORKERS", "0")

ROOT = Path(__file__).resolve().parents[1]
T10K = ROOT.parent / "shared" / "data" / "mnist-t10k"


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write an IDX file of unsigned bytes, as LeCun's files are."""
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture(scope="session")
def sample():
    from mnist_model.data import load_dataset
    return load_dataset("mnist")


@pytest.fixture(scope="session")
def t10k():
    """The official MNIST test set from ../shared, or skip when it is absent (a user's fresh clone)."""
    if not (T10K / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("../shared/data/mnist-t10k is not present")
    from mnist_model.data import read_idx
    return read_idx(T10K / "t10k-images-idx3-ubyte.gz"), read_idx(T10K / "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def trained(sample):
    """The notebook's network trained in-process on the offline sample (5 epochs)."""
    from mnist_model.config import TrainConfig
    from mnist_model.training import train
    return train(TrainConfig(epochs=5), sample)


RAY_MODULES = {"test_cluster"}  # its tests start Ray clusters of their own
RAY_TESTS = {"test_bench_quick_prints_every_target_as_json"}  # bench's cluster figures start one too


def worker_group(nodeid: str) -> str:
    """The worker group of a test: "ray" for every test that starts Ray (so two Ray clusters never compete),
    else its module (so a module's app server and fixtures start once)."""
    path, _, rest = nodeid.partition("::")
    name, params = rest.partition("[")[0], rest.partition("[")[2]
    if (Path(path).stem in RAY_MODULES or name in RAY_TESTS
            or re.search(r"(^|-)ray(-|\]$)", params)):  # an executor parameter: [ray], [4-ray], [chromium-ray]
        return "ray"
    return Path(path).stem


# Each group's seconds on two busy workers (clean-clone run of 2 December); the workers take the longest first, so
# that no long group (a walk, the 20 protocol students) starts last while the other worker has nothing left to do.
GROUP_SECONDS = {"ray": 690, "test_browser_workspace": 400, "test_walker": 285, "test_protocol_load": 155,
                 "test_executor_slots": 140, "test_browser": 125, "test_browser_draw": 120, "test_browser_lesson": 105,
                 "test_browser_servers": 95, "test_browser_a11y": 90, "test_browser_class": 90, "test_load": 85,
                 "test_every_run": 70, "test_protocol_races": 70, "test_browser_deeplinks": 65, "test_app": 65,
                 "test_lab": 65, "test_notebook": 65, "test_faults": 60, "test_app_fixes": 60, "test_cli": 55,
                 "test_knobs": 55}
SECONDS_PER_UNLISTED_TEST = 1.0


def pytest_collection_modifyitems(config, items):
    """The longest groups first (GROUP_SECONDS), each group's tests in their own order."""
    def seconds(group: str) -> float:
        return GROUP_SECONDS.get(group, SECONDS_PER_UNLISTED_TEST * counts[group])
    groups = [worker_group(item.nodeid) for item in items]
    counts = collections.Counter(groups)
    order = {id(item): (-seconds(g), g, i) for i, (item, g) in enumerate(zip(items, groups))}
    items.sort(key=lambda item: order[id(item)])


def pytest_xdist_make_scheduler(config, log):
    """make test's two workers (pytest-xdist) take whole groups (worker_group). xdist's own --dist loadgroup reads
    xdist_group marks into the test ids, which pytest 9 no longer lets it do: every test was its own group, so each
    module's tests were spread over both workers, each starting the module's app server, and both workers ran
    Ray at once."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)
    config.option.loadscopereorder = False  # xdist would put the groups with most tests first; ours are in time order
    return ByGroup(config, log)


EXECUTORS = ["local"] + (["ray"] if importlib.util.find_spec("ray") else [])  # one contract, every executor


@pytest.fixture(scope="session", params=EXECUTORS)
def executor(request):
    """A one-slot executor of each kind, warm (the Ray one on a local, loopback-only Ray)."""
    from mnist_model.executors import make_executor
    ex = make_executor(request.param, slots=1)
    for slot in ex._slots:
        slot.warm()
    yield ex
    ex.close()


def kill_worker(executor, job=None) -> None:
    """Kill the worker running job (or every idle one): a process killed by the OS, a Ray actor lost with its node."""
    import signal
    for slot in executor._slots:
        if (slot.job is job) if job is not None else slot.job is None:
            if hasattr(slot, "_process"):
                if slot.alive():
                    os.kill(slot._process.pid, signal.SIGKILL)
            elif slot._actor is not None:
                import ray
                ray.kill(slot._actor, no_restart=True)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium: Playwright cannot download its own browser here."""
    import shutil

    import appserver
    return {**browser_type_launch_args, "executable_path": shutil.which("chromium") or appserver.CHROMIUM,
            "args": appserver.CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app served on a free loopback port (its own data folder) for a module's browser tests; its log must
    hold no traceback."""
    import appserver
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, url = appserver.start(log)
    yield url
    appserver.stop(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster (tests/postgres.py) for the whole session."""
    import postgres as pg
    why = pg.missing()
    if why:
        if os.environ.get("MNIST_LIVE_REQUIRE_POSTGRES"):  # CI installs it: there, a missing one is a failure
            pytest.fail(why)
        pytest.skip(why)
    cluster = pg.Postgres()
    yield cluster
    cluster.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Each store test on both engines: None (the SQLite file in the data folder) or a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres").database()
