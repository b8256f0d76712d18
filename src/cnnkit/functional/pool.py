"""Max, average and global-average pooling: forward and backward.

Each pooling window is visited one kernel offset at a time: the offset's strided view of
the input covers every window at once, so the work is ``kH * kW`` vectorised passes over
the output, with no Python loop over windows. The passes run block by block (whole
samples when they fit), each block padded on its own where its windows reach outside
the input, so no temporary grows with the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit import _threads
from cnnkit._validation import (
    check_bool,
    check_grad,
    check_pool_window,
    output_size,
)
from cnnkit._workspace import scratch
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

    Parameters
    ----------
    size : int
        Input size along the axis.
    kernel_size, stride, padding, dilation : int
        The window's size, step, padding on each side and tap spacing along the axis.
    ceil_mode : bool, default False
        Round up instead of down.

    Returns
    -------
    int
        The number of windows along the axis.

    Examples
    --------
    >>> pool_output_size(5, 2, 2), pool_output_size(5, 2, 2, ceil_mode=True)
    (2, 3)
    """
    return output_size(size, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)


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
        h, w = (
            (o - 1) * s + d * (k - 1) + 1
            for o, s, d, k in zip(self.out_size, self.stride, self.dilation, self.kernel)
        )
        return h, w

    def tap(self, band, i, j, rows):
        """View of a band seen by kernel offset (i, j) at each of its windows: (n, c, rows, Wo)."""
        (_, wo), (sh, sw), (dh, dw) = self.out_size, self.stride, self.dilation
        top, left = i * dh, j * dw
        return band[..., top : top + sh * (rows - 1) + 1 : sh, left : left + sw * (wo - 1) + 1 : sw]


def _validate(name, x, kernel_size, stride, padding, dilation, ceil_mode):
    xb, rank = as_batch("x", x)
    kernel, stride, padding, dilation = check_pool_window(kernel_size, stride, padding, dilation)
    ceil_mode = check_bool("ceil_mode", ceil_mode)
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


# Pooling's blocks, in units of the elementwise passes' size: measured on the 2-core VM
# against 0.5, 1 and 4, 2 was 7-12 % faster than 1 for max and average pooling, forward
# and backward, on (32, 64, 56, 56) (batch norm, measured the same way, prefers 1).
BLOCK_SCALE = 2


