"""NoveltyCheck: does a (28, 28) picture look like the training images at all, whatever the network says?"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 8  # stroke directions, 0-180 degrees (a stroke drawn up or down is the same stroke)
CELLS = ((28, 1.0), (14, 1.0), (7, 1.0), (4, 0.7))  # (cell side in pixels, weight): whole image down to 4 x 4 px
REFERENCES = 5000  # training images kept to compare with; more cost time per call and barely help
CALIBRATION = 2000  # of those, compared with the others to set the threshold
NEIGHBOURS = 3
PERCENTILE = 97.0  # flag what is further from the training images than this share of real ones are
CHUNK = 1000


def stroke_features(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) or (28, 28) in [0, 1] -> (n, 560) float32: where the strokes run in which direction.

    Histograms of gradient directions (8 bins, magnitude-weighted, square-rooted) over cells of 28, 14, 7 and 4 px.
    """
    x = np.asarray(images, np.float32).reshape(-1, 28, 28)
    out = []
    for start in range(0, len(x), CHUNK):
        part = x[start: start + CHUNK]
        p = np.pad(part, ((0, 0), (1, 1), (1, 1)))
        gx, gy = p[:, 1:-1, 2:] - p[:, 1:-1, :-2], p[:, 2:, 1:-1] - p[:, :-2, 1:-1]
        position = np.mod(np.arctan2(gy, gx), np.pi) * np.float32(BINS / np.pi)
        distance = np.abs(position[..., None] - np.arange(BINS, dtype=np.float32))
        distance = np.minimum(distance, BINS - distance)  # 0 and 180 degrees are neighbours
        h = np.hypot(gx, gy)[..., None] * np.maximum(0, 1 - distance)  # (n, 28, 28, BINS), split between 2 bins
        n = len(part)
        out.append(np.concatenate([np.sqrt(h.reshape(n, 28 // c, c, 28 // c, c, BINS).sum(axis=(2, 4)))
                                   .reshape(n, -1) * np.float32(w) for c, w in CELLS], axis=1))
    return np.concatenate(out) if out else np.zeros((0, sum((28 // c) ** 2 for c, _ in CELLS) * BINS), np.float32)


def _nearest(refs: np.ndarray, ref_norms: np.ndarray, features: np.ndarray, skip_self: bool = False) -> np.ndarray:
    """(n,) mean distance from each feature row to its NEIGHBOURS nearest references."""
    d2 = (features ** 2).sum(1)[:, None] - 2 * features @ refs.T + ref_norms[None]
    if skip_self:
        d2[np.arange(len(features)), np.arange(len(features))] = np.inf
    near = np.partition(d2, NEIGHBOURS - 1, axis=1)[:, :NEIGHBOURS]
    return np.sqrt(np.maximum(near, 0)).mean(axis=1)


@dataclass(frozen=True)
class Verdict:
    """unfamiliar: the picture is further from the training images than PERCENTILE% of real ones are;
    score: that distance over the threshold (1.0 is the threshold); why: one plain sentence."""

    unfamiliar: bool
    score: float
    why: str


class NoveltyCheck:
    """NoveltyCheck.fit(x_train)(image) -> Verdict, from the training images alone (never from the network)."""

    def __init__(self, refs: np.ndarray, threshold: float, noun: str = "digits"):
        self.refs = np.ascontiguousarray(refs, np.float32)
        self.refs.flags.writeable = False
        self.ref_norms = (self.refs ** 2).sum(axis=1)
        self.ref_norms.flags.writeable = False
        self.threshold = float(threshold)
        self.noun = noun

    @classmethod
    def fit(cls, x_train: np.ndarray, seed: int = 0, *, noun: str = "digits") -> "NoveltyCheck":
        """x_train: (n, 28, 28) uint8 training images (n >= 2 * NEIGHBOURS); noun: what they are, for `why`."""
        x = np.asarray(x_train)
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) <= NEIGHBOURS:
            raise ValueError(f"expected (n, 28, 28) training images, n > {NEIGHBOURS}; got {x.shape}")
        keep = np.random.default_rng(seed).permutation(len(x))[:REFERENCES]
        refs = stroke_features(x[keep] / np.float32(255))
        # Each calibration image against all the others: how far a real image is from its nearest neighbours.
        cal = refs[:CALIBRATION]
        distances = _nearest(refs, (refs ** 2).sum(axis=1), cal, skip_self=True)
        return cls(refs, float(np.percentile(distances, PERCENTILE)), noun)

    def score(self, images: np.ndarray) -> np.ndarray:
        """(n, 28, 28) or (28, 28) float32 in [0, 1] -> (n,) distance to the training images / threshold."""
        return _nearest(self.refs, self.ref_norms, stroke_features(images)) / self.threshold

    def __call__(self, image: np.ndarray) -> Verdict:
        """image: (28, 28) float32 in [0, 1], as canvas_to_mnist returns it."""
        image = np.asarray(image, np.float32)
        if image.shape != (28, 28):
            raise ValueError(f"expected a (28, 28) image, got {image.shape}")
        score = float(self.score(image)[0])
        share = f"{PERCENTILE:g}"
        if score > 1.0:
            return Verdict(True, score, f"This does not look like the {self.noun} the network learned from: it is "
                                        f"further from them than {share}% of real {self.noun} are, so the "
                                        "network's answer is little more than a guess.")
        return Verdict(False, score, f"This looks like the {self.noun} the network learned from: it is no further "
                                     f"from them than {share}% of real {self.noun} are.")

    def describe(self) -> str:
        """What the check is based on, in two sentences."""
        return (f"The check compares where the picture's strokes run, and in which direction, with "
                f"{len(self.refs):,} of the training {self.noun}, and measures how far it is from the {NEIGHBOURS} "
                f"most alike. A picture further from them than {PERCENTILE:g}% of real {self.noun} are is flagged: it "
                "never asks the network, so it works however sure the network claims to be.")
