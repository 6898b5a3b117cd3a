"""Colour: what people must tell apart stays apart under protanopia, deuteranopia and tritanopia (Machado 2009
simulation), and never by colour alone (dash, shape and names carry it too)."""
import re

import numpy as np
import pandas as pd
import pytest

from mnist_model import palette
from mnist_model.pictures import diverging

from conftest import ROOT


@pytest.mark.parametrize("viewer", [None, *palette.DEFICIENCIES])
def test_every_pair_people_must_tell_apart_stays_clearly_apart(viewer):
    close = [(what, round(palette.distance(a, b, viewer), 1)) for what, (a, b) in palette.MUST_DIFFER.items()
             if palette.distance(a, b, viewer) < palette.CLEARLY_APART]
    assert close == [], f"too close for {viewer or 'typical vision'}: {close}"


def test_the_simulation_loses_what_those_viewers_lose():
    """The check can fail: red against green is clear to most and lost to deuteranopes; the
    kept-epoch green the charts used to have met the test curve's orange for protanopes."""
    red, green = "#d62728", "#2ca02c"
    assert palette.distance(red, green) > 60
    assert palette.distance(red, green, "deuteranopia") < palette.CLEARLY_APART / 2
    assert palette.distance(green, palette.TEST, "protanopia") < palette.CLEARLY_APART / 2
    assert palette.distance("#0000ff", "#00ff00", "tritanopia") < palette.distance("#0000ff", "#00ff00")
    for matrix in palette.DEFICIENCIES.values():  # greys stay grey: white, black and every grey look the same
        assert np.allclose(matrix.sum(axis=1), 1, atol=1e-3)
    assert palette.distance("#777777", "#777777", "tritanopia") == pytest.approx(0, abs=0.5)


def test_the_pages_take_their_colours_from_the_palette():
    """One place for colours: no page names a colour of its own (the canvas's black and white aside)."""
    allowed = {"#FFFFFF", "#000000"}
    found = {(path.name, c) for path in (ROOT / "pages").glob("*.py")
             for c in re.findall(r"#[0-9a-fA-F]{6}\b", path.read_text()) if c.upper() not in allowed}
    assert found == set()
    picture = diverging(np.array([[1.0, -1.0, 0.0]]), scale=1)[0]
    hexes = ["#%02x%02x%02x" % tuple(int(v) for v in rgb) for rgb in picture]
    assert hexes == [palette.WEIGHT_UP, palette.WEIGHT_DOWN, "#ffffff"]


def _frame(runs: dict) -> pd.DataFrame:
    rows = [{"epoch": e, "data": d, "metric": "accuracy", "value": 0.5 + 0.1 * e + (d == "test") * 0.01, "run": r}
            for r, epochs in runs.items() for e in range(1, epochs + 1) for d in ("train", "test")]
    return pd.DataFrame(rows)


def test_curves_never_tell_train_from_test_or_one_run_from_another_by_colour_alone():
    from pages import common
    one = common.curve_chart(_frame({"Run 1": 3}), "accuracy").to_dict()
    assert {"strokeDash", "shape", "color"} <= set(one["encoding"])
    assert one["title"]["subtitle"] == common.train_test_key()
    overlay = common.curve_chart(_frame({"Run 1": 3, "Run 2": 5}), "accuracy", by_run=True).to_dict()
    lines, names = overlay["layer"]
    assert {"strokeDash", "shape"} <= set(lines["encoding"]) and lines["encoding"]["color"]["field"] == "run"
    assert names["mark"]["type"] == "text" and names["encoding"]["text"]["field"] == "run"
    labelled = overlay["datasets"][names["data"]["name"]]
    assert sorted((row["run"], row["epoch"]) for row in labelled) == [("Run 1", 3), ("Run 2", 5)]  # at each end
    kept = common.curve_chart(_frame({"Run 1": 4}), "accuracy", best_epoch=2).to_dict()
    assert any(layer["mark"].get("color") == palette.KEPT_EPOCH for layer in kept["layer"])


def test_robustness_curves_tell_the_networks_apart_by_shape_too():
    from mnist_model.poke import robustness
    from pages import common
    image = np.zeros((28, 28), np.float32)
    image[6:22, 13:15] = 1.0
    found = robustness({"dense": lambda x: np.tile(np.eye(10)[1], (len(x), 1)),
                        "CNN": lambda x: np.tile(np.eye(10)[7], (len(x), 1))}, image, 1)
    for chart in common.robustness_charts(found, "1"):
        encoding = chart.to_dict()["encoding"]
        assert encoding["shape"]["field"] == encoding["color"]["field"] == "network"
        assert encoding["color"]["scale"]["range"] == [palette.FIRST_NETWORK, palette.OTHER_NETWORK]
