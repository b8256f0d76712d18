"""Batch normalisation: forward and backward, with PyTorch's running-statistics rule.

Every pass runs block by block (whole samples, else channels of a sample, else rows of a
plane; see :func:`_blocks`) over the thread pool: each block writes its own part of the
output, and the per-channel sums come back as one partial sum per block, added in block
order in float64, so the result is the same for any number of threads. The backward
pass recomputes ``x - mean`` block by block instead of keeping an input-sized copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit import _threads
from cnnkit._validation import as_float_array, check_bool, check_grad, check_ndim, check_real
from cnnkit._workspace import scratch

__all__ = ["batch_norm", "batch_norm_forward", "batch_norm_backward"]


@dataclass
class _BatchNormCache:
    x: np.ndarray  # the input as (N, C, H, W); (N, C) inputs as (N, C, 1, 1)
    shape: tuple[int, ...]  # the input's own shape
    mean: np.ndarray  # (C,): the mean subtracted (batch or running), in x's dtype
    inv_std: np.ndarray  # (C,): 1 / sqrt(var + eps), in the output dtype
    weight: np.ndarray | None
    has_bias: bool
    training: bool


def _per_channel(name, value, channels):
    """A (C,) array or None; anything else is refused."""
    if value is None:
        return None
    value = as_float_array(name, value)
    if value.shape != (channels,):
        raise ValueError(f"{name} must have shape ({channels},), got shape {value.shape}")
    return value


def _channel_view(a: np.ndarray) -> np.ndarray:
    """An (N, C, H, W) array as the (A, C, B, 1) view its memory order allows, without a copy.

    Channel-major memory stays (N, C, H, W); channels-last memory (a convolution's output)
    is seen as (N*H*W, C, 1, 1), so the blocks are runs of whole pixels and the output can
    keep the input's layout (as PyTorch's channels_last does).
    """
    if a.flags.c_contiguous:
        return a
    n, c, h, w = a.shape
    rows = a.transpose(0, 2, 3, 1)
    if rows.flags.c_contiguous:
        return rows.reshape(n * h * w, c, 1, 1)
    return a


def _as_input_shape(view: np.ndarray, shape) -> np.ndarray:
    """An array laid out as :func:`_channel_view` gave, back in the input's `shape`."""
    if view.size == 0 or len(shape) == 2 or view.shape == tuple(shape):
        return view.reshape(shape)
    n, c, h, w = shape
    return view.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _as_view_of(a: np.ndarray, view_shape) -> np.ndarray:
    """`a`, of the input's shape, as the input's :func:`_channel_view` (a copy if laid out otherwise)."""
    if a.ndim == 2 or a.shape == tuple(view_shape):
        return a.reshape(view_shape)
    return a.transpose(0, 2, 3, 1).reshape(view_shape)


def _blocks(shape, itemsize):
    """Blocks ``(n0, n1, c0, c1, h0, h1)`` of an (N, C, H, W) array, about ``BLOCK_BYTES`` each.

    Whole samples when they fit, else channels of one sample, else rows of one plane. The
    cut depends on the shape only, so per-block sums add up the same for any thread count.
    """
    n, c, h, w = shape
    budget = _threads.BLOCK_BYTES
    row = w * itemsize
    if c * h * row <= budget:
        return [(n0, n1, 0, c, 0, h) for n0, n1 in _threads.blocks(n, c * h * row)]
    if h * row <= budget:
        return [
            (i, i + 1, c0, c1, 0, h) for i in range(n) for c0, c1 in _threads.blocks(c, h * row)
        ]
    return [
        (i, i + 1, j, j + 1, h0, h1)
        for i in range(n)
        for j in range(c)
        for h0, h1 in _threads.blocks(h, row)
    ]


def _part(a: np.ndarray, block) -> np.ndarray:
    n0, n1, c0, c1, h0, h1 = block
    return a[n0:n1, c0:c1, h0:h1]


def _per_channel_operand(v: np.ndarray, shape, blocks) -> np.ndarray:
    """A (C,) vector as an operand for the blocks of an (N, C, H, W) array.

    NumPy runs ``block * v[:, None, None]`` at about half the speed of an operation
    between arrays of one shape. When the blocks are whole samples and there are at
    least two, the vector is spread once over a whole (C, H, W) sample, which the
    blocks then broadcast along their samples only; otherwise it stays (C, 1, 1).
    """
    n, c, h, w = shape
    column = v[:, None, None]
    whole_samples = all(b[2:] == (0, c, 0, h) for b in blocks)
    if h * w == 1 or n < 2 or not whole_samples:
        return column
    sample = np.empty((c, h, w), v.dtype)
    sample[...] = column
    return sample


