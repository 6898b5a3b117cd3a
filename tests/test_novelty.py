"""NoveltyCheck on real data: scribbles drawn on the canvas are flagged, real digits redrawn as strokes are not."""
import dataclasses

import numpy as np
import pytest

from mnist_model.bench import TARGETS, novelty_figures, random_scribble
from mnist_model.data import load_dataset
from mnist_model.errors import DataError
from mnist_model.novelty import NoveltyCheck, Verdict
from mnist_model.preprocess import canvas_to_mnist


@pytest.fixture(scope="module")
def figures():
    return novelty_figures(300, seed=0)


def test_scribbles_are_flagged_and_redrawn_digits_are_not(figures):
    print({k: v for k, v in figures.items() if not k.startswith("_")})
    assert figures["novelty_scribbles_flagged"] >= TARGETS["novelty_scribbles_flagged"][1]  # measured 0.84-0.85
    assert figures["novelty_digits_flagged"] <= TARGETS["novelty_digits_flagged"][1]  # measured 0.03


def test_the_verdict_says_how_far_and_why(figures, sample):
    check = figures["_check"]
    far = check(figures["_scribbles"][0])
    near = check(sample.x_test[0] / np.float32(255))
    assert isinstance(far, Verdict) and dataclasses.is_dataclass(far)
    with pytest.raises(dataclasses.FrozenInstanceError):
        far.unfamiliar = False
    for verdict in (far, near):
        assert verdict.unfamiliar == (verdict.score > 1.0) and verdict.why.endswith(".")
        assert verdict.why.count(". ") == 0 and "97%" in verdict.why  # one sentence, with the threshold
    scores = check.score(np.stack(figures["_scribbles"][:50]))
    assert [check(s).score for s in figures["_scribbles"][:3]] == pytest.approx(scores[:3].tolist())
    assert "does not look like the digits" in check(figures["_scribbles"][int(np.argmax(scores))]).why
    assert not near.unfamiliar and "looks like the digits" in near.why
    assert "training digits" in check.describe() and "never asks the network" in check.describe()
    assert not check.refs.flags.writeable  # shared read-only between sessions
    with pytest.raises(ValueError):
        check(np.zeros((28, 27), np.float32))


def test_fit_on_60000_images_gives_the_same_answers_one_image_or_many(figures):
    """Fits on a full-size training set; one image at a time and a batch agree (their speed: mnist_model bench)."""
    x = np.tile(load_dataset("mnist").x_train, (15, 1, 1))[:60000]
    check = NoveltyCheck.fit(x)
    images = np.stack(figures["_scribbles"][:20])
    assert [check(image).score for image in images] == pytest.approx(check.score(images).tolist(), rel=1e-5)


def test_fashion_garments_are_familiar_and_scribbles_are_not(figures):
    try:
        fashion = load_dataset("fashion")
    except DataError:
        pytest.skip("Fashion-MNIST is not here")
    check = NoveltyCheck.fit(fashion.x_train, noun="garments")
    garments = [check(g / np.float32(255)) for g in fashion.x_test[:300]]
    scribbles = [check(s) for s in figures["_scribbles"]]
    assert np.mean([v.unfamiliar for v in garments]) <= 0.05  # measured 0.02
    assert np.mean([v.unfamiliar for v in scribbles]) >= 0.9  # measured 0.97
    assert "garments" in garments[0].why


def test_a_scribble_is_drawn_as_a_canvas_is():
    rgba = random_scribble(np.random.default_rng(1))
    assert rgba.shape == (280, 280, 4) and rgba.dtype == np.uint8 and canvas_to_mnist(rgba) is not None
