"""cnnkit.train and cnnkit.models against PyTorch: the same weights and batches give the
same losses; fit is deterministic; evaluate and predict_proba agree with torch."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import cnnkit as ck
from cnnkit import nn
from cnnkit.data import Dataset, batches, load_digits
from cnnkit.models import digits_cnn, simple_cnn
from cnnkit.train import (
    TrainConfig,
    confusion_matrix,
    evaluate,
    fit,
    make_optimizer,
    predict,
    predict_proba,
    seed_generators,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def small_pair():
    """A cnnkit model and the equivalent torch model (conv, batchnorm, relu, pool, linear)
    with the same float64 weights."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, rng=2),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 10, rng=3),
    ).astype(np.float64)
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 2 * 2, 10),
    ).double()
    # Give BatchNorm non-trivial affine parameters so their gradients matter from step 1.
    rng = np.random.default_rng(0)
    for layer in (model[1], model[5]):
        layer.weight.data[...] = rng.uniform(0.5, 1.5, layer.weight.shape)
        layer.bias.data[...] = rng.uniform(-0.5, 0.5, layer.bias.shape)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return model, reference


def torch_optimizer(params, config):
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


CONFIGS = {
    "adam": TrainConfig(optimizer="adam", lr=1e-2, weight_decay=1e-3, batch_size=32, seed=7),
    "sgd-momentum": TrainConfig(
        optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=32, seed=7
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_loss_trajectory_matches_torch(name, digits):
    """20 optimiser steps with the same weights and batches: same losses (float64, rtol 1e-6)."""
    config = CONFIGS[name]
    train, _ = digits
    data = Dataset(train.x[:320].astype(np.float64), train.y[:320], train.classes)
    model, reference = small_pair()
    optimizer = make_optimizer(model.parameters(), config)
    reference_optimizer = torch_optimizer(reference.parameters(), config)
    criterion = nn.CrossEntropyLoss()
    ours, theirs = [], []
    gen = seed_generators(config.seed).order
    steps = [b for _ in range(2) for b in batches(data, config.batch_size, rng=gen)]
    assert len(steps) == 20
    for x, y in steps:
        optimizer.zero_grad()
        ours.append(criterion(model(x), y))
        model.backward(criterion.backward())
        optimizer.step()
        reference_optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            reference(torch.from_numpy(x)), torch.from_numpy(y)
        )
        loss.backward()
        reference_optimizer.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert np.mean(theirs[-5:]) < 0.9 * np.mean(theirs[:5])  # it learned: not vacuous
    state = model.state_dict()
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(state[key], value.numpy(), rtol=1e-6, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fit_matches_torch_loop(name, digits):
    """fit() is the loop above: its epoch losses and final weights match torch's."""
    config = replace(CONFIGS[name], epochs=2)
    train, test = digits
    data = Dataset(train.x[:320].astype(np.float64), train.y[:320], train.classes)
    model, reference = small_pair()
    history = fit(
        model, data, config, val=Dataset(test.x[:50].astype(np.float64), test.y[:50], test.classes)
    )
    optimizer = torch_optimizer(reference.parameters(), config)
    gen = seed_generators(config.seed).order  # fit orders batches with this generator
    epoch_losses = []
    for _ in range(config.epochs):
        reference.train()
        total = 0.0
        for x, y in batches(data, config.batch_size, rng=gen):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                reference(torch.from_numpy(x)), torch.from_numpy(y)
            )
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        epoch_losses.append(total / len(data))
    np.testing.assert_allclose(history["loss"], epoch_losses, rtol=1e-6)
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(
            model.state_dict()[key], value.numpy(), rtol=1e-6, atol=1e-9, err_msg=key
        )
    reference.eval()
    with torch.no_grad():
        logits = reference(torch.from_numpy(test.x[:50].astype(np.float64)))
    val_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(test.y[:50])).item()
    val_accuracy = (logits.argmax(1).numpy() == test.y[:50]).mean()
    np.testing.assert_allclose(history["val_loss"][-1], val_loss, rtol=1e-6)
    assert history["val_accuracy"][-1] == val_accuracy
    assert model.training is False


def _tiny(digits, n=200):
    train, test = digits
    return train[:n], test[:100]


