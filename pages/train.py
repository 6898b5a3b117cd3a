"""Train: sliders in, a background training in the workspace, live curves out, and the workspace's runs."""
import re
import secrets
from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from mnist_model.config import BATCH_SIZES, OPTIMIZERS, PRESETS, TrainConfig, from_query
from mnist_model.i18n import N_, _, ngettext, number, percent, short
from mnist_model.insights import compare_runs, read_curves, reading_grade
from mnist_model.notebook import code_text, notebook_bytes
from mnist_model.pictures import weight_sheet
from mnist_model.jobs import JobState
from pages import common, streamlit_mends

LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
HIDDEN_UNITS = (16, 32, 64, 128, 256, 512, 1024, 2048)
TRAIN_SIZES = (100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000)
DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
L2S = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
POLL_S = 0.5  # how often the live charts redraw while a job runs
QUEUED_POLL_S = 2.0  # how often a training waiting for a slot checks its place (the server's main cost per student
# in a class whose trainings queue: every waiting Train page polled at the running pace)
SUGGESTION_POLL_S = 3.0  # a teacher's suggestion reaches a student sitting on this page within this
ELSEWHERE_POLL_S = 2.0  # how often a page checks on a training that another server runs for its workspace
DATASET_NAMES = {"mnist": N_("MNIST digits"), "fashion": "Fashion-MNIST"}  # translated where shown
NETWORK_NAMES = {"dense": N_("Dense (the notebook)"), "cnn": N_("Small CNN")}
DATASETS, NETWORKS = tuple(DATASET_NAMES), tuple(NETWORK_NAMES)


def run_columns() -> dict:
    """The runs table's columns, narrow enough that every one shows at 1280 px beside the sidebar (about 810 px)."""
    text, num = st.column_config.TextColumn, st.column_config.NumberColumn
    return {"run": text(_("run"), width=128), "status": text(_("status"), width=62),
            "data": text(_("data"), width=58), "model": text(_("model"), width=48),
            "epochs": num(_("epochs"), width=56), "batch": num(_("batch"), width=50),
            "examples": text(_("examples"), width=66), "optimizer": text(_("opt."), width=62),
            "lr": num(_("lr"), width=48),  # numbers written each language's way: TABLE_NUMBERS
            "train acc": num(_("train"), width=56), "test acc": num(_("test"), width=56),
            "seconds": num(_("s"), width=36),
            "pinned": st.column_config.CheckboxColumn(_("pin"), width=36),
            "shared": st.column_config.CheckboxColumn(_("shared"), width=50)}


READING_BOX = {"none": st.success, "slight": st.info, "clear": st.warning}  # the stronger, the louder


# ---------------------------------------------------------------- settings <-> widgets <-> URL

def _widget_values(cfg: TrainConfig) -> dict:
    """The setting -> value each knob shows for cfg (snapped to the knob's options)."""
    return {"epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "hidden_units": _nearest(HIDDEN_UNITS, cfg.hidden_units),
            "learning_rate": _nearest(LEARNING_RATES, cfg.learning_rate), "optimizer": cfg.optimizer,
            "train_size": cfg.train_size, "dataset": cfg.dataset, "architecture": cfg.architecture,
            "seed": int(cfg.seed), "hidden_layers": cfg.hidden_layers, "dropout": _nearest(DROPOUTS, cfg.dropout),
            "l2": _nearest(L2S, cfg.l2), "patience": cfg.patience}


def _nearest(options, value):
    """The option closest to value on a log scale (0, meaning "all", only matches 0)."""
    if value in options:
        return value
    return min((o for o in options if o), key=lambda o: abs(o - value) / o)


# The session's settings live in st.session_state["config"]; the knobs show them under keys of a generation
# ("w_epochs_3f9a01c2") that a change from outside the knobs (a link, a preset, Use them) moves on. A value that the
# browser still holds for a knob of the old generation (a click fired before the new page arrived) then names a
# widget that is gone, and cannot write an old setting back over the new ones. Generations are random, not counted:
# a tab that reconnects after a restart still holds its old session's knobs, and a new session's count would come
# to their keys (a preset pressed at once then took the old Epochs back: walker seed 93). Such a tab's knobs are
# adopted instead (see init_settings), so what it shows stays the settings.
KNOBS_SEEN = "knobs_seen"  # session state: whether this session has set up its knobs (Start over keeps it)


