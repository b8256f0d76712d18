"""The depthwise engines of conv2d: one input and one output channel per group.

A depthwise convolution does little arithmetic per value read, so it is bound by
memory traffic, not by a GEMM: it runs tap by tap, ``out += w[tap] * (the input shifted
by tap)``, over blocks of output rows that stay in the L2 cache, spread over the thread
pool. Two layouts, chosen by the channel count:

- channels-last (many channels, CNN layers): a block's padded input is copied
  channels-last, ``(n, R, Wp, C)``, so each tap multiplies rows of C contiguous values
  by the tap's C weights (NumPy's fastest loop: both operands contiguous);
- planar (few channels: images, and the "interleaved" matrix view): each channel's
  plane, tap by tap with the tap's weight as a scalar.

Taps of weight +1 and -1 add or subtract without multiplying (exact). Each block writes
its own output rows; the weight gradient comes back as one partial sum per block, added
in block order, so results do not depend on the number of threads. Every temporary is
block-sized and borrowed from the workspace.

The "interleaved" strategy (one kernel for every channel of a channels-last input, i.e.
image filtering) is the planar engine on the ``(N, H, W*C)`` matrix view of the input.
"""

from __future__ import annotations

import numpy as np

from cnnkit import _threads
from cnnkit._workspace import scratch
from cnnkit.functional import _conv_geometry as geo
from cnnkit.functional._conv_geometry import Geometry
from cnnkit.functional._shapes import pad_index

# From this many channels the channels-last layout wins (rows of C contiguous values).
CHANNELS_LAST_MIN = 8


def _channels_last(g: Geometry) -> bool:
    return g.channels >= CHANNELS_LAST_MIN


def channels_last_output(g: Geometry, x: np.ndarray) -> bool:
    """Whether conv2d should hand the depthwise forward an (N, Ho, Wo, C) output in memory
    (the engine's own layout, or the input's), rather than planar (N, C, Ho, Wo)."""
    return _channels_last(g) or (g.channels > 1 and x.transpose(0, 2, 3, 1).flags.c_contiguous)


def _bands(g: Geometry, itemsize: int) -> list[tuple[int, int, int, int, int, int]]:
    """Blocks ``(n0, n1, h0, h1, r0, r1)`` of output rows (reading padded rows r0..r1).

    Sized so that a block's padded input, output and one temporary fit in about
    ``BLOCK_BYTES``; the cut depends on the shapes only.
    """
    (sh, _), (_, wp), (_, wo) = g.stride, g.padded, g.out_size
    bytes_per_row = (sh * wp + 2 * wo) * g.channels * itemsize
    return list(geo.bands(g, bytes_per_row, _threads.BLOCK_BYTES))


def gradient_layout(grad: np.ndarray, g: Geometry, dtype) -> np.ndarray:
    """The output's gradient, an (N, Ho, Wo, C) view, in the engine's memory layout."""
    if not _channels_last(g):  # planar (N, C, Ho, Wo) memory
        return np.ascontiguousarray(grad.transpose(0, 3, 1, 2), dtype=dtype).transpose(0, 2, 3, 1)
    if grad.flags.c_contiguous and grad.dtype == dtype:
        return grad
    target = np.empty(grad.shape, dtype=dtype)  # (N, Ho, Wo, C) memory
    return geo.copy_channels_last(target, grad.transpose(0, 3, 1, 2))


def _block(name: str, shape, g: Geometry, dtype) -> np.ndarray:
    """A reused (n, rows, cols, C) buffer in the engine's layout: channels-last memory, or
    a view of planar (n, C, rows, cols) memory."""
    n, rows, cols, c = shape
    if _channels_last(g):
        return scratch(name, shape, dtype)
    return scratch(name, (n, c, rows, cols), dtype).transpose(0, 2, 3, 1)


def _padded_band(x, g: Geometry, n0, n1, r0, r1) -> np.ndarray:
    """Padded rows r0..r1 of samples n0..n1 in a reused buffer: (n, R, Wp, C)."""
    top, bottom, left, right = g.pads
    h, w = g.height, g.width
    band = _block("depthwise.band", (n1 - n0, r1 - r0, g.padded[1], g.channels), g, x.dtype)
    if g.padding_mode != "zeros":
        source_rows = pad_index(h, top, bottom, g.padding_mode)[r0:r1]
        source_cols = pad_index(w, left, right, g.padding_mode)
        band[...] = (
            x[n0:n1].take(source_rows, axis=2).take(source_cols, axis=3).transpose(0, 2, 3, 1)
        )
        return band
    s0, s1 = max(r0, top), min(r1, top + h)  # the band's rows that hold input rows
    band[:, : max(s0 - r0, 0)] = 0
    band[:, max(s1 - r0, 0) :] = 0
    band[:, :, :left] = 0
    band[:, :, left + w :] = 0
    if s1 > s0:
        inner = band[:, s0 - r0 : s1 - r0, left : left + w]  # (n, rows, W, C)
        geo.copy_channels_last(inner, x[n0:n1, :, s0 - top : s1 - top])
    return band


