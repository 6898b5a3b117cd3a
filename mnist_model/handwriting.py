"""Teach it your handwriting: a user's labelled drawings, their npz round trip, and fine-tuning tasks."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np

from .errors import InputError
from .i18n import _
from .jobs import TrainTask

REPEATS = 40  # each drawing is seen this often per epoch, so a handful count among the MNIST examples
MNIST_MIX = 1000  # MNIST examples mixed in, so the network does not forget the rest
FINE_TUNE_EPOCHS = 3
MAX_DRAWINGS = 500  # per session: enough for a class exercise, small enough to keep in memory


def fine_tune_task(run, images: np.ndarray, labels: np.ndarray, epochs: int = FINE_TUNE_EPOCHS) -> TrainTask:
    """A task that continues training run's model on the drawings (m, 28, 28) in [0, 1] mixed with MNIST."""
    images, labels = check_drawings(images, labels)
    pixels = np.round(images * 255).astype(np.uint8)
    config = replace(run.config, epochs=epochs, train_size=MNIST_MIX)
    return TrainTask(config, init_weights=list(run.weights), extra_images=np.repeat(pixels, REPEATS, axis=0),
                     extra_labels=np.repeat(labels, REPEATS))


def accuracy(predict, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of images predict() labels right (NaN for no images)."""
    if len(images) == 0:
        return float("nan")
    return float((predict(images).argmax(axis=1) == labels).mean())


def check_drawings(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """(m, 28, 28) float32 in [0, 1] and (m,) uint8 labels 0-9, or InputError."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
        raise InputError(_("drawings must be (m, 28, 28) with m labels; got {images} and {labels}").format(
            images=images.shape, labels=labels.shape))
    if len(images) > MAX_DRAWINGS:
        raise InputError(_("{n} drawings; at most {most} are kept").format(n=len(images), most=MAX_DRAWINGS))
    if not np.issubdtype(images.dtype, np.number) or not np.issubdtype(labels.dtype, np.number):
        raise InputError(_("drawings and labels must be numbers"))
    images = images.astype(np.float32)
    if images.size and (not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 255):
        raise InputError(_("drawing pixels must be finite and within 0-1 (or 0-255)"))
    if images.size and images.max() > 1:
        images = images / 255.0
    if labels.size and (labels.min() < 0 or labels.max() > 9 or np.any(labels % 1)):
        raise InputError(_("labels must be digits 0-9"))
    return images, labels.astype(np.uint8)


def drawings_to_npz(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The drawings as a small npz: images (m, 28, 28) uint8, labels (m,) uint8."""
    images, labels = check_drawings(images, labels)
    out = io.BytesIO()
    np.savez_compressed(out, images=np.round(images * 255).astype(np.uint8), labels=labels)
    return out.getvalue()


def drawings_from_npz(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read drawings saved by drawings_to_npz; anything else is an InputError (never unpickled)."""
    if len(data) > 5 * 2**20:
        raise InputError(_("the file is larger than 5 MB: not a drawings file"))
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    except Exception:  # Any parse failure is the file's fault; its details mean nothing to a student.
        raise InputError(_("this file is not a drawings file saved by MNIST Live (.npz)")) from None
    return check_drawings(images, labels)
