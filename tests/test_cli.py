"""The command line: the notebook end to end, IDX folders, one-line errors with exit status 2, the benchmark."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, T10K, write_idx


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mnist_model", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_train_reproduces_the_notebook_offline(tmp_path):
    out = _cli("train", "--epochs", "5", "--save", str(tmp_path / "m.keras"))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("data: MNIST (offline sample of 5,000 digits)")
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 5 and "test_accuracy" in epochs[0]
    assert lines[-1].startswith("test_acc: ") and float(lines[-1].split()[1]) >= 0.90
    assert (tmp_path / "m.keras").stat().st_size > 1_000_000
    again = _cli("evaluate", str(tmp_path / "m.keras"))
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == lines[-1]  # same test_acc
    (tmp_path / "bad.keras").write_bytes(b"not a model")
    bad = _cli("evaluate", str(tmp_path / "bad.keras"))
    last = bad.stderr.strip().splitlines()[-1]  # after TensorFlow's own start-up chatter
    assert bad.returncode == 2 and last.startswith("error: bad.keras: cannot load as a Keras model")
    assert "Traceback" not in bad.stderr


def test_train_on_a_folder_of_idx_files(tmp_path, sample):
    for key, name in (("x_train", "train-images-idx3-ubyte"), ("y_train", "train-labels-idx1-ubyte"),
                      ("x_test", "t10k-images-idx3-ubyte"), ("y_test", "t10k-labels-idx1-ubyte")):
        write_idx(tmp_path / (name + ".gz"), getattr(sample, key)[:1500], gz=True)
    out = _cli("train", "--epochs", "2", "--data", str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"from {tmp_path}" in out.stdout and "x_train (1500, 28, 28)" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("test_acc: ")


def test_train_on_the_official_test_files_as_data(tmp_path):
    if not T10K.is_dir():
        return
    import shutil
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(T10K / name, tmp_path / name)
        shutil.copy(T10K / name, tmp_path / name.replace("t10k", "train"))
    out = _cli("train", "--epochs", "1", "--train-size", "2000", "--data", str(tmp_path))
    assert out.returncode == 0 and "x_test (10000, 28, 28)" in out.stdout


def test_bad_data_and_bad_arguments_exit_2_with_one_line(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 corrupt")
    np.save(tmp_path / "x.npy", np.zeros(3))
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    for args, message in [(("--data", str(tmp_path / "bad.npz")), "bad.npz"),
                          (("--data", str(tmp_path)), "no train-labels-idx1-ubyte"),
                          (("--epochs", "zero"), "invalid int value"),
                          (("--epochs", "0"), "epochs=0 is outside 1-50"),
                          (("--optimizer", "magic"), "invalid choice"),
                          (("--save", str(tmp_path / "model.h5")), "ending in .keras")]:
        out = _cli("train", *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_bench_quick_prints_every_target_as_json():
    """The benchmark runs end to end (figures are not asserted: targets live in the benchmark, not in tests)."""
    import json
    from mnist_model.bench import TARGETS
    out = _cli("bench", "--quick", "--json", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout[out.stdout.index("{"):])
    assert "app_skipped" not in results, results.get("app_skipped")
    assert all(isinstance(results[name], (int, float)) for name in TARGETS), set(TARGETS) - set(results)
    assert results["speedup_vs_plain_fit"] * results["ours_epoch_s"] == pytest.approx(results["plain_fit_epoch_s"])
    assert len(results["ours_test_accuracy_seeds_0_1_2"]) == 3 and results["progress_reports_per_epoch"] >= 10
    assert not results["tensorflow_in_server_after_home"] and not results["server_has_tensorflow"]
