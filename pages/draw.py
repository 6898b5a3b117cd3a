"""Draw: draw a digit (or upload a photo of one) and see what the network says, instantly."""
import hashlib
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from mnist_model.config import TrainConfig
from mnist_model.data import class_names
from mnist_model.errors import MnistLiveError
from mnist_model.i18n import N_, _, current, ngettext, number, percent
from mnist_model.pictures import digit_mosaic, pixels_image
from mnist_model.poke import poke, robustness
from mnist_model.preprocess import canvas_to_mnist, decode_upload
from pages import common

CANVAS_PX = 280  # 10x MNIST's 28 px; fits a phone screen
UNSURE = 0.6  # below this top probability the page says the network is unsure
QUICK_EPOCHS = 1  # Quick train: the notebook network, one epoch (a few seconds)
NETWORK_NAMES = {"dense": N_("Dense network"), "cnn": N_("CNN")}  # translated where shown
ROBUST_NAMES = {"dense": N_("dense network"), "cnn": N_("CNN")}  # inside a sentence
PLACEHOLDER = "–"  # the Prediction metric before the first stroke
TOOLBAR_GAP_PX = 36  # room above the canvas for its hover toolbar (it covered the first network's "99% sure")
POKE_DEFAULTS = {"dx": 0, "dy": 0, "angle": 0, "scale": 1.0, "stroke": 0}  # a drawing as drawn


def shared_or_quick_train(ws):
    """For a workspace without a model: one shared on the server, else offer Quick train."""
    shared = ws.published_runs()
    if shared:
        by_id = {r.run_id: r for r in shared}
        pick = st.selectbox(_("Use a model shared on this server"), [None, *by_id],
                            format_func=lambda i: _("choose...") if i is None else by_id[i].label)
        if pick is not None:
            with common.plain_errors():
                ws.choose_model(pick)
            return by_id[pick]
    quick_train_panel(ws, bool(shared))
    return None


def quick_train_panel(ws, shared: bool = False) -> None:
    """Offer Quick train on the selected dataset; show its progress while it runs."""
    if ws.jobs():
        common.follow_training_here()
        common.fragment(_training_progress, run_every=0.5)()
        return
    dataset = common.config().dataset
    data = common.load_or_explain(dataset)
    what = data.title if data else dataset
    st.info((_("Or train a model of your own: Quick train teaches the notebook's network on {data} for one epoch (a "
               "few seconds), or use the Train page.") if shared else
             _("There is no trained model yet. Quick train teaches the notebook's network on {data} for one epoch (a "
               "few seconds), or train your own on the Train page.")).format(data=what))
    common.button(st, _("Quick train"), _quick_train, args=(ws, dataset), key="quick_train", type="primary")
    common.show_refusal(DRAW_REFUSED, st.error)
    latest = ws.latest_job()
    if latest is not None and latest.state.value == "failed":
        st.error(_("The last training failed: {why}").format(why=latest.snapshot().message))


DRAW_REFUSED = "draw_refused"  # session state: what the library said when a button's action failed


def _quick_train(ws, dataset: str) -> None:
    with common.refusal_kept(DRAW_REFUSED):
        ws.train(replace(TrainConfig(epochs=QUICK_EPOCHS), dataset=dataset), label=_("Quick train"))


def _training_progress() -> None:
    jobs = common.workspace().jobs()
    if not jobs:
        st.rerun()
    snap = jobs[0].snapshot()
    text = _("{label}: {progress} (number {position} in the queue)") if snap.queue_position else _("{label}: {progress}")
    st.progress(snap.fraction, text=text.format(label=jobs[0].label, progress=snap.message,
                                                position=snap.queue_position))


