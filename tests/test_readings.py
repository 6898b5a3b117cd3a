"""Properties of the curve readings over generated curves: the grade never softens as the gap widens, "close" only
for a small gap, every quoted number is the number it reads, and comparisons quote the epochs actually trained."""
import re
from dataclasses import replace

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mnist_model.config import TrainConfig
from mnist_model.insights import GAP_WARN, compare_runs, overfitting_grade, read_curves, reading_grade
from mnist_model.records import EpochMetrics
from mnist_model.runs import Run

SEVERITY = {"none": 0, "slight": 1, "clear": 2}
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
accuracy = st.floats(0.05, 1.0, allow_nan=False).map(lambda a: round(a, 4))
loss = st.floats(0.001, 3.0, allow_nan=False).map(lambda v: round(v, 4))


@st.composite
def curves(draw, min_size=1, max_size=12):
    """Per-epoch metrics of every shape a run leaves: rising, flat, noisy, overfitting, negative gaps."""
    n = draw(st.integers(min_size, max_size))
    shape = draw(st.sampled_from(["random", "learning", "overfitting", "flat", "behind"]))
    out = []
    for i in range(n):
        if shape == "random":
            tr, te, lo, tl = draw(accuracy), draw(accuracy), draw(loss), draw(loss)
        elif shape == "flat":
            tr, te, lo, tl = 0.9, 0.9 + draw(st.floats(-0.01, 0.01)), 0.3, 0.3 + draw(st.floats(-0.01, 0.01))
        else:
            t = (i + 1) / n
            noise = draw(st.floats(-0.02, 0.02))
            tr = min(1.0, 0.5 + 0.5 * t + noise)
            te = {"learning": 0.5 + 0.4 * t, "overfitting": 0.8 - 0.1 * max(t - 0.5, 0),
                  "behind": 0.7 + 0.25 * t}[shape] + draw(st.floats(-0.02, 0.02))  # behind: dropout, or one epoch
            lo = max(0.001, 1.5 * (1 - t) + noise)
            tl = {"learning": 1.0 - 0.5 * t, "overfitting": 0.5 + abs(t - 0.4), "behind": 0.6 - 0.3 * t}[shape]
        out.append(EpochMetrics(i + 1, round(lo, 4), round(min(max(tr, 0.0), 1.0), 4), round(tl, 4),
                                round(min(max(te, 0.0), 1.0), 4), 1.0))
    return out


@st.composite
def curves_and_best(draw):
    """Curves and, half the time, the epoch that early stopping kept."""
    epochs = draw(curves())
    best = draw(st.one_of(st.none(), st.integers(1, len(epochs))))
    return epochs, best


def _read_at(epochs, best):
    return best - 1 if best else len(epochs) - 1


def _widened(epochs, index, by, side):
    """The same curves with one epoch's train-test gap `by` wider: training accuracy up or test accuracy down."""
    m = epochs[index]
    if side == "train":
        m = replace(m, accuracy=round(min(m.accuracy + by, 1.0), 4))
    else:
        m = replace(m, test_accuracy=round(max(m.test_accuracy - by, 0.0), 4))
    return epochs[:index] + [m] + epochs[index + 1:]


# Lowering the last test accuracy moved the best epoch before the lowest test loss, and "training still improves"
# was then judged against that earlier epoch: clearly overfitting at a 5-point gap, nothing at a 7-point one.
LOSS_BOUNCES = [EpochMetrics(1, 0.2, 0.80, 0.5, 0.86, 1.0), EpochMetrics(2, 0.5, 0.85, 0.4, 0.80, 1.0),
                EpochMetrics(3, 0.4, 0.90, 0.45, 0.84, 1.0), EpochMetrics(4, 0.3, 0.92, 0.5, 0.87, 1.0)]


@PROPERTY
@given(curves_and_best(), st.floats(0.0, 0.3), st.sampled_from(["train", "test"]))
@example((LOSS_BOUNCES, None), 0.02, "test")
def test_the_grade_never_softens_as_the_gap_widens(case, by, side):
    epochs, best = case
    index = _read_at(epochs, best)
    wider = _widened(epochs, index, by, side)
    if best is None:
        assert SEVERITY[overfitting_grade(wider)[0]] >= SEVERITY[overfitting_grade(epochs)[0]]
    assert SEVERITY[reading_grade(wider, best)] >= SEVERITY[reading_grade(epochs, best)]


