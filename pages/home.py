"""Home: the notebook's story, the data's shapes, sample digits and the label distribution."""
import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from mnist_model.i18n import _
from mnist_model.pictures import digit_mosaic
from pages import common


def story(dataset: str) -> None:
    st.title("MNIST Live")
    st.markdown(_(
        "A live version of the classic Keras notebook. **1. Feed** the network the training images and their "
        "labels. **2. It learns** to connect images and labels, one batch at a time, over a few epochs. "
        "**3. Predict** the test images it has never seen. **4. Compare** its answers with the true labels: "
        "the test accuracy tells how well it will do on what *you* draw."))
    st.markdown(_("The network: 784 pixels → Dense 512 (relu) → Dense 10 (softmax), trained with rmsprop on "
                  "categorical cross-entropy, 5 epochs of batches of 128, pixels scaled to [0, 1]."))
    c1, c2, c3, c4 = st.columns(4)
    c1.page_link("pages/train.py", label=_("Train the network"), icon=":material/show_chart:")
    c2.page_link("pages/draw.py", label=common.draw_title(dataset), icon=":material/draw:")
    c3.page_link("pages/explore.py", label=_("Explore its mistakes"), icon=":material/search:")
    c4.page_link("pages/class.py", label=_("Run a class"), icon=":material/groups:")


def lesson_plan(dataset: str) -> None:
    """Five steps a teacher can follow in class, each a link to its page."""
    with st.container(border=True):
        st.subheader(_("Lesson plan"))
        draw = {"mnist": _("Draw a digit and see what the network says; *Poke your drawing* moves and turns it: the "
                           "dense network loses it, a CNN keeps it."),
                "fashion": _("Draw a piece of clothing and see what the network says; *Poke your drawing* moves "
                             "and turns it: the dense network loses it, a CNN keeps it.")}[dataset]
        steps = [
            ("pages/train.py", _("1. Train the notebook network"), _("Preset *The notebook*; watch both curves rise.")),
            ("pages/train.py", _("2. Overfit on purpose"), _("Preset *Overfit on purpose*: few examples, many "
                                                             "epochs; see the training and test curves part.")),
            ("pages/train.py", _("3. Fix the overfitting"), _(
                "Preset *Fix the overfitting*: dropout and early stopping on the same setup; the test loss stops "
                "rising and the gap narrows (more examples narrow it most: step 5's lab). *Show the code* gives the "
                "Keras code of each run.")),
            ("pages/draw.py", _("4. Draw"), draw),
            ("pages/explore.py", _("5. Explore the mistakes"), _(
                "Confusion matrix (click a cell), the most confident wrong answers, what the neurons learned, the "
                "overfitting lab.")),
        ]
        for page, title, what in steps:
            a, b = st.columns([1, 2], vertical_alignment="center")
            a.page_link(page, label=title)
            b.markdown(what)
        st.caption(_("Teaching a class? Start one on the Class page: students join with a code, and everyone's runs "
                     "meet on one live board."))


def data_overview(ds) -> None:
    st.subheader(_("The data"))
    st.caption(_("{title} · source: {source}").format(title=ds.title, source=ds.source))
    if not ds.is_full:
        st.info(_("The full 60,000-image MNIST could not be downloaded, so the app uses an offline sample of "
                  "5,000 real MNIST digits (4,000 to train, 1,000 to test). Everything works the same, with "
                  "slightly lower accuracy."))
        with st.expander(_("Why the sample?")):
            for note in ds.notes:
                st.caption(_(note))  # the library's notes are English: the fixed ones are in the catalog
    s = ds.shapes()
    st.code(f"train_images.shape  {s['x_train']}\nlen(train_labels)   {len(ds.y_train)}\n"
            f"test_images.shape   {s['x_test']}\nlen(test_labels)    {len(ds.y_test)}", language="text")
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds.x_train), 20, replace=False)
    labels = [ds.class_names[int(ds.y_train[i])] for i in idx]
    st.image(digit_mosaic(ds.x_train[idx], labels), caption=_("Twenty training images and their labels"),
             alt=_("Twenty training images, labelled {labels}").format(labels=", ".join(labels)))
    common.chart(st, ("labels", ds.title, len(ds.y_train)), lambda: label_chart(pd.DataFrame(
        {"label": [ds.class_names[i] for i in range(10)], "train images": np.bincount(ds.y_train, minlength=10)})))


def label_chart(counts: pd.DataFrame) -> alt.Chart:
    """Horizontal bars: long label names (Fashion-MNIST's 'Ankle boot') sit beside the bars, not under them."""
    return alt.Chart(counts).mark_bar().encode(
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelFontSize=13)),
        x=alt.X("train images:Q", title=_("training images")),
        tooltip=[alt.Tooltip("label:N", title=_("label")), alt.Tooltip("train images:Q", title=_("training images"))]
    ).properties(**common.titled(_("Training images of each label"), 300))


common.through_the_app()
dataset_name = common.config().dataset
story(dataset_name)
lesson_plan(dataset_name)
ds = common.load_or_explain(dataset_name)
if ds is not None:
    data_overview(ds)