def canvas_image():
    """The canvas and its controls; returns the RGBA drawing (H, W, 4) uint8 or None."""
    from streamlit_drawable_canvas import st_canvas
    n = st.session_state.setdefault(common.CANVAS_GENERATION, 0)
    pen = st.session_state.get("pen_width", 20)
    result = st_canvas(stroke_width=pen, stroke_color="#FFFFFF", background_color="#000000",
                       height=CANVAS_PX, width=CANVAS_PX, drawing_mode="freedraw", update_streamlit=True,
                       return_image_data=True, key=f"canvas_{n}")
    a, b = st.columns([1, 2], vertical_alignment="bottom")
    # A callback, before the fragment reruns: that run draws only the new canvas (a rerun from inside the run drew
    # the old one first, and the page held two canvases for a moment).
    common.button(a, _("Clear"), _clear_canvas, key="clear_canvas")
    b.slider(_("Pen width"), 8, 40, 20, key="pen_width")
    return result.image_data if result is not None else None


def _clear_canvas() -> None:
    generation = st.session_state.get(common.CANVAS_GENERATION, 0)
    st.session_state[common.CANVAS_GENERATION] = generation + 1  # a new key mounts an empty canvas
    st.session_state[common.CANVAS_CLEARED] = True  # a reconnected tab's report of its canvas is older now
    if _poked():  # the next drawing starts as drawn: a poke kept from the last one would read it moved, unsaid
        _reset_poke()


def upload_image(dataset: str):
    """An uploaded photo or scan: (RGBA or None, the file's id or None); a message when unusable."""
    label = {"fashion": _("Or upload a photo of a piece of clothing (PNG or JPEG)")}.get(
        dataset, _("Or upload a photo of a digit (PNG or JPEG)"))
    file = st.file_uploader(label, type=["png", "jpg", "jpeg"],
                            key=f"photo_{st.session_state.get(common.CANVAS_GENERATION, 0)}")  # Clear empties it too
    if file is None:
        return None, None
    try:
        return decode_upload(file.getvalue()), file.file_id
    except MnistLiveError as exc:
        st.error(_("That file can't be used: {why}").format(why=exc))
        return None, file.file_id


def test_image(dataset: str):
    """A test-set image picked by its number: the way to ask for a prediction from the keyboard alone.
    Returns ((28, 28) float32 in [0, 1], its number) or (None, None)."""
    try:
        data = common.dataset(dataset)
    except MnistLiveError:
        return None, None
    last = len(data.x_test) - 1
    from mnist_model.i18n import number as written
    number = st.number_input(_("Or pick a test image by its number (0 to {last}), then press Enter").format(
        last=written(last)), 0, last, value=None, step=1, placeholder=_("a number"),
                             key=f"test_image_{st.session_state.get(common.CANVAS_GENERATION, 0)}")  # Clear empties it
    if number is None:
        return None, None
    return (data.x_test[int(number)] / 255.0).astype(np.float32), int(number)


def _as_mnist(rgba: np.ndarray):
    """canvas_to_mnist once per picture: a rerun asks twice for the same one (what changed last, then the answer)."""
    digest = hashlib.md5(rgba.tobytes()).hexdigest()
    held = st.session_state.get("as_mnist")
    if held is None or held[0] != digest:
        held = st.session_state["as_mnist"] = (digest, canvas_to_mnist(rgba))
    return held[1]


def latest_input(drawing, uploaded, upload_id, picked=None, picked_number=None):
    """The input that changed last wins: ("drawing" or "photo", RGBA or None) or ("test", (28, 28) image)."""
    s = st.session_state
    drawn = hashlib.md5(drawing.tobytes()).hexdigest() if drawing is not None else None
    if upload_id is not None and upload_id != s.get("seen_upload"):
        s["latest_input"] = "photo"
    elif picked_number is not None and picked_number != s.get("seen_test_image"):
        s["latest_input"] = "test"
    elif drawn != s.get("seen_drawing") and drawing is not None and _as_mnist(drawing) is not None:
        s["latest_input"] = "drawing"
    s["seen_upload"], s["seen_drawing"], s["seen_test_image"] = upload_id, drawn, picked_number
    if s.get("latest_input") == "photo" and uploaded is not None:
        return "photo", uploaded
    if s.get("latest_input") == "test" and picked is not None:
        return "test", picked
    return "drawing", drawing


