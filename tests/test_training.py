"""Training on the real offline sample: metrics per epoch, and background jobs' states."""
import numpy as np
import pytest

from mnist_model.config import TrainConfig
from mnist_model.jobs import JobState, TrainingJob, TrainTask
from mnist_model.predict import Predictor
from mnist_model.training import train


def test_notebook_network_learns_and_reports(trained, sample):
    model = trained.model
    assert [layer.name for layer in model.layers] == ["hidden", "output"]
    assert model.count_params() == 784 * 512 + 512 + 512 * 10 + 10
    assert len(trained.epochs) == 5 and not trained.stopped
    assert trained.epochs[-1].test_accuracy > 0.88  # ~0.91 on 4,000 real digits
    assert trained.epochs[-1].loss < trained.epochs[0].loss


def test_callables_get_batches_and_epochs_and_stop_works(sample):
    batches, epochs = [], []
    result = train(TrainConfig(epochs=10, train_size=1000, batch_size=32), sample, on_batch=batches.append,
                   on_epoch=epochs.append, should_stop=lambda: len(epochs) >= 2)
    assert result.stopped and len(result.epochs) == 2 == len(epochs)
    assert batches and batches[-1].batches == 32 and all(b.epoch <= 2 for b in batches)


def test_job_runs_in_a_worker_and_keeps_a_usable_model(executor, sample):
    job = TrainingJob(TrainTask(TrainConfig(epochs=2, train_size=2000)), executor=executor, label="Run 1").start()
    assert job.wait(180), job.snapshot().message
    snap = job.snapshot()
    assert snap.state == JobState.FINISHED and len(snap.epochs) == 2 and snap.fraction == 1.0
    run = snap.result
    assert run.name == "Run 1" and run.keras_bytes[:2] == b"PK" and run.test_probs.shape == (1000, 10)
    probs = Predictor.for_run(run)(sample.x_test / 255.0)
    np.testing.assert_allclose(probs, run.test_probs, atol=1e-4)  # NumPy forward pass == Keras


def test_stop_within_a_second_keeps_partial_weights_and_queue_order(executor, sample):
    import time
    long = TrainingJob(TrainTask(TrainConfig(epochs=50, batch_size=16)), executor=executor).start()
    while long.snapshot().state == JobState.QUEUED:
        time.sleep(0.01)
    queued = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500)), executor=executor).start()
    cancelled = TrainingJob(TrainTask(TrainConfig(epochs=1)), executor=executor).start()
    assert queued.snapshot().queue_position == 1 and cancelled.snapshot().queue_position == 2
    cancelled.stop()
    assert cancelled.snapshot().state == JobState.STOPPED and cancelled.snapshot().result is None
    deadline = time.time() + 120
    while not long.snapshot().epochs and time.time() < deadline:
        time.sleep(0.05)
    assert long.snapshot().state == JobState.RUNNING
    t0 = time.perf_counter()
    long.stop()
    assert long.wait(30)
    stopped_after = time.perf_counter() - t0
    snap = long.snapshot()
    assert snap.state == JobState.STOPPED and snap.result.status == "stopped"
    assert stopped_after < 5  # measured ~0.3 s; generous for a loaded CI machine
    acc = (Predictor.for_run(snap.result)(sample.x_test / 255.0).argmax(1) == sample.y_test).mean()
    assert acc > 0.8
    assert queued.wait(120) and queued.snapshot().state == JobState.FINISHED


def test_failure_becomes_a_failed_state_and_frees_the_slot(executor):
    bad = TrainingJob(TrainTask(TrainConfig(epochs=1), data_path="/nonexistent/mnist.npz"), executor=executor)
    good = TrainingJob(TrainTask(TrainConfig(epochs=1, train_size=500)), executor=executor)
    bad.start(), good.start()
    assert bad.wait(120) and good.wait(120)
    assert bad.snapshot().state == JobState.FAILED and "no such file" in bad.snapshot().message
    assert good.snapshot().state == JobState.FINISHED


@pytest.mark.parametrize("arch", ["dense", "cnn"])
def test_predictor_matches_keras(arch, sample):
    from mnist_model.network import build_model, model_inputs
    model = build_model(TrainConfig(architecture=arch, hidden_units=64))
    x = sample.x_test[:50] / 255.0
    expected = model.predict_on_batch(model_inputs(x, model.input_shape))
    np.testing.assert_allclose(Predictor(model)(x), expected, atol=1e-5)


def test_cnn_builder_shapes_and_names(sample):
    from mnist_model.network import build_model, model_inputs
    model = build_model(TrainConfig(architecture="cnn", optimizer="adam"))
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers] == ["conv1", "pool1", "conv2", "pool2", "flatten", "dropout",
                                                      "output"]
    assert model.count_params() == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (1600 * 10 + 10)
    probs = model.predict_on_batch(model_inputs(sample.x_test[:4] / 255.0, model.input_shape))
    np.testing.assert_allclose(np.asarray(probs).sum(axis=1), 1, atol=1e-5)
    assert type(model.optimizer).__name__ == "Adam"


