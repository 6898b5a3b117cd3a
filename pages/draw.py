"""Draw: draw a digit (or upload a photo of one) and see what the network says, instantly."""
import time

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from mnist_model.config import TrainConfig
from mnist_model.data import class_names
from mnist_model.errors import MnistLiveError
from mnist_model.preprocess import canvas_to_mnist, decode_upload
from pages import common

CANVAS_PX = 280  # 10x MNIST's 28 px; fits a phone screen
UNSURE = 0.6  # below this top probability the page says the network is unsure
QUICK_TRAIN = TrainConfig(epochs=1)  # the notebook network, one epoch: a few seconds


def choose_model():
    """The session's chosen or latest run; else a saved one; else offer Quick train. None if no model yet."""
    run = common.model_run()
    if run is not None:
        return run
    saved, problems = common.saved_runs()
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
        common.collect_finished_jobs()
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
        st.rerun(scope="fragment")
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
    predict = common.predictor(run)
    t0 = time.perf_counter()
    try:
        image = canvas_to_mnist(rgba)
    except MnistLiveError as exc:
        st.error(f"That drawing can't be read: {exc}")
        return
    if image is None:
        st.info("Draw a digit on the black square, as big as you like and anywhere on it.")
        return
    probs = predict(image[None])[0]
    elapsed_ms = (time.perf_counter() - t0) * 1000
    st.session_state["last_drawing"] = image
    order = np.argsort(-probs)
    st.session_state["last_prediction"] = int(order[0])
    names = class_names(run.config.dataset)
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
    other_architecture_prediction(run, image)
    st.caption(f"Preprocessing + prediction: {elapsed_ms:.2f} ms")


def other_architecture_prediction(run, image) -> None:
    """When the session has both a dense network and a CNN, show the other one's answer beside."""
    other = next((r for r in reversed(common.runs()) if r.architecture != run.architecture), None)
    if other is None:
        return
    probs = common.predictor(other)(image[None])[0]
    names = class_names(other.config.dataset)
    kind = {"dense": "Dense network", "cnn": "CNN"}
    st.metric(f"{kind[other.architecture]} says", names[int(probs.argmax())], f"{probs.max():.0%} sure",
              delta_color="off", help=other.label)
    st.caption("The CNN slides small pattern detectors over the whole image, so a stroke means the same "
               "wherever it lands; the dense network ties each weight to one pixel position.")


def keep_drawing_controls() -> None:
    """Label the current drawing with its true digit and keep it (for fine-tuning)."""
    from mnist_model.handwriting import MAX_DRAWINGS
    mine = st.session_state.setdefault("my_drawings", [])  # [(image (28, 28) float32, label)]
    image = st.session_state.get("last_drawing")
    st.markdown("**Teach it your handwriting**")
    a, b = st.columns([2, 1], vertical_alignment="bottom")
    guess = st.session_state.get("last_prediction", 0)
    label = a.selectbox("This drawing is a", range(10), index=guess,
                        help="Starts at the network's guess: change it when the guess is wrong.")
    if b.button("Keep it", disabled=image is None or len(mine) >= MAX_DRAWINGS, width="stretch"):
        mine.append((image, int(label)))
        st.toast(f"Kept as a {label}: {len(mine)} drawings so far")
        st.rerun()  # the whole page: the kept drawings are shown outside this fragment


def teach_panel(run) -> None:
    """The kept drawings: delete, download, load, and fine-tune the model on them."""
    from mnist_model.handwriting import MAX_DRAWINGS, accuracy, drawings_from_npz, drawings_to_npz, fine_tune_task
    mine = st.session_state.setdefault("my_drawings", [])  # [(image (28, 28) float32, label)]
    if mine:
        st.subheader("Your drawings")
        images = np.stack([m[0] for m in mine])
        labels = np.array([m[1] for m in mine], np.uint8)
        st.image(common.digit_mosaic(images, [str(x) for x in labels], columns=12, scale=2),
                 caption=f"Your {len(mine)} drawings and their labels")
        drop = st.multiselect("Delete", range(len(mine)), format_func=lambda i: f"#{i + 1} ({mine[i][1]})")
        c1, c2, c3 = st.columns(3)
        if c1.button("Delete selected", disabled=not drop, width="stretch"):
            st.session_state["my_drawings"] = [m for i, m in enumerate(mine) if i not in drop]
            st.rerun()
        c2.download_button("Download (.npz)", drawings_to_npz(images, labels), "my-drawings.npz",
                           width="stretch")
        busy = bool(common.active_jobs())
        if c3.button("Fine-tune on my drawings", type="primary", disabled=busy, width="stretch"):
            before = accuracy(common.predictor(run), images, labels)
            job = common.start_task(fine_tune_task(run, images, labels), label=f"{run.name} + my drawings")
            st.session_state["fine_tune"] = {"job": job.id, "base": run.run_id, "before": before,
                                             "test_before": run.test_accuracy, "n": len(mine)}
            st.rerun()
        fine_tune_report(images, labels)
    upload = st.file_uploader("Load drawings saved earlier (.npz)", type=["npz"], key="drawings_upload")
    if upload is not None and st.session_state.get("drawings_loaded") != upload.file_id:
        try:
            imgs, labs = drawings_from_npz(upload.getvalue())
            mine.extend(zip(list(imgs[: MAX_DRAWINGS - len(mine)]), [int(x) for x in labs]))
            st.session_state["drawings_loaded"] = upload.file_id
            st.rerun()
        except MnistLiveError as exc:
            st.error(f"That file can't be used: {exc}")


def fine_tune_report(images, labels) -> None:
    """Before/after accuracy on the user's drawings and on the test set, once fine-tuning has run."""
    from mnist_model.handwriting import accuracy
    info = st.session_state.get("fine_tune")
    if not info:
        return
    job = next((j for j in common.jobs() if j.id == info["job"]), None)
    if job is not None and not job.state.done:
        st.fragment(_training_progress, run_every=0.5)()
        return
    tuned = next((r for r in common.runs() if job is not None and r is job.snapshot().result), None)
    if tuned is None or tuned.final is None:
        return
    after = accuracy(common.predictor(tuned), images[: info["n"]], labels[: info["n"]])
    c = st.columns(2)
    c[0].metric("Right on your drawings", f"{after:.0%}", f"{(after - info['before']) * 100:+.0f} points "
                f"(was {info['before']:.0%})")
    c[1].metric("Test accuracy", f"{tuned.test_accuracy:.1%}", f"{(tuned.test_accuracy - info['test_before']) * 100:+.1f}"
                f" points (was {info['test_before']:.1%})")
    st.caption("If test accuracy dropped, the network has started to forget MNIST while learning your style.")


@st.fragment
def drawing_panel(run) -> None:
    """Canvas, upload and prediction: a stroke reruns only this part of the page."""
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
        if run.config.dataset == "mnist":
            keep_drawing_controls()


st.title("Draw a digit")
run = choose_model()
if run is not None:
    st.caption(f"Model: {run.label}")
    drawing_panel(run)
    if run.config.dataset == "mnist":
        teach_panel(run)