def show_prediction(ws, run, picture, source: str, answer_slot):
    """Prediction (in answer_slot, right above the canvas), probabilities and the 28x28 image it sees; returns
    (the drawing as drawn (28, 28), its predicted class) or None when there is nothing to read.
    picture: RGBA (H, W, 4) uint8 from the canvas or a photo, or a test image (28, 28) in [0, 1]."""
    names = class_names(run.config.dataset)
    t0 = time.perf_counter()
    try:
        image = picture if source == "test" else _as_mnist(picture) if picture is not None else None
    except MnistLiveError as exc:
        st.error(_("That drawing can't be read: {why}").format(why=exc))
        return
    if image is None and source == "photo":  # a blank, one-colour or transparent picture: it was read, nothing found
        st.warning({"fashion": _("There is nothing to read in that picture: it is blank, one colour or transparent. "
                                 "Upload a photo of a piece of clothing that fills most of it.")}.get(
            run.config.dataset, _("There is nothing to read in that picture: it is blank, one colour or transparent. "
                                  "Upload a photo of a digit that fills most of it, dark on light or light on dark.")))
        return
    if image is None:
        st.info({"fashion": _("Draw a piece of clothing on the black square, as big as you like and anywhere on it, "
                              "or pick a test image by its number under the square.")}.get(
            run.config.dataset, _("Draw a digit on the black square, as big as you like and anywhere on it, or pick a "
                                  "test image by its number under the square.")))
        return
    drawn = image
    image = poke(image, **poke_settings())
    probs = common.predictor(run)(image[None])[0]
    elapsed_ms = (time.perf_counter() - t0) * 1000
    ws.last_drawing = image
    order = np.argsort(-probs)
    top, second = int(order[0]), int(order[1])
    others = _other_networks(ws, run)
    verdict = common.novelty_check(run.config.dataset)(image)  # never asks the network: honest when it is sure
    sure = (_("{percent} sure · unfamiliar") if verdict.unfamiliar else _("{percent} sure")).format(
        percent=percent(probs[top]))
    answers = [(names[top], sure)]
    for other in others:
        p = common.predictor(other)(image[None])[0]
        answers.append((class_names(other.config.dataset)[int(p.argmax())],
                        _("{percent} sure").format(percent=percent(p.max()))))
    show_answers(answer_slot, run, others, answers)

    if others:
        st.caption(_("The CNN slides small pattern detectors over the whole image, so a stroke means the same "
                     "wherever it lands; the dense network ties each weight to one pixel position."))
    source_text = (_("the uploaded photo (draw on the canvas to switch back)") if source == "photo" else
                   _test_image_text(run, names) if source == "test" else _("your drawing"))
    st.image(pixels_image(image, 5, grid=True),
             caption=_("What the network sees (28x28), from {source}").format(source=source_text),
             alt=_("The 28 by 28 pixel image the network sees, from {source}").format(source=source_text))
    target = int(order[0]) if not _poked() else _unpoked_top(run, drawn)
    st.session_state["last_prediction"] = target  # what the drawing is, as drawn: the label "Keep it" offers
    poke_controls(names[target])
    if verdict.unfamiliar:
        st.warning(verdict.why, icon=":material/help:")
        st.caption(common.novelty_check(run.config.dataset).describe())
    elif probs[top] < UNSURE:
        st.warning(_("The network is unsure: {first} ({first_percent}) or {second} ({second_percent}).").format(
            first=names[top], first_percent=percent(probs[top]), second=names[second],
            second_percent=percent(probs[second])))
    frame = pd.DataFrame({"label": names, "probability": probs, "winner": np.arange(10) == top})
    st.vega_lite_chart(frame, spec=common.probability_bars(current()), width="stretch")
    common.numbers(st, frame.drop(columns="winner"), _("The probability of each label"))
    st.caption(_("Preprocessing + prediction: {ms} ms").format(ms=number(elapsed_ms, 2)))
    return drawn, target


def _test_image_text(run, names) -> str:
    number = st.session_state.get("seen_test_image")
    label = names[int(common.dataset(run.config.dataset).y_test[number])]
    return _("test image {number}, which the test set labels {label} (draw on the canvas to switch back)").format(
        number=number, label=label)