def _key(name: str) -> str:
    return common.in_language(f"w_{name}_{st.session_state['settings_generation']}")


def _apply(cfg: TrainConfig, generation: str | None = None) -> None:
    """Make cfg (snapped to the knobs' options) the session's settings; the knobs are drawn afresh from it (under
    keys never used before, unless generation names the ones the tab shows)."""
    s = st.session_state
    s["config"] = replace(cfg, **_widget_values(cfg))
    s["settings_generation"] = generation or secrets.token_hex(4)


def _held_generation() -> str | None:
    """The generation of the knobs a reconnected tab shows, when its message carries their values (one only)."""
    names = "|".join(_widget_values(TrainConfig()))
    knob = re.compile(rf"w_(?:{names})_([0-9a-f]+)" + re.escape(common.in_language("")))
    held = {m.group(1) for m in map(knob.fullmatch, streamlit_mends.held_widget_keys()) if m}
    return held.pop() if len(held) == 1 else None


def _settings_now() -> TrainConfig:
    """The session's settings with what the knobs of this generation hold now (callbacks run in no set order, so
    Train reads them itself rather than trusting a knob's callback to have run first)."""
    s = st.session_state
    shown = {name: s[_key(name)] for name in _widget_values(s["config"]) if _key(name) in s}
    if "seed" in shown:
        shown["seed"] = int(shown["seed"])
    return replace(s["config"], **shown)


def _knob_moved() -> None:
    st.session_state["config"] = _settings_now()


def _knob(name: str, options=None) -> dict:
    """A knob's keyword arguments: its generation's key, its value from the settings, and its callback."""
    value = _widget_values(st.session_state["config"])[name]
    shown = {"index": list(options).index(value)} if options is not None else {"value": value}
    return dict(key=_key(name), on_change=_knob_moved, **shown)


def init_settings() -> None:
    """Once per session: settings from the URL (clamped, with notices), else the session's or workspace's."""
    if "settings_generation" not in st.session_state:
        query = {k: v for k, v in st.query_params.to_dict().items() if k not in common.APP_PARAMS}
        if query:
            cfg, notices = from_query(query)
        else:
            cfg, notices = common.config(), []
            if st.session_state.get("link_settings"):
                notices = from_query(st.session_state["link_settings"])[1]
        _apply(cfg, None if st.session_state.get(KNOBS_SEEN) else _held_generation())
        st.session_state[KNOBS_SEEN] = True
        st.session_state["url_notices"] = notices
    for notice in st.session_state.pop("url_notices", []):
        st.warning(_("Link settings: {notice}").format(notice=notice))


PRESET_NOTICE = "preset_notice"  # session state: (what the last preset set, the settings it made)


def _preset(name: str) -> None:
    """A preset sets the training knobs; the dataset and network stay as chosen, and the page says so."""
    current = st.session_state.get("config") or TrainConfig()
    preset = PRESETS[name]
    applied = replace(preset, dataset=current.dataset, architecture=current.architecture)
    _apply(applied)
    data = _(DATASET_NAMES[current.dataset]) if current.dataset != preset.dataset else ""
    net = _(NETWORK_NAMES[current.architecture]) if current.architecture != preset.architecture else ""
    if data and net:
        sentence = _("Preset {name}: {settings} (keeping {data} and the {network}).")
    elif data:
        sentence = _("Preset {name}: {settings} (keeping {data}).")
    elif net:
        sentence = _("Preset {name}: {settings} (keeping the {network}).")
    else:
        sentence = _("Preset {name}: {settings}.")
    st.session_state[PRESET_NOTICE] = (sentence.format(name=_(name), settings=applied.describe(), data=data,
                                                       network=net), st.session_state["config"])


def teacher_suggestion(ws, cfg: TrainConfig, busy: bool) -> None:
    """A student's Train page shows the settings their teacher sent, with Use them (checked every few seconds, so
    that a suggestion reaches a student who sits on this page)."""
    member = ws.membership()
    if member and not member.ended:  # not checked while a training runs: the page reruns when it ends
        common.fragment(_suggestion, run_every=None if busy else SUGGESTION_POLL_S)(ws, member.class_id, cfg)


