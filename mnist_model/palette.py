"""The app's colours in one place, and how far apart they stay for people with a colour-vision deficiency."""
import numpy as np

TRAIN, TEST = "#1f77b4", "#ff7f0e"  # curves of the training and the test data (also: solid/dots, dashed/triangles)
FIRST_NETWORK, OTHER_NETWORK = "#1f77b4", "#ff7f0e"  # robustness curves: the model in use, the other architecture
KEPT_EPOCH = "#8c564b"  # early stopping's kept epoch, a dashed rule with its own words (green met orange for protans)
WEIGHT_UP, WEIGHT_DOWN = "#ff0000", "#0000ff"  # weight pictures: pushes a unit to fire, holds it back (white: 0)
VOTE_FOR, VOTE_AGAINST = "#d62728", "#1f77b4"  # a unit's votes for each label (bars above or below zero)
WINNER, OTHERS = "#e4572e", "#9aa5b1"  # the predicted label's bar, the other nine (also the tallest bar)
GAP_SMALL, GAP_LARGE = "#f0a030", "#b30000"  # the class board: train-test gap, small to large (also: the diagonal)

MUST_DIFFER = {  # what a reader must tell apart -> its two colours
    "train and test curves": (TRAIN, TEST),
    "robustness: the two networks": (FIRST_NETWORK, OTHER_NETWORK),
    "kept epoch and train curve": (KEPT_EPOCH, TRAIN),
    "kept epoch and test curve": (KEPT_EPOCH, TEST),
    "weights: up and down": (WEIGHT_UP, WEIGHT_DOWN),
    "votes: for and against": (VOTE_FOR, VOTE_AGAINST),
    "prediction: winner and the others": (WINNER, OTHERS),
    "class board: small and large gap": (GAP_SMALL, GAP_LARGE),
}

# Machado, Oliveira and Fernandes (2009), severity 1.0: linear RGB -> linear RGB as that viewer sees it.
DEFICIENCIES = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
CLEARLY_APART = 20.0  # CIELAB distance (delta E 1976) two marks need to be told apart at a glance; 2.3: just noticeable


def _linear(hex_colour: str) -> np.ndarray:
    """'#rrggbb' -> linear-light sRGB (3,) in [0, 1]."""
    srgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _lab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB (3,) -> CIELAB (D65)."""
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen_as(hex_colour: str, deficiency: str | None = None) -> np.ndarray:
    """The colour in CIELAB as a viewer with that deficiency (None: typical vision) sees it."""
    linear = _linear(hex_colour)
    if deficiency is not None:
        linear = np.clip(DEFICIENCIES[deficiency] @ linear, 0, 1)
    return _lab(linear)


def distance(a: str, b: str, deficiency: str | None = None) -> float:
    """How far apart two colours look (CIELAB delta E 1976) to that viewer."""
    return float(np.linalg.norm(seen_as(a, deficiency) - seen_as(b, deficiency)))


def closest_pairs() -> list[tuple[float, str, str]]:
    """(distance, what, viewer) for every pair that must differ and every viewer, closest first."""
    found = [(distance(a, b, d), what, d or "typical vision") for what, (a, b) in MUST_DIFFER.items()
             for d in (None, *DEFICIENCIES)]
    return sorted(found)