def poke_settings() -> dict:
    """What the user set with the Poke sliders (POKE_DEFAULTS until they move one). Kept under a key of its own,
    never a widget's: Streamlit drops a widget's state while it is not drawn (a blank canvas, an upload on its way),
    and a keyed slider drawn again without a value started at its minimum."""
    return st.session_state.setdefault("poke", dict(POKE_DEFAULTS))


def show_answers(slot, run, others, answers) -> None:
    """One metric per network, (value, note) each, in the same layout before and after the first stroke; a gap
    under them keeps the canvas's hover toolbar off the figures."""
    with slot.container(gap=None):
        cols = st.columns(len(answers))
        for i, (col, (value, note)) in enumerate(zip(cols, answers)):
            net = run if i == 0 else others[i - 1]
            name = _(NETWORK_NAMES[net.architecture])
            label = (_("Prediction") if not others else _("Prediction ({network})").format(network=name)) if i == 0 \
                else _("{network} says").format(network=name)
            col.metric(label, value, note, delta_color="off", delta_arrow="off", help=None if i == 0 else net.label)
        st.container(height=TOOLBAR_GAP_PX, border=False)


def _poked() -> bool:
    return poke_settings() != POKE_DEFAULTS


def _unpoked_top(run, drawn) -> int:
    return int(common.predictor(run)(drawn[None])[0].argmax())


POKE_SLIDERS = {  # setting -> (label, options or (low, high, step))
    "dx": (N_("Move sideways (px)"), (-6, 6, 1)), "dy": (N_("Move up/down (px)"), (-6, 6, 1)),
    "angle": (N_("Turn (degrees)"), (-30, 30, 5)), "scale": (N_("Scale"), (0.6, 1.4, 0.1)),
    "stroke": (N_("Strokes"), {-2: N_("thinnest"), -1: N_("thinner"), 0: N_("as drawn"), 1: N_("thicker"),
                               2: N_("thickest")}),
}


def poke_controls(label: str) -> None:
    """Move, turn, scale the drawing and change its strokes; the prediction above follows. How robust is it?"""
    settings, s = poke_settings(), st.session_state
    generation = s.setdefault("poke_generation", 0)  # Reset draws fresh sliders at the drawing as drawn
    # Once used, the panel stays open (an expander whose `expanded` changes is a new element: it would close).
    with st.expander(_("Poke your drawing"), expanded=s.get("poke_used", False) or _poked()):
        columns = st.columns(2)
        for i, (name, (text, options)) in enumerate(POKE_SLIDERS.items()):
            key = _poke_key(name)
            kwargs = dict(key=key, value=settings[name], on_change=_poke_moved, args=(name, key))
            if isinstance(options, dict):
                columns[i % 2].select_slider(_(text), list(options), format_func=lambda o, options=options:
                                             _(options[o]), **kwargs)
            else:
                columns[i % 2].slider(_(text), *options[:2], step=options[2], **kwargs)
        common.button(columns[1], _("Reset"), _reset_poke, key="reset_poke", width="stretch")
        common.button(st, _("How robust is the answer {label}?").format(label=label), _show_robustness, width="stretch",
                      key="how_robust", help=_("Moves and turns the picture step by step and plots how sure each "
                                               "network stays of {label}.").format(label=label))
        if s.get("robust_open"):
            st.caption(_("The curves are under the drawing."))  # on a phone, above this button


def _show_robustness(show: bool = True) -> None:
    st.session_state["robust_open"] = show
    if show:
        st.session_state["poke_used"] = True


def _poke_key(name: str) -> str:
    return common.in_language(f"poke_{name}_{st.session_state.get('poke_generation', 0)}")


def _poke_moved(name: str, key: str) -> None:
    """A slider the user moved: only this changes the poke (not one of a generation before Reset, whose value a
    browser that has not caught up sends once more: Streamlit keeps the callbacks of widgets gone from the page)."""
    if key != _poke_key(name):
        return
    st.session_state["poke_used"] = True
    poke_settings()[name] = st.session_state[key]


def _reset_poke() -> None:
    st.session_state["poke_used"] = True  # the panel stays open
    st.session_state["poke"] = dict(POKE_DEFAULTS)
    st.session_state["poke_generation"] = st.session_state.get("poke_generation", 0) + 1


