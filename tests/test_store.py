"""The workspace store on real files: round trips, concurrent writers, crashes mid-write, damaged, newer,
read-only, locked and full stores, limits and pruning, export/import, migrations, the admin command."""
import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
from sqlalchemy import update

from mnist_model import database, schema, store as store_module
from mnist_model.config import TrainConfig
from mnist_model.i18n import said
from mnist_model.records import EpochMetrics
from mnist_model.runs import Run, write_run_files
from mnist_model.store import (Store, StoreBusy, StoreError, StoreLimits, is_workspace_id,
                               new_workspace_id, open_server_store)

from conftest import ROOT

HEAD = max(p.name[:4] for p in (ROOT / "mnist_model" / "migrations" / "versions").glob("0*.py"))  # the newest


def make_run(name="Run 1", seed=0, acc=0.75, created_at=None) -> Run:
    """A small dense run (16 hidden units) with real arrays."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype(np.float32) for s in ((784, 16), (16,), (16, 10), (10,))]
    probs = rng.dirichlet(np.ones(10), 50).astype(np.float32)
    return Run(TrainConfig(hidden_units=16, epochs=2), [EpochMetrics(1, 0.6, 0.7, 0.7, 0.65, 1.0),
                                                       EpochMetrics(2, 0.5, 0.8, 0.6, acc, 1.0)],
               "finished", "MNIST (test)", weights, keras_bytes=b"PK" + bytes(100), test_probs=probs, name=name,
               created_at=created_at)


def _files(store: Store) -> list[str]:
    """The runs' stored arrays as file names: files beside SQLite, rows of run_blobs in PostgreSQL."""
    if store.arrays_in_database:
        rows = store.query("SELECT run_id, LENGTH(keras) FROM run_blobs")
        return sorted([f"{r}.npz" for r, _ in rows] + [f"{r}.keras" for r, size in rows if size])
    return sorted(p.name for p in store.runs_path.iterdir())


def test_workspace_ids_are_unguessable_and_checked():
    ids = {new_workspace_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 and is_workspace_id(i) for i in ids)  # 192 random bits each
    assert not any(i.startswith("-") for i in ids)  # 1 in 64 would, and `store export <id>` read it as an option
    for bad in ("", "x" * 31, "x" * 33, "../../etc/passwd" + "x" * 16, "a" * 31 + "!", None, 12, "é" * 32):
        assert not is_workspace_id(bad)


def test_runs_drawings_settings_and_choices_round_trip(tmp_path, database_url):
    store = Store(tmp_path, url=database_url)
    ws = store.create_workspace()
    run = make_run()
    store.add_run(ws, run)
    store.add_drawings(ws, np.random.default_rng(1).random((3, 28, 28)), [1, 2, 3])
    store.save_settings(ws, TrainConfig(epochs=7, batch_size=32))
    store.set_model_run_id(ws, run.run_id)
    again = Store(tmp_path, url=database_url)  # as after a restart
    back = again.runs(ws)[0]
    assert back._arrays is None  # listed without reading its arrays
    assert back.name == "Run 1" and back.config == run.config and back.epochs == run.epochs
    for a, b in zip(back.weights, run.weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.test_probs, run.test_probs)
    assert back.keras_bytes == run.keras_bytes
    ids, images, labels = again.drawings(ws)
    assert len(ids) == 3 and images.shape == (3, 28, 28) and list(labels) == [1, 2, 3]
    assert again.settings(ws) == TrainConfig(epochs=7, batch_size=32)
    assert again.model_run_id(ws) == run.run_id
    assert again.next_run_number(ws) == 1 and again.next_run_number(ws) == 2


def test_other_workspaces_see_only_published_runs(tmp_path, database_url):
    store = Store(tmp_path, url=database_url)
    mine, theirs = store.create_workspace(), store.create_workspace()
    run = make_run()
    store.add_run(mine, run)
    assert store.run(run.run_id, theirs) is None and store.runs(theirs) == []
    store.set_published(theirs, run.run_id, True)  # not theirs to publish
    assert store.run(run.run_id, theirs) is None
    store.set_published(mine, run.run_id, True)
    assert store.run(run.run_id, theirs).name == "Run 1"
    assert [r.run_id for r in store.published_runs()] == [run.run_id]


