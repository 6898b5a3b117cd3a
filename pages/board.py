"""The class board, as the teacher projects it and as each student sees it: who is here, the leaderboard, the
scatter, what worked. A module of its own (not in the Class page's script), so that its server-wide cache is made
once, not on every rerun of the page (Streamlit reads a cached function's source each time it is decorated)."""
import time

import altair as alt
import pandas as pd
import pyarrow as pa
import streamlit as st

from mnist_model import palette
from mnist_model.classroom import PRESENT_S, what_worked
from mnist_model.i18n import DEFAULT, _, current, number, percent
from mnist_model.jobs import JobState
from pages import common


def board_columns() -> dict:
    """The leaderboard's columns: every one but settings fits beside the sidebar at 1280 px (about 810 px)."""
    text, num = st.column_config.TextColumn, st.column_config.NumberColumn
    english = current() == DEFAULT  # in another language the board's own display values write the numbers
    return {"nickname": text(_("nickname"), width=120),
            "test acc": num(_("test acc"), width=64, format="%.1f%%" if english else None),
            "train acc": num(_("train acc"), width=68, format="%.1f%%" if english else None),
            "gap (points)": num(_("gap (points)"), width=86, format="%.1f" if english else None),
            "epochs": num(_("epochs"), width=56), "time": text(_("time"), width=52),
            "settings": text(_("settings"), width=340)}


@st.cache_resource(max_entries=64, show_spinner=False)
def board_view(class_id: str, version: tuple, language: str) -> dict:
    """The board at one version in one language, shared by everyone who looks at it (read-only): the rows and the
    chart specs, their data already in Arrow, so that every viewer's tick only sends them."""
    entries = common.lab().classroom.board(class_id)
    if not entries:
        return {"runs": 0}
    rows = pd.DataFrame([e.row() for e in entries])
    rows[["train acc", "test acc"]] *= 100  # shown as 95.8%, one decimal for everyone
    points = pd.DataFrame([{"nickname": e.nickname, "settings": e.settings(), "train accuracy": e.train_accuracy,
                            "test accuracy": e.test_accuracy, "gap (points)": e.gap,
                            "epochs trained": e.epochs_run, "batch size": e.config.batch_size} for e in entries])
    low = float(min(points["train accuracy"].min(), points["test accuracy"].min()))
    low = max(0.0, low - 0.02)
    diagonal = pd.DataFrame({"train accuracy": [low, 1.0], "test accuracy": [low, 1.0]})
    axis = alt.Scale(domain=[low, 1.005], nice=False)  # room for the dots at 100%, and never past it
    scatter = (alt.Chart(diagonal).mark_line(strokeDash=[4, 4], color="#888").encode(
        x=alt.X("train accuracy:Q", scale=axis, axis=alt.Axis(format="%"), title=_("train accuracy")),
        y=alt.Y("test accuracy:Q", scale=axis, axis=alt.Axis(format="%"), title=_("test accuracy")))
        + alt.Chart(points).mark_circle(size=90, opacity=0.8).encode(
        x="train accuracy:Q", y="test accuracy:Q", color=alt.Color("gap (points):Q", scale=alt.Scale(
            range=[palette.GAP_SMALL, palette.GAP_LARGE]), legend=alt.Legend(format=".1f", title=_("gap (points)"))),
        tooltip=[alt.Tooltip("nickname:N", title=_("nickname")), alt.Tooltip("settings:N", title=_("settings")),
                 alt.Tooltip("train accuracy:Q", title=_("train accuracy"), format=".1%"),
                 alt.Tooltip("test accuracy:Q", title=_("test accuracy"), format=".1%"),
                 alt.Tooltip("gap (points):Q", title=_("gap (points)"), format=".1f")])).properties(
        **common.titled(_("Train vs test accuracy"), 340))
    worked = pd.DataFrame(what_worked(entries))
    base = alt.Chart(worked).encode(x=alt.X("batch size:O", title=_("batch size")),
                                    y=alt.Y("epochs:O", sort="descending", title=_("epochs set")))
    heat = (base.mark_rect().encode(color=alt.Color("mean test acc:Q", scale=alt.Scale(scheme="greens"),
                                                    legend=alt.Legend(format=".1%"), title=_("mean test accuracy")),
                                    tooltip=[alt.Tooltip("epochs:O", title=_("epochs set")),
                                             alt.Tooltip("batch size:O", title=_("batch size")),
                                             alt.Tooltip("runs:Q", title=_("runs")),
                                             alt.Tooltip("mean test acc:Q", title=_("mean test accuracy"),
                                                         format=".1%"),
                                             alt.Tooltip("mean gap (points):Q", title=_("mean gap (points)"),
                                                         format=".1f")])
            + base.mark_text(fontSize=13).encode(text=alt.Text("mean test acc:Q", format=".1%"))).properties(
        **common.titled(_("What worked: mean test accuracy"), 300))
    gap = alt.Chart(points).mark_circle(size=70, opacity=0.7).encode(
        x=alt.X("epochs trained:Q", axis=alt.Axis(tickMinStep=1, format="d"), title=_("epochs trained"),
                scale=alt.Scale(domain=[0, max(5, int(points["epochs trained"].max()) + 1)])),
        y=alt.Y("gap (points):Q", scale=alt.Scale(nice=True, padding=10), title=_("gap (points)")),
        tooltip=[alt.Tooltip("nickname:N", title=_("nickname")), alt.Tooltip("settings:N", title=_("settings")),
                 alt.Tooltip("gap (points):Q", title=_("gap (points)"), format=".1f")]).properties(
        **common.titled(_("The gap against the epochs trained"), 300))
    # English: the table as Arrow, sent as it is; another language: a frame that board() writes that language's way
    shown = pa.Table.from_pandas(rows, preserve_index=False) if current() == DEFAULT else rows
    return {"runs": len(entries), "rows": shown,
            "scatter": common.arrow_spec(scatter), "heat": common.arrow_spec(heat), "gap": common.arrow_spec(gap),
            "numbers": {"scatter": common.numbers_table(points[["nickname", "train accuracy", "test accuracy",
                                                                 "gap (points)"]]),
                        "heat": common.numbers_table(worked),
                        "gap": common.numbers_table(points[["nickname", "epochs trained", "gap (points)"]])}}