def robustness_panel(ws, run, drawn, target: int, names) -> None:
    """The drawn class's probability against sideways shift and turn, for the dense network and the CNN."""
    networks = {_(ROBUST_NAMES[r.architecture]): common.predictor(r)
                for r in [run, *_other_networks(ws, run)]}
    found = robustness(networks, drawn, target)
    for chart in common.robustness_charts(found, names[target]):
        st.altair_chart(chart, width="stretch")
        common.numbers(st, chart.data, common.chart_title({"title": chart.title.to_dict()}))  # not the whole spec again
    st.info(found.sentence(names[target]) + ("" if len(networks) > 1 else " " + _(
        "Train a CNN too (Train page, Network) to see one that cares less where the digit is.")))


def _other_networks(ws, run) -> list:
    """The workspace's latest run of the other architecture on the same data, if there is one."""
    other = next((r for r in reversed(ws.runs()) if r.architecture != run.architecture
                  and r.config.dataset == run.config.dataset and r.final is not None), None)
    return [other] if other is not None else []


def keep_drawing_controls(ws, drawn) -> None:
    """Label the drawing on screen (drawn: (28, 28) as drawn, or None for a blank canvas) and keep it, once."""
    st.markdown(_("**Teach it your handwriting**"))
    a, b = st.columns([2, 1], vertical_alignment="bottom")
    guess = st.session_state.get("last_prediction", 0) if drawn is not None else 0
    label = a.selectbox(_("This drawing is a"), range(10), index=guess,
                        help=_("Starts at the network's guess: change it when the guess is wrong."))
    digest = hashlib.md5(drawn.tobytes()).hexdigest() if drawn is not None else None
    kept = digest is not None and digest in st.session_state.setdefault("kept_digests", set())

    def keep() -> None:
        ws.keep_drawings(drawn[None], [int(label)])
        st.session_state["kept_digests"].add(digest)
        n = len(ws.drawings()[0])
        # Said by the run that follows: a toast sent just before st.rerun() was sometimes dropped with it
        st.session_state["kept_news"] = ngettext("Kept as a {label}: {n} drawing so far",
                                                 "Kept as a {label}: {n} drawings so far", n).format(label=label, n=n)
        st.rerun()  # the whole page: the kept drawings are shown outside this fragment
    common.pressed(b, _("Kept") if kept else _("Keep it"), key="keep_it", action=keep,
                   disabled=drawn is None or kept, width="stretch", help=_("Draw a digit first.") if drawn is None
                   else _("Already kept: draw another one.") if kept else _(
                       "Keep this drawing with its label, for fine-tuning."))
    news = st.session_state.pop("kept_news", None)
    if news:
        st.toast(news)


def teach_panel(ws, run) -> None:
    """The kept drawings: delete, download, load, and fine-tune the model on them."""
    from mnist_model.handwriting import drawings_from_npz, drawings_to_npz, fine_tune_task
    ids, images, labels = ws.drawings()
    if ids:
        st.subheader(_("Your drawings"))
        st.image(digit_mosaic(images, [str(x) for x in labels], columns=12, scale=2),
                 caption=ngettext("Your {n} drawing and its label", "Your {n} drawings and their labels",
                                  len(ids)).format(n=len(ids)),
                 alt=_("Your {n} kept drawings, labelled {labels}").format(
                     n=len(ids), labels=", ".join(str(x) for x in labels)))
        drop = st.multiselect(_("Delete"), range(len(ids)), format_func=lambda i: f"#{i + 1} ({labels[i]})")
        c1, c2, c3 = st.columns(3)

        def delete() -> None:
            ws.delete_drawings([ids[i] for i in drop])
            st.rerun()
        common.pressed(c1, _("Delete selected"), key="delete_drawings", action=delete, disabled=not drop,
                       width="stretch")
        c2.download_button(_("Download (.npz)"), drawings_to_npz(images, labels), "my-drawings.npz",
                           width="stretch", on_click="ignore")
        busy = bool(ws.jobs())

        def fine_tune() -> None:
            ws.start(fine_tune_task(run, images, labels),
                     label=ws.unique_name(_("{run} + my drawings").format(run=run.name)), kind="fine-tune",
                     base_run_id=run.run_id)
            st.rerun()
        common.pressed(c3, _("Fine-tune on my drawings"), key="fine_tune", action=fine_tune, type="primary",
                       disabled=busy, width="stretch")
        if busy:
            common.follow_training_here()
            common.fragment(_training_progress, run_every=0.5)()
        fine_tune_report(ws, run, images, labels)
    upload = st.file_uploader(_("Load drawings saved earlier (.npz)"), type=["npz"], key="drawings_upload")
    if upload is not None and st.session_state.get("drawings_loaded") != upload.file_id:
        st.session_state["drawings_loaded"] = upload.file_id
        try:
            loaded = drawings_from_npz(upload.getvalue())
        except MnistLiveError as exc:  # said as an upload's refusal is (it stood alone, lower-case)
            st.error(_("That file can't be used: {why}").format(why=exc))
        else:
            with common.plain_errors():
                ws.keep_drawings(*loaded)
                st.rerun()


