"""What every page shares: the cached dataset, this session's runs and job, the sidebar, and chart helpers."""
from __future__ import annotations

import gc

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from mnist_model.config import TrainConfig, from_query
from mnist_model.data import Dataset, load_dataset
from mnist_model.errors import MnistLiveError
from mnist_model.jobs import TrainingJob, TrainTask
from mnist_model.runs import Run

CONFIG_KEY = "config"  # this session's TrainConfig (what the Train page's widgets show)
MAX_RUNS = 30  # runs kept per session (about 3.5 MB each); the oldest go first


@st.cache_resource(show_spinner="Loading the dataset (once per server)...")
def dataset(name: str = "mnist") -> Dataset:
    """The read-only dataset, shared by every session of this server."""
    return load_dataset(name)


@st.cache_resource
def executor():
    """The server-wide executor, its worker processes warmed in the background."""
    from mnist_model.executors import default_executor
    ex = default_executor()
    ex.warm()
    return ex


def remember_link_settings() -> None:
    """Keep the query string the session was opened with: page switches drop it from the URL."""
    if "link_settings" not in st.session_state:
        st.session_state["link_settings"] = st.query_params.to_dict()


@st.cache_resource(ttl=15, show_spinner=False)
def saved_runs():
    """Runs saved on the server (shared, read-only) and messages for damaged ones; re-read every 15 s."""
    from mnist_model.runs import list_runs
    return list_runs()


def save_run(run: Run):
    """Save a run in the server's runs folder; every session sees it at once."""
    from mnist_model.runs import save_run as save
    path = save(run)
    saved_runs.clear()
    return path


def config() -> TrainConfig:
    """This session's settings: the Train page's, else those of the link it was opened with."""
    if CONFIG_KEY not in st.session_state:
        return from_query(st.session_state.get("link_settings", {}))[0]
    return st.session_state[CONFIG_KEY]


def current_dataset() -> Dataset | None:
    """The dataset the session's settings name, or None (with a message shown) when it cannot load."""
    return load_or_explain(config().dataset)


def load_or_explain(name: str) -> Dataset | None:
    """The named dataset, or None with the reason shown on the page."""
    try:
        return dataset(name)
    except MnistLiveError as exc:
        st.error(f"The {name} dataset is not available: {exc}")
        return None


# ---------------------------------------------------------------- runs and jobs of this session

def runs() -> list[Run]:
    """This session's runs, oldest first, including any job's that has just ended."""
    collect_finished_jobs()
    return st.session_state.setdefault("runs", [])


def jobs() -> list[TrainingJob]:
    """This session's jobs, oldest first (finished ones are dropped once collected)."""
    return st.session_state.setdefault("jobs", [])


def job() -> TrainingJob | None:
    """The session's latest job."""
    return jobs()[-1] if jobs() else None


def active_jobs() -> list[TrainingJob]:
    return [j for j in jobs() if not j.state.done]


def start_job(cfg: TrainConfig, label: str | None = None) -> TrainingJob:
    """Start a background training of cfg for this session; its result joins this session's runs."""
    return start_task(TrainTask(cfg), label)


def start_task(task: TrainTask, label: str | None = None) -> TrainingJob:
    """Start any training task (a fine-tuning, say) for this session."""
    n = st.session_state.get("run_counter", 0) + 1
    st.session_state["run_counter"] = n
    new = TrainingJob(task, label=label or f"Run {n}", executor=executor()).start()
    jobs().append(new)
    return new


def collect_finished_jobs() -> list[Run]:
    """Move finished or stopped jobs' runs into this session's runs (once each); return the new runs."""
    collected = st.session_state.setdefault("collected", set())
    new = []
    for j in jobs():
        if j.state.done and j.id not in collected:
            collected.add(j.id)
            result = j.snapshot().result
            if result is not None:
                kept = st.session_state.setdefault("runs", [])
                kept.append(result)
                del kept[:-MAX_RUNS]
                new.append(result)
    if new:
        st.session_state["model_run_id"] = new[-1].run_id
    return new


def model_run() -> Run | None:
    """The run whose model the Draw and Explore pages use: the chosen one, else the latest."""
    chosen = st.session_state.get("model_run_id")
    for run in runs():
        if run.run_id == chosen:
            return run
    saved = st.session_state.get("saved_model_run")
    if saved is not None and saved.run_id == chosen:
        return saved
    return runs()[-1] if runs() else None


