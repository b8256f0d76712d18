"""2-D convolution (cross-correlation): forward and backward.

The engine works channels-last. The padded input is copied once into an
``(N, Hp, Wp, C)`` buffer; each chunk of output rows gathers its windows into an
``(M, groups, kH, kW, C/groups)`` matrix (im2col, one strided copy per kernel offset)
and multiplies it with the weights in one GEMM. The result is stored ``(N, Ho, Wo, O)``
and returned as an ``(N, O, Ho, Wo)`` view, so the next layer's channels-last copy is free.
Depthwise convolution (one input channel per group, one output channel per group) and
the plain-matrix form skip the GEMM: they accumulate one shifted, scaled input per
kernel offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnkit._validation import (
    as_float_array,
    check_choice,
    check_nonnegative,
    check_positive,
    to_int,
)
from cnnkit.functional._shapes import (
    WORKSPACE_BYTES,
    add_batch_axes,
    as_batch,
    from_batch,
    pad_index,
)

__all__ = ["conv2d", "conv2d_forward", "conv2d_backward", "conv2d_output_size"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class _Geometry:
    """Everything about a convolution except the numbers flowing through it."""

    batch: int
    channels: int
    height: int
    width: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    groups: int
    padding_mode: str

    @property
    def padded(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        return self.height + top + bottom, self.width + left + right

    @property
    def out_size(self) -> tuple[int, int]:
        hp, wp = self.padded
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        return (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1

    @property
    def depthwise(self) -> bool:
        return self.groups == self.channels == self.out_channels


@dataclass
class _ConvCache:
    geometry: _Geometry
    rank: int
    padded_input: np.ndarray  # (N, Hp, Wp, C) channels-last
    weight: np.ndarray  # (O, C/groups, kH, kW) in the compute dtype
    has_bias: bool
    columns: np.ndarray | None  # the whole im2col matrix when it fit in one chunk


def conv2d_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output size of a convolution along one axis (PyTorch's formula).

    Examples
    --------
    >>> conv2d_output_size(6, 3, stride=3)
    2
    """
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _resolve_padding(padding, size, kernel, stride, dilation):
    """(top, bottom, left, right) for an int, a pair, "valid" or "same"."""
    if isinstance(padding, str):
        padding = check_choice("padding", padding, ("valid", "same"))
        if padding == "valid":
            return (0, 0, 0, 0)
        pads = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads += [total // 2, total - total // 2]  # the odd one goes bottom/right
        return tuple(pads)
    ph, pw = check_nonnegative("padding", padding)
    return (ph, ph, pw, pw)


def _validate(x, weight, bias, stride, padding, dilation, groups, padding_mode):
    """Check every argument; return the batched arrays, the geometry and the input rank."""
    x = as_float_array("x", x)
    weight = as_float_array("weight", weight)
    bias = as_float_array("bias", bias, allow_none=True)
    if x.ndim == 2:
        if weight.ndim != 2:
            raise ValueError(
                f"a plain (H, W) matrix x needs a (kH, kW) weight, got weight of shape {weight.shape}"
            )
        weight = weight[None, None]
        if bias is not None and bias.size != 1:
            raise ValueError(f"bias for a plain matrix must hold one value, got shape {bias.shape}")
    elif weight.ndim != 4:
        raise ValueError(
            f"weight must have shape (out_channels, in_channels/groups, kH, kW), got shape {weight.shape}"
        )
    xb, rank = as_batch("x", x)
    groups = to_int("groups", groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    n, c, h, w = xb.shape
    o, cg, kh, kw = weight.shape
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel size must be >= 1, got weight of shape {weight.shape}")
    if o < 1:
        raise ValueError(f"weight must have at least one output channel, got shape {weight.shape}")
    if c % groups or o % groups:
        raise ValueError(
            f"groups={groups} must divide both in_channels={c} and out_channels={o}"
        )
    if cg * groups != c:
        raise ValueError(
            f"weight of shape {weight.shape} expects {cg * groups} input channels "
            f"(groups={groups}), got x of shape {x.shape} with {c} channels"
        )
    if bias is not None:
        if rank == 2:
            bias = bias.reshape(1)
        if bias.shape != (o,):
            raise ValueError(f"bias must have shape ({o},), got shape {bias.shape}")
    stride = check_positive("stride", stride)
    dilation = check_positive("dilation", dilation)
    padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
    if h < 1 or w < 1:
        raise ValueError(f"x must have a non-empty image, got shape {x.shape}")
    pads = _resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    geometry = _Geometry(n, c, h, w, o, (kh, kw), stride, dilation, pads, groups, padding_mode)
    if padding_mode == "reflect" and (max(pads[:2]) >= h or max(pads[2:]) >= w):
        raise ValueError(
            f"padding_mode='reflect' needs padding smaller than the input: got padding "
            f"{pads} (top, bottom, left, right) for an input of size {(h, w)}"
        )
    if padding_mode == "circular" and (max(pads[:2]) > h or max(pads[2:]) > w):
        raise ValueError(
            f"padding_mode='circular' needs padding no larger than the input: got padding "
            f"{pads} (top, bottom, left, right) for an input of size {(h, w)}"
        )
    ho, wo = geometry.out_size
    if ho < 1 or wo < 1:
        hp, wp = geometry.padded
        effective = tuple(d * (k - 1) + 1 for d, k in zip(dilation, (kh, kw)))
        raise ValueError(
            f"kernel size {(kh, kw)} (dilated to {effective}) is larger than the padded "
            f"input {(hp, wp)}"
        )
    return xb, weight, bias, geometry, rank


def _pad_channels_last(x: np.ndarray, g: _Geometry, dtype) -> np.ndarray:
    """Copy `x` (N, C, H, W) into a padded channels-last buffer (N, Hp, Wp, C)."""
    top, bottom, left, right = g.pads
    hp, wp = g.padded
    h, w = g.height, g.width
    xp = np.empty((g.batch, hp, wp, g.channels), dtype=dtype)
    xp[:, top : top + h, left : left + w] = x.transpose(0, 2, 3, 1)  # (N, H, W, C)
    if g.padding_mode == "zeros":
        xp[:, :top] = 0
        xp[:, top + h :] = 0
        xp[:, top : top + h, :left] = 0
        xp[:, top : top + h, left + w :] = 0
        return xp
    rows = pad_index(h, top, bottom, g.padding_mode) + top
    cols = pad_index(w, left, right, g.padding_mode) + left
    border_cols = np.r_[0:left, left + w : wp]
    xp[:, top : top + h, border_cols] = xp[:, top : top + h, cols[border_cols]]
    border_rows = np.r_[0:top, top + h : hp]
    xp[:, border_rows] = xp[:, rows[border_rows]]
    return xp


def _unpad_channels_last(dxp: np.ndarray, g: _Geometry) -> np.ndarray:
    """Adjoint of :func:`_pad_channels_last`: fold the padding's gradient back in."""
    top, bottom, left, right = g.pads
    hp, wp = g.padded
    h, w = g.height, g.width
    if g.padding_mode == "zeros":
        return dxp[:, top : top + h, left : left + w]
    rows = pad_index(h, top, bottom, g.padding_mode)
    cols = pad_index(w, left, right, g.padding_mode)
    border_rows = np.r_[0:top, top + h : hp]
    dx_rows = dxp[:, top : top + h].copy()  # (N, H, Wp, C)
    np.add.at(dx_rows, (slice(None), rows[border_rows]), dxp[:, border_rows])
    border_cols = np.r_[0:left, left + w : wp]
    dx = dx_rows[:, :, left : left + w].copy()  # (N, H, W, C)
    np.add.at(dx, (slice(None), slice(None), cols[border_cols]), dx_rows[:, :, border_cols])
    return dx


def _chunks(g: _Geometry, bytes_per_row: int):
    """Blocks ``(n0, n1, h0, h1)`` of output rows whose workspace stays within the budget."""
    ho, _ = g.out_size
    rows = max(1, WORKSPACE_BYTES // max(bytes_per_row, 1))
    if rows >= ho:
        samples = rows // ho
        for n0 in range(0, g.batch, samples):
            yield n0, min(n0 + samples, g.batch), 0, ho
    else:
        for n0 in range(g.batch):
            for h0 in range(0, ho, rows):
                yield n0, n0 + 1, h0, min(h0 + rows, ho)


def _window(xp, g: _Geometry, i, j, n0, n1, h0, h1):
    """The input seen by kernel offset (i, j) for output rows h0..h1: (n, h1-h0, Wo, C) view."""
    (sh, sw), (dh, dw) = g.stride, g.dilation
    _, wo = g.out_size
    top = i * dh + h0 * sh
    left = j * dw
    return xp[n0:n1, top : top + sh * (h1 - h0 - 1) + 1 : sh, left : left + sw * (wo - 1) + 1 : sw]


def _im2col(xp, g: _Geometry, n0, n1, h0, h1) -> np.ndarray:
    """Windows of rows h0..h1 as a (n*(h1-h0)*Wo, groups, kH, kW, C/groups) matrix."""
    kh, kw = g.kernel
    _, wo = g.out_size
    cg = g.channels // g.groups
    cols = np.empty((n1 - n0, h1 - h0, wo, g.groups, kh, kw, cg), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            window = _window(xp, g, i, j, n0, n1, h0, h1)  # (n, h, Wo, C)
            cols[..., i, j, :] = window.reshape(window.shape[:3] + (g.groups, cg))
    return cols.reshape(-1, g.groups, kh * kw * cg)  # (M, G, K)


def _col2im(dcols, dxp, g: _Geometry, n0, n1, h0, h1) -> None:
    """Adjoint of :func:`_im2col`: add each window's gradient into `dxp` (N, Hp, Wp, C)."""
    kh, kw = g.kernel
    _, wo = g.out_size
    cg = g.channels // g.groups
    dcols = dcols.reshape(n1 - n0, h1 - h0, wo, g.groups, kh, kw, cg)
    for i in range(kh):
        for j in range(kw):
            window = _window(dxp, g, i, j, n0, n1, h0, h1)  # (n, h, Wo, C) view into dxp
            window += dcols[..., i, j, :].reshape(window.shape)


def _weight_matrix(weight: np.ndarray, g: _Geometry) -> np.ndarray:
    """(O, C/G, kH, kW) weights as (G, kH*kW*C/G, O/G), matching the im2col column order."""
    o, cg, kh, kw = weight.shape
    w = weight.reshape(g.groups, o // g.groups, cg, kh, kw)
    return np.ascontiguousarray(w.transpose(0, 3, 4, 2, 1)).reshape(g.groups, kh * kw * cg, -1)


def conv2d_forward(
    x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    """:func:`conv2d` that also returns the cache :func:`conv2d_backward` needs.

    Returns
    -------
    out : ndarray
        As :func:`conv2d`.
    cache : object
        Opaque; pass it to :func:`conv2d_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)))
    >>> dx, dw, db = conv2d_backward(np.ones_like(out), cache)
    >>> dx.shape, dw.shape, db
    ((1, 1, 4, 4), (2, 1, 3, 3), None)
    """
    xb, weight, bias, g, rank = _validate(
        x, weight, bias, stride, padding, dilation, groups, padding_mode
    )
    dtype = np.result_type(xb, weight, *([] if bias is None else [bias]))
    weight = weight.astype(dtype, copy=False)
    xp = _pad_channels_last(xb, g, dtype)
    ho, wo = g.out_size
    out = np.empty((g.batch, ho, wo, g.out_channels), dtype=dtype)
    columns = None
    if g.depthwise:
        _depthwise_forward(xp, weight, g, out)
    else:
        wmat = _weight_matrix(weight, g)  # (G, K, O/G)
        k = wmat.shape[1]
        blocks = list(_chunks(g, wo * g.groups * k * xp.itemsize))
        for n0, n1, h0, h1 in blocks:
            cols = _im2col(xp, g, n0, n1, h0, h1)  # (M, G, K)
            out_block = out[n0:n1, h0:h1].reshape(-1, g.out_channels)  # (M, O) view
            if g.groups == 1:
                np.matmul(cols[:, 0], wmat[0], out=out_block)
            else:
                # (G, M, K) @ (G, K, O/G) -> (G, M, O/G) -> (M, G, O/G)
                product = np.matmul(cols.transpose(1, 0, 2), wmat)
                out_block.reshape(-1, g.groups, product.shape[2])[...] = product.transpose(1, 0, 2)
            if len(blocks) == 1:
                columns = cols
    if bias is not None:
        out += bias.astype(dtype, copy=False)
    cache = _ConvCache(g, rank, xp, weight, bias is not None, columns)
    return from_batch(out.transpose(0, 3, 1, 2), rank), cache  # (N, O, Ho, Wo) view


def _depthwise_forward(xp, weight, g: _Geometry, out) -> None:
    """out (N, Ho, Wo, C) = sum over kernel offsets of the shifted input times w[c, i, j]."""
    kh, kw = g.kernel
    _, wo = g.out_size
    taps = weight[:, 0].transpose(1, 2, 0)  # (kH, kW, C)
    for n0, n1, h0, h1 in _chunks(g, wo * g.channels * xp.itemsize):
        acc = out[n0:n1, h0:h1]
        product = np.empty_like(acc)
        for i in range(kh):
            for j in range(kw):
                window = _window(xp, g, i, j, n0, n1, h0, h1)
                if i == 0 and j == 0:
                    np.multiply(window, taps[i, j], out=acc)
                else:
                    np.multiply(window, taps[i, j], out=product)
                    acc += product


def _depthwise_backward(xp, weight, grad, g: _Geometry, dxp, dweight) -> None:
    kh, kw = g.kernel
    _, wo = g.out_size
    taps = weight[:, 0].transpose(1, 2, 0)  # (kH, kW, C)
    dtaps = np.zeros_like(taps)
    for n0, n1, h0, h1 in _chunks(g, wo * g.channels * xp.itemsize):
        grad_block = grad[n0:n1, h0:h1]  # (n, h, Wo, C)
        product = np.empty_like(grad_block)
        for i in range(kh):
            for j in range(kw):
                window = _window(xp, g, i, j, n0, n1, h0, h1)
                np.multiply(window, grad_block, out=product)
                dtaps[i, j] += product.sum(axis=(0, 1, 2))
                np.multiply(grad_block, taps[i, j], out=product)
                _window(dxp, g, i, j, n0, n1, h0, h1)[...] += product
    dweight[:, 0] = dtaps.transpose(2, 0, 1)


def conv2d_backward(grad_output, cache):
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_output : ndarray, the shape of the forward's output
        Gradient of the loss with respect to the output.
    cache : object
        The second value returned by :func:`conv2d_forward`.

    Returns
    -------
    grad_x : ndarray, the shape of `x`
    grad_weight : ndarray, the shape of `weight`
    grad_bias : ndarray of shape (O,), or None when the forward had no bias
        (shape (1,) for the plain-matrix form).
    """
    g: _Geometry = cache.geometry
    ho, wo = g.out_size
    expected = from_batch(np.empty((g.batch, g.out_channels, ho, wo), dtype=bool), cache.rank).shape
    grad_output = as_float_array("grad_output", grad_output)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have shape {expected}, got shape {grad_output.shape}")
    xp, weight = cache.padded_input, cache.weight
    dtype = xp.dtype
    grad = add_batch_axes(grad_output, cache.rank)  # (N, O, Ho, Wo)
    grad = np.ascontiguousarray(grad.transpose(0, 2, 3, 1), dtype=dtype)  # (N, Ho, Wo, O)
    dxp = np.zeros_like(xp)
    dweight = np.zeros_like(weight)
    if g.depthwise:
        _depthwise_backward(xp, weight, grad, g, dxp, dweight)
    else:
        wmat = _weight_matrix(weight, g)  # (G, K, O/G)
        k, og = wmat.shape[1], wmat.shape[2]
        dwmat = np.zeros_like(wmat)
        for n0, n1, h0, h1 in _chunks(g, wo * g.groups * k * xp.itemsize):
            cols = cache.columns if cache.columns is not None else _im2col(xp, g, n0, n1, h0, h1)
            grad_block = grad[n0:n1, h0:h1].reshape(-1, g.groups, og)  # (M, G, O/G)
            if g.groups == 1:
                dwmat[0] += cols[:, 0].T @ grad_block[:, 0]
                dcols = grad_block[:, 0] @ wmat[0].T  # (M, K)
            else:
                # (G, K, M) @ (G, M, O/G) -> (G, K, O/G)
                dwmat += np.matmul(cols.transpose(1, 2, 0), grad_block.transpose(1, 0, 2))
                # (G, M, O/G) @ (G, O/G, K) -> (G, M, K) -> (M, G, K)
                dcols = np.matmul(grad_block.transpose(1, 0, 2), wmat.transpose(0, 2, 1))
                dcols = dcols.transpose(1, 0, 2)
            _col2im(dcols, dxp, g, n0, n1, h0, h1)
        o, cg, kh, kw = weight.shape
        # (G, kH*kW*C/G, O/G) -> (G, kH, kW, C/G, O/G) -> (O, C/G, kH, kW)
        dweight[...] = (
            dwmat.reshape(g.groups, kh, kw, cg, og).transpose(0, 4, 3, 1, 2).reshape(o, cg, kh, kw)
        )
    dx = _unpad_channels_last(dxp, g).transpose(0, 3, 1, 2)  # (N, C, H, W) view
    dbias = grad.sum(axis=(0, 1, 2)) if cache.has_bias else None
    if cache.rank == 2:
        return dx[0, 0], dweight[0, 0], dbias
    return from_batch(dx, cache.rank), dweight, dbias


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """2-D convolution (cross-correlation, as in PyTorch and every CNN library).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input. Integer and bool inputs are computed in float32.
    weight : ndarray of shape (O, C/groups, kH, kW), or (kH, kW) for a plain (H, W) `x`
        Kernels.
    bias : ndarray of shape (O,), optional
        Added to each output channel.
    stride, dilation : int or (int, int)
        Step between windows, and spacing between kernel taps; each >= 1.
    padding : int, (int, int), "valid" or "same"
        Rows/columns added on each side. "same" gives ``ceil(H / stride)`` output rows
        and columns; an odd total puts the extra row/column at the bottom/right.
    groups : int
        Input and output channels are split into this many independent groups.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        What the padding holds.

    Returns
    -------
    out : ndarray of shape (N, O, Ho, Wo), (O, Ho, Wo) or (Ho, Wo)
        In the dtype NumPy promotes `x`, `weight` and `bias` to.

    Raises
    ------
    ValueError, TypeError
        For a bad argument; the message names it and the value received.

    Notes
    -----
    ``out[n, o, i, j] = bias[o] + sum_{c, p, q} weight[o, c, p, q] *
    x_padded[n, g*C/groups + c, i*sh + p*dh, j*sw + q*dw]`` with ``g`` the group of
    ``o``, and ``Ho = (H + pad_top + pad_bottom - dh*(kH - 1) - 1) // sh + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> conv2d(x, np.ones((3, 3)))
    array([[45., 54.],
           [81., 90.]])
    >>> conv2d(np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3)), padding="same", stride=2).shape
    (2, 4, 4, 4)
    """
    return conv2d_forward(x, weight, bias, stride, padding, dilation, groups, padding_mode)[0]
