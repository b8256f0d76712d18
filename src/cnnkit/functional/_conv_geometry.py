"""Convolution geometry and padding: the arguments checked once, the padded layouts.

:class:`Geometry` holds everything about a convolution except the numbers flowing
through it; :func:`validate` builds it from the user's arguments. The helpers below
pad the input (a whole channels-last buffer, or band by band), fold a padded gradient
back, cut the work into workspace-sized blocks and view the input seen by one kernel
offset. The engines in ``_conv_gemm`` and ``_conv_planar`` share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cnnkit._threads import blocks, parallel
from cnnkit._validation import (
    as_float_array,
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
    output_size,
)
from cnnkit._workspace import scratch
from cnnkit.functional import _shapes
from cnnkit.functional._shapes import as_batch, pad_index

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class Geometry:
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
    def fits(self) -> bool:
        """Whether the dilated kernel fits in the padded input."""
        spans = (d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel))
        return all(span <= size for span, size in zip(spans, self.padded))

    @cached_property
    def out_size(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        return (
            output_size(self.height, kh, sh, (top, bottom), dh),
            output_size(self.width, kw, sw, (left, right), dw),
        )

    @property
    def depthwise(self) -> bool:
        return self.groups == self.channels == self.out_channels


def check_padding(padding):
    """The padding argument checked: "valid", "same", or a pair of ints >= 0."""
    if isinstance(padding, str):
        return check_choice("padding", padding, ("valid", "same"))
    return check_nonnegative("padding", padding)


def resolve_padding(padding, size, kernel, stride, dilation) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for a padding checked by :func:`check_padding`."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads += [total // 2, total - total // 2]  # the odd one goes bottom/right
        return tuple(pads)
    ph, pw = padding
    return (ph, ph, pw, pw)


def validate(x, weight, bias, stride, padding, dilation, groups, padding_mode):
    """Check every argument; return the batched arrays, the geometry and the input rank."""
    x = as_float_array("x", x)
    xb, rank = as_batch("x", x)  # the input's rank first: a bad x is x's fault
    weight = as_float_array("weight", weight)
    bias = as_float_array("bias", bias, allow_none=True)
    if rank == 2:
        if weight.ndim != 2:
            raise ValueError(
                f"a plain (H, W) matrix x needs a (kH, kW) weight, got weight of shape {weight.shape}"
            )
        weight = weight[None, None]  # (1, 1, kH, kW)
        if bias is not None and bias.size != 1:
            raise ValueError(f"bias for a plain matrix must hold one value, got shape {bias.shape}")
    elif weight.ndim != 4:
        raise ValueError(
            f"weight must have shape (out_channels, in_channels/groups, kH, kW), got shape {weight.shape}"
        )
    groups = check_positive_int("groups", groups)
    n, c, h, w = xb.shape
    o, cg, kh, kw = weight.shape
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel size must be >= 1, got weight of shape {weight.shape}")
    if o < 1:
        raise ValueError(f"weight must have at least one output channel, got shape {weight.shape}")
    if c % groups or o % groups:
        raise ValueError(f"groups={groups} must divide both in_channels={c} and out_channels={o}")
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
    padding = check_padding(padding)
    padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
    if h < 1 or w < 1:
        raise ValueError(f"x must have a non-empty image, got shape {x.shape}")
    pads = resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
    geometry = Geometry(n, c, h, w, o, (kh, kw), stride, dilation, pads, groups, padding_mode)
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
    if not geometry.fits:
        raise ValueError(_too_small(geometry, padding))
    return xb, weight, bias, geometry, rank


def _too_small(g: Geometry, padding) -> str:
    """The message for an image smaller than the kernel, in the caller's terms."""
    (kh, kw), (dh, dw), (hp, wp) = g.kernel, g.dilation, g.padded
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    message = f"image is {g.height}×{g.width}"
    if any(g.pads):
        message += f" ({hp}×{wp} with padding {padding!r})"
    kernel = f"a {kh}×{kw} kernel"
    if g.dilation != (1, 1):
        kernel += f" with dilation {g.dilation}"
    more = "more padding" if any(g.pads) else "padding"
    return f"{message}; {kernel} needs at least {span_h}×{span_w} pixels, or {more}"


