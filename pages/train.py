"""Train: sliders in, a background training in the workspace, live curves out, and the workspace's runs."""
from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from mnist_model.config import BATCH_SIZES, OPTIMIZERS, PRESETS, TrainConfig, from_query
from mnist_model.errors import MnistLiveError
from mnist_model.insights import compare_runs, read_curves, reading_grade
from mnist_model.notebook import code_text, notebook_bytes
from mnist_model.pictures import weight_sheet
from mnist_model.jobs import JobState
from pages import common

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
DATASET_NAMES = {"mnist": "MNIST digits", "fashion": "Fashion-MNIST"}
NETWORK_NAMES = {"dense": "Dense (the notebook)", "cnn": "Small CNN"}
DATASETS, NETWORKS = tuple(DATASET_NAMES), tuple(NETWORK_NAMES)
RUN_COLUMNS = {  # narrow enough that every column shows at 1280 px beside the sidebar (about 810 px)
    "run": st.column_config.TextColumn(width=128), "status": st.column_config.TextColumn(width=62),
    "data": st.column_config.TextColumn(width=58), "model": st.column_config.TextColumn(width=48),
    "epochs": st.column_config.NumberColumn(width=56), "batch": st.column_config.NumberColumn(width=50),
    "examples": st.column_config.TextColumn("examples", width=66),
    "optimizer": st.column_config.TextColumn("opt.", width=62), "lr": st.column_config.NumberColumn(width=48),
    "train acc": st.column_config.NumberColumn("train", width=56, format="%.1f%%"),  # in percent: one decimal each
    "test acc": st.column_config.NumberColumn("test", width=56, format="%.1f%%"),
    "seconds": st.column_config.NumberColumn("s", width=36), "pinned": st.column_config.CheckboxColumn("pin", width=36),
    "shared": st.column_config.CheckboxColumn(width=50)}
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
# ("w_epochs_3") that a change from outside the knobs (a link, a preset, Use them) moves on. A value that the
# browser still holds for a knob of the old generation (a click fired before the new page arrived) then names a
# widget that is gone, and cannot write an old setting back over the new ones.

def _key(name: str) -> str:
    return f"w_{name}_{st.session_state['settings_generation']}"


def _apply(cfg: TrainConfig) -> None:
    """Make cfg (snapped to the knobs' options) the session's settings; the knobs are drawn afresh from it."""
    s = st.session_state
    s["config"] = replace(cfg, **_widget_values(cfg))
    s["settings_generation"] = s.get("settings_generation", 0) + 1


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
        _apply(cfg)
        st.session_state["url_notices"] = notices
    for notice in st.session_state.pop("url_notices", []):
        st.warning(f"Link settings: {notice}")


def _preset(name: str) -> None:
    """A preset sets the training knobs; the dataset and network stay as chosen, and the page says so."""
    current = st.session_state.get("config") or TrainConfig()
    preset = PRESETS[name]
    applied = replace(preset, dataset=current.dataset, architecture=current.architecture)
    _apply(applied)
    kept = [f"{DATASET_NAMES[current.dataset]}" if current.dataset != preset.dataset else "",
            f"the {NETWORK_NAMES[current.architecture]}" if current.architecture != preset.architecture else ""]
    kept = " and ".join(k for k in kept if k)
    st.session_state["preset_notice"] = f"Preset {name}: {applied.describe()}" + (
        f" (keeping {kept})." if kept else ".")


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
    a.info(f"Your teacher suggests: {suggested[0].describe()}.", icon=":material/school:")
    if b.button("Use them", on_click=_apply, args=(suggested[0],), width="stretch"):
        st.rerun()  # the whole page: the settings above are outside this fragment