def test_fit_is_deterministic(digits):
    """The same seed gives bit-identical weights; another seed gives different ones."""
    train, _ = _tiny(digits)
    config = TrainConfig(epochs=2, batch_size=32, seed=3)
    states = []
    for seed in (3, 3, 4):
        model = simple_cnn(10, channels=(4, 8), rng=0)
        fit(model, train, replace(config, seed=seed))
        states.append(model.state_dict())
    for key in states[0]:
        assert np.array_equal(states[0][key], states[1][key]), key
    assert any(not np.array_equal(states[0][k], states[2][k]) for k in states[0])


def test_fit_deterministic_with_dropout(digits):
    """Dropout draws from the run's own generator, whatever drew from the default one."""
    train, _ = _tiny(digits, 96)
    outs = []
    for _ in range(2):
        ck.manual_seed(123)  # something else drew from it before
        ck.manual_seed(123).random(5)
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 16, rng=0),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(16, 10, rng=1),
        )
        fit(model, train, TrainConfig(epochs=1, batch_size=32, seed=0))
        outs.append(model.state_dict())
    for key in outs[0]:
        assert np.array_equal(outs[0][key], outs[1][key]), key


def test_fit_leaves_the_default_generator_alone(digits):
    """fit draws from its own SeedSequence streams, not cnnkit's default generator."""
    train, _ = _tiny(digits, 64)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10, rng=0))
    ck.manual_seed(5)
    fit(model, train, TrainConfig(epochs=1, batch_size=16, seed=1))
    after = ck.manual_seed(5).random()  # what the default generator gives after a reseed
    ck.manual_seed(5)
    fit(model, train, TrainConfig(epochs=1, batch_size=16, seed=1))
    from cnnkit._random import get_rng

    assert get_rng().random() == after  # fit did not draw from it, nor reseed it
    assert model[1].rng is None  # the layer's own (absent) generator is given back


def test_seed_generators_are_independent_and_repeatable():
    a, b = seed_generators(3), seed_generators(3)
    for x, y in zip(a, b):
        assert x.random() == y.random()
    draws = [g.integers(1 << 30) for g in seed_generators(3)]
    assert len(set(draws)) == 3
    with pytest.raises(ValueError, match="seed must be >= 0"):
        seed_generators(-1)


def test_fit_records_what_save_needs(digits, tmp_path):
    """After fit, ck.save alone writes the classes, input shape and preparation."""
    from cnnkit.serialization import load_model

    train, _ = _tiny(digits, 64)
    model = simple_cnn(10, channels=(4,), rng=0)
    fit(model, train, TrainConfig(epochs=1, batch_size=32))
    assert model.metadata["input_shape"] == [1, 8, 8]
    ck.save(model, tmp_path / "m.npz")
    _, metadata = load_model(tmp_path / "m.npz")
    assert metadata["classes"] == [str(d) for d in range(10)]
    assert metadata["input_shape"] == [1, 8, 8]
    assert metadata["preprocessing"] == {"background": "dark", "crop": True, "resize": "box"}


def test_default_batch_size_scales_with_the_data():
    config = TrainConfig()
    assert config.batch_size is None
    assert [config.batch_size_for(n) for n in (1437, 512, 100, 10)] == [64, 64, 12, 2]
    assert TrainConfig(batch_size=7).batch_size_for(1437) == 7


def test_simple_cnn_depth_follows_input_size():
    """At most one pooling block per halving of the smaller side; at least one."""
    for size, blocks in [(8, 3), ((32, 5), 2), (2, 1), (3, 1), (64, 3)]:
        model = simple_cnn(2, channels=(4, 8, 16), input_size=size, rng=0)
        assert sum(isinstance(m, nn.Conv2d) for m in model) == blocks
        h, w = (size, size) if isinstance(size, int) else size
        assert model.eval()(np.zeros((1, 1, h, w), np.float32)).shape == (1, 2)


def test_model_init_is_seeded():
    a, b = digits_cnn(rng=5).state_dict(), digits_cnn(rng=5).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = digits_cnn(rng=6).state_dict()
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_fit_learns_and_history(digits):
    """A few epochs on 400 digits: the loss falls, the history has one entry per epoch."""
    train, test = _tiny(digits, 400)
    model = simple_cnn(10, channels=(8, 16), rng=0)
    seen = []
    history = fit(
        model,
        train,
        TrainConfig(epochs=3, batch_size=32),
        val=test,
        callbacks=[lambda epoch, logs: seen.append((epoch, sorted(logs)))],
    )
    assert sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 3 for v in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.4  # chance is 0.1
    assert seen == [
        (e, ["accuracy", "loss", "time", "val_accuracy", "val_loss"]) for e in (1, 2, 3)
    ]
    no_val = fit(simple_cnn(10, channels=(4,), rng=0), train[:64], TrainConfig(epochs=1))
    assert sorted(no_val) == ["accuracy", "loss"]


