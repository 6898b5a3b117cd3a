"""canvas_to_mnist and decode_upload: turn a drawing or a photo into a (28, 28) image as MNIST was built."""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from .errors import InputError
from .i18n import _, number

MID_SIDE = 56  # the ink is first scaled to this size, where stroke width is measured and evened out
TARGET_STROKE = 2.64 * MID_SIDE / 20  # median MNIST stroke width at its 20-px scale (measured on t10k)
STROKE_BAND = (0.5, 2.0)  # widths within this factor of the target are MNIST-like and left alone
MNIST_CENTRE = 14.0  # where MNIST's digits have their centre of mass (t10k: row 13.99, column 14.01)
INK_GAIN = 1.3  # saturates stroke cores as MNIST's are (about half its ink pixels are > 0.9)
INK_THRESHOLD = 0.15  # ink below this fraction of the strongest ink is background
MIN_EXTENT = 0.04  # drawings smaller than this fraction of the canvas's longer side are specks
MAX_SIDE = 4096  # larger canvases are refused rather than processed slowly
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 25_000_000
LIGHT_SIDE = 160  # the paper's lighting is estimated at this size (longer side), where it is smooth and quick
PAPER_WINDOW = 1 / 8  # of the longer side: strokes narrower than this are ink, anything wider is the paper's light
STRONG_INK = 0.35  # darker than the paper around it by this fraction: a stroke (or the table beyond the paper)
FAINT_INK = 0.06  # darker by this fraction: part of a shadow or the paper's edge if joined to the picture's edge
NOT_PAPER = 0.45  # lit less than this fraction of the page's best-lit paper: not paper
PAPER_NOISE = 0.15  # pixels less than this much darker than their paper are never ink
STROKE_WINDOW = 2.5  # the paper's light is estimated over windows this many stroke widths wide


