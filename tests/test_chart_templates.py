"""The curve charts are built once per shape and filled with each run's data: the same chart as Altair's own."""
import io

import pandas as pd
import pyarrow as pa
import pytest

from mnist_model.records import EpochMetrics


def _history(runs: dict) -> pd.DataFrame:
    from pages.common import history_frame
    frames = [history_frame([EpochMetrics(e, e, 1 / e + r, 0.5 + e / 20, 1.1 / e + r, 0.45 + e / 21)
                             for e in range(1, epochs + 1)], f"Run {r}") for r, epochs in runs.items()]
    return pd.concat(frames)


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def _rows(spec: dict, layer: dict) -> list[dict]:
    values = spec["datasets"][layer["data"]["name"]]
    if isinstance(values, bytes):  # the template's, in Arrow
        values = pa.ipc.open_stream(io.BytesIO(values)).read_all().to_pandas().to_dict("records")
    return [{k: (round(v, 9) if isinstance(v, float) else v) for k, v in row.items()} for row in values]


def _without_data(spec: dict) -> dict:
    spec = {k: v for k, v in spec.items() if k not in ("datasets", "data", "$schema")}
    if "layer" in spec:
        spec["layer"] = [{k: v for k, v in layer.items() if k != "data"} for layer in spec["layer"]]
    return spec


@pytest.mark.parametrize("metric", ["loss", "accuracy"])
@pytest.mark.parametrize("shape", [dict(runs={1: 3}), dict(runs={1: 3}, epochs=5), dict(runs={1: 4}, best_epoch=2),
                                   dict(runs={1: 3, 2: 5}, by_run=True), dict(runs={1: 1}, by_run=True),
                                   dict(runs={1: 6}, by_run=True, best_epoch=3)])
def test_a_curve_chart_from_its_template_is_the_chart_altair_builds(metric, shape):
    from pages import common
    frame = _history(shape["runs"])
    args = dict(epochs=shape.get("epochs"), by_run=shape.get("by_run", False), best_epoch=shape.get("best_epoch"))
    direct = common.curve_chart(frame, metric, **args).to_dict(validate=False)
    for attempt in range(2):  # the second time from the kept template, with the same data put in again
        templated, table, title = common.curve_spec(frame, metric, **args)
        assert _without_data(templated) == _without_data(direct)
        assert [_rows(templated, layer) for layer in _layers(templated)] == \
            [_rows(direct, layer) for layer in _layers(direct)]
        assert title == common.chart_title(direct)
        shown = table.to_pandas()  # one row per epoch, a column per run and train/test
        assert shown.index.name == "epoch" and list(shown.index) == list(range(1, max(shape["runs"].values()) + 1))
        lines = frame[frame["metric"] == metric]
        names = [f"Run {r} {d}" if args["by_run"] else d for r in shape["runs"] for d in ("train", "test")]
        assert list(shown.columns) == names
        for row in lines.itertuples():
            column = f"{row.run} {row.data}" if args["by_run"] else row.data
            assert shown.loc[row.epoch, column] == pytest.approx(round(row.value, 4))


def test_a_template_is_filled_with_each_run_s_own_data():
    from pages import common
    one, _, _ = common.curve_spec(_history({1: 3}), "loss")
    other, _, _ = common.curve_spec(_history({2: 3}), "loss")
    assert one["layer" if "layer" in one else "mark"] == other["layer" if "layer" in other else "mark"]
    assert _rows(one, one) != _rows(other, other)