def test_thirty_writers_at_once(tmp_path, database_url):
    store = Store(tmp_path, url=database_url)
    errors, workspaces = [], []

    def person(i):
        try:
            ws = store.create_workspace()
            workspaces.append(ws)
            for k in range(3):
                store.add_run(ws, make_run(f"Run {k + 1}", seed=i * 10 + k))
                store.add_drawings(ws, np.zeros((2, 28, 28)), [k, k])
                store.save_settings(ws, TrainConfig(epochs=k + 1))
                store.add_notice(ws, f"hello {k}")
        except Exception as exc:  # noqa: BLE001  (collected and asserted below)
            errors.append(exc)
    threads = [threading.Thread(target=person, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(workspaces) == 30
    for ws in workspaces:
        assert [r.name for r in store.runs(ws)] == ["Run 1", "Run 2", "Run 3"]
        assert len(store.drawings(ws)[0]) == 6 and store.take_notices(ws) == ["hello 0", "hello 1", "hello 2"]
    assert len(_files(store)) == 30 * 3 * 2  # an .npz and a .keras per run, nothing else


_CRASH = r"""
import os, sys
sys.path.insert(0, sys.argv[3])
sys.path.insert(0, sys.argv[3] + "/tests")
from mnist_model import store as sm, runs
from mnist_model.i18n import later_text, said
from test_store import make_run
store = sm.Store(sys.argv[1])
ws = sys.argv[2]
if sys.argv[4] == "before-row":  # the files are written; the process dies before the row is
    real = store.transaction
    def dying(what):
        if said(later_text(what)).startswith("save"):  # what: marked text, or a later() one
            os._exit(9)
        return real(what)
    store.transaction = dying
else:  # dies in the middle of writing a file: a .part file is left
    def dying(src, dst):
        os._exit(9)
    runs.os.replace = dying
store.add_run(ws, make_run("Run 2", seed=5))
"""


@pytest.mark.parametrize("when", ["before-row", "mid-file"])
def test_a_crash_in_the_middle_of_a_write_leaves_no_half_run(tmp_path, when):
    store = Store(tmp_path)
    ws = store.create_workspace()
    store.add_run(ws, make_run("Run 1"))
    before = _files(store)
    out = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path), ws, str(ROOT), when], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 9, out.stderr[-2000:]
    restarted = Store(tmp_path)
    assert [r.name for r in restarted.runs(ws)] == ["Run 1"]  # no half row
    assert _files(restarted) != before  # the crash left files behind...
    restarted.recover(grace_s=0)  # ...which the next start removes
    assert _files(restarted) == before
    assert restarted.runs(ws)[0].weights[0].shape == (784, 16)


def test_runs_whose_files_vanished_are_dropped_with_a_notice(tmp_path):
    store = Store(tmp_path)
    ws = store.create_workspace()
    keep, lose = make_run("Run 1"), make_run("Run 2", seed=1)
    store.add_run(ws, keep)
    store.add_run(ws, lose)
    (store.runs_path / f"{lose.run_id}.npz").unlink()
    assert store.recover(grace_s=0)["runs_without_files_removed"] == 1
    assert [r.name for r in store.runs(ws)] == ["Run 1"]
    assert [said(n) for n in store.take_notices(ws)] == ["Run 2 was removed: its files were missing."]


