"""Teach it your handwriting: fine-tuning on a few labelled drawings helps on them; the npz round trip."""
import numpy as np
import pytest

from mnist_model.config import TrainConfig
from mnist_model.errors import InputError
from mnist_model.handwriting import accuracy, drawings_from_npz, drawings_to_npz, fine_tune_task
from mnist_model.predict import Predictor
from mnist_model.preprocess import canvas_to_mnist
from mnist_model.runs import Run
from mnist_model.training import train

from test_preprocess import canvas


def _my_sevens():
    """A person's odd 7s: with a bar across the stem, drawn at different places and sizes."""
    out = []
    for dx, dy, s in [(0, 0, 1), (20, 10, 0.8), (-20, -5, 1.1), (10, -20, 0.9), (-10, 15, 0.7), (5, 5, 1.2)]:
        pts = [[(90, 60), (200, 60), (120, 230)], [(110, 150), (190, 150)]]
        moved = [[((x - 140) * s + 140 + dx, (y - 140) * s + 140 + dy) for x, y in line] for line in pts]
        out.append(canvas_to_mnist(canvas(moved, pen=22)))
    return np.stack(out)


def test_fine_tuning_on_a_few_drawings_raises_accuracy_on_them(trained, sample):
    run = Run(TrainConfig(epochs=5), trained.epochs, "finished", sample.title, trained.model.get_weights())
    images = _my_sevens()
    # Teach it that these marks are 4s: a label it surely does not give them now.
    labels = np.full(len(images), 4, np.uint8)
    before = accuracy(Predictor.for_run(run), images, labels)
    task = fine_tune_task(run, images, labels)
    assert len(task.extra_images) == len(images) * 40 and task.config.train_size == 1000
    result = train(task.config, sample, init_weights=task.init_weights, extra=(task.extra_images, task.extra_labels))
    after = accuracy(Predictor(result.model), images, labels)
    assert before < 0.5 and after == 1.0
    assert result.epochs[-1].test_accuracy > 0.8  # it still reads the test set


def test_drawings_npz_round_trip_and_bad_files():
    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    back, labels = drawings_from_npz(drawings_to_npz(images, np.array([1, 2, 3])))
    assert np.abs(back - images).max() <= 0.5 / 255 + 1e-6 and labels.tolist() == [1, 2, 3]
    with pytest.raises(InputError, match=r"^this file is not a drawings file saved by MNIST Live \(\.npz\)$"):
        drawings_from_npz(b"garbage")  # plain words: no BadZipFile, no Python internals
    import io
    out = io.BytesIO()
    np.savez(out, images=np.array([object()], dtype=object), labels=np.array([1]))
    with pytest.raises(InputError):
        drawings_from_npz(out.getvalue())
    with pytest.raises(InputError, match="0-9"):
        drawings_to_npz(images, np.array([1, 2, 12]))