def test_progress_bar(digits, capsys):
    """progress=True shows a tqdm bar with loss and accuracy on stderr; False shows none."""
    train, _ = _tiny(digits, 64)
    fit(
        simple_cnn(10, channels=(4,), rng=0),
        train,
        TrainConfig(epochs=1, batch_size=32),
        progress=True,
    )
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "acc=" in err
    fit(
        simple_cnn(10, channels=(4,), rng=0),
        train,
        TrainConfig(epochs=1, batch_size=32),
        progress=False,
    )
    assert capsys.readouterr().err == ""


def test_evaluate_and_predict_proba_match_torch(digits):
    """evaluate's loss/accuracy and predict_proba equal torch's on the same weights."""
    _, test = digits
    model, reference = small_pair()
    model.train()
    x64 = test.x.astype(np.float64)
    data = Dataset(x64, test.y, test.classes)
    loss, accuracy = evaluate(model, data, batch_size=7)
    assert model.training  # the mode is restored
    reference.eval()
    with torch.no_grad():
        logits = reference(torch.from_numpy(x64))
    np.testing.assert_allclose(
        loss, torch.nn.functional.cross_entropy(logits, torch.from_numpy(test.y)).item(), rtol=1e-10
    )
    assert accuracy == (logits.argmax(1).numpy() == test.y).mean()
    proba = predict_proba(model, data)
    np.testing.assert_allclose(proba, torch.softmax(logits, 1).numpy(), rtol=1e-9, atol=1e-12)
    assert predict_proba(model, x64[0]).shape == (1, 10)
    assert np.array_equal(predict(model, x64), logits.argmax(1).numpy())


def test_confusion_matrix_matches_sklearn(rng):
    from sklearn.metrics import confusion_matrix as sk

    y, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert np.array_equal(confusion_matrix(y, p, 4), sk(y, p, labels=range(4)))
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix([0, 1], [0, 4], 4)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(epochs=0), ValueError, "epochs must be >= 1, got 0"),
        (dict(epochs=1.5), TypeError, "epochs"),
        (dict(batch_size=-1), ValueError, "batch_size"),
        (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of 'adam', 'sgd'"),
        (dict(lr=0), ValueError, "lr must be > 0"),
        (dict(lr="fast"), TypeError, "lr"),
        (dict(weight_decay=-1e-4), ValueError, "weight_decay"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(seed=None), TypeError, "seed"),
        (dict(seed=-1), ValueError, "seed must be >= 0, got -1"),
    ],
)
def test_config_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_fit_bad_arguments(digits):
    train, _ = _tiny(digits, 32)
    model = simple_cnn(10, channels=(4,), rng=0)
    with pytest.raises(TypeError, match="config"):
        fit(model, train, {"epochs": 1})
    with pytest.raises(TypeError, match="train"):
        fit(model, (train.x, train.y), TrainConfig(epochs=1))
    with pytest.raises(TypeError, match="model"):
        fit(lambda x: x, train, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="at least one sample"):
        fit(model, train[:0], TrainConfig(epochs=1))
    with pytest.raises(TypeError, match="callbacks"):
        fit(model, train, TrainConfig(epochs=1), callbacks=[1])
    with pytest.raises(TypeError, match="progress"):
        fit(model, train, TrainConfig(epochs=1), progress="yes")


def test_fit_reports_diverging_loss(digits):
    """A non-finite loss stops training with a message suggesting a smaller rate."""
    train, _ = _tiny(digits, 32)
    bad = Dataset(np.full_like(train.x, np.inf), train.y, train.classes)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10, rng=0))
    before = model.state_dict()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="smaller"):
        fit(model, bad, TrainConfig(epochs=1))
    after = model.state_dict()  # stopped before a step could spread the NaNs
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(num_classes=0), ValueError),
        (dict(num_classes=10, channels=()), ValueError),
        (dict(num_classes=10, channels=(8, 0)), ValueError),
        (dict(num_classes=10, kernel_size=2), ValueError),
        (dict(num_classes=2.0), TypeError),
    ],
)
def test_simple_cnn_bad_arguments(kwargs, error):
    with pytest.raises(error):
        simple_cnn(**kwargs)
