"""The class: join codes, nickname rules, the attempt limiter, board queries, teacher powers, and the Class page."""
import json
import time

import numpy as np
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from mnist_model.classroom import (CODE_ALPHABET, AttemptLimiter, Classroom, JoinRefused, check_nickname,
                                   looks_like_teacher, new_join_code, normalise_code, skeleton,
                                   what_worked)
from mnist_model.config import TrainConfig
from mnist_model.errors import InputError
from mnist_model.store import Store, StoreLimits

from conftest import ROOT
from test_store import make_run
from train_knobs import knob

APP = str(ROOT / "app.py")


@pytest.fixture
def room(tmp_path, database_url):
    return Classroom(Store(tmp_path, url=database_url))


def _run(acc, epochs=5, batch=128, train_acc=None, seed=0):
    run = make_run(seed=seed, acc=acc)
    run.config = TrainConfig(epochs=epochs, batch_size=batch, hidden_units=16)
    if train_acc is not None:
        final = run.epochs[-1]
        run.epochs[-1] = type(final)(final.epoch, final.loss, train_acc, final.test_loss, acc, final.seconds)
    return run


def test_join_codes_are_six_unambiguous_characters():
    codes = {new_join_code() for _ in range(2000)}
    assert len(codes) > 1990 and all(len(c) == 6 and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("0O1IL") & set(CODE_ALPHABET)
    assert normalise_code(" kpt 4-wm ") == "KPT4WM"


def test_nickname_rules():
    assert check_nickname("  Ada   Lovelace ") == "Ada Lovelace"
    assert check_nickname("x" * 20) == "x" * 20
    for bad in ("", "   ", "x" * 21, "bad\u0000name", "tab\u200bhidden"):
        with pytest.raises(InputError):
            check_nickname(bad)
    for look_alike in ("teacher", "T e a c h e r!", "TEACHER", "Tеacher", "7eacher", "teachér"):  # Cyrillic е
        assert looks_like_teacher(look_alike), look_alike
    assert skeleton("Sam1") == skeleton("SAML") and skeleton("Ann") != skeleton("Anna")
    assert skeleton("Ada!") == skeleton("ADA") and skeleton("Ad a") != skeleton("Ada")  # a space shows
    assert skeleton("Ada  Lovelace") == skeleton("ada lovelace")


@pytest.mark.parametrize("kept", ["in memory", "in the store"])
def test_the_limiter_slows_guessing_per_session_and_per_server(kept, tmp_path, database_url):
    now = [0.0]
    store = Store(tmp_path, url=database_url) if kept == "in the store" else None
    if store is None and database_url:
        pytest.skip("in memory: no database")
    limiters = [AttemptLimiter(per_session=5, window_s=600, server_per_minute=8, clock=lambda: now[0], store=store)
                for _ in range(2)]  # two servers: with a store, what one counts holds on the other
    limiter = limiters[0] if store is None else _Alternating(limiters)
    for _ in range(5):
        limiter.check("a")
        limiter.failed("a")
    with pytest.raises(JoinRefused, match="Too many wrong codes from here"):
        limiter.check("a")
    limiter.check("b")  # another session may still try
    for _ in range(3):
        limiter.failed("b")
    with pytest.raises(JoinRefused, match="on this server"):
        limiter.check("c")  # 8 failures this minute on the server
    now[0] = 61
    limiter.check("c")
    with pytest.raises(JoinRefused):
        limiter.check("a")
    now[0] = 601
    limiter.check("a")  # the session's window has passed


class _Alternating:
    """Each call on the next of several limiters: a guesser whose requests land on one server, then another."""

    def __init__(self, limiters):
        self.limiters, self.calls = limiters, 0

    def __getattr__(self, name):
        self.calls += 1
        return getattr(self.limiters[self.calls % len(self.limiters)], name)


def test_joining_leaving_and_one_class_at_a_time(room):
    store = room.store
    teacher, other_teacher, ann, bob = (store.create_workspace() for _ in range(4))
    first, second = room.start_class(teacher), room.start_class(other_teacher)
    assert len(first.key) >= 32  # 192-bit control key, only in the teacher's workspace
    member = room.join(ann, first.code.lower(), " Ann ", session="s1")
    assert member.nickname == "Ann" and room.membership(ann).class_id == first.id
    with pytest.raises(JoinRefused, match="already has that nickname"):
        room.join(bob, first.code, "ANN", session="s2")
    with pytest.raises(JoinRefused, match="teacher"):
        room.join(bob, first.code, "Teacher", session="s2")
    with pytest.raises(JoinRefused, match="No class has that code"):
        room.join(bob, "ZZZZZZ", "Bob", session="s2")
    room.join(ann, second.code, "Ann", session="s1")  # moving: at most one class at a time
    assert room.membership(ann).class_id == second.id and room.members(first.id) == []
    room.leave(ann)
    assert room.membership(ann) is None
    with pytest.raises(JoinRefused, match="You teach this class"):
        room.join(teacher, first.code, "Me", session="s3")


def test_the_board_holds_settings_and_metrics_only_best_first(room):
    store = room.store
    teacher, ann, bob = (store.create_workspace() for _ in range(3))
    taught = room.start_class(teacher)
    room.join(ann, taught.code, "Ann", "s")
    room.join(bob, taught.code, "<b>Bob</b>", "s")
    outsider = store.create_workspace()
    assert room.post(ann, _run(0.81, epochs=5, train_acc=0.90))
    assert room.post(bob, _run(0.88, epochs=20, batch=32, train_acc=1.0, seed=1))
    assert room.post(teacher, _run(0.85, seed=2))
    assert not room.post(outsider, _run(0.99, seed=3))  # not in a class: nothing posted
    board = room.board(taught.id)
    assert [(e.nickname, e.test_accuracy) for e in board] == [("<b>Bob</b>", 0.88), ("Teacher", 0.85), ("Ann", 0.81)]
    assert board[0].gap == pytest.approx(12.0) and board[0].row()["settings"].startswith("2 of 20 epochs, batch 32")
    text = json.dumps([e.row() for e in board]) + repr(board)
    for ws in (teacher, ann, bob):
        assert ws not in text  # no workspace id ever reaches a page through the board
    worked = {(w["epochs"], w["batch size"]): w for w in what_worked(board)}
    assert worked[(5, 128)]["runs"] == 2 and worked[(5, 128)]["mean test acc"] == pytest.approx(0.83)
    room.hide(bob, board[0].run_id)
    room.hide(ann, board[1].run_id)  # not hers: nothing happens
    assert [e.nickname for e in room.board(taught.id)] == ["Teacher", "Ann"]
    assert [e.hidden for e in room.my_entries(bob)] == [True]
    later = room.start_class(room.store.create_workspace())
    room.leave(bob)
    room.join(bob, later.code, "Bob", "s")
    assert room.my_entries(bob) == []  # "your runs on the board": this class's board, not the last one's
    assert room.post(bob, _run(0.9, seed=4)) and [e.test_accuracy for e in room.my_entries(bob)] == [0.9]


def test_only_the_teacher_controls_the_class(room):
    store = room.store
    teacher, ann = store.create_workspace(), store.create_workspace()
    taught = room.start_class(teacher)
    room.join(ann, taught.code, "Ann", "s")
    room.post(ann, _run(0.8))
    for action in (lambda key: room.clear_board(taught.id, key), lambda key: room.end_class(taught.id, key),
                   lambda key: room.suggest(taught.id, key, TrainConfig()),
                   lambda key: room.remove_member(taught.id, key, "Ann")):
        for key in (None, "", taught.code, "x" * 32):
            with pytest.raises(InputError, match="Only the class's teacher"):
                action(key)
    assert room.teacher_class(ann) is None and room.teacher_class(teacher).key == taught.key
    room.suggest(taught.id, taught.key, TrainConfig(epochs=10, batch_size=32, train_size=1000))
    assert room.suggestion(taught.id)[0].describe().startswith("10 epochs, batch 32, 1,000 examples")
    assert room.remove_member(taught.id, taught.key, "Ann")
    assert room.board(taught.id) == [] and room.membership(ann) is None
    assert "removed you" in store.take_notices(ann)[0]
    room.end_class(taught.id, taught.key)
    with pytest.raises(JoinRefused, match="No class has that code"):
        room.join(ann, taught.code, "Ann", "s")
    assert not room.post(teacher, _run(0.9))  # an ended class takes no new runs


def test_the_board_and_suggestion_versions_move_with_every_change_and_only_then(room):
    """Polling pages redraw only when these move: a change they miss is a board that stops updating."""
    store = room.store
    teacher, ann, bob = (store.create_workspace() for _ in range(3))
    taught = room.start_class(teacher)
    seen = {room.board_version(taught.id)}

    def moved(action) -> bool:
        before = room.board_version(taught.id)
        action()
        after = room.board_version(taught.id)
        seen.add(after)
        return after != before
    assert not moved(lambda: room.join(ann, taught.code, "Ann", "s"))
    assert not moved(lambda: room.join(bob, taught.code, "Bob", "s"))
    assert moved(lambda: room.post(ann, _run(0.8)))
    assert moved(lambda: room.post(bob, _run(0.7, seed=1)))
    assert moved(lambda: room.post(teacher, _run(0.9, seed=2)))
    run_id = room.my_entries(ann)[0].run_id
    assert moved(lambda: room.hide(ann, run_id)) and moved(lambda: room.hide(ann, run_id, False))
    assert not moved(lambda: (room.board(taught.id), room.seen(ann), room.suggestion(taught.id)))
    assert moved(lambda: room.remove_member(taught.id, taught.key, "Bob"))
    assert moved(lambda: room.clear_board(taught.id, taught.key))
    assert len(seen) == 8  # never back to an earlier version: a cached view of it would come back
    other = room.start_class(store.create_workspace())
    suggested = room.suggestion_version(taught.id)
    room.suggest(other.id, other.key, TrainConfig(epochs=2))
    assert room.suggestion_version(taught.id) == suggested
    room.suggest(taught.id, taught.key, TrainConfig(epochs=3))
    assert room.suggestion_version(taught.id) != suggested
    with store.transaction("test") as db:  # a workspace unused for months goes, with its runs on the board
        db.execute(text("UPDATE workspaces SET last_seen = 0 WHERE id = :id"), {"id": ann})
    room.post(ann, _run(0.6, seed=4))
    before = room.board_version(taught.id)
    store.prune()
    assert room.board_version(taught.id) != before and room.board(taught.id) == []


def test_classes_survive_a_restart_and_go_with_their_workspaces(tmp_path, database_url):
    store = Store(tmp_path, StoreLimits(keep_days=30), url=database_url)
    room = Classroom(store)
    teacher, ann = store.create_workspace(), store.create_workspace()
    taught = room.start_class(teacher)
    room.join(ann, taught.code, "Ann", "s")
    room.post(ann, _run(0.8))
    again = Classroom(Store(tmp_path, url=database_url))
    assert again.membership(ann).nickname == "Ann" and len(again.board(taught.id)) == 1
    with store.transaction("test") as db:
        db.execute(text("UPDATE workspaces SET last_seen = :t WHERE id = :id"), {"t": time.time() - 40 * 86400,
                                                                                "id": teacher})
    store.prune()
    assert again.teacher_class(teacher) is None and again.membership(ann) is None and again.board(taught.id) == []


def test_two_hundred_runs_on_one_board(room):
    store = room.store
    teacher = store.create_workspace()
    taught = room.start_class(teacher)
    rng = np.random.default_rng(0)
    students = [store.create_workspace() for _ in range(40)]
    for i, ws in enumerate(students):
        room.join(ws, taught.code, f"Student {i}", "s")
    for k in range(200):
        room.post(students[k % 40], _run(float(rng.uniform(0.7, 0.95)), epochs=int(rng.integers(1, 30)),
                                         batch=int(rng.choice([32, 128, 512])), seed=k))
    t0 = time.perf_counter()
    board = room.board(taught.id)
    worked = what_worked(board)
    elapsed = time.perf_counter() - t0
    assert len(board) == 200 and all(a.test_accuracy >= b.test_accuracy for a, b in zip(board, board[1:]))
    assert sum(w["runs"] for w in worked) == 200
    print(f"board of 200 runs read and summarised in {elapsed * 1000:.1f} ms")


# ---------------------------------------------------------------- the Class page (AppTest)

def _class_page():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/class.py").run()
    assert not at.exception
    return at


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _join(student, code: str, nickname: str):
    """Type the code and nickname into the Class page's boxes (a form: typing reruns nothing) and press Join."""
    next(t for t in student.text_input if t.label == "Class code").input(code)
    next(t for t in student.text_input if t.label == "Nickname").input(nickname)
    return _button(student, "Join").click().run()


def _suggest(teacher, **settings) -> None:
    """The teacher sets these Train knobs and presses Suggest these settings on the Class page."""
    teacher.switch_page("pages/train.py").run()
    for name, value in settings.items():
        knob(teacher, name).set_value(value).run()
    teacher.switch_page("pages/class.py").run()
    _button(teacher, "Suggest these settings").click().run()


def _code(teacher) -> str:
    return next(m.value for m in teacher.markdown if "font-size:5.5rem" in m.value).split(">")[1].split("<")[0]


def test_the_class_page_from_start_to_a_student_using_the_suggestion():
    teacher = _class_page()
    _button(teacher, "Start a class").click().run()
    code = _code(teacher)
    assert any(f"class?join={code}" in c.value for c in teacher.code)
    assert "Scan to join" in str([i.proto for i in teacher.get("image")])  # the QR code
    student = _join(_class_page(), f" {code.lower()[:3]} {code.lower()[3:]} ", "**Zoe** [x](y:z)")
    assert not student.exception and not student.error
    assert any(t.value == "You are in as: **Zoe** [x](y:z)" for t in student.text)  # plain text
    assert not any(b.label in ("Clear the board", "Yes, clear the board", "Suggest these settings")
                   for b in student.button)
    _suggest(teacher, epochs=10, batch_size=32)
    student.switch_page("pages/train.py").run()
    assert any(i.value.startswith("Your teacher suggests: 10 epochs, batch 32") for i in student.info)
    _button(student, "Use them").click().run()
    assert knob(student, "epochs").value == 10 and knob(student, "batch_size").value == 32
    assert not any(i.value.startswith("Your teacher suggests") for i in student.info)


def test_use_them_then_train_at_once_trains_the_suggestion():
    teacher = _class_page()
    _button(teacher, "Start a class").click().run()
    student = _join(_class_page(), _code(teacher), "Grace")
    _suggest(teacher, epochs=3, train_size=500)
    student.switch_page("pages/train.py").run()
    knob(student, "epochs").set_value(7).run()
    # Use them, then Train before the page has redrawn: the server meets the Train click with the buttons and knobs
    # of the page before Use them (Epochs 7, all examples). One request with both clicks makes that race certain.
    _button(student, "Use them").click()
    _button(student, "Train").click().run()
    ws = student.session_state["workspace"]
    job = ws.latest_job()
    ws.stop()
    assert not student.exception
    assert (job.config.epochs, job.config.train_size) == (3, 500)
    assert (knob(student, "epochs").value, knob(student, "train_size").value) == (3, 500)


def test_a_join_link_fills_the_code_once_and_a_rerun_without_it_keeps_it():
    teacher = _class_page()
    _button(teacher, "Start a class").click().run()
    code = _code(teacher)
    student = AppTest.from_file(APP, default_timeout=60)
    student.query_params["join"] = code
    student.run()
    student.switch_page("pages/class.py")
    student.query_params["join"] = code  # the QR code's link opens the Class page with the code
    student.run()
    box = lambda: next(t for t in student.text_input if t.label == "Class code")  # noqa: E731
    assert box().value == code
    student.query_params.clear()  # a rerun whose URL lost the code (it emptied the box in a browser once)
    student.run()
    assert box().value == code
    student.query_params["join"] = code
    _join(student, "ZZZZZ2", "Ada")  # typed over and sent: the link does not write its code back
    assert box().value == "ZZZZZ2" and any("No class has that code" in e.value for e in student.error)
    student.run()
    assert box().value == "ZZZZZ2"
    _join(student, code, "Ada")
    assert any(t.value == "You are in as: Ada" for t in student.text) and "join" not in student.query_params


def test_wrong_codes_are_refused_and_then_slowed():
    from mnist_model.classroom import SESSION_ATTEMPTS
    student = _class_page()
    for attempt in range(SESSION_ATTEMPTS + 1):
        _join(student, f"ZZZZZ{attempt + 2}", "Guesser")
        assert not student.exception
    errors = [e.value for e in student.error]
    assert errors and errors[-1].startswith("Too many wrong codes from here")


def test_an_ended_class_stops_inviting_and_offers_a_new_one():
    teacher = _class_page()
    _button(teacher, "Start a class").click().run()
    code = _code(teacher)
    teacher.session_state["workspace"].end_class()
    teacher.run()
    assert not any("5.5rem" in m.value for m in teacher.markdown) and not teacher.code  # no code, no link
    assert not teacher.get("image")  # no QR code
    assert any(s.value == f"Class {code} has ended" for s in teacher.subheader)
    assert any(b.label == "Start a new class" for b in teacher.button)
    assert not any(b.label in ("Suggest these settings", "Yes, end the class") for b in teacher.button)


def _metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_the_teacher_sees_what_each_control_did_and_an_ended_board_drops_the_live_counters():
    teacher = _class_page()
    _button(teacher, "Start a class").click().run()
    code = _code(teacher)
    student = _join(_class_page(), code, "Ada")
    teacher.run()
    _button(teacher, "Suggest these settings").click().run()
    assert any(s.value.startswith("Suggested to every student's Train page at ") for s in teacher.success)
    ws = student.session_state["workspace"]
    ws.train(TrainConfig(epochs=30, batch_size=16, train_size=2000))  # still training when the class ends
    teacher.run()
    assert _metrics(teacher)["Training"] in ("1", 1) or _metrics(teacher)["Waiting"] in ("1", 1)
    teacher.session_state["workspace"].end_class()
    teacher.run()
    ws.stop()
    assert "Training" not in _metrics(teacher) and "Here now" not in _metrics(teacher)  # it would stay "1" forever
    assert not teacher.success  # the last control's sentence went with the class
    assert not teacher.exception


def test_removing_a_student_says_so_to_the_teacher():
    teacher = _class_page()
    _button(teacher, "Start a class").click().run()
    student = _join(_class_page(), _code(teacher), "Grace")
    assert any(t.value == "You are in as: Grace" for t in student.text)
    teacher.run()
    next(s for s in teacher.selectbox if s.label == "Student").set_value("Grace").run()
    _button(teacher, "Remove them and their runs").click().run()
    assert any(s.value == "Removed Grace and their runs from the board." for s in teacher.success)
    assert student.session_state["workspace"].membership() is None


def test_the_board_table_writes_its_numbers_in_the_page_s_language():
    """The leaderboard's column formats are English only ("81.0%" on a German board): in German its display values
    are the language's, its values stay numbers."""
    import pyarrow as pa

    from mnist_model import i18n
    from pages import common
    teacher = _class_page()
    _button(teacher, "Start a class").click().run()
    ws = teacher.session_state["workspace"]
    assert common.lab().classroom.post(ws.id, _run(0.81, train_acc=0.9))
    i18n.use("de")
    try:
        teacher.session_state["language"] = "de"
        teacher.run()
        assert not teacher.exception
        table = teacher.dataframe[0]
        shown = pa.ipc.open_stream(table.proto.arrow_data.styler.display_values).read_all().to_pandas()
    finally:
        i18n.use("en")
    assert table.value["test acc"].dtype.kind == "f"
    assert str(shown["test acc"].iloc[0]) == "81,0\xa0%" and str(shown["train acc"].iloc[0]) == "90,0\xa0%"