def _units(g: _PoolGeometry, itemsize: int) -> list[tuple[tuple, ...]]:
    """The output cut into blocks ``(n0, n1, c0, c1, h0, h1)`` of about ``BLOCK_SCALE *
    BLOCK_BYTES``.

    Whole samples when they fit, else channels of one sample, else rows of one plane, so
    every pass runs on a block that stays in the cache and no temporary grows with the
    input. Blocks are grouped in units that may run on different threads: one block
    each, except the row blocks of one plane, whose input gradients overlap at the
    edges and so run in order in one unit. The cut depends on the shapes only.
    """
    budget = BLOCK_SCALE * _threads.BLOCK_BYTES
    n, c, _, _ = g.shape
    (ho, wo), (sh, _), (_, wp) = g.out_size, g.stride, g.padded
    row_bytes = (sh * wp + 4 * wo) * itemsize  # a plane's input rows and masks per output row
    plane = ho * row_bytes
    if plane * c <= budget:
        samples = budget // (plane * c)
        return [((n0, min(n0 + samples, n), 0, c, 0, ho),) for n0 in range(0, n, samples)]
    if plane <= budget:
        channels = budget // plane
        return [
            ((n0, n0 + 1, c0, min(c0 + channels, c), 0, ho),)
            for n0 in range(n)
            for c0 in range(0, c, channels)
        ]
    rows = max(1, budget // row_bytes)
    return [
        tuple((n0, n0 + 1, c0, c0 + 1, h0, min(h0 + rows, ho)) for h0 in range(0, ho, rows))
        for n0 in range(n)
        for c0 in range(c)
    ]


def _unit_planes(dx: np.ndarray, unit) -> np.ndarray:
    """The whole planes of `dx` that a unit's blocks write: (n, c, H, W)."""
    n0, n1, c0, c1 = unit[0][:4]
    return dx[n0:n1, c0:c1]


def _band_span(g: _PoolGeometry, h0, h1):
    """Input rows r0..r1 that output rows h0..h1 read, and whether they reach past the input."""
    (_, _, h, w), (sh, _), (dh, _), (kh, _), (ph, pw) = (
        g.shape,
        g.stride,
        g.dilation,
        g.kernel,
        g.padding,
    )
    r0 = h0 * sh - ph
    r1 = (h1 - 1) * sh - ph + dh * (kh - 1) + 1
    padded = r0 < 0 or r1 > h or pw > 0 or g.padded[1] > w
    return r0, r1, padded


def _band(xb, g: _PoolGeometry, block, fill):
    """The input a block reads, (n, c, R, Wp): a view, or a copy padded with `fill`."""
    n0, n1, c0, c1, h0, h1 = block
    _, _, h, w = g.shape
    pw = g.padding[1]
    r0, r1, padded = _band_span(g, h0, h1)
    source = xb[n0:n1, c0:c1]
    if not padded:
        return source[:, :, r0:r1]
    band = scratch("pool.band", (n1 - n0, c1 - c0, r1 - r0, g.padded[1]), source.dtype, source)
    band.fill(fill)
    s0, s1 = max(r0, 0), min(r1, h)
    cols = min(w, g.padded[1] - pw)
    band[:, :, s0 - r0 : s1 - r0, pw : pw + cols] = source[:, :, s0:s1, :cols]
    return band


def _gradient_band(dx, g: _PoolGeometry, block):
    """Where a block's input gradient goes: a view of `dx`, or a zeroed padded band."""
    n0, n1, c0, c1, h0, h1 = block
    r0, r1, padded = _band_span(g, h0, h1)
    target = dx[n0:n1, c0:c1]
    if not padded:
        return target[:, :, r0:r1]
    dband = scratch("pool.dband", (n1 - n0, c1 - c0, r1 - r0, g.padded[1]), target.dtype, target)
    dband.fill(0)
    return dband


def _fold(dband, dx, g: _PoolGeometry, block) -> None:
    """Add a padded band's gradient into `dx`, dropping the padding."""
    n0, n1, c0, c1, h0, h1 = block
    _, _, h, w = g.shape
    pw = g.padding[1]
    r0, r1, padded = _band_span(g, h0, h1)
    if not padded:
        return  # the band was a view of dx
    s0, s1 = max(r0, 0), min(r1, h)
    cols = min(w, g.padded[1] - pw)
    dx[n0:n1, c0:c1, s0:s1, :cols] += dband[:, :, s0 - r0 : s1 - r0, pw : pw + cols]


@dataclass
class _MaxPoolCache:
    geometry: _PoolGeometry
    rank: int
    x: np.ndarray  # (N, C, H, W), the input
    out: np.ndarray  # (N, C, Ho, Wo)


def max_pool2d_forward(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """:func:`max_pool2d` that also returns the cache :func:`max_pool2d_backward` needs.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input; integer and bool inputs are computed in float32.
    kernel_size : int or (int, int)
        Height and width of the window.
    stride : int, (int, int) or None, optional
        Defaults to `kernel_size`.
    padding : int or (int, int)
        Implicit -inf padding on each side; at most half the kernel size.
    dilation : int or (int, int)
        Spacing between the window's elements.
    ceil_mode : bool
        Round the output size up.
    return_indices : bool
        Also return the flat index of each maximum in its input plane.

    Returns
    -------
    out : ndarray or (ndarray, ndarray)
        What :func:`max_pool2d` returns: the output, or ``(output, indices)``.
    cache : tuple
        What :func:`max_pool2d_backward` needs; opaque to the caller.

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
    kh, kw = g.kernel
    out = np.empty_like(xb, shape=g.shape[:2] + g.out_size)  # the input's memory order
    argmax = np.zeros_like(out, dtype=np.int64) if return_indices else None

    def run(unit):
        for block in unit:
            n0, n1, c0, c1, h0, h1 = block
            band = _band(xb, g, block, -np.inf)
            target = out[n0:n1, c0:c1, h0:h1]
            np.copyto(target, g.tap(band, 0, 0, h1 - h0))
            for offset in range(1, kh * kw):
                np.maximum(
                    target, g.tap(band, *divmod(offset, kw), h1 - h0), out=target
                )  # NaN wins
            if argmax is not None:
                for offset, winner in _winners(band, target, g):
                    argmax[n0:n1, c0:c1, h0:h1][winner] = offset

    _threads.parallel(run, _units(g, xb.itemsize))
    cache = _MaxPoolCache(g, rank, xb, out)
    if return_indices:
        return (from_batch(out, rank), from_batch(_flat_indices(argmax, g), rank)), cache
    return from_batch(out, rank), cache


def _winners(band, out, g: _PoolGeometry):
    """Yield ``(offset, mask)`` for each kernel offset: the windows whose maximum it holds.

    As PyTorch: the first maximum in row-major order, or in a window holding NaN, its
    last NaN. Each window is claimed by exactly one offset; the mask is reused.
    """
    kh, kw = g.kernel
    rows = out.shape[2]
    claimed = np.isnan(out, out=scratch("pool.claimed", out.shape, bool, out))
    last_nan = None
    if claimed.any():
        last_nan = np.full_like(out, -1, dtype=np.int64)
        for offset in range(kh * kw):
            nan = np.isnan(g.tap(band, *divmod(offset, kw), rows))
            np.copyto(last_nan, offset, where=nan)
    winner = scratch("pool.winner", out.shape, bool, out)
    for offset in range(kh * kw):
        np.equal(g.tap(band, *divmod(offset, kw), rows), out, out=winner)
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

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple
        The cache :func:`max_pool2d_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = max_pool2d_forward(np.array([[1.0, 3.0], [2.0, 0.0]]), 2)
    >>> max_pool2d_backward(np.array([[5.0]]), cache)
    array([[0., 5.],
           [0., 0.]])
    """
    g: _PoolGeometry = cache.geometry
    grad = _laid_out_as(_check_grad(grad_output, g, cache.rank, cache.out.dtype), cache.out)
    kw = g.kernel[1]
    dx = np.empty_like(cache.x)
    disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(g.stride, g.dilation, g.kernel))

    def run(unit):
        _unit_planes(dx, unit).fill(0)
        for block in unit:
            n0, n1, c0, c1, h0, h1 = block
            band = _band(cache.x, g, block, -np.inf)
            dband = _gradient_band(dx, g, block)
            grad_block = grad[n0:n1, c0:c1, h0:h1]
            out_block = cache.out[n0:n1, c0:c1, h0:h1]
            routed = (
                None if disjoint else scratch("pool.routed", out_block.shape, dx.dtype, out_block)
            )
            for offset, winner in _winners(band, out_block, g):
                target = g.tap(dband, *divmod(offset, kw), h1 - h0)
                if disjoint:  # each input element is seen by one window and offset at most
                    np.multiply(grad_block, winner, out=target)
                else:
                    np.multiply(grad_block, winner, out=routed)
                    target += routed
            _fold(dband, dx, g, block)

    _threads.parallel(run, _units(g, dx.itemsize))
    return from_batch(dx, cache.rank)


def _laid_out_as(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`a`, or a copy of it in `like`'s memory order (mixed orders make every pass slow)."""
    if _threads.memory_order(a) == _threads.memory_order(like):
        return a
    copy = np.empty_like(like, dtype=a.dtype)
    np.copyto(copy, a)
    return copy


def _check_grad(grad_output, g: _PoolGeometry, rank, dtype) -> np.ndarray:
    expected = (*g.shape[:2], *g.out_size)[4 - rank :]  # the shape from_batch gives
    return add_batch_axes(check_grad(grad_output, expected, dtype), rank)


def max_pool2d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """2-D max pooling: the largest value in each window.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input; integer and bool inputs are computed in float32.
    kernel_size : int or (int, int)
        Height and width of the window.
    stride : int, (int, int) or None, optional
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
        The maxima, in the float dtype of `x`.
    indices : ndarray of int64, the shape of `out`
        Only with `return_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool2d(np.array([[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 1.0]]), 2)
    array([[5., 8.]])
    """
    return max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)[
        0
    ]


@dataclass
class _AvgPoolCache:
    geometry: _PoolGeometry
    rank: int
    divisor: np.ndarray  # (Ho, Wo)
    x: np.ndarray  # the input, whose shape and memory order the gradient takes


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

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input; integer and bool inputs are computed in float32.
    kernel_size : int or (int, int)
        Height and width of the window.
    stride : int, (int, int) or None, optional
        Defaults to `kernel_size`.
    padding : int or (int, int)
        Implicit zero padding on each side; at most half the kernel size.
    ceil_mode : bool
        Round the output size up.
    count_include_pad : bool
        Whether the zero padding counts in the divisor.

    Returns
    -------
    out : ndarray
        What :func:`avg_pool2d` returns.
    cache : tuple
        What :func:`avg_pool2d_backward` needs; opaque to the caller.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = avg_pool2d_forward(np.ones((2, 2)), 2)
    >>> avg_pool2d_backward(np.ones_like(out), cache)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    xb, rank, g = _validate("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = check_bool("count_include_pad", count_include_pad)
    kh, kw = g.kernel
    divisor = _divisor(g, bool(count_include_pad)).astype(xb.dtype)
    out = np.empty_like(xb, shape=g.shape[:2] + g.out_size)  # the input's memory order

    def run(unit):
        for block in unit:
            n0, n1, c0, c1, h0, h1 = block
            band = _band(xb, g, block, 0)
            target = out[n0:n1, c0:c1, h0:h1]
            np.copyto(target, g.tap(band, 0, 0, h1 - h0))
            for offset in range(1, kh * kw):
                target += g.tap(band, *divmod(offset, kw), h1 - h0)
            target /= divisor[h0:h1]

    _threads.parallel(run, _units(g, xb.itemsize))
    return from_batch(out, rank), _AvgPoolCache(g, rank, divisor, xb)


def avg_pool2d_backward(grad_output, cache):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple
        The cache :func:`avg_pool2d_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = avg_pool2d_forward(np.zeros((2, 4)), 2)
    >>> avg_pool2d_backward(np.array([[4.0, 8.0]]), cache)
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]])
    """
    g: _PoolGeometry = cache.geometry
    grad = _check_grad(grad_output, g, cache.rank, cache.x.dtype)
    kh, kw = g.kernel
    dx = np.empty_like(cache.x)

    def run(unit):
        _unit_planes(dx, unit).fill(0)
        for block in unit:
            n0, n1, c0, c1, h0, h1 = block
            dband = _gradient_band(dx, g, block)
            grad_block = grad[n0:n1, c0:c1, h0:h1]
            share = scratch("pool.share", grad_block.shape, dx.dtype, grad_block)
            np.divide(grad_block, cache.divisor[h0:h1], out=share)
            for offset in range(kh * kw):
                g.tap(dband, *divmod(offset, kw), h1 - h0)[...] += share
            _fold(dband, dx, g, block)

    _threads.parallel(run, _units(g, dx.itemsize))
    return from_batch(dx, cache.rank)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """2-D average pooling: the mean of each window.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input; integer and bool inputs are computed in float32.
    kernel_size : int or (int, int)
        Height and width of the window.
    stride : int, (int, int) or None, optional
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
        The means, in the float dtype of `x`.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d(np.arange(8.0).reshape(2, 4), 2)
    array([[2.5, 4.5]])
    """
    return avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad)[0]


def global_avg_pool2d_forward(x):
    """:func:`global_avg_pool2d` that also returns the cache its backward needs.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input; integer and bool inputs are computed in float32.

    Returns
    -------
    out : ndarray
        What :func:`global_avg_pool2d` returns.
    cache : tuple
        What :func:`global_avg_pool2d_backward` needs; opaque to the caller.

    Examples
    --------
    >>> out, cache = global_avg_pool2d_forward(np.arange(6.0).reshape(2, 1, 3))
    >>> out
    array([1., 4.])
    """
    xb, rank = as_batch("x", x)
    out = xb.mean(axis=(2, 3))  # (N, C)
    result = out if rank == 4 else out[0] if rank == 3 else out[0, 0]
    return np.asarray(result), (xb.shape, rank)


def global_avg_pool2d_backward(grad_output, cache):
    """Gradient of :func:`global_avg_pool2d`: each input gets its plane's gradient / (H*W).

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of the output's shape.
    cache : tuple
        The cache :func:`global_avg_pool2d_forward` returned.

    Returns
    -------
    grad_x : ndarray
        Gradient of the loss with respect to `x`, of the shape and dtype of `x`.

    Examples
    --------
    >>> out, cache = global_avg_pool2d_forward(np.zeros((1, 2, 2)))
    >>> global_avg_pool2d_backward(np.array([4.0]), cache)
    array([[[1., 1.],
            [1., 1.]]])
    """
    shape, rank = cache
    n, c, h, w = shape
    grad_output = check_grad(grad_output, {4: (n, c), 3: (c,), 2: ()}[rank])
    grad = np.broadcast_to(grad_output.reshape(n, c, 1, 1) / (h * w), shape)
    return from_batch(grad.copy(), rank)


def global_avg_pool2d(x):
    """Mean over each channel's whole plane.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input; integer and bool inputs are computed in float32.

    Returns
    -------
    ndarray of shape (N, C), (C,) or () respectively
        Each plane's mean, in the float dtype of `x`.

    Examples
    --------
    >>> import numpy as np
    >>> global_avg_pool2d(np.arange(4.0).reshape(2, 2))
    array(1.5)
    """
    return global_avg_pool2d_forward(x)[0]
