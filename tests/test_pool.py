"""Pooling against PyTorch (forward, indices, autograd) and naive loops (gradient checks:
test_properties.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit.functional as F

import reference


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# n, c, h, w, kernel, stride, padding, dilation, ceil_mode
MAX_CASES = [
    (2, 3, 8, 8, 2, None, 0, 1, False),
    (1, 2, 7, 9, 3, 2, 1, 1, False),
    (2, 1, 7, 9, 3, 2, 1, 1, True),
    (1, 2, 10, 11, (3, 2), (2, 3), (1, 1), (2, 1), True),
    (3, 2, 5, 5, 5, 1, 2, 1, False),  # kernel equal to the input, padding half of it
    (1, 1, 6, 6, 2, 1, 0, 2, False),
    (2, 2, 9, 6, (2, 3), 1, (1, 0), 1, True),
    (1, 3, 5, 7, 4, 3, 2, 1, True),
    (1, 1, 1, 1, 1, 1, 0, 1, False),
]


def torch_max(x, kernel, stride, padding, dilation, ceil_mode, grad_output):
    xt = torch.tensor(x, requires_grad=True)
    out, idx = TF.max_pool2d(
        xt,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        return_indices=True,
    )
    out.backward(torch.tensor(grad_output))
    return out.detach().numpy(), idx.numpy(), xt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool_matches_torch(case, dtype, rng):
    """Values, indices and gradient equal PyTorch's."""
    n, c, h, w, kernel, stride, padding, dilation, ceil_mode = case
    x = reference.tie_free(rng, (n, c, h, w), dtype)
    (out, idx), cache = F.max_pool2d_forward(
        x, kernel, stride, padding, dilation, ceil_mode, return_indices=True
    )
    g = rng.standard_normal(out.shape).astype(dtype)
    expected, expected_idx, expected_grad = torch_max(
        x, kernel, stride, padding, dilation, ceil_mode, g
    )
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(idx, expected_idx)
    tol = 1e-12 if dtype == np.float64 else 1e-5  # overlapping windows add in another order
    np.testing.assert_allclose(F.max_pool2d_backward(g, cache), expected_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", MAX_CASES[:6])
def test_max_pool_matches_naive_loops_with_ties(case, rng):
    """With many ties (values from {0, 1, 2}), the first maximum in row-major order wins."""
    n, c, h, w, kernel, stride, padding, dilation, ceil_mode = case
    x = rng.integers(0, 3, size=(n, c, h, w)).astype(np.float64)
    stride = kernel if stride is None else stride
    out, idx = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    expected, expected_idx = reference.max_pool2d(
        x, pair(kernel), pair(stride), pair(padding), pair(dilation), ceil_mode
    )
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(idx, expected_idx)


def test_max_pool_ties_route_gradient_like_torch(rng):
    """With ties, the gradient goes where PyTorch sends it."""
    x = rng.integers(0, 2, size=(2, 2, 6, 6)).astype(np.float64)
    out, cache = F.max_pool2d_forward(x, 3, 1, 1)
    g = rng.standard_normal(out.shape)
    _, _, expected = torch_max(x, 3, 1, 1, 1, False, g)
    np.testing.assert_allclose(F.max_pool2d_backward(g, cache), expected)


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 1), (3, 2)])
def test_max_pool_nan_like_torch(kernel, stride, rng):
    """NaN windows give NaN, index their last NaN, and route the gradient there, as PyTorch."""
    x = reference.tie_free(rng, (2, 2, 7, 7))
    x[0, 0, 1, 2] = x[0, 0, 2, 2] = x[1, 1, 5, 0] = np.nan
    (out, idx), cache = F.max_pool2d_forward(x, kernel, stride, return_indices=True)
    g = rng.standard_normal(out.shape)
    expected, expected_idx, expected_grad = torch_max(x, kernel, stride, 0, 1, False, g)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(F.max_pool2d_backward(g, cache), expected_grad)


