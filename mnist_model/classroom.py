"""The class: a teacher's class with a join code, students with nicknames, and a board of everyone's runs.

Join codes, nickname rules and the attempt limiter are plain functions and small classes; Classroom keeps
classes, members and board entries in the workspace store. The board holds settings and metrics only: never a
workspace id, weights or drawings of anybody.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, select, update

from . import schema as t
from .config import TrainConfig
from .errors import InputError
from .i18n import N_, _, later, ngettext
from .runs import Run
from .store import Store, StoreConflict

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L look-alikes
CODE_LENGTH = 6  # 31^6, about 887 million codes
NICKNAME_MAX = 20
TEACHER_LABEL = "Teacher"  # how the teacher's own runs are named on the board; no student may take it
KEY_BYTES = 24  # the teacher's control key: 192 random bits
SESSION_ATTEMPTS = 8  # failed joins per session within SESSION_WINDOW_S: room for typos, none for guessing
SESSION_WINDOW_S = 120
SERVER_ATTEMPTS_PER_MINUTE = 30  # failed joins per minute on the whole server
PRESENT_S = 300  # a member seen within this many seconds counts as here now
# Letters that look like others: a nickname's skeleton maps them together, so look-alikes cannot impersonate.
_CONFUSABLES = str.maketrans({"0": "o", "1": "l", "i": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                              "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "l",
                              "ο": "o", "ν": "v", "κ": "k", "τ": "t", "α": "a", "ε": "e", "ι": "l", "ρ": "p"})


class JoinRefused(InputError):
    """A join that cannot happen, with the reason in plain words."""


# ---------------------------------------------------------------- codes, keys, nicknames

def new_join_code() -> str:
    """Six characters a class can read off a projector: no 0/O or 1/I/L."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    """What a student typed, as a code: upper case, spaces and dashes dropped ('abc 234' -> 'ABC234')."""
    return "".join(c for c in str(text).upper() if c not in " -_\t")


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_nickname(text: str) -> str:
    """The nickname trimmed, or InputError: 1-20 printable characters, no line breaks or controls."""
    nickname = " ".join(str(text).split())
    if not nickname:
        raise InputError(_("Choose a nickname (1 to 20 characters)."))
    if len(nickname) > NICKNAME_MAX:
        raise InputError(_("A nickname has at most {n} characters.").format(n=NICKNAME_MAX))
    if any(unicodedata.category(c)[0] == "C" for c in nickname):
        raise InputError(_("A nickname cannot contain control characters."))
    return nickname


def skeleton(nickname: str) -> str:
    """What a nickname looks like, for telling look-alikes apart: 'Ada!' and 'ADA' match; a space shows on the
    board, so 'Ad a' is another name (the teacher's label is checked without spaces: see looks_like_teacher)."""
    folded = unicodedata.normalize("NFKC", nickname).casefold()
    folded = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    words = ("".join(c for c in word.translate(_CONFUSABLES) if c.isalnum()) for word in folded.split())
    return " ".join(w for w in words if w)


def looks_like_teacher(nickname: str) -> bool:
    """'T e a c h e r!' too: no spacing may pass for the teacher's label on the board."""
    return skeleton(nickname).replace(" ", "") == skeleton(TEACHER_LABEL)


class AttemptLimiter:
    """Slows join-code guessing: failed attempts are counted per session (a workspace) and per minute for the
    whole deployment; in the store when given one (then every server counts the same attempts), else in memory."""

    def __init__(self, per_session: int = SESSION_ATTEMPTS, window_s: float = SESSION_WINDOW_S,
                 server_per_minute: int = SERVER_ATTEMPTS_PER_MINUTE, clock=None, store: Store | None = None):
        self.per_session, self.window_s, self.server_per_minute = per_session, window_s, server_per_minute
        self.store = store
        self._clock = clock or (time.time if store is not None else time.monotonic)  # servers share wall time
        self._lock = threading.Lock()
        self._sessions: dict[str, deque] = {}
        self._server: deque = deque()

    def _recent(self, session: str, now: float) -> tuple[list[float], int]:
        """(the session's failures within the window, oldest first; the deployment's within a minute)."""
        if self.store is not None:
            a = t.attempts
            mine = [r[0] for r in self.store.query(select(a.c.at).where(a.c.who == session,
                                                                       a.c.at >= now - self.window_s).order_by(a.c.at))]
            everyone = self.store.query(select(func.count()).select_from(a).where(a.c.who == "*", a.c.at >= now - 60))
            return mine, everyone[0][0]
        with self._lock:
            return (list(self._trim(self._sessions.get(session, deque()), now - self.window_s)),
                    len(self._trim(self._server, now - 60)))

    def check(self, session: str) -> None:
        """JoinRefused when session, or the whole server, has failed too often lately."""
        now = self._clock()
        mine, everyone = self._recent(session, now)
        if len(mine) >= self.per_session:
            wait = int(mine[0] + self.window_s - now) + 1
            raise JoinRefused(_("Too many wrong codes from here: try again in {wait}.").format(wait=_minutes(wait)))
        if everyone >= self.server_per_minute:
            raise JoinRefused(_("Too many wrong codes on this server just now: try again in a minute."))

    def failed(self, session: str) -> None:
        now = self._clock()
        if self.store is not None:
            a = t.attempts
            with self.store.transaction(N_("count a wrong code")) as db:
                db.execute(a.insert(), [{"who": session, "at": now}, {"who": "*", "at": now}])
                db.execute(delete(a).where(a.c.at < now - max(self.window_s, 60)))  # forget: the table stays small
            return
        with self._lock:
            self._sessions.setdefault(session, deque()).append(now)
            self._server.append(now)
            if len(self._sessions) > 10000:  # forget idle sessions: memory stays bounded
                for key in [k for k, v in self._sessions.items() if not v or v[-1] < now - self.window_s]:
                    del self._sessions[key]

    @staticmethod
    def _trim(times: deque, since: float) -> deque:
        while times and times[0] < since:
            times.popleft()
        return times

def _minutes(seconds: int) -> str:
    if seconds < 90:
        return ngettext("{n} second", "{n} seconds", seconds).format(n=seconds)
    return ngettext("{n} minute", "{n} minutes", round(seconds / 60)).format(n=round(seconds / 60))


# ---------------------------------------------------------------- what pages get

@dataclass(frozen=True)
class ClassInfo:
    """A class as its teacher sees it (key is the teacher's control key; only the teacher's workspace has it)."""

    id: str
    code: str
    created_at: float
    ended_at: float | None
    key: str | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


@dataclass(frozen=True)
class Membership:
    """A student's place in a class."""

    class_id: str
    code: str
    nickname: str
    ended: bool


@dataclass(frozen=True)
class BoardEntry:
    """One run on the board: settings and metrics, never weights, drawings or a workspace id."""

    run_id: str
    nickname: str
    config: TrainConfig
    status: str
    epochs_run: int
    train_accuracy: float
    test_accuracy: float
    train_loss: float
    test_loss: float
    seconds: float
    posted_at: float
    hidden: bool

    @property
    def gap(self) -> float:
        """Train minus test accuracy, in points (0-100)."""
        return (self.train_accuracy - self.test_accuracy) * 100

    def settings(self) -> str:
        """The settings in short, what differs from the notebook: '40 epochs, batch 32, 500 examples, dropout 0.3'."""
        return self.config.brief(epochs_run=self.epochs_run)

    def row(self) -> dict:
        """One leaderboard row, figures first (they show on a phone too); every column keeps one type."""
        return {"nickname": self.nickname, "test acc": round(self.test_accuracy, 4),
                "train acc": round(self.train_accuracy, 4), "gap (points)": round(self.gap, 1),
                "epochs": self.epochs_run, "time": time.strftime("%H:%M", time.localtime(self.posted_at)),
                "settings": self.settings()}  # the long one last: cut at the right edge, never the time


_BOARD_COLUMNS = [t.board.c[name] for name in ("run_id", "nickname", "config", "status", "epochs_run",
                                                "train_accuracy", "test_accuracy", "train_loss", "test_loss",
                                                "seconds", "posted_at", "hidden")]


def _entry(row) -> BoardEntry:
    return BoardEntry(row[0], row[1], TrainConfig.from_dict(json.loads(row[2])), row[3], row[4], row[5], row[6],
                      row[7], row[8], row[9], row[10], bool(row[11]))


# ---------------------------------------------------------------- the service

class Classroom:
    """Classes, members and the board, in the workspace store."""

    def __init__(self, store: Store, limiter: AttemptLimiter | None = None):
        self.store = store
        self.limiter = limiter or AttemptLimiter(store=store)

    # ------------------------------------------------------------ teacher

    def start_class(self, teacher_workspace: str) -> ClassInfo:
        """A new class taught from this workspace (it leaves any class it had joined)."""
        self.leave(teacher_workspace)
        class_id, key, now = secrets.token_urlsafe(12), secrets.token_urlsafe(KEY_BYTES), time.time()
        c = t.classes
        with self.store.transaction(N_("start the class")) as db:
            for attempt in range(20):
                code = new_join_code()
                if not db.execute(select(1).where(c.c.code == code, c.c.ended_at.is_(None))).first():
                    break
            db.execute(c.insert().values(id=class_id, code=code, teacher_workspace=teacher_workspace,
                                         key_hash=_hash_key(key), created_at=now))
            db.execute(t.teacher_keys.insert().values(workspace_id=teacher_workspace, class_id=class_id, key=key))
        return ClassInfo(class_id, code, now, None, key)

    def teacher_class(self, workspace_id: str) -> ClassInfo | None:
        """The latest class this workspace teaches (ended or not), with its control key."""
        c, k = t.classes, t.teacher_keys
        rows = self.store.query(select(c.c.id, c.c.code, c.c.created_at, c.c.ended_at, k.c.key)
                                .join(k, and_(k.c.class_id == c.c.id, k.c.workspace_id == workspace_id))
                                .order_by(c.c.created_at.desc()).limit(1))
        return ClassInfo(*rows[0]) if rows else None

    def _check_key(self, class_id: str, key: str | None) -> None:
        rows = self.store.query(select(t.classes.c.key_hash).where(t.classes.c.id == class_id))
        if not rows or not key or not hmac.compare_digest(rows[0][0], _hash_key(key)):
            raise InputError(_("Only the class's teacher can do that."))

    def suggest(self, class_id: str, key: str, config: TrainConfig) -> None:
        """Send the teacher's settings to every student's Train page."""
        self._check_key(class_id, key)
        with self.store.transaction(N_("suggest the settings")) as db:
            db.execute(update(t.classes).where(t.classes.c.id == class_id)
                       .values(suggestion=json.dumps(config.to_dict()), suggested_at=time.time()))
            self.store.bump(db, f"suggestion:{class_id}")

    def clear_board(self, class_id: str, key: str) -> int:
        self._check_key(class_id, key)
        with self.store.transaction(N_("clear the board")) as db:
            cleared = db.execute(delete(t.board).where(t.board.c.class_id == class_id)).rowcount
            self.store.bump(db, f"board:{class_id}")
        return cleared

    def remove_member(self, class_id: str, key: str, nickname: str) -> bool:
        """Moderation: the nickname leaves the class and its runs leave the board."""
        self._check_key(class_id, key)
        m, b = t.members, t.board
        with self.store.transaction(N_("remove the student")) as db:
            row = db.execute(select(m.c.workspace_id).where(m.c.class_id == class_id, m.c.nickname == nickname)
                             ).first()
            db.execute(delete(b).where(b.c.class_id == class_id, b.c.nickname == nickname))
            if row:
                db.execute(delete(m).where(m.c.workspace_id == row[0]))
            self.store.bump(db, f"board:{class_id}")
        if row:
            self.store.add_notice(row[0], later(N_("Your teacher removed you from the class (your runs stay yours).")))
        return row is not None

    def end_class(self, class_id: str, key: str) -> None:
        """Joining stops and new runs are no longer posted; the board stays readable."""
        self._check_key(class_id, key)
        with self.store.transaction(N_("end the class")) as db:
            db.execute(update(t.classes).where(t.classes.c.id == class_id, t.classes.c.ended_at.is_(None))
                       .values(ended_at=time.time()))

    # ------------------------------------------------------------ students

    def join(self, workspace_id: str, code: str, nickname: str, session: str) -> Membership:
        """Join the class with this code under this nickname; JoinRefused says why not."""
        nickname = check_nickname(nickname)
        self.limiter.check(session)
        code = normalise_code(code)
        c, m = t.classes, t.members
        rows = self.store.query(select(c.c.id, c.c.teacher_workspace).where(c.c.code == code, c.c.ended_at.is_(None))
                                ) if len(code) == CODE_LENGTH else []
        if not rows:
            self.limiter.failed(session)
            raise JoinRefused(_("No class has that code (or it has ended): check the code on the board."))
        class_id, teacher = rows[0]
        if teacher == workspace_id:
            raise JoinRefused(_("You teach this class: your own runs are on its board as Teacher."))
        shape = skeleton(nickname)
        if looks_like_teacher(nickname) or not shape:
            raise JoinRefused(_("That nickname is too close to the teacher's label: choose another."))
        now = time.time()
        taken = JoinRefused(_("Someone in this class already has that nickname (or one that looks like it): choose "
                              "another."))
        try:
            with self.store.transaction(N_("join the class")) as db:
                other = db.execute(select(m.c.workspace_id).where(m.c.class_id == class_id, m.c.skeleton == shape)
                                   ).first()
                if other and other[0] != workspace_id:
                    raise taken
                db.execute(delete(m).where(m.c.workspace_id == workspace_id))
                db.execute(m.insert().values(workspace_id=workspace_id, class_id=class_id, nickname=nickname,
                                             skeleton=shape, joined_at=now, seen_at=now))
        except StoreConflict:  # the same look taken on another server at the same moment
            raise taken from None
        return Membership(class_id, code, nickname, False)

    def membership(self, workspace_id: str) -> Membership | None:
        m, c = t.members, t.classes
        rows = self.store.query(select(m.c.class_id, c.c.code, m.c.nickname, c.c.ended_at)
                                .join(c, c.c.id == m.c.class_id).where(m.c.workspace_id == workspace_id))
        return Membership(rows[0][0], rows[0][1], rows[0][2], rows[0][3] is not None) if rows else None

    def leave(self, workspace_id: str) -> None:
        with self.store.transaction(N_("leave the class")) as db:
            db.execute(delete(t.members).where(t.members.c.workspace_id == workspace_id))

    def seen(self, workspace_id: str) -> None:
        """Note that a member is here now (written at most once a minute)."""
        now = time.time()
        with self.store.transaction(N_("note who is here")) as db:
            db.execute(update(t.members).where(t.members.c.workspace_id == workspace_id,
                                               t.members.c.seen_at < now - 60).values(seen_at=now))

    def hide(self, workspace_id: str, run_id: str, hidden: bool = True) -> None:
        """A student hides (or shows again) one of their runs on the board."""
        b = t.board
        with self.store.transaction(N_("hide the run")) as db:
            row = db.execute(update(b).where(b.c.run_id == run_id, b.c.workspace_id == workspace_id)
                             .values(hidden=int(hidden)).returning(b.c.class_id)).first()
            if row:
                self.store.bump(db, f"board:{row[0]}")

    # ------------------------------------------------------------ the board

    def post(self, workspace_id: str, run: Run) -> bool:
        """Post a finished or stopped run of a member (or the teacher) to their running class's board."""
        final = run.final
        if final is None:
            return False
        member = self.membership(workspace_id)
        if member is not None and not member.ended:
            class_id, nickname = member.class_id, member.nickname
        else:
            c = t.classes
            rows = self.store.query(select(c.c.id).where(c.c.teacher_workspace == workspace_id, c.c.ended_at.is_(None))
                                    .order_by(c.c.created_at.desc()).limit(1))
            if not rows:
                return False
            class_id, nickname = rows[0][0], TEACHER_LABEL
        row = dict(run_id=run.run_id, nickname=nickname, config=json.dumps(run.config.to_dict()), status=run.status,
                   epochs_run=run.epochs_run, train_accuracy=final.accuracy, test_accuracy=final.test_accuracy,
                   train_loss=final.loss, test_loss=final.test_loss, seconds=run.duration_s, posted_at=time.time(),
                   hidden=0, class_id=class_id, workspace_id=workspace_id)
        with self.store.transaction(N_("post the run to the board")) as db:
            insert = self.store._insert(t.board).values(**row)
            db.execute(insert.on_conflict_do_update(index_elements=["run_id"],
                                                    set_={k: insert.excluded[k] for k in row if k != "run_id"}))
            self.store.bump(db, f"board:{class_id}")
        return True

    def board(self, class_id: str) -> list[BoardEntry]:
        """The class's visible runs, best test accuracy first."""
        b = t.board
        rows = self.store.query(select(*_BOARD_COLUMNS).where(b.c.class_id == class_id, b.c.hidden == 0)
                                .order_by(b.c.test_accuracy.desc(), b.c.posted_at))
        return [_entry(r) for r in rows]

    def my_entries(self, workspace_id: str) -> list[BoardEntry]:
        """A student's own runs on the board of the class they are in now (hidden ones too), newest first."""
        member = self.membership(workspace_id)
        if member is None:
            return []
        b = t.board
        rows = self.store.query(select(*_BOARD_COLUMNS).where(b.c.workspace_id == workspace_id,
                                                              b.c.class_id == member.class_id)
                                .order_by(b.c.posted_at.desc()))
        return [_entry(r) for r in rows]

    def board_version(self, class_id: str) -> tuple[int, int]:
        """Changes whenever the board does, on any server (pages redraw only then)."""
        return self.store.counters("generation", f"board:{class_id}")

    def suggestion_version(self, class_id: str) -> tuple[int, int]:
        """Changes whenever the teacher sends settings."""
        return self.store.counters("generation", f"suggestion:{class_id}")

    def suggestion(self, class_id: str) -> tuple[TrainConfig, float] | None:
        rows = self.store.query(select(t.classes.c.suggestion, t.classes.c.suggested_at)
                                .where(t.classes.c.id == class_id))
        if not rows or not rows[0][0]:
            return None
        return TrainConfig.from_dict(json.loads(rows[0][0])), rows[0][1]

    def members(self, class_id: str) -> list[tuple[str, str, float]]:
        """(nickname, workspace id, last seen) of every member: for the server's own use, never shown as such."""
        m = t.members
        return self.store.query(select(m.c.nickname, m.c.workspace_id, m.c.seen_at).where(m.c.class_id == class_id)
                                .order_by(m.c.joined_at))

    def ended(self, class_id: str) -> bool:
        rows = self.store.query(select(t.classes.c.ended_at).where(t.classes.c.id == class_id))
        return bool(rows and rows[0][0] is not None)


def what_worked(entries: list[BoardEntry]) -> list[dict]:
    """Mean test accuracy and gap per (epochs, batch size) among the entries: the class's own evidence."""
    groups: dict[tuple[int, int], list[BoardEntry]] = {}
    for e in entries:
        groups.setdefault((e.config.epochs, e.config.batch_size), []).append(e)
    return [{"epochs": k[0], "batch size": k[1], "runs": len(v),
             "mean test acc": sum(e.test_accuracy for e in v) / len(v),
             "mean gap (points)": sum(e.gap for e in v) / len(v)} for k, v in sorted(groups.items())]