def _suggestion(ws, class_id: str, cfg: TrainConfig) -> None:
    version = (class_id, ws.lab.classroom.suggestion_version(class_id))
    held = st.session_state.get("suggestion_read")
    if held is None or held[0] != version:  # read again only when the teacher has sent something since
        held = st.session_state["suggestion_read"] = (version, ws.lab.classroom.suggestion(class_id))
    suggested = held[1]
    if suggested is None or suggested[0] == cfg:
        return
    a, b = st.columns([4, 1], vertical_alignment="center")
    a.info(_("Your teacher suggests: {settings}.").format(settings=suggested[0].describe()), icon=":material/school:")
    if common.button(b, _("Use them"), _apply, args=(suggested[0],), width="stretch"):
        st.rerun()  # the whole page: the settings above are outside this fragment


def controls(train_sizes: tuple[int, ...]) -> TrainConfig:
    """The widgets; returns the config they show and mirrors it into the URL and the workspace."""
    c1, c2 = st.columns(2)
    c1.slider(_("Epochs"), 1, 50, **_knob("epochs"), help=_("Passes over the training images."))
    c2.select_slider(_("Batch size"), BATCH_SIZES, **_knob("batch_size"),
                     help=_("Images per weight update. Smaller: more updates per epoch, noisier."))
    with st.expander(_("More settings")):
        a, b = st.columns(2)
        a.select_slider(_("Training examples"), train_sizes, **_knob("train_size"),
                        format_func=lambda n: _("all") if n == 0 else number(n),
                        help=_("Fewer examples make overfitting easy to see."))
        b.select_slider(_("Learning rate"), LEARNING_RATES, **_knob("learning_rate"), format_func=short)
        a.select_slider(_("Hidden units"), HIDDEN_UNITS, **_knob("hidden_units"))
        b.selectbox(_("Optimizer"), OPTIMIZERS, **_knob("optimizer", OPTIMIZERS))
        a.radio(_("Dataset"), DATASETS, **_knob("dataset", DATASETS), horizontal=True,
                format_func=lambda d: _(DATASET_NAMES[d]))
        b.radio(_("Network"), NETWORKS, **_knob("architecture", NETWORKS), horizontal=True,
                format_func=lambda a: _(NETWORK_NAMES[a]),
                help=_("The CNN looks at neighbouring pixels together, so it cares less about where and how big "
                       "a digit is drawn."))
        a.number_input(_("Seed"), 0, 2**31 - 1, **_knob("seed"), help=_("Same seed, same settings: same run."))
        st.markdown(_("**Fight overfitting** (dense network)"))
        c, d = st.columns(2)
        c.select_slider(_("Hidden layers"), (1, 2, 3), **_knob("hidden_layers"),
                        help=_("The notebook has one; more layers of the same size can learn more, and memorise "
                               "more."))
        d.select_slider(_("Dropout"), DROPOUTS, **_knob("dropout"),
                        format_func=lambda v: _("off") if not v else short(v),
                        help=_("While training, switch off this share of the hidden units at random in every step, "
                               "so no unit can rely on another: harder to memorise. Never while predicting."))
        c.select_slider(_("L2 weight penalty"), L2S, **_knob("l2"), format_func=lambda v: _("off") if not v else
                        short(v), help=_("Adds the sum of squared weights (times this) to the loss: large weights "
                                         "that fit single examples cost more."))
        d.slider(_("Early stopping: patience"), 0, 20, **_knob("patience"),
                 help=_("Stop once the test loss has not improved for this many epochs, and keep the weights of "
                        "the best epoch. 0 = off."))
    cols = st.columns(len(PRESETS))
    for col, name in zip(cols, PRESETS):
        common.button(col, _("Preset: {name}").format(name=_(name)), _preset, args=(name,), key=f"preset_{name}",
                      width="stretch")
    notice, preset_settings = st.session_state.get(PRESET_NOTICE) or (None, None)
    if notice and preset_settings == st.session_state["config"]:  # until a knob moves (not only for one rerun: the
        st.info(notice, icon=":material/tune:")  # tab's own reruns, a reconnection's, took it away at once)
    else:
        st.session_state.pop(PRESET_NOTICE, None)
    cfg = _settings_now()
    if cfg != st.session_state["config"]:  # a knob's callback was dropped (a reconnected tab's first message moved
        st.session_state["config"] = cfg  # it before this session had drawn the knobs): what they show wins, and
        st.rerun()  # the page above them is drawn again with it
    if st.session_state.get("saved_settings") != cfg:  # only what this session changed: a tab being closed or
        with common.plain_errors():  # replaced by a settings link, rerunning once more, must not write its old ones
            common.workspace().save_settings(cfg)
        st.session_state["saved_settings"] = cfg
    # The URL as this run's request had it is the browser's when it sent it: a URL this session sent since may
    # reach the browser after, so it is sent again unless it was this one (walker seed 27: patience 1 -> 0 -> 1).
    wanted = cfg.to_query()
    shown = {k: v for k, v in st.query_params.to_dict().items() if k not in common.APP_PARAMS}
    if shown != wanted or st.session_state.get(URL_SENT, wanted) != wanted:
        st.query_params.from_dict(wanted)
    st.session_state[URL_SENT] = wanted
    return cfg


