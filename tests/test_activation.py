"""Activations, softmax and dropout against PyTorch and scalar loops (gradient checks:
test_properties.py)."""

import math

import numpy as np
import pytest
import torch

import cnnkit.functional as F

import reference

ELEMENTWISE = {
    "relu": (F.relu_forward, F.relu_backward, torch.relu, {}),
    "leaky_relu": (
        F.leaky_relu_forward,
        F.leaky_relu_backward,
        lambda t: torch.nn.functional.leaky_relu(t, 0.2),
        {"negative_slope": 0.2},
    ),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, torch.sigmoid, {}),
    "softmax": (F.softmax_forward, F.softmax_backward, lambda t: torch.softmax(t, 1), {"axis": 1}),
    "log_softmax": (
        F.log_softmax_forward,
        F.log_softmax_backward,
        lambda t: torch.log_softmax(t, 1),
        {"axis": 1},
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_matches_torch_forward_and_backward(name, dtype, rng):
    """Output and input gradient equal PyTorch's, in the input's dtype."""
    forward, backward, torch_op, kwargs = ELEMENTWISE[name]
    x = reference.away_from_zero(rng, (4, 5, 3), dtype)
    out, cache = forward(x, **kwargs)
    g = rng.standard_normal(out.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    expected = torch_op(xt)
    expected.backward(torch.tensor(g))
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=tol, atol=tol)
    grad = backward(g, cache)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_no_overflow_at_any_finite_magnitude(dtype):
    """No warning, no NaN, and the exact limits at the ends of the float range."""
    finfo = np.finfo(dtype)
    x = np.array([-finfo.max, -1000, -80, -1, 0, 1, 80, 1000, finfo.max], dtype=dtype)
    out = F.sigmoid(x)  # filterwarnings=error turns any overflow warning into a failure
    assert not np.isnan(out).any() and out.dtype == dtype
    np.testing.assert_allclose(
        out, [reference.sigmoid_scalar(float(v)) for v in x], rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", [F.softmax, F.log_softmax])
def test_softmax_stable_at_huge_magnitudes(op, dtype):
    """Rows of values near the float maximum give the exact limits, with no warning."""
    big = np.finfo(dtype).max / 4
    x = np.array([[big, big / 2, -big], [1.0, 2.0, 3.0]], dtype=dtype)
    out = op(x)
    probs = reference.softmax_1d([1.0, 2.0, 3.0])
    if op is F.softmax:
        expected = [[1.0, 0.0, 0.0], probs]
    else:
        expected = [[0.0, -float(big) / 2, -2 * float(big)], [math.log(p) for p in probs]]
    assert out.dtype == dtype and np.isfinite(out).all()
    np.testing.assert_allclose(out, np.array(expected, dtype=dtype), rtol=1e-6)


def test_softmax_rows_sum_to_one(rng):
    """softmax rows sum to 1 along the chosen axis."""
    x = rng.standard_normal((3, 4, 5)) * 50
    for axis in (0, 1, -1):
        np.testing.assert_allclose(F.softmax(x, axis=axis).sum(axis=axis), 1.0)


def test_walkthrough_softmax_and_sigmoid_of_random_values(rng):
    """A random 1-D array: softmax matches the scalar loop, sigmoid each scalar formula."""
    x = rng.standard_normal(6)
    np.testing.assert_allclose(F.softmax(x), reference.softmax_1d(list(x)))
    np.testing.assert_allclose(F.sigmoid(x), [reference.sigmoid_scalar(v) for v in x])


def test_relu_keeps_nan_and_input_untouched():
    """ReLU propagates NaN (as PyTorch) and never modifies its input."""
    x = np.array([-1.0, np.nan, 2.0])
    snapshot = x.copy()
    np.testing.assert_array_equal(F.relu(x), torch.relu(torch.tensor(x)).numpy())
    np.testing.assert_array_equal(x, snapshot)


@pytest.mark.parametrize("axis, error", [(2, ValueError), (-3, ValueError), (1.0, TypeError)])
def test_bad_axis(axis, error):
    """An axis out of range or not an int names the axis and the shape."""
    with pytest.raises(error, match="axis must"):
        F.softmax(np.ones((2, 2)), axis=axis)


def test_non_array_inputs_are_refused():
    for op in (F.relu, F.sigmoid, F.softmax, F.leaky_relu):
        with pytest.raises(TypeError, match=r"x must be a numpy\.ndarray, got list"):
            op([1.0, 2.0])


# -- dropout ----------------------------------------------------------------------------


def test_dropout_is_inverted_and_seeded(rng):
    """Kept elements are scaled by 1/(1-p), about p of them drop, and a seed repeats the mask."""
    x = np.ones((200, 100), dtype=np.float32)
    out = F.dropout(x, p=0.3, rng=1)
    assert out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((out == 0).mean() - 0.3) < 0.01
    np.testing.assert_array_equal(out, F.dropout(x, p=0.3, rng=1))
    assert not np.array_equal(out, F.dropout(x, p=0.3, rng=2))


def test_dropout_backward_uses_the_same_mask(rng):
    """The gradient is the upstream gradient times the forward's mask and scale."""
    x = rng.standard_normal((50, 40)) + 5
    out, cache = F.dropout_forward(x, p=0.4, rng=rng)
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(F.dropout_backward(g, cache), g * out / x)


def test_dropout_identity_cases(rng):
    """training=False or p=0 returns x's values; p=1 zeroes everything, as PyTorch."""
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False), x)
    np.testing.assert_array_equal(F.dropout(x, 0.0), x)
    np.testing.assert_array_equal(F.dropout(x, 1.0), np.zeros_like(x))
    np.testing.assert_array_equal(
        torch.nn.functional.dropout(torch.tensor(x), 1.0).numpy(), np.zeros_like(x)
    )


