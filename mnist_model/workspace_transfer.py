"""A workspace in and out of the store as a zip file (backups, moving servers), and the runs saved on a server
before there was a store (imported once, shared with everyone)."""
from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from sqlalchemy import select

from . import schema as t
from .config import TrainConfig
from .database import StoreError
from .errors import ModelFileError
from .i18n import N_
from .runs import RUN_ID, list_runs, load_run, write_run_files
from .workspace_ids import SERVER_WORKSPACE, is_workspace_id

EXPORT_FORMAT = "mnist-live-workspace/1"
MAX_IMPORT_BYTES = 500 * 2**20


class WorkspaceTransfer:
    """Store's export and import (a part of Store: it uses the store's own methods)."""

    def export_workspace(self, workspace_id: str, path: str | os.PathLike) -> dict:
        """Write the workspace (settings, runs with their files, drawings) to a zip file."""
        if not self.has_workspace(workspace_id):
            raise StoreError(f"There is no workspace {workspace_id!r} here.")
        runs = self.runs(workspace_id)
        _, images, labels = self.drawings(workspace_id)
        settings = self.settings(workspace_id)
        manifest = {"format": EXPORT_FORMAT, "workspace_id": workspace_id,
                    "settings": settings.to_dict() if settings else None,
                    "model_run_id": self.model_run_id(workspace_id), "language": self.language(workspace_id),
                    "runs": [{"run_id": r.run_id, "pinned": r.pinned, "published": r.published} for r in runs]}
        path = Path(path)
        with tempfile.TemporaryDirectory() as tmp:
            for run in runs:
                write_run_files(run, Path(tmp) / "runs")
            drawings = Path(tmp) / "drawings.npz"
            np.savez_compressed(drawings, images=np.round(images * 255).astype(np.uint8), labels=labels)
            part = path.with_name(path.name + ".part")
            with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("workspace.json", json.dumps(manifest, indent=1))
                zf.write(drawings, "drawings.npz")
                for file in sorted((Path(tmp) / "runs").glob("*")) if runs else []:
                    zf.write(file, f"runs/{file.name}")
            os.replace(part, path)
        return {"workspace": workspace_id, "runs": len(runs), "drawings": len(labels), "file": str(path)}

    def import_workspace(self, path: str | os.PathLike) -> dict:
        """Read an export_workspace zip back: the same workspace id; runs already here are skipped."""
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as zf:
                if sum(i.file_size for i in zf.infolist()) > MAX_IMPORT_BYTES:
                    raise StoreError(f"{path.name}: larger than {MAX_IMPORT_BYTES >> 20} MB unpacked")
                manifest = json.loads(zf.read("workspace.json"))
                if manifest.get("format") != EXPORT_FORMAT or not is_workspace_id(manifest.get("workspace_id")):
                    raise StoreError(f"{path.name}: not an MNIST Live workspace export")
                with tempfile.TemporaryDirectory() as tmp:
                    wanted = {f"runs/{r['run_id']}.{ext}" for r in manifest["runs"] if RUN_ID.match(str(r["run_id"]))
                              for ext in ("json", "npz", "keras")}
                    for name in zf.namelist():  # Only the names we expect: no path ever comes from the zip.
                        if name in wanted:
                            (Path(tmp) / Path(name).name).write_bytes(zf.read(name))
                    with np.load(zf.open("drawings.npz"), allow_pickle=False) as npz:
                        images, labels = npz["images"], npz["labels"]
                    return self._import(manifest, Path(tmp), images, labels)
        except StoreError:
            raise
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, ModelFileError) as exc:
            raise StoreError(f"{path.name}: not a readable workspace export ({exc.__class__.__name__}: {exc})") \
                from None

    def _has_run(self, run_id: str) -> bool:
        return bool(self.query(select(1).where(t.runs.c.run_id == run_id)))

    def _import(self, manifest: dict, folder: Path, images: np.ndarray, labels: np.ndarray) -> dict:
        from .handwriting import check_drawings
        workspace_id = manifest["workspace_id"]
        self.create_workspace(workspace_id)
        added, skipped = 0, 0
        for entry in manifest["runs"]:
            run_id = str(entry["run_id"])
            if not RUN_ID.match(run_id) or self._has_run(run_id):
                skipped += 1
                continue
            run = load_run(run_id, folder)
            run.pinned, run.published = bool(entry.get("pinned")), bool(entry.get("published"))
            self.add_run(workspace_id, run)
            added += 1
        if manifest.get("settings"):
            self.save_settings(workspace_id, TrainConfig.from_dict(manifest["settings"]))
        if isinstance(manifest.get("language"), str):
            self.save_language(workspace_id, manifest["language"][:8])
        if manifest.get("model_run_id") and self.run(manifest["model_run_id"], workspace_id):
            self.set_model_run_id(workspace_id, manifest["model_run_id"])
        drawn = 0
        if len(labels):
            images, labels = check_drawings(images, labels)
            self.add_drawings(workspace_id, images, labels)
            drawn = len(labels)
        return {"workspace": workspace_id, "runs added": added, "runs already here": skipped, "drawings": drawn}

    def import_legacy_runs(self, folder: str | os.PathLike) -> list[str]:
        """Once per folder: the runs saved on the server before the store, published to everyone."""
        folder = Path(folder)
        source = str(folder.resolve())
        if not folder.is_dir() or self.query(select(1).where(t.imports.c.source == source)):
            return []
        runs, problems = list_runs(folder)
        self.create_workspace(SERVER_WORKSPACE)
        for run in reversed(runs):
            if not self._has_run(run.run_id):
                run.published = True
                self.add_run(SERVER_WORKSPACE, run)
        with self.transaction(N_("remember the import")) as db:
            insert = self._insert(t.imports).values(source=source, imported_at=time.time())
            db.execute(insert.on_conflict_do_update(index_elements=["source"],
                                                    set_={"imported_at": insert.excluded.imported_at}))
        return problems
