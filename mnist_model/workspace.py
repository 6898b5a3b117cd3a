"""Workspace: everything one person makes (runs, trainings, drawings, settings), reached through one object.

A page asks the Lab for the browser's workspace and calls these methods; nothing of a person's work lives in
the page's session. Writes raise StoreError (plain words) when the store cannot take them.
"""
from __future__ import annotations

import time

import numpy as np

from .config import TrainConfig
from .errors import InputError, WorkspaceBusy
from .i18n import _, said
from .jobs import Order, TrainingJob, TrainTask
from .runs import Run
from .store import JobRecord, StoreError


class Workspace:
    """One person's work in the store, and their trainings in the Lab."""

    def __init__(self, lab, workspace_id: str):
        self.lab, self.id = lab, workspace_id
        self.store = lab.store

    def __repr__(self) -> str:
        return f"Workspace({self.id[:6]}...)"

    # ------------------------------------------------------------ runs

    def runs(self) -> list[Run]:
        """Every run kept, oldest first (arrays are read on first use)."""
        kept = self.store.runs(self.id)
        have = {r.run_id for r in kept}
        return kept + [r for r in self.lab.unsaved_runs(self.id) if r.run_id not in have]

    def run(self, run_id: str | None) -> Run | None:
        """One of this workspace's runs, or a run published to everyone."""
        if not run_id:
            return None
        found = self.store.run(run_id, self.id)
        return found or next((r for r in self.lab.unsaved_runs(self.id) if r.run_id == run_id), None)

    def model_run(self) -> Run | None:
        """The run whose model Draw and Explore use: the chosen one, else the latest."""
        chosen = self.run(self.store.model_run_id(self.id))
        if chosen is not None:
            return chosen
        runs = self.runs()
        return runs[-1] if runs else None

    def choose_model(self, run_id: str) -> None:
        if self.store.model_run_id(self.id) != run_id:
            self.store.set_model_run_id(self.id, run_id)

    def published_runs(self) -> list[Run]:
        """Runs published to everyone on this server (any workspace's), newest first."""
        return self.store.published_runs()

    def unique_name(self, name: str) -> str:
        """name, or 'name (2)', 'name (3)'... when a run (or a training) of the workspace has it already."""
        taken = {r.name for r in self.runs()} | {j.label for j in self.jobs()}
        n, candidate = 1, name
        while candidate in taken:
            n += 1
            candidate = f"{name} ({n})"
        return candidate

    def pin(self, run_id: str, pinned: bool = True) -> None:
        self.store.set_pinned(self.id, run_id, pinned)

    def publish(self, run_id: str, published: bool = True) -> None:
        self.store.set_published(self.id, run_id, published)

    def delete_run(self, run_id: str) -> None:
        """Delete a run; when it was the chosen model, Draw and Explore go back to the latest run."""
        self.store.delete_run(self.id, run_id)
        if self.store.model_run_id(self.id) == run_id:
            self.store.set_model_run_id(self.id, None)

    # ------------------------------------------------------------ settings

    @property
    def language(self) -> str | None:
        """The language chosen for this workspace (a code of i18n.LANGUAGES), or None for the browser's."""
        return self.store.language(self.id)

    @language.setter
    def language(self, code: str) -> None:
        self.store.save_language(self.id, code)

    def settings(self) -> TrainConfig | None:
        """The last Train settings, or None for a new workspace."""
        return self.store.settings(self.id)

    def save_settings(self, config: TrainConfig) -> None:
        """Remember the Train settings (written only when they changed)."""
        if self.lab.scratch.setdefault(self.id, {}).get("settings") != config:
            self.store.save_settings(self.id, config)
            self.lab.scratch[self.id]["settings"] = config

    # ------------------------------------------------------------ trainings

    def jobs(self) -> list[TrainingJob]:
        """Trainings not yet ended: the running (or next) one first."""
        return self.lab.jobs(self.id)

    def training_elsewhere(self) -> JobRecord | None:
        """The training another app server runs for this workspace (a second device sent there; or a server that
        died, until the others notice): None on a server alone on its store."""
        return self.lab.training_elsewhere(self.id)

    def latest_job(self) -> TrainingJob | None:
        """The latest training this server ran for the workspace, ended or not."""
        return self.lab.latest_job(self.id)

    def kind_of(self, job: TrainingJob) -> str:
        order = self.lab.order(job)
        return order.kind if order else "train"

    def train(self, config: TrainConfig, label: str | None = None, kind: str = "train") -> TrainingJob:
        """Start training config; WorkspaceBusy while another training runs or waits."""
        return self.start(TrainTask(config), label, kind)

    def start(self, task: TrainTask, label: str | None = None, kind: str = "train",
              base_run_id: str | None = None) -> TrainingJob:
        number = None if label else self.store.next_run_number(self.id)
        try:
            return self.lab.submit(self.id, [Order(task, label or f"Run {number}", kind, base_run_id)])[0]
        except WorkspaceBusy:
            if number is not None:  # a refused Train leaves no gap in the runs' numbers
                self.store.give_back_run_number(self.id, number)
            raise

    def sweep(self, configs: list[TrainConfig], labels: list[str]) -> list[TrainingJob]:
        """Several trainings, one after the other (one slot at a time); their runs keep the chosen model."""
        return self.lab.submit(self.id, [Order(TrainTask(c), label, "sweep") for c, label in zip(configs, labels)])

    def stop(self) -> None:
        """Stop the workspace's trainings; a running one keeps what it has learned."""
        self.lab.stop(self.id)

    def interrupted(self) -> list[JobRecord]:
        """Trainings that a server restart cut off."""
        return self.store.jobs(self.id, ("interrupted",))

    def train_again(self, job_id: str) -> TrainingJob | None:
        """Start an interrupted training again, with the same settings and name."""
        record = next((r for r in self.interrupted() if r.job_id == job_id), None)
        if record is None:
            return None
        if record.kind == "fine-tune":
            base = self.run(record.base_run_id)
            if base is None:
                raise StoreError(_("The model it was fine-tuning is gone, so it cannot run again."))
            from .handwriting import fine_tune_task
            images, labels = self.drawings()[1:]
            task = fine_tune_task(base, images, labels)
        else:
            task = TrainTask(record.config)
        job = self.start(task, record.label, "train" if record.kind == "sweep" else record.kind, record.base_run_id)
        self.store.forget_job(job_id)
        return job

    def dismiss(self, job_id: str) -> None:
        """Forget an interrupted training."""
        self.store.forget_job(job_id)

    # ------------------------------------------------------------ drawings (Teach it your handwriting)

    def drawings(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(ids, images (m, 28, 28) float32 in [0, 1], labels (m,) uint8), oldest first."""
        return self.store.drawings(self.id)

    def keep_drawings(self, images: np.ndarray, labels) -> None:
        """Keep labelled drawings (m, 28, 28) in [0, 1]."""
        from .handwriting import MAX_DRAWINGS, check_drawings
        images, labels = check_drawings(images, labels)
        if len(self.drawings()[0]) + len(labels) > MAX_DRAWINGS:
            raise InputError(f"A workspace keeps at most {MAX_DRAWINGS} drawings: delete some first.")
        self.store.add_drawings(self.id, images, labels)

    def delete_drawings(self, ids) -> None:
        self.store.delete_drawings(self.id, ids)

    # ------------------------------------------------------------ the class

    def membership(self):
        """The class this workspace joined as a student (Membership), or None."""
        return self.lab.classroom.membership(self.id)

    def join_class(self, code: str, nickname: str, session: str):
        """Join a class by its code; JoinRefused says why not (session: who is guessing, for the limiter)."""
        return self.lab.classroom.join(self.id, code, nickname, session)

    def leave_class(self) -> None:
        self.lab.classroom.leave(self.id)

    def start_class(self):
        """Start teaching a new class from this workspace (ClassInfo with the join code)."""
        return self.lab.classroom.start_class(self.id)

    def teaching(self):
        """The latest class this workspace teaches (ClassInfo, its control key included), or None."""
        return self.lab.classroom.teacher_class(self.id)

    def _taught(self):
        taught = self.teaching()
        if taught is None:
            raise InputError(_("Only the class's teacher can do that."))
        return taught

    def suggest_settings(self, config: TrainConfig) -> None:
        taught = self._taught()
        self.lab.classroom.suggest(taught.id, taught.key, config)

    def clear_board(self) -> int:
        taught = self._taught()
        return self.lab.classroom.clear_board(taught.id, taught.key)

    def remove_student(self, nickname: str) -> bool:
        taught = self._taught()
        return self.lab.classroom.remove_member(taught.id, taught.key, nickname)

    def end_class(self) -> None:
        taught = self._taught()
        self.lab.classroom.end_class(taught.id, taught.key)

    def board_entries(self):
        """This workspace's own runs on its class's board (hidden ones too), newest first."""
        return self.lab.classroom.my_entries(self.id)

    def hide_on_board(self, run_id: str, hidden: bool = True) -> None:
        self.lab.classroom.hide(self.id, run_id, hidden)

    def note_presence(self) -> None:
        """A member who opens a page is here now (written at most once a minute)."""
        scratch = self.lab.scratch.setdefault(self.id, {})
        if time.monotonic() - scratch.get("seen", -1e9) > 60:
            scratch["seen"] = time.monotonic()
            self.lab.classroom.seen(self.id)

    # ------------------------------------------------------------ the moment, and messages

    @property
    def last_drawing(self) -> np.ndarray | None:
        """The 28x28 image last drawn in any tab of this workspace (kept in memory only)."""
        return self.lab.scratch.get(self.id, {}).get("last_drawing")

    @last_drawing.setter
    def last_drawing(self, image: np.ndarray | None) -> None:
        self.lab.scratch.setdefault(self.id, {})["last_drawing"] = image

    def notices(self) -> list[str]:
        """Messages for this workspace, each returned once."""
        try:
            stored = self.store.take_notices(self.id)
        except StoreError as exc:
            stored = [str(exc)]
        return [said(text) for text in stored + self.lab.take_messages(self.id)]
