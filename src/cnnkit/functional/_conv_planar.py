"""The channels-first engines of conv2d: "planar" (few values per window), "depthwise"
(one input and one output channel per group) and "interleaved" (depthwise with one
kernel shared by every channel, on a channels-last input: image filtering).

They read the unpadded input ``(N, C, H, W)`` and pad band by band, so no padded copy
of the input is made. Forward functions write into the ``(N, Ho, Wo, O)`` view `out`
and return their gathered windows when the call was one band; each backward takes
``(x, weight, geometry, workspace, grad)`` and returns the input's gradient as an
``(N, H, W, C)`` view and the weight's.
"""

from __future__ import annotations

import numpy as np

from cnnkit.functional import _conv_geometry as geo
from cnnkit.functional._conv_geometry import Geometry

# -- planar: few channels (first layers, image-like inputs) ---------------------------------


def _planar_blocks(g: Geometry, itemsize: int) -> list:
    """The bands of both passes: the windows and, backward, their gradient, per output row."""
    bytes_per_row = 2 * g.channels * g.kernel[0] * g.kernel[1] * g.out_size[1] * itemsize
    return list(geo.bands(g, bytes_per_row))


def planar_forward(x, weight, g: Geometry, out):
    """out (O, N*Ho*Wo) = W (O, C*kH*kW) @ windows (C*kH*kW, N*Ho*Wo), band by band.

    With few values per window, an im2col matrix with the window as its long side is
    written in strided bits; gathered planar instead, every row of the windows matrix
    is whole image rows, and the GEMM writes the planar output directly.
    """
    wmat = weight.reshape(g.out_channels, -1)  # (O, C*kH*kW), the windows' row order
    planar = out.transpose(3, 0, 1, 2)  # (O, N, Ho, Wo), contiguous
    blocks = _planar_blocks(g, x.itemsize)
    for n0, n1, h0, h1, r0, r1 in blocks:
        _, windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1, samples_first=False)
        # whole images, or rows of one: each output channel's block is contiguous
        target = planar[:, n0:n1, h0:h1].reshape(g.out_channels, -1)
        assert np.may_share_memory(target, out), "the output block must be a view"
        np.matmul(wmat, windows, out=target)
    return windows if len(blocks) == 1 else None


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
            _, windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1, samples_first=False)
        grad_block = planar_grad[:, n0:n1, h0:h1].reshape(g.out_channels, -1)  # (O, M)
        dwmat += grad_block @ windows.T
        # (K, O) @ (O, M) -> (C, kH*kW, n, rows, Wo): each window's gradient
        dwindows = (wmat.T @ grad_block).reshape(g.channels, kh * kw, n, rows, wo)
        dband = np.zeros((n, g.channels, r1 - r0, g.padded[1]), dtype=x.dtype).transpose(0, 2, 3, 1)
        for tap in range(kh * kw):
            window = geo.window(dband, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
            window += dwindows[:, tap].transpose(1, 2, 3, 0)
        geo.fold_band(dband, dx[n0:n1], g, r0)
    return dx, dwmat.reshape(weight.shape)


# -- depthwise: one input and one output channel per group ----------------------------------


def _band_windows(x, g: Geometry, n0, n1, h0, h1, r0, r1, *, samples_first: bool):
    """A band's padded input, (n, R, Wp, C), and its kH*kW windows, gathered planar.

    The windows come as (n, C, kH*kW, rows*Wo) with `samples_first` (depthwise), else as
    (C*kH*kW, n*rows*Wo) (the planar GEMM's right-hand side).
    """
    (kh, kw), (_, wo) = g.kernel, g.out_size
    band = geo.padded_band(x, g, n0, n1, r0, r1)  # view of planar memory
    n, rows = n1 - n0, h1 - h0
    if samples_first:
        windows = np.empty((n, g.channels, kh * kw, rows, wo), dtype=x.dtype)
        for tap in range(kh * kw):
            window = geo.window(band, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
            windows[:, :, tap] = window.transpose(0, 3, 1, 2)
        return band, windows.reshape(n, g.channels, kh * kw, rows * wo)
    windows = np.empty((g.channels, kh * kw, n, rows, wo), dtype=x.dtype)
    for tap in range(kh * kw):
        window = geo.window(band, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
        windows[:, tap] = window.transpose(3, 0, 1, 2)
    return band, windows.reshape(g.channels * kh * kw, n * rows * wo)


def depthwise_forward(x, weight, g: Geometry, out):
    """out[n, c] = w[c] . (the kH*kW shifted windows of channel c): one batched GEMV per band.

    Gathered planar, every channel's sum of kH*kW products is one BLAS matrix-vector
    product rather than kH*kW elementwise passes. A planar `out` receives the products
    directly; a channels-last one, band by band.
    """
    (kh, kw), (_, wo) = g.kernel, g.out_size
    taps = weight[:, 0].reshape(g.channels, 1, kh * kw)  # (C, 1, T)
    planar = out.transpose(0, 3, 1, 2)  # (N, C, Ho, Wo) view
    planar_out = planar.flags.c_contiguous
    bytes_per_row = (kh * kw + 1) * wo * g.channels * x.itemsize
    for n0, n1, h0, h1, r0, r1 in geo.bands(g, bytes_per_row):
        _, windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1, samples_first=True)
        n, rows = n1 - n0, h1 - h0
        if planar_out:  # whole planes, or rows of one sample's planes: a (n, C, 1, rows*Wo) view
            target = planar[n0:n1, :, h0:h1].reshape(n, g.channels, 1, rows * wo)
            np.matmul(taps, windows, out=target)
        else:
            product = np.matmul(taps, windows).reshape(n, g.channels, rows, wo)
            out[n0:n1, h0:h1] = product.transpose(0, 2, 3, 1)
    return None


def depthwise_backward(x, weight, g: Geometry, workspace, grad):
    """dw[c] = windows[c] . g[c] (batched GEMV); dx: each window's share, added back in place."""
    (kh, kw), (_, wo) = g.kernel, g.out_size
    taps = weight[:, 0].reshape(g.channels, kh * kw, 1)  # (C, T, 1)
    dtaps = np.zeros((g.channels, kh * kw, 1), dtype=x.dtype)
    dx = np.zeros(x.shape, dtype=x.dtype).transpose(0, 2, 3, 1)  # (N, H, W, C) view, planar
    planar_grad = grad.transpose(0, 3, 1, 2)  # (N, C, Ho, Wo), planar memory
    bytes_per_row = (2 * kh * kw + 1) * wo * g.channels * x.itemsize
    for n0, n1, h0, h1, r0, r1 in geo.bands(g, bytes_per_row):
        band, windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1, samples_first=True)
        n, rows = n1 - n0, h1 - h0
        grad_rows = planar_grad[n0:n1, :, h0:h1].reshape(n, g.channels, rows * wo, 1)
        dtaps += np.matmul(windows, grad_rows).sum(axis=0)  # (C, T, 1)
        # (C, T, 1) * (n, C, 1, rows*Wo) -> (n, C, T, rows*Wo): each tap's share of dx
        shares = (taps * grad_rows.reshape(n, g.channels, 1, rows * wo)).reshape(
            n, g.channels, kh * kw, rows, wo
        )
        dband = np.zeros_like(band)
        for tap in range(kh * kw):
            window = geo.window(dband, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
            window += shares[:, :, tap].transpose(0, 2, 3, 1)
        geo.fold_band(dband, dx[n0:n1], g, r0)
    return dx, dtaps.reshape(g.channels, 1, kh, kw)


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
