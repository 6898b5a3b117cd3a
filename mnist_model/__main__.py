"""The command line: `python -m mnist_model train ...` reproduces the notebook; `bench` measures speed."""
from __future__ import annotations

import argparse
import os
from dataclasses import fields
import sys
import tempfile

from .config import ARCHITECTURES, OPTIMIZERS, TrainConfig, from_query
from .errors import MnistLiveError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # One line, exit 2, no usage dump.
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mnist_model", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train and evaluate the notebook's network")
    _train_flags(t)
    t.add_argument("--data", help="mnist.npz or a folder of the four IDX files")
    t.add_argument("--save", help="write the trained model to this .keras file")
    n = sub.add_parser("notebook", help="write the Keras code of these settings as a Jupyter notebook")
    _train_flags(n)
    n.add_argument("--output", required=True, help="FILE.ipynb")
    e = sub.add_parser("evaluate", help="test accuracy of a saved .keras model (loaded in Keras's safe mode)")
    e.add_argument("model", help="a .keras file, e.g. one downloaded from the Train page")
    e.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist")
    e.add_argument("--data", help="mnist.npz or a folder of the four IDX files")
    s = sub.add_parser("store", help="the teacher's admin tool for the data folder ($MNIST_LIVE_DATA)")
    s.add_argument("--data-folder", help="default: $MNIST_LIVE_DATA, else mnist-live-data/")
    ss = s.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ss.add_parser("info", help="what the store holds and its limits")
    ss.add_parser("prune", help="remove unused workspaces and keep to the disk cap now")
    ex = ss.add_parser("export", help="write one workspace (runs, drawings, settings) to a zip file")
    ex.add_argument("workspace_id")
    ex.add_argument("file", help="FILE.zip")
    im = ss.add_parser("import", help="read a workspace back from an export zip")
    im.add_argument("file", help="FILE.zip")
    b = sub.add_parser("bench", help="measure training and prediction speed")
    b.add_argument("--quick", action="store_true", help="smaller sizes, for CI")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--database-url", help="a PostgreSQL database to compare the store's operations on (it is "
                                          "written to: give a scratch one)")
    return p


def _train_flags(parser) -> None:
    """One flag per TrainConfig field (--batch-size for batch_size), defaults from TrainConfig."""
    d = TrainConfig()
    helps = {"train_size": "training examples used; 0 = all", "hidden_layers": "1 (the notebook), 2 or 3",
             "dropout": "0 (off) to 0.5", "l2": "weight penalty: 0 (off) or 1e-5 to 1e-2",
             "patience": "early stopping: epochs without a better test loss (0 = off)"}
    choices = {"optimizer": OPTIMIZERS, "architecture": ARCHITECTURES, "dataset": ("mnist", "fashion")}
    for f in fields(TrainConfig):
        default = getattr(d, f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(default), default=default,
                            choices=choices.get(f.name), help=helps.get(f.name))


def _config(args) -> TrainConfig:
    raw = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    config, notices = from_query(raw)
    if notices:
        raise MnistLiveError(" ".join(notices))
    return config


def _train(args) -> int:
    from .data import load_dataset
    config = _config(args)
    dataset = load_dataset(config.dataset, args.data)
    print(f"data: {dataset.title} from {dataset.source}")
    for note in dataset.notes:
        print(f"  note: {note}")
    print(f"x_train {dataset.x_train.shape}, x_test {dataset.x_test.shape}; {config.describe()}", flush=True)
    if args.save and not args.save.endswith(".keras"):
        raise MnistLiveError("--save needs a file name ending in .keras")

    from .training import train

    def on_epoch(m):
        print(f"epoch {m.epoch}/{config.epochs}  loss {m.loss:.4f}  accuracy {m.accuracy:.4f}  "
              f"test_loss {m.test_loss:.4f}  test_accuracy {m.test_accuracy:.4f}  {m.seconds:.1f}s", flush=True)
    result = train(config, dataset, on_epoch=on_epoch)
    if result.best_epoch and (result.stopped_early or result.best_epoch != len(result.epochs)):
        print(f"early stopping: {'stopped at' if result.stopped_early else 'ran'} epoch {len(result.epochs)}, "
              f"kept epoch {result.best_epoch}")
    if args.save:
        folder = os.path.dirname(os.path.abspath(args.save))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".keras")
        os.close(fd)
        result.model.save(tmp)
        os.replace(tmp, args.save)
        print(f"saved: {args.save}")
    kept = result.epochs[(result.best_epoch or len(result.epochs)) - 1]
    print(f"test_acc: {kept.test_accuracy:.4f}")
    return 0


def _evaluate(args) -> int:
    import numpy as np

    from .data import load_dataset
    from .network import model_inputs
    from .runs import load_keras_model
    from .training import to_inputs
    dataset = load_dataset(args.dataset, args.data)
    model = load_keras_model(args.model)
    probs = model.predict(model_inputs(to_inputs(dataset.x_test), model.input_shape), batch_size=1000, verbose=0)
    print(f"data: {dataset.title} from {dataset.source}")
    print(f"test_acc: {float(np.mean(probs.argmax(axis=1) == dataset.y_test)):.4f}")
    return 0


def _notebook(args) -> int:
    from .notebook import write_notebook
    if not args.output.endswith(".ipynb"):
        raise MnistLiveError("--output needs a file name ending in .ipynb")
    write_notebook(_config(args), args.output)
    print(f"notebook: {args.output}")
    return 0


def _store(args) -> int:
    from .store import Store, data_folder
    store = Store(args.data_folder or data_folder())
    if args.action == "info":
        result = store.info()
    elif args.action == "prune":
        result = {**store.recover(), **store.prune()}
    elif args.action == "export":
        if not args.file.endswith(".zip"):
            raise MnistLiveError("the export file's name must end in .zip")
        result = store.export_workspace(args.workspace_id, args.file)
    else:
        result = store.import_workspace(args.file)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "store":
            return _store(args)
        if args.command == "notebook":
            return _notebook(args)
        from .bench import run_bench
        return run_bench(quick=args.quick, as_json=args.json, database_url=args.database_url)
    except (MnistLiveError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
