"""cnnkit.nn layers against torch.nn: same weights give the same outputs and gradients."""

import numpy as np
import pytest
import torch

import cnnkit as ck
from cnnkit import nn


def to_numpy_state(module: torch.nn.Module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def to_torch_state(state):
    return {k: torch.tensor(v) for k, v in state.items()}


def torch_model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(
            4,
            6,
            3,
            stride=2,
            padding="same" if False else 1,
            groups=2,
            bias=False,
            padding_mode="reflect",
        ),
        torch.nn.LeakyReLU(0.1),
        torch.nn.AvgPool2d(2, ceil_mode=True),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(6, 5),
        torch.nn.Sigmoid(),
        torch.nn.Linear(5, 3),
        torch.nn.Softmax(dim=-1),
    )


def cnnkit_model():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False, padding_mode="reflect"),
        nn.LeakyReLU(0.1),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(6, 5),
        nn.Sigmoid(),
        nn.Linear(5, 3),
        nn.Softmax(axis=-1),
    )


def test_state_dict_keys_shapes_and_dtypes_match_torch():
    """Same keys in the same order, same shapes; parameters float32, the counter int64."""
    mine, theirs = cnnkit_model().state_dict(), torch_model().state_dict()
    assert list(mine) == list(theirs)
    for key in mine:
        assert mine[key].shape == tuple(theirs[key].shape), key
        assert mine[key].dtype == theirs[key].numpy().dtype, key


@pytest.mark.parametrize("training", [True, False])
def test_sequential_matches_torch_forward_and_backward(training, rng):
    """Weights from PyTorch give PyTorch's output, input gradient and parameter gradients (float64)."""
    torch.manual_seed(0)
    reference = torch_model().double()
    reference.train(training)
    reference[8].p = 0.0 if training else 0.5  # dropout's randomness is not comparable
    model = cnnkit_model().astype(np.float64)
    model.load_state_dict(to_numpy_state(reference))
    model.train(training)
    model[8].p = reference[8].p
    x = rng.standard_normal((3, 2, 8, 8))
    out = model(x)
    xt = torch.tensor(x, requires_grad=True)
    expected = reference(xt)
    g = rng.standard_normal(out.shape)
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.backward(g), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name, p in reference.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    for key, value in to_numpy_state(reference).items():  # running statistics updated alike
        np.testing.assert_allclose(model.state_dict()[key], value, rtol=1e-10, err_msg=key)


def test_weights_move_back_to_torch(rng):
    """cnnkit's weights loaded into PyTorch give the same logits (float32)."""
    model = cnnkit_model().eval()
    x = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    for _ in range(2):  # move the running statistics off their initial values
        model.train()(x)
    model.eval()
    reference = torch_model().eval()
    reference.load_state_dict(to_torch_state(model.state_dict()))
    np.testing.assert_allclose(
        model(x), reference(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_gradients_accumulate_when_applied_twice(rng):
    """Two forward/backward passes add their parameter gradients; zero_grad clears them."""
    layer = nn.Conv2d(2, 3, 3, rng=0)
    x1, x2 = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 2, 5, 5))
    g = rng.standard_normal((2, 3, 3, 3))
    layer(x1)
    layer.backward(g)
    first = layer.weight.grad.copy()
    layer(x2)
    layer.backward(g)
    fresh = nn.Conv2d(2, 3, 3, rng=0)
    fresh(x2)
    fresh.backward(g)
    np.testing.assert_allclose(layer.weight.grad, first + fresh.weight.grad, rtol=1e-6)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


@pytest.mark.parametrize(
    "make, torch_make, fan_in",
    [
        (
            lambda: nn.Conv2d(6, 16, (3, 5), groups=2, rng=1),
            lambda: torch.nn.Conv2d(6, 16, (3, 5), groups=2),
            3 * 15,
        ),
        (lambda: nn.Linear(200, 300, rng=1), lambda: torch.nn.Linear(200, 300), 200),
    ],
)
def test_default_initialisation_follows_torch(make, torch_make, fan_in):
    """Weights and biases are float32 U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch draws them."""
    mine, theirs = make(), torch_make()
    bound = 1 / np.sqrt(fan_in)
    for name in ("weight", "bias"):
        values = getattr(mine, name).data
        reference = getattr(theirs, name).detach().numpy()
        assert values.dtype == np.float32 and values.shape == reference.shape
        assert np.abs(values).max() <= bound and np.abs(reference).max() <= bound
        if values.size > 100:  # uniform: the standard deviation is bound / sqrt(3)
            assert np.isclose(values.std(), bound / np.sqrt(3), rtol=0.05)
            assert np.isclose(values.std(), reference.std(), rtol=0.05)


