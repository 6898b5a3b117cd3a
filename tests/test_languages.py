"""Languages: every text a page shows goes through the catalogs (checked in a pseudo-language that marks each
catalog text), the catalogs translate every message with the same placeholders, the language follows the browser
and the sidebar's switch is kept in the workspace, and numbers are written each language's way."""
import json
import re
import string
import time

import numpy as np
import pytest
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from mnist_model import database, i18n, store as store_module
from mnist_model.config import TrainConfig

from conftest import ROOT

APP = str(ROOT / "app.py")
POT = ROOT / "locales" / "mnist_live.pot"
# Words that are the same in every language: names, units and code the pages quote as they are.
KEPT = {"MNIST", "Fashion", "CNN", "Keras", "Jupyter", "rmsprop", "adam", "sgd", "relu", "softmax", "lr", "L2",
        "Dense", "Run", "Quick", "train", "PNG", "JPEG", "npz", "keras", "CSV", "ms", "px", "x", "QR", "MNIST_PATH",
        "Sweep", "all", "TEACHER", "Teacher", "ipynb", "s", "Live"}
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def _texts(at) -> list[str]:
    """Every text on the page that a person reads (labels, messages, captions, titles, metrics)."""
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "error",
                 "success", "button", "toggle", "checkbox", "selectbox", "slider", "select_slider", "number_input",
                 "text_input", "radio", "multiselect", "expander", "tabs", "metric"):
        for element in at.get(kind):
            proto = element.proto
            for field in ("body", "label", "help", "placeholder", "value", "delta"):
                value = getattr(proto, field, None)
                if isinstance(value, str) and value and not value.startswith("<div"):
                    out.append(value)
    for element in at.get("image"):
        out += [img.caption for img in element.proto.imgs if img.caption]
    for element in at.get("vega_lite_chart"):
        out += _chart_texts(json.loads(element.proto.spec))
    return out


AXIS_CHANNELS = ("x", "y", "x2", "y2", "color", "fill", "stroke", "shape", "strokeDash", "size", "opacity")


def _chart_texts(spec) -> list[str]:
    """What a chart writes: its titles, and each axis's and legend's title, which is the field's name when the
    chart gives none (a "count" legend), and each tooltip's."""
    out = []
    if isinstance(spec, dict):
        title = spec.get("title")  # its lines joined: titled() breaks a catalog text into lines
        out += [" ".join(_title_lines(title.get("text"))), " ".join(_title_lines(title.get("subtitle")))] \
            if isinstance(title, dict) else _title_lines(title)
        for channel, enc in (spec.get("encoding") or {}).items():
            for e in enc if isinstance(enc, list) else [enc]:
                if not isinstance(e, dict) or "condition" in e and "field" not in e:
                    continue
                shown = channel == "tooltip" or channel in AXIS_CHANNELS and e.get("axis", {}) is not None \
                    and e.get("legend", {}) is not None
                title = e["title"] if "title" in e else e.get("field")  # title None: no title at all
                if shown and title:
                    out.append(str(title))
        for key in ("layer", "hconcat", "vconcat", "concat"):
            for sub in spec.get(key) or []:
                out += _chart_texts(sub)
        if isinstance(spec.get("spec"), dict):
            out += _chart_texts(spec["spec"])
    return [t for t in out if t]


def _title_lines(title) -> list[str]:
    """A chart title's lines: its text's and its subtitle's (each a string or a list of lines)."""
    if isinstance(title, dict):
        return _title_lines(title.get("text")) + _title_lines(title.get("subtitle"))
    return [title] if isinstance(title, str) else list(title or [])


def _untranslated(texts: list[str]) -> list[str]:
    """The texts with words outside the pseudo-language's ⟦ ⟧ marks (names and numbers aside)."""
    found = []
    for text in texts:
        rest, before = text, None
        while rest != before:  # innermost marks first: a catalog text may quote another
            before, rest = rest, re.sub(r"⟦[^⟦⟧]*⟧", " ", rest)
        rest = re.sub(r"`[^`]*`|https?://\S+|:material/[a-z_]+:|\{[^}]*\}", " ", rest)
        words = [w for w in WORD.findall(rest) if w not in KEPT and not w.isupper()]
        if words:
            found.append(f"{text!r} -> {words}")
    return sorted(set(found))


def _page(at, path: str):
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return _texts(at)


@pytest.fixture(scope="module")
def trained_workspace():
    at = AppTest.from_file(APP, default_timeout=60).run()
    ws = at.session_state["workspace"]
    ws.train(TrainConfig(epochs=2, train_size=500, hidden_units=64))
    deadline = time.time() + 300
    while ws.jobs() and time.time() < deadline:
        time.sleep(0.1)
    assert ws.model_run() is not None
    return ws.id


