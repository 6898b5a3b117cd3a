"""canvas_to_mnist on synthetic strokes and real MNIST digits redrawn as strokes; upload decoding."""
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from mnist_model.errors import InputError
from mnist_model.predict import Predictor
from mnist_model.preprocess import canvas_to_mnist, decode_upload
from mnist_model.strokes import random_redraw, redraw


def canvas(strokes, pen=20, size=280, ink=(255, 255, 255, 255), paper=(0, 0, 0, 255)):
    img = Image.new("RGBA", (size, size), paper)
    draw = ImageDraw.Draw(img)
    for line in strokes:
        draw.line(line, fill=ink, width=pen, joint="curve")
        for x, y in (line[0], line[-1]):
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=ink)
    return np.asarray(img)


ONE = [[(140, 50), (140, 230)]]
SEVEN = [[(90, 60), (200, 60), (120, 230)]]


def centre_of_mass(img):
    ys, xs = np.mgrid[:28, :28]
    return (img * ys).sum() / img.sum(), (img * xs).sum() / img.sum()


def check_mnist_like(img):
    assert img.shape == (28, 28) and img.dtype == np.float32
    assert img.min() >= 0 and 0.95 < img.max() <= 1.0
    rows, cols = np.flatnonzero(img.max(1) > 0.05), np.flatnonzero(img.max(0) > 0.05)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in range(18, 23)  # the longer side is ~20 px
    cy, cx = centre_of_mass(img)
    assert abs(cy - 14) < 0.2 and abs(cx - 14) < 0.2  # where MNIST puts it


def moved(strokes, scale, dx, dy):
    return [[(x * scale + dx, y * scale + dy) for x, y in line] for line in strokes]


@pytest.mark.parametrize("scale, dx, dy", [
    (1, 0, 0),
    (0.35, -20, -10),  # small, in the top-left corner
    (0.5, 120, 130),  # small, in the bottom-right corner
    (1.4, -110, -68),  # fills the canvas
])
def test_position_and_size_do_not_matter(scale, dx, dy):
    ref = canvas_to_mnist(canvas(SEVEN))
    img = canvas_to_mnist(canvas(moved(SEVEN, scale, dx, dy), pen=round(20 * scale)))
    check_mnist_like(img)
    assert np.corrcoef(ref.ravel(), img.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("pen", [8, 14, 27, 40])
def test_thin_and_thick_pens_give_mnist_like_strokes(pen):
    img = canvas_to_mnist(canvas(SEVEN, pen=pen))
    check_mnist_like(img)
    ink = (img > 0.5).sum()
    assert 40 < ink < 160, ink  # MNIST digits have roughly 60-150 pixels above 0.5


def test_dark_ink_on_light_paper_and_on_transparent_background():
    ref = canvas_to_mnist(canvas(SEVEN))
    inverted = canvas_to_mnist(canvas(SEVEN, ink=(20, 20, 20, 255), paper=(245, 240, 230, 255)))
    transparent = canvas_to_mnist(canvas(SEVEN, ink=(0, 0, 0, 255), paper=(0, 0, 0, 0)))
    for img in (inverted, transparent):
        check_mnist_like(img)
        assert np.abs(img - ref).max() < 0.1


def test_blank_speck_and_bad_input():
    assert canvas_to_mnist(canvas([])) is None
    assert canvas_to_mnist(canvas([[(100, 100), (101, 101)]], pen=4)) is None  # a speck
    assert canvas_to_mnist(np.full((280, 280, 4), 255, np.uint8)) is None  # all white: a blank page
    for bad in (np.zeros((280, 280, 4), np.float32), np.zeros((280, 280, 2), np.uint8), np.zeros(5, np.uint8),
                np.zeros((3, 3, 4), np.uint8), [[1, 2], [3, 4]]):
        with pytest.raises(ValueError):
            canvas_to_mnist(bad)


def _blurred(img):
    """Blur away one-pixel shifts of thin strokes before comparing shapes."""
    return np.asarray(Image.fromarray((np.asarray(img) * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(1.5)), np.float32)


def test_mnist_digit_on_a_large_canvas_comes_back_close(t10k):
    x, _ = t10k
    similarity = []
    for digit in x[:100]:
        big = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR))
        back = canvas_to_mnist(np.dstack([big, big, big, np.full_like(big, 255)]))
        similarity.append(np.corrcoef(_blurred(back).ravel(), _blurred(digit / 255).ravel())[0, 1])
    assert np.median(similarity) > 0.93 and min(similarity) > 0.8  # measured 0.956 and 0.844


