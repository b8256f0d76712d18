"""The GEMM engines of conv2d: "im2col" (any stride, any groups), "rows" (stride 1) and
"pointwise" (1x1 kernels).

im2col and rows read the input from :func:`~cnnkit.functional._conv_geometry.pad`'s
flat channels-last buffer, write the output channels-last, ``(N, Ho, Wo, O)``, and
return their gathered windows when the whole call was one block, for the backward to
reuse. pointwise reads the input as it lies in memory and writes the output in the
same layout. Each backward takes ``(source, weight, geometry, workspace, grad)``, with
`grad` an ``(N, Ho, Wo, O)`` view, and returns the input's gradient as an
``(N, H, W, C)`` view and the weight's.
"""

from __future__ import annotations

import numpy as np

from cnnkit import _threads
from cnnkit._matmul import matmul
from cnnkit._threads import blocks, parallel, parallel_gemms
from cnnkit._workspace import scratch
from cnnkit.functional import _conv_geometry as geo
from cnnkit.functional import _shapes
from cnnkit.functional._conv_geometry import Geometry

# -- im2col: any stride and groups --------------------------------------------------------


def _im2col(xp, g: Geometry, n0, n1, h0, h1, *, into=None) -> np.ndarray:
    """Windows of rows h0..h1 as a (n*(h1-h0)*Wo, groups, kH*kW*C/groups) matrix.

    Written `into` a contiguous array of that size (kept for the backward pass), else
    into this thread's reused workspace.
    """
    kh, kw = g.kernel
    _, wo = g.out_size
    cg = g.channels // g.groups
    n, rows = n1 - n0, h1 - h0
    shape = (n, rows, wo, g.groups, kh, kw, cg)
    cols = scratch("im2col.cols", shape, xp.dtype) if into is None else into.reshape(shape)
    # a window row's kW taps lie side by side in the input when they are not dilated
    run = kw * cg if g.dilation[1] == 1 and g.groups == 1 else cg
    if run >= 4:  # one strided copy, its inner loops over runs of contiguous values
        windows = geo.windows(xp, g, n0, n1, h0, h1)
        row_bytes = wo * kh * kw * g.channels * xp.itemsize
        spans: list[tuple[slice, slice]]  # (samples, rows) of each block
        if n > 1:
            spans = [(slice(a, b), slice(None)) for a, b in blocks(n, rows * row_bytes)]
        else:
            spans = [(slice(None), slice(a, b)) for a, b in blocks(rows, row_bytes)]
        parallel(lambda s: np.copyto(cols[s], windows[s]), spans, total_bytes=cols.nbytes)
    else:  # few channels: one copy per kernel offset, each along whole rows of pixels

        def gather(tap):
            i, j = divmod(tap, kw)
            window = geo.window(xp, g, i, j, n0, n1, h0, h1)  # (n, h, Wo, C)
            cols[..., i, j, :] = window.reshape((*window.shape[:3], g.groups, cg))

        parallel(gather, range(kh * kw), total_bytes=cols.nbytes)
    return cols.reshape(-1, g.groups, kh * kw * cg)  # (M, G, K)


def _col2im_taps(dtaps, dxp, g: Geometry, n0, n1, h0, h1) -> None:
    """Add each kernel offset's window gradient, (kH*kW, M, C), into `dxp` (N, Hp, Wp, C).

    Kept offset by offset, each window's gradient is contiguous, so each add runs
    along whole rows of pixels (a (M, kH*kW*C) matrix's would run along C values).
    """
    kw = g.kernel[1]
    for tap, dwindow in enumerate(dtaps):
        window = geo.window(dxp, g, *divmod(tap, kw), n0, n1, h0, h1)  # (n, h, Wo, C) view
        window += dwindow.reshape(window.shape)


def _col2im(dcols, dxp, g: Geometry, n0, n1, h0, h1) -> None:
    """Adjoint of :func:`_im2col` for groups: add each window's gradient into `dxp` (N, Hp, Wp, C)."""
    kh, kw = g.kernel
    _, wo = g.out_size
    cg = g.channels // g.groups
    dcols = dcols.reshape(n1 - n0, h1 - h0, wo, g.groups, kh, kw, cg)
    for i in range(kh):
        for j in range(kw):
            window = geo.window(dxp, g, i, j, n0, n1, h0, h1)  # (n, h, Wo, C) view into dxp
            window += dcols[..., i, j, :].reshape(window.shape)