URL_SENT = "train_url_sent"  # session state: the settings Train last put in the URL (or found there)


def _train_sizes(n_train: int) -> tuple[int, ...]:
    return tuple(n for n in TRAIN_SIZES if n < n_train) + (0,)


# ---------------------------------------------------------------- the workspace's training

TRAIN_REFUSED = "train_refused"  # session state: what the library said to Train, Train again or the picker
RUN_REFUSED = "run_refused"  # session state: what it said to Pin or Share


def start_training() -> None:
    """Train button: runs before the page redraws, so the buttons show the new state at once. It trains the
    settings as they are now, not as they were when the button was drawn (Use them, then Train at once)."""
    cfg = st.session_state["config"] = _settings_now()
    with common.refusal_kept(TRAIN_REFUSED):  # another tab started one meanwhile, a full disk, a busy database
        common.workspace().train(cfg)


def stop_training() -> None:
    """Stop button: stop the workspace's trainings; a running one keeps what it has learned."""
    ws = common.workspace()
    ws.stop()
    for job in ws.jobs():
        job.wait(3)


def _choose_model(ws, key: str) -> None:
    """Before the page reruns: so the sidebar, drawn after the page, names the model of this very rerun.

    Only the picker of the model in use counts. A browser that has not caught up with a new model sends the old
    picker's value once more, and Streamlit, which keeps the callbacks of widgets gone from the page, calls this for
    it: that is not a choice (it put the old model back after a training ended)."""
    runs = ws.runs()
    if not runs or key != _picker_key(_picker_shows(ws, runs)):
        return
    with common.refusal_kept(TRAIN_REFUSED):
        ws.choose_model(st.session_state[key])


def _flip_run(ws, what: str, run_id: str, name: str, on: bool) -> None:
    """Pin or share (what) one run, on or off, before the page reruns."""
    with common.refusal_kept(RUN_REFUSED):
        if what == "pin":
            ws.pin(run_id, on)
        else:
            ws.publish(run_id, on)
            st.toast((_("{run} is shared with everyone on this server") if on else
                      _("{run} is no longer shared")).format(run=name))


def _picker_key(run_id: str) -> str:
    return common.in_language(f"model_choice_{run_id}")


def _picker_shows(ws, runs) -> str:
    """The run the model picker starts at: the model in use, else (a model shared by someone else) the latest."""
    current = common.model_in_use(ws)
    ids = [r.run_id for r in runs]
    return current.run_id if current and current.run_id in ids else ids[-1]


def train_again(job_id: str) -> None:
    with common.refusal_kept(TRAIN_REFUSED):
        common.workspace().train_again(job_id)


def interrupted_panel(ws, busy: bool) -> None:
    """Trainings that a server restart cut off, each with Train again (off while one runs)."""
    for record in ws.interrupted():
        with st.container(border=True):
            st.warning(_("**{label}** was interrupted: {why}. ({settings})").format(
                label=record.label, why=record.message, settings=record.config.describe()),
                icon=":material/restart_alt:")
            a, b, rest = st.columns([1, 1, 3])
            common.button(a, _("Train again"), train_again, args=(record.job_id,), key=f"again_{record.job_id}",
                          type="primary", disabled=busy, width="stretch")
            common.button(b, _("Dismiss"), ws.dismiss, args=(record.job_id,), key=f"dismiss_{record.job_id}",
                          width="stretch")


def elsewhere_panel(ws) -> bool:
    """A training of this workspace that another app server runs (another device of the same person), followed
    until it ends there; returns whether there is one."""
    record = ws.training_elsewhere()
    if record is not None:
        common.fragment(_elsewhere, run_every=ELSEWHERE_POLL_S)(record.job_id)
    return record is not None