def _taps(weight: np.ndarray, g: Geometry) -> np.ndarray:
    """The kernel as (kH*kW, C): row t holds every channel's weight for tap t."""
    (kh, kw), c = g.kernel, g.channels
    return np.ascontiguousarray(weight.reshape(c, kh * kw).T)  # (C, 1, kH, kW) -> (T, C)


def _merge_rows(g: Geometry) -> bool:
    """Whether the channels-last engine works on (n, rows, Wo*C) views: long inner loops
    for NumPy. Needs column stride 1, so the input's windows merge like the output."""
    return _channels_last(g) and g.stride[1] == 1


def _rows(a: np.ndarray, g: Geometry) -> np.ndarray:
    """An (n, rows, cols, C) view in the engine's working form; see :func:`_merge_rows`."""
    if not _merge_rows(g):
        return a
    n, rows, cols, c = a.shape
    assert a.strides[3] == a.itemsize and a.strides[2] == c * a.itemsize, "rows must be contiguous"
    return a.reshape(n, rows, cols * c)  # a view: the strides allow it


def _plans(taps: np.ndarray, g: Geometry):
    """Per channel group, per tap, how to multiply-add: ``(kind, weights)``.

    Channels-last: one group, weights along C (tiled to Wo*C when rows merge). Planar:
    one group per channel, scalar weights. Weights of +1 and -1 become an add or a
    subtraction (exact, and no multiply); weights of 0 are marked "zero", skipped where
    the input is finite (0 * inf would be NaN).
    """
    if _channels_last(g):
        groups = [np.tile(taps, (1, g.out_size[1])) if _merge_rows(g) else taps]
    else:
        groups = [taps[:, c] for c in range(g.channels)]
    plans = []
    for weights in groups:
        plan: list[tuple[str, int | None]] = []
        for row in weights:
            flat = np.ravel(row)
            uniform = bool((flat == flat[0]).all())
            if uniform and flat[0] in (1, -1):
                plan.append(("add" if flat[0] == 1 else "subtract", None))
            elif uniform and flat[0] == 0:
                plan.append(("zero", 0))
            else:
                plan.append(("multiply", flat[0] if uniform else row))
        plans.append(plan)
    return plans


def _quietly(work):
    """`work` under NumPy's silence on inf and NaN, as a convolution by GEMM would be (0 * inf
    gives NaN there too, without a warning); set on the thread that runs the block."""

    def run(block):
        with np.errstate(invalid="ignore", over="ignore"):
            return work(block)

    return run


def _finite(band: np.ndarray) -> bool:
    """Whether every value of a block is finite (a cheap pass while it is in the cache)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isfinite(np.sum(band)))  # any inf or NaN makes the sum non-finite


def _multiply_add(target, source, kind, weights, first: bool) -> None:
    """target (+)= weights * source, as :func:`_plans` says."""
    if kind == "add":
        np.copyto(target, source) if first else np.add(target, source, out=target)
    elif kind == "subtract":
        np.negative(source, out=target) if first else np.subtract(target, source, out=target)
    elif first:
        np.multiply(source, weights, out=target)
    else:
        product = scratch("depthwise.product", target.shape, target.dtype)
        np.multiply(source, weights, out=product)
        target += product


def _channel(a: np.ndarray, g: Geometry, channel: int) -> np.ndarray:
    """Channel group `channel` of an (n, rows, cols, C) view, in the engine's working form."""
    return _rows(a, g) if _channels_last(g) else a[..., channel]