def _weight_matrix(weight: np.ndarray, g: Geometry) -> np.ndarray:
    """(O, C/G, kH, kW) weights as (G, kH*kW*C/G, O/G), matching the im2col column order."""
    o, cg, kh, kw = weight.shape
    w = weight.reshape(g.groups, o // g.groups, cg, kh, kw)
    return np.ascontiguousarray(w.transpose(0, 3, 4, 2, 1)).reshape(g.groups, kh * kw * cg, -1)


def _gemm_blocks(g: Geometry, bytes_per_row: int):
    """Blocks of output rows for the forward GEMMs, and the bytes their workspace touches.

    At least two blocks once the job is worth two threads (:func:`parallel_gemms`); the
    bounds depend on the shapes only.
    """
    ho, _ = g.out_size
    total = g.batch * ho * bytes_per_row
    budget = _shapes.WORKSPACE_BYTES
    if total >= _threads.BLOCK_BYTES:
        budget = min(budget, -(-total // 2))
    return list(geo.chunks(g, bytes_per_row, budget)), total


def im2col_forward(flat, weight, g: Geometry, out, bias=None, *, keep=True):
    """One GEMM per block of output rows over its gathered windows, plus `bias`; returns
    all the windows when `keep` (a backward will follow) and they fit the backward's
    workspace (one backward chunk)."""
    xp = geo.grid(flat, g)
    wmat = _weight_matrix(weight, g)  # (G, K, O/G)
    ho, wo = g.out_size
    bytes_per_row = wo * g.groups * wmat.shape[1] * flat.itemsize
    kept = None
    if keep and len(list(geo.chunks(g, bytes_per_row))) == 1:
        kept = np.empty((g.batch, ho, wo, g.groups, wmat.shape[1]), flat.dtype)
    blocks, total = _gemm_blocks(g, bytes_per_row)

    def block(bounds):
        n0, n1, h0, h1 = bounds
        into = None if kept is None else kept[n0:n1, h0:h1]
        cols = _im2col(xp, g, n0, n1, h0, h1, into=into)  # (M, G, K)
        out_block = out[n0:n1, h0:h1].reshape(-1, g.out_channels)  # (M, O) view
        if g.groups == 1:
            matmul(cols[:, 0], wmat[0], out=out_block)
        else:
            # (G, M, K) @ (G, K, O/G) -> (G, M, O/G) -> (M, G, O/G)
            product = matmul(cols.transpose(1, 0, 2), wmat)
            out_block.reshape(-1, g.groups, product.shape[2])[...] = product.transpose(1, 0, 2)
        if bias is not None:
            out_block += bias

    parallel_gemms(block, blocks, total_bytes=total)
    return None if kept is None else kept.reshape(-1, g.groups, wmat.shape[1])


def im2col_backward(flat, weight, g: Geometry, workspace, grad):
    """Gradients of the input (N, H, W, C) and weight from the output's (N, Ho, Wo, O)."""
    xp = geo.grid(flat, g)
    dflat = np.zeros_like(flat)
    dxp = geo.grid(dflat, g)
    wmat = _weight_matrix(weight, g)  # (G, K, O/G)
    k, og = wmat.shape[1], wmat.shape[2]
    o, cg, kh, kw = weight.shape
    if g.groups == 1:  # per kernel offset: (kH*kW, O, C)
        wtaps = np.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(kh * kw, o, cg)
    (hp, wp), (ho, wo) = g.padded, g.out_size
    blocks, total = _gemm_blocks(g, wo * g.groups * k * xp.itemsize)

    def block(bounds):
        n0, n1, h0, h1 = bounds
        if workspace is None:
            cols = _im2col(xp, g, n0, n1, h0, h1)
        else:  # all the windows, kept by the forward: this block's rows
            first = (n0 * ho + h0) * wo
            cols = workspace[first : first + (n1 - n0) * (h1 - h0) * wo]
        grad_block = grad[n0:n1, h0:h1].reshape(-1, g.groups, og)  # (M, G, O/G)
        if g.groups == 1:
            # (M, O) @ (kH*kW, O, C) -> (kH*kW, M, C): one GEMM per kernel offset
            dtaps = scratch("im2col.dtaps", (kh * kw, len(grad_block), cg), grad.dtype)
            matmul(grad_block[:, 0], wtaps, out=dtaps)
            _col2im_taps(dtaps, dxp, g, n0, n1, h0, h1)
            return matmul(cols[:, 0].T, grad_block[:, 0])[None]
        # (G, M, O/G) @ (G, O/G, K) -> (G, M, K) -> (M, G, K)
        dcols = matmul(grad_block.transpose(1, 0, 2), wmat.transpose(0, 2, 1))
        _col2im(dcols.transpose(1, 0, 2), dxp, g, n0, n1, h0, h1)
        # (G, K, M) @ (G, M, O/G) -> (G, K, O/G)
        return matmul(cols.transpose(1, 2, 0), grad_block.transpose(1, 0, 2))

    def span(bounds):  # the flat pixels of dxp a block adds into
        n0, n1, h0, h1 = bounds
        last_row = (h1 - 1) * g.stride[0] + (kh - 1) * g.dilation[0]
        return (n0 * hp + h0 * g.stride[0]) * wp, ((n1 - 1) * hp + last_row + 1) * wp

    dwmat = np.zeros_like(wmat)
    for partial in _without_overlaps(block, blocks, span, total):
        dwmat += partial
    # (G, kH*kW*C/G, O/G) -> (G, kH, kW, C/G, O/G) -> (O, C/G, kH, kW)
    dweight = (
        dwmat.reshape(g.groups, kh, kw, cg, og).transpose(0, 4, 3, 1, 2).reshape(o, cg, kh, kw)
    )
    return geo.unpad(dxp, g), dweight


def _without_overlaps(work, blocks, span, total_bytes: int) -> list:
    """``[work(b) for b in blocks]`` on :func:`parallel_gemms`, in rounds whose blocks add
    into disjoint parts of the gradient (a block's halo rows are its neighbour's).

    `span(block)` is the ``[start, stop)`` range of flat positions a block adds into.
    The rounds depend on the shapes only, and run in the same order on any number of
    threads, so every sum is taken in one order.
    """
    rounds: list[list[int]] = []
    ends: list[int] = []  # the furthest stop in each round so far
    for index, block in enumerate(blocks):
        start, stop = span(block)
        for r, end in enumerate(ends):
            if end <= start:  # blocks come in increasing order of start
                rounds[r].append(index)
                ends[r] = stop
                break
        else:
            rounds.append([index])
            ends.append(stop)
    results = [None] * len(blocks)
    for members in rounds:
        done = parallel_gemms(lambda i: work(blocks[i]), members, total_bytes=total_bytes)
        for index, result in zip(members, done):
            results[index] = result
    return results


# -- rows: stride 1, no groups --------------------------------------------------------------
#
# At stride 1, output pixel p of the padded grid (flat index n*Hp*Wp + h*Wp + w) sums
# flat[p + i*dh*Wp + j*dw] @ W[:, :, i, j] over the kernel. Computing every grid position
# (the few with w >= Wo or h >= Ho are discarded) turns each kernel row i into one GEMM
# over a contiguous slice of a (P, kW, C) buffer holding the kW column shifts: kW cheap
# contiguous copies of the input instead of kH*kW strided ones.


def rows_tail(g: Geometry) -> int:
    """Pixels read past the last image by the last grid position's kernel."""
    (kh, kw), (dh, dw) = g.kernel, g.dilation
    return (kh - 1) * dh * g.padded[1] + (kw - 1) * dw


def _rows_blocks(g: Geometry, itemsize: int, budget: int | None = None):
    """Blocks ``(n0, n1, h0, h1)``: whole images (all Hp grid rows), or output rows of one.

    By default the same for forward and backward, whose workspace per grid row is at
    most the shifted input and its gradient (kW*C each) and the output and its gradient
    (O each).
    """
    halo = (g.kernel[0] - 1) * g.dilation[0]
    bytes_per_grid_row = g.padded[1] * 2 * (g.kernel[1] * g.channels + g.out_channels) * itemsize
    return geo.chunks(g, bytes_per_grid_row, budget, span=g.padded[0], halo=halo)


def _rows_bytes(g: Geometry, flat) -> int:
    """The bytes a pass of the rows engine touches: shifted input, output, a product."""
    kw, wp = g.kernel[1], g.padded[1]
    return g.batch * g.padded[0] * wp * (kw * g.channels + 2 * g.out_channels) * flat.itemsize


def _rows_split(g: Geometry, flat) -> list:
    """The rows engine's blocks: one under ``BLOCK_BYTES``, else at least two (for
    :func:`parallel_gemms`) of at most the workspace; the bounds depend on the shapes only."""
    total = _rows_bytes(g, flat)
    if total < _threads.BLOCK_BYTES:
        return list(_rows_blocks(g, flat.itemsize))
    return list(_rows_blocks(g, flat.itemsize, min(_shapes.WORKSPACE_BYTES, -(-total // 2))))


def _block_span(g: Geometry, n0, n1, h0, h1) -> tuple[int, int]:
    """First flat pixel of a block and its number of grid positions."""
    hp, wp = g.padded
    return (n0 * hp + h0) * wp, ((n1 - n0 - 1) * hp + (h1 - h0)) * wp


def _shifted_rows(flat, g: Geometry, n0, n1, h0, h1, *, kept: bool = False) -> np.ndarray:
    """(count + halo, kW, C): the block's pixels shifted by each kernel column j.

    In this thread's reused workspace unless `kept` (returned for the backward pass).
    """
    (_, wp), (kh, kw), (dh, dw) = g.padded, g.kernel, g.dilation
    start, count = _block_span(g, n0, n1, h0, h1)
    length = count + (kh - 1) * dh * wp
    shape = (length, kw, g.channels)
    shifted = np.empty(shape, flat.dtype) if kept else scratch("rows.shifted", shape, flat.dtype)

    def shift(j):  # each kernel column fills its own slot: columns run on the thread pool
        shifted[:, j] = flat[start + j * dw : start + j * dw + length]

    parallel(shift, range(kw), total_bytes=shifted.nbytes)
    return shifted


def rows_forward(flat, weight, g: Geometry, out, bias=None, *, keep=True):
    """out (N, Ho, Wo, O): per block, one GEMM per kernel row, plus `bias`; returns the
    shifted rows when `keep` (a backward will follow) and it takes them in one block."""
    (_, wp), (ho, wo), (kh, kw), (dh, _) = g.padded, g.out_size, g.kernel, g.dilation
    o, c = g.out_channels, g.channels
    # (O, C, kH, kW) -> (kH, kW*C, O)
    wrows = np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).reshape(kh, kw * c, o)
    blocks = _rows_split(g, flat)
    kept = keep and blocks == [(0, g.batch, 0, g.padded[0])]  # one block: the backward's too

    def block(bounds):
        n0, n1, h0, h1 = bounds
        shifted = _shifted_rows(flat, g, n0, n1, h0, h1, kept=kept)
        _, count = _block_span(g, n0, n1, h0, h1)
        acc = scratch("rows.acc", (count, o), flat.dtype)
        matmul(shifted[:count].reshape(count, kw * c), wrows[0], out=acc)
        product = scratch("rows.product", (count, o), flat.dtype)
        for i in range(1, kh):
            offset = i * dh * wp
            matmul(shifted[offset : offset + count].reshape(count, kw * c), wrows[i], out=product)
            acc += product
        valid = min(h1, ho) - h0
        outputs = acc.reshape(n1 - n0, h1 - h0, wp, o)[:, :valid, :wo]
        if bias is None:
            out[n0:n1, h0 : h0 + valid] = outputs
        else:
            np.add(outputs, bias, out=out[n0:n1, h0 : h0 + valid])
        return shifted

    shifted = parallel_gemms(block, blocks, total_bytes=_rows_bytes(g, flat))
    return shifted[0] if kept else None


def rows_backward(flat, weight, g: Geometry, workspace, grad):
    """Gradients of the input (N, H, W, C) and weight from the output's (N, Ho, Wo, O)."""
    (_, wp), (ho, wo), (kh, kw), (dh, dw) = g.padded, g.out_size, g.kernel, g.dilation
    o, c = g.out_channels, g.channels
    wtaps = np.ascontiguousarray(weight.transpose(2, 3, 0, 1))  # (kH, kW, O, C)
    dflat = np.zeros_like(flat)
    blocks = [(0, g.batch, 0, g.padded[0])] if workspace is not None else _rows_split(g, flat)

    def block(bounds):
        n0, n1, h0, h1 = bounds
        start, count = _block_span(g, n0, n1, h0, h1)
        shifted = workspace  # kept by the forward when it was one block
        if shifted is None:
            shifted = _shifted_rows(flat, g, n0, n1, h0, h1)
        valid = min(h1, ho) - h0
        grad_grid = scratch("rows.grad", (n1 - n0, h1 - h0, wp, o), flat.dtype)
        grad_grid.fill(0)  # 0 off the outputs
        grad_grid[:, :valid, :wo] = grad[n0:n1, h0 : h0 + valid]
        grad_grid = grad_grid.reshape(count, o)
        dwrows = np.empty((kh, kw * c, o), flat.dtype)
        for i in range(kh):
            offset = i * dh * wp
            matmul(
                shifted[offset : offset + count].reshape(count, kw * c).T, grad_grid, out=dwrows[i]
            )
            # (count, O) @ (kW, O, C) -> (kW, count, C): contiguous per kernel column
            dshifted = scratch("rows.dshifted", (kw, count, c), flat.dtype)
            matmul(grad_grid, wtaps[i], out=dshifted)
            for j in range(kw):
                begin = start + offset + j * dw
                dflat[begin : begin + count] += dshifted[j]
        return dwrows

    def span(bounds):  # the flat pixels of dflat a block adds into
        start, count = _block_span(g, *bounds)
        return start, start + count + rows_tail(g)

    dwrows = np.zeros((kh, kw * c, o), flat.dtype)
    for partial in _without_overlaps(block, blocks, span, _rows_bytes(g, flat)):
        dwrows += partial
    # (kH, kW*C, O) -> (kH, kW, C, O) -> (O, C, kH, kW)
    return geo.unpad(geo.grid(dflat, g), g), dwrows.reshape(kh, kw, c, o).transpose(3, 2, 0, 1)


# -- pointwise: 1x1 kernels, stride 1, no padding, no groups --------------------------------
#
# Every pixel's window is the pixel itself, so the input is the windows matrix and the
# layer is GEMMs with no gather and no padding pass, in the input's own memory layout:
# - channels-last (N*H*W, C): out (N*H*W, O) = x @ W.T, channels-last, one GEMM;
# - channel-major (C, N*H*W) (one planar sample): out (O, N*H*W) = W @ x, one GEMM;
# - planar samples (N, C, H*W): out[n] (O, H*W) = W @ x[n], planar, one GEMM per sample
#   on the thread pool (parallel_gemms). Any other strides are copied planar first.


def pointwise_applies(g: Geometry) -> bool:
    """Whether :func:`pointwise_forward` computes this call."""
    return g.kernel == (1, 1) and g.stride == (1, 1) and not any(g.pads) and g.groups == 1


def channel_major(x: np.ndarray) -> bool:
    """Whether an (N, C, H, W) array lies in (C, N, H, W) memory."""
    return x.transpose(1, 0, 2, 3).flags.c_contiguous


def pointwise_layout(x: np.ndarray) -> str:
    """How :func:`pointwise_forward` reads an (N, C, H, W) input from
    :func:`pointwise_source`: "channel_major", "channels_last" or "planar"."""
    if channel_major(x):
        return "channel_major"
    if x.transpose(0, 2, 3, 1).flags.c_contiguous:
        return "channels_last"
    return "planar"


def pointwise_source(x: np.ndarray) -> np.ndarray:
    """`x` (N, C, H, W) in a memory layout the GEMMs read as it lies (a copy otherwise)."""
    if channel_major(x) or x.transpose(0, 2, 3, 1).flags.c_contiguous:
        return x
    return np.ascontiguousarray(x)


def pointwise_output(x: np.ndarray, g: Geometry, dtype) -> np.ndarray:
    """The (N, Ho, Wo, O) output view, in the memory layout that goes with `x`'s."""
    shape = (g.batch, g.out_size[0], g.out_size[1], g.out_channels)
    layout = pointwise_layout(x)
    if layout == "channel_major":  # the GEMM writes (O, N, Ho, Wo), as planar's does
        return np.empty((shape[3], *shape[:3]), dtype).transpose(1, 2, 3, 0)
    if layout == "planar":
        return np.empty((shape[0], shape[3], *shape[1:3]), dtype).transpose(0, 2, 3, 1)
    return np.empty(shape, dtype)


def pointwise_forward(x, weight, g: Geometry, out, bias=None):
    """out (N, Ho, Wo, O) view, in the memory layout :func:`pointwise_output` gave it."""
    n, c, o, pixels = g.batch, g.channels, g.out_channels, g.height * g.width
    wmat = weight.reshape(o, c)  # (O, C, 1, 1) -> (O, C)
    layout = pointwise_layout(x)
    if layout == "planar":
        planes = out.transpose(0, 3, 1, 2)  # (N, O, Ho, Wo), contiguous

        def sample(k):
            target = planes[k].reshape(o, pixels)
            matmul(wmat, x[k].reshape(c, pixels), out=target)
            if bias is not None:  # while the sample's output is in the cache
                target += bias[:, None]

        parallel_gemms(sample, range(n), total_bytes=n * (c + o) * pixels * x.itemsize)
        return None
    if layout == "channel_major":
        cols = x.transpose(1, 0, 2, 3).reshape(c, n * pixels)  # (C, N*H*W) view
        target = out.transpose(3, 0, 1, 2).reshape(o, n * pixels)  # (O, N*H*W) view
        matmul(wmat, cols, out=target)
    else:
        rows = x.transpose(0, 2, 3, 1).reshape(n * pixels, c)  # (N*H*W, C) view
        target = out.reshape(n * pixels, o)  # (N*H*W, O) view
        matmul(rows, wmat.T, out=target)
    assert np.may_share_memory(target, out), "the GEMM must write the output in place"
    if bias is not None:
        out += bias
    return None


def pointwise_backward(x, weight, g: Geometry, workspace, grad):
    """dx = grad @ W and dW = grad.T @ x, in the forward's layout (`grad` converted to it)."""
    n, c, o, pixels = g.batch, g.channels, g.out_channels, g.height * g.width
    wmat = weight.reshape(o, c)  # (O, C)
    layout = pointwise_layout(x)
    if layout == "planar":
        grad_planes = grad.transpose(0, 3, 1, 2)  # (N, O, Ho, Wo): as converted
        dx = np.empty((n, c, g.height, g.width), x.dtype)

        def sample(k):
            grad_k = grad_planes[k].reshape(o, pixels)
            matmul(wmat.T, grad_k, out=dx[k].reshape(c, pixels))
            return matmul(grad_k, x[k].reshape(c, pixels).T)  # this sample's (O, C) share

        shares = parallel_gemms(sample, range(n), total_bytes=n * (c + o) * pixels * x.itemsize)
        dwmat = np.zeros_like(wmat)
        for share in shares:  # in sample order, whatever the threads
            dwmat += share
        return dx.transpose(0, 2, 3, 1), dwmat.reshape(weight.shape)
    if layout == "channel_major":
        cols = x.transpose(1, 0, 2, 3).reshape(c, n * pixels)  # (C, N*H*W) view
        grad_cols = grad.transpose(3, 0, 1, 2).reshape(o, n * pixels)  # (O, N*H*W): as converted
        dx = matmul(wmat.T, grad_cols).reshape(c, n, g.height, g.width)  # (C, N, H, W)
        return dx.transpose(1, 2, 3, 0), matmul(grad_cols, cols.T).reshape(weight.shape)
    rows = x.transpose(0, 2, 3, 1).reshape(n * pixels, c)  # (N*H*W, C) view
    grad_rows = grad.reshape(n * pixels, o)  # (N*H*W, O): channels-last, as converted
    dx = matmul(grad_rows, wmat).reshape(n, g.height, g.width, c)  # (N, H, W, C)
    return dx, matmul(grad_rows.T, rows).reshape(weight.shape)