# n, c, h, w, kernel, stride, padding, ceil_mode, count_include_pad
AVG_CASES = [
    (2, 3, 8, 8, 2, None, 0, False, True),
    (1, 2, 7, 9, 3, 2, 1, False, True),
    (1, 2, 7, 9, 3, 2, 1, False, False),
    (2, 1, 7, 9, 3, 2, 1, True, True),
    (2, 1, 7, 9, 3, 2, 1, True, False),
    (1, 2, 10, 11, (3, 2), (2, 3), (1, 1), True, False),
    (3, 2, 5, 5, 5, 1, 2, False, False),
    (1, 3, 5, 7, 4, 3, 2, True, True),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool_matches_torch_and_loops(case, dtype, rng):
    """Values equal PyTorch's and the naive loop's; the gradient equals PyTorch's."""
    n, c, h, w, kernel, stride, padding, ceil_mode, include = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    out, cache = F.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, include)
    xt = torch.tensor(x, requires_grad=True)
    expected = TF.avg_pool2d(xt, kernel, stride, padding, ceil_mode, include)
    g = rng.standard_normal(out.shape).astype(dtype)
    expected.backward(torch.tensor(g))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=tol, atol=tol)
    loops = reference.avg_pool2d(
        x,
        pair(kernel),
        pair(kernel if stride is None else stride),
        pair(padding),
        ceil_mode,
        include,
    )
    np.testing.assert_allclose(out, loops, rtol=tol, atol=tol)
    np.testing.assert_allclose(F.avg_pool2d_backward(g, cache), xt.grad.numpy(), rtol=tol, atol=tol)


def test_global_avg_pool_shapes_and_values(rng):
    """(N, C, H, W) -> (N, C), (C, H, W) -> (C,), (H, W) -> 0-d, each the plane's mean."""
    x = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(
        F.global_avg_pool2d(x), TF.adaptive_avg_pool2d(torch.tensor(x), 1).numpy()[..., 0, 0]
    )
    assert F.global_avg_pool2d(x[0]).shape == (3,)
    matrix = F.global_avg_pool2d(x[0, 0])
    assert (
        isinstance(matrix, np.ndarray) and matrix.shape == () and np.isclose(matrix, x[0, 0].mean())
    )


@pytest.mark.parametrize("op", [F.max_pool2d, F.avg_pool2d])
def test_pool_accepts_every_rank(op, rng):
    """(H, W) and (C, H, W) give the (N, C, H, W) result without the added axes."""
    x = rng.standard_normal((1, 2, 6, 6))
    full = op(x, 2)
    np.testing.assert_array_equal(op(x[0], 2), full[0])
    np.testing.assert_array_equal(op(x[0, 0], 2), full[0, 0])


def test_walkthrough_max_pool_of_a_matrix():
    """2x2 max pooling of a 4x4 matrix keeps the largest of each block."""
    matrix = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=np.float32)
    np.testing.assert_array_equal(F.max_pool2d(matrix, 2), [[6, 8], [3, 4]])


def test_pool_input_not_modified_and_non_contiguous(rng):
    """A strided, reversed view gives the contiguous copy's result; the input is untouched."""
    base = rng.standard_normal((3, 10, 12, 4))
    x = base.transpose(0, 3, 1, 2)[:, :, ::-1, ::2]
    snapshot = x.copy()
    for op in (lambda z: F.max_pool2d(z, 3, 2, 1), lambda z: F.avg_pool2d(z, 2, 1, 1)):
        np.testing.assert_array_equal(op(x), op(np.ascontiguousarray(x)))
    np.testing.assert_array_equal(x, snapshot)