def controls(train_sizes: tuple[int, ...]) -> TrainConfig:
    """The widgets; returns the config they show and mirrors it into the URL and the workspace."""
    c1, c2 = st.columns(2)
    c1.slider("Epochs", 1, 50, **_knob("epochs"), help="Passes over the training images.")
    c2.select_slider("Batch size", BATCH_SIZES, **_knob("batch_size"),
                     help="Images per weight update. Smaller: more updates per epoch, noisier.")
    with st.expander("More settings"):
        a, b = st.columns(2)
        a.select_slider("Training examples", train_sizes, **_knob("train_size"),
                        format_func=lambda n: "all" if n == 0 else f"{n:,}",
                        help="Fewer examples make overfitting easy to see.")
        b.select_slider("Learning rate", LEARNING_RATES, **_knob("learning_rate"), format_func=lambda v: f"{v:g}")
        a.select_slider("Hidden units", HIDDEN_UNITS, **_knob("hidden_units"))
        b.selectbox("Optimizer", OPTIMIZERS, **_knob("optimizer", OPTIMIZERS))
        a.radio("Dataset", DATASETS, **_knob("dataset", DATASETS), horizontal=True,
                format_func=lambda d: DATASET_NAMES[d])
        b.radio("Network", NETWORKS, **_knob("architecture", NETWORKS), horizontal=True,
                format_func=lambda a: NETWORK_NAMES[a],
                help="The CNN looks at neighbouring pixels together, so it cares less about where and how big "
                     "a digit is drawn.")
        a.number_input("Seed", 0, 2**31 - 1, **_knob("seed"), help="Same seed, same settings: same run.")
        st.markdown("**Fight overfitting** (dense network)")
        c, d = st.columns(2)
        c.select_slider("Hidden layers", (1, 2, 3), **_knob("hidden_layers"),
                        help="The notebook has one; more layers of the same size can learn more, and memorise more.")
        d.select_slider("Dropout", DROPOUTS, **_knob("dropout"), format_func=lambda v: "off" if not v else f"{v:g}",
                        help="While training, switch off this share of the hidden units at random in every step, so "
                             "no unit can rely on another: harder to memorise. Never while predicting.")
        c.select_slider("L2 weight penalty", L2S, **_knob("l2"), format_func=lambda v: "off" if not v else f"{v:g}",
                        help="Adds the sum of squared weights (times this) to the loss: large weights that fit "
                             "single examples cost more.")
        d.slider("Early stopping: patience", 0, 20, **_knob("patience"),
                 help="Stop once the test loss has not improved for this many epochs, and keep the weights of "
                      "the best epoch. 0 = off.")
    cols = st.columns(len(PRESETS))
    for col, name in zip(cols, PRESETS):
        col.button(f"Preset: {name}", on_click=_preset, args=(name,), width="stretch")
    notice = st.session_state.pop("preset_notice", None)
    if notice:
        st.info(notice, icon=":material/tune:")
    cfg = st.session_state["config"]
    if st.session_state.get("saved_settings") != cfg:  # only what this session changed: a tab being closed or
        with common.plain_errors():  # replaced by a settings link, rerunning once more, must not write its old ones
            common.workspace().save_settings(cfg)
        st.session_state["saved_settings"] = cfg
    if {k: v for k, v in st.query_params.to_dict().items() if k not in common.APP_PARAMS} != cfg.to_query():
        st.query_params.from_dict(cfg.to_query())
    return cfg


def _train_sizes(n_train: int) -> tuple[int, ...]:
    return tuple(n for n in TRAIN_SIZES if n < n_train) + (0,)


# ---------------------------------------------------------------- the workspace's training

def start_training() -> None:
    """Train button: runs before the page redraws, so the buttons show the new state at once. It trains the
    settings as they are now, not as they were when the button was drawn (Use them, then Train at once)."""
    cfg = st.session_state["config"] = _settings_now()
    try:
        common.workspace().train(cfg)
    except MnistLiveError as exc:  # another tab started one meanwhile, a full disk, a busy database: said
        st.session_state["train_refused"] = str(exc)


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
    try:
        ws.choose_model(st.session_state[key])
    except MnistLiveError as exc:
        st.session_state["train_refused"] = str(exc)


def _picker_key(run_id: str) -> str:
    return f"model_choice_{run_id}"


def _picker_shows(ws, runs) -> str:
    """The run the model picker starts at: the model in use, else (a model shared by someone else) the latest."""
    current = ws.model_run()
    ids = [r.run_id for r in runs]
    return current.run_id if current and current.run_id in ids else ids[-1]


def train_again(job_id: str) -> None:
    try:
        common.workspace().train_again(job_id)
    except MnistLiveError as exc:
        st.session_state["train_refused"] = str(exc)


