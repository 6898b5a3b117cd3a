"""TrainConfig defaults and its URL round trip; the curve reading, confusion and sweep helpers."""
import json
from pathlib import Path

import numpy as np

from mnist_model.config import PRESETS, TrainConfig, from_query
from mnist_model.insights import (compare_runs, confident_mistakes, confusion_matrix, overfitting_grade,
                                  per_class_accuracy, read_curves, reading_grade, sweep_plan, sweep_value)
from mnist_model.training import EpochMetrics


def test_defaults_are_the_notebook():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.hidden_units, c.optimizer, c.train_size, c.dataset, c.architecture) == \
        (5, 128, 512, "rmsprop", 0, "mnist", "dense")
    assert c.to_query() == {} and PRESETS["The notebook"] == c


def test_query_round_trip():
    c = TrainConfig(epochs=2, batch_size=256, train_size=2000, learning_rate=0.0005, optimizer="adam")
    q = c.to_query()
    assert q == {"epochs": "2", "batch_size": "256", "train_size": "2000", "learning_rate": "0.0005",
                 "optimizer": "adam"}
    back, notices = from_query(q)
    assert back == c and notices == []


def test_the_brief_settings_name_only_what_differs_from_the_notebook():
    assert TrainConfig().brief() == "5 epochs, batch 128"
    assert PRESETS["Fix the overfitting"].brief(epochs_run=10) == \
        "10 of 40 epochs, batch 32, 500 examples, dropout 0.5, early stop 3"
    assert TrainConfig(hidden_layers=2, hidden_units=64, optimizer="adam", l2=1e-4, dataset="fashion").brief() == \
        "5 epochs, batch 128, 2 layers, 64 hidden, adam, L2 0.0001, Fashion"
    assert TrainConfig(architecture="cnn", hidden_units=64).brief(epochs_run=5) == "5 epochs, batch 128, CNN"


def test_bad_query_values_are_clamped_or_ignored_with_notices():
    c, notices = from_query({"epochs": "-3", "batch_size": "100", "train_size": "abc", "learning_rate": "nan",
                             "optimizer": "<script>", "hidden_units": "1e9", "evil": "1", "seed": ["1", "7"]})
    assert c.epochs == 1 and c.batch_size == 128 and c.train_size == 0 and c.learning_rate == 0.001
    assert c.optimizer == "rmsprop" and c.hidden_units == 2048 and c.seed == 7
    text = " ".join(notices)
    for word in ("epochs", "batch_size", "train_size", "learning_rate", "optimizer", "hidden_units", "'evil'"):
        assert word in text
    assert from_query({"train_size": "5"})[0].train_size == 100


def test_overfit_preset_uses_few_examples_and_many_epochs():
    p = PRESETS["Overfit on purpose"]
    assert p.train_size <= 1000 and p.epochs >= 20


def _epochs(train, test, test_loss=None):
    test_loss = test_loss or [1 - t for t in test]
    return [EpochMetrics(i + 1, 1 - a, a, tl, t, 1.0) for i, (a, t, tl) in enumerate(zip(train, test, test_loss))]


def _fixture(name):
    """The real curves of a preset's run on the offline sample, recorded once (tests/fixtures)."""
    data = json.loads((Path(__file__).parent / "fixtures" / f"curves-{name}.json").read_text())
    return [EpochMetrics(**m) for m in data["epochs"]]


def test_overfit_on_purpose_gets_the_strongest_words_and_the_notebook_weaker_ones():
    overfit, notebook = _fixture("overfit-on-purpose"), _fixture("notebook")
    assert overfitting_grade(overfit)[0] == "clear" and overfitting_grade(notebook)[0] == "slight"
    strong = read_curves(overfit)
    assert "clearly overfitting" in strong and "100.0%" in strong and "14.5 points" in strong
    assert "test loss has risen from 0.50 at epoch 7 to 0.74" in strong
    mild = read_curves(notebook)
    assert "starting to overfit" in mild and "clearly" not in mild