def _border(a: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels: where the background shows, whatever is drawn in the middle."""
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def _ink(image: np.ndarray) -> np.ndarray:
    """(H, W[, 3|4]) uint8 -> (H, W) float32 ink in [0, 1]: 1 is the strongest ink, 0 the background."""
    if image.ndim == 2:
        gray, alpha = image.astype(np.float32), None
    else:
        # ITU-R 601 luma, one channel at a time: slicing [..., :3] of uint8 copies ten times slower.
        gray = image[..., 0].astype(np.float32) * np.float32(0.299)
        gray += image[..., 1].astype(np.float32) * np.float32(0.587)
        gray += image[..., 2].astype(np.float32) * np.float32(0.114)
        alpha = image[..., 3] if image.shape[2] == 4 else None
    if alpha is not None and np.count_nonzero(alpha < 128) * 2 > alpha.size:
        ink = alpha.astype(np.float32)  # Ink on a transparent background: opacity is the ink.
    else:
        if alpha is not None and alpha.min() < 255:  # Composite onto black; an opaque canvas is unchanged.
            gray *= alpha / np.float32(255)
        background = float(np.median(_border(gray)))
        if background > 127 or np.median(gray) > 127:  # a shadow or the table can darken a photo's edges
            ink = _paper_ink(gray)  # Dark ink on a light page (a photo, or a light canvas).
        else:
            ink = gray
            ink -= min(background, 254.0)
    top = float(ink.max())
    if top <= 0:
        return np.zeros(image.shape[:2], np.float32)
    ink *= np.float32(1 / top)
    ink[ink < INK_THRESHOLD] = 0
    return ink


def _paper_light(small: np.ndarray, k: int) -> np.ndarray:
    """Closing: the brightest pixel near each point, then the darkest of those: strokes narrower than k go, the
    light's shape (gradients, shadows wider than k) stays."""
    return _rank_filter(_rank_filter(small, k, np.maximum, "edge"), k, np.minimum, "edge")


def _paper_ink(gray: np.ndarray) -> np.ndarray:
    """(H, W) float32 gray of dark ink on light paper -> (H, W) float32 ink >= 0: how much darker than the paper
    around it each pixel is, so that a lighting gradient, a shadow or the table beyond the paper is not ink."""
    h, w = gray.shape
    scale = min(1.0, LIGHT_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(gray, mode="F").resize(size, Image.Resampling.BOX))
    k = max(3, round(max(size) * PAPER_WINDOW)) | 1
    dark = 1 - small / np.maximum(_paper_light(small, k), 1)
    # A window just wider than the strokes follows a shadow's edge closely; measured on the strokes away from the edge.
    strokes = (dark > STRONG_INK) & ~_from_the_edge(dark > STRONG_INK)
    if strokes.any():
        k = min(k, max(3, round(STROKE_WINDOW * _stroke_width(strokes.astype(np.float32)))) | 1)
    light = _paper_light(small, k)
    dark = 1 - small / np.maximum(light, 1)
    # Dark and joined to the picture's edge: a shadow, or the table beyond the paper. Grown through faint pixels and
    # through strong ones only where those touch the edge themselves, so a stroke next to a shadow stays.
    strong = dark > STRONG_INK
    edge = _from_the_edge(strong)
    edge |= _from_the_edge((dark > FAINT_INK) & (~strong | edge))
    if not edge.any() or (dark > STRONG_INK).sum() <= (edge & strong).sum():
        edge[:] = False  # Everything dark touches the edge: a digit drawn to the paper's edge, kept.
    # Lit far less than the page and joined to the edge: the table beyond the paper, however wide.
    edge |= _from_the_edge(light < NOT_PAPER * np.percentile(light, 90))
    edge = _rank_filter(edge.astype(np.float32), 5, np.maximum) > 0  # the upscaling blurs its boundary
    light = np.asarray(Image.fromarray(light, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    ink = 1 - gray / np.maximum(light, 1)
    ink[np.asarray(Image.fromarray(edge).resize((w, h), Image.Resampling.NEAREST))] = 0
    ink[ink < PAPER_NOISE] = 0  # the grain of paper, camera noise and JPEG blocks
    p = np.pad(ink > 0, 1)
    neighbours = sum(p[1 + dy: p.shape[0] - 1 + dy, 1 + dx: p.shape[1] - 1 + dx].astype(np.uint8)
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    ink[neighbours < 4] = 0  # specks of noise; a stroke's pixels have inked neighbours
    return ink


def _from_the_edge(mask: np.ndarray) -> np.ndarray:
    """The parts of a (H, W) bool mask joined (8-connected) to the outermost ring of pixels."""
    grown = np.zeros_like(mask)
    grown[0], grown[-1], grown[:, 0], grown[:, -1] = mask[0], mask[-1], mask[:, 0], mask[:, -1]
    while True:
        p = np.pad(grown, 1)
        step = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:] | p[:-2, :-2] | p[:-2, 2:] | \
            p[2:, :-2] | p[2:, 2:]
        step &= mask
        if np.array_equal(step, grown):
            return grown
        grown = step


def _stroke_width(ink: np.ndarray) -> float:
    """Estimated stroke width in pixels: 2 x area / boundary length of the inked region."""
    b = ink > 0.5
    p = np.pad(b, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return 2.0 * b.sum() / max(int((b & ~inner).sum()), 1)


def _rank_filter(img: np.ndarray, k: int, op, mode: str = "constant") -> np.ndarray:
    """Separable k x k max (dilate) or min (erode) filter, edges padded with zeros (or, mode="edge", repeated)."""
    r = k // 2
    out = img
    for axis in (0, 1):
        padded = np.pad(out, [(r, k - 1 - r) if a == axis else (0, 0) for a in (0, 1)], mode=mode)
        n = out.shape[axis]
        out = op.reduce([np.take(padded, range(i, i + n), axis=axis) for i in range(k)], axis=0)
    return out


def _even_strokes(mid: np.ndarray) -> np.ndarray:
    """Thicken thin pens and thin thick ones so strokes look like MNIST's."""
    width = _stroke_width(mid)
    if width < TARGET_STROKE * STROKE_BAND[0]:
        k = int(round(TARGET_STROKE - width)) + 1
        return _rank_filter(mid, k, np.maximum)
    if width > TARGET_STROKE * STROKE_BAND[1]:
        k = min(int(round(width - TARGET_STROKE)), int(width // 2)) + 1
        thinner = _rank_filter(mid, k, np.minimum)
        if (thinner > 0.5).sum() > 0.2 * (mid > 0.5).sum():  # Never erase the digit.
            return thinner
    return mid


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Anti-aliased resize of a float image; size is (width, height)."""
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))


def _fit(ink: np.ndarray, side: float) -> np.ndarray:
    h, w = ink.shape
    scale = side / max(h, w)
    return _resize(ink, (max(1, round(w * scale)), max(1, round(h * scale))))


def check_image_array(image) -> np.ndarray:
    """Raise InputError unless image is (H, W), (H, W, 3) or (H, W, 4) uint8 of a sane size."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a NumPy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(f"expected an (H, W, 4) RGBA image, got shape {image.shape}")
    if min(image.shape[:2]) < 8 or max(image.shape[:2]) > MAX_SIDE:
        raise InputError(_("the image is {width}x{height} pixels; it must be 8 to {most} pixels on each side").format(
            width=image.shape[1], height=image.shape[0], most=MAX_SIDE))
    return image


def canvas_to_mnist(rgba: np.ndarray) -> np.ndarray | None:
    """(H, W, 4) uint8 canvas -> (28, 28) float32 in [0, 1] centred as MNIST's digits; None if blank or a speck."""
    ink = _ink(check_image_array(rgba))
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    crop = ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    if max(crop.shape) < MIN_EXTENT * max(ink.shape):
        return None
    digit = _fit(_even_strokes(_fit(crop, MID_SIDE)), 20)
    digit = np.clip(digit, 0, None)
    if digit.max() <= 0:
        return None
    return _centre_of_mass_place(np.clip(digit / digit.max() * INK_GAIN, 0, 1))


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    total = img.sum()
    return (img.sum(axis=1) @ np.arange(img.shape[0])) / total, (img.sum(axis=0) @ np.arange(img.shape[1])) / total


def _centre_of_mass_place(digit: np.ndarray) -> np.ndarray:
    """Paste a <= 20 x 20 image into 28 x 28 with its centre of mass where MNIST's are, to a fraction of a pixel."""
    h, w = digit.shape
    cy, cx = _centre_of_mass(digit)
    top = int(np.clip(round(MNIST_CENTRE - cy), 0, 28 - h))
    left = int(np.clip(round(MNIST_CENTRE - cx), 0, 28 - w))
    out = np.zeros((28, 28), np.float32)
    out[top: top + h, left: left + w] = np.clip(digit, 0, 1)
    dy, dx = MNIST_CENTRE - cy - top, MNIST_CENTRE - cx - left  # what whole pixels could not do
    shifted = Image.fromarray(out, mode="F").transform((28, 28), Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy),
                                                        resample=Image.Resampling.BILINEAR)
    return np.clip(np.asarray(shifted), 0, 1)


def decode_upload(data: bytes) -> np.ndarray:
    """Decode an uploaded PNG/JPEG of a digit to (H, W, 4) uint8 RGBA; InputError for anything unsafe or odd."""
    if not data:
        raise InputError(_("the file is empty"))
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(_("the file is {size} MB; the limit is {limit} MB").format(
            size=number(len(data) / 1e6, 1), limit=MAX_UPLOAD_BYTES // 2**20))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ("PNG", "JPEG"):
                    raise InputError(_("{kind} files are not supported: upload a PNG or JPEG").format(kind=img.format)
                                     if img.format else _("this kind of file is not supported: upload a PNG or JPEG"))
                if getattr(img, "is_animated", False):
                    raise InputError(_("animated images are not supported: upload a single picture"))
                if img.width * img.height > MAX_UPLOAD_PIXELS:
                    raise InputError(_("the image is {width}x{height} pixels; the limit is {limit} megapixels").format(
                        width=img.width, height=img.height, limit=MAX_UPLOAD_PIXELS // 10**6))
                if img.mode in ("I", "I;16", "I;16B", "I;16L", "F") or img.mode.startswith("I;16"):
                    raise InputError(_("16-bit images are not supported: save it as an 8-bit PNG or JPEG"))
                img.thumbnail((1024, 1024))  # Keeps work bounded; the digit ends up 20 px anyway.
                rgba = np.asarray(img.convert("RGBA"))
        except InputError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise InputError(_("the image is too large when decompressed (a decompression bomb?)")) from None
        except (OSError, ValueError, SyntaxError, EOFError):
            raise InputError(_("this file is not a picture we can read (PNG or JPEG)")) from None
    return check_image_array(np.ascontiguousarray(rgba))
