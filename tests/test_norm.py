"""batch_norm against PyTorch (forward, running statistics, autograd) and loops (gradient
checks: test_properties.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit.functional as F

import reference


def torch_batch_norm(x, rm, rv, w, b, training, momentum, eps, g):
    xt = torch.tensor(x, requires_grad=True)
    wt = None if w is None else torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    rmt = None if rm is None else torch.tensor(rm)
    rvt = None if rv is None else torch.tensor(rv)
    out = TF.batch_norm(xt, rmt, rvt, wt, bt, training=training, momentum=momentum, eps=eps)
    out.backward(torch.tensor(g))
    return (
        out.detach().numpy(),
        xt.grad.numpy(),
        None if wt is None else wt.grad.numpy(),
        None if bt is None else bt.grad.numpy(),
        None if rmt is None else rmt.numpy(),
        None if rvt is None else rvt.numpy(),
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (8, 5), (1, 2, 3, 3), (2, 1, 1, 2)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_torch(shape, training, affine, dtype, rng):
    """Output, gradients and in-place running statistics equal PyTorch's."""
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2, c).astype(dtype)
    w = rng.standard_normal(c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    g = rng.standard_normal(shape).astype(dtype)
    expected = torch_batch_norm(x, rm.copy(), rv.copy(), w, b, training, 0.3, 1e-3, g)
    out, cache = F.batch_norm_forward(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3)
    dx, dw, db = F.batch_norm_backward(g, cache)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    assert out.dtype == dtype
    for mine, theirs in zip((out, dx, dw, db, rm, rv), expected):
        if theirs is None:
            assert mine is None
        else:
            np.testing.assert_allclose(mine, theirs, rtol=tol, atol=tol)


def test_training_without_running_stats_matches_torch(rng):
    """training with no running buffers normalises with the batch statistics only."""
    x = rng.standard_normal((5, 3, 2, 2))
    g = rng.standard_normal(x.shape)
    expected = torch_batch_norm(x, None, None, None, None, True, 0.1, 1e-5, g)
    out, cache = F.batch_norm_forward(x, training=True)
    np.testing.assert_allclose(out, expected[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        F.batch_norm_backward(g, cache)[0], expected[1], rtol=1e-9, atol=1e-10
    )


def test_matches_loop_reference(rng):
    """Per-channel loops: biased variance normalises, unbiased variance updates running_var."""
    x = rng.standard_normal((3, 2, 4, 4))
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = np.zeros(2), np.ones(2)
    out = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.25, eps=1e-5)
    expected, mean, unbiased = reference.batch_norm_train(x, gamma, beta, 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.75 + 0.25 * unbiased, rtol=1e-12)


BAD = [
    (dict(x=np.ones((1, 3))), ValueError, "more than 1 value per channel"),
    (dict(x=np.ones((1, 3, 1, 1))), ValueError, "more than 1 value per channel"),
    (
        dict(training=False, running_mean=None, running_var=None),
        ValueError,
        "needs running_mean and running_var",
    ),
    (
        dict(running_mean=np.zeros(4)),
        ValueError,
        "running_mean must have shape (3,), got shape (4,)",
    ),
    (dict(weight=np.ones(2)), ValueError, "weight must have shape (3,)"),
    (dict(x=np.ones((2, 3, 4))), ValueError, "x must have 2 or 4 dimensions"),
    (dict(running_var=None), ValueError, "given together"),
    (dict(eps=-1.0), ValueError, "eps must be >= 0.0, got -1.0"),
    (dict(training="yes"), TypeError, "training must be a bool"),
    (dict(x=[[1.0, 2.0]]), TypeError, "x must be a numpy.ndarray"),
]


@pytest.mark.parametrize("override, error, message", BAD)
def test_bad_arguments(override, error, message):
    args = dict(
        x=np.ones((2, 3, 2, 2)), running_mean=np.zeros(3), running_var=np.ones(3), training=True
    )
    args.update(override)
    with pytest.raises(error) as info:
        F.batch_norm(**args)
    assert message in str(info.value)


def test_eval_float64_input_with_float32_buffers_computes_in_float64(rng):
    """In eval, float32 running buffers do not round a float64 input's result to float32."""
    x = rng.standard_normal((4, 3, 5, 5))
    mean = rng.standard_normal(3).astype(np.float32)
    var = (0.5 + rng.random(3)).astype(np.float32)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    out = F.batch_norm(x, mean, var, weight, bias, training=False)
    expected = TF.batch_norm(
        torch.tensor(x),
        torch.tensor(mean, dtype=torch.float64),
        torch.tensor(var, dtype=torch.float64),
        torch.tensor(weight),
        torch.tensor(bias),
        training=False,
    ).numpy()
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", [(16, 3, 5, 6), (2, 4, 16, 16), (2, 2, 40, 40), (300, 7)])
@pytest.mark.parametrize("training", [True, False])
def test_blocks_match_torch_and_each_other(shape, training, rng, threads):
    """Cut into blocks of samples, channels or rows (shape by shape), on 1 or 2 threads, batch
    norm matches PyTorch and is bitwise the same as on one thread in one block."""
    import cnnkit as ck

    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    rm, rv = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    expected = torch_batch_norm(x, rm.copy(), rv.copy(), w, b, training, 0.3, 1e-3, g)

    def run():
        mean, var = rm.copy(), rv.copy()
        out, cache = F.batch_norm_forward(
            x, mean, var, w, b, training=training, momentum=0.3, eps=1e-3
        )
        return (out, *F.batch_norm_backward(g, cache), mean, var)

    from cnnkit.functional import norm

    assert len(norm._blocks(shape + (1,) * (4 - len(shape)), x.itemsize)) > 1  # really in blocks
    result = run()
    for mine, theirs in zip(result, expected):
        np.testing.assert_allclose(mine, theirs, rtol=2e-4, atol=2e-4)
    ck.set_num_threads(1 if threads == 2 else 2)
    for a, b_ in zip(result, run()):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("grad_channels_last", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_channels_last_input_matches_torch_and_keeps_its_layout(
    training, grad_channels_last, rng, threads
):
    """A convolution's channels-last output is normalised in place of its layout: the
    output and the input gradient keep it, the numbers equal PyTorch's, and one and two
    threads agree bit for bit."""
    import cnnkit as ck

    n, c, h, w = 4, 6, 5, 7
    x = np.ascontiguousarray((rng.standard_normal((n, h, w, c)) * 3 + 2).astype(np.float32))
    x = x.transpose(0, 3, 1, 2)  # (N, C, H, W) view of channels-last memory
    g = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if grad_channels_last:
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    rm, rv = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    wt, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    expected = torch_batch_norm(
        np.ascontiguousarray(x),
        rm.copy(),
        rv.copy(),
        wt,
        b,
        training,
        0.3,
        1e-3,
        np.ascontiguousarray(g),
    )

    def run():
        mean, var = rm.copy(), rv.copy()
        out, cache = F.batch_norm_forward(
            x, mean, var, wt, b, training=training, momentum=0.3, eps=1e-3
        )
        return (out, *F.batch_norm_backward(g, cache), mean, var)

    result = run()
    out, dx = result[0], result[1]
    assert out.shape == dx.shape == x.shape
    assert out.transpose(0, 2, 3, 1).flags.c_contiguous
    assert dx.transpose(0, 2, 3, 1).flags.c_contiguous
    for mine, theirs in zip(result, expected):
        np.testing.assert_allclose(mine, theirs, rtol=2e-4, atol=2e-4)
    ck.set_num_threads(1 if threads == 2 else 2)
    for a, b_ in zip(result, run()):
        np.testing.assert_array_equal(a, b_)