def _column(operand: np.ndarray, block) -> np.ndarray:
    """A block's part of :func:`_per_channel_operand`'s operand, to broadcast over (n, c, h, w)."""
    c0, c1, h0, h1 = block[2:]
    return operand[c0:c1] if operand.shape[1] == 1 else operand[c0:c1, h0:h1]


def _channel_sums(partials, blocks, channels) -> np.ndarray:
    """Per-channel totals (float64) of per-block partial sums, added in block order."""
    total = np.zeros(channels)
    for block, partial in zip(blocks, partials):
        total[block[2] : block[3]] += partial
    return total


def _centered(x4, mean, block, name="norm.centered") -> np.ndarray:
    """``x - mean`` over one block, in a reused buffer: (n, c, h, w)."""
    part = _part(x4, block)
    return np.subtract(part, _column(mean, block), out=scratch(name, part.shape, x4.dtype))


def _batch_statistics(x4, blocks):
    """Per-channel mean (in x's dtype) and biased variance (float64), one pass over `x`.

    Each block gives its own mean and sum of squared deviations, from the block while it
    is in the cache; the blocks are then merged in block order (Chan et al.'s update).
    """

    def moments(block):
        part = _part(x4, block)
        count = part.size // part.shape[1]
        # sums of a block in its own dtype (fast, and short enough to stay accurate)
        mean = np.einsum("nchw->c", part) / np.float64(count)
        centered = scratch("norm.centered", part.shape, part.dtype)
        np.subtract(
            part, mean.astype(part.dtype)[:, None, None], out=centered
        )  # a block's own mean
        return count, mean, np.einsum("nchw,nchw->c", centered, centered).astype(np.float64)

    channels = x4.shape[1]
    counts, total = np.zeros(channels), np.zeros(channels)
    means, squares = [], []
    for block, (count, mean, square) in zip(blocks, _threads.parallel(moments, blocks)):
        counts[block[2] : block[3]] += count
        total[block[2] : block[3]] += count * mean
        means.append(mean)
        squares.append(square)
    mean = total / counts
    deviation = np.zeros(channels)  # sum over blocks of M2_b + n_b * (mean_b - mean)**2
    for block, block_mean, square in zip(blocks, means, squares):
        n_b = (block[1] - block[0]) * (block[5] - block[4]) * x4.shape[3]
        deviation[block[2] : block[3]] += (
            square + n_b * (block_mean - mean[block[2] : block[3]]) ** 2
        )
    return mean.astype(x4.dtype), deviation / counts