def test_every_page_in_the_pseudo_language_shows_only_catalog_text(trained_workspace):
    i18n.use(i18n.PSEUDO)  # AppTest formats widget options in this thread too
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["language"] = i18n.PSEUDO
    at.query_params["workspace"] = trained_workspace
    at.run()
    texts = _texts(at)
    texts += _page(at, "pages/train.py")
    ws = at.session_state["workspace"]
    ws.train(TrainConfig(epochs=30, batch_size=16, train_size=2000))  # a training under way, its progress shown
    deadline = time.time() + 120
    while not (ws.jobs() and ws.jobs()[0].snapshot().batch) and time.time() < deadline:
        time.sleep(0.1)
    at.run()
    texts += _texts(at)
    ws.stop()
    while ws.jobs() and time.time() < deadline:
        time.sleep(0.1)
    texts += _page(at, "pages/draw.py")
    at.number_input(key="test_image_0").set_value(3).run()
    texts += _texts(at)
    robust = i18n.pseudo("How robust is the answer {label}?").split("{")[0]
    next(b for b in at.button if b.label.startswith(robust)).click().run()  # the robustness curves
    texts += _texts(at)
    texts += _page(at, "pages/explore.py")
    texts += _page(at, "pages/class.py")
    at.text_input(key="join_code").input("ZZZZZ2")  # a wrong code: the refusal is said in the language too
    next(t for t in at.text_input if t.key != "join_code").input("Ada")
    next(b for b in at.button if b.label == i18n.pseudo("Join")).click().run()
    texts += _texts(at)
    next(b for b in at.button if b.label == i18n.pseudo("Start a class")).click().run()
    texts += _texts(at)
    i18n.use("en")
    assert len(texts) > 100
    left = _untranslated(texts)
    assert left == [], "\n".join(left)


def test_chart_titles_are_broken_into_lines_that_fit_a_phone_in_every_language():
    """Vega cuts a title line that is too long ("…"), it never wraps one: the train/test key on one line lost its
    end in German in a 358 px chart. Each line fits a chart 340 px wide, the longest labels and knobs included."""
    import pandas as pd
    from mnist_model.poke import robustness
    from pages import common
    frame = pd.DataFrame({"epoch": [1, 2, 1, 2], "metric": "loss", "data": ["train", "train", "test", "test"],
                          "value": [0.5, 0.4, 0.6, 0.5]})
    image = np.zeros((28, 28), np.float32)
    image[6:22, 13:15] = 1.0
    found = robustness({"dense": lambda x: np.tile(np.eye(10)[1], (len(x), 1))}, image, 1)
    long_line = []
    for code in i18n.LANGUAGES:
        i18n.use(code)
        charts = [common.curve_chart(frame, metric) for metric in ("loss", "accuracy")]
        charts += common.robustness_charts(found, i18n.gettext("T-shirt/top"))
        titles = [chart.to_dict()["title"] for chart in charts]
        titles.append(common.titled(i18n.gettext("Final accuracy against {knob}").format(
            knob=i18n.gettext("training examples")), 320, [i18n.gettext("{network}, {data}").format(
                network=i18n.gettext("dense network (the notebook's)"), data=i18n.gettext("MNIST digits")),
                *common.train_test_key()])["title"].to_dict())
        for title in titles:
            long_line += [(code, line) for line in _title_lines(title["text"]) if len(line) > common.TITLE_CHARS]
            long_line += [(code, line) for line in _title_lines(title.get("subtitle"))
                          if len(line) > common.SUBTITLE_CHARS]
    i18n.use("en")
    assert long_line == []
    assert common.train_test_key() == ["train: solid line, dots", "test: dashed line, triangles"]


