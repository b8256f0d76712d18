"""2-D convolution (cross-correlation): forward and backward.

Six strategies, chosen per call by :func:`_strategy`, share the validation, the
padding rules (``_conv_geometry``) and the output's (N, O, Ho, Wo) shape:

- "im2col" (any stride, any groups; ``_conv_gemm``): the padded input is copied
  channels-last into an ``(N, Hp, Wp, C)`` buffer; each chunk of output rows gathers
  its windows into an ``(M, groups, kH*kW*C/groups)`` matrix, in one strided copy
  (one per kernel offset for a single channel), which meets the weights in one
  (batched) GEMM.
- "rows" (stride 1, no groups; ``_conv_gemm``): on the same buffer, every padded-grid
  position is computed, so each kernel row becomes one GEMM over a contiguous slice of
  the kW column shifts of the input; the positions off the output are dropped (chosen
  where they are under a tenth of the grid).
- "pointwise" (1x1 kernels, stride 1, no padding, no groups; ``_conv_gemm``): the input
  is the windows matrix, read as it lies: one GEMM for channels-last or channel-major
  (C, N*H*W) memory (one planar sample), one per sample of a planar batch (on the
  thread pool); the output comes in the same layout.
- "planar" (no groups, few values per window: first layers, image-like inputs;
  ``_conv_planar``): the input stays channels-first; each band of output rows gathers
  its windows as a (C*kH*kW, rows*Wo) matrix of whole image rows, and one GEMM writes
  (O, N, Ho, Wo).
- "depthwise" (one input and one output channel per group, which includes the plain
  (H, W) matrix; ``_conv_depthwise``): blocks of whole planes (or row bands) that stay
  in the cache, each padded on its own; per channel, kW shifted copies of the block
  times the kernel in one small GEMM, the kernel rows' sums added up. The output keeps
  the input's layout (channels-first, or channels-last); spread over the thread pool.
- "interleaved" (depthwise with one kernel shared by all channels of a channels-last
  input, zero padding, column stride 1: a colour image filtered by
  :func:`cnnkit.filter2d`; ``_conv_depthwise``): the ``(N, H, W, C)`` memory is the
  ``(N, H, W*C)`` matrix, filtered in one depthwise pass with the kernel's columns C
  apart. Backward is the depthwise one.

im2col and rows store ``(N, Ho, Wo, O)`` and return an ``(N, O, Ho, Wo)`` view, so the
next layer's channels-last copy is free. Workspaces are chunked to
``_shapes.WORKSPACE_BYTES``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from cnnkit._validation import as_float_array, check_grad_shape, output_size
from cnnkit._workspace import scratch
from cnnkit.functional import _conv_depthwise as depthwise
from cnnkit.functional import _conv_gemm as gemm
from cnnkit.functional import _conv_planar as planar
from cnnkit.functional._conv_geometry import (
    Geometry,
    copy_channels_last,
    pad,
    validate,
)
from cnnkit.functional._shapes import add_batch_axes, from_batch

__all__ = ["conv2d", "conv2d_forward", "conv2d_backward", "conv2d_output_size"]

# Windows of at most this many values (C*kH*kW: first layers, few channels) are gathered
# plane by plane, with the window index as the GEMM's short inner dimension.
PLANAR_MAX_WINDOW = 32

_FORWARD = {
    "im2col": gemm.im2col_forward,
    "rows": gemm.rows_forward,
    "pointwise": gemm.pointwise_forward,
    "planar": planar.planar_forward,
    "depthwise": depthwise.depthwise_forward,
    "interleaved": depthwise.interleaved_forward,
}
# forwards that take the bias and add it block by block
_ADDS_BIAS = ("im2col", "rows", "pointwise", "depthwise")
# forwards that keep their windows for the backward unless told none will follow
_KEEPS_WINDOWS = ("im2col", "rows", "planar")
_BACKWARD = {
    "im2col": gemm.im2col_backward,
    "rows": gemm.rows_backward,
    "pointwise": gemm.pointwise_backward,
    "planar": planar.planar_backward,
    "depthwise": depthwise.depthwise_backward,
    "interleaved": depthwise.depthwise_backward,  # per-channel weight gradients
}


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
    stride : int or (int, int)
        Step between windows, >= 1.
    padding : int, (int, int), "valid" or "same"
        Rows/columns added on each side. "same" gives ``ceil(H / stride)`` output rows
        and columns; an odd total puts the extra row/column at the bottom/right.
    dilation : int or (int, int)
        Spacing between kernel taps, >= 1.
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
    return _forward(x, weight, bias, stride, padding, dilation, groups, padding_mode, keep=False)[0]


def conv2d_forward(
    x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    """Forward pass of :func:`conv2d`: its output and the cache :func:`conv2d_backward` needs.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), (C, H, W) or (H, W)
        Input. Integer and bool inputs are computed in float32.
    weight : ndarray of shape (O, C/groups, kH, kW), or (kH, kW) for a plain (H, W) `x`
        Kernels.
    bias : ndarray of shape (O,), optional
        Added to each output channel.
    stride, padding, dilation, groups, padding_mode : int, tuple or str
        As in :func:`conv2d`.

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
    return _forward(x, weight, bias, stride, padding, dilation, groups, padding_mode, keep=True)