def batch_norm_forward(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    """:func:`batch_norm` and the cache :func:`batch_norm_backward` needs.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W) or (N, C)
        Input; integer and bool inputs are computed in float32.
    running_mean, running_var : ndarray of shape (C,), optional
        Running statistics, used and updated as in :func:`batch_norm`.
    weight, bias : ndarray of shape (C,), optional
        Per-channel scale (gamma) and shift (beta).
    training : bool
        Normalise with the batch's statistics instead of the running ones.
    momentum : float
        Weight of the batch's statistics in the running statistics' update.
    eps : float
        Added to the variance; >= 0.

    Returns
    -------
    out : ndarray, the shape of `x`
        What :func:`batch_norm` returns.
    cache : tuple
        What :func:`batch_norm_backward` needs; opaque to the caller.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(4, 2)
    >>> out, cache = batch_norm_forward(x, training=True)
    >>> dx, dw, db = batch_norm_backward(np.ones_like(out), cache)
    >>> np.allclose(dx, 0), dw, db
    (True, None, None)
    """
    return _batch_norm_forward(
        x, running_mean, running_var, weight, bias, training, momentum, eps, in_place=False
    )


def _batch_norm_forward(
    x, running_mean, running_var, weight, bias, training, momentum, eps, *, in_place
):
    """:func:`batch_norm_forward`; with `in_place` (no backward follows) the output is
    written over `x` where its dtype allows, and the cache is None."""
    x = as_float_array("x", x)
    check_ndim("x", x, (2, 4), "((N, C) or (N, C, H, W))")
    training = check_bool("training", training)
    channels = x.shape[1]
    running_mean = _per_channel("running_mean", running_mean, channels)
    running_var = _per_channel("running_var", running_var, channels)
    weight = _per_channel("weight", weight, channels)
    bias = _per_channel("bias", bias, channels)
    momentum = check_real("momentum", momentum)
    eps = check_real("eps", eps, minimum=0.0)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together or not at all")
    for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
        if buffer is not None and training and not buffer.flags.writeable:
            raise ValueError(f"{name} must be writeable: it is updated in place when training")
    x4 = x if x.ndim == 4 else x[:, :, None, None]  # (N, C, H, W); (N, C) as (N, C, 1, 1)
    x4 = _channel_view(x4)  # (N*H*W, C, 1, 1) for channels-last memory
    blocks = _blocks(x4.shape, x.itemsize)
    count = x.size // channels if channels else 0
    if training:
        if count <= 1:
            raise ValueError(
                f"batch_norm needs more than 1 value per channel when training, "
                f"got x of shape {x.shape}"
            )
        mean, var = _batch_statistics(x4, blocks)
        if running_mean is not None:
            unbiased = var * (count / (count - 1))  # biased var normalises the batch
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * unbiased
    else:
        if running_mean is None:
            raise ValueError(
                "batch_norm with training=False needs running_mean and running_var, got None"
            )
        mean = running_mean.astype(x.dtype, copy=False)
        var = running_var
    dtype = np.result_type(x, *(v for v in (weight, bias) if v is not None))
    # float32 running buffers must not round a float64 computation
    inv_std = 1.0 / np.sqrt(var.astype(dtype, copy=False) + eps)
    scale = inv_std if weight is None else inv_std * weight  # one multiply per element
    # out = x * scale + shift: two passes per block (PyTorch's form too)
    shift = -mean * scale if bias is None else bias - mean * scale
    shift = shift.astype(dtype, copy=False)
    in_place = in_place and dtype == x.dtype and x.flags.writeable
    out4 = x4 if in_place else np.empty(x4.shape, dtype)
    scale, shift = (_per_channel_operand(v, x4.shape, blocks) for v in (scale, shift))

    def normalise(block):
        target = _part(out4, block)
        np.multiply(_part(x4, block), _column(scale, block), out=target)
        target += _column(shift, block)

    _threads.parallel(normalise, blocks)
    if in_place:
        return x, None
    cache = _BatchNormCache(x4, x.shape, mean, inv_std, weight, bias is not None, bool(training))
    return _as_input_shape(out4, x.shape), cache


def batch_norm_backward(grad_output, cache):
    """Gradients of :func:`batch_norm` with respect to `x`, `weight` and `bias`.

    Parameters
    ----------
    grad_output : ndarray, the shape of `x`
        Gradient of the loss with respect to the output.
    cache : tuple
        The cache :func:`batch_norm_forward` returned.

    Returns
    -------
    grad_x : ndarray, the shape of `x`
        Gradient with respect to `x`.
    grad_weight, grad_bias : ndarray of shape (C,), or None where the forward had none
        Gradients with respect to `weight` and `bias`.

    Notes
    -----
    In training the mean and variance depend on `x`:
    ``dx = w * inv_std * (g - mean(g) - xhat * mean(g * xhat))``, means over the ``m``
    values of each channel; in evaluation ``dx = w * inv_std * g``.

    Examples
    --------
    >>> x, weight, bias = np.array([[1.0], [3.0]]), np.array([2.0]), np.array([0.0])
    >>> out, cache = batch_norm_forward(x, weight=weight, bias=bias, training=True, eps=0.0)
    >>> out
    array([[-2.],
           [ 2.]])
    >>> grad_x, grad_weight, grad_bias = batch_norm_backward(np.array([[1.0], [0.0]]), cache)
    >>> grad_weight, grad_bias
    (array([-1.]), array([1.]))
    """
    x4, mean, inv_std = cache.x, cache.mean, cache.inv_std
    grad = check_grad(grad_output, cache.shape, inv_std.dtype)
    grad = _as_view_of(grad, x4.shape)  # laid out as the input's view
    channels = x4.shape[1]
    count = x4.size // channels
    blocks = _blocks(x4.shape, max(x4.itemsize, grad.itemsize))
    grad_sum = grad_xhat_sum = None
    if cache.has_bias or cache.weight is not None or cache.training:
        mean = _per_channel_operand(mean, x4.shape, blocks)

        def sums(block):
            g = _part(grad, block)
            centered = _centered(x4, mean, block)
            return np.einsum("nchw->c", g), np.einsum("nchw,nchw->c", g, centered)

        partials = _threads.parallel(sums, blocks)
        grad_sum = _channel_sums([p[0] for p in partials], blocks, channels).astype(grad.dtype)
        # sum(g * xhat) = inv_std * sum(g * (x - mean)), without forming xhat
        dot = _channel_sums([p[1] for p in partials], blocks, channels).astype(grad.dtype)
        grad_xhat_sum = inv_std * dot
    grad_bias = grad_sum if cache.has_bias else None
    grad_weight = grad_xhat_sum if cache.weight is not None else None
    scale = inv_std if cache.weight is None else inv_std * cache.weight
    scale = _per_channel_operand(scale, x4.shape, blocks)
    grad_x = np.empty(x4.shape, grad.dtype)
    if cache.training:
        # dx = w * inv_std * (g - mean(g) - xhat * mean(g * xhat))
        grad_mean = _per_channel_operand(grad_sum / count, x4.shape, blocks)
        # per channel, times (x - mean)
        correction = _per_channel_operand(inv_std * grad_xhat_sum / count, x4.shape, blocks)

        def input_grad(block):
            target = _part(grad_x, block)
            centered = _centered(x4, mean, block)
            centered *= _column(correction, block)
            np.subtract(_part(grad, block), _column(grad_mean, block), out=target)
            target -= centered
            target *= _column(scale, block)

    else:

        def input_grad(block):
            np.multiply(_part(grad, block), _column(scale, block), out=_part(grad_x, block))

    _threads.parallel(input_grad, blocks)
    return _as_input_shape(grad_x, cache.shape), grad_weight, grad_bias


def batch_norm(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    """Normalise each channel to zero mean and unit variance, then scale and shift.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W) or (N, C)
        Input; integer and bool inputs are computed in float32.
    running_mean, running_var : ndarray of shape (C,), optional
        Running statistics. Used to normalise when not `training` (then required);
        updated in place when `training`:
        ``running = (1 - momentum) * running + momentum * batch_statistic``, with the
        unbiased batch variance.
    weight, bias : ndarray of shape (C,), optional
        Per-channel scale (gamma) and shift (beta).
    training : bool
        Normalise with the batch's statistics (biased variance) instead of the running ones.
    momentum : float
        Weight of the batch's statistics in the running statistics' update.
    eps : float
        Added to the variance; >= 0.

    Returns
    -------
    ndarray, the shape of `x`
        In the float dtype of `x`.

    Raises
    ------
    ValueError
        When training with one value per channel, or evaluating without running statistics.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> batch_norm(x, mean, var, training=True, eps=0.0)
    array([[-1.],
           [ 1.]])
    >>> mean, var
    (array([0.2]), array([1.1]))
    """
    return batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum, eps)[
        0
    ]


# -- local response normalisation (AlexNet, GoogLeNet) ----------------------------------
__all__ += ["local_response_norm", "local_response_norm_forward", "local_response_norm_backward"]


@dataclass
class _LocalResponseNormCache:
    x: np.ndarray
    scale: np.ndarray  # k + alpha / size * (sum of squares over the window), the shape of x
    alpha: float
    beta: float
    size: int
    window: tuple[int, int]  # channels (before, after) each window reaches


def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """Sum of ``a`` over channels ``c - before .. c + after`` (zeros past the edges), per channel."""
    channels = a.shape[1]
    padding = [(0, 0)] * a.ndim
    padding[1] = (before, after)
    padded = np.pad(a, padding)  # (N, before + C + after, ...)
    total = padded[:, :channels].copy()
    for offset in range(1, before + after + 1):
        total += padded[:, offset : offset + channels]
    return total


def _local_response_norm_forward(x, size, alpha, beta, k, window):
    """The engine behind :func:`local_response_norm_forward`, with any channel window."""
    x = as_float_array("x", x)
    if x.ndim < 3:
        raise ValueError(f"x must have shape (N, C, ...) with at least 3 axes, got shape {x.shape}")
    sum_of_squares = _channel_window_sum(x * x, *window)
    scale = sum_of_squares * np.asarray(alpha / size, x.dtype) + np.asarray(k, x.dtype)
    out = x * scale ** np.asarray(-beta, x.dtype)
    return out, _LocalResponseNormCache(x, scale, alpha, beta, size, window)


def local_response_norm_forward(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """:func:`local_response_norm` and the cache :func:`local_response_norm_backward` needs.

    Parameters
    ----------
    x : ndarray of shape (N, C, ...)
        Input; integer and bool inputs are computed in float32.
    size : int
        Number of neighbouring channels in each window.
    alpha, beta, k : float
        As in :func:`local_response_norm`.

    Returns
    -------
    out : ndarray, the shape of `x`
        What :func:`local_response_norm` returns.
    cache : tuple
        What :func:`local_response_norm_backward` needs; opaque to the caller.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1.0, 9.0).reshape(1, 8, 1, 1)
    >>> out, cache = local_response_norm_forward(x, 3, alpha=1.0)
    >>> local_response_norm_backward(np.ones_like(out), cache).shape
    (1, 8, 1, 1)
    """
    from cnnkit._validation import check_positive_int

    size = check_positive_int("size", size)
    alpha, beta, k = check_real("alpha", alpha), check_real("beta", beta), check_real("k", k)
    # PyTorch pads size // 2 channels before and (size - 1) // 2 after.
    return _local_response_norm_forward(x, size, alpha, beta, k, (size // 2, (size - 1) // 2))


def local_response_norm_backward(grad_output, cache):
    """Gradient of :func:`local_response_norm` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, the shape of `x`
        Gradient of the loss with respect to the output.
    cache : tuple
        The cache :func:`local_response_norm_forward` returned.

    Returns
    -------
    grad_x : ndarray, the shape of `x`
        Gradient with respect to `x`.

    Notes
    -----
    With ``s_c = k + alpha / size * sum_{j in window(c)} x_j^2`` and ``y_c = x_c s_c^-beta``:
    ``dx_j = g_j s_j^-beta - 2 beta alpha / size * x_j * sum_{c: j in window(c)} g_c x_c s_c^(-beta-1)``;
    the channels ``c`` whose window holds ``j`` form the mirrored window.

    Examples
    --------
    >>> x = np.ones((1, 3, 1, 1))
    >>> out, cache = local_response_norm_forward(x, 3, alpha=3.0, beta=1.0, k=0.0)
    >>> local_response_norm_backward(np.array([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1), cache).ravel()
    array([ 0. , -0.5,  0. ])
    """
    x, scale = cache.x, cache.scale
    grad = as_float_array("grad_output", grad_output)
    if grad.shape != x.shape:
        raise ValueError(f"grad_output must have shape {x.shape}, got shape {grad.shape}")
    grad = grad.astype(x.dtype, copy=False)
    powered = scale ** np.asarray(-cache.beta, x.dtype)  # s^-beta
    before, after = cache.window
    spread = _channel_window_sum(grad * x * powered / scale, after, before)
    factor = np.asarray(2.0 * cache.beta * cache.alpha / cache.size, x.dtype)
    return grad * powered - factor * x * spread


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalise each value by the energy of its neighbouring channels (AlexNet's LRN).

    Parameters
    ----------
    x : ndarray of shape (N, C, ...)
        Input; integer and bool inputs are computed in float32.
    size : int
        Number of neighbouring channels in each window (the value's own included).
    alpha, beta, k : float
        ``out = x / (k + alpha / size * sum of x^2 over the window) ** beta``.

    Returns
    -------
    ndarray, the shape of `x`
        In the float dtype of `x`.

    Notes
    -----
    PyTorch's semantics: the window of channel ``c`` is ``c - size // 2`` to
    ``c + (size - 1) // 2``, zero past the edges; the sum is divided by `size` whatever
    the number of channels inside.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 3, 1, 1))
    >>> local_response_norm(x, size=3, alpha=3.0, beta=1.0, k=0.0)[:, :, 0, 0]
    array([[0.5       , 0.33333333, 0.5       ]])
    """
    return local_response_norm_forward(x, size, alpha, beta, k)[0]