def _elsewhere(job_id: str) -> None:
    record = common.workspace().training_elsewhere()
    if record is None or record.job_id != job_id:
        st.rerun(scope="app")  # it ended (its run is in the workspace), or its server died (it shows interrupted)
    st.info(_("**{label}** is training for this workspace on another of this school's servers (another tab or "
              "device). Its run lands here when it ends; stop it where it runs.").format(label=record.label),
            icon=":material/dns:")


def live_panel(waiting: bool = False) -> None:
    """Progress, live curves and the outcome of the workspace's current training (any tab, any device); waiting:
    drawn for a training that waits for a slot (polled slowly until it starts)."""
    ws = common.workspace()
    active = ws.jobs()
    job = active[0] if active else ws.latest_job()
    if job is None:
        return
    if waiting and active and job.state != JobState.QUEUED:
        st.rerun()  # it has started: the whole page, whose panel then follows it at the running pace
    if not active and st.session_state.get("watching") == job.id:
        st.session_state.pop("watching")
        st.rerun()  # it has just ended: the whole page shows its run
    if active:
        st.session_state["watching"] = job.id
    snap = job.snapshot()
    if len(active) > 1:
        st.caption(ngettext("{n} more of your runs waits its turn: {names}", "{n} more of your runs wait their turn: "
                            "{names}", len(active) - 1).format(n=len(active) - 1,
                                                               names=", ".join(j.label for j in active[1:])))
    ex = ws.lab.executor
    if snap.state == JobState.QUEUED and snap.queue_position is None:
        st.info(_("{label}: waiting for your previous run to end.").format(label=job.label))
    elif snap.state == JobState.QUEUED and ex.busy() < ex.slots:
        st.info(_("{label}: starting...").format(label=job.label))
    elif snap.state == JobState.QUEUED:
        st.info(_("Other trainings hold the server's training slots. {label} is number {position} in the queue; it "
                  "starts by itself.").format(label=job.label, position=snap.queue_position))
    elif snap.state == JobState.RUNNING:
        text = _("{label}: {progress}, about {seconds} s left") if snap.eta_s is not None else _("{label}: {progress}")
        st.progress(snap.fraction, text=text.format(label=job.label, progress=snap.message,
                                                    seconds=f"{snap.eta_s or 0:.0f}"))
    elif snap.state == JobState.FAILED:
        st.error(_("{label} failed: {why}").format(label=job.label, why=snap.message))
    if not active:
        return
    frame = common.history_frame(snap.epochs)
    if snap.epochs:
        a, b = st.columns(2)
        for where, metric in ((a, "loss"), (b, "accuracy")):
            common.curves(where, metric, lambda: frame, job.config.epochs)
    if snap.batch_losses:
        st.vega_lite_chart(spec=common.arrow_spec(running_loss_chart(snap.batch_losses)), width="stretch")
        common.numbers(st, pd.DataFrame(snap.batch_losses, columns=["epoch", "loss"]), _("Running loss"))
    if snap.first_layer is not None and snap.first_layer_start is not None:
        change = (snap.first_layer["weights"].astype("float32") - snap.first_layer_start.astype("float32")).T
        st.image(weight_sheet(change, range(change.shape[1]), columns=16),
                 caption=_("Epoch {epoch}: how the 16 hidden units that moved most have changed since the start (red: "
                           "this pixel now counts for the unit, blue: against it)").format(
                     epoch=snap.first_layer["epoch"]),
                 alt=_("Epoch {epoch}: 16 tiles of 28 by 28 pixels, one per hidden unit, red where a pixel now counts "
                       "for the unit, blue where it counts against it").format(epoch=snap.first_layer["epoch"]))


def running_loss_chart(batch_losses) -> alt.Chart:
    """The training loss within epochs; a short axis title and a y range fitted to the data, so the plot keeps
    its height (a long rotated title used to squeeze it flat)."""
    points = pd.DataFrame(batch_losses, columns=["epoch", "loss"])
    low, high = float(points["loss"].min()), float(points["loss"].max())
    pad = max((high - low) * 0.08, 1e-3)
    return alt.Chart(points).mark_line().encode(
        x=alt.X("epoch:Q", title=_("epochs done"), axis=alt.Axis(tickCount=8)),
        y=alt.Y("loss:Q", title=_("loss"), scale=alt.Scale(domain=[max(0.0, low - pad), high + pad]))).properties(
        **common.titled(_("Training loss within epochs (running mean)"), 220))