def interrupted_panel(ws, busy: bool) -> None:
    """Trainings that a server restart cut off, each with Train again (off while one runs)."""
    for record in ws.interrupted():
        with st.container(border=True):
            st.warning(f"**{record.label}** was interrupted: {record.message}. ({record.config.describe()})",
                       icon=":material/restart_alt:")
            a, b, _ = st.columns([1, 1, 3])
            a.button("Train again", key=f"again_{record.job_id}", on_click=train_again, args=(record.job_id,),
                     type="primary", disabled=busy, width="stretch")
            b.button("Dismiss", key=f"dismiss_{record.job_id}", on_click=ws.dismiss, args=(record.job_id,),
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
    st.info(f"**{record.label}** is training for this workspace on another of this school's servers (another tab "
            "or device). Its run lands here when it ends; stop it where it runs.", icon=":material/dns:")


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
        st.caption(f"{len(active) - 1} more of your runs wait their turn: {', '.join(j.label for j in active[1:])}")
    ex = ws.lab.executor
    if snap.state == JobState.QUEUED and snap.queue_position is None:
        st.info(f"{job.label}: waiting for your previous run to end.")
    elif snap.state == JobState.QUEUED and ex.busy() < ex.slots:
        st.info(f"{job.label}: starting...")
    elif snap.state == JobState.QUEUED:
        st.info(f"Other trainings hold the server's training slots. {job.label} is number {snap.queue_position} "
                "in the queue; it starts by itself.")
    elif snap.state == JobState.RUNNING:
        left = f", about {snap.eta_s:.0f} s left" if snap.eta_s is not None else ""
        st.progress(snap.fraction, text=f"{job.label}: {snap.message}{left}")
    elif snap.state == JobState.FAILED:
        st.error(f"{job.label} failed: {snap.message}")
    if not active:
        return
    frame = common.history_frame(snap.epochs)
    if snap.epochs:
        a, b = st.columns(2)
        for where, metric in ((a, "loss"), (b, "accuracy")):
            where.altair_chart(common.curve_chart(frame, metric, job.config.epochs), width="stretch")
            common.numbers(where, frame[frame["metric"] == metric].drop(columns="metric"),
                           f"{metric.capitalize()} per epoch")
    if snap.batch_losses:
        st.altair_chart(running_loss_chart(snap.batch_losses), width="stretch")
        common.numbers(st, pd.DataFrame(snap.batch_losses, columns=["epoch", "loss"]), "Running loss")
    if snap.first_layer is not None and snap.first_layer_start is not None:
        change = (snap.first_layer["weights"].astype("float32") - snap.first_layer_start.astype("float32")).T
        st.image(weight_sheet(change, range(change.shape[1]), columns=16),
                 caption=f"Epoch {snap.first_layer['epoch']}: how the 16 hidden units that moved most have changed "
                         "since the start (red: this pixel now counts for the unit, blue: against it)",
                 alt=f"Epoch {snap.first_layer['epoch']}: 16 tiles of 28 by 28 pixels, one per hidden unit, red where "
                     "a pixel now counts for the unit, blue where it counts against it")


def running_loss_chart(batch_losses) -> alt.Chart:
    """The training loss within epochs; a short axis title and a y range fitted to the data, so the plot keeps
    its height (a long rotated title used to squeeze it flat)."""
    points = pd.DataFrame(batch_losses, columns=["epoch", "loss"])
    low, high = float(points["loss"].min()), float(points["loss"].max())
    pad = max((high - low) * 0.08, 1e-3)
    return alt.Chart(points).mark_line().encode(
        x=alt.X("epoch:Q", title="epochs done", axis=alt.Axis(tickCount=8)),
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(domain=[max(0.0, low - pad), high + pad]))).properties(
        title="Training loss within epochs (running mean)", height=220)


def outcome(run, previous=None) -> None:
    """The latest run's figures, its curves, the reading of them, and what changed since the run before."""
    last = run.final
    if last is None:
        st.warning(f"{run.name} stopped before finishing its first epoch, so it has no test figures yet.")
        return
    st.subheader(f"{run.name}: {run.status}" + (f" ({run.early_stop_note})" if run.early_stop_note else ""))
    c = st.columns(5)
    c[0].metric("Train accuracy", f"{last.accuracy:.2%}")
    c[1].metric("Test accuracy", f"{last.test_accuracy:.2%}")
    c[2].metric("Gap (points)", f"{(last.accuracy - last.test_accuracy) * 100:.1f}",
                help="Train accuracy minus test accuracy, in percentage points.")
    c[3].metric("Train loss", f"{last.loss:.4f}")
    c[4].metric("Test loss", f"{last.test_loss:.4f}")
    READING_BOX[reading_grade(run.epochs, run.best_epoch)](read_curves(run.epochs, run.best_epoch,
                                                                                  dropout=run.config.dropout))
    change = compare_runs(previous, run)
    if change:
        st.info(change, icon=":material/compare_arrows:")
    a, b = st.columns(2)
    for where, metric in ((a, "loss"), (b, "accuracy")):
        common.chart(where, ("outcome", run.run_id, metric), lambda metric=metric: common.curve_chart(
            common.history_frame(run.epochs), metric, run.config.epochs, best_epoch=run.best_epoch))