def test_the_library_s_refusals_and_notices_are_said_in_the_reader_s_language(tmp_path):
    """What the library says to a student (an upload or a drawings file refused, a second training refused) and the
    notices the server writes for a student (removed from the class, runs removed to keep the latest) reach a page
    in its language: they were English on a German page ("Diese Datei kann nicht verwendet werden: this file..."). So
    do the store's, said when read (a notice written as the server started, before any page had a language)."""
    from mnist_model.errors import MnistLiveError
    from mnist_model.handwriting import drawings_from_npz
    from mnist_model.preprocess import decode_upload
    teacher = AppTest.from_file(APP, default_timeout=60).run().session_state["workspace"]
    student_page = AppTest.from_file(APP, default_timeout=60)
    student_page.session_state["language"] = i18n.PSEUDO
    student_page.run()
    student = student_page.session_state["workspace"]
    student.join_class(teacher.start_class().code, "Ann", session=student.id)
    assert teacher.remove_student("Ann")  # a notice written in the teacher's request, in English
    i18n.use(i18n.PSEUDO)
    said = []
    for refused_by in (lambda: decode_upload(b"hello, I am not an image"), lambda: decode_upload(b""),
                       lambda: decode_upload(b"GIF89a" + bytes(64)), lambda: drawings_from_npz(b"junk"),
                       lambda: student.suggest_settings(TrainConfig())):
        with pytest.raises(MnistLiveError) as refused:
            refused_by()
        said.append(str(refused.value))
    student.train(TrainConfig(epochs=30, batch_size=16, train_size=2000))
    try:
        with pytest.raises(MnistLiveError) as refused:
            student.train(TrainConfig(epochs=1, train_size=500))
        said.append(str(refused.value))
    finally:
        student.stop()
    student_page.run()  # the student's next page view shows the teacher's notice
    said += [element.value for element in student_page.info]
    i18n.use("en")
    assert i18n.pseudo("Your teacher removed you from the class (your runs stay yours).") in said
    assert _untranslated(said) == [] and len(said) >= 7, said
    i18n.use("de")  # the store's refusals, and what the server says when its store could not be opened
    lost = database.readable(OSError("connection refused"), i18n.N_("save the run"))
    locked = store_module.open_server_store(tmp_path)
    stand_in = store_module.open_server_store(tmp_path)  # a second server on the same folder
    german = [str(lost), i18n.said(stand_in.notices[0])]
    i18n.use("en")
    stand_in.close(), locked.close()
    assert german[0] == "Es war nicht möglich, den Lauf zu speichern: der Datenbankserver antwortet nicht. Versuchen " \
                        "Sie es gleich noch einmal." and str(lost).startswith("Could not save the run: the database")
    assert german[1].startswith(f"Ein anderer MNIST-Live-Server benutzt den Datenordner {tmp_path}. Bis das "), german
    from mnist_model.jobs import _said
    i18n.use("de")  # a training's progress line, which a worker process wrote ("Run 5: training on MNIST (...)")
    progress = _said((i18n.N_("training on {data}"), {"data": "MNIST (offline sample of 5,000 digits)"}))
    i18n.use("en")
    assert progress == "Training mit MNIST (Offline-Stichprobe von 5.000 Ziffern)"
    i18n.use("de")  # a notice of several runs, the list said the language's way
    written = i18n.said(i18n.later(i18n.N_("{names} were removed to keep this workspace's latest {limit} runs (pin a "
                                           "run to keep it)."), names=["Run 1", "Run 2", "Run 3"], limit=3))
    i18n.use("en")
    assert written.startswith("Run 1, Run 2 und Run 3 ") and "3" in written and "removed" not in written


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("language", [code for code in i18n.LANGUAGES if code != "en"])
def test_every_message_is_translated_with_the_same_placeholders(language):
    template = read_po(POT.open("rb"))
    catalog = read_po((ROOT / "locales" / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po").open("rb"),
                      locale=language)
    missing, broken = [], []
    for message in template:
        if not message.id:
            continue
        found = catalog.get(message.id)
        if found is None or not found.string or (isinstance(found.string, tuple) and not all(found.string)) \
                or found.fuzzy:
            missing.append(message.id)
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = found.string if isinstance(found.string, tuple) else (found.string,)
        want = set().union(*(_placeholders(i) for i in ids))
        if any(_placeholders(s) - want or (len(ids) == 1 and _placeholders(s) != want) for s in strings):
            broken.append((message.id, strings))
    assert missing == [] and broken == []


def test_the_language_follows_the_browser_and_the_switch_is_kept(trained_workspace):
    assert [i18n.from_browser(x) for x in ("de-DE", "fr", "es_ES", "pt-BR", None, "")] == \
        ["de", "fr", "es", "en", "en", "en"]
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["workspace"] = trained_workspace
    at.run()
    switch = next(s for s in at.selectbox if s.label.endswith("Language"))
    switch.set_value("de").run()
    assert not at.exception
    assert at.session_state["workspace"].language == "de"
    assert any(t.value == "MNIST Live" for t in at.title)
    later = AppTest.from_file(APP, default_timeout=60)  # another session of this workspace: German from the start
    later.query_params["workspace"] = trained_workspace
    later.run()
    i18n.use("de")
    later.switch_page("pages/train.py").run()
    assert later.session_state["language"] == "de"
    assert any(b.label == i18n.gettext("Train") for b in later.button)
    i18n.use("en")


def test_numbers_are_written_each_language_s_way():
    written = {}
    for code in ("en", "de", "fr", "es"):
        i18n.use(code)
        written[code] = (i18n.number(12345.678, 1), i18n.percent(0.9015, 1))
    i18n.use("en")
    assert written["en"] == ("12,345.7", "90.1%")  # rounded as Python rounds: "{:.1%}".format(0.9015)
    assert written["de"] == ("12.345,7", "90,1\xa0%") and written["es"][0] == "12.345,7"
    assert written["fr"][0].replace("\u202f", " ") == "12 345,7"


def test_charts_write_their_numbers_each_language_s_way():
    """Axes, legends and tooltips: Vega-Lite formats them with the spec's locale (0.2 on a German page before)."""
    import pandas as pd
    from pages import common
    frame = pd.DataFrame({"epoch": [1, 2], "metric": "accuracy", "data": "test", "value": [0.5, 0.75]})
    written = {}
    for code in ("en", "de", "fr"):
        i18n.use(code)
        written[code] = common.curve_chart(frame, "accuracy").to_dict()["config"]["locale"]["number"]
    i18n.use("en")
    assert (written["en"]["decimal"], written["en"]["percent"]) == (".", "%")
    assert (written["de"]["decimal"], written["de"]["thousands"], written["de"]["percent"]) == (",", ".", "\xa0%")
    assert written["fr"]["decimal"] == "," and written["fr"]["thousands"].isspace()


def _train_page(workspace: str, code: str) -> AppTest:
    """The workspace's Train page in that language (which stays the current one: the caller goes back to en)."""
    i18n.use(code)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["language"] = code
    at.query_params["workspace"] = workspace
    at.run()
    _page(at, "pages/train.py")
    return at


def test_the_runs_table_writes_its_numbers_in_the_page_s_language(trained_workspace):
    """A table column's own format is English only ("89.8%" on a German page): the table's display values are the
    language's, its values stay numbers (it sorts as numbers)."""
    import pyarrow as pa
    shown = {}
    for code in ("en", "de"):
        at = _train_page(trained_workspace, code)
        table = at.dataframe[0]
        assert table.value["test acc"].dtype.kind == "f"
        values = pa.ipc.open_stream(table.proto.arrow_data.styler.display_values).read_all().to_pandas() \
            if table.proto.arrow_data.styler.display_values else None
        shown[code] = (None if values is None else str(values["test acc"].iloc[0]), float(table.value["test acc"][0]))
    i18n.use("en")
    number = shown["en"][1]
    assert shown["de"][0] == f"{number:.1f}".replace(".", ",") + "\xa0%", shown


def test_a_chart_s_numbers_are_written_in_the_page_s_language(trained_workspace):
    """The table under a chart: its headers are the axes' words and its numbers the language's ("0,1235")."""
    tables = {}
    for code in ("en", "de"):
        at = _train_page(trained_workspace, code)
        loss = i18n.gettext("The numbers: {title}").format(title=i18n.gettext("Loss per epoch"))
        tables[code] = next(e for e in at.expander if e.label == loss).table[0].value
    i18n.use("en")
    en, de = tables["en"], tables["de"]
    assert (en.index.name, list(en.columns)) == ("epoch", ["train", "test"])
    assert (de.index.name, list(de.columns)) == ("Epoche", ["Training", "Test"])
    assert [f"{v:.4f}".replace(".", ",") for v in en["test"]] == list(de["Test"])


def test_percentages_drawn_under_digit_images_have_no_missing_glyphs():
    """Explore's mosaics write each image's confidence under it: "23 %" in German and French has a no-break space,
    which the picture's font lacks (it drew a box)."""
    from mnist_model.pictures import digit_mosaic
    images = np.zeros((2, 28, 28), np.float32)
    for code in ("de", "fr"):
        i18n.use(code)
        written = [i18n.percent(0.23), i18n.percent(0.5)]
        i18n.use("en")
        assert written[0] != "23 %"  # the language's own space
        assert np.array_equal(digit_mosaic(images, written), digit_mosaic(images, ["23 %", "50 %"])), code


@pytest.mark.parametrize("language", [code for code in i18n.LANGUAGES if code != "en"])
def test_every_page_renders_in_every_language(trained_workspace, language):
    i18n.use(language)
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["language"] = language
        at.query_params["workspace"] = trained_workspace
        at.run()
        for path in ("pages/train.py", "pages/draw.py", "pages/explore.py", "pages/class.py"):
            _page(at, path)
            if path == "pages/train.py":
                assert any(t.value == i18n.gettext("Train the network") != "Train the network" for t in at.title)
            if path == "pages/draw.py":
                at.number_input(key="test_image_0").set_value(5).run()
                assert not at.exception
                captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
                assert any(i18n.gettext("What the network sees (28x28), from {source}").split("{")[0] in c
                           for c in captions), captions
    finally:
        i18n.use("en")