def test_redrawn_test_digits_are_recognised_almost_as_well_as_the_originals(t10k, trained):
    x, y = t10k
    x, y = x[:1000] / 255.0, y[:1000]
    predict = Predictor(trained.model)
    rng = np.random.default_rng(7)
    redrawn = np.stack([canvas_to_mnist(random_redraw(d, rng)) for d in x])
    original_acc = (predict(x).argmax(1) == y).mean()
    redrawn_acc = (predict(redrawn).argmax(1) == y).mean()
    plain = np.stack([np.asarray(Image.fromarray(random_redraw(d, rng)[..., 0]).resize((28, 28))) / 255 for d in x])
    plain_acc = (predict(plain).argmax(1) == y).mean()
    print(f"original {original_acc:.3f}, redrawn {redrawn_acc:.3f} ({redrawn_acc / original_acc:.3f}), "
          f"plain resize {plain_acc:.3f}")
    assert redrawn_acc >= 0.97 * original_acc  # the bar; measured 0.98-0.99
    assert plain_acc < 0.5 * original_acc  # what a naive demo would get


def test_redraw_draws_on_the_canvas():
    digit = np.zeros((28, 28))
    digit[4:24, 13:15] = 1
    rgba = redraw(digit, 200, (40, 40), 20)
    assert rgba.shape == (280, 280, 4) and rgba[140, 40, 0] == 255 and rgba[140, 140, 0] == 0
    rows = np.flatnonzero(rgba[..., 0].max(axis=1))
    assert 180 <= rows[-1] - rows[0] <= 230  # 200 px tall plus the pen's round ends


# ---------------------------------------------------------------- uploads

def _png(img: Image.Image, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, format=kwargs.pop("format", "PNG"), **kwargs)
    return out.getvalue()


def test_upload_photo_of_dark_ink_is_read():
    photo = Image.fromarray(canvas(SEVEN, ink=(30, 30, 40, 255), paper=(230, 225, 210, 255))).convert("RGB")
    for data in (_png(photo), _png(photo, format="JPEG", quality=85)):
        img = canvas_to_mnist(decode_upload(data))
        check_mnist_like(img)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am not an image", r"^this file is not a picture we can read \(PNG or JPEG\)$"),
    (_png(Image.new("L", (50, 50)))[:60], r"^this file is not a picture we can read \(PNG or JPEG\)$"),
    (b"\x00" * (11 * 1024 * 1024), "limit is 10 MB"),
    (_png(Image.new("1", (6000, 6000))), "25 megapixels"),
    (_png(Image.new("I;16", (40, 40))), "16-bit"),
    (_png(Image.new("L", (40, 40)), format="GIF"), "GIF files are not supported"),
])
def test_bad_uploads_get_clear_messages(data, message):
    with pytest.raises(InputError, match=message):
        decode_upload(data)


def test_animated_png_and_decompression_bomb_are_refused():
    frames = [Image.new("L", (40, 40), v) for v in (0, 255)]
    out = io.BytesIO()
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="animated"):
        decode_upload(out.getvalue())
    bomb = _png(Image.new("1", (20000, 20000)))  # 400 megapixels in a few kB
    assert len(bomb) < 200_000
    with pytest.raises(InputError, match="megapixels|decompression bomb"):
        decode_upload(bomb)


# ---------------------------------------------------------------- photos of paper