def pad(x: np.ndarray, g: Geometry, dtype, tail: int = 0, *, keep: bool = True) -> np.ndarray:
    """Copy `x` (N, C, H, W) into a padded channels-last buffer, flat: (N*Hp*Wp + tail, C).

    The `tail` zero pixels past the last image let the "rows" strategy read a little
    beyond it; :func:`grid` gives the (N, Hp, Wp, C) view. The buffer is new when `keep`
    (the backward reads it), else this thread's reused workspace.
    """
    top, bottom, left, right = g.pads
    hp, wp = g.padded
    h, w = g.height, g.width
    shape = (g.batch * hp * wp + tail, g.channels)
    storage = np.empty(shape, dtype=dtype) if keep else scratch("conv.padded", shape, dtype)
    storage[g.batch * hp * wp :] = 0
    xp = grid(storage, g)
    copy_channels_last(xp[:, top : top + h, left : left + w], x)
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


def _channels_per_copy(plane_bytes: int, channels: int) -> int:
    """How many channels one transposing copy reads at a time (measured on x86 servers).

    Each channel read is a stream through its own plane. Small planes make few enough
    streams to read all at once; planes a multiple of 4 KiB apart map to the same cache
    sets, and large planes to many pages, where eight at a time is several times faster.
    """
    if plane_bytes % 4096 == 0 or plane_bytes > 65536:
        return 8
    return channels if plane_bytes <= 16384 else 16


