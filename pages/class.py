"""Class: a teacher starts a class, students join with its code, and everyone's runs meet on one live board."""
import time

import streamlit as st

from mnist_model.classroom import TEACHER_LABEL
from mnist_model.errors import MnistLiveError
from mnist_model.i18n import _, percent
from pages import common
from pages.board import board

BOARD_POLL_S = 1.0  # the projected board redraws this often: a run shows within about a second of ending
STUDENT_BOARD_POLL_S = 2.0  # a student's copy: each tick costs the server a few ms, and a class has many copies


# ---------------------------------------------------------------- teacher

def join_link(code: str) -> str:
    return f"{common.base_url()}class?{common.JOIN_PARAM}={code}"


def teacher_header(taught) -> None:
    """The code, the link and a QR code big enough for the back of the room."""
    if taught.ended:
        st.subheader(_("Class {code} has ended").format(code=taught.code))
        st.caption(_("Nobody can join any more and new runs are no longer posted; the board below stays readable."))
        return
    link = join_link(taught.code)
    left, right = st.columns([3, 2], vertical_alignment="center")
    with left:
        st.markdown(_("Join at the Class page with the code"))
        st.markdown(f"<div style='font-size:5.5rem;font-weight:700;letter-spacing:0.4rem;line-height:1.1'>"
                    f"{taught.code}</div>", unsafe_allow_html=True)  # the code is ours: six safe letters
        st.code(link, language=None, wrap_lines=True)
        if common.is_local(link):
            st.warning(_("This link uses this computer's own address, which phones cannot reach. Start the server "
                         "with `--server.address 0.0.0.0` and open the app by this computer's network address."))
    right.image(common.qr_png(link, 10), caption=_("Scan to join"), width=360,
                alt=_("QR code of the link that joins class {code}").format(code=taught.code))


def teacher_controls(ws, taught) -> None:
    """Suggest settings, moderate, clear the board, end the class."""
    st.subheader(_("Teacher controls"))
    if taught.ended:
        common.button(st, _("Start a new class"), _start_class, args=(ws,), key="start_new_class", type="primary")
        common.show_refusal(CLASS_REFUSED, st.error)
        return
    cfg = ws.settings() or common.config()
    done = st.session_state.get(TEACHER_DONE)
    if done:  # what the last control did, until the next one: a toast alone is easily missed on a projector
        st.success(done, icon=":material/check_circle:")
    common.show_refusal(CLASS_REFUSED, st.error)
    a, b, c, d = st.columns(4)
    with a:
        st.caption(_("Your Train settings: {settings}").format(settings=cfg.describe()))
        common.button(st, _("Suggest these settings"), _suggest, args=(ws, cfg), key="suggest_settings",
                      width="stretch")
    with b.popover(_("Remove a nickname"), width="stretch"):
        names = [member[0] for member in common.lab().classroom.members(taught.id)]
        name = st.selectbox(_("Student"), names, index=None, placeholder=_("choose..."))
        common.button(st, _("Remove them and their runs"), _remove_student, args=(ws, name), key="remove_student",
                      disabled=name is None)
    common.ask_first(c, _("Clear the board"), _("Removes every run from the board (students keep their runs)."),
                     _("Yes, clear the board"), lambda: _done(_("Cleared the board ({n} runs).").format(
                         n=ws.clear_board()), rerun=False), panel=st)
    common.ask_first(d, _("End the class"), _("Joining stops; the board stays readable for you."),
                     _("Yes, end the class"), lambda: (ws.end_class(), st.session_state.pop(TEACHER_DONE, None)),
                     panel=st)


TEACHER_DONE = "teacher_done"  # session state: the sentence saying what the teacher's last control did
CLASS_REFUSED = "class_refused"  # session state: what the library said when a class button's action failed
NICKNAME_KEY = "join_nickname"


def _done(sentence: str, rerun: bool = True) -> None:
    st.session_state[TEACHER_DONE] = sentence
    if rerun:
        st.rerun()


# The buttons act in their callbacks (common.button): a press whose run another rerun cuts short still acts.

def _start_class(ws) -> None:
    with common.refusal_kept(CLASS_REFUSED):
        ws.start_class()


def _suggest(ws, cfg) -> None:
    with common.refusal_kept(CLASS_REFUSED):
        ws.suggest_settings(cfg)
        _done(_("Suggested to every student's Train page at {time}: {settings}.").format(
            time=time.strftime("%H:%M"), settings=cfg.describe()), rerun=False)


