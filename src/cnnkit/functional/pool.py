"""Max, average and global-average pooling: forward and backward.

Each pooling window is visited one kernel offset at a time: the offset's strided view of
the (padded) input covers every window at once, so the work is ``kH * kW`` vectorised
passes over the output, with no Python loop over windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit._validation import as_float_array, check_nonnegative, check_positive
from cnnkit.functional._shapes import add_batch_axes, as_batch, from_batch

__all__ = [
    "max_pool2d",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "global_avg_pool2d",
    "global_avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "pool_output_size",
]


def pool_output_size(size, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """Output size of pooling along one axis (PyTorch's formula, with its ceil_mode rule).

    With `ceil_mode`, a last window is kept only if it starts inside the input or the
    left padding.

    Examples
    --------
    >>> pool_output_size(5, 2, 2), pool_output_size(5, 2, 2, ceil_mode=True)
    (2, 3)
    """
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass(frozen=True)
class _PoolGeometry:
    shape: tuple[int, int, int, int]  # N, C, H, W of the input
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    out_size: tuple[int, int]

    @property
    def padded(self) -> tuple[int, int]:
        """Extent of the padded input that the windows reach (right/bottom may exceed padding)."""
        return tuple(
            (o - 1) * s + d * (k - 1) + 1
            for o, s, d, k in zip(self.out_size, self.stride, self.dilation, self.kernel)
        )

    def window(self, xp, i, j):
        """View of `xp` seen by kernel offset (i, j) at every window: (N, C, Ho, Wo)."""
        (ho, wo), (sh, sw), (dh, dw) = self.out_size, self.stride, self.dilation
        return xp[..., i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]


def _validate(name, x, kernel_size, stride, padding, dilation, ceil_mode):
    xb, rank = as_batch("x", x)
    kernel = check_positive("kernel_size", kernel_size)
    stride = kernel if stride is None else check_positive("stride", stride)
    padding = check_nonnegative("padding", padding)
    dilation = check_positive("dilation", dilation)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half the kernel size: got padding {padding} "
                f"for kernel_size {kernel}"
            )
    _, _, h, w = xb.shape
    out_size = tuple(
        pool_output_size(n, k, s, p, d, bool(ceil_mode))
        for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation)
    )
    if min(out_size) < 1:
        raise ValueError(
            f"{name}: output size {out_size} is too small for input of shape {x.shape} with "
            f"kernel_size {kernel}, stride {stride}, padding {padding}, dilation {dilation}"
        )
    return xb, rank, _PoolGeometry(xb.shape, kernel, stride, padding, dilation, out_size)


def _pad(xb, g: _PoolGeometry, fill) -> np.ndarray:
    """`xb` inside a `fill`ed buffer covering every window; `xb` itself when none is needed."""
    n, c, h, w = xb.shape
    (ph, pw), (hp, wp) = g.padding, g.padded
    if ph == pw == 0 and hp <= h and wp <= w:
        return xb
    xp = np.empty_like(xb, shape=(n, c, max(hp, h + ph), max(wp, w + pw)))  # xb's memory order
    xp.fill(fill)
    xp[:, :, ph : ph + h, pw : pw + w] = xb
    return xp


def _unpad(dxp, g: _PoolGeometry) -> np.ndarray:
    _, _, h, w = g.shape
    ph, pw = g.padding
    return dxp[:, :, ph : ph + h, pw : pw + w]


@dataclass
class _MaxPoolCache:
    geometry: _PoolGeometry
    rank: int
    padded: np.ndarray  # the -inf padded input (the input itself when unpadded)
    out: np.ndarray  # (N, C, Ho, Wo)


def max_pool2d_forward(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """:func:`max_pool2d` that also returns the cache :func:`max_pool2d_backward` needs.

    Returns ``(out, cache)``, or ``((out, indices), cache)`` with `return_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = max_pool2d_forward(np.arange(16.0).reshape(4, 4), 2)
    >>> max_pool2d_backward(np.ones_like(out), cache)
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]])
    """
    xb, rank, g = _validate("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    xp = _pad(xb, g, -np.inf)
    kh, kw = g.kernel
    out = g.window(xp, 0, 0).copy(order="K")
    for offset in range(1, kh * kw):
        np.maximum(out, g.window(xp, *divmod(offset, kw)), out=out)  # NaN propagates
    cache = _MaxPoolCache(g, rank, xp, out)
    if return_indices:
        argmax = np.zeros_like(out, dtype=np.int64)
        for offset, winner in _winners(cache):
            argmax[winner] = offset
        return (from_batch(out, rank), from_batch(_flat_indices(argmax, g), rank)), cache
    return from_batch(out, rank), cache


def _winners(cache: _MaxPoolCache):
    """Yield ``(offset, mask)`` for each kernel offset: the windows whose maximum it holds.

    As PyTorch: the first maximum in row-major order, or in a window holding NaN, its
    last NaN. Each window is claimed by exactly one offset; the mask is reused.
    """
    g, xp, out = cache.geometry, cache.padded, cache.out
    kh, kw = g.kernel
    claimed = np.isnan(out)  # temporaries in out's memory order: much faster
    last_nan = None
    if claimed.any():
        last_nan = np.full_like(out, -1, dtype=np.int64)
        for offset in range(kh * kw):
            np.copyto(last_nan, offset, where=np.isnan(g.window(xp, *divmod(offset, kw))))
    winner = np.empty_like(out, dtype=bool)
    for offset in range(kh * kw):
        np.equal(g.window(xp, *divmod(offset, kw)), out, out=winner)
        np.greater(winner, claimed, out=winner)  # equal and not yet claimed
        claimed |= winner
        if last_nan is not None:
            winner |= last_nan == offset
        yield offset, winner


def _flat_indices(argmax, g: _PoolGeometry) -> np.ndarray:
    """PyTorch's indices: the flat position in each H*W plane of every window's maximum."""
    (ho, wo), (sh, sw), (dh, dw), (ph, pw) = g.out_size, g.stride, g.dilation, g.padding
    _, kw = g.kernel
    width = g.shape[3]
    di, dj = np.divmod(argmax, kw)
    rows = (np.arange(ho) * sh - ph)[:, None] + di * dh
    cols = np.arange(wo) * sw - pw + dj * dw
    return rows * width + cols


def max_pool2d_backward(grad_output, cache):
    """Gradient of :func:`max_pool2d` with respect to its input.

    Each window's gradient goes to its maximum (the first one in row-major order when
    several tie, as in PyTorch); overlapping windows add up.
    """
    g: _PoolGeometry = cache.geometry
    grad = _check_grad(grad_output, g, cache.rank, cache.out.dtype)
    kw = g.kernel[1]
    dxp = np.zeros_like(cache.padded)
    disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(g.stride, g.dilation, g.kernel))
    routed = None if disjoint else np.empty_like(grad)
    for offset, winner in _winners(cache):
        target = g.window(dxp, *divmod(offset, kw))
        if disjoint:  # each input element is seen by one window and offset at most: write
            np.multiply(grad, winner, out=target)
        else:
            np.multiply(grad, winner, out=routed)
            target += routed
    return from_batch(_unpad(dxp, g), cache.rank)


def _check_grad(grad_output, g: _PoolGeometry, rank, dtype) -> np.ndarray:
    n, c = g.shape[:2]
    expected = from_batch(np.empty((n, c) + g.out_size, dtype=bool), rank).shape
    grad_output = as_float_array("grad_output", grad_output)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have shape {expected}, got shape {grad_output.shape}")
    return add_batch_axes(grad_output, rank).astype(dtype, copy=False)


def max_pool2d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """2-D max pooling: the largest value in each window.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to `kernel_size`.
    padding : int or (int, int)
        Implicit -inf padding on each side; at most half the kernel size.
    dilation : int or (int, int)
        Spacing between the window's elements.
    ceil_mode : bool
        Round the output size up, keeping a last partial window that starts inside the
        input or the left padding.
    return_indices : bool
        Also return, for each output, the flat index into its ``H * W`` input plane of the
        maximum (as PyTorch; ties go to the first in row-major order).

    Returns
    -------
    out : ndarray of shape (N, C, Ho, Wo), (C, Ho, Wo) or (Ho, Wo)
    indices : ndarray of int64, the shape of `out`
        Only with `return_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool2d(np.array([[1., 5., 2., 0.], [3., 4., 8., 1.]]), 2)
    array([[5., 8.]])
    """
    return max_pool2d_forward(
        x, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )[0]


@dataclass
class _AvgPoolCache:
    geometry: _PoolGeometry
    rank: int
    divisor: np.ndarray  # (Ho, Wo)
    padded_shape: tuple[int, ...]
    channels_last: bool  # the padded input's memory order, which the gradient follows
    dtype: np.dtype


def _divisor(g: _PoolGeometry, count_include_pad: bool) -> np.ndarray:
    """Number of elements each window averages over, PyTorch's rule: (Ho, Wo)."""
    counts = []
    for n, o, k, s, p in zip(g.shape[2:], g.out_size, g.kernel, g.stride, g.padding):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, n) - np.maximum(start, 0))
    return np.outer(counts[0], counts[1])