def test_curve_reading_grades_hand_made_curves():
    train_up = [0.8, 0.9, 0.95, 0.99, 1.0]
    clear = _epochs(train_up, [0.80, 0.86, 0.87, 0.86, 0.855], [0.5, 0.4, 0.38, 0.45, 0.55])
    slight = _epochs([0.8, 0.86, 0.89, 0.91, 0.92], [0.80, 0.85, 0.87, 0.872, 0.872], [0.5, 0.4, 0.38, 0.39, 0.40])
    none = _epochs([0.8, 0.85, 0.88, 0.9, 0.91], [0.79, 0.84, 0.87, 0.89, 0.90], [0.5, 0.4, 0.35, 0.32, 0.30])
    gap_only = _epochs([0.9, 0.97, 0.99], [0.80, 0.84, 0.86], [0.5, 0.45, 0.42])  # apart, but test still improves
    assert [overfitting_grade(c)[0] for c in (clear, slight, none, gap_only)] == ["clear", "slight", "none", "none"]
    assert "clearly overfitting" in read_curves(clear) and "epoch 3" in read_curves(clear)
    assert "starting to overfit" in read_curves(slight)
    assert "overfit" not in read_curves(none)
    assert "more training examples would narrow the gap" in read_curves(gap_only)
    # Training accuracy stuck at 100% while its loss still falls: the case the old reading missed.
    flat_train = [EpochMetrics(i + 1, loss, 1.0, test_loss, test, 1.0) for i, (loss, test_loss, test) in
                  enumerate([(0.05, 0.5, 0.85), (0.02, 0.45, 0.86), (0.01, 0.6, 0.85), (0.005, 0.7, 0.84)])]
    assert overfitting_grade(flat_train)[0] == "clear"


def test_early_stopping_with_a_wide_gap_left_is_not_read_as_a_success():
    fixed = _fixture("fix-the-overfitting")  # Fix the overfitting on 500 examples: stopped at 10, kept epoch 7
    reading = read_curves(fixed, best_epoch=7)
    assert reading.startswith("Early stopping kept epoch 7") and "is a wide gap" in reading
    assert reading_grade(fixed, 7) == "slight"  # shown in blue, not in the green of a success
    narrow = _epochs([0.8, 0.86, 0.89, 0.91, 0.93], [0.80, 0.85, 0.87, 0.868, 0.865], [0.5, 0.4, 0.38, 0.40, 0.43])
    assert reading_grade(narrow, 3) == "none" and "wide gap" not in read_curves(narrow, 3)
    assert reading_grade(_fixture("overfit-on-purpose")) == "clear"


def test_curve_reading_close_curves_and_still_rising():
    assert "close" in read_curves(_epochs([0.9, 0.95, 0.96], [0.9, 0.95, 0.951]))
    assert "more epochs would probably help" in read_curves(_epochs([0.8, 0.9], [0.8, 0.9]))
    assert "No epoch" in read_curves([])


def test_confusion_matrix_and_per_class_accuracy():
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], classes=3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    np.testing.assert_allclose(per_class_accuracy(m), [0.5, 1.0, 2 / 3])


def test_confident_mistakes_most_confident_first():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95]])
    assert confident_mistakes(probs, np.array([0, 0, 0, 1]), k=5).tolist() == [1, 2]


def test_sweep_plan_drops_sizes_larger_than_the_data():
    plan = sweep_plan(TrainConfig(epochs=3), n_train=4000)
    assert [c.train_size for c, _ in plan] == [500, 2000, 0] and all(c.epochs == 3 for c, _ in plan)
    assert [name for _, name in plan] == ["Sweep 500", "Sweep 2000", "Sweep all"]


def test_sweeps_of_any_knob_and_their_names():
    base = TrainConfig(epochs=3, train_size=500)
    for knob in ("epochs", "dropout", "l2", "hidden_units"):
        plan = sweep_plan(base, 4000, knob)
        values = [getattr(c, knob) for c, _ in plan]
        assert len(set(values)) == len(plan) >= 4
        assert all(c.differences(base) in ([knob], []) for c, _ in plan)  # only the swept knob changes
        assert [sweep_value(name, knob) for _, name in plan] == [float(v) for v in values]
    assert sweep_value("Sweep all", "train_size") == 0 and sweep_value("Run 3", "dropout") is None


def test_comparing_two_runs_that_differ_in_one_knob():
    from test_store import make_run
    before, after = make_run("Run 1", acc=0.655), make_run("Run 2", acc=0.70)
    before.config, after.config = TrainConfig(epochs=40), TrainConfig(epochs=40, dropout=0.3)
    text = compare_runs(before, after)
    assert text.startswith("With dropout 0.3 (instead of dropout 0) the gap fell from 14.5 to 10.0 points, test "
                           "accuracy rose from 65.5% to 70.0%")
    assert compare_runs(before, before) is None  # nothing changed
    after.config = TrainConfig(epochs=10, batch_size=32, dropout=0.3)
    assert compare_runs(before, after) is None  # three knobs: no single cause to name


def test_a_one_epoch_chart_labels_its_epoch_as_a_whole_number():
    from mnist_model.records import EpochMetrics
    from pages import common
    frame = common.history_frame([EpochMetrics(1, 0.5, 0.8, 0.4, 0.85, 1.0)])
    spec = common.curve_chart(frame, "accuracy", 1).to_dict()
    assert spec["encoding"]["x"]["axis"]["format"] == "d"  # Vega wrote "1.000000" under a lone epoch
