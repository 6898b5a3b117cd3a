"""Find the Train page's knobs in an AppTest by setting name (their keys carry a generation: "w_epochs_3f9a01c2")."""
import re

KINDS = ("slider", "select_slider", "radio", "selectbox", "number_input")


def knob(at, name: str):
    """The Train knob for a TrainConfig field ("epochs", "train_size", "dataset"...)."""
    pattern = re.compile(rf"w_{name}_[0-9a-f]+__[a-z]+")
    found = [w for kind in KINDS for w in getattr(at, kind) if w.key and pattern.fullmatch(w.key)]
    assert len(found) == 1, f"{len(found)} knobs for {name}"
    return found[0]
