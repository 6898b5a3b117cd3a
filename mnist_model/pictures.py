"""Pictures for the pages: digits in a labelled grid, enlarged pixels, weights in red and blue (NumPy and PIL)."""
from __future__ import annotations

import numpy as np

from . import palette

MOSAIC_FONT_PX = 16  # labels under digit images: readable from the back of a room


def digit_mosaic(images: np.ndarray, labels: list[str], columns: int = 10, scale: int = 3,
                 font_px: int = MOSAIC_FONT_PX) -> np.ndarray:
    """Images (n, 28, 28) in a grid, each with its label underneath (large enough to read when projected):
    one RGB picture, one element on the page."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(size=font_px)
    # Pillow's font has no no-break spaces, which German and French percentages use ("23 %"): a box in their place
    labels = [str(label).replace("\u202f", " ").replace("\u00a0", " ")[:14] for label in labels]
    side = 28 * scale
    caption = font_px + 6
    width = max(side, max((int(font.getlength(label)) for label in labels), default=0) + 4)
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * (width + 6), rows * (side + caption + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * (width + 6), (i // columns) * (side + caption + 6)
        sheet.paste(Image.fromarray(pixels_image(img, scale)), (x + (width - side) // 2, y))
        draw.text((x + 2, y + side + 2), label, fill="black", font=font)
    return np.asarray(sheet)


def pixels_image(img: np.ndarray, scale: int = 8, grid: bool = False) -> np.ndarray:
    """(28, 28) image (uint8 or [0, 1] float) enlarged with visible pixels: (28*scale, 28*scale) uint8."""
    a = np.asarray(img, np.float32)
    a = (a * 255 if a.max() <= 1.0 else a).clip(0, 255).astype(np.uint8)
    big = np.kron(a, np.ones((scale, scale), np.uint8))
    if grid:
        big[::scale, :] = np.maximum(big[::scale, :], 40)
        big[:, ::scale] = np.maximum(big[:, ::scale], 40)
    return big


def diverging(weights: np.ndarray, scale: int = 3, top: float | None = None) -> np.ndarray:
    """(h, w) weights -> (h*scale, w*scale, 3) RGB image: red positive, blue negative, white zero; full colour at
    top (default: the largest magnitude in weights)."""
    w = np.clip(weights / (top or np.abs(weights).max() or 1), -1, 1)[..., None]
    up, down = (np.array([int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)], np.float32)
                for c in (palette.WEIGHT_UP, palette.WEIGHT_DOWN))
    rgb = 1 + np.clip(w, 0, 1) * (up - 1) + np.clip(-w, 0, 1) * (down - 1)  # white at 0, full colour at +-top
    return np.kron((rgb * 255).astype(np.uint8), np.ones((scale, scale, 1), np.uint8))


def weight_sheet(w1: np.ndarray, units, columns: int = 16, tops=None) -> np.ndarray:
    """Several hidden units' incoming weights (w1: (784, units)) as one picture; tops: each tile's full-colour
    magnitude (default: its own largest), so that frames of one unit over time share a scale."""
    tops = list(tops) if tops is not None else [None] * len(units)
    tiles = [np.pad(diverging(w1[:, u].reshape(28, 28), top=top), ((2, 2), (2, 2), (0, 0)), constant_values=255)
             for u, top in zip(units, tops)]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    return np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
