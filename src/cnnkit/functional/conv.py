"""2-D convolution (cross-correlation): forward and backward.

Four strategies, chosen per call by :func:`_strategy`, share the validation, the
padding rules and the output's (N, O, Ho, Wo) shape:

- "im2col" (any stride, any groups): the padded input is copied channels-last into an
  ``(N, Hp, Wp, C)`` buffer; each chunk of output rows gathers its windows into an
  ``(M, groups, kH*kW*C/groups)`` matrix, one strided copy per kernel offset, which
  meets the weights in one (batched) GEMM.
- "rows" (stride 1, no groups): on the same buffer, every padded-grid position is
  computed, so each kernel row becomes one GEMM over a contiguous slice of the kW
  column shifts of the input; the few positions off the output are dropped.
- "planar" (no groups, few values per window: first layers, image-like inputs): the
  input stays channels-first; each band of output rows gathers its windows as a
  (C*kH*kW, rows*Wo) matrix of whole image rows, and one GEMM writes (O, N, Ho, Wo).
- "depthwise" (one input and one output channel per group, which includes the plain
  (H, W) matrix and image filtering): bands of output rows, each padded on its own so
  no padded copy of the input is made, gather each channel's kH*kW windows, and one
  batched GEMV takes every channel's sum of products.

im2col and rows store ``(N, Ho, Wo, O)`` and return an ``(N, O, Ho, Wo)`` view, so the
next layer's channels-last copy is free. Workspaces are chunked to ``WORKSPACE_BYTES``.
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

# Windows of at most this many values (C*kH*kW: first layers, few channels) are gathered
# plane by plane, with the window index as the GEMM's short inner dimension.
PLANAR_MAX_WINDOW = 32


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
    strategy: str  # "im2col", "rows", "planar" or "depthwise"
    source: np.ndarray  # planar, depthwise: the input (N, C, H, W); else _pad's (N*Hp*Wp + tail, C)
    weight: np.ndarray  # (O, C/groups, kH, kW) in the compute dtype
    has_bias: bool
    workspace: np.ndarray | None  # the gathered windows, kept when they fit in one chunk


def conv2d_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output size of a convolution along one axis (PyTorch's formula).

    Examples
    --------
    >>> conv2d_output_size(6, 3, stride=3)
    2
    """
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def resolve_padding(padding, size, kernel, stride, dilation):
    """(top, bottom, left, right) for an int, a pair, "valid" or "same"; bad values raise."""
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
    pads = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
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


def _pad(x: np.ndarray, g: _Geometry, dtype, tail: int = 0) -> np.ndarray:
    """Copy `x` (N, C, H, W) into a padded channels-last buffer, flat: (N*Hp*Wp + tail, C).

    The `tail` zero pixels past the last image let the "rows" strategy read a little
    beyond it; :func:`_grid` gives the (N, Hp, Wp, C) view.
    """
    top, bottom, left, right = g.pads
    hp, wp = g.padded
    h, w = g.height, g.width
    storage = np.empty((g.batch * hp * wp + tail, g.channels), dtype=dtype)
    storage[g.batch * hp * wp :] = 0
    xp = _grid(storage, g)
    _copy_channels_last(xp[:, top : top + h, left : left + w], x)
    if g.padding_mode == "zeros":
        xp[:, :top] = 0
        xp[:, top + h :] = 0
        xp[:, top : top + h, :left] = 0
        xp[:, top : top + h, left + w :] = 0
        return storage
    rows = pad_index(h, top, bottom, g.padding_mode) + top
    cols = pad_index(w, left, right, g.padding_mode) + left
    border_cols = np.r_[0:left, left + w : wp]
    xp[:, top : top + h, border_cols] = xp[:, top : top + h, cols[border_cols]]
    border_rows = np.r_[0:top, top + h : hp]
    xp[:, border_rows] = xp[:, rows[border_rows]]
    return storage