def presence(class_id: str) -> dict:
    """Who is in the class now: joined, here (seen lately), training, waiting (nicknames only)."""
    lab = common.lab()
    now = time.time()
    out = {"joined": [], "here": [], "training": [], "waiting": []}
    for nickname, workspace_id, seen_at in lab.classroom.members(class_id):
        out["joined"].append(nickname)
        jobs = lab.jobs(workspace_id)
        if jobs and jobs[0].state == JobState.RUNNING:
            out["training"].append(nickname)
        elif jobs:
            out["waiting"].append(nickname)
        if now - seen_at < PRESENT_S or jobs:
            out["here"].append(nickname)
    return out


def board(class_id: str, show_presence: bool = True) -> None:
    """The live board: who is here, the leaderboard, the scatter, what worked."""
    view = board_view(class_id, common.lab().classroom.board_version(class_id), current())
    if show_presence:
        who = presence(class_id)
        c = st.columns(5)
        c[0].metric(_("Students joined"), len(who["joined"]))
        c[1].metric(_("Here now"), len(who["here"]))
        c[2].metric(_("Training"), len(who["training"]))
        c[3].metric(_("Waiting"), len(who["waiting"]))
        c[4].metric(_("Runs on the board"), view["runs"])
        if who["training"] or who["waiting"]:
            st.text(_("Training: {training}\nWaiting: {waiting}").format(
                training=", ".join(who["training"]) or _("nobody"), waiting=", ".join(who["waiting"]) or _("nobody")))
    if not view["runs"]:
        st.info(_("No runs on the board yet: every run a student finishes or stops appears here by itself."))
        return
    rows = view["rows"]
    if isinstance(rows, pd.DataFrame):  # its numbers as this language writes them (a column's own format is
        # English only): a styler of its own per view, a few milliseconds (pandas stylers are not thread-safe)
        rows = rows.style.format({"test acc": lambda v: percent(v / 100, 1), "train acc": lambda v: percent(v / 100, 1),
                                  "gap (points)": lambda v: number(v, 1)}, na_rep="–")
    st.dataframe(rows, hide_index=True, width="stretch", height=min(36 * (view["runs"] + 1), 420),
                 column_config=board_columns())
    st.caption(_("Below the dashed line: the network does better on its training images than on new ones "
                 "(overfitting). The same settings and seed give the same run: vary the seed to see chance at "
                 "work."))
    a, b = st.columns(2)
    for where, name in ((a, "scatter"), (b, "heat"), (st, "gap")):
        where.vega_lite_chart(spec=view[name], width="stretch")
        common.numbers(where, view["numbers"][name], common.chart_title(view[name]))
