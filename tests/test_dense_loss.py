"""linear and cross_entropy against PyTorch (gradient checks: test_properties.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit.functional as F


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 4), (4,), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, bias, dtype, rng):
    """Output and the three gradients equal PyTorch's for any leading shape."""
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((3, 4)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype) if bias else None
    out, cache = F.linear_forward(x, w, b)
    g = rng.standard_normal(out.shape).astype(dtype)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    expected = TF.linear(xt, wt, bt)
    expected.backward(torch.tensor(g))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=tol, atol=tol)
    dx, dw, db = F.linear_backward(g, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=tol, atol=tol)
    if bias:
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=tol, atol=tol)
    else:
        assert db is None
    assert out.dtype == dtype


def test_linear_promotes_float32_with_float64_weight(rng):
    assert F.linear(np.ones((2, 3), np.float32), np.ones((1, 3))).dtype == np.float64


def test_linear_spreads_inf_and_nan_as_torch_without_warnings(rng):
    """0 * inf and inf - inf give NaN where PyTorch's do, forward and backward, and no
    RuntimeWarning (pytest makes it an error)."""
    x = rng.standard_normal((4, 5)).astype(np.float32)
    x[0, 2] = np.inf
    x[1, 3] = -np.inf
    x[2, 0] = np.nan
    w = rng.standard_normal((3, 5)).astype(np.float32)
    w[1, 2] = 0.0  # output 1 of row 0: 0 * inf
    out, cache = F.linear_forward(x, w)
    g = rng.standard_normal(out.shape).astype(np.float32)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    expected = TF.linear(xt, wt)
    expected.backward(torch.tensor(g))
    dx, dw, _ = F.linear_backward(g, cache)
    assert np.isnan(out[0, 1])
    for mine, theirs in [(out, expected.detach()), (dx, xt.grad), (dw, wt.grad)]:
        theirs = theirs.numpy()
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "x, w, b, message",
    [
        (np.ones((2, 5)), np.ones((3, 4)), None, "x must have 4 features"),
        (np.ones((2, 4)), np.ones(4), None, "weight must have shape (out_features, in_features)"),
        (np.ones((2, 4)), np.ones((3, 4)), np.ones(2), "bias must have shape (3,)"),
    ],
)
def test_linear_bad_shapes(x, w, b, message):
    with pytest.raises(ValueError) as info:
        F.linear(x, w, b)
    assert message in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_cross_entropy_matches_torch(dtype, scale, rng):
    """Loss and logit gradient equal PyTorch's, at ordinary and huge logit magnitudes."""
    logits = (rng.standard_normal((7, 5)) * scale).astype(dtype)
    target = rng.integers(0, 5, size=7)
    loss, cache = F.cross_entropy_forward(logits, target)
    lt = torch.tensor(logits, requires_grad=True)
    expected = TF.cross_entropy(lt, torch.tensor(target))
    expected.backward()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.isfinite(loss) and loss.dtype == dtype
    np.testing.assert_allclose(loss, expected.item(), rtol=tol)
    np.testing.assert_allclose(
        F.cross_entropy_backward(1.0, cache), lt.grad.numpy(), rtol=tol, atol=tol
    )


@pytest.mark.parametrize(
    "logits, target, error, message",
    [
        (
            np.zeros((2, 3)),
            np.array([0, 3]),
            ValueError,
            "target values must be class indices in [0, 3)",
        ),
        (np.zeros((2, 3)), np.array([-1, 0]), ValueError, "target values must be class indices"),
        (
            np.zeros((2, 3)),
            np.array([0.0, 1.0]),
            TypeError,
            "target must hold integer class indices",
        ),
        (np.zeros((2, 3)), np.array([0, 1, 2]), ValueError, "target must have shape (2,)"),
        (np.zeros(3), np.array([0]), ValueError, "logits must have 2 dimensions"),
        (np.zeros((2, 3)), [0, 1], TypeError, "target must be a numpy.ndarray"),
    ],
)
def test_cross_entropy_bad_inputs(logits, target, error, message):
    with pytest.raises(error) as info:
        F.cross_entropy(logits, target)
    assert message in str(info.value)
