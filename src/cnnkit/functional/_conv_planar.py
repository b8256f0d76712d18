"""The "planar" engine of conv2d (few values per window); the depthwise and interleaved
ones are in ``_conv_depthwise``.

They read the unpadded input ``(N, C, H, W)`` and pad band by band, so no padded copy
of the input is made. Forward functions write into the ``(N, Ho, Wo, O)`` view `out`
and return their gathered windows when the call was one band; each backward takes
``(x, weight, geometry, workspace, grad)`` and returns the input's gradient as an
``(N, H, W, C)`` view and the weight's.
"""

from __future__ import annotations

import numpy as np

from cnnkit._matmul import matmul
from cnnkit._workspace import scratch
from cnnkit.functional import _conv_geometry as geo
from cnnkit.functional._conv_geometry import Geometry

# -- planar: few channels (first layers, image-like inputs) ---------------------------------


def _planar_blocks(g: Geometry, itemsize: int) -> list:
    """The bands of both passes: the windows and, backward, their gradient, per output row."""
    bytes_per_row = 2 * g.channels * g.kernel[0] * g.kernel[1] * g.out_size[1] * itemsize
    return list(geo.bands(g, bytes_per_row))


def planar_forward(x, weight, g: Geometry, out, *, keep=True):
    """out (O, N*Ho*Wo) = W (O, C*kH*kW) @ windows (C*kH*kW, N*Ho*Wo), band by band.

    With few values per window, an im2col matrix with the window as its long side is
    written in strided bits; gathered planar instead, every row of the windows matrix
    is whole image rows, and the GEMM writes the planar output directly. The bands run
    in order, each GEMM on BLAS's threads (for this short, wide GEMM, bands on cnnkit's
    pool with BLAS on one thread measured twice as slow). Returns the windows when the
    call was one band and `keep` (a backward will follow).
    """
    wmat = weight.reshape(g.out_channels, -1)  # (O, C*kH*kW), the windows' row order
    planar = out.transpose(3, 0, 1, 2)  # (O, N, Ho, Wo), contiguous
    blocks = _planar_blocks(g, x.itemsize)
    kept = keep and len(blocks) == 1
    for n0, n1, h0, h1, r0, r1 in blocks:
        windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1, kept=kept)
        # whole images, or rows of one: each output channel's block is contiguous
        target = planar[:, n0:n1, h0:h1].reshape(g.out_channels, -1)
        assert np.may_share_memory(target, out), "the output block must be a view"
        matmul(wmat, windows, out=target)
    return windows if kept else None


def planar_backward(x, weight, g: Geometry, workspace, grad):
    """Gradients of the input (N, H, W, C) and weight from the output's (N, Ho, Wo, O) view."""
    (kh, kw), (_, wo) = g.kernel, g.out_size
    wmat = weight.reshape(g.out_channels, -1)  # (O, K)
    dwmat = np.zeros_like(wmat)
    dx = np.zeros(x.shape, dtype=x.dtype).transpose(0, 2, 3, 1)  # (N, H, W, C) view, planar
    planar_grad = grad.transpose(3, 0, 1, 2)  # (O, N, Ho, Wo), contiguous
    for n0, n1, h0, h1, r0, r1 in _planar_blocks(g, x.itemsize):
        n, rows = n1 - n0, h1 - h0
        windows = workspace  # kept by the forward when it was one band, as here
        if windows is None:
            windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1)
        grad_block = planar_grad[:, n0:n1, h0:h1].reshape(g.out_channels, -1)  # (O, M)
        dwmat += matmul(grad_block, windows.T)
        # (K, O) @ (O, M) -> (C, kH*kW, n, rows, Wo): each window's gradient
        dwindows = scratch("planar.dwindows", windows.shape, x.dtype)
        matmul(wmat.T, grad_block, out=dwindows)
        dwindows = dwindows.reshape(g.channels, kh * kw, n, rows, wo)
        dband = scratch("planar.dband", (n, g.channels, r1 - r0, g.padded[1]), x.dtype)
        dband.fill(0)
        dband = dband.transpose(0, 2, 3, 1)
        for tap in range(kh * kw):
            window = geo.window(dband, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
            window += dwindows[:, tap].transpose(1, 2, 3, 0)
        geo.fold_band(dband, dx[n0:n1], g, r0)
    return dx, dwmat.reshape(weight.shape)


def _band_windows(x, g: Geometry, n0, n1, h0, h1, r0, r1, *, kept: bool = False):
    """A band's kH*kW windows gathered planar as (C*kH*kW, n*rows*Wo), the planar GEMM's
    right-hand side; in this thread's reused workspace unless `kept` (for the backward)."""
    (kh, kw), (_, wo) = g.kernel, g.out_size
    band = geo.padded_band(x, g, n0, n1, r0, r1)  # view of planar memory
    n, rows = n1 - n0, h1 - h0
    shape = (g.channels, kh * kw, n, rows, wo)
    windows = np.empty(shape, x.dtype) if kept else scratch("planar.windows", shape, x.dtype)
    for tap in range(kh * kw):
        window = geo.window(band, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
        windows[:, tap] = window.transpose(3, 0, 1, 2)
    return windows.reshape(g.channels * kh * kw, n * rows * wo)