def avg_pool2d_forward(
    x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
):
    """:func:`avg_pool2d` that also returns the cache :func:`avg_pool2d_backward` needs.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = avg_pool2d_forward(np.ones((2, 2)), 2)
    >>> avg_pool2d_backward(np.ones_like(out), cache)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    xb, rank, g = _validate("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"count_include_pad must be a bool, got {count_include_pad!r}")
    xp = _pad(xb, g, 0)
    kh, kw = g.kernel
    out = g.window(xp, 0, 0).copy(order="K")
    for offset in range(1, kh * kw):
        out += g.window(xp, *divmod(offset, kw))
    divisor = _divisor(g, bool(count_include_pad)).astype(xb.dtype)
    out /= divisor
    channels_last = xp.transpose(0, 2, 3, 1).flags.c_contiguous
    return from_batch(out, rank), _AvgPoolCache(g, rank, divisor, xp.shape, channels_last, xb.dtype)


def avg_pool2d_backward(grad_output, cache):
    """Gradient of :func:`avg_pool2d` with respect to its input."""
    g: _PoolGeometry = cache.geometry
    grad = _check_grad(grad_output, g, cache.rank, cache.dtype) / cache.divisor
    kh, kw = g.kernel
    n, c, hp, wp = cache.padded_shape
    if cache.channels_last:
        dxp = np.zeros((n, hp, wp, c), dtype=cache.dtype).transpose(0, 3, 1, 2)
    else:
        dxp = np.zeros(cache.padded_shape, dtype=cache.dtype)
    for offset in range(kh * kw):
        g.window(dxp, *divmod(offset, kw))[...] += grad
    return from_batch(_unpad(dxp, g), cache.rank)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """2-D average pooling: the mean of each window.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to `kernel_size`.
    padding : int or (int, int)
        Implicit zero padding on each side; at most half the kernel size.
    ceil_mode : bool
        Round the output size up (see :func:`pool_output_size`).
    count_include_pad : bool
        Whether the zero padding counts in the divisor.

    Returns
    -------
    out : ndarray of shape (N, C, Ho, Wo), (C, Ho, Wo) or (Ho, Wo)

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d(np.arange(8.0).reshape(2, 4), 2)
    array([[2.5, 4.5]])
    """
    return avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad)[0]


def global_avg_pool2d_forward(x):
    """:func:`global_avg_pool2d` that also returns the cache its backward needs."""
    xb, rank = as_batch("x", x)
    out = xb.mean(axis=(2, 3))  # (N, C)
    result = out if rank == 4 else out[0] if rank == 3 else out[0, 0]
    return np.asarray(result), (xb.shape, rank)


def global_avg_pool2d_backward(grad_output, cache):
    """Gradient of :func:`global_avg_pool2d`: each input gets its plane's gradient / (H*W)."""
    shape, rank = cache
    n, c, h, w = shape
    grad_output = as_float_array("grad_output", grad_output)
    expected = {4: (n, c), 3: (c,), 2: ()}[rank]
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have shape {expected}, got shape {grad_output.shape}")
    grad = np.broadcast_to(grad_output.reshape(n, c, 1, 1) / (h * w), shape)
    return from_batch(grad.copy(), rank)


def global_avg_pool2d(x):
    """Mean over each channel's whole plane.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)

    Returns
    -------
    ndarray of shape (N, C), (C,) or () respectively

    Examples
    --------
    >>> import numpy as np
    >>> global_avg_pool2d(np.arange(4.0).reshape(2, 2))
    array(1.5)
    """
    return global_avg_pool2d_forward(x)[0]