def outcome(run, previous=None) -> None:
    """The latest run's figures, its curves, the reading of them, and what changed since the run before."""
    last = run.final
    if last is None:
        st.warning(_("{run} stopped before finishing its first epoch, so it has no test figures yet.").format(
            run=run.name))
        return
    status = {"finished": _("finished"), "stopped": _("stopped")}.get(run.status, run.status)
    st.subheader(f"{run.name}: {status}" + (f" ({run.early_stop_note})" if run.early_stop_note else ""))
    c = st.columns(5)
    c[0].metric(_("Train accuracy"), percent(last.accuracy, 2))
    c[1].metric(_("Test accuracy"), percent(last.test_accuracy, 2))
    c[2].metric(_("Gap (points)"), number((last.accuracy - last.test_accuracy) * 100, 1),
                help=_("Train accuracy minus test accuracy, in percentage points."))
    c[3].metric(_("Train loss"), number(last.loss, 4))
    c[4].metric(_("Test loss"), number(last.test_loss, 4))
    READING_BOX[reading_grade(run.epochs, run.best_epoch)](read_curves(run.epochs, run.best_epoch,
                                                                                  dropout=run.config.dropout))
    change = compare_runs(previous, run)
    if change:
        st.info(change, icon=":material/compare_arrows:")
    a, b = st.columns(2)
    for where, metric in ((a, "loss"), (b, "accuracy")):
        common.curves(where, metric, lambda: common.history_frame(run.epochs), run.config.epochs,
                      best_epoch=run.best_epoch, key=("outcome", run.run_id))


def show_code(cfg: TrainConfig, chosen) -> None:
    """The Keras code of the current settings, as the notebook writes it, and the same as a notebook."""
    st.code(code_text(cfg, offline=False), language="python", line_numbers=False)
    st.caption(_("The notebook adds one marked cell that reads the data from MNIST_PATH when it is set, for "
                 "computers without internet."))
    with_figures = chosen if chosen is not None and chosen.config == cfg else None
    st.download_button(_("Download notebook"), lambda: notebook_bytes(cfg, with_figures), "mnist-live.ipynb",
                       mime="application/x-ipynb+json", on_click="ignore",
                       help=_("A Jupyter notebook of this code, with {run}'s figures.").format(run=with_figures.name)
                       if with_figures else _("A Jupyter notebook of this code."))