def depthwise_forward(x, weight, g: Geometry, out):
    """out (N, Ho, Wo, C) = sum over taps of w[tap] * shifted input, block by block."""
    kw = g.kernel[1]
    plans = _plans(_taps(weight, g), g)
    has_zeros = any(kind == "zero" for plan in plans for kind, _ in plan)
    rows_last = _channels_last(g)

    def run(block):
        n0, n1, h0, h1, r0, r1 = block
        n, rows = n1 - n0, h1 - h0
        band = _padded_band(x, g, n0, n1, r0, r1)
        target = out[n0:n1, h0:h1]  # (n, rows, Wo, C) view of out's memory
        direct = target.flags.c_contiguous or not rows_last
        acc = target if direct else _block("depthwise.acc", target.shape, g, out.dtype)
        skip_zeros = has_zeros and _finite(band)
        for channel, plan in enumerate(plans):
            acc_view = _channel(acc, g, channel)
            first = True
            for tap, (kind, weights) in enumerate(plan):
                if kind == "zero" and skip_zeros and not (first and tap == len(plan) - 1):
                    continue
                window = geo.window(band, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
                _multiply_add(acc_view, _channel(window, g, channel), kind, weights, first)
                first = False
        if not direct:
            target[...] = acc

    _threads.parallel(_quietly(run), _bands(g, x.itemsize))
    return None


def depthwise_backward(x, weight, g: Geometry, workspace, grad):
    """dx (N, H, W, C) view and dw (C, 1, kH, kW): taps scattered back, block by block.

    ``dw[c, tap] = sum(window_tap * g)`` per channel; ``dx`` gets ``w[tap] * g`` added at
    each tap's window. Blocks of one sample, whose input gradients meet at the band
    edges, run in order in one unit; units run in parallel.
    """
    (kh, kw), c = g.kernel, g.channels
    plans = _plans(_taps(weight, g), g)
    rows_last = _channels_last(g)
    if rows_last:
        dx = np.empty((g.batch, g.height, g.width, c), dtype=x.dtype)  # channels-last memory
    else:
        dx = np.empty((g.batch, c, g.height, g.width), dtype=x.dtype).transpose(0, 2, 3, 1)
    units: dict[int, list] = {}
    for block in _bands(g, x.itemsize):
        units.setdefault(block[0], []).append(block)

    def run(unit):
        dx[unit[0][0] : unit[-1][1]] = 0
        dtaps = np.zeros((kh * kw, c))  # float64 partial sums
        for n0, n1, h0, h1, r0, r1 in unit:
            n, rows = n1 - n0, h1 - h0
            band = _padded_band(x, g, n0, n1, r0, r1)
            dband = _block("depthwise.dband", (n, r1 - r0, g.padded[1], c), g, x.dtype)
            dband.fill(0)
            grad_block = grad[n0:n1, h0:h1]  # (n, rows, Wo, C), see gradient_layout
            for channel, plan in enumerate(plans):
                grad_view = _channel(grad_block, g, channel)
                for tap, (kind, weights) in enumerate(plan):
                    i, j = divmod(tap, kw)
                    window = _channel(geo.window(band, g, i, j, 0, n, 0, rows), g, channel)
                    if rows_last:  # (n, rows, Wo*C) or (n, rows, Wo, C) -> (Wo*C,) or (Wo, C)
                        dot = np.einsum("nr...,nr...->...", window, grad_view)
                        dtaps[tap] += dot.reshape(-1, c).sum(axis=0)
                    else:
                        dtaps[tap, channel] += np.einsum("nrw,nrw->", window, grad_view)
                    dwindow = _channel(geo.window(dband, g, i, j, 0, n, 0, rows), g, channel)
                    _multiply_add(dwindow, grad_view, kind, weights, False)
            geo.fold_band(dband, dx[n0:n1], g, r0)
        return dtaps

    dtaps = np.zeros((kh * kw, c))
    for partial in _threads.parallel(_quietly(run), list(units.values())):
        dtaps += partial
    dweight = dtaps.T.astype(x.dtype).reshape(c, 1, kh, kw)  # (T, C) -> (C, 1, kH, kW)
    return dx, dweight


# -- interleaved: one kernel for every channel of a channels-last input --------------------
#
# An (N, H, W, C) input in memory is the (N, H, W*C) matrix, on which a kernel whose
# columns are C apart (dilation (dh, dw*C)) reads one channel only: with zero padding
# and column stride 1, every channel is filtered by one depthwise pass over a single
# plane, with no layout change and the output written channels-last. Its backward is
# the depthwise one (each channel's weight gradient is its own).


def interleaved_applies(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether :func:`interleaved_forward` can compute this call."""
    return (
        g.depthwise
        and g.channels > 1
        and g.padding_mode == "zeros"
        and g.stride[1] == 1
        and x.transpose(0, 2, 3, 1).flags.c_contiguous  # (N, H, W, C) memory
        and (weight.strides[0] == 0 or bool((weight == weight[:1]).all()))  # one kernel
    )


def interleaved_forward(x, weight, g: Geometry, out):
    """out (N, Ho, Wo, C): the depthwise pass over the (N, 1, H, W*C) matrix view of `x`."""
    c, (top, bottom, left, right) = g.channels, g.pads
    plane = Geometry(
        g.batch,
        1,
        g.height,
        g.width * c,
        1,
        g.kernel,
        g.stride,
        (g.dilation[0], g.dilation[1] * c),
        (top, bottom, left * c, right * c),
        1,
        "zeros",
    )
    ho, wo = g.out_size
    assert plane.out_size == (ho, wo * c), "the matrix view's output is the channels-last output"
    # (N, C, H, W) view of channels-last memory -> (N, H, W, C) -> (N, 1, H, W*C), a view
    matrix = x.transpose(0, 2, 3, 1).reshape(g.batch, 1, g.height, g.width * c)
    target = out.reshape(g.batch, ho, wo * c, 1)  # (N, Ho, Wo*C, 1) view of (N, Ho, Wo, C)
    assert np.may_share_memory(matrix, x) and np.may_share_memory(target, out)
    return depthwise_forward(matrix, weight[:1], plane, target)