def _photo(digit, rng, lighting=True, size=(600, 800)):
    """A (28, 28) uint8 MNIST digit written dark on light paper and photographed as JPEG: with lighting, a light
    gradient, a soft shadow along one side and the dark table beyond the paper's edge along another, and noise.
    Returns the JPEG and (H, W) masks of where the shadow and the table are."""
    w, h = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    side = int(rng.uniform(380, 460))
    ink = np.zeros((h, w), np.float32)
    top, left = int(rng.uniform(150, h - side - 150)), int(rng.uniform(70, w - side - 70))
    ink[top:top + side, left:left + side] = np.asarray(Image.fromarray(digit).resize((side, side),
                                                                                      Image.Resampling.BILINEAR)) / 255
    img = rng.uniform(200, 235) * (1 - 0.75 * ink)
    shadow, table = np.zeros((h, w), bool), np.zeros((h, w), bool)
    if lighting:
        angle = rng.uniform(0, 2 * np.pi)
        img *= 1 + 0.3 * (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5))  # +-15% across the page
        width, soft, where = rng.uniform(60, 110), rng.uniform(15, 35), rng.integers(4)
        dist = [xx, w - 1 - xx, yy, h - 1 - yy][where]
        img *= 1 - 0.45 / (1 + np.exp((dist - width) / soft))  # the shadow is 45% darker at the edge
        shadow = dist < width
        table = [yy, h - 1 - yy, xx, w - 1 - xx][where] < rng.uniform(25, 45) + 6 * np.sin((xx + yy) / 37)
        img = np.where(table, rng.uniform(50, 90), img)
    img = img + rng.normal(0, 4 if lighting else 2, img.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(np.stack([img, img * 0.98, img * 0.93], -1), 0, 255).astype(np.uint8)).save(
        out, format="JPEG", quality=80)
    return out.getvalue(), shadow, table


def _numpy_predictor(x, y, hidden=64, epochs=10, seed=0):
    """A 784-hidden-10 network trained in NumPy in about a second (plain SGD): a Predictor to read photos with."""
    rng = np.random.default_rng(seed)
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    w1 = rng.normal(0, np.sqrt(2 / 784), (784, hidden)).astype(np.float32)
    w2 = rng.normal(0, np.sqrt(1 / hidden), (hidden, 10)).astype(np.float32)
    b1, b2 = np.zeros(hidden, np.float32), np.zeros(10, np.float32)
    onehot = np.eye(10, dtype=np.float32)[y]
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(x)), len(x) // 32):
            h = np.maximum(x[batch] @ w1 + b1, 0)
            z = h @ w2 + b2
            p = np.exp(z - z.max(1, keepdims=True))
            g = (p / p.sum(1, keepdims=True) - onehot[batch]) / len(batch)
            gh = (g @ w2.T) * (h > 0)
            w2 -= 0.1 * h.T @ g
            b2 -= 0.1 * g.sum(0)
            w1 -= 0.1 * x[batch].T @ gh
            b1 -= 0.1 * gh.sum(0)
    return Predictor(architecture="dense", weights=[w1, b1, w2, b2])


def test_a_shadow_a_light_gradient_and_the_paper_edge_do_not_become_ink(sample):
    """The issue's photo: a clear 3 read as a 7 because the shadow along the paper's edge became a bar."""
    from mnist_model.preprocess import _ink
    predict = _numpy_predictor(sample.x_train, sample.y_train)
    rng = np.random.default_rng(0)
    similarity, same, shadow_ink = [], [], []
    for i in range(12):
        digit = sample.x_test[i]
        data, shadow, table = _photo(digit, rng)
        clean, _, _ = _photo(digit, np.random.default_rng(100 + i), lighting=False)
        photo, ref = decode_upload(data), canvas_to_mnist(decode_upload(clean))
        img = canvas_to_mnist(photo)
        similarity.append(np.corrcoef(img.ravel(), ref.ravel())[0, 1])
        shadow_ink.append(float(_ink(photo)[shadow | table].max()))
        same.append(predict(img).argmax() == predict(ref).argmax())
    print(f"similarity to the clean photo {np.round(similarity, 3)}, ink where the shadow and table were "
          f"{np.round(shadow_ink, 2)}, same digit read {np.mean(same):.0%}")
    assert min(similarity) > 0.9 and max(shadow_ink) == 0  # measured 0.988 and 0 (before: 0.08-0.70, 0.34-1.0)
    assert np.mean(same) >= 11 / 12  # measured 12 of 12 (before: 1 of 12)