def fine_tune_report(ws, run, images, labels) -> None:
    """Before/after accuracy on the drawings and on the test set, when the model in use was fine-tuned."""
    from mnist_model.handwriting import accuracy
    base = ws.run(run.base_run_id)
    if base is None or run.final is None or base.final is None:
        return
    before, after = accuracy(common.predictor(base), images, labels), accuracy(common.predictor(run), images, labels)
    st.markdown(ngettext("**{run}** against **{base}**, on your {n} drawing and the test set:",
                         "**{run}** against **{base}**, on your {n} drawings and the test set:", len(labels)).format(
        run=run.name, base=base.name, n=len(labels)))
    c = st.columns(2)
    change = round((after - before) * 100)
    c[0].metric(_("Right on your drawings"), percent(after),
                (_("{change} points (was {before})") if change else _("no change (was {before})")).format(
                    change=f"{change:+d}", before=percent(before)), delta_color="normal" if change else "off",
                delta_arrow="auto" if change else "off")
    c[1].metric(_("Test accuracy"), percent(run.test_accuracy, 1), _("{change} points (was {before})").format(
        change=f"{(run.test_accuracy - base.test_accuracy) * 100:+.1f}", before=percent(base.test_accuracy, 1)))
    st.caption(_("If test accuracy dropped, the network has started to forget MNIST while learning your style."))


@common.fragment
def drawing_panel(ws, run) -> None:
    """Canvas, upload and prediction: a stroke reruns only this part of the page."""
    left, right = st.columns([1, 1])
    with left:
        answer_slot = st.empty()  # the answer sits right above the canvas, on phones too
        # Shown before the first stroke too, in the same layout, so the canvas never moves when the answer comes.
        others = _other_networks(ws, run)
        show_answers(answer_slot, run, others, [(PLACEHOLDER, _("draw to see"))] * (1 + len(others)))
        drawing = canvas_image()
        uploaded, upload_id = upload_image(run.config.dataset)
        picked, picked_number = test_image(run.config.dataset)
    with right:
        source, picture = latest_input(drawing, uploaded, upload_id, picked, picked_number)
        read = show_prediction(ws, run, picture, source, answer_slot)
    if read is not None and st.session_state.get("robust_open"):  # under the canvas, beside the poke sliders
        with left.container(border=True):
            robustness_panel(ws, run, *read, class_names(run.config.dataset))
            common.button(st, _("Hide the robustness curves"), _show_robustness, args=(False,), key="hide_robust")
    if run.config.dataset == "mnist":  # a test image is not the student's handwriting: nothing to keep
        keep_drawing_controls(ws, read[0] if read is not None and source != "test" else None)


common.through_the_app()
workspace = common.workspace()
model = common.model_in_use(workspace)
st.title(common.draw_title(model.config.dataset if model else common.config().dataset))
if model is None:
    model = shared_or_quick_train(workspace)
if model is not None:
    st.caption(_("Model: {model}").format(model=model.label))
    drawing_panel(workspace, model)
    if model.config.dataset == "mnist":
        teach_panel(workspace, model)