def _remove_student(ws, name: str | None) -> None:
    if name is None:
        return
    with common.refusal_kept(CLASS_REFUSED):
        removed = ws.remove_student(name)
        _done((_("Removed {name} and their runs from the board.") if removed else
               _("{name} had already left the class.")).format(name=name), rerun=False)


def _leave(ws) -> None:
    with common.refusal_kept(CLASS_REFUSED):
        ws.leave_class()


def _join(ws, code_key: str) -> None:
    try:
        ws.join_class(st.session_state.get(code_key) or "", st.session_state.get(NICKNAME_KEY) or "", session=ws.id)
        st.query_params.pop(common.JOIN_PARAM, None)
    except MnistLiveError as exc:
        st.session_state[CLASS_REFUSED] = str(exc)


def teacher_view(ws, taught) -> None:
    teacher_header(taught)
    # An ended class's board no longer ticks: who is here or training would stay as it was at the end, so it is
    # not shown.
    common.fragment(board, run_every=None if taught.ended else BOARD_POLL_S)(taught.id, not taught.ended)
    teacher_controls(ws, taught)


# ---------------------------------------------------------------- students

def student_view(ws, member) -> None:
    st.subheader(_("Class {code}").format(code=member.code))
    st.text(_("You are in as: {nickname}").format(nickname=member.nickname))
    if member.ended:
        st.info(_("This class has ended: your new runs are no longer posted to its board."))
    common.button(st, _("Leave the class"), _leave, args=(ws,), key="leave_class")
    common.show_refusal(CLASS_REFUSED, st.error)
    mine = ws.board_entries()
    if mine:
        with st.expander(_("Your runs on the board ({n})").format(n=len(mine))):
            for entry in mine:
                shown = st.checkbox(_("{accuracy} test · {settings}").format(
                    accuracy=percent(entry.test_accuracy, 1), settings=entry.settings()), value=not entry.hidden,
                    key=f"show_{entry.run_id}", help=_("Untick to hide this run from the board."))
                if shown == entry.hidden:
                    with common.plain_errors():
                        ws.hide_on_board(entry.run_id, not shown)
                        st.rerun()
    else:
        st.caption(_("Your finished and stopped runs are posted to the board by themselves (settings and figures "
                     "only; your model and drawings stay yours)."))
    if st.toggle(_("Show the class board"), value=True, key="show_board"):
        common.fragment(student_board, run_every=None if member.ended else STUDENT_BOARD_POLL_S)(
            ws, member.class_id, member.ended)


def student_board(ws, class_id: str, ended: bool) -> None:
    """The board as a student sees it; when the teacher has removed her or ended the class (or she left from
    another tab), the whole page follows at the next tick."""
    member = ws.membership()
    if member is None or member.class_id != class_id or member.ended != ended:
        st.rerun(scope="app")
    board(class_id, show_presence=False)


def code_from_link() -> str:
    """The join box's key, filled from a join link (the QR code) once per link: the session keeps it, so a rerun
    whose URL has lost the parameter cannot empty the box, and a code the student typed over stays."""
    s, linked = st.session_state, st.query_params.get(common.JOIN_PARAM)
    if linked and s.get("join_link") != linked:
        s["join_link"] = s["join_code"] = linked
    return "join_code"


def join_or_start(ws) -> None:
    left, right = st.columns(2)
    with left.form("join", border=True):  # typing reruns nothing: the code and the nickname go with Join
        st.subheader(_("Join a class"))
        code_key = code_from_link()
        st.text_input(_("Class code"), key=code_key, max_chars=12, placeholder=_("e.g. KPT4WM"))
        st.text_input(_("Nickname"), key=NICKNAME_KEY, max_chars=40, help=_("1 to 20 characters; others in the "
                                                                             "class see it."))
        st.form_submit_button(_("Join"), type="primary", on_click=common.uncut(_join), args=(ws, code_key))
        common.show_refusal(CLASS_REFUSED, st.error)
    with right.container(border=True):
        st.subheader(_("Start a class"))
        st.caption(_("For the teacher: you get a join code and a live board of everyone's runs. Your own runs "
                     "appear on it as {teacher}.").format(teacher=TEACHER_LABEL))
        common.button(st, _("Start a class"), _start_class, args=(ws,), key="start_class")


common.through_the_app()
st.title(_("Class"))
workspace = common.workspace()
taught, member = workspace.teaching(), workspace.membership()
if taught is not None and (member is None or not taught.ended):
    teacher_view(workspace, taught)
elif member is not None:
    student_view(workspace, member)
else:
    join_or_start(workspace)
