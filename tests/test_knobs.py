"""The knobs that fight overfitting (hidden layers, dropout, L2, early stopping) in the fast compiled loop, and the
first-layer snapshots that let a class watch the network learn."""
import pickle

import numpy as np
import pytest

from mnist_model.config import TrainConfig
from mnist_model.predict import Predictor
from mnist_model.training import one_hot, to_inputs, train


def _fit_and_ours(config, sample, n=300, batch=64, epochs=2):
    """The same start and the same batch order through keras fit() and through CompiledSteps."""
    from mnist_model.network import build_model
    from mnist_model.steps import CompiledSteps, epoch_plan
    x, y = to_inputs(sample.x_train[:n]).reshape(-1, 784), one_hot(sample.y_train[:n])
    keras_model, ours = build_model(config), build_model(config)
    ours.set_weights(keras_model.get_weights())
    history = keras_model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0).history
    runner = CompiledSteps(ours, (x, y), (x, y))
    for _ in range(epochs):
        sums = np.array([runner.train(i, m, s) for i, m, s in epoch_plan(np.arange(n), batch, 2)]).sum(0)
    return keras_model, ours, history, sums / n, runner


@pytest.mark.parametrize("config", [TrainConfig(hidden_units=64, l2=1e-3),
                                    TrainConfig(hidden_units=32, hidden_layers=3, l2=1e-4, optimizer="adam")])
def test_l2_and_more_layers_do_exactly_what_fit_does(config, sample):
    keras_model, ours, history, (loss, acc), runner = _fit_and_ours(config, sample)
    # The penalty is in the reported loss, as in fit, at its value at the start of each compiled call.
    assert loss == pytest.approx(history["loss"][-1], rel=1e-2)
    assert acc == pytest.approx(history["accuracy"][-1], abs=1e-6)
    for expected, got in zip(keras_model.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    x, y = to_inputs(sample.x_train[:300]).reshape(-1, 784), one_hot(sample.y_train[:300])
    assert runner.evaluate()[:2] == pytest.approx(keras_model.evaluate(x, y, verbose=0), rel=1e-5)


def test_dropout_trains_only_and_the_same_seed_gives_the_same_run(sample):
    config = TrainConfig(epochs=2, train_size=1000, dropout=0.3, l2=1e-4, hidden_layers=2, hidden_units=128)
    first, second = train(config, sample), train(config, sample)
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [m.test_loss for m in first.epochs] == [m.test_loss for m in second.epochs]
    assert [layer.name for layer in first.model.layers] == ["hidden", "dropout", "hidden2", "dropout2", "output"]
    x = sample.x_test[:64] / 255.0
    evaluation = first.model(x.reshape(-1, 784), training=False).numpy()
    np.testing.assert_allclose(Predictor(first.model)(x), evaluation, atol=1e-5)  # Draw: no dropout
    training = first.model(x.reshape(-1, 784), training=True).numpy()
    assert np.abs(training - evaluation).max() > 0.01  # dropout is on while training


def test_with_the_knobs_on_fit_reaches_the_same_accuracy_within_noise(sample):
    """Three seeds each: our loop against keras fit() with dropout and L2 (the batch order and dropout masks
    differ, so only the outcome can match)."""
    import keras

    from mnist_model.network import build_model
    config = TrainConfig(epochs=4, dropout=0.3, l2=1e-4)
    x, y = to_inputs(sample.x_train).reshape(-1, 784), one_hot(sample.y_train)
    xt, yt = to_inputs(sample.x_test).reshape(-1, 784), one_hot(sample.y_test)
    ours, theirs = [], []
    for seed in (0, 1, 2):
        ours.append(train(TrainConfig(**{**config.to_dict(), "seed": seed}), sample).epochs[-1].test_accuracy)
        model = build_model(TrainConfig(**{**config.to_dict(), "seed": seed}))
        keras.utils.set_random_seed(seed)
        model.fit(x, y, batch_size=128, epochs=config.epochs, verbose=0)
        theirs.append(float(model.evaluate(xt, yt, verbose=0)[1]))
    print(f"test accuracy with dropout 0.3 and L2 1e-4, seeds 0-2: ours {ours}, fit {theirs}")
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.02 and min(ours) > 0.85


def test_early_stopping_keeps_the_best_epoch(sample):
    config = TrainConfig(epochs=40, batch_size=32, train_size=500, patience=3)  # overfits within a few epochs
    snapshots = []
    result = train(config, sample, on_snapshot=snapshots.append)
    best = result.best_epoch
    assert result.stopped_early and len(result.epochs) == best + 3 < 40
    losses = [m.test_loss for m in result.epochs]
    assert losses[best - 1] == min(losses)
    kept = Predictor(result.model)(sample.x_test / 255.0)
    np.testing.assert_allclose(kept, result.test_probs, atol=1e-5)  # the model is the best epoch's
    assert np.mean(kept.argmax(1) == sample.y_test) == pytest.approx(result.epochs[best - 1].test_accuracy)
    assert len(snapshots) == len(result.epochs)


def test_first_layer_snapshots_are_small_and_follow_the_units_that_move(sample):
    sent = []
    result = train(TrainConfig(epochs=3, train_size=1000), sample, on_snapshot=sent.append)
    assert [s["epoch"] for s in sent] == [1, 2, 3] and "initial" in sent[0] and "initial" not in sent[1]
    assert all(s["weights"].shape == (16, 784) and s["weights"].dtype == np.float16 for s in sent)
    assert all((s["units"] == sent[0]["units"]).all() for s in sent)  # the same units in every frame
    size = len(pickle.dumps(("snapshot", sent[1])))
    print(f"a snapshot message is {size:,} bytes")
    assert size < 30_000
    extras = result.extras
    # the start, an eighth, a quarter and half of epoch 1 (where the strokes form), then every epoch
    assert extras["snapshot_frames"].shape == (7, 16, 784)
    assert list(extras["snapshot_epochs"]) == [0, 0.125, 0.25, 0.5, 1, 2, 3]
    frames = extras["snapshot_frames"].astype(np.float32)
    grown = [float(np.linalg.norm(f - frames[0])) for f in frames]
    assert all(a < b for a, b in zip(grown, grown[1:5])), grown  # Watch it learn: strokes form, not appear at once
    assert grown[1] < 0.6 * grown[4], grown
    w1 = result.model.get_weights()[0]
    start = extras["moved_initial"].astype(np.float32).T  # (784, 64)
    moved = np.linalg.norm(w1[:, extras["moved_units"]] - start, axis=0)
    assert (np.diff(moved) <= 1e-3).all()  # furthest first
    np.testing.assert_allclose(extras["snapshot_frames"][-1].astype(np.float32), w1[:, sent[0]["units"]].T,
                               atol=2e-3)