def test_a_damaged_database_is_moved_aside_and_a_fresh_one_started(tmp_path):
    store = Store(tmp_path)
    ws = store.create_workspace()
    store.add_run(ws, make_run())
    store.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / (store_module.DB_FILE + suffix)).unlink(missing_ok=True)
    (tmp_path / store_module.DB_FILE).write_bytes(b"this is not a database at all" * 200)
    fresh = open_server_store(tmp_path)
    assert not fresh.temporary and fresh.runs(ws) == []
    aside = list(tmp_path.glob(store_module.DB_FILE + ".damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "damaged" in said(fresh.notices[0]) and aside[0].name in said(fresh.notices[0])


def test_a_database_damaged_inside_is_caught_by_the_check(tmp_path):
    store = Store(tmp_path)
    ws = store.create_workspace()
    for i in range(40):
        store.add_notice(ws, "x" * 3000)  # some pages to damage
    store.close()
    conn = sqlite3.connect(tmp_path / store_module.DB_FILE)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    path = tmp_path / store_module.DB_FILE
    data = bytearray(path.read_bytes())
    data[4096 * 2:4096 * 5] = os.urandom(4096 * 3)  # pages 3-5 are garbage; the header is fine
    path.write_bytes(bytes(data))
    fresh = open_server_store(tmp_path)
    assert fresh.notices and "damaged" in said(fresh.notices[0]) and not fresh.temporary


@pytest.mark.parametrize("newer, version", [("PRAGMA user_version=99", "99"),  # from before Alembic: its own number
                                         ("UPDATE alembic_version SET version_num = '0099'", "0099")])
def test_a_database_from_a_newer_app_is_left_untouched(tmp_path, newer, version):
    store = Store(tmp_path)
    store.create_workspace()
    store.close()
    conn = sqlite3.connect(tmp_path / store_module.DB_FILE)
    conn.execute(newer)
    conn.commit()
    conn.close()
    digest = hashlib.sha256((tmp_path / store_module.DB_FILE).read_bytes()).hexdigest()
    with pytest.raises(store_module.StoreNewer, match=f"store version {version}; this app knows versions up to {HEAD}"):
        Store(tmp_path)
    served = open_server_store(tmp_path)
    notice = said(served.notices[0])
    assert served.temporary and "newer MNIST Live" in notice and "temporary folder" in notice
    assert hashlib.sha256((tmp_path / store_module.DB_FILE).read_bytes()).hexdigest() == digest
    out = subprocess.run([sys.executable, "-m", "mnist_model", "store", "--data-folder", str(tmp_path), "info"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and "newer MNIST Live" in out.stderr and "Traceback" not in out.stderr


_READ_ONLY = r"""
import os, sys
sys.path.insert(0, sys.argv[2])
from mnist_model.store import open_server_store
if os.getuid() == 0:
    os.setgid(65534); os.setuid(65534)  # root may write anywhere: drop to nobody (after the imports)
s = open_server_store(sys.argv[1])
print(s.temporary, s.notices[0])
"""


def test_a_read_only_data_folder_gets_a_temporary_store_and_is_left_as_it_was(tmp_path):
    folder = tmp_path / "data"
    store = Store(folder)
    store.add_run(store.create_workspace(), make_run())
    store.close()
    before = sorted((p.name, p.stat().st_size) for p in folder.rglob("*"))
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    tmp_path.chmod(0o755)
    try:
        out = subprocess.run([sys.executable, "-c", _READ_ONLY, str(folder), str(ROOT)], capture_output=True,
                             text=True, timeout=60)
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("True ") and "cannot be written" in out.stdout and "temporary" in out.stdout
    assert sorted((p.name, p.stat().st_size) for p in folder.rglob("*")) == before


def test_a_database_locked_by_another_program_says_busy_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    store = Store(tmp_path)
    ws = store.create_workspace()
    store.add_run(ws, make_run("Run 1"))
    other = sqlite3.connect(tmp_path / store_module.DB_FILE, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the database
    try:
        with pytest.raises(StoreBusy, match="busy"):
            store.add_run(ws, make_run("Run 2", seed=1))
        assert [r.name for r in store.runs(ws)] == ["Run 1"]  # reading goes on (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.add_run(ws, make_run("Run 2", seed=1))
    assert [r.name for r in store.runs(ws)] == ["Run 1", "Run 2"]


_FULL = r"""
import resource, signal, sys
sys.path.insert(0, sys.argv[3]); sys.path.insert(0, sys.argv[3] + "/tests")
from mnist_model.store import Store, StoreError
from test_store import make_run
store = Store(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # files may not grow past 20 kB: a full disk
try:
    store.add_run(sys.argv[2], make_run("Run 2", seed=3))
except StoreError as exc:
    print(type(exc).__name__, exc)
"""


def test_a_full_disk_says_so_and_keeps_what_was_saved(tmp_path):
    store = Store(tmp_path)
    ws = store.create_workspace()
    store.add_run(ws, make_run("Run 1"))
    out = subprocess.run([sys.executable, "-c", _FULL, str(tmp_path), ws, str(ROOT)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.startswith("StoreFull Could not save Run 2: the server's disk is full."), out.stdout + out.stderr
    again = Store(tmp_path)
    again.recover(grace_s=0)
    assert [r.name for r in again.runs(ws)] == ["Run 1"] and len(_files(again)) == 2


def test_runs_per_workspace_limit_keeps_pinned_runs_and_says_so(tmp_path, database_url):
    store = Store(tmp_path, StoreLimits(runs_per_workspace=3), url=database_url)
    ws = store.create_workspace()
    runs = [make_run(f"Run {i}", seed=i, created_at=1000.0 + i) for i in range(1, 5)]
    store.add_run(ws, runs[0])
    store.set_pinned(ws, runs[0].run_id, True)
    for run in runs[1:3]:
        assert store.add_run(ws, run) == []
    assert store.add_run(ws, runs[3]) == ["Run 2"]  # the oldest unpinned one
    assert [r.name for r in store.runs(ws)] == ["Run 1", "Run 3", "Run 4"]
    assert "Run 2 was removed to keep this workspace's latest 3 runs" in said(store.take_notices(ws)[0])
    assert len(_files(store)) == 6


def test_pruning_unused_workspaces_and_the_disk_cap(tmp_path, database_url):
    store = Store(tmp_path, StoreLimits(keep_days=30, disk_cap_mb=10), url=database_url)
    old, empty, busy = store.create_workspace(), store.create_workspace(), store.create_workspace()
    store.add_run(old, make_run("Old run"))
    store.add_run(busy, make_run("Busy run", seed=1, created_at=time.time() - 100))
    store.add_drawings(busy, np.zeros((1, 28, 28)), [3])
    now = time.time()
    with store.transaction("test") as db:
        for workspace, seen in ((old, now - 31 * 86400), (empty, now - 2 * 86400), (busy, now - 2 * 86400)):
            db.execute(update(schema.workspaces).where(schema.workspaces.c.id == workspace).values(last_seen=seen))
    report = store.prune(now)
    assert report["workspaces_removed"] == 2 and report["their_runs_removed"] == 1
    assert not store.has_workspace(old) and not store.has_workspace(empty) and store.has_workspace(busy)
    assert len(_files(store)) == 2
    # The disk cap: with room left for the database to grow a little but not for another run (about 0.05 MB),
    # adding one removes the oldest.
    store.add_run(busy, make_run("Run A", seed=2, created_at=now - 10))
    store.limits = StoreLimits(disk_cap_mb=(store.disk_bytes() + 30_000) / 2**20)
    store.add_run(busy, make_run("Run B", seed=3, created_at=now - 5))
    assert [r.name for r in store.runs(busy)] == ["Run A", "Run B"]
    assert store.disk_bytes() <= store.limits.disk_cap_mb * 2**20
    assert any("Busy run was removed: the server's store reached its" in said(n) for n in store.take_notices(busy))


def test_export_and_import_round_trip(tmp_path, database_url, request):
    source = Store(tmp_path / "a", url=database_url)
    ws = source.create_workspace()
    runs = [make_run("Run 1"), make_run("Run 2", seed=1)]
    for run in runs:
        source.add_run(ws, run)
    source.set_pinned(ws, runs[0].run_id, True)
    source.add_drawings(ws, np.random.default_rng(0).random((4, 28, 28)), [0, 1, 2, 3])
    source.save_settings(ws, TrainConfig(epochs=3))
    source.set_model_run_id(ws, runs[1].run_id)
    summary = source.export_workspace(ws, tmp_path / "ws.zip")
    assert summary["runs"] == 2 and summary["drawings"] == 4
    other = request.getfixturevalue("postgres").database() if database_url else None  # another deployment's
    target = Store(tmp_path / "b", url=other)
    assert target.import_workspace(tmp_path / "ws.zip")["runs added"] == 2
    back = target.runs(ws)
    assert [r.name for r in back] == ["Run 1", "Run 2"] and back[0].pinned and not back[1].pinned
    np.testing.assert_array_equal(back[1].weights[2], runs[1].weights[2])
    assert list(target.drawings(ws)[2]) == [0, 1, 2, 3] and target.settings(ws) == TrainConfig(epochs=3)
    assert target.model_run_id(ws) == runs[1].run_id
    assert target.import_workspace(tmp_path / "ws.zip")["runs already here"] == 2  # a second import adds nothing


def test_import_refuses_bad_files_and_never_uses_paths_from_the_zip(tmp_path, database_url):
    store = Store(tmp_path / "s", url=database_url)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(StoreError, match="not a readable workspace export"):
        store.import_workspace(tmp_path / "junk.zip")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("workspace.json", '{"format": "mnist-live-workspace/1", "workspace_id": "' + "a" * 32 +
                    '", "runs": [{"run_id": "../../../../tmp/x"}]}')
        zf.writestr("../../../../tmp/evil.txt", "x")
        with zf.open("drawings.npz", "w") as f:
            np.savez(f, images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.uint8))
    assert store.import_workspace(tmp_path / "evil.zip") == {"workspace": "a" * 32, "runs added": 0,
                                                            "runs already here": 1, "drawings": 0}
    assert not (tmp_path / "evil.txt").exists()


def test_forward_migrations_keep_the_data(tmp_path, database_url, monkeypatch):
    store = Store(tmp_path / "data", url=database_url)
    ws = store.create_workspace()
    store.add_run(ws, make_run())
    head = store.version
    store.close()
    extra = tmp_path / "versions"
    extra.mkdir()
    (extra / "0099_extra.py").write_text(
        f"revision = '0099'\ndown_revision = {head!r}\nbranch_labels = depends_on = None\n"
        "from alembic import op\n\ndef upgrade():\n    op.execute('CREATE TABLE extra (x INTEGER)')\n"
        "    op.execute('INSERT INTO extra VALUES (42)')\n")
    monkeypatch.setattr(database, "VERSION_LOCATIONS", database.VERSION_LOCATIONS + [extra])
    newer = Store(tmp_path / "data", url=database_url)
    assert newer.version == "0099" and newer.query("SELECT x FROM extra") == [(42,)]
    assert [r.name for r in newer.runs(ws)] == ["Run 1"]


def test_the_migrations_build_the_schema_the_code_uses(tmp_path, database_url):
    """Every table, column, key and index in schema.py is what the migrations made, on both engines."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    store = Store(tmp_path / "data", url=database_url)
    try:
        with store.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        assert diff == [] and store.version == HEAD
    finally:
        store.close()


_LEGACY_V1 = """
    CREATE TABLE workspaces (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        settings TEXT,
        model_run_id TEXT,
        run_counter INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        meta TEXT NOT NULL,
        created_at REAL NOT NULL,
        pinned INTEGER NOT NULL DEFAULT 0,
        published INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_workspace ON runs(workspace_id, created_at);
    CREATE TABLE drawings (
        id INTEGER PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        label INTEGER NOT NULL,
        pixels BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX drawings_by_workspace ON drawings(workspace_id, id);
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        kind TEXT NOT NULL,
        config TEXT NOT NULL,
        base_run_id TEXT,
        state TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_by_workspace ON jobs(workspace_id, created_at);
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE imports (
        source TEXT PRIMARY KEY,
        imported_at REAL NOT NULL
    );
    """


@pytest.mark.parametrize("legacy_version", [1, 2])
def test_a_store_from_before_alembic_upgrades_in_place(tmp_path, legacy_version):
    """A file the hand-written migrations left (user_version 1: no class tables yet; 2: with them) keeps its
    rows and gains the newest schema; an app from before then refuses it (user_version 3) instead of misreading."""
    conn = sqlite3.connect(tmp_path / store_module.DB_FILE, isolation_level=None)
    conn.executescript(_LEGACY_V1 + (database.LEGACY_CLASS_TABLES if legacy_version == 2 else ""))
    conn.execute("INSERT INTO workspaces (id, created_at, last_seen, settings, run_counter) VALUES (?, 1, 1, ?, 4)",
                 ("w" * 32, '{"epochs": 7}'))
    conn.execute(f"PRAGMA user_version={legacy_version}")
    conn.close()
    store = Store(tmp_path)
    assert store.version == HEAD and store.settings("w" * 32).epochs == 7 and store.next_run_number("w" * 32) == 5
    store.classroom_ready = store.query("SELECT COUNT(*) FROM classes") == [(0,)]
    assert store.classroom_ready and store.counters("generation") == (0,)
    store.close()
    assert sqlite3.connect(tmp_path / store_module.DB_FILE).execute("PRAGMA user_version").fetchone() == (3,)


def test_runs_saved_before_the_store_are_imported_once_and_shared(tmp_path, database_url):
    legacy = tmp_path / "runs"
    old = make_run("Shared")
    write_run_files(old, legacy)
    (legacy / "broken.json").write_text("{")
    store = Store(tmp_path / "data", url=database_url)
    problems = store.import_legacy_runs(legacy)
    assert len(problems) == 1
    shared = store.published_runs()
    assert [r.name for r in shared] == ["Shared"] and shared[0].weights[0].shape == (784, 16)
    assert store.import_legacy_runs(legacy) == [] and len(store.published_runs()) == 1


def test_unfinished_trainings_become_interrupted_at_the_next_start(tmp_path, database_url):
    store = Store(tmp_path, url=database_url)
    ws = store.create_workspace()
    store.record_job(ws, "job1", "Run 1", "train", TrainConfig(epochs=9))
    store.set_job_state("job1", "running")
    store.record_job(ws, "job2", "Run 2", "train", TrainConfig(epochs=2))  # a sweep's next, waiting
    store.record_job(ws, "job3", "Run 3", "train", TrainConfig())
    store.forget_job("job3")  # it ended normally
    restarted = Store(tmp_path, url=database_url)
    assert restarted.interrupt_unfinished() == 2
    records = restarted.jobs(ws)
    assert [(r.label, r.config.epochs) for r in records] == [("Run 1", 9), ("Run 2", 2)]
    assert "while it was training" in records[0].message and "waiting" in records[1].message


def test_admin_command_line(tmp_path):
    store = Store(tmp_path / "data")
    ws = store.create_workspace()
    store.add_run(ws, make_run())
    store.close()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mnist_model", "store", "--data-folder", str(tmp_path / "data"),
                               *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    info = cli("info")
    assert info.returncode == 0 and "workspaces: 1" in info.stdout and "runs: 1" in info.stdout
    assert cli("export", ws, str(tmp_path / "ws.zip")).returncode == 0 and (tmp_path / "ws.zip").is_file()
    assert "workspaces_removed: 0" in cli("prune").stdout
    bad = cli("export", "nobody" * 6, str(tmp_path / "x.zip"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: There is no workspace")
    other = subprocess.run([sys.executable, "-m", "mnist_model", "store", "--data-folder", str(tmp_path / "other"),
                            "import", str(tmp_path / "ws.zip")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert other.returncode == 0 and "runs added: 1" in other.stdout