@pytest.mark.parametrize(
    "p, error", [(-0.1, ValueError), (1.5, ValueError), ("half", TypeError), (True, TypeError)]
)
def test_dropout_bad_p(p, error):
    with pytest.raises(error, match="p must"):
        F.dropout(np.ones(3), p=p)


def test_dropout_bad_rng():
    with pytest.raises(TypeError, match="rng must be"):
        F.dropout(np.ones(3), rng="seed")


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_zero_dimensional_input_gives_zero_dimensional_arrays(name):
    """A 0-d array gives 0-d arrays forward and backward (not NumPy scalars), with torch's values."""
    forward, backward, torch_op, kwargs = ELEMENTWISE[name]
    kwargs = {k: (-1 if k == "axis" else v) for k, v in kwargs.items()}
    torch_op = {
        "softmax": lambda t: torch.softmax(t, -1),
        "log_softmax": lambda t: torch.log_softmax(t, -1),
    }.get(name, torch_op)
    x = np.array(-0.7)
    out, cache = forward(x, **kwargs)
    grad = backward(np.array(1.3), cache)
    assert isinstance(out, np.ndarray) and out.shape == ()
    assert isinstance(grad, np.ndarray) and grad.shape == ()
    xt = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    yt = torch_op(xt)
    yt.backward(torch.tensor(1.3, dtype=torch.float64))
    np.testing.assert_allclose(out, yt.detach().numpy(), atol=1e-15)
    np.testing.assert_allclose(grad, xt.grad.numpy(), atol=1e-15)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((2, 0), -1), ((0, 3), 0), ((0,), 0), ((4, 0, 2), 1)])
def test_softmax_over_an_empty_axis_is_empty(name, shape, axis):
    """An empty axis gives an empty result and gradient of the same shape, as PyTorch does."""
    forward, backward = getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")
    out, cache = forward(np.ones(shape, np.float32), axis=axis)
    expected = getattr(torch, name)(torch.ones(shape), axis)
    assert out.shape == tuple(expected.shape) and out.dtype == np.float32
    assert backward(np.ones(shape, np.float32), cache).shape == shape