def test_manual_seed_makes_initialisation_repeatable():
    ck.manual_seed(3)
    a = nn.Linear(4, 4).weight.data.copy()
    ck.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.data, a)


def test_batchnorm_train_eval_and_counter(rng):
    """Training updates running statistics and the counter; eval uses them and updates nothing."""
    bn, ref = nn.BatchNorm2d(3, momentum=0.2), torch.nn.BatchNorm2d(3, momentum=0.2)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32) * 2 + 1
    for _ in range(3):
        bn(x)
        ref(torch.tensor(x))
    assert int(bn.num_batches_tracked) == 3
    bn.eval()
    ref.eval()
    before = bn.state_dict()
    np.testing.assert_allclose(bn(x), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        bn(np.ones((4, 3)))


def test_dropout_layer_train_and_eval(rng):
    layer = nn.Dropout(0.5, rng=0)
    x = np.ones((10, 10))
    assert (layer(x) == 0).any()
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_float64_input_through_float32_layers(rng):
    """Layers keep float32 parameters; a float64 input gives float64 out, float32 grads."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Flatten(), nn.Linear(2 * 3 * 3, 2, rng=0))
    out = model(rng.standard_normal((2, 1, 5, 5)))
    assert out.dtype == np.float64
    model.backward(np.ones_like(out))
    assert all(
        p.data.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters()
    )
    assert model(np.ones((2, 1, 5, 5), np.float32)).dtype == np.float32


def test_cross_entropy_loss_module(rng):
    logits, target = rng.standard_normal((4, 3)), np.array([0, 1, 2, 1])
    crit = nn.CrossEntropyLoss()
    lt = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.CrossEntropyLoss()(lt, torch.tensor(target))
    expected.backward()
    loss = crit(logits, target)
    assert isinstance(loss, float) and np.isclose(loss, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(crit.backward(), lt.grad.numpy(), rtol=1e-12)


def test_backward_before_forward_is_an_error():
    for layer in (
        nn.Conv2d(1, 1, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Linear(1, 1),
        nn.BatchNorm2d(1),
        nn.Flatten(),
    ):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(np.ones((1, 1, 1, 1)))
    with pytest.raises(RuntimeError):
        nn.CrossEntropyLoss().backward()


def test_forward_only_keeps_no_convolution_cache(rng):
    """Inside forward_only a Conv2d gives the same output, keeps no cache (its backward
    is an error that says why) and, after the block, keeps one again."""
    from cnnkit.nn.module import forward_only

    layer = nn.Conv2d(3, 4, 3, padding=1, rng=0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    expected = layer(x)
    with forward_only():
        out = layer(x)
        assert layer._cache is None
        with pytest.raises(RuntimeError, match="prediction only"):
            layer.backward(np.ones_like(out))
    np.testing.assert_array_equal(out, expected)
    layer(x)
    assert layer.backward(np.ones_like(out)).shape == x.shape
    with pytest.raises(KeyError), forward_only():
        raise KeyError("the block ends with an error")
    layer(x)
    assert layer._cache is not None


def test_predict_proba_runs_forward_only(rng):
    """predict_proba leaves no convolution cache behind, and its result is unchanged."""
    from cnnkit.models import digits_cnn
    from cnnkit.train import predict_proba

    model = digits_cnn(rng=0).eval()
    x = rng.random((5, 1, 8, 8)).astype(np.float32)
    expected = ck.functional.softmax(model(x), axis=1)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert all(conv._cache is not None for conv in convs)
    np.testing.assert_array_equal(predict_proba(model, x), expected)
    assert all(conv._cache is None for conv in convs)


def _branchy_model():
    """Residual and Concat blocks whose first layers would write over a shared input."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, rng=0),
        nn.BatchNorm2d(4),
        nn.Residual(nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, rng=1), nn.ReLU())),
        nn.Concat(nn.Sequential(nn.ReLU()), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU())),
        nn.ReLU(),
        nn.Flatten(),
    ).eval()


@pytest.mark.parametrize("make", [_branchy_model, lambda: nn.Sequential(nn.ReLU(), nn.ReLU())])
def test_forward_only_writes_in_place_only_over_its_own_arrays(make, rng):
    """Inside forward_only, batch norm and ReLU write over the array the layer before
    them made: same values bit for bit, the caller's input untouched, and shared inputs
    of Residual and Concat branches untouched (the branches start from the caller's)."""
    from cnnkit.nn.module import forward_only

    model = make()
    for bn in [m for _, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]:
        bn.running_mean[:] = rng.standard_normal(4)
        bn.running_var[:] = rng.random(4) + 0.5
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    before = x.copy()
    expected = model(x)
    with forward_only():
        out = model(x)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(x, before)