def predictor(run: Run):
    """One Predictor per run, kept for the session (building it copies the weights once)."""
    from mnist_model.predict import Predictor
    cache = st.session_state.setdefault("predictors", {})
    if run.run_id not in cache:
        cache[run.run_id] = Predictor.for_run(run)
    return cache[run.run_id]


def sidebar() -> None:
    """Which data and which model are in use, and whether a training is running."""
    with st.sidebar:
        cfg = config()
        try:
            st.caption(f"**Data:** {dataset(cfg.dataset).title}")
        except MnistLiveError:
            st.caption(f"**Data:** {cfg.dataset} (not available)")
        run = model_run()
        st.caption(f"**Model:** {run.label}" if run else "**Model:** none yet - train one")
        for current in active_jobs():
            snap = current.snapshot()
            where = f" (queue position {snap.queue_position})" if snap.queue_position else ""
            st.caption(f"**Training:** {current.label} {snap.state.value}{where}")


# ---------------------------------------------------------------- charts

def history_frame(epochs, run_name: str | None = None) -> pd.DataFrame:
    """Long-format per-epoch metrics: epoch, data (train/test), metric (loss/accuracy), value[, run]."""
    rows = []
    for m in epochs:
        for data, loss, acc in (("train", m.loss, m.accuracy), ("test", m.test_loss, m.test_accuracy)):
            rows.append({"epoch": m.epoch, "data": data, "metric": "loss", "value": loss})
            rows.append({"epoch": m.epoch, "data": data, "metric": "accuracy", "value": acc})
    frame = pd.DataFrame(rows, columns=["epoch", "data", "metric", "value"])
    if run_name is not None:
        frame["run"] = run_name
    return frame


def curve_chart(frame: pd.DataFrame, metric: str, epochs: int | None = None, by_run: bool = False) -> alt.Chart:
    """Loss or accuracy per epoch, train and test as two labelled series (and runs as colours)."""
    data = frame[frame["metric"] == metric]
    x_scale = alt.Scale(domain=[1, max(epochs or 1, int(data["epoch"].max()) if len(data) else 1)])
    colour = "run:N" if by_run else alt.Color("data:N", title="data", scale=alt.Scale(
        domain=["train", "test"], range=["#1f77b4", "#ff7f0e"]))
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", scale=x_scale, axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        color=colour, tooltip=["epoch", "data", alt.Tooltip("value:Q", format=".4f")] + (["run"] if by_run else []))
    if by_run:
        chart = chart.encode(strokeDash=alt.StrokeDash("data:N", title="data", sort=["train", "test"]))
    return chart.properties(title=f"{metric.capitalize()} per epoch", height=260)


def digit_mosaic(images: np.ndarray, labels: list[str], columns: int = 10, scale: int = 3) -> np.ndarray:
    """Images (n, 28, 28) in a grid, each with its label underneath: one RGB picture, one element on the page."""
    from PIL import Image, ImageDraw
    side, caption = 28 * scale, 14
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * (side + 4), rows * (side + caption + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * (side + 4), (i // columns) * (side + caption + 4)
        sheet.paste(Image.fromarray(pixels_image(img, scale)), (x, y))
        draw.text((x + 2, y + side + 1), str(label)[:14], fill="black")
    return np.asarray(sheet)


def pixels_image(img: np.ndarray, scale: int = 8, grid: bool = False) -> np.ndarray:
    """(28, 28) image (uint8 or [0, 1] float) enlarged with visible pixels: (28*scale, 28*scale) uint8."""
    a = np.asarray(img, np.float32)
    a = (a * 255 if a.max() <= 1.0 else a).clip(0, 255).astype(np.uint8)
    big = np.kron(a, np.ones((scale, scale), np.uint8))
    if grid:
        big[::scale, :] = np.maximum(big[::scale, :], 40)
        big[:, ::scale] = np.maximum(big[:, ::scale], 40)
    return big


def _freeze_import_time_objects() -> None:
    """Streamlit runs gc.collect(2) after every rerun and fragment tick (about 65 ms with these imports);
    freezing the long-lived objects made by the imports, once, takes them out of its reach."""
    try:
        import streamlit_drawable_canvas  # noqa: F401  (imported now so that its objects are frozen too)
    except Exception:  # It refuses to import outside `streamlit run` and AppTest; nothing to freeze then.
        pass
    gc.freeze()


_freeze_import_time_objects()
