"""The depthwise engines of conv2d: one input and one output channel per group.

A depthwise convolution does little arithmetic per value read, so it is bound by memory
traffic and by NumPy's cost per call, not by one big GEMM. It works on blocks of whole
planes (several channels and samples; bands of one plane's rows when a plane is large)
that stay in the cache, spread over the thread pool, and keeps every pass over a block
a few long contiguous rows:

- the block's padded input is copied into a buffer laid out (channel, sample, row,
  column): one row of values per channel. With stride 1 the input seen by tap (i, j) is
  that row shifted by ``i*Wp + j``, so outputs are computed at every padded position of
  every sample (the extra columns and rows are dropped when the block is copied out);
- with a stride (sh, sw) the buffer holds the sh*sw polyphase components of the padded
  input (rows a, a+sh, ...; columns b, b+sw, ...) one after the other: tap (i, j) reads
  component (i*dh % sh, j*dw % sw) shifted by (i*dh // sh, j*dw // sw) on its grid, so
  strided convolutions skip nothing they compute;
- the kW column shifts are copied side by side, and one small GEMM per channel
  (kernel rows x kernel columns, times kW x positions) gives every kernel row's sum at
  once; the kH row sums, shifted by whole rows, add up to the output. That is kW copies,
  a GEMM and kH-1 additions per block instead of a multiply and an add per tap.

The input, the output and the gradients stay in the caller's layout (channels-first, or
the channels-last view of an image); only the block copies change layout.

Backward, block by block: the weight gradient is one dot product per tap and channel
(the shifted input against the output's gradient, laid out like the output); the
input's gradient is the forward's adjoint, built the same way from shifted copies of
the output's gradient, then folded back (components to positions, padding to its source).

Results do not depend on the number of threads: the blocks depend on the shapes only,
each block writes its own output, the weight gradient's partial sums (float64) are added
in block order, and row bands of one plane (whose input gradients overlap) run in order.
BLAS calls are cut into pieces small enough that OpenBLAS runs them on the calling
thread.

The "interleaved" strategy (one kernel for every channel of a channels-last input, i.e.
image filtering) is this engine on the ``(N, 1, H, W*C)`` matrix view of the input.
"""

from __future__ import annotations

import numpy as np

from cnnkit import _threads
from cnnkit._matmul import matmul
from cnnkit._workspace import scratch
from cnnkit.functional._conv_geometry import Geometry, fold_band
from cnnkit.functional._shapes import pad_index

# Blocks this many times the elementwise passes' size: each block costs a few dozen NumPy
# calls, and its copies and GEMMs run about as fast from L3 as from L2. Measured on the
# 2-core VM against 2, 3 and 6: 4 was 13-30 % faster than 2 on depthwise layers from
# (8, 128, 28, 28) to (8, 128, 112, 112), forward and backward, and on filter2d.
BLOCK_SCALE = 4


def channels_last_output(g: Geometry, x: np.ndarray) -> bool:
    """Whether conv2d should hand the depthwise forward an (N, Ho, Wo, C) output in memory
    (as a channels-last input), rather than planar (N, C, Ho, Wo)."""
    return g.channels > 1 and x.transpose(0, 2, 3, 1).flags.c_contiguous


