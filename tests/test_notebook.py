"""The code behind a run: only the lines the settings need, a valid notebook, and generated code that really runs
(on a small IDX folder, through the notebook's own offline cell)."""
import os
import subprocess
import sys

import nbformat
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