def test_forward_only_runs_batch_norm_and_relu_in_place(rng):
    """The in-place path does run (no cache kept, after a layer whose output is new) and
    not in training mode, where batch norm must update its statistics."""
    from cnnkit.nn.module import forward_only

    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4), nn.ReLU()).eval()
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    expected = model(x)
    assert model[1]._cache is not None and model[2]._cache is not None
    with forward_only():
        out = model(x)
    assert model[1]._cache is None and model[2]._cache is None
    np.testing.assert_array_equal(out, expected)
    model.train()
    with forward_only():
        model(x)
    assert model[1]._cache is not None and int(model[1].num_batches_tracked) == 1


def test_load_state_dict_refuses_mismatches():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="missing keys"):
        model.load_state_dict({"0.weight": np.zeros((2, 3))})
    with pytest.raises(
        ValueError, match=r"state_dict\['0.bias'\] has shape \(3,\), expected \(2,\)"
    ):
        model.load_state_dict({"0.weight": np.zeros((2, 3)), "0.bias": np.zeros(3)})
    with pytest.raises(ValueError, match="unexpected keys"):
        model.load_state_dict(
            {"0.weight": np.zeros((2, 3)), "0.bias": np.zeros(2), "1.weight": np.zeros(1)}
        )


def test_state_dict_is_a_copy():
    layer = nn.Linear(2, 2)
    state = layer.state_dict()
    state["weight"][...] = 7
    assert not (layer.weight.data == 7).any()


def test_parameters_train_eval_and_indexing():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout())
    assert len(model.parameters()) == 4 and isinstance(model[0], nn.Conv2d) and len(model) == 3
    model.eval()
    assert not any(m.training for m in model)
    model.train()
    assert all(m.training for m in model)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide"),
        (lambda: nn.Conv2d(3, 4, 0), ValueError, "kernel_size must be >= 1, got 0"),
        (lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError, "padding must be one of"),
        (lambda: nn.Conv2d(3.0, 4, 3), TypeError, "in_channels must be an int"),
        (lambda: nn.Linear(0, 4), ValueError, "in_features must be >= 1, got 0"),
        (lambda: nn.Dropout(2.0), ValueError, "p must be in [0, 1], got 2.0"),
        (lambda: nn.BatchNorm2d(0), ValueError, "num_features must be >= 1, got 0"),
        (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, "layer 1 must be a cnnkit.nn.Module"),
    ],
)
def test_bad_layer_arguments(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)


def test_sequential_errors_name_the_layer_and_the_input_shape():
    """A layer's error inside a Sequential says which layer (index, type) and the shape passed in."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2, rng=0)
    )
    with pytest.raises(ValueError) as info:
        model(np.ones((5, 1, 5, 5)))
    message = str(info.value)
    assert message.startswith(
        "layer 3 (Linear) of a Sequential given input of shape (5, 1, 5, 5): "
    )
    assert "x must have 16 features" in message
    with pytest.raises(
        TypeError, match=r"^layer 0 \(Conv2d\) of a Sequential given input of shape None: x must be"
    ):
        model([[1.0]])


def test_nested_sequential_errors_give_the_full_path():
    """Nested Sequentials name the path ("1.1") once, with the outermost input's shape."""
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU()),
        nn.Sequential(nn.Flatten(), nn.Linear(16, 2, rng=0)),
    )
    with pytest.raises(
        ValueError,
        match=r"^layer 1\.1 \(Linear\) of a Sequential given input of shape \(5, 1, 5, 5\): x must",
    ):
        model(np.ones((5, 1, 5, 5)))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: nn.MaxPool2d(0), ValueError, "kernel_size must be >= 1, got 0"),
        (lambda: nn.MaxPool2d(2, stride=0), ValueError, "stride must be >= 1, got 0"),
        (
            lambda: nn.MaxPool2d(2, padding=2),
            ValueError,
            "padding must be at most half the kernel size",
        ),
        (lambda: nn.MaxPool2d(2, dilation=0), ValueError, "dilation must be >= 1, got 0"),
        (lambda: nn.MaxPool2d(2, ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
        (lambda: nn.AvgPool2d(-1), ValueError, "kernel_size must be >= 1, got -1"),
        (lambda: nn.AvgPool2d(2.5), TypeError, "kernel_size must be an int or a pair of ints"),
        (
            lambda: nn.AvgPool2d(2, count_include_pad=None),
            TypeError,
            "count_include_pad must be a bool",
        ),
    ],
)
def test_pooling_layers_refuse_bad_arguments_at_construction(make, error, message):
    """As nn.Conv2d does, pooling layers check their arguments when built, not at the first call."""
    with pytest.raises(error, match=message):
        make()
