"""Runs in the store: their rows and their arrays (files beside an SQLite database, or rows of run_blobs in a
shared PostgreSQL one), the per-workspace and disk limits, and recovery from a crash in the middle of a write."""
from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import delete, func, or_, select, update

from . import schema as t
from .database import readable
from .errors import ModelFileError
from .i18n import N_, later
from .runs import Run, arrays_npz, atomic_write, read_arrays

ORPHAN_GRACE_S = 600  # files without a row are only removed when this old (a run may be half written now)


class RunStore:
    """Store's runs (a part of Store: it uses the store's query, transaction, limits and add_notice)."""

    def _files(self, run_id: str) -> tuple[Path, Path]:
        return self.runs_path / f"{run_id}.npz", self.runs_path / f"{run_id}.keras"

    def _loader(self, run_id: str, architecture: str):
        def load() -> dict:
            npz, keras_file = self._files(run_id)
            if self.arrays_in_database:
                rows = self.query(select(t.run_blobs.c.npz, t.run_blobs.c.keras).where(t.run_blobs.c.run_id == run_id),
                                  what=N_("read the run"))
                if not rows:
                    raise ModelFileError(f"{npz.name}: the run's arrays are missing")
                arrays = read_arrays(npz, architecture, bytes(rows[0][0]))
                arrays["keras_bytes"] = bytes(rows[0][1])
                return arrays
            arrays = read_arrays(npz, architecture)
            try:
                arrays["keras_bytes"] = keras_file.read_bytes()
            except OSError:
                arrays["keras_bytes"] = b""
            return arrays
        return load

    def _run_from_row(self, row) -> Run | None:
        run_id, meta, pinned, published = row
        try:
            run = Run.from_meta(json.loads(meta), pinned=bool(pinned), published=bool(published))
        except (ModelFileError, ValueError):
            return None
        run._loader, run._arrays = self._loader(run_id, run.architecture), None
        return run

    def add_run(self, workspace_id: str, run: Run) -> list[str]:
        """Keep run in the workspace (files first, then the row); returns the names removed to make room."""
        npz, keras_file = self._files(run.run_id)
        data = arrays_npz(run.weights, run.test_probs, run.extras)
        if not self.arrays_in_database:
            try:
                atomic_write(npz, data)
                if run.keras_bytes:
                    atomic_write(keras_file, run.keras_bytes)
            except OSError as exc:
                npz.unlink(missing_ok=True)
                raise readable(exc, _saving(run)) from None
        size = len(data) + len(run.keras_bytes)
        row = dict(run_id=run.run_id, workspace_id=workspace_id, meta=json.dumps(run.meta()),
                   created_at=run.created_at, pinned=int(run.pinned), published=int(run.published), bytes=size)
        with self.transaction(_saving(run)) as db:
            insert = self._insert(t.runs).values(**row)
            db.execute(insert.on_conflict_do_update(index_elements=["run_id"],
                                                    set_={k: insert.excluded[k] for k in row if k != "run_id"}))
            if self.arrays_in_database:
                blob = self._insert(t.run_blobs).values(run_id=run.run_id, npz=data, keras=run.keras_bytes)
                db.execute(blob.on_conflict_do_update(index_elements=["run_id"],
                                                      set_={"npz": blob.excluded.npz, "keras": blob.excluded.keras}))
            removed = self._over_workspace_limit(db, workspace_id)
        self._remove_files(r for r, _ in removed)
        names = [name for _, name in removed]
        if names:
            self.add_notice(workspace_id, later(
                N_("{names} was removed to keep this workspace's latest {limit} runs (pin a run to keep it).")
                if len(names) == 1 else
                N_("{names} were removed to keep this workspace's latest {limit} runs (pin a run to keep it)."),
                names=names, limit=self.limits.runs_per_workspace))
        self.enforce_disk_cap()
        return names

    def _over_workspace_limit(self, db, workspace_id: str) -> list[tuple[str, str]]:
        r = t.runs
        rows = db.execute(select(r.c.run_id, r.c.meta).where(r.c.workspace_id == workspace_id, r.c.pinned == 0)
                          .order_by(r.c.created_at)).all()
        total = db.execute(select(func.count()).select_from(r).where(r.c.workspace_id == workspace_id)).scalar()
        extra = rows[:max(0, total - self.limits.runs_per_workspace)]
        if extra:
            db.execute(delete(r).where(r.c.run_id.in_([run_id for run_id, _ in extra])))
        return [(run_id, _name(meta, run_id)) for run_id, meta in extra]

    _RUN_COLUMNS = (t.runs.c.run_id, t.runs.c.meta, t.runs.c.pinned, t.runs.c.published)

    def runs(self, workspace_id: str) -> list[Run]:
        """The workspace's runs, oldest first (their arrays are read on first use)."""
        rows = self.query(select(*self._RUN_COLUMNS).where(t.runs.c.workspace_id == workspace_id)
                          .order_by(t.runs.c.created_at))
        return [run for run in map(self._run_from_row, rows) if run is not None]

    def run(self, run_id: str, workspace_id: str | None = None) -> Run | None:
        """A run of the workspace, or one published to everyone; None otherwise."""
        rows = self.query(select(*self._RUN_COLUMNS).where(
            t.runs.c.run_id == run_id, or_(t.runs.c.workspace_id == workspace_id, t.runs.c.published == 1)))
        return self._run_from_row(rows[0]) if rows else None

    def published_runs(self) -> list[Run]:
        """Runs published to everyone on this server, newest first."""
        rows = self.query(select(*self._RUN_COLUMNS).where(t.runs.c.published == 1)
                          .order_by(t.runs.c.created_at.desc()))
        return [run for run in map(self._run_from_row, rows) if run is not None]

    def _set_run(self, what: str, workspace_id: str, run_id: str, **values) -> None:
        with self.transaction(what) as db:
            db.execute(update(t.runs).where(t.runs.c.run_id == run_id, t.runs.c.workspace_id == workspace_id)
                       .values(**values))

    def set_pinned(self, workspace_id: str, run_id: str, pinned: bool) -> None:
        self._set_run("pin the run", workspace_id, run_id, pinned=int(pinned))

    def set_published(self, workspace_id: str, run_id: str, published: bool) -> None:
        self._set_run("publish the run", workspace_id, run_id, published=int(published))

    def delete_run(self, workspace_id: str, run_id: str) -> None:
        """Remove the row, then the files (a crash between leaves orphan files, which recover() removes)."""
        with self.transaction(N_("delete the run")) as db:
            gone = db.execute(delete(t.runs).where(t.runs.c.run_id == run_id,
                                                   t.runs.c.workspace_id == workspace_id)).rowcount
        if gone:
            self._remove_files([run_id])

    def _remove_files(self, run_ids) -> None:
        for run_id in run_ids:
            for path in self._files(run_id):
                try:
                    path.unlink(missing_ok=True)
                except OSError:  # Left for recover(): a file that cannot be removed now is an orphan later.
                    pass

    def recover(self, grace_s: float = ORPHAN_GRACE_S) -> dict:
        """Remove half-written and orphan files (older than grace_s) and rows whose files are gone."""
        if self.arrays_in_database:  # a run and its arrays are written in one transaction: nothing half done
            return {"orphan_files_removed": 0, "runs_without_files_removed": 0}
        known = {r[0] for r in self.query(select(t.runs.c.run_id))}
        now, removed_files = time.time(), 0
        for path in self.runs_path.iterdir():
            run_id = path.name.split(".")[0] if not path.name.startswith(".") else None
            orphan = path.name.startswith(".") and path.name.endswith(".part") or (run_id is not None and
                                                                                    run_id not in known)
            try:
                if orphan and now - path.stat().st_mtime >= grace_s:
                    path.unlink()
                    removed_files += 1
            except OSError:
                pass
        missing = [r for r in self.query(select(t.runs.c.run_id, t.runs.c.workspace_id, t.runs.c.meta))
                   if not self._files(r[0])[0].is_file()]
        if missing:
            with self.transaction(N_("remove damaged runs")) as db:
                db.execute(delete(t.runs).where(t.runs.c.run_id.in_([r[0] for r in missing])))
        for run_id, workspace_id, meta in missing:
            self.add_notice(workspace_id, later(N_("{name} was removed: its files were missing."),
                                                name=_name(meta, run_id)))
        return {"orphan_files_removed": removed_files, "runs_without_files_removed": len(missing)}

    def enforce_disk_cap(self) -> list[str]:
        """Remove the oldest runs (unpinned first) until the store fits its disk cap; returns their names."""
        over = self.disk_bytes() - self.limits.disk_cap_mb * 2**20
        if over <= 0:
            return []
        r = t.runs
        rows = self.query(select(r.c.run_id, r.c.workspace_id, r.c.meta, r.c.bytes).order_by(r.c.pinned,
                                                                                             r.c.created_at))
        doomed = []
        for run_id, workspace_id, meta, size in rows:
            if over <= 0:
                break
            doomed.append((run_id, workspace_id, meta))
            over -= size
        with self.transaction(N_("make room on the disk")) as db:
            db.execute(delete(r).where(r.c.run_id.in_([run_id for run_id, _, _ in doomed])))
        self._remove_files(r for r, _, _ in doomed)
        for run_id, workspace_id, meta in doomed:
            self.add_notice(workspace_id, later(
                N_("{name} was removed: the server's store reached its {limit} MB limit (oldest runs go first)."),
                name=_name(meta, run_id), limit=round(self.limits.disk_cap_mb)))
        return [_name(meta, run_id) for run_id, _, meta in doomed]


def _name(meta: str, run_id: str) -> str:
    try:
        return json.loads(meta).get("name") or run_id
    except ValueError:
        return run_id


def _saving(run: Run) -> str:
    """What saving run is called in a message (a later() text: said in the reader's language)."""
    return later(N_("save {name}"), name=run.name) if run.name else N_("save the run")
