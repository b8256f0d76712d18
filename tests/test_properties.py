"""Properties every functional op keeps: inputs untouched, layouts irrelevant, dtypes kept."""

import numpy as np
import pytest

import cnnkit.functional as F


def noncontiguous(array):
    """The same values as `array`, in memory that is transposed, strided and reversed."""
    padded = np.zeros(array.shape[::-1] + (2,), dtype=array.dtype)
    view = padded[..., 0].T[(slice(None),) * (array.ndim - 1) + (slice(None, None, -1),)]
    view[...] = array
    return view


# name -> (forward, backward or None, input shapes, float kwargs), each forward taking
# the arrays positionally; backward gets (grad_output, cache) and returns the gradients.
OPS = {
    "conv2d": (lambda x, w: F.conv2d_forward(x, w, padding=1), F.conv2d_backward, [(2, 3, 6, 7), (4, 3, 3, 3)]),
    "conv2d_strided_groups": (
        lambda x, w: F.conv2d_forward(x, w, stride=2, padding=1, groups=2, padding_mode="reflect"),
        F.conv2d_backward, [(2, 4, 7, 6), (6, 2, 3, 3)],
    ),
    "conv2d_depthwise": (lambda x, w: F.conv2d_forward(x, w, padding="same", groups=3), F.conv2d_backward,
                         [(2, 3, 6, 7), (3, 1, 3, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d_forward(x, 3, 2, 1), F.max_pool2d_backward, [(2, 3, 7, 6)]),
    "avg_pool2d": (lambda x: F.avg_pool2d_forward(x, 2, ceil_mode=True), F.avg_pool2d_backward, [(2, 3, 7, 6)]),
    "global_avg_pool2d": (F.global_avg_pool2d_forward, F.global_avg_pool2d_backward, [(2, 3, 4, 5)]),
    "relu": (F.relu_forward, F.relu_backward, [(3, 4, 5)]),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward, [(3, 4, 5)]),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, [(3, 4, 5)]),
    "softmax": (lambda x: F.softmax_forward(x, axis=1), F.softmax_backward, [(3, 4, 5)]),
    "log_softmax": (lambda x: F.log_softmax_forward(x, axis=0), F.log_softmax_backward, [(3, 4, 5)]),
    "batch_norm": (
        lambda x, w, b: F.batch_norm_forward(x, None, None, w, b, training=True),
        F.batch_norm_backward, [(4, 3, 2, 5), (3,), (3,)],
    ),
    "linear": (F.linear_forward, F.linear_backward, [(5, 4), (3, 4), (3,)]),
    "dropout": (lambda x: F.dropout_forward(x, 0.5, rng=3), F.dropout_backward, [(6, 7)]),
}


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _run(name, arrays, grad_seed=0):
    forward, backward, _ = OPS[name]
    out, cache = forward(*arrays)
    grad = np.random.default_rng(grad_seed).standard_normal(np.shape(out)).astype(np.asarray(out).dtype)
    grads = tuple(g for g in _as_tuple(backward(grad, cache)) if g is not None)
    return (np.asarray(out),) + grads


@pytest.mark.parametrize("name", list(OPS))
def test_inputs_are_never_modified(name, rng):
    """Forward and backward leave every input array exactly as it was."""
    arrays = [rng.standard_normal(shape) for shape in OPS[name][2]]
    snapshot = [a.copy() for a in arrays]
    _run(name, arrays)
    for before, after in zip(snapshot, arrays):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("name", list(OPS))
def test_non_contiguous_inputs_give_the_contiguous_result(name, rng):
    """Transposed, strided and reversed views give exactly what contiguous copies give."""
    arrays = [rng.standard_normal(shape) for shape in OPS[name][2]]
    views = [noncontiguous(a) for a in arrays]
    assert all(not v.flags.c_contiguous or v.ndim == 1 for v in views)
    for mine, theirs in zip(_run(name, views), _run(name, arrays)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPS))
def test_float_dtype_is_kept_forward_and_backward(name, dtype, rng):
    """float32 stays float32 and float64 stays float64, outputs and gradients alike."""
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in OPS[name][2]]
    for result in _run(name, arrays):
        assert result.dtype == dtype, name


@pytest.mark.parametrize("name", [n for n in OPS if len(OPS[n][2]) == 1])
def test_integer_inputs_compute_in_float32(name, rng):
    """An integer (uint8 image-like) input gives the float32 result of its float32 copy."""
    x = rng.integers(0, 255, size=OPS[name][2][0]).astype(np.uint8)
    for mine, theirs in zip(_run(name, [x]), _run(name, [x.astype(np.float32)])):
        assert mine.dtype == np.float32
        np.testing.assert_array_equal(mine, theirs)
