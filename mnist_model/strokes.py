"""Redraw an MNIST digit as pen strokes on a big canvas, as a person would draw it (for tests and benchmarks)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

UPSCALE = 4  # the digit is thinned at 4x its 28-px size, so the skeleton is smooth


def _zhang_suen(b: np.ndarray) -> np.ndarray:
    """Thin a binary image to a one-pixel skeleton (Zhang & Suen, 1984)."""
    img = np.pad(b.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p2, p3, p4 = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:]
            p5, p6, p7 = img[2:, 2:], img[2:, 1:-1], img[2:, :-2]
            p8, p9 = img[1:-1, :-2], img[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            neighbours = sum(ring[:8])
            transitions = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.uint8) for i in range(8))
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            delete = (img[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & cond
            if delete.any():
                img[1:-1, 1:-1][delete] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def skeleton_points(digit: np.ndarray) -> np.ndarray:
    """(28, 28) image in [0, 1] -> (k, 2) float (y, x) points of its skeleton, in 28-px units."""
    big = np.asarray(Image.fromarray(np.asarray(digit, np.float32), mode="F").resize(
        (28 * UPSCALE, 28 * UPSCALE), Image.Resampling.BILINEAR))
    ys, xs = np.nonzero(_zhang_suen(big > 0.5))
    return (np.stack([ys, xs], axis=1) + 0.5) / UPSCALE


def redraw(digit: np.ndarray, size: float, top_left: tuple[float, float], pen: float,
           canvas: int = 280) -> np.ndarray:
    """Draw digit's skeleton with a round pen: longer side `size` px at top_left (y, x) -> (canvas, canvas, 4) uint8."""
    pts = skeleton_points(digit)
    img = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 255))
    if len(pts):
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        scale = size / max(float((hi - lo).max()), 1e-6)
        pts = (pts - lo) * scale + np.asarray(top_left)
        draw = ImageDraw.Draw(img)
        r = pen / 2
        for y, x in pts:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 255))
    return np.asarray(img)


def random_redraw(digit: np.ndarray, rng: np.random.Generator, canvas: int = 280,
                  size_range=(90, 230), pen_range=(14, 27)) -> np.ndarray:
    """Redraw at a random size, position and pen width, the digit staying on the canvas."""
    size, pen = rng.uniform(*size_range), rng.uniform(*pen_range)
    margin = pen / 2 + 1
    room = max(canvas - size - 2 * margin, 0)
    return redraw(digit, size, (margin + rng.uniform(0, room), margin + rng.uniform(0, room)), pen, canvas)