@PROPERTY
@given(curves_and_best(), st.sampled_from([0.0, 0.3]))
def test_close_only_for_a_small_gap_and_clearly_only_for_a_wide_one(case, dropout):
    epochs, best = case
    m = epochs[_read_at(epochs, best)]
    gap = m.accuracy - m.test_accuracy
    text = read_curves(epochs, best, dropout=dropout)
    if "close" in text:
        assert abs(gap) <= GAP_WARN, text
    if "clearly overfitting" in text or reading_grade(epochs, best) == "clear":
        assert gap > GAP_WARN, text  # memorising shows as training accuracy above test accuracy


def _numbers_check(text, epochs, best):
    """Every percentage, points figure, loss and epoch number in text comes from the curves."""
    m = epochs[_read_at(epochs, best)]
    gap = (m.accuracy - m.test_accuracy) * 100
    accuracies = {f"{v * 100:.1f}" for e in epochs for v in (e.accuracy, e.test_accuracy)}
    for pct in re.findall(r"(\d+\.\d)%", text):
        assert pct in accuracies, (pct, text)
    for pts in re.findall(r"(-?\d+\.\d) points", text):
        assert abs(float(pts) - abs(gap)) <= 0.051 or abs(float(pts) - gap) <= 0.051, (pts, gap, text)
    losses = {f"{e.test_loss:.2f}" for e in epochs}
    for value in re.findall(r"from (\d+\.\d\d) at epoch|to (\d+\.\d\d)\b", text):
        assert any(v in losses for v in value if v), (value, text)
    for n in re.findall(r"epoch (\d+)", text):
        assert 1 <= int(n) <= len(epochs), (n, text)
    head = re.match(r"After (\d+) epochs? ", text)
    if head:
        assert int(head.group(1)) == len(epochs), text


@PROPERTY
@given(curves_and_best(), st.sampled_from([0.0, 0.4]))
def test_every_number_quoted_is_the_number_it_reads(case, dropout):
    epochs, best = case
    text = read_curves(epochs, best, dropout=dropout)
    _numbers_check(text, epochs, best)
    m = epochs[_read_at(epochs, best)]
    assert f"{m.accuracy:.1%}" in text and f"{m.test_accuracy:.1%}" in text


def test_the_issues_runs_are_read_as_they_are():
    one = [EpochMetrics(1, 1.2, 0.609, 0.7, 0.784, 1.0)]  # 1 epoch on 1,000 examples
    text = read_curves(one)
    assert "close" not in text and "17.5 points" in text and "averaged over the epoch" in text, text
    behind = [EpochMetrics(i + 1, 0.5 - 0.05 * i, 0.85 + 0.01 * i, 0.3, 0.919 + 0.01 * i, 1.0) for i in range(5)]
    text = read_curves(behind, dropout=0.5)  # a gap of -6.9 with dropout 0.5
    assert "close" not in text and "6.9 points" in text and "dropout" in text.lower(), text


def _run(planned, trained, dropout=0.0, acc=0.9):
    epochs = [EpochMetrics(i + 1, 0.5, acc, 0.4, acc - 0.05, 1.0) for i in range(trained)]
    return Run(TrainConfig(epochs=planned, dropout=dropout, patience=3), epochs, "finished", "MNIST", name="Run")


@PROPERTY
@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 50), st.integers(1, 50),
       st.sampled_from(["epochs", "dropout"]))
def test_comparisons_quote_the_epochs_actually_trained(planned_a, planned_b, trained_a, trained_b, knob):
    assume(trained_a <= planned_a and trained_b <= planned_b)
    if knob == "epochs":
        assume(planned_a != planned_b)
        before, after = _run(planned_a, trained_a), _run(planned_b, trained_b, acc=0.92)
    else:
        before, after = _run(planned_a, trained_a), _run(planned_a, trained_b, dropout=0.3, acc=0.92)
    text = compare_runs(before, after)
    assert text is not None
    quoted = [int(n) for n in re.findall(r"(?<!\d of )\b(\d+)(?: of \d+)? epochs?\b", text)]
    assert set(quoted) <= {trained_a, trained_b}, text
    if trained_a != trained_b:  # a difference in training length is never hidden behind the knob
        assert {trained_a, trained_b} <= set(quoted), text


def test_the_issues_comparisons_say_how_long_each_run_trained():
    stopped = [_run(50, n) for n in (1, 9, 19)]
    text = compare_runs(replace_config(stopped[0], dropout=0.2), stopped[1])
    assert "With 50 epochs" not in text and "9 of 50 epochs" in text and "1 of 50 epochs" in text, text
    text = compare_runs(_run(10, 10), stopped[2])
    assert text.startswith("With 19 of 50 epochs (instead of 10 epochs)"), text


def replace_config(run, **changes):
    run.config = replace(run.config, **changes)
    return run