BAD = [
    (F.max_pool2d, dict(kernel_size=0), ValueError, "kernel_size must be >= 1, got 0"),
    (F.max_pool2d, dict(kernel_size=2, stride=0), ValueError, "stride must be >= 1, got 0"),
    (
        F.max_pool2d,
        dict(kernel_size=2, padding=2),
        ValueError,
        "padding must be at most half the kernel size",
    ),
    (F.max_pool2d, dict(kernel_size=2, padding=-1), ValueError, "padding must be >= 0, got -1"),
    (F.max_pool2d, dict(kernel_size=2, dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (F.max_pool2d, dict(kernel_size=9), ValueError, "output size"),
    (
        F.max_pool2d,
        dict(kernel_size=2.0),
        TypeError,
        "kernel_size must be an int or a pair of ints, got 2.0",
    ),
    (F.max_pool2d, dict(kernel_size=2, ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
    (
        F.avg_pool2d,
        dict(kernel_size=3, padding=2),
        ValueError,
        "padding must be at most half the kernel size",
    ),
    (F.avg_pool2d, dict(kernel_size=(2, 9)), ValueError, "output size"),
    (
        F.avg_pool2d,
        dict(kernel_size=2, count_include_pad=None),
        TypeError,
        "count_include_pad must be a bool",
    ),
]


@pytest.mark.parametrize("op, kwargs, error, message", BAD)
def test_bad_pool_arguments(op, kwargs, error, message):
    """Bad arguments raise the documented error naming the argument and value."""
    with pytest.raises(error) as info:
        op(np.ones((1, 2, 5, 5)), **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "x, error",
    [(np.ones(5), ValueError), ([[1.0]], TypeError), (np.ones((1, 1, 1, 2, 2)), ValueError)],
)
def test_bad_pool_inputs(x, error):
    """Wrong rank or a non-array input is refused by every pooling op."""
    for op in (lambda z: F.max_pool2d(z, 1), lambda z: F.avg_pool2d(z, 1), F.global_avg_pool2d):
        with pytest.raises(error, match="x must"):
            op(x)


@pytest.mark.parametrize("budget", [1, 600, 5000])
@pytest.mark.parametrize("case", MAX_CASES[:8])
def test_pooling_in_blocks_matches_torch(case, budget, rng, monkeypatch, threads):
    """Cut into blocks of samples, channels or rows, on 1 or 2 threads: both poolings match PyTorch."""
    from cnnkit import _threads

    monkeypatch.setattr(_threads, "BLOCK_BYTES", budget)
    n, c, h, w, kernel, stride, padding, dilation, ceil_mode = case
    x = reference.tie_free(rng, (n, c, h, w))
    x[0, 0, 1, 1] = np.nan  # NaN routing must survive the blocks too
    (out, idx), cache = F.max_pool2d_forward(
        x, kernel, stride, padding, dilation, ceil_mode, return_indices=True
    )
    g = rng.standard_normal(out.shape)
    expected, expected_idx, expected_grad = torch_max(
        x, kernel, stride, padding, dilation, ceil_mode, g
    )
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(
        F.max_pool2d_backward(g, cache), expected_grad, rtol=1e-12, atol=1e-12
    )
    if dilation == 1:  # avg_pool2d has no dilation; the same windows, so the same g fits
        y = rng.standard_normal((n, c, h, w))
        out, cache = F.avg_pool2d_forward(y, kernel, stride, padding, ceil_mode, False)
        yt = torch.tensor(y, requires_grad=True)
        expected = TF.avg_pool2d(yt, kernel, stride, padding, ceil_mode, False)
        expected.backward(torch.tensor(g))
        np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            F.avg_pool2d_backward(g, cache), yt.grad.numpy(), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("budget", [600, 5000])
@pytest.mark.parametrize("case", MAX_CASES[:8])
def test_pooling_is_the_same_for_any_thread_count(case, budget, rng, monkeypatch):
    """Forward and backward of both poolings are bitwise equal on 1, 2 and 3 threads."""
    import cnnkit as ck
    from cnnkit import _threads

    monkeypatch.setattr(_threads, "BLOCK_BYTES", budget)
    n, c, h, w, kernel, stride, padding, dilation, ceil_mode = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    g = None
    results = []
    before = ck.get_num_threads()
    try:
        for count in (1, 2, 3):
            ck.set_num_threads(count)
            (out, idx), cache = F.max_pool2d_forward(
                x, kernel, stride, padding, dilation, ceil_mode, return_indices=True
            )
            g = rng.standard_normal(out.shape).astype(np.float32) if g is None else g
            run = [out, idx, F.max_pool2d_backward(g, cache)]
            if dilation == 1:
                out, cache = F.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode)
                run += [out, F.avg_pool2d_backward(g, cache)]
            results.append(run)
    finally:
        ck.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def _channels_last(a):
    """`a` (N, C, H, W) as a view of channels-last memory (a convolution's output layout)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("grad_channels_last", [True, False])
@pytest.mark.parametrize("budget", [600, 5000])
@pytest.mark.parametrize("case", MAX_CASES[:8])
def test_channels_last_pooling_matches_torch_and_keeps_its_layout(
    case, budget, grad_channels_last, rng, monkeypatch, threads
):
    """Channels-last inputs, with gradients in either layout: PyTorch's results, and the
    output and input gradient keep the input's layout (as PyTorch's channels_last)."""
    from cnnkit import _threads

    monkeypatch.setattr(_threads, "BLOCK_BYTES", budget)
    n, c, h, w, kernel, stride, padding, dilation, ceil_mode = case
    x = _channels_last(reference.tie_free(rng, (n, c, h, w)))
    (out, idx), cache = F.max_pool2d_forward(
        x, kernel, stride, padding, dilation, ceil_mode, return_indices=True
    )
    g = rng.standard_normal(out.shape)
    expected, expected_idx, expected_grad = torch_max(
        np.ascontiguousarray(x), kernel, stride, padding, dilation, ceil_mode, g
    )
    grad_x = F.max_pool2d_backward(_channels_last(g) if grad_channels_last else g, cache)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(grad_x, expected_grad, rtol=1e-12, atol=1e-12)
    for result in (out, grad_x):
        assert result.transpose(0, 2, 3, 1).flags.c_contiguous
    if dilation == 1:
        out, cache = F.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, False)
        xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
        expected = TF.avg_pool2d(xt, kernel, stride, padding, ceil_mode, False)
        expected.backward(torch.tensor(g))
        grad_x = F.avg_pool2d_backward(_channels_last(g) if grad_channels_last else g, cache)
        np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
