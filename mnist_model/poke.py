"""Poke a drawing: move, turn, scale it and change its strokes, and see how robust each network's answer is.

The dense network ties every weight to one pixel, so a digit moved a few pixels is a different input to it; the
CNN's detectors slide over the image. These functions work on the 28x28 image the networks see.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .i18n import _

CENTRE = 14.0  # MNIST digits are centred here (their centre of mass)
SHIFTS = tuple(range(-8, 9))  # pixels, for the robustness curve
ANGLES = tuple(range(-30, 31, 5))  # degrees: the Turn slider's range
SURE = 0.5  # a network "still says it" while the drawn digit's probability stays above this
STROKE_STEPS = 2  # stroke +2 is a full 3x3 dilation (thicker by a pixel each side), +1 half of that


def poke(image: np.ndarray, dx: float = 0, dy: float = 0, angle: float = 0, scale: float = 1.0,
         stroke: int = 0) -> np.ndarray:
    """(28, 28) float32 in [0, 1] moved by (dx, dy) pixels (right, down), turned by angle degrees (clockwise) and
    scaled about the centre, with strokes made thicker (stroke > 0) or thinner (< 0) by that many pixels."""
    img = Image.fromarray(np.asarray(image, np.float32), mode="F")
    if dx or dy or angle or scale != 1.0:
        rad = np.deg2rad(angle)
        cos, sin = np.cos(rad) / scale, np.sin(rad) / scale
        cx, cy = CENTRE + dx, CENTRE + dy  # where the centre lands
        # PIL maps each output pixel back to the input: input = A (output - (centre + shift)) + centre.
        img = img.transform((28, 28), Image.Transform.AFFINE,
                            (cos, sin, CENTRE - cos * cx - sin * cy, -sin, cos, CENTRE + sin * cx - cos * cy),
                            resample=Image.Resampling.BILINEAR)
    out = np.clip(np.asarray(img, np.float32), 0, 1)
    if stroke:
        grey = Image.fromarray((out * 255).round().astype(np.uint8), mode="L")
        grown = np.asarray(grey.filter(ImageFilter.MaxFilter(3) if stroke > 0 else ImageFilter.MinFilter(3)),
                           np.float32) / 255
        weight = min(abs(int(stroke)), STROKE_STEPS) / STROKE_STEPS  # a 28x28 stroke is 2-3 px: go gently
        out = out + weight * (grown - out)
    return out


@dataclass(frozen=True)
class Robustness:
    """The drawn class's probability as the drawing moves sideways and turns, for each network."""

    target: int
    shifts: tuple[int, ...]
    angles: tuple[int, ...]
    by_shift: dict[str, np.ndarray]  # network name -> (len(shifts),) probabilities
    by_angle: dict[str, np.ndarray]  # network name -> (len(angles),)

    def sure_range(self, name: str, kind: str) -> tuple[int, int] | None:
        """The widest range around 0 (shift or angle) over which the network stays above SURE, or None."""
        values, probs = (self.shifts, self.by_shift[name]) if kind == "shift" else (self.angles, self.by_angle[name])
        centre = values.index(0)
        if probs[centre] <= SURE:
            return None
        lo = hi = centre
        while lo > 0 and probs[lo - 1] > SURE:
            lo -= 1
        while hi < len(values) - 1 and probs[hi + 1] > SURE:
            hi += 1
        return values[lo], values[hi]

    def sentence(self, label: str) -> str:
        """What the curves show, one whole sentence per network."""
        parts = []
        for name in self.by_shift:
            shift, turn = self.sure_range(name, "shift"), self.sure_range(name, "angle")
            turned = turn is not None and turn != (0, 0)
            if shift is None:
                text = _("The {network} is never more than 50% sure of {label}, not even unmoved.")
            elif shift == (0, 0):
                text = _("The {network} is more than 50% sure of {label} only where it is and turned from {turn_low} "
                         "to {turn_high}°.") if turned else \
                    _("The {network} is more than 50% sure of {label} only where it is.")
            else:
                text = _("The {network} is more than 50% sure of {label} moved from {low} to {high} pixels sideways "
                         "and turned from {turn_low} to {turn_high}°.") if turned else \
                    _("The {network} is more than 50% sure of {label} moved from {low} to {high} pixels sideways.")
            low, high = shift or (0, 0)
            turn_low, turn_high = turn or (0, 0)
            parts.append(text.format(network=name, label=label, low=_signed(low), high=_signed(high),
                                     turn_low=_signed(turn_low), turn_high=_signed(turn_high)))
        return " ".join(parts)


def _signed(value: int) -> str:
    """−3 with a true minus sign, no '+0'."""
    return str(value).replace("-", "−")


def robustness(networks: dict, image: np.ndarray, target: int) -> Robustness:
    """networks: name -> predict(images (n, 28, 28)) -> (n, 10). The target class's probability for every shift
    and angle, computed in one batch per network."""
    shifted = np.stack([poke(image, dx=s) for s in SHIFTS])
    turned = np.stack([poke(image, angle=a) for a in ANGLES])
    return Robustness(target, SHIFTS, ANGLES, {name: predict(shifted)[:, target] for name, predict in networks.items()},
                      {name: predict(turned)[:, target] for name, predict in networks.items()})