def _forward(x, weight, bias, stride, padding, dilation, groups, padding_mode, *, keep):
    """(out, cache); with `keep` false no backward follows: the engines keep no windows
    and pad into the workspace, and the cache is None."""
    xb, weight, bias, g, rank = validate(
        x, weight, bias, stride, padding, dilation, groups, padding_mode
    )
    dtype = np.result_type(xb, weight, *([] if bias is None else [bias]))
    weight = weight.astype(dtype, copy=False)
    strategy = _strategy(g, xb, weight)
    ho, wo = g.out_size
    if strategy == "interleaved":  # one plane, channels-last as the input
        source = xb.astype(dtype, copy=False)
        out = np.empty((g.batch, ho, wo, g.out_channels), dtype=dtype)
    elif strategy == "depthwise":  # plane by plane, padded band by band
        source = xb.astype(dtype, copy=False)
        if depthwise.channels_last_output(g, source):
            out = np.empty((g.batch, ho, wo, g.out_channels), dtype=dtype)
        else:
            out = np.empty((g.batch, g.out_channels, ho, wo), dtype=dtype).transpose(0, 2, 3, 1)
    elif strategy == "pointwise":  # the input, as it lies in memory, is the windows
        source = gemm.pointwise_source(xb.astype(dtype, copy=False))
        out = gemm.pointwise_output(source, g, dtype)
    elif strategy == "planar":  # padded band by band; the GEMM writes (O, N, Ho, Wo)
        source = xb.astype(dtype, copy=False)
        out = np.empty((g.out_channels, g.batch, ho, wo), dtype=dtype).transpose(1, 2, 3, 0)
    else:
        source = pad(xb, g, dtype, gemm.rows_tail(g) if strategy == "rows" else 0, keep=keep)
        out = np.empty((g.batch, ho, wo, g.out_channels), dtype=dtype)
    bias = None if bias is None else bias.astype(dtype, copy=False)
    engine = _FORWARD[strategy]
    if strategy in _KEEPS_WINDOWS:
        engine = functools.partial(engine, keep=keep)
    if strategy in _ADDS_BIAS:  # while each block of the output is in the cache
        workspace = engine(source, weight, g, out, bias)
    else:
        workspace = engine(source, weight, g, out)
        if bias is not None:
            out += bias
    out = from_batch(out.transpose(0, 3, 1, 2), rank)  # (N, O, Ho, Wo)
    if not keep:
        return out, None
    return out, _ConvCache(g, rank, strategy, source, weight, bias is not None, workspace)


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
        Gradient with respect to `x`.
    grad_weight : ndarray, the shape of `weight`
        Gradient with respect to `weight`.
    grad_bias : ndarray of shape (O,), or None when the forward had no bias
        Gradient with respect to `bias` (shape (1,) for the plain-matrix form).

    Examples
    --------
    >>> x, weight = np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2))
    >>> out, cache = conv2d_forward(x, weight, np.zeros(1))
    >>> grad_x, grad_weight, grad_bias = conv2d_backward(np.ones_like(out), cache)
    >>> grad_x[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> grad_weight[0, 0], grad_bias
    (array([[ 8., 12.],
           [20., 24.]]), array([4.]))
    """
    g: Geometry = cache.geometry
    ho, wo = g.out_size
    grad_output = as_float_array("grad_output", grad_output)
    # the shape from_batch gave the output
    check_grad_shape(grad_output, (g.batch, g.out_channels, ho, wo)[4 - cache.rank :])
    dtype = cache.source.dtype
    grad = add_batch_axes(grad_output, cache.rank)  # (N, O, Ho, Wo)
    grad = grad.transpose(0, 2, 3, 1)  # (N, Ho, Wo, O) view
    layout = gemm.pointwise_layout(cache.source) if cache.strategy == "pointwise" else None
    if cache.strategy in ("depthwise", "interleaved"):  # the depthwise engine's layout
        grad = depthwise.gradient_layout(grad, g, dtype)
    elif cache.strategy == "planar" or layout == "channel_major":  # (O, N, Ho, Wo) memory
        grad = np.ascontiguousarray(grad.transpose(3, 0, 1, 2), dtype=dtype).transpose(1, 2, 3, 0)
    elif layout == "planar":  # (N, O, Ho, Wo) memory, as the forward wrote it
        grad = np.ascontiguousarray(grad.transpose(0, 3, 1, 2), dtype=dtype).transpose(0, 2, 3, 1)
    else:
        converted = scratch("conv.grad", grad.shape, dtype)  # used within this call only
        grad = copy_channels_last(converted, grad.transpose(0, 3, 1, 2))
    dx, dweight = _BACKWARD[cache.strategy](
        cache.source, cache.weight, g, cache.workspace, grad
    )  # (N, H, W, C) view, (O, C/G, kH, kW)
    dx = dx.transpose(0, 3, 1, 2)
    dbias = grad.sum(axis=(0, 1, 2)) if cache.has_bias else None
    if cache.rank == 2:
        return dx[0, 0], dweight[0, 0], dbias
    return from_batch(dx, cache.rank), dweight, dbias


def conv2d_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output size of a convolution along one axis (PyTorch's formula).

    Parameters
    ----------
    size : int
        Input size along the axis, >= 1.
    kernel_size, stride : int
        Each >= 1.
    padding : int
        Added on each side, >= 0.
    dilation : int
        Spacing between kernel taps, >= 1.

    Returns
    -------
    int
        ``(size + 2*padding - dilation*(kernel_size - 1) - 1) // stride + 1``, >= 1.

    Raises
    ------
    ValueError
        A bad argument, or a kernel that does not fit in the padded input.

    Examples
    --------
    >>> conv2d_output_size(6, 3, stride=3)
    2
    """
    return output_size(size, kernel_size, stride, padding, dilation)


def _strategy(g: Geometry, x: np.ndarray, weight: np.ndarray) -> str:
    """How to compute: see the module docstring."""
    if g.depthwise:
        return "interleaved" if depthwise.interleaved_applies(x, weight, g) else "depthwise"
    if gemm.pointwise_applies(g):
        return "pointwise"
    (ho, wo), (hp, wp), (kh, kw) = g.out_size, g.padded, g.kernel
    if g.groups == 1 and g.channels * kh * kw <= PLANAR_MAX_WINDOW and ho * wo >= 256:
        return "planar"
    # rows computes every padded-grid position: past a tenth more than the outputs, one
    # im2col GEMM over the outputs alone is faster (32x32 images with padding 1: 13 %)
    wasted = hp * wp > 1.1 * ho * wo
    few_inputs = 2 * kw * g.channels < g.out_channels  # rows' GEMMs too thin for its output
    if g.stride != (1, 1) or g.groups != 1 or (kh, kw) == (1, 1) or wasted or few_inputs:
        return "im2col"
    return "rows"


@dataclass
class _ConvCache:
    geometry: Geometry
    rank: int
    strategy: str  # a key of _FORWARD
    source: np.ndarray  # channels-first engines: the input (N, C, H, W); GEMM ones: pad's
    weight: np.ndarray  # (O, C/groups, kH, kW) in the compute dtype
    has_bias: bool
    workspace: np.ndarray | None  # the gathered windows, kept when they fit in one chunk
