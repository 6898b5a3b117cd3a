"""Explore: where the chosen model fails, what its neurons look for, and how overfitting depends on data."""
from dataclasses import replace

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from mnist_model import palette
from mnist_model.i18n import N_, _, ngettext, number, percent, short
from mnist_model.insights import (SWEEPS, confident_mistakes, confusion_matrix, per_class_accuracy, sweep_plan,
                                  sweep_value)
from mnist_model.pictures import digit_mosaic, diverging, pixels_image, weight_sheet
from pages import common

UNITS_SHOWN = 64  # hidden units in the weights grid
LAB_NETWORKS = {"dense": N_("dense network (the notebook's)"), "cnn": N_("small CNN")}  # translated where shown
LAB_DATA = {"mnist": N_("MNIST digits"), "fashion": "Fashion-MNIST"}
CNN_KNOBS = ("train_size", "epochs")  # the knobs the small CNN listens to
VOTE_IMAGES = 500  # test images on which a deeper network's unit votes are measured
PLAY_S = 0.6  # seconds per epoch when Watch it learn plays


def mistakes(run, ds) -> None:
    probs = common.test_probabilities(run, ds)
    pred = probs.argmax(axis=1)
    matrix = confusion_matrix(ds.y_test, pred)
    names = list(ds.class_names)
    st.caption(_("{model}: {accuracy} of {n} test images right").format(
        model=run.label, accuracy=percent((pred == ds.y_test).mean(), 2), n=number(len(pred))))
    cells = pd.DataFrame([{"true": names[t], "predicted": names[p], "count": int(matrix[t, p])}
                          for t in range(10) for p in range(10)])
    off = matrix - np.diag(np.diag(matrix))
    worst_t, worst_p = np.unravel_index(int(off.argmax()), off.shape)
    chart_key = f"confusion_{st.session_state.setdefault('confusion_chart', 0)}"
    _follow_click(st.session_state.get(chart_key), names, (int(worst_t), int(worst_p)))
    shown = (alt.datum.true == names[st.session_state[common.in_language("cell_true")]]) & (
        alt.datum.predicted == names[st.session_state[common.in_language("cell_predicted")]])
    cell = alt.selection_point(fields=["true", "predicted"], name="cell", on="click", clear=False)
    base = alt.Chart(cells).encode(x=alt.X("predicted:N", sort=names, title=_("predicted")),
                                   y=alt.Y("true:N", sort=names, title=_("true label")))
    heat = base.mark_rect(cursor="pointer").encode(
        color=alt.Color("count:Q", title=_("test images"), scale=alt.Scale(type="symlog", scheme="blues")),
        stroke=alt.condition(shown, alt.value(palette.WINNER), alt.value(None)), strokeWidth=alt.value(3),
        tooltip=[alt.Tooltip("true:N", title=_("true label")), alt.Tooltip("predicted:N", title=_("predicted")),
                 alt.Tooltip("count:Q", title=_("test images"))]).add_params(cell)
    text = base.mark_text(fontSize=11).encode(
        text="count:Q", color=alt.condition(alt.datum.count > matrix.max() / 3, alt.value("white"),
                                            alt.value("black")))
    left, right = st.columns([3, 2])
    heading = common.titled(_("Confusion matrix (test set): click a cell"), 380)
    left.altair_chart((heat + text).properties(**heading), width="stretch", on_select="rerun",
                      key=chart_key)
    common.numbers(left, pd.DataFrame(matrix, index=pd.Index(names, name=_("true label")),
                                      columns=[_("called {label}").format(label=n) for n in names]).reset_index(),
                   _("Confusion matrix (test set)"))
    common.chart(right, ("accuracy per label", run.run_id), lambda: alt.Chart(pd.DataFrame(
        {"label": names, "accuracy": per_class_accuracy(matrix)})).mark_bar().encode(
        x=alt.X("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=_("accuracy")),
        y=alt.Y("label:N", sort=None, title=_("label")),
        tooltip=[alt.Tooltip("label:N", title=_("label")),
                 alt.Tooltip("accuracy:Q", title=_("accuracy"), format=".1%")]).properties(
        **common.titled(_("Accuracy per label"), 380)))
    a, b = st.columns(2)
    t = a.selectbox(_("Show test images whose true label is"), range(10), key=common.in_language("cell_true"),
                    format_func=lambda i: names[i], on_change=_forget_click)
    p = b.selectbox(_("and that the network called"), range(10), key=common.in_language("cell_predicted"),
                    format_func=lambda i: names[i], on_change=_forget_click)
    st.session_state["cell_true_kept"], st.session_state["cell_predicted_kept"] = t, p  # through a language switch
    idx = np.flatnonzero((ds.y_test == t) & (pred == p))[:30]
    if len(idx):
        confidences = ", ".join(percent(probs[i, p]) for i in idx)
        st.image(digit_mosaic(ds.x_test[idx], [percent(probs[i, p]) for i in idx]),
                 caption=ngettext("{n} test image: true {true}, predicted {predicted} (with confidence)",
                                  "{n} test images: true {true}, predicted {predicted} (with confidence)",
                                  int(matrix[t, p])).format(n=matrix[t, p], true=names[t], predicted=names[p]),
                 alt=_("{n} test images whose true label is {true} and that the network called {predicted}, with "
                       "its confidence: {confidences}").format(n=len(idx), true=names[t], predicted=names[p],
                                                                confidences=confidences))
    else:
        st.caption(_("No test image falls in that cell."))
    st.subheader(_("The most confident mistakes"))
    worst = confident_mistakes(probs, ds.y_test, k=20)
    st.image(digit_mosaic(ds.x_test[worst], [f"{names[ds.y_test[i]]}>{names[pred[i]]} {percent(probs[i, pred[i]])}"
                                                    for i in worst]),
             caption=_("true > predicted, confidence: the network was sure, and wrong"),
             alt=_("The network's 20 most confident mistakes: {list}").format(list="; ".join(
                 _("a {true} called {predicted} at {confidence}").format(
                     true=names[ds.y_test[i]], predicted=names[pred[i]], confidence=percent(probs[i, pred[i]]))
                 for i in worst)))


def _follow_click(clicked, names, worst: tuple[int, int]) -> None:
    """A click on a confusion cell sets the two dropdowns (which stay, for keyboards and as a fallback); read
    before the chart is drawn, so that the chart outlines the cell shown below."""
    s = st.session_state
    true_key, predicted_key = common.in_language("cell_true"), common.in_language("cell_predicted")
    s.setdefault(true_key, s.get("cell_true_kept", worst[0]))
    s.setdefault(predicted_key, s.get("cell_predicted_kept", worst[1]))
    picked = (clicked.selection.get("cell") or [None])[0] if clicked is not None else None
    if picked and picked != s.get("cell_clicked"):
        s["cell_clicked"] = picked
        s[true_key], s[predicted_key] = names.index(picked["true"]), names.index(picked["predicted"])


def _forget_click() -> None:
    """A choice in the dropdowns wins over the last click: a fresh chart, so that clicking that cell again counts."""
    st.session_state["confusion_chart"] += 1
    st.session_state["cell_clicked"] = None


def learned(ws, run, ds) -> None:
    if run.architecture != "dense":
        kernels = run.weights[0]  # (3, 3, 1, 32)
        st.markdown(_("The CNN's first layer: 32 small 3x3 pattern detectors slid over the whole image "
                      "(red: bright pixel wanted, blue: dark pixel wanted)."))
        tiles = [np.pad(diverging(kernels[..., 0, k], 16), ((2, 2), (2, 2), (0, 0)), constant_values=255)
                 for k in range(kernels.shape[-1])]
        st.image(np.vstack([np.hstack(tiles[i:i + 16]) for i in range(0, 32, 16)]),
                 alt=_("The CNN's 32 first-layer 3 by 3 pattern detectors, red for bright pixels wanted, blue for "
                       "dark"))
        return
    w1 = run.weights[0]
    extras = run.extras
    change = run.first_layer_change()  # None for runs saved before every unit's start was kept
    st.markdown(_("Each hidden unit looks at the image through 784 weights, one per pixel. Training starts them as "
                  "random noise; what it changed shows the strokes a unit learned to look for: **red** pixels now "
                  "push it to fire, **blue** pixels hold it back (each tile on its own scale, white is no change)."))
    if "moved_units" in extras:
        units = [int(u) for u in extras["moved_units"][:UNITS_SHOWN]]
        moved = w1[:, units] - extras["moved_initial"][:len(units)].astype(np.float32).T
        st.image(weight_sheet(moved, range(len(units))),
                 caption=_("The {n} of {total} hidden units whose weights moved most from their start: what "
                           "training changed").format(n=len(units), total=w1.shape[1]),
                 alt=_("{n} tiles of 28 by 28 pixels, one per hidden unit: red where training made a pixel push the "
                       "unit to fire, blue where it holds it back").format(n=len(units)))
        watch_it_learn(run)
    else:  # a run from before the snapshots: rank the units by how strongly they vote
        influence = np.linalg.norm(run.weights[2], axis=1)
        units = [int(u) for u in np.argsort(-influence)[:UNITS_SHOWN]]
        st.image(weight_sheet(_inked_only(w1, ds), units), caption=_(
            "The {n} most influential of {total} hidden units' weights (pixels no training image uses left "
            "white)").format(n=len(units), total=w1.shape[1]),
                 alt=_("{n} tiles of 28 by 28 pixels, one per hidden unit: red pixels push the unit to fire, blue "
                       "ones hold it back").format(n=len(units)))
    shown = change if change is not None else _inked_only(w1, ds)
    st.markdown(_("**One unit**"))
    unit = st.number_input(_("Look at one unit"), 0, w1.shape[1] - 1, int(units[0]))
    a, b = st.columns(2)
    if change is not None:
        caption, alt_text = _("unit {unit}: what training changed in its weights"), _(
            "Unit {unit}'s 28 by 28 weights (what training changed in them): red pixels push it to fire, blue ones "
            "hold it back")
    else:
        caption, alt_text = _("unit {unit}: its weights"), _(
            "Unit {unit}'s 28 by 28 weights: red pixels push it to fire, blue ones hold it back")
    a.image(diverging(shown[:, unit].reshape(28, 28), 8), caption=caption.format(unit=unit),
            alt=alt_text.format(unit=unit))
    layers = len(run.weights) // 2 - 1
    title = (_("When unit {unit} fires, it votes for...") if layers == 1 else
             _("Unit {unit}'s effect on each score")).format(unit=unit)

    def votes() -> pd.DataFrame:
        return pd.DataFrame({"label": list(ds.class_names),
                             "weight": common.predictor(run).unit_votes(unit, ds.x_test[:VOTE_IMAGES] / 255.0)})
    common.chart(b, ("votes", run.run_id, unit), lambda: alt.Chart(votes()).mark_bar().encode(
        x=alt.X("label:N", sort=None, title=_("label")),
        y=alt.Y("weight:Q", title=_("vote") if layers == 1 else _("score change")),
        color=alt.condition("datum.weight > 0", alt.value(palette.VOTE_FOR), alt.value(palette.VOTE_AGAINST))).properties(
        **common.titled(title, 240)))
    if layers > 1:
        b.caption(ngettext("Through {n} more hidden layer, so measured: on {images} test images, each score's change "
                           "per unit of this unit's firing when it is switched off where it fires.",
                           "Through {n} more hidden layers, so measured: on {images} test images, each score's change "
                           "per unit of this unit's firing when it is switched off where it fires.",
                           layers - 1).format(n=layers - 1, images=VOTE_IMAGES))
    drawing = ws.last_drawing
    st.subheader(_("Your last drawing"))
    if drawing is None:
        st.caption(_("Draw a digit on the Draw page to see which units it makes fire."))
        return
    act = common.predictor(run).hidden(drawing[None])[0]
    top = np.argsort(-act)[:8]
    c = st.columns([1, 4])
    fired = ", ".join(f"#{u} ({number(act[u], 1)})" for u in top)
    c[0].image(pixels_image(drawing, 4), caption=_("what the network saw"),
               alt=_("Your last drawing, as the 28 by 28 image the network saw"))
    c[1].image(weight_sheet(shown, top, columns=8),
               caption=_("The 8 units your drawing made fire most: {units}").format(units=fired),
               alt=_("The weights of the 8 units your drawing made fire most, with how strongly: {units}").format(
                   units=fired))


def _inked_only(w1: np.ndarray, ds) -> np.ndarray:
    """(784, units) weights with the pixels that no training image inks set to 0: those never trained (noise)."""
    return w1 * (ds.x_train.reshape(len(ds.x_train), -1).max(axis=0) > 0)[:, None]


def watch_it_learn(run) -> None:
    """The 16 units that moved most after the first epoch, from the start (within the first epoch too, where most
    strokes form) to the end: a slider and a play button."""
    frames = run.extras.get("snapshot_frames")
    if frames is None or len(frames) < 2:
        return
    at = [float(e) for e in run.extras.get("snapshot_epochs", range(len(frames)))]  # when each frame was taken
    st.markdown(_("**Watch it learn**: the same 16 units at the start, during the first epoch and after every "
                  "epoch."))
    s = st.session_state
    if s.get("learn_run") != run.run_id or s.get("learn_epoch") not in at:  # a new model starts at the end
        s["learn_run"], s["learn_epoch"], s["learn_playing"] = run.run_id, at[-1], False
    kept = run.best_epoch if run.best_epoch and run.best_epoch < at[-1] else None
    if kept:
        st.caption(_("Early stopping kept epoch {epoch}: the epochs after it were trained, then set aside.").format(
            epoch=kept))
    common.fragment(_learning_frames, run_every=PLAY_S if s.get("learn_playing") else None)(frames, at, kept)


def _when(epoch: float) -> str:
    """0 -> 'The random start', 0.25 -> 'A quarter into epoch 1', 3 -> 'After epoch 3'."""
    if epoch == 0:
        return _("The random start")
    if epoch < 1:
        return {0.125: _("An eighth into epoch 1"), 0.25: _("A quarter into epoch 1"),
                0.5: _("Halfway into epoch 1")}.get(round(epoch, 3), _("{share} into epoch 1").format(
                    share=percent(epoch)))
    return _("After epoch {epoch}").format(epoch=short(epoch))


def _play_or_pause(at: list[float]) -> None:
    s = st.session_state
    s["learn_playing"] = not s.get("learn_playing")
    if s["learn_playing"] and s.get("learn_epoch") == at[-1]:  # from the start again
        s["learn_epoch"] = at[0]


def _learning_frames(frames, at: list[float], kept: int | None = None) -> None:
    s = st.session_state
    index = at.index(s["learn_epoch"])
    if s.get("learn_playing"):
        if index >= len(at) - 1:
            s["learn_playing"] = False
            st.rerun()  # the whole page: the fragment stops ticking
        index += 1
        s["learn_epoch"] = at[index]
    a, b = st.columns([1, 5], vertical_alignment="bottom")
    if common.button(a, _("Pause") if s.get("learn_playing") else _("Play"), _play_or_pause, args=(at,),
                     key="learn_play", width="stretch"):
        st.rerun()  # the whole page: the fragment ticks only while it plays
    b.select_slider(_("Epoch"), at, key="learn_epoch", format_func=lambda e: f"{e:g}",
                    help=_("0 is the random start; the fractions are steps into the first epoch."))
    changes = st.toggle(_("Show what training changed"), value=True, key="learn_changes",
                        help=_("On: each weight minus its random start, so the learned strokes grow out of nothing. "
                               "Off: the weights themselves, which start as random noise."))
    every = frames.astype(np.float32)  # (frames, 16, 784)
    if changes:
        every = every - every[:1]
    epoch = s["learn_epoch"]
    frame = every[at.index(epoch)]
    tops = np.abs(every).max(axis=(0, 2))  # one scale per unit over all frames: strokes grow, noise stays faint
    when = _when(epoch)
    if epoch == kept:
        when = _("{when} (the weights kept)").format(when=when)
    elif kept and epoch > kept:
        when = _("{when} (set aside by early stopping)").format(when=when)
    st.image(weight_sheet(frame.T, range(len(frame)), columns=16, tops=tops),
             caption=(_("{when}: what training has changed in each unit's weights (red positive, blue negative)")
                      if changes else _("{when}: each unit's weights (red positive, blue negative)")).format(when=when),
             alt=_("{when}: {n} tiles of 28 by 28 pixels, one per hidden unit, red positive, blue negative").format(
                 when=when, n=len(frame)))
    if len(at) > 6 and epoch >= 5:
        st.caption(_("The strokes form in the first epoch or two; what later epochs add is mostly fine speckle, the "
                     "network fitting single training images: memorising, the overfitting the test curve shows."))


def overfitting_lab(ws, ds) -> None:
    st.markdown(_("Train the same network again and again, changing one knob, and compare training and test "
                  "accuracy at the end: with few examples or many epochs it memorises, and the gap is wide; dropout, "
                  "a weight penalty or more examples narrow it."))
    s = st.session_state
    sweeping = [j for j in ws.jobs() if any(sweep_value(j.label, k) is not None for k in SWEEPS)]
    for name, field, default in (("lab_architecture", "architecture", "dense"),
                                 ("lab_dataset", "dataset", common.config().dataset)):
        key = common.in_language(name)
        if sweeping:  # a sweep under way shows its own network and data
            s[key] = getattr(sweeping[0].config, field)
        elif key not in s:  # Streamlit drops a widget's state while its page is not shown (or another language's)
            s[key] = s.get(f"{name}_kept", default)
    a, b = st.columns(2)
    arch = a.radio(_("Network"), ("dense", "cnn"), key=common.in_language("lab_architecture"), horizontal=True,
                   disabled=bool(sweeping),
                   format_func=lambda k: _(LAB_NETWORKS[k]))
    data = b.radio(_("Data"), ("mnist", "fashion"), key=common.in_language("lab_dataset"), horizontal=True,
                   disabled=bool(sweeping),
                   format_func=lambda k: _(LAB_DATA[k]))
    s["lab_architecture_kept"], s["lab_dataset_kept"] = arch, data
    if data != ds.name:
        ds = common.load_or_explain(data)
        if ds is None:
            return
    base = replace(common.config(), architecture=arch, dataset=data)
    running = next((k for j in sweeping for k in SWEEPS if sweep_value(j.label, k) is not None), None)
    knob_key = common.in_language("sweep_knob")
    if running:  # a sweep under way shows its own knob
        s[knob_key] = running
    elif knob_key not in s:  # Streamlit drops a widget's state while its page is not shown (or another language's)
        s[knob_key] = s.get("lab_knob", "train_size")
    knobs = [k for k in SWEEPS if arch == "dense" or k in CNN_KNOBS]  # the CNN has no dropout, L2 or hidden units
    if s[knob_key] not in knobs:
        s[knob_key] = "train_size"
    knob = st.selectbox(_("Knob to sweep"), knobs, format_func=lambda k: _(SWEEPS[k][1]).capitalize(),
                        key=knob_key, disabled=running is not None,
                        help=None if arch == "dense" else _("The small CNN's own layers are fixed: dropout, the L2 "
                                                            "penalty and hidden units are knobs of the dense network."))
    s["lab_knob"] = knob
    plan = sweep_plan(base, len(ds.x_train), knob)
    values = ", ".join(_value_text(knob, getattr(c, knob)) for c, _ in plan)
    st.caption(_("One run of the {network} on {data} for each {knob} value: {values}; everything else as on your "
                 "Train page. The runs train one after the other, wait for the training slot like any other, and "
                 "appear in the Train page's run table; the model you use on Draw and Explore stays the same.").format(
        network=_(LAB_NETWORKS[arch]), data=_(LAB_DATA[data]), knob=_(SWEEPS[knob][1]), values=values))
    busy = bool(ws.jobs())

    def sweep() -> None:
        ws.sweep([c for c, _ in plan], [name for _, name in plan])
        st.rerun()
    common.pressed(st, _("Run the sweep"), key="run_sweep", action=sweep, type="primary", disabled=busy)
    if busy:
        common.follow_training_here()
        common.fragment(_sweep_progress, run_every=0.5)()
    latest = {}
    for r in ws.runs():
        value = sweep_value(r.name, knob)
        if value is not None and r.final is not None and (r.config.architecture, r.config.dataset) == (arch, data):
            latest[value] = r  # the latest run for each value, of this network on this data
    if latest:
        rows = []
        for value, r in sorted(latest.items(), key=lambda kv: (kv[0] == 0 and knob == "train_size", kv[0])):
            x = len(ds.x_train) if knob == "train_size" and not value else value
            rows += [{"x": x, "shown": _value_text(knob, value), "data": "train", "accuracy": r.train_accuracy,
                      "run": r.name},
                     {"x": x, "shown": _value_text(knob, value), "data": "test", "accuracy": r.test_accuracy,
                      "run": r.name}]
        frame = pd.DataFrame(rows)
        knob_name = _(SWEEPS[knob][1])
        x_axis = (alt.X("shown:O", sort=None, title=knob_name) if knob == "l2" else  # 0 has no log place
                  alt.X("x:Q", title=knob_name, scale=alt.Scale(
                      type="log" if knob in ("train_size", "hidden_units") else "linear", nice=False)))
        st.altair_chart(alt.Chart(frame).mark_line(point=True).encode(
            x=x_axis, y=alt.Y("accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="%"),
                              title=_("accuracy")),
            tooltip=[alt.Tooltip("run:N", title=_("run")), alt.Tooltip("data:N", title=_("data")),
                     alt.Tooltip("shown:N", title=knob_name),
                     alt.Tooltip("accuracy:Q", title=_("accuracy"), format=".1%")], **common.train_test_marks()
        ).properties(**common.titled(_("Final accuracy against {knob}").format(knob=knob_name), 320, [
            _("{network}, {data}").format(network=_(LAB_NETWORKS[arch]), data=_(LAB_DATA[data])),
            *common.train_test_key()])), width="stretch")
        common.numbers(st, frame[["shown", "data", "accuracy", "run"]].rename(columns={"shown": knob_name}),
                       _("Final accuracy against {knob}").format(knob=knob_name))
        if any(r.test_accuracy > r.train_accuracy for r in latest.values()):
            st.caption(_("Where test lies above train: the training figure is averaged over the last epoch, while "
                         "the network was still learning, and dropout (the CNN always has some) switches units off "
                         "only while training; the test figure is measured at the end with every unit on."))


def _value_text(knob: str, value) -> str:
    if knob == "train_size":
        return _("all") if not value else number(int(value))
    if knob in ("dropout", "l2"):
        return _("off") if not value else short(value)
    return f"{int(value)}"


def _sweep_progress() -> None:
    jobs = common.workspace().jobs()
    if not jobs:
        st.rerun()
    for j in jobs:
        snap = j.snapshot()
        st.progress(snap.fraction, text=_("{label}: {progress}").format(label=j.label, progress=snap.message))


common.through_the_app()
st.title(_("Explore"))
workspace = common.workspace()
run = common.model_in_use(workspace)
ds = common.load_or_explain(run.config.dataset if run else common.config().dataset)
if ds is not None:
    tab_mistakes, tab_learned, tab_lab = st.tabs([_("Mistakes"), _("What it learned"), _("Overfitting lab")])
    with tab_lab:
        overfitting_lab(workspace, ds)
    if run is None:
        for tab in (tab_mistakes, tab_learned):
            tab.info(_("Train a model first (Train page, or Quick train on the Draw page): its mistakes and what it "
                       "learned will show here."))
    else:
        with tab_mistakes:
            mistakes(run, ds)
        with tab_learned:
            learned(workspace, run, ds)
