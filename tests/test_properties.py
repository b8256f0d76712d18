"""Properties every functional op keeps, checked over one table of ops: gradients equal
float64 directional derivatives, inputs stay untouched, layouts are irrelevant, dtypes kept.

Adding an op? One entry in OPS (and in INPUTS if random normals do not suit it) puts it
through every test here; its PyTorch and naive-loop comparisons go in its own test file.
"""

import numpy as np
import pytest

import cnnkit.functional as F

import reference


def noncontiguous(array):
    """The same values as `array`, in memory that is transposed, strided and reversed."""
    padded = np.zeros((*array.shape[::-1], 2), dtype=array.dtype)
    view = padded[..., 0].T[(slice(None),) * (array.ndim - 1) + (slice(None, None, -1),)]
    view[...] = array
    return view


TARGET = np.array([0, 2, 1, 2])  # class indices for cross_entropy's (4, 3) logits
RUNNING_MEAN, RUNNING_VAR = np.array([0.5, -1.0, 0.0]), np.array([0.5, 2.0, 1.0])

# name -> (forward, backward, input shapes): forward takes the arrays positionally and
# returns (out, cache); backward takes (grad_output, cache) and returns one gradient per
# input, in order.
OPS = {
    "conv2d": (
        lambda x, w: F.conv2d_forward(x, w, padding=1),
        F.conv2d_backward,
        [(2, 3, 6, 7), (4, 3, 3, 3)],
    ),
    "conv2d_bias_kernel_3x2": (
        lambda x, w, b: F.conv2d_forward(x, w, b, stride=(2, 1), padding=(1, 2), groups=2),
        F.conv2d_backward,
        [(2, 4, 8, 7), (6, 2, 3, 2), (6,)],
    ),
    "conv2d_strided_groups": (
        lambda x, w: F.conv2d_forward(x, w, stride=2, padding=1, groups=2, padding_mode="reflect"),
        F.conv2d_backward,
        [(2, 4, 7, 6), (6, 2, 3, 3)],
    ),
    "conv2d_dilated_replicate": (
        lambda x, w, b: F.conv2d_forward(
            x, w, b, stride=2, padding=2, dilation=2, padding_mode="replicate"
        ),
        F.conv2d_backward,
        [(2, 3, 11, 10), (4, 3, 3, 3), (4,)],
    ),
    "conv2d_depthwise": (
        lambda x, w: F.conv2d_forward(x, w, padding="same", groups=3),
        F.conv2d_backward,
        [(2, 3, 6, 7), (3, 1, 3, 3)],
    ),
    # PyTorch refuses padding="same" at stride > 1, so this directional check is the only
    # oracle of this op's gradient that does not depend on how "same" is resolved.
    "conv2d_strided_same_circular": (
        lambda x, w, b: F.conv2d_forward(
            x, w, b, stride=(3, 2), padding="same", groups=2, padding_mode="circular"
        ),
        F.conv2d_backward,
        [(2, 2, 7, 8), (4, 1, 2, 3), (4,)],
    ),
    "max_pool2d": (
        lambda x: F.max_pool2d_forward(x, 3, 2, 1),
        F.max_pool2d_backward,
        [(2, 3, 7, 6)],
    ),
    "max_pool2d_dilated_ceil": (
        lambda x: F.max_pool2d_forward(x, 2, 2, 1, dilation=2, ceil_mode=True),
        F.max_pool2d_backward,
        [(2, 3, 8, 7)],
    ),
    "avg_pool2d": (
        lambda x: F.avg_pool2d_forward(x, 2, ceil_mode=True),
        F.avg_pool2d_backward,
        [(2, 3, 7, 6)],
    ),
    "avg_pool2d_padded_exclusive": (
        lambda x: F.avg_pool2d_forward(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        F.avg_pool2d_backward,
        [(2, 3, 7, 6)],
    ),
    "global_avg_pool2d": (
        F.global_avg_pool2d_forward,
        F.global_avg_pool2d_backward,
        [(2, 3, 4, 5)],
    ),
    "relu": (F.relu_forward, F.relu_backward, [(3, 4, 5)]),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward, [(3, 4, 5)]),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, [(3, 4, 5)]),
    "softmax": (lambda x: F.softmax_forward(x, axis=1), F.softmax_backward, [(3, 4, 5)]),
    "log_softmax": (
        lambda x: F.log_softmax_forward(x, axis=0),
        F.log_softmax_backward,
        [(3, 4, 5)],
    ),
    "batch_norm": (
        lambda x, w, b: F.batch_norm_forward(x, None, None, w, b, training=True),
        F.batch_norm_backward,
        [(4, 3, 2, 5), (3,), (3,)],
    ),
    "batch_norm_eval": (
        lambda x, w, b: F.batch_norm_forward(x, RUNNING_MEAN, RUNNING_VAR, w, b, training=False),
        F.batch_norm_backward,
        [(4, 3, 3, 2), (3,), (3,)],
    ),
    "linear": (F.linear_forward, F.linear_backward, [(5, 4), (3, 4), (3,)]),
    "cross_entropy": (
        lambda z: F.cross_entropy_forward(z, TARGET),
        F.cross_entropy_backward,
        [(4, 3)],
    ),
    "dropout": (lambda x: F.dropout_forward(x, 0.5, rng=3), F.dropout_backward, [(6, 7)]),
}