def runs_table(ws) -> None:
    """Every run of the workspace: table, overlay, model choice, pin/share/delete, downloads."""
    runs = ws.runs()
    if not runs:
        return
    st.subheader(_("Runs"))
    table = pd.DataFrame([{**r.summary(), "pinned": r.pinned, "shared": r.published} for r in runs])
    table[["train acc", "test acc"]] = (table[["train acc", "test acc"]] * 100).round(1)
    # Shown as the page's language writes them (a column's own format is English only); sorted as numbers
    shown = table.style.format({"train acc": lambda v: percent(v / 100, 1), "test acc": lambda v: percent(v / 100, 1),
                                "lr": short, "seconds": lambda v: number(v, 1)}, na_rep="–")
    st.dataframe(shown, hide_index=True, width="stretch", column_config=run_columns())
    limit = ws.store.limits.runs_per_workspace
    st.caption(_("This workspace keeps its latest {limit} runs ({n} so far); pinned runs are never removed.").format(
        limit=limit, n=len(runs)))
    names = [r.name for r in runs]
    picked = st.multiselect(_("Overlay the curves of"), names, default=names[-2:], key=f"overlay_{len(names)}")
    if picked:
        shown = [r for r in runs if r.name in picked]
        a, b = st.columns(2)
        for where, metric in ((a, "loss"), (b, "accuracy")):
            common.curves(where, metric, lambda: pd.concat([common.history_frame(r.epochs, r.name) for r in shown]),
                          by_run=True, key=("overlay", tuple((r.run_id, r.name) for r in shown)))
    by_id = {r.run_id: r for r in runs}
    ids = list(by_id)
    current_id = _picker_shows(ws, runs)
    # A key per model in use: when it changes (a pick, a new run, another tab), a fresh picker shows it, and a value
    # the browser still holds for the old picker (a rerun fired before it caught up) cannot write the old one back.
    key = _picker_key(current_id)
    chosen = st.selectbox(_("Model for the Draw and Explore pages"), ids, index=ids.index(current_id), key=key,
                          format_func=lambda i: by_id[i].label, on_change=_choose_model, args=(ws, key))
    if chosen != current_id:  # picked in a reconnected tab's first message, before this session had the picker's
        _choose_model(ws, key)  # callback: the pick is the model in use, and the sidebar, drawn before, says so
        if _picker_shows(ws, runs) == chosen:  # (refused: said by the next rerun, never a loop of reruns)
            st.rerun()
    run = by_id[chosen]
    a, b, f, c, d, e = st.columns(6)
    stem = run.file_stem()
    a.download_button(_("Model (.keras)"), lambda: run.keras_bytes, f"{stem}.keras",
                      mime="application/octet-stream", width="stretch", on_click="ignore",
                      help=_("Download the trained model."))
    b.download_button(_("Metrics (CSV)"), run.metrics_csv(), f"{stem}.csv",
                      mime="text/csv", width="stretch", on_click="ignore",
                      help=_("Download the figures of every epoch."))
    f.download_button(_("Notebook"), lambda: notebook_bytes(run.config, run), f"{stem}.ipynb",
                      mime="application/x-ipynb+json", width="stretch", on_click="ignore",
                      help=_("The Keras code of this run's settings, with its figures, as a Jupyter notebook."))
    # Keyed by run, acting in a callback on the run they were drawn for: a click that lands as a training ends (the
    # page then shows the new run) pins the run the person saw, not the new one under the same label.
    common.button(c, _("Unpin") if run.pinned else _("Pin (keep)"), _flip_run,
                  args=(ws, "pin", run.run_id, run.name, not run.pinned), key=f"pin_{run.run_id}_{run.pinned}",
                  width="stretch")
    common.button(d, _("Unshare") if run.published else _("Share"), _flip_run,
                  args=(ws, "share", run.run_id, run.name, not run.published),
                  key=f"share_{run.run_id}_{run.published}", width="stretch", help=_("Everyone on this server can then pick this model on the Draw page (its settings and weights, "
                    "never your drawings)."))
    common.show_refusal(RUN_REFUSED, st.error)
    common.ask_first(e, _("Delete run"), _("{run} and its model go for good (download it first to keep it).").format(
        run=run.name), _("Yes, delete {run}").format(run=run.name), lambda: ws.delete_run(run.run_id), panel=st,
                     about=run.run_id)


common.through_the_app()
st.title(_("Train the network"))
workspace = common.workspace()
init_settings()
settings = st.session_state["config"]
ds = common.load_or_explain(settings.dataset)
sizes = _train_sizes(len(ds.x_train)) if ds is not None else (0,)
if settings.train_size not in sizes:  # more examples than this dataset has: the nearest it has, else all
    _apply(replace(settings, train_size=_nearest(sizes, settings.train_size) if settings.train_size < max(sizes)
                   else 0))
cfg = controls(sizes)
jobs = workspace.jobs()  # read once: a training may end while this page is drawn
busy = bool(jobs)
elsewhere = not busy and elsewhere_panel(workspace)
teacher_suggestion(workspace, cfg, busy)
interrupted_panel(workspace, busy)
b1, b2 = st.columns(2)
# common.button: a click that is a reconnected tab's first message (after a server restart) still trains.
common.button(b1, _("Train"), start_training, key="train", type="primary",
              disabled=busy or elsewhere or ds is None, width="stretch")
common.button(b2, _("Stop training"), stop_training, key="stop_training", disabled=not busy, width="stretch")
if not common.show_refusal(TRAIN_REFUSED, st.warning) and busy:
    st.caption(_("One training at a time per workspace: stop this one to start another."))
with st.expander(_("Show the code")):
    show_code(cfg, workspace.model_run())
waiting = busy and jobs[0].state == JobState.QUEUED
if busy:
    common.follow_training_here()
common.fragment(live_panel, run_every=(QUEUED_POLL_S if waiting else POLL_S) if busy else None)(waiting)
runs = workspace.runs()
if runs and not busy:
    outcome(runs[-1], runs[-2] if len(runs) > 1 else None)
runs_table(workspace)