def show_code(cfg: TrainConfig, chosen) -> None:
    """The Keras code of the current settings, as the notebook writes it, and the same as a notebook."""
    st.code(code_text(cfg, offline=False), language="python", line_numbers=False)
    st.caption("The notebook adds one marked cell that reads the data from MNIST_PATH when it is set, for "
               "computers without internet.")
    with_figures = chosen if chosen is not None and chosen.config == cfg else None
    st.download_button("Download notebook", lambda: notebook_bytes(cfg, with_figures), "mnist-live.ipynb",
                       mime="application/x-ipynb+json",
                       help="A Jupyter notebook of this code" + (f", with {with_figures.name}'s figures"
                                                                  if with_figures else "") + ".")


def runs_table(ws) -> None:
    """Every run of the workspace: table, overlay, model choice, pin/share/delete, downloads."""
    runs = ws.runs()
    if not runs:
        return
    st.subheader("Runs")
    table = pd.DataFrame([{**r.summary(), "pinned": r.pinned, "shared": r.published} for r in runs])
    table[["train acc", "test acc"]] = (table[["train acc", "test acc"]] * 100).round(1)
    st.dataframe(table, hide_index=True, width="stretch", column_config=RUN_COLUMNS)
    limit = ws.store.limits.runs_per_workspace
    st.caption(f"This workspace keeps its latest {limit} runs ({len(runs)} so far); pinned runs are never removed.")
    names = [r.name for r in runs]
    picked = st.multiselect("Overlay the curves of", names, default=names[-2:], key=f"overlay_{len(names)}")
    if picked:
        shown = [r for r in runs if r.name in picked]
        a, b = st.columns(2)
        for where, metric in ((a, "loss"), (b, "accuracy")):
            common.chart(where, ("overlay", metric, tuple((r.run_id, r.name) for r in shown)),
                         lambda metric=metric: common.curve_chart(pd.concat(
                             [common.history_frame(r.epochs, r.name) for r in shown]), metric, by_run=True))
    by_id = {r.run_id: r for r in runs}
    ids = list(by_id)
    current_id = _picker_shows(ws, runs)
    # A key per model in use: when it changes (a pick, a new run, another tab), a fresh picker shows it, and a value
    # the browser still holds for the old picker (a rerun fired before it caught up) cannot write the old one back.
    key = _picker_key(current_id)
    chosen = st.selectbox("Model for the Draw and Explore pages", ids, index=ids.index(current_id), key=key,
                          format_func=lambda i: by_id[i].label, on_change=_choose_model, args=(ws, key))
    run = by_id[chosen]
    a, b, f, c, d, e = st.columns(6)
    stem = run.file_stem()
    a.download_button("Model (.keras)", lambda: run.keras_bytes, f"{stem}.keras",
                      mime="application/octet-stream", width="stretch", help="Download the trained model.")
    b.download_button("Metrics (CSV)", run.metrics_csv(), f"{stem}.csv",
                      mime="text/csv", width="stretch", help="Download the figures of every epoch.")
    f.download_button("Notebook", lambda: notebook_bytes(run.config, run), f"{stem}.ipynb",
                      mime="application/x-ipynb+json", width="stretch",
                      help="The Keras code of this run's settings, with its figures, as a Jupyter notebook.")
    with common.plain_errors():
        if c.button("Unpin" if run.pinned else "Pin (keep)", width="stretch"):
            ws.pin(run.run_id, not run.pinned)
            st.rerun()
        if d.button("Unshare" if run.published else "Share", width="stretch",
                    help="Everyone on this server can then pick this model on the Draw page (its settings and "
                         "weights, never your drawings)."):
            ws.publish(run.run_id, not run.published)
            st.toast(f"{run.name} is shared with everyone on this server" if not run.published else
                     f"{run.name} is no longer shared")
            st.rerun()
        with e.popover("Delete run", width="stretch"):
            st.caption(f"{run.name} and its model go for good (download it first to keep it).")
            if st.button(f"Yes, delete {run.name}", type="primary"):
                ws.delete_run(run.run_id)
                st.rerun()


common.through_the_app()
st.title("Train the network")
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
b1.button("Train", type="primary", on_click=start_training, disabled=busy or elsewhere or ds is None,
          width="stretch")
b2.button("Stop training", on_click=stop_training, disabled=not busy, width="stretch")
refused = st.session_state.pop("train_refused", None)
if refused:
    st.warning(refused)
elif busy:
    st.caption("One training at a time per workspace: stop this one to start another.")
with st.expander("Show the code"):
    show_code(cfg, workspace.model_run())
waiting = busy and jobs[0].state == JobState.QUEUED
if busy:
    common.follow_training_here()
common.fragment(live_panel, run_every=(QUEUED_POLL_S if waiting else POLL_S) if busy else None)(waiting)
runs = workspace.runs()
if runs and not busy:
    outcome(runs[-1], runs[-2] if len(runs) > 1 else None)
runs_table(workspace)