def _copy_channels_last(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """target (N, H, W, C) = source (N, C, H, W); returns target.

    From channels-first memory a plain transposing copy reads one value per cache line;
    eight channels at a time it reads whole lines and is about four times faster.
    """
    if source.strides[1] <= source.strides[3]:  # already channels-last, or nearly
        target[...] = source.transpose(0, 2, 3, 1)
        return target
    for c0 in range(0, source.shape[1], 8):
        target[..., c0 : c0 + 8] = source[:, c0 : c0 + 8].transpose(0, 2, 3, 1)
    return target


def _grid(storage: np.ndarray, g: _Geometry) -> np.ndarray:
    """The (N, Hp, Wp, C) view of a flat padded buffer from :func:`_pad`, without its tail."""
    hp, wp = g.padded
    return storage[: g.batch * hp * wp].reshape(g.batch, hp, wp, g.channels)


def _padded_band(x: np.ndarray, g: _Geometry, n0, n1, r0, r1) -> np.ndarray:
    """Padded rows r0..r1 of samples n0..n1, channels-first in memory: an (n, R, Wp, C) view."""
    top, bottom, left, right = g.pads
    h, w = g.height, g.width
    if g.padding_mode == "zeros":
        band = np.zeros((n1 - n0, g.channels, r1 - r0, g.padded[1]), dtype=x.dtype)
        s0, s1 = max(r0, top), min(r1, top + h)  # the band's rows that hold input rows
        if s1 > s0:
            band[:, :, s0 - r0 : s1 - r0, left : left + w] = x[n0:n1, :, s0 - top : s1 - top]
    else:
        rows = pad_index(h, top, bottom, g.padding_mode)[r0:r1]
        cols = pad_index(w, left, right, g.padding_mode)
        band = x[n0:n1].take(rows, axis=2).take(cols, axis=3)  # (n, C, R, Wp)
    return band.transpose(0, 2, 3, 1)


def _fold_band(dband: np.ndarray, dx: np.ndarray, g: _Geometry, r0: int) -> None:
    """Adjoint of the padding: add the gradient of padded rows r0.. (n, R, Wp, C) into dx (n, H, W, C)."""
    top, bottom, left, right = g.pads
    h, w = g.height, g.width
    count = dband.shape[1]
    s0, s1 = max(r0, top), min(r0 + count, top + h)  # padded rows that are input rows
    if g.padding_mode == "zeros":
        if s1 > s0:
            dx[:, s0 - top : s1 - top] += dband[:, s0 - r0 : s1 - r0, left : left + w]
        return
    cols = pad_index(w, left, right, g.padding_mode)
    border_cols = np.r_[0:left, left + w : g.padded[1]]
    dcols = dband[:, :, left : left + w].copy(order="K")  # (n, R, W, C)
    np.add.at(dcols, (slice(None), slice(None), cols[border_cols]), dband[:, :, border_cols])
    if s1 > s0:
        dx[:, s0 - top : s1 - top] += dcols[:, s0 - r0 : s1 - r0]
    padded_rows = np.arange(r0, r0 + count)
    border = (padded_rows < top) | (padded_rows >= top + h)
    rows = pad_index(h, top, bottom, g.padding_mode)[padded_rows[border]]
    np.add.at(dx, (slice(None), rows), dcols[:, border])


def _unpad(dxp: np.ndarray, g: _Geometry) -> np.ndarray:
    """Adjoint of :func:`_pad`: the gradient of the unpadded input, (N, H, W, C)."""
    top, _, left, _ = g.pads
    if g.padding_mode == "zeros":
        return dxp[:, top : top + g.height, left : left + g.width]
    dx = np.zeros((g.batch, g.height, g.width, g.channels), dtype=dxp.dtype)
    _fold_band(dxp, dx, g, 0)
    return dx


def _chunks(g: _Geometry, bytes_per_row: int, budget: int | None = None, *, span=None, halo=0):
    """Blocks ``(n0, n1, h0, h1)`` of rows whose workspace stays within `budget`.

    A block is either several whole samples (rows 0 to `span`, by default the output
    height), or output rows h0..h1 of one sample; `halo` rows of workspace come with
    each block.
    """
    ho, _ = g.out_size
    span = ho if span is None else span
    budget = WORKSPACE_BYTES if budget is None else budget
    rows = max(1, budget // max(bytes_per_row, 1))
    if rows >= span + halo:
        samples = max(1, (rows - halo) // span)
        for n0 in range(0, g.batch, samples):
            yield n0, min(n0 + samples, g.batch), 0, span
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
            cols[..., i, j, :] = window.reshape((*window.shape[:3], g.groups, cg))
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


def _strategy(g: _Geometry) -> str:
    """How to compute: see the module docstring."""
    if g.depthwise:
        return "depthwise"
    (ho, wo), (hp, wp), (kh, kw) = g.out_size, g.padded, g.kernel
    if g.groups == 1 and g.channels * kh * kw <= PLANAR_MAX_WINDOW and ho * wo >= 256:
        return "planar"
    wasted = hp * wp > 2 * ho * wo  # rows computes every padded-grid position
    few_inputs = 2 * kw * g.channels < g.out_channels  # rows' GEMMs too thin for its output
    if g.stride != (1, 1) or g.groups != 1 or (kh, kw) == (1, 1) or wasted or few_inputs:
        return "im2col"
    return "rows"


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
    strategy = _strategy(g)
    ho, wo = g.out_size
    if strategy == "depthwise":  # plane by plane, padded band by band
        source = xb.astype(dtype, copy=False)
        if g.channels > 1 and source.transpose(0, 2, 3, 1).flags.c_contiguous:
            out = np.empty((g.batch, ho, wo, g.out_channels), dtype=dtype)  # as the input
        else:
            out = np.empty((g.batch, g.out_channels, ho, wo), dtype=dtype).transpose(0, 2, 3, 1)
    elif strategy == "planar":  # padded band by band; the GEMM writes (O, N, Ho, Wo)
        source = xb.astype(dtype, copy=False)
        out = np.empty((g.out_channels, g.batch, ho, wo), dtype=dtype).transpose(1, 2, 3, 0)
    else:
        source = _pad(xb, g, dtype, _rows_tail(g) if strategy == "rows" else 0)
        out = np.empty((g.batch, ho, wo, g.out_channels), dtype=dtype)
    forward = {
        "depthwise": _depthwise_forward,
        "planar": _planar_forward,
        "rows": _rows_forward,
        "im2col": _im2col_forward,
    }
    workspace = forward[strategy](source, weight, g, out)
    if bias is not None:
        out += bias.astype(dtype, copy=False)
    cache = _ConvCache(g, rank, strategy, source, weight, bias is not None, workspace)
    return from_batch(out.transpose(0, 3, 1, 2), rank), cache  # (N, O, Ho, Wo)


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
    expected = (g.batch, g.out_channels, ho, wo)[4 - cache.rank :]  # the shape from_batch gives
    grad_output = as_float_array("grad_output", grad_output)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have shape {expected}, got shape {grad_output.shape}")
    dtype = cache.source.dtype
    grad = add_batch_axes(grad_output, cache.rank)  # (N, O, Ho, Wo)
    grad = grad.transpose(0, 2, 3, 1)  # (N, Ho, Wo, O) view
    if cache.strategy == "depthwise":  # planar (N, C, Ho, Wo) memory
        grad = np.ascontiguousarray(grad.transpose(0, 3, 1, 2), dtype=dtype).transpose(0, 2, 3, 1)
    elif cache.strategy == "planar":  # (O, N, Ho, Wo) memory, as the forward wrote it
        grad = np.ascontiguousarray(grad.transpose(3, 0, 1, 2), dtype=dtype).transpose(1, 2, 3, 0)
    else:
        grad = _copy_channels_last(np.empty(grad.shape, dtype=dtype), grad.transpose(0, 3, 1, 2))
    backward = {
        "depthwise": _depthwise_backward,
        "planar": _planar_backward,
        "rows": _rows_backward,
        "im2col": _im2col_backward,
    }
    dx, dweight = backward[cache.strategy](cache, grad)  # (N, H, W, C) view, (O, C/G, kH, kW)
    dx = dx.transpose(0, 3, 1, 2)
    dbias = grad.sum(axis=(0, 1, 2)) if cache.has_bias else None
    if cache.rank == 2:
        return dx[0, 0], dweight[0, 0], dbias
    return from_batch(dx, cache.rank), dweight, dbias


# -- im2col: any stride and groups --------------------------------------------------------


def _im2col_forward(flat, weight, g: _Geometry, out):
    """One GEMM per chunk of output rows over its gathered windows; returns them if one chunk."""
    xp = _grid(flat, g)
    wmat = _weight_matrix(weight, g)  # (G, K, O/G)
    _, wo = g.out_size
    blocks = list(_chunks(g, wo * g.groups * wmat.shape[1] * flat.itemsize))
    for n0, n1, h0, h1 in blocks:
        cols = _im2col(xp, g, n0, n1, h0, h1)  # (M, G, K)
        out_block = out[n0:n1, h0:h1].reshape(-1, g.out_channels)  # (M, O) view
        if g.groups == 1:
            np.matmul(cols[:, 0], wmat[0], out=out_block)
        else:
            # (G, M, K) @ (G, K, O/G) -> (G, M, O/G) -> (M, G, O/G)
            product = np.matmul(cols.transpose(1, 0, 2), wmat)
            out_block.reshape(-1, g.groups, product.shape[2])[...] = product.transpose(1, 0, 2)
    return cols if len(blocks) == 1 else None


def _im2col_backward(cache, grad):
    g: _Geometry = cache.geometry
    xp, weight = _grid(cache.source, g), cache.weight
    dflat = np.zeros_like(cache.source)
    dxp = _grid(dflat, g)
    wmat = _weight_matrix(weight, g)  # (G, K, O/G)
    k, og = wmat.shape[1], wmat.shape[2]
    dwmat = np.zeros_like(wmat)
    _, wo = g.out_size
    for n0, n1, h0, h1 in _chunks(g, wo * g.groups * k * xp.itemsize):
        cols = cache.workspace  # kept by the forward when it was one chunk, as here
        if cols is None:
            cols = _im2col(xp, g, n0, n1, h0, h1)
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
    dweight = dwmat.reshape(g.groups, kh, kw, cg, og).transpose(0, 4, 3, 1, 2).reshape(o, cg, kh, kw)
    return _unpad(dxp, g), dweight


# -- rows: stride 1, no groups --------------------------------------------------------------
#
# At stride 1, output pixel p of the padded grid (flat index n*Hp*Wp + h*Wp + w) sums
# flat[p + i*dh*Wp + j*dw] @ W[:, :, i, j] over the kernel. Computing every grid position
# (the few with w >= Wo or h >= Ho are discarded) turns each kernel row i into one GEMM
# over a contiguous slice of a (P, kW, C) buffer holding the kW column shifts: kW cheap
# contiguous copies of the input instead of kH*kW strided ones.


def _rows_tail(g: _Geometry) -> int:
    """Pixels read past the last image by the last grid position's kernel."""
    (kh, kw), (dh, dw) = g.kernel, g.dilation
    return (kh - 1) * dh * g.padded[1] + (kw - 1) * dw


def _rows_blocks(g: _Geometry, itemsize: int):
    """Blocks ``(n0, n1, h0, h1)``: whole images (all Hp grid rows), or output rows of one.

    The same for forward and backward, whose workspace per grid row is at most the
    shifted input and its gradient (kW*C each) and the output and its gradient (O each).
    """
    halo = (g.kernel[0] - 1) * g.dilation[0]
    bytes_per_grid_row = g.padded[1] * 2 * (g.kernel[1] * g.channels + g.out_channels) * itemsize
    return _chunks(g, bytes_per_grid_row, span=g.padded[0], halo=halo)


def _block_span(g: _Geometry, n0, n1, h0, h1) -> tuple[int, int]:
    """First flat pixel of a block and its number of grid positions."""
    hp, wp = g.padded
    return (n0 * hp + h0) * wp, ((n1 - n0 - 1) * hp + (h1 - h0)) * wp


def _shifted_rows(flat, g: _Geometry, n0, n1, h0, h1) -> np.ndarray:
    """(count + halo, kW, C): the block's pixels shifted by each kernel column j."""
    (_, wp), (kh, kw), (dh, dw) = g.padded, g.kernel, g.dilation
    start, count = _block_span(g, n0, n1, h0, h1)
    length = count + (kh - 1) * dh * wp
    shifted = np.empty((length, kw, g.channels), dtype=flat.dtype)
    for j in range(kw):
        shifted[:, j] = flat[start + j * dw : start + j * dw + length]
    return shifted


def _rows_forward(flat, weight, g: _Geometry, out):
    (_, wp), (ho, wo), (kh, kw), (dh, _) = g.padded, g.out_size, g.kernel, g.dilation
    o, c = g.out_channels, g.channels
    # (O, C, kH, kW) -> (kH, kW*C, O)
    wrows = np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).reshape(kh, kw * c, o)
    blocks = list(_rows_blocks(g, flat.itemsize))
    for n0, n1, h0, h1 in blocks:
        shifted = _shifted_rows(flat, g, n0, n1, h0, h1)
        _, count = _block_span(g, n0, n1, h0, h1)
        acc = shifted[:count].reshape(count, kw * c) @ wrows[0]  # (count, O)
        product = np.empty_like(acc)
        for i in range(1, kh):
            offset = i * dh * wp
            np.matmul(shifted[offset : offset + count].reshape(count, kw * c), wrows[i], out=product)
            acc += product
        valid = min(h1, ho) - h0
        out[n0:n1, h0 : h0 + valid] = acc.reshape(n1 - n0, h1 - h0, wp, o)[:, :valid, :wo]
    return shifted if len(blocks) == 1 else None


def _rows_backward(cache, grad):
    g: _Geometry = cache.geometry
    flat, weight = cache.source, cache.weight
    (_, wp), (ho, wo), (kh, kw), (dh, dw) = g.padded, g.out_size, g.kernel, g.dilation
    o, c = g.out_channels, g.channels
    wrows = np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).reshape(kh, kw * c, o)
    wtaps = np.ascontiguousarray(weight.transpose(2, 3, 0, 1))  # (kH, kW, O, C)
    dwrows = np.zeros_like(wrows)
    dflat = np.zeros_like(flat)
    blocks = list(_rows_blocks(g, flat.itemsize))
    for n0, n1, h0, h1 in blocks:
        start, count = _block_span(g, n0, n1, h0, h1)
        shifted = cache.workspace  # kept by the forward when it was one block, as here
        if shifted is None:
            shifted = _shifted_rows(flat, g, n0, n1, h0, h1)
        valid = min(h1, ho) - h0
        grad_grid = np.zeros((n1 - n0, h1 - h0, wp, o), dtype=flat.dtype)  # 0 off the outputs
        grad_grid[:, :valid, :wo] = grad[n0:n1, h0 : h0 + valid]
        grad_grid = grad_grid.reshape(count, o)
        for i in range(kh):
            offset = i * dh * wp
            dwrows[i] += shifted[offset : offset + count].reshape(count, kw * c).T @ grad_grid
            # (count, O) @ (kW, O, C) -> (kW, count, C): contiguous per kernel column
            dshifted = np.matmul(grad_grid, wtaps[i])
            for j in range(kw):
                begin = start + offset + j * dw
                dflat[begin : begin + count] += dshifted[j]
    # (kH, kW*C, O) -> (kH, kW, C, O) -> (O, C, kH, kW)
    return _unpad(_grid(dflat, g), g), dwrows.reshape(kh, kw, c, o).transpose(3, 2, 0, 1)


# -- planar: few channels (first layers, image-like inputs) ---------------------------------


def _planar_blocks(g: _Geometry, itemsize: int) -> list:
    """The bands of both passes: the windows and, backward, their gradient, per output row."""
    bytes_per_row = 2 * g.channels * g.kernel[0] * g.kernel[1] * g.out_size[1] * itemsize
    return list(_bands(g, bytes_per_row, WORKSPACE_BYTES))


def _planar_forward(x, weight, g: _Geometry, out):
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


def _planar_backward(cache, grad):
    g: _Geometry = cache.geometry
    x, weight = cache.source, cache.weight
    (kh, kw), (_, wo) = g.kernel, g.out_size
    wmat = weight.reshape(g.out_channels, -1)  # (O, K)
    dwmat = np.zeros_like(wmat)
    dx = np.zeros(x.shape, dtype=x.dtype).transpose(0, 2, 3, 1)  # (N, H, W, C) view, planar
    planar_grad = grad.transpose(3, 0, 1, 2)  # (O, N, Ho, Wo), contiguous
    for n0, n1, h0, h1, r0, r1 in _planar_blocks(g, x.itemsize):
        n, rows = n1 - n0, h1 - h0
        windows = cache.workspace  # kept by the forward when it was one band, as here
        if windows is None:
            _, windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1, samples_first=False)
        grad_block = planar_grad[:, n0:n1, h0:h1].reshape(g.out_channels, -1)  # (O, M)
        dwmat += grad_block @ windows.T
        # (K, O) @ (O, M) -> (C, kH*kW, n, rows, Wo): each window's gradient
        dwindows = (wmat.T @ grad_block).reshape(g.channels, kh * kw, n, rows, wo)
        dband = np.zeros((n, g.channels, r1 - r0, g.padded[1]), dtype=x.dtype).transpose(0, 2, 3, 1)
        for tap in range(kh * kw):
            window = _window(dband, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
            window += dwindows[:, tap].transpose(1, 2, 3, 0)
        _fold_band(dband, dx[n0:n1], g, r0)
    return dx, dwmat.reshape(weight.shape)


# -- depthwise: one input and one output channel per group ----------------------------------


def _bands(g: _Geometry, bytes_per_row: int, budget: int):
    """Blocks of output rows within `budget`, with the padded rows each reads."""
    (kh, _), (sh, _), (dh, _) = g.kernel, g.stride, g.dilation
    for n0, n1, h0, h1 in _chunks(g, bytes_per_row, budget):
        yield n0, n1, h0, h1, h0 * sh, (h1 - 1) * sh + (kh - 1) * dh + 1


def _band_windows(x, g: _Geometry, n0, n1, h0, h1, r0, r1, *, samples_first: bool):
    """A band's padded input, (n, R, Wp, C), and its kH*kW windows, gathered planar.

    The windows come as (n, C, kH*kW, rows*Wo) with `samples_first` (depthwise), else as
    (C*kH*kW, n*rows*Wo) (the planar GEMM's right-hand side).
    """
    (kh, kw), (_, wo) = g.kernel, g.out_size
    band = _padded_band(x, g, n0, n1, r0, r1)  # view of planar memory
    n, rows = n1 - n0, h1 - h0
    if samples_first:
        windows = np.empty((n, g.channels, kh * kw, rows, wo), dtype=x.dtype)
        for tap in range(kh * kw):
            window = _window(band, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
            windows[:, :, tap] = window.transpose(0, 3, 1, 2)
        return band, windows.reshape(n, g.channels, kh * kw, rows * wo)
    windows = np.empty((g.channels, kh * kw, n, rows, wo), dtype=x.dtype)
    for tap in range(kh * kw):
        window = _window(band, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
        windows[:, tap] = window.transpose(3, 0, 1, 2)
    return band, windows.reshape(g.channels * kh * kw, n * rows * wo)


def _depthwise_forward(x, weight, g: _Geometry, out):
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
    for n0, n1, h0, h1, r0, r1 in _bands(g, bytes_per_row, WORKSPACE_BYTES):
        _, windows = _band_windows(x, g, n0, n1, h0, h1, r0, r1, samples_first=True)
        n, rows = n1 - n0, h1 - h0
        if planar_out:  # whole planes, or rows of one sample's planes: a (n, C, 1, rows*Wo) view
            target = planar[n0:n1, :, h0:h1].reshape(n, g.channels, 1, rows * wo)
            np.matmul(taps, windows, out=target)
        else:
            product = np.matmul(taps, windows).reshape(n, g.channels, rows, wo)
            out[n0:n1, h0:h1] = product.transpose(0, 2, 3, 1)
    return None


def _depthwise_backward(cache, grad):
    """dw[c] = windows[c] . g[c] (batched GEMV); dx: each window's share, added back in place."""
    g: _Geometry = cache.geometry
    x, weight = cache.source, cache.weight
    (kh, kw), (_, wo) = g.kernel, g.out_size
    taps = weight[:, 0].reshape(g.channels, kh * kw, 1)  # (C, T, 1)
    dtaps = np.zeros((g.channels, kh * kw, 1), dtype=x.dtype)
    dx = np.zeros(x.shape, dtype=x.dtype).transpose(0, 2, 3, 1)  # (N, H, W, C) view, planar
    planar_grad = grad.transpose(0, 3, 1, 2)  # (N, C, Ho, Wo), planar memory
    bytes_per_row = (2 * kh * kw + 1) * wo * g.channels * x.itemsize
    for n0, n1, h0, h1, r0, r1 in _bands(g, bytes_per_row, WORKSPACE_BYTES):
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
            window = _window(dband, g, *divmod(tap, kw), 0, n, 0, rows)  # (n, rows, Wo, C)
            window += shares[:, :, tap].transpose(0, 2, 3, 1)
        _fold_band(dband, dx[n0:n1], g, r0)
    return dx, dtaps.reshape(g.channels, 1, kh, kw)


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