def test_epoch_plan_covers_every_example_once_in_calls_of_one_shape():
    from mnist_model.steps import epoch_plan
    order = np.random.default_rng(1).permutation(1000)
    calls = list(epoch_plan(order, batch_size=64, steps_per_call=4))  # 16 batches, the last one 40 examples
    assert [steps for _, _, steps in calls] == [4, 4, 4, 4]
    assert all(i.shape == m.shape == (4, 64) for i, m, _ in calls)
    indices = np.concatenate([i[m > 0] for i, m, _ in calls])
    np.testing.assert_array_equal(indices, order)
    assert calls[-1][1][3].sum() == 40
    uneven = list(epoch_plan(order[:300], batch_size=64, steps_per_call=4))  # 5 batches: calls of 4 and 1
    assert [steps for _, _, steps in uneven] == [4, 1] and uneven[-1][1][1:].sum() == 0
    assert next(epoch_plan(order[:10], batch_size=64, steps_per_call=4))[0].shape == (4, 10)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam", "sgd"])
def test_compiled_steps_do_exactly_what_fit_does(optimizer, sample):
    """Same start, same batch order, a short last batch: the same weights, loss and accuracy as fit()."""
    from mnist_model.network import build_model
    from mnist_model.steps import CompiledSteps, epoch_plan
    from mnist_model.training import one_hot, to_inputs
    x, y = to_inputs(sample.x_train[:300]).reshape(-1, 784), one_hot(sample.y_train[:300])
    config = TrainConfig(optimizer=optimizer, hidden_units=64)
    keras_model, ours = build_model(config), build_model(config)
    ours.set_weights(keras_model.get_weights())
    history = keras_model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0).history
    runner = CompiledSteps(ours, (x, y), (x, y))
    for _ in range(2):
        sums = np.array([runner.train(i, m, steps) for i, m, steps in epoch_plan(np.arange(300), 64, 2)]).sum(0)
    assert sums[0] / 300 == pytest.approx(history["loss"][-1], rel=1e-5)
    assert sums[1] / 300 == pytest.approx(history["accuracy"][-1], abs=1e-6)
    for expected, got in zip(keras_model.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert runner.evaluate()[:2] == pytest.approx(keras_model.evaluate(x, y, verbose=0), rel=1e-5)


def test_cnn_trains_with_compiled_steps(sample):
    result = train(TrainConfig(architecture="cnn", epochs=2, train_size=1000, batch_size=64), sample)
    assert result.epochs[-1].loss < result.epochs[0].loss and result.epochs[-1].test_accuracy > 0.7


def test_a_kept_network_trains_exactly_as_a_new_one_whatever_came_before(sample):
    """A worker reuses a network of the same shape (fresh weights, fresh optimizer state, new data and seed): every
    training gives the very weights and figures of a training on a new network, after another seed, another
    number of examples, another shape and a fine-tuning in between. Between trainings they hold none of their
    examples (all of MNIST would be ~220 MB per kept network), also after a training that failed."""
    from dataclasses import replace

    from mnist_model.training import KeptNetworks
    kept = KeptNetworks(size=2)
    base = TrainConfig(epochs=2, train_size=600, hidden_units=64, dropout=0.2, l2=1e-3)
    start = [np.full_like(w, 0.01) for w in train(replace(base, epochs=1), sample).model.get_weights()]
    plan = [(base, None), (replace(base, seed=3), None), (replace(base, train_size=300), None),
            (replace(base, hidden_units=32, optimizer="adam"), None), (base, start), (base, None)]
    models = []
    for config, init in plan:
        reused = train(config, sample, init_weights=init, kept=kept)
        models.append(reused.model)
        weights, figures = [w.copy() for w in reused.model.get_weights()], reused.epochs
        new = train(config, sample, init_weights=init)
        assert all(np.array_equal(a, b) for a, b in zip(weights, new.model.get_weights())), config
        assert [m.test_loss for m in figures] == [m.test_loss for m in new.epochs], config
        assert kept.held_bytes() == 0, config
    assert models[1] is models[0] and models[3] is not models[0] and models[5] is models[0]
    held = []

    def fail(_metrics):
        held.append(kept.held_bytes())
        raise RuntimeError("the training's reporter went")
    with pytest.raises(RuntimeError):
        train(base, sample, on_epoch=fail, kept=kept)
    assert held[0] >= 600 * 784 * 4 and kept.held_bytes() == 0


def test_a_worker_loads_keras_without_its_unused_extras_and_they_stay_importable():
    """network.py keeps scikit-learn, pandas and matplotlib out of Keras's import (about a third of a worker's
    start); a process that wants them later still gets them."""
    import subprocess
    import sys

    from conftest import ROOT
    probe = ("import sys; import mnist_model.network as n; print(sorted(set(n.KERAS_EXTRAS) & set(sys.modules)));"
             "import pandas, sklearn, matplotlib.pyplot; print(n.keras.Sequential.__name__, pandas.DataFrame.__name__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "Sequential DataFrame"], out.stdout