def gradient_layout(grad: np.ndarray, g: Geometry, dtype) -> np.ndarray:
    """The output's gradient, an (N, Ho, Wo, C) view in any memory layout, as `dtype`."""
    return grad if grad.dtype == dtype else grad.astype(dtype)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _Block:
    """Samples n0..n1, channels c0..c1 and output rows h0..h1, and where their values lie
    in the block's buffers (see the module docstring)."""

    def __init__(self, g: Geometry, n0: int, n1: int, c0: int, c1: int, h0: int, h1: int):
        (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.stride, g.dilation
        self.n0, self.n1, self.c0, self.c1, self.h0, self.h1 = n0, n1, c0, c1, h0, h1
        self.stride, self.wo = g.stride, g.out_size[1]
        self.r0 = h0 * sh  # first padded row read
        self.band_rows = (h1 - h0 - 1) * sh + (kh - 1) * dh + 1  # padded rows read
        rq, wq = _ceil_div(self.band_rows, sh), _ceil_div(g.padded[1], sw)
        self.grid = (rq, wq)  # one component's rows and columns
        self.size = (n1 - n0) * rq * wq  # values per component and channel; outputs computed
        # tap (i, j) reads component (i*dh % sh, j*dw % sw), shifted on its grid
        self.tap_components = [
            (i * dh % sh) * sw + j * dw % sw for i in range(kh) for j in range(kw)
        ]
        self.shifts = [(i * dh // sh) * wq + j * dw // sw for i in range(kh) for j in range(kw)]
        self.offsets = [  # where each tap reads, in a channel's row of the input buffer
            component * self.size + shift
            for component, shift in zip(self.tap_components, self.shifts)
        ]
        self.components_count = sh * sw
        self.components_size = sh * sw * self.size
        # per row component a: the kernel rows that read it and their shifts (in grid rows);
        # per column component b: the kernel columns and their shifts (in values)
        self.kernel_rows = [
            [(i, i * dh // sh) for i in range(kh) if i * dh % sh == a] for a in range(sh)
        ]
        self.kernel_cols = [
            [(j, j * dw // sw) for j in range(kw) if j * dw % sw == b] for b in range(sw)
        ]
        # the last positions (off the output grid) of the last component read past it
        self.length = self.components_size + max(self.shifts)

    def components(self, buffer: np.ndarray) -> np.ndarray:
        """The (cb, sh, sw, nb, rows, cols) view of a block buffer of shape (cb, length)."""
        cb, n = self.c1 - self.c0, self.n1 - self.n0
        return buffer[:, : self.components_size].reshape(cb, *self.stride, n, *self.grid)

    def windows(self, buffer: np.ndarray, a: int, b: int) -> np.ndarray:
        """The (cb, rows, cols, size) read-only view of what the taps reading component
        (a, b) see in the input buffer: their shifts are evenly spaced on the grid."""
        rows, cols, wq = self.kernel_rows[a], self.kernel_cols[b], self.grid[1]
        row_step = rows[1][1] - rows[0][1] if len(rows) > 1 else 0
        col_step = cols[1][1] - cols[0][1] if len(cols) > 1 else 0
        start = (a * self.stride[1] + b) * self.size + rows[0][1] * wq + cols[0][1]
        item = buffer.itemsize
        return np.lib.stride_tricks.as_strided(
            buffer[:, start:],
            shape=(buffer.shape[0], len(rows), len(cols), self.size),
            strides=(buffer.strides[0], row_step * wq * item, col_step * item, item),
            writeable=False,
        )

    def outputs(self, values: np.ndarray) -> np.ndarray:
        """The (nb, cb, rows, Wo) output grid of a (cb, size) block array."""
        cb, n = self.c1 - self.c0, self.n1 - self.n0
        return values.reshape(cb, n, *self.grid)[:, :, : self.h1 - self.h0, : self.wo].transpose(
            1, 0, 2, 3
        )


def _spans(first: int, count: int, step: int, before: int, size: int):
    """Per component a: (k0, k1, source) — positions k0..k1 of component a of the padded
    axis (padded index ``first + a + step*k``, k < its count within `count` padded
    values) hold source values ``source, source + step, ...``; the rest is padding."""
    spans = []
    for a in range(step):
        start = first + a - before  # source index of position k = 0
        k0 = max(0, _ceil_div(-start, step))
        k1 = min(_ceil_div(count - a, step), (size - 1 - start) // step + 1)
        spans.append((k0, k1, start + step * k0) if k1 > k0 else None)
    return spans


def _zero_padded_parts(planes: np.ndarray, g: Geometry, block: _Block):
    """Yield ``(a, b, in_rows, in_cols, part)`` for each polyphase component (a, b) holding
    input values, with zero padding: its row and column slices in the component buffer,
    and the strided view `part` of the block's `planes` (nb, cb, H, W) they stand for."""
    (sh, sw), (top, _, left, _) = g.stride, g.pads
    rows = _spans(block.r0, block.band_rows, sh, top, g.height)
    cols = _spans(0, g.padded[1], sw, left, g.width)
    for a, row in enumerate(rows):
        for b, col in enumerate(cols):
            if row is None or col is None:
                continue  # a component of padding only
            (k0, k1, r), (m0, m1, c) = row, col
            part = planes[
                :, :, r : r + sh * (k1 - k0 - 1) + 1 : sh, c : c + sw * (m1 - m0 - 1) + 1 : sw
            ]
            yield a, b, slice(k0, k1), slice(m0, m1), part


def _fill_input(x: np.ndarray, g: Geometry, block: _Block, buffer: np.ndarray) -> None:
    """Copy the block's padded input into `buffer` (cb, length), component by component."""
    (sh, sw), (top, bottom, left, right) = g.stride, g.pads
    h, w = g.height, g.width
    source = x[block.n0 : block.n1, block.c0 : block.c1]  # (nb, cb, H, W)
    components = block.components(buffer)
    buffer.fill(0)  # the padding and the tail (as fast as zeroing around the copies)
    if g.padding_mode == "zeros":
        for a, b, in_rows, in_cols, part in _zero_padded_parts(source, g, block):
            components[:, a, b, :, in_rows, in_cols] = part.transpose(1, 0, 2, 3)
        return
    rows = pad_index(h, top, bottom, g.padding_mode)[block.r0 : block.r0 + block.band_rows]
    cols = pad_index(w, left, right, g.padding_mode)
    for a in range(sh):
        for b in range(sw):
            part = source.take(rows[a::sh], axis=2).take(cols[b::sw], axis=3)
            components[:, a, b, :, : part.shape[2], : part.shape[3]] = part.transpose(1, 0, 2, 3)


def _fold_input_gradient(
    dbuffer: np.ndarray, g: Geometry, block: _Block, dx: np.ndarray, assign: bool
) -> None:
    """Add the block's padded input gradient (cb, S*size) into dx (N, C, H, W), the
    adjoint of :func:`_fill_input`; or, with `assign` (whole planes, zero padding: every
    input position is one position of one component), write it there."""
    (sh, sw), top = g.stride, g.pads[0]
    target = dx[block.n0 : block.n1, block.c0 : block.c1]  # (nb, cb, H, W)
    components = block.components(dbuffer)
    if g.padding_mode == "zeros":
        for a, b, in_rows, in_cols, part in _zero_padded_parts(target, g, block):
            values = components[:, a, b, :, in_rows, in_cols].transpose(1, 0, 2, 3)
            if assign:
                part[...] = values
            else:
                part += values
        if assign:  # input rows below the last one read get no gradient
            target[:, :, max(0, block.band_rows - top) :] = 0
        return
    cb, n = block.c1 - block.c0, block.n1 - block.n0
    padded = scratch("depthwise.dpadded", (n, cb, block.band_rows, g.padded[1]), dbuffer.dtype)
    for a in range(sh):
        for b in range(sw):
            part = padded[:, :, a::sh, b::sw]
            part[...] = components[:, a, b, :, : part.shape[2], : part.shape[3]].transpose(
                1, 0, 2, 3
            )
    fold_band(padded.transpose(0, 2, 3, 1), target.transpose(0, 2, 3, 1), g, block.r0)


def _blocks(g: Geometry, itemsize: int) -> list[_Block]:
    """The blocks, from the shapes only: whole planes (as many channels and samples as
    fit in ``BLOCK_SCALE * _threads.BLOCK_BYTES``, in blocks of equal size), or bands of
    one plane's rows."""
    (kh, kw), (sh, sw), (dh, _) = g.kernel, g.stride, g.dilation
    n, c, (ho, _) = g.batch, g.channels, g.out_size
    wq = _ceil_div(g.padded[1], sw)
    halo = (kh - 1) * dh // sh + 1  # component rows beyond the output's
    # per component row: the input's components, kW shifted copies, kH products, a gradient
    row_bytes = (sh * sw + kh + kw + 1) * wq * itemsize
    budget = BLOCK_SCALE * _threads.BLOCK_BYTES
    planes = budget // ((ho + halo) * row_bytes)
    if planes >= 1:
        nb = min(n, planes)
        nb = _ceil_div(n, _ceil_div(n, nb))  # blocks of equal size
        cb = min(c, max(1, planes // nb))
        cb = _ceil_div(c, _ceil_div(c, cb))
        return [
            _Block(g, n0, min(n0 + nb, n), c0, min(c0 + cb, c), 0, ho)
            for c0 in range(0, c, cb)
            for n0 in range(0, n, nb)
        ]
    rows = max(1, budget // row_bytes - halo)
    return [
        _Block(g, n0, n0 + 1, c0, c0 + 1, h0, min(h0 + rows, ho))
        for n0 in range(n)
        for c0 in range(c)
        for h0 in range(0, ho, rows)
    ]


def _quietly(work):
    """`work` under NumPy's silence on inf and NaN, as a convolution by GEMM would be (0 * inf
    gives NaN there too, without a warning); set on the thread that runs the block."""

    def run(block):
        with np.errstate(invalid="ignore", over="ignore"):
            return work(block)

    return run


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out (cb, M, L) = a (cb, M, K) @ b (cb, K, L), in column chunks small enough that
    OpenBLAS runs each on the calling thread (its threads would compete with the pool's)."""
    m, k, length = a.shape[1], a.shape[2], b.shape[2]
    chunk = max(1, (4096 if m == 1 else 131072) // (m * k))
    for u0 in range(0, length, chunk):
        matmul(a, b[:, :, u0 : u0 + chunk], out=out[:, :, u0 : u0 + chunk])


def _dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products along the last axis. float32 goes to BLAS (OpenBLAS runs sdot on the
    calling thread); float64 does not (its ddot starts OpenBLAS's own threads on long rows,
    which would compete with the pool's)."""
    if a.dtype == np.float32:
        return np.vecdot(a, b)
    return np.einsum("...q,...q->...", a, b)


def _sum_rows(target: np.ndarray, parts: list[np.ndarray], first: bool) -> None:
    """target (+)= the sum of `parts`, in their order."""
    if first and len(parts) > 1:
        np.add(parts[0], parts[1], out=target)
        parts = parts[2:]
    elif first:
        np.copyto(target, parts[0])
        parts = parts[1:]
    for part in parts:
        np.add(target, part, out=target)


def depthwise_forward(x, weight, g: Geometry, out, bias=None):
    """out (N, Ho, Wo, C) view = sum over taps of w[tap] * shifted input (+ bias), block by
    block.

    Per row component: the kernel's columns as kW shifted copies of the input, times the
    kernel (a small GEMM per channel) gives each kernel row's sum; the rows' sums, shifted,
    add up to the output.
    """
    (kh, kw), c = g.kernel, g.channels
    kernel = np.ascontiguousarray(weight.reshape(c, kh, kw))
    out_planes = out.transpose(0, 3, 1, 2)  # (N, C, Ho, Wo)
    wq = _ceil_div(g.padded[1], g.stride[1])

    def run(block: _Block):
        cb = block.c1 - block.c0
        buffer = scratch("depthwise.input", (cb, block.length), x.dtype)
        _fill_input(x, g, block, buffer)
        acc = scratch("depthwise.acc", (cb, block.size), out.dtype)
        first = True
        for a, rows in enumerate(block.kernel_rows):
            if not rows:
                continue
            span = block.size + rows[-1][1] * wq
            shifted = scratch("depthwise.shifted", (cb, kw, span), x.dtype)
            for b, cols in enumerate(block.kernel_cols):
                for j, shift in cols:
                    start = (a * g.stride[1] + b) * block.size + shift
                    shifted[:, j] = buffer[:, start : start + span]
            products = scratch("depthwise.products", (cb, len(rows), span), x.dtype)
            weights = kernel[block.c0 : block.c1, [i for i, _ in rows]]  # (cb, rows, kW)
            _matmul(weights, shifted, products)
            parts = [
                products[:, r, shift * wq : shift * wq + block.size]
                for r, (_, shift) in enumerate(rows)
            ]
            _sum_rows(acc, parts, first)
            first = False
        if bias is not None:  # while the block is in the cache
            np.add(acc, bias[block.c0 : block.c1, None], out=acc)
        out_planes[block.n0 : block.n1, block.c0 : block.c1, block.h0 : block.h1] = block.outputs(
            acc
        )

    _threads.parallel(_quietly(run), _blocks(g, x.itemsize))


def depthwise_backward(x, weight, g: Geometry, workspace, grad):
    """dx (N, H, W, C) view and dw (C, 1, kH, kW), block by block.

    ``dw[c, tap] = sum(shifted input * grad)`` per channel and tap (a dot product);
    ``dx``, component by component, sums ``w[tap] * grad`` shifted back by each tap that
    reads the component (shifted copies of grad times the kernel, as forward). Bands of
    one plane, whose input gradients meet at the band edges, run in order in one unit;
    units run in parallel.
    """
    (kh, kw), c, (ho, _) = g.kernel, g.channels, g.out_size
    sw, wq = g.stride[1], _ceil_div(g.padded[1], g.stride[1])
    kernel = np.ascontiguousarray(weight.reshape(c, kh, kw))
    dx = np.empty((g.batch, c, g.height, g.width), dtype=x.dtype)
    grad_planes = grad.transpose(0, 3, 1, 2)  # (N, C, Ho, Wo)
    units: dict[tuple[int, int], list[_Block]] = {}
    for block in _blocks(g, x.itemsize):
        units.setdefault((block.n0, block.c0), []).append(block)

    def run(unit: list[_Block]):
        first = unit[0]
        cb = first.c1 - first.c0
        whole = len(unit) == 1 and first.h0 == 0 and first.h1 == ho and g.padding_mode == "zeros"
        if not whole:
            dx[first.n0 : first.n1, first.c0 : first.c1] = 0
        dtaps = np.zeros((kh * kw, cb))  # float64 partial sums
        for block in unit:
            buffer = scratch("depthwise.input", (cb, block.length), x.dtype)
            _fill_input(x, g, block, buffer)
            # the output's gradient on the output grid, zero off it and for `front` values before
            front = max(block.shifts)
            padded_grad = scratch("depthwise.grad", (cb, front + block.size), x.dtype)
            grad_block = padded_grad[:, front:]
            padded_grad.fill(0)
            block.outputs(grad_block)[...] = grad_planes[
                block.n0 : block.n1, block.c0 : block.c1, block.h0 : block.h1
            ]
            for a, rows in enumerate(block.kernel_rows):
                for b, cols in enumerate(block.kernel_cols):
                    if rows and cols:  # the taps reading component (a, b): (cb, rows, cols)
                        dots = _dots(block.windows(buffer, a, b), grad_block[:, None, None])
                        taps = [[i * kw + j for j, _ in cols] for i, _ in rows]
                        dtaps[np.array(taps)] += dots.transpose(1, 2, 0)
            # component (a, b) of the padded input's gradient: the kernel taps reading it
            dbuffer = scratch("depthwise.dinput", (cb, block.components_size), x.dtype)
            for a, rows in enumerate(block.kernel_rows):
                for b, cols in enumerate(block.kernel_cols):
                    component = a * sw + b
                    target = dbuffer[:, component * block.size : (component + 1) * block.size]
                    if not rows or not cols:
                        target.fill(0)
                        continue
                    base = rows[-1][1] * wq  # the largest row shift
                    span = block.size + base
                    shifted = scratch("depthwise.shifted", (cb, len(cols), span), x.dtype)
                    for s, (_, shift) in enumerate(cols):
                        start = front - base - shift
                        shifted[:, s] = padded_grad[:, start : start + span]
                    products = scratch("depthwise.products", (cb, len(rows), span), x.dtype)
                    weights = kernel[block.c0 : block.c1][:, [i for i, _ in rows]][
                        :, :, [j for j, _ in cols]
                    ]
                    _matmul(weights, shifted, products)
                    parts = [
                        products[:, r, base - shift * wq : base - shift * wq + block.size]
                        for r, (_, shift) in enumerate(rows)
                    ]
                    _sum_rows(target, parts, True)
            _fold_input_gradient(dbuffer, g, block, dx, whole)
        return dtaps

    dtaps = np.zeros((kh * kw, c))
    unit_list = list(units.values())
    for unit, partial in zip(unit_list, _threads.parallel(_quietly(run), unit_list)):
        dtaps[:, unit[0].c0 : unit[0].c1] += partial
    dweight = dtaps.T.astype(x.dtype).reshape(c, 1, kh, kw)  # (T, C) -> (C, 1, kH, kW)
    return dx.transpose(0, 2, 3, 1), dweight


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
