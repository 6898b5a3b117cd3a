"""Explore: where the chosen model fails, what its neurons look for, and how overfitting depends on data."""
import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from mnist_model.insights import confident_mistakes, confusion_matrix, per_class_accuracy, sweep_plan
from mnist_model.pictures import digit_mosaic, diverging, pixels_image, weight_sheet
from pages import common

UNITS_SHOWN = 64  # hidden units in the weights grid


def test_probabilities(run, ds) -> np.ndarray:
    """(n_test, 10) probabilities of run's model on ds's test set (from training, else computed once)."""
    if run.test_probs is not None and len(run.test_probs) == len(ds.y_test):
        return run.test_probs
    return _computed_test_probabilities(run.run_id, ds.name, run, ds)


@st.cache_resource(max_entries=16, show_spinner="Running the test set through the model...")
def _computed_test_probabilities(run_id: str, dataset_name: str, _run, _ds) -> np.ndarray:
    """Read-only: a run's weights never change, so its test-set answers can be shared server-wide."""
    predict = common.predictor(_run)
    return np.concatenate([predict(_ds.x_test[i:i + 500] / 255.0) for i in range(0, len(_ds.x_test), 500)])


def mistakes(run, ds) -> None:
    probs = test_probabilities(run, ds)
    pred = probs.argmax(axis=1)
    matrix = confusion_matrix(ds.y_test, pred)
    names = list(ds.class_names)
    st.caption(f"{run.label}: {(pred == ds.y_test).mean():.2%} of {len(pred):,} test images right")
    cells = pd.DataFrame([{"true": names[t], "predicted": names[p], "count": int(matrix[t, p])}
                          for t in range(10) for p in range(10)])
    cell = alt.selection_point(fields=["true", "predicted"], name="cell", on="click", clear=False)
    base = alt.Chart(cells).encode(x=alt.X("predicted:N", sort=names, title="predicted"),
                                   y=alt.Y("true:N", sort=names, title="true label"))
    heat = base.mark_rect(cursor="pointer").encode(
        color=alt.Color("count:Q", scale=alt.Scale(type="symlog", scheme="blues")),
        stroke=alt.condition(cell, alt.value("#e4572e"), alt.value(None)), strokeWidth=alt.value(3),
        tooltip=["true", "predicted", "count"]).add_params(cell)
    text = base.mark_text(fontSize=11).encode(
        text="count:Q", color=alt.condition(alt.datum.count > matrix.max() / 3, alt.value("white"),
                                            alt.value("black")))
    left, right = st.columns([3, 2])
    clicked = left.altair_chart((heat + text).properties(title="Confusion matrix (test set): click a cell",
                                                          height=380), width="stretch", on_select="rerun",
                                key="confusion")
    acc = pd.DataFrame({"label": names, "accuracy": per_class_accuracy(matrix)})
    right.altair_chart(alt.Chart(acc).mark_bar().encode(
        x=alt.X("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y=alt.Y("label:N", sort=None), tooltip=["label", alt.Tooltip("accuracy:Q", format=".1%")]).properties(
        title="Accuracy per label", height=380), width="stretch")
    off = matrix - np.diag(np.diag(matrix))
    worst_t, worst_p = np.unravel_index(int(off.argmax()), off.shape)
    _follow_click(clicked, names, (int(worst_t), int(worst_p)))
    a, b = st.columns(2)
    t = a.selectbox("Show test images whose true label is", range(10), key="cell_true",
                    format_func=lambda i: names[i])
    p = b.selectbox("and that the network called", range(10), key="cell_predicted", format_func=lambda i: names[i])
    idx = np.flatnonzero((ds.y_test == t) & (pred == p))[:30]
    if len(idx):
        st.image(digit_mosaic(ds.x_test[idx], [f"{probs[i, p]:.0%}" for i in idx]),
                 caption=f"{matrix[t, p]} test images: true {names[t]}, predicted {names[p]} (with confidence)")
    else:
        st.caption("No test image falls in that cell.")
    st.subheader("The most confident mistakes")
    worst = confident_mistakes(probs, ds.y_test, k=20)
    st.image(digit_mosaic(ds.x_test[worst], [f"{names[ds.y_test[i]]}>{names[pred[i]]} {probs[i, pred[i]]:.0%}"
                                                    for i in worst]),
             caption="true > predicted, confidence: the network was sure, and wrong")


def _follow_click(clicked, names, worst: tuple[int, int]) -> None:
    """A click on a confusion cell sets the two dropdowns (which stay, for keyboards and as a fallback)."""
    s = st.session_state
    s.setdefault("cell_true", worst[0])
    s.setdefault("cell_predicted", worst[1])
    picked = (clicked.selection.get("cell") or [None])[0] if clicked is not None else None
    if picked and picked != s.get("cell_clicked"):
        s["cell_clicked"] = picked
        s["cell_true"], s["cell_predicted"] = names.index(picked["true"]), names.index(picked["predicted"])


def learned(ws, run, ds) -> None:
    if run.architecture != "dense":
        kernels = run.weights[0]  # (3, 3, 1, 32)
        st.markdown("The CNN's first layer: 32 small 3x3 pattern detectors slid over the whole image "
                    "(red: bright pixel wanted, blue: dark pixel wanted).")
        tiles = [np.pad(diverging(kernels[..., 0, k], 16), ((2, 2), (2, 2), (0, 0)), constant_values=255)
                 for k in range(kernels.shape[-1])]
        st.image(np.vstack([np.hstack(tiles[i:i + 16]) for i in range(0, 32, 16)]))
        return
    w1, w2 = run.weights[0], run.weights[2]
    st.markdown("Each hidden unit looks at the image through 784 weights, one per pixel: **red** pixels push it "
                "to fire, **blue** pixels hold it back. Together they form a template it matches.")
    order = st.radio("Which units", ["influential", "first"], horizontal=True,
                     format_func=lambda o: {"influential": "the most influential (largest votes for the digits)",
                                            "first": "in order"}[o])
    influence = np.linalg.norm(w2, axis=1)  # how strongly each unit's firing moves the ten outputs
    units = (np.argsort(-influence) if order == "influential" else np.arange(w1.shape[1]))[:UNITS_SHOWN]
    st.image(weight_sheet(w1, units), caption=f"{len(units)} of {w1.shape[1]} hidden units' weights")
    unit = st.number_input("Look at one unit", 0, w1.shape[1] - 1, int(units[0]))
    a, b = st.columns(2)
    a.image(diverging(w1[:, unit].reshape(28, 28), 8), caption=f"unit {unit}: its weights")
    votes = pd.DataFrame({"label": list(ds.class_names), "weight": w2[unit]})
    b.altair_chart(alt.Chart(votes).mark_bar().encode(
        x=alt.X("label:N", sort=None), y="weight:Q",
        color=alt.condition("datum.weight > 0", alt.value("#d62728"), alt.value("#1f77b4"))).properties(
        title=f"When unit {unit} fires, it votes for...", height=240), width="stretch")
    drawing = ws.last_drawing
    st.subheader("Your last drawing")
    if drawing is None:
        st.caption("Draw a digit on the Draw page to see which units it makes fire.")
        return
    act = common.predictor(run).hidden(drawing[None])[0]
    top = np.argsort(-act)[:8]
    c = st.columns([1, 4])
    c[0].image(pixels_image(drawing, 4), caption="what the network saw")
    c[1].image(weight_sheet(w1, top, columns=8),
               caption="The 8 units your drawing made fire most: " + ", ".join(f"#{u} ({act[u]:.1f})" for u in top))


def overfitting_lab(ws, ds) -> None:
    st.markdown("Train the same network on more and more examples and compare training and test accuracy "
                "at the end: with few examples the network memorises them, and the gap is wide.")
    base = common.config()
    plan = sweep_plan(base, len(ds.x_train))
    sizes = ", ".join("all" if not c.train_size else f"{c.train_size:,}" for c in plan)
    st.caption(f"Settings from the Train page ({base.epochs} epochs, batch {base.batch_size}); examples: {sizes}. "
               "The runs train one after the other, wait for the training slot like any other, and appear in the "
               "Train page's run table; the model you use on Draw and Explore stays the same.")
    busy = bool(ws.jobs())
    if st.button("Run the sweep", type="primary", disabled=busy):
        with common.plain_errors():
            ws.sweep(plan, [f"Sweep {'all' if not c.train_size else c.train_size}" for c in plan])
            st.rerun()
    if busy:
        st.fragment(_sweep_progress, run_every=0.5)()
    sweep = [r for r in ws.runs() if r.name.startswith("Sweep") and r.final is not None]
    if sweep:
        rows = []
        for r in sweep:
            n = r.config.train_size or len(ds.x_train)
            rows += [{"training examples": n, "data": "train", "accuracy": r.train_accuracy, "run": r.name},
                     {"training examples": n, "data": "test", "accuracy": r.test_accuracy, "run": r.name}]
        st.altair_chart(alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
            x=alt.X("training examples:Q", scale=alt.Scale(type="log")),
            y=alt.Y("accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="%")),
            color=alt.Color("data:N", scale=alt.Scale(domain=["train", "test"], range=["#1f77b4", "#ff7f0e"])),
            tooltip=["run", "data", alt.Tooltip("accuracy:Q", format=".1%")]).properties(
            title="Final accuracy against the number of training examples", height=320), width="stretch")


def _sweep_progress() -> None:
    jobs = common.workspace().jobs()
    if not jobs:
        st.rerun()
    for j in jobs:
        snap = j.snapshot()
        st.progress(snap.fraction, text=f"{j.label}: {snap.message}")


st.title("Explore")
workspace = common.workspace()
run = workspace.model_run()
ds = common.load_or_explain(run.config.dataset if run else common.config().dataset)
if ds is not None:
    tab_mistakes, tab_learned, tab_lab = st.tabs(["Mistakes", "What it learned", "Overfitting lab"])
    with tab_lab:
        overfitting_lab(workspace, ds)
    if run is None:
        for tab in (tab_mistakes, tab_learned):
            tab.info("Train a model first (Train page, or Quick train on the Draw page): its mistakes and what it "
                     "learned will show here.")
    else:
        with tab_mistakes:
            mistakes(run, ds)
        with tab_learned:
            learned(workspace, run, ds)
