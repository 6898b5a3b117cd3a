"""Draw: draw a digit (or upload a photo of one) and see what the network says, instantly."""
import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from mnist_model.config import TrainConfig
from mnist_model.errors import MnistLiveError
from mnist_model.preprocess import canvas_to_mnist, decode_upload
from mnist_model.runs import list_runs
from pages import common

CANVAS_PX = 280  # 10x MNIST's 28 px; fits a phone screen
UNSURE = 0.6  # below this top probability the page says the network is unsure
QUICK_TRAIN = TrainConfig(epochs=1)  # the notebook network, one epoch: a few seconds


@st.cache_resource(ttl=15, show_spinner=False)
def saved_runs():
    """Runs saved on the server (shared, read-only), re-read at most every 15 s."""
    return list_runs()


def choose_model():
    """The session's chosen or latest run; else a saved one; else offer Quick train. None if no model yet."""
    run = common.model_run()
    if run is not None:
        return run
    saved, problems = saved_runs()
    for problem in problems:
        st.caption(f"Skipped a damaged saved run: {problem}")
    if saved:
        by_id = {r.run_id: r for r in saved}
        pick = st.selectbox("Use a model saved on this server", [None, *by_id],
                            format_func=lambda i: "choose..." if i is None else by_id[i].label)
        if pick is not None:
            st.session_state["saved_model_run"] = by_id[pick]
            st.session_state["model_run_id"] = pick
            return by_id[pick]
    quick_train_panel()
    return None


def quick_train_panel() -> None:
    job = common.job()
    if job is None or job.state.done:
        st.info("There is no trained model yet. Quick train teaches the notebook's network for one epoch "
                "(a few seconds), or train your own on the Train page.")
        if st.button("Quick train", type="primary"):
            common.start_job(QUICK_TRAIN, label="Quick train")
            st.rerun()
        if job is not None and job.state.value == "failed":
            st.error(f"The last training failed: {job.snapshot().message}")
        return
    st.fragment(_training_progress, run_every=0.5)()


def _training_progress() -> None:
    job = common.job()
    snap = job.snapshot()
    if snap.state.done:
        common.collect_finished_job()
        st.rerun()
    where = f" (number {snap.queue_position} in the queue)" if snap.queue_position else ""
    st.progress(snap.fraction, text=f"{job.label}: {snap.message}{where}")


def canvas_image():
    """The canvas and its controls; returns the RGBA drawing (H, W, 4) uint8 or None."""
    from streamlit_drawable_canvas import st_canvas
    n = st.session_state.setdefault("canvas_n", 0)
    pen = st.slider("Pen width", 8, 40, 20, key="pen_width")
    result = st_canvas(stroke_width=pen, stroke_color="#FFFFFF", background_color="#000000",
                       height=CANVAS_PX, width=CANVAS_PX, drawing_mode="freedraw", update_streamlit=True,
                       return_image_data=True, key=f"canvas_{n}")
    if st.button("Clear", key="clear_canvas"):
        st.session_state["canvas_n"] = n + 1  # a new key mounts an empty canvas
        st.rerun()
    return result.image_data if result is not None else None


def upload_image():
    """An uploaded photo or scan, decoded to RGBA; None (with a message) when absent or unusable."""
    file = st.file_uploader("Or upload a photo of a digit (PNG or JPEG)", type=["png", "jpg", "jpeg"])
    if file is None:
        return None
    try:
        return decode_upload(file.getvalue())
    except MnistLiveError as exc:
        st.error(f"That file can't be used: {exc}")
        return None


def show_prediction(run, rgba) -> None:
    """Prediction metric, probabilities chart and the 28x28 image the network sees."""
    try:
        image = canvas_to_mnist(rgba)
    except MnistLiveError as exc:
        st.error(f"That drawing can't be read: {exc}")
        return
    if image is None:
        st.info("Draw a digit on the black square, as big as you like and anywhere on it.")
        return
    probs = common.predictor(run)(image[None])[0]
    st.session_state["last_drawing"] = image
    order = np.argsort(-probs)
    names = [n for n in run_class_names(run)]
    top, second = int(order[0]), int(order[1])
    a, b = st.columns([1, 1])
    a.metric("Prediction", names[top], f"{probs[top]:.0%} sure", delta_color="off")
    b.image(common.pixels_image(image, 5, grid=True), caption="What the network sees (28x28)")
    if probs[top] < UNSURE:
        st.warning(f"The network is unsure: {names[top]} ({probs[top]:.0%}) or {names[second]} "
                   f"({probs[second]:.0%}).")
    frame = pd.DataFrame({"label": names, "probability": probs, "winner": np.arange(10) == top})
    st.altair_chart(alt.Chart(frame).mark_bar().encode(
        x=alt.X("label:N", sort=None, title=None), y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.condition("datum.winner", alt.value("#e4572e"), alt.value("#9aa5b1")),
        tooltip=["label", alt.Tooltip("probability:Q", format=".1%")]).properties(height=200), width="stretch")


def run_class_names(run):
    from mnist_model.data import FASHION_CLASSES, MNIST_CLASSES
    return FASHION_CLASSES if run.config.dataset == "fashion" else MNIST_CLASSES


st.title("Draw a digit")
run = choose_model()
if run is not None:
    st.caption(f"Model: {run.label}")
    left, right = st.columns([1, 1])
    with left:
        drawing = canvas_image()
        uploaded = upload_image()
    with right:
        rgba = uploaded if uploaded is not None else drawing
        if rgba is None:
            st.info("Draw a digit on the black square, as big as you like and anywhere on it.")
        else:
            show_prediction(run, rgba)