# Ops whose derivative has kinks get inputs that a finite difference cannot straddle.
INPUTS = {
    "max_pool2d": reference.tie_free,
    "max_pool2d_dilated_ceil": reference.tie_free,
    "relu": reference.away_from_zero,
    "leaky_relu": reference.away_from_zero,
}


def make_inputs(name, rng, dtype=np.float64):
    """The op's input arrays: its INPUTS maker for the first, random normals otherwise."""
    shapes = OPS[name][2]
    first = INPUTS.get(name, lambda r, shape: r.standard_normal(shape))(rng, shapes[0])
    rest = [rng.standard_normal(shape) for shape in shapes[1:]]
    return [a.astype(dtype) for a in (first, *rest)]


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _run(name, arrays, grad_seed=0):
    forward, backward, _ = OPS[name]
    out, cache = forward(*arrays)
    grad = (
        np.random.default_rng(grad_seed)
        .standard_normal(np.shape(out))
        .astype(np.asarray(out).dtype)
    )
    grads = tuple(g for g in _as_tuple(backward(grad, cache)) if g is not None)
    return (np.asarray(out), *grads)


@pytest.mark.parametrize("name", list(OPS))
def test_inputs_are_never_modified(name, rng):
    """Forward and backward leave every input array exactly as it was."""
    arrays = make_inputs(name, rng)
    snapshot = [a.copy() for a in arrays]
    _run(name, arrays)
    for before, after in zip(snapshot, arrays):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("name", list(OPS))
def test_non_contiguous_inputs_give_the_contiguous_result(name, rng):
    """Transposed, strided and reversed views give exactly what contiguous copies give."""
    arrays = make_inputs(name, rng)
    views = [noncontiguous(a) for a in arrays]
    assert all(not v.flags.c_contiguous or v.ndim == 1 for v in views)
    for mine, theirs in zip(_run(name, views), _run(name, arrays)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPS))
def test_float_dtype_is_kept_forward_and_backward(name, dtype, rng):
    """float32 stays float32 and float64 stays float64, outputs and gradients alike."""
    arrays = make_inputs(name, rng, dtype)
    for result in _run(name, arrays):
        assert result.dtype == dtype, name


@pytest.mark.parametrize("name", [n for n in OPS if len(OPS[n][2]) == 1])
def test_integer_inputs_compute_in_float32(name, rng):
    """An integer (uint8 image-like) input gives the float32 result of its float32 copy."""
    x = rng.integers(0, 255, size=OPS[name][2][0]).astype(np.uint8)
    for mine, theirs in zip(_run(name, [x]), _run(name, [x.astype(np.float32)])):
        assert mine.dtype == np.float32
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("name", list(OPS))
def test_gradients_match_directional_derivatives(name, rng):
    """For each input, <u, J^T v> from backward equals the central difference of <f, v>
    along a random direction u (float64)."""
    forward, backward, _ = OPS[name]
    arrays = make_inputs(name, rng)
    out, cache = forward(*arrays)
    v = rng.standard_normal(np.shape(out))
    grads = [g for g in _as_tuple(backward(v, cache)) if g is not None]  # None: no bias
    assert len(grads) == len(arrays), name
    for index, grad in enumerate(grads):

        def f(z, index=index):
            return np.asarray(forward(*arrays[:index], z, *arrays[index + 1 :])[0])

        u = rng.standard_normal(arrays[index].shape)
        numeric = reference.directional_check(f, arrays[index], u, v, eps=1e-5)
        assert np.isclose(np.sum(u * grad), numeric, rtol=1e-7, atol=1e-8), (name, index)