def copy_channels_last(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """target (N, H, W, C) = source (N, C, H, W); returns target.

    From channels-first memory a plain transposing copy reads one value per cache line;
    a few channels at a time (:func:`_channels_per_copy`) it reads whole lines. Blocks
    of rows are copied on the thread pool.
    """
    n, c, h, w = source.shape
    step = _channels_per_copy(source.strides[1], c)

    def copy(rows):
        (r0, r1), part = rows, source[:, :, rows[0] : rows[1]]
        if source.strides[1] <= source.strides[3]:  # already channels-last, or nearly
            target[:, r0:r1] = part.transpose(0, 2, 3, 1)
            return
        for c0 in range(0, c, step):
            target[:, r0:r1, :, c0 : c0 + step] = part[:, c0 : c0 + step].transpose(0, 2, 3, 1)

    parallel(copy, blocks(h, n * w * c * source.itemsize))
    return target


def grid(storage: np.ndarray, g: Geometry) -> np.ndarray:
    """The (N, Hp, Wp, C) view of a flat padded buffer from :func:`_pad`, without its tail."""
    hp, wp = g.padded
    return storage[: g.batch * hp * wp].reshape(g.batch, hp, wp, g.channels)


def padded_band(x: np.ndarray, g: Geometry, n0, n1, r0, r1) -> np.ndarray:
    """Padded rows r0..r1 of samples n0..n1, channels-first in memory: an (n, R, Wp, C) view
    (of this thread's workspace with zero padding: valid within the current call)."""
    top, bottom, left, right = g.pads
    h, w = g.height, g.width
    if g.padding_mode == "zeros":  # in this thread's workspace: a view valid in this call
        band = scratch("padded_band", (n1 - n0, g.channels, r1 - r0, g.padded[1]), x.dtype)
        band.fill(0)
        s0, s1 = max(r0, top), min(r1, top + h)  # the band's rows that hold input rows
        if s1 > s0:
            band[:, :, s0 - r0 : s1 - r0, left : left + w] = x[n0:n1, :, s0 - top : s1 - top]
    else:
        rows = pad_index(h, top, bottom, g.padding_mode)[r0:r1]
        cols = pad_index(w, left, right, g.padding_mode)
        band = x[n0:n1].take(rows, axis=2).take(cols, axis=3)  # (n, C, R, Wp)
    return band.transpose(0, 2, 3, 1)


def fold_band(dband: np.ndarray, dx: np.ndarray, g: Geometry, r0: int) -> None:
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
    np.add.at(dcols, (slice(None), slice(None), cols[border_cols]), dband[:, :, border_cols])  # type: ignore[arg-type]
    if s1 > s0:
        dx[:, s0 - top : s1 - top] += dcols[:, s0 - r0 : s1 - r0]
    padded_rows = np.arange(r0, r0 + count)
    border = (padded_rows < top) | (padded_rows >= top + h)
    rows = pad_index(h, top, bottom, g.padding_mode)[padded_rows[border]]
    np.add.at(dx, (slice(None), rows), dcols[:, border])  # type: ignore[arg-type]


def unpad(dxp: np.ndarray, g: Geometry) -> np.ndarray:
    """Adjoint of :func:`pad`: the gradient of the unpadded input, (N, H, W, C)."""
    top, _, left, _ = g.pads
    if g.padding_mode == "zeros":
        return dxp[:, top : top + g.height, left : left + g.width]
    dx = np.zeros((g.batch, g.height, g.width, g.channels), dtype=dxp.dtype)
    fold_band(dxp, dx, g, 0)
    return dx


def chunks(g: Geometry, bytes_per_row: int, budget: int | None = None, *, span=None, halo=0):
    """Blocks ``(n0, n1, h0, h1)`` of rows whose workspace stays within `budget`.

    A block is either several whole samples (rows 0 to `span`, by default the output
    height), or output rows h0..h1 of one sample; `halo` rows of workspace come with
    each block.
    """
    ho, _ = g.out_size
    span = ho if span is None else span
    budget = _shapes.WORKSPACE_BYTES if budget is None else budget
    rows = max(1, budget // max(bytes_per_row, 1))
    if rows >= span + halo:
        samples = max(1, (rows - halo) // span)
        for n0 in range(0, g.batch, samples):
            yield n0, min(n0 + samples, g.batch), 0, span
    else:
        for n0 in range(g.batch):
            for h0 in range(0, ho, rows):
                yield n0, n0 + 1, h0, min(h0 + rows, ho)


def window(xp, g: Geometry, i, j, n0, n1, h0, h1):
    """The input seen by kernel offset (i, j) for output rows h0..h1: (n, h1-h0, Wo, C) view."""
    (sh, sw), (dh, dw) = g.stride, g.dilation
    _, wo = g.out_size
    top = i * dh + h0 * sh
    left = j * dw
    return xp[n0:n1, top : top + sh * (h1 - h0 - 1) + 1 : sh, left : left + sw * (wo - 1) + 1 : sw]


def windows(xp, g: Geometry, n0, n1, h0, h1):
    """Every kernel offset's :func:`window` at once, read-only: (n, h1-h0, Wo, G, kH, kW, C/G)."""
    (sh, sw), (dh, dw), (kh, kw) = g.stride, g.dilation, g.kernel
    _, wo = g.out_size
    cg = g.channels // g.groups
    base = xp[n0:n1, h0 * sh :]
    sn, sy, sx, sc = base.strides
    return np.lib.stride_tricks.as_strided(
        base,
        (n1 - n0, h1 - h0, wo, g.groups, kh, kw, cg),
        (sn, sy * sh, sx * sw, sc * cg, sy * dh, sx * dw, sc),
        writeable=False,
    )


def bands(g: Geometry, bytes_per_row: int, budget: int | None = None):
    """Blocks of output rows within `budget`, with the padded rows each reads."""
    (kh, _), (sh, _), (dh, _) = g.kernel, g.stride, g.dilation
    for n0, n1, h0, h1 in chunks(g, bytes_per_row, budget):
        yield n0, n1, h0, h1, h0 * sh, (h1 - 1) * sh + (kh - 1) * dh + 1
