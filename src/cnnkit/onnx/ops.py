"""Modules with ONNX's semantics for the operators that :mod:`cnnkit.nn` has no layer for.

Each is an ordinary :class:`cnnkit.nn.Module` with forward and backward, pure NumPy (no
``onnx`` import), so a loaded graph saves to ``.npz`` and runs without the onnx package.
Operators that match a cnnkit layer exactly (Conv, BatchNormalization, Relu, Add, Concat
...) load as that layer instead.
"""

from __future__ import annotations

import math

import numpy as np

from cnnkit import functional as F
from cnnkit._matmul import matmul
from cnnkit._validation import as_float_array
from cnnkit.functional._shapes import pad_index
from cnnkit.nn.graph import _unbroadcast
from cnnkit.nn.module import Module, Parameter

__all__ = [
    "Identity", "Sum", "MatMul", "Gemm", "Softmax", "Pool", "GlobalPool", "LRN", "Flatten",
    "Reshape", "Squeeze", "Unsqueeze", "Clip", "Pad", "Shape", "Gather", "Cast",
    "ConstantOfShape",
]  # fmt: skip


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


class Identity(Module):
    """The input unchanged (ONNX Identity; Dropout in a graph saved for inference).

    Examples
    --------
    >>> import numpy as np
    >>> Identity()(np.arange(3))
    array([0, 1, 2])
    """

    def forward(self, x):
        self._cache = True
        return x

    def backward(self, grad_output):
        self._last_cache()
        return grad_output


class Sum(Module):
    """The sum of any number of broadcast inputs (ONNX Sum, as in ResNet's skip joins).

    Examples
    --------
    >>> import numpy as np
    >>> Sum()(np.ones(2), np.ones(2), np.arange(2.0))
    array([2., 3.])
    """

    def forward(self, *inputs):
        inputs = [np.asarray(x) for x in inputs]
        self._cache = [x.shape for x in inputs]
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total

    def backward(self, grad_output):
        shapes = self._last_cache()
        grads = tuple(_unbroadcast(np.asarray(grad_output), shape) for shape in shapes)
        return grads[0] if len(grads) == 1 else grads


class MatMul(Module):
    """``np.matmul(a, b)`` of two inputs, with broadcast batch axes (ONNX MatMul).

    Examples
    --------
    >>> import numpy as np
    >>> MatMul()(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        self._cache = (a, b)
        return matmul(a, b)

    def backward(self, grad_output):
        a, b = self._last_cache()
        grad = np.asarray(grad_output)
        a2 = a[None, :] if a.ndim == 1 else a  # 1-D operands as matrices: (1, K) and (K, 1)
        b2 = b[:, None] if b.ndim == 1 else b
        matrix_shape = (
            *np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]),
            a2.shape[-2],
            b2.shape[-1],
        )
        g2 = grad.reshape(matrix_shape)  # the output with the 1-D operands' axes put back
        grad_a = matmul(g2, np.swapaxes(b2, -1, -2))
        grad_b = matmul(np.swapaxes(a2, -1, -2), g2)
        grad_a = _unbroadcast(grad_a, a2.shape).reshape(a.shape)
        grad_b = _unbroadcast(grad_b, b2.shape).reshape(b.shape)
        return grad_a, grad_b


class Gemm(Module):
    """``alpha * A' @ B' + beta * C`` with B and C as Parameters (ONNX Gemm).

    A Gemm that is a plain fully connected layer loads as :class:`cnnkit.nn.Linear`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Gemm(np.ones((2, 3), np.float32), None, trans_a=True)
    >>> layer(np.ones((2, 5), np.float32)).shape
    (5, 3)
    """

    def __init__(self, weight, bias=None, alpha=1.0, beta=1.0, trans_a=False, trans_b=False):
        super().__init__()
        self.weight = Parameter(np.array(weight))
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = Parameter(np.array(bias))
        self.alpha, self.beta = float(alpha), float(beta)
        self.trans_a, self.trans_b = bool(trans_a), bool(trans_b)

    def forward(self, a):
        a = as_float_array("x", a)
        if a.ndim != 2:
            raise ValueError(f"Gemm needs a 2-D input, got shape {a.shape}")
        a_ = a.T if self.trans_a else a
        b_ = self.weight.data.T if self.trans_b else self.weight.data
        out = self.alpha * matmul(a_, b_)
        if self.bias is not None:
            out = out + self.beta * self.bias.data
        self._cache = a
        return out.astype(np.result_type(a, self.weight.data), copy=False)

    def backward(self, grad_output):
        a = self._last_cache()
        grad = np.asarray(grad_output)
        a_ = a.T if self.trans_a else a
        b_ = self.weight.data.T if self.trans_b else self.weight.data
        grad_b = self.alpha * matmul(a_.T, grad)  # gradient of B'
        self.weight.accumulate(grad_b.T if self.trans_b else grad_b)
        if self.bias is not None:
            self.bias.accumulate(self.beta * _unbroadcast(grad, self.bias.shape))
        grad_a = self.alpha * matmul(grad, b_.T)
        return grad_a.T if self.trans_a else grad_a

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, trans_a={self.trans_a}, trans_b={self.trans_b}"
        )


class Softmax(Module):
    """Softmax or log-softmax with ONNX's axis rule.

    With `coerce_2d` (opset < 13) the input is flattened to 2-D at `axis` and normalised
    over all the axes from `axis` on; otherwise over `axis` alone.

    Examples
    --------
    >>> import numpy as np
    >>> Softmax(axis=1, coerce_2d=True)(np.zeros((1, 2, 2))).ravel()
    array([0.25, 0.25, 0.25, 0.25])
    """

    def __init__(self, axis=-1, log=False, coerce_2d=False):
        super().__init__()
        self.axis, self.log, self.coerce_2d = int(axis), bool(log), bool(coerce_2d)

    def forward(self, x):
        x = as_float_array("x", x)
        axis = self.axis % max(x.ndim, 1)
        flat = x.reshape(math.prod(x.shape[:axis]), -1) if self.coerce_2d else x
        op = F.log_softmax_forward if self.log else F.softmax_forward
        out, cache = op(flat, -1 if self.coerce_2d else axis)
        self._cache = (x.shape, cache)
        return out.reshape(x.shape)

    def backward(self, grad_output):
        shape, cache = self._last_cache()
        grad = np.asarray(grad_output)
        if self.coerce_2d:
            grad = grad.reshape(math.prod(shape[: self.axis % len(shape)]), -1)
        op = F.log_softmax_backward if self.log else F.softmax_backward
        return op(grad, cache).reshape(shape)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, log={self.log}, coerce_2d={self.coerce_2d}"


def _same_pads(size, kernel, stride, dilation, lower):
    """(before, after) padding of ONNX's SAME_UPPER / SAME_LOWER along one axis."""
    total = max((math.ceil(size / stride) - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


class Pool(Module):
    """2-D max or average pooling with ONNX's attributes (MaxPool, AveragePool).

    Padding may differ on each side (`pads` is ONNX's ``(top, left, bottom, right)``) and
    exceed half the kernel; `auto_pad` is ``"NOTSET"``, ``"VALID"``, ``"SAME_UPPER"`` or
    ``"SAME_LOWER"``. The input is padded explicitly (with -inf for max, zeros for
    average) and pooled by :mod:`cnnkit.functional`; an average divides by the number of
    values each window covers (padding included with `count_include_pad`), as ONNX Runtime
    and PyTorch do.

    Examples
    --------
    >>> import numpy as np
    >>> Pool("max", (3, 3), strides=(2, 2), pads=(0, 0, 1, 1))(np.ones((1, 1, 6, 6))).shape
    (1, 1, 3, 3)
    """

    def __init__(
        self,
        kind,
        kernel_shape,
        strides=(1, 1),
        pads=(0, 0, 0, 0),
        dilations=(1, 1),
        ceil_mode=False,
        count_include_pad=False,
        auto_pad="NOTSET",
    ):
        super().__init__()
        if kind not in ("max", "average"):
            raise ValueError(f"kind must be 'max' or 'average', got {kind!r}")
        self.kind = kind
        self.kernel_shape, self.strides = _ints(kernel_shape), _ints(strides)
        self.pads, self.dilations = _ints(pads), _ints(dilations)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.auto_pad = str(auto_pad)

    def _geometry(self, spatial):
        """Per axis: (before, after, extra past the end for ceil_mode) and the output size."""
        geometry = []
        for axis, (n, k, s, d) in enumerate(
            zip(spatial, self.kernel_shape, self.strides, self.dilations)
        ):
            if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                before, after = _same_pads(n, k, s, d, self.auto_pad == "SAME_LOWER")
            elif self.auto_pad == "VALID":
                before, after = 0, 0
            else:
                before, after = self.pads[axis], self.pads[axis + 2]
            span = n + before + after - d * (k - 1) - 1
            out = (-(-span // s) if self.ceil_mode else span // s) + 1
            if self.ceil_mode and (out - 1) * s >= n + before:
                out -= 1  # the last window must start inside the input or the left padding
            if out < 1:
                raise ValueError(
                    f"{self.kind} pool: kernel {self.kernel_shape} does not fit an input of size {tuple(spatial)}"
                )
            extra = max((out - 1) * s + d * (k - 1) + 1 - (n + before + after), 0)
            geometry.append((before, after, extra))
        return geometry

    def forward(self, x):
        x = as_float_array("x", x)
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} supports 2-D pooling of (N, C, H, W) inputs, got shape {x.shape}"
            )
        geometry = self._geometry(x.shape[2:])
        widths = [(0, 0), (0, 0)] + [(b, a + e) for b, a, e in geometry]
        if self.kind == "max":
            padded = np.pad(x, widths, constant_values=-np.inf) if any(map(any, widths)) else x
            out, cache = F.max_pool2d_forward(
                padded, self.kernel_shape, self.strides, 0, self.dilations
            )
            self._cache = (cache, widths, None)
            return out
        padded = np.pad(x, widths) if any(map(any, widths)) else x
        c = x.shape[1]
        ones = np.ones((c, 1, *self.kernel_shape), x.dtype)
        total, cache = F.conv2d_forward(padded, ones, None, self.strides, 0, self.dilations, c)
        counted = np.zeros((1, 1, *padded.shape[2:]), x.dtype)  # 1 where a value counts
        (bh, _, eh), (bw, _, ew) = geometry
        if self.count_include_pad:
            counted[..., : padded.shape[2] - eh, : padded.shape[3] - ew] = 1
        else:
            counted[..., bh : bh + x.shape[2], bw : bw + x.shape[3]] = 1
        count = F.conv2d(counted, ones[:1], None, self.strides, 0, self.dilations)
        count = np.maximum(count, 1)  # a window wholly in padding averages nothing
        self._cache = (cache, widths, count)
        return total / count

    def backward(self, grad_output):
        cache, widths, count = self._last_cache()
        grad = np.asarray(grad_output)
        if self.kind == "max":
            grad_padded = F.max_pool2d_backward(grad, cache)
        else:
            grad_padded = F.conv2d_backward(grad / count, cache)[0]
        (_, _), (_, _), (top, bottom), (left, right) = widths
        h, w = grad_padded.shape[2:]
        return np.ascontiguousarray(grad_padded[:, :, top : h - bottom, left : w - right])

    def extra_repr(self) -> str:
        return (
            f"{self.kind}, kernel_shape={self.kernel_shape}, strides={self.strides}, "
            f"pads={self.pads}, auto_pad={self.auto_pad!r}"
        )


class GlobalPool(Module):
    """Mean or max over all spatial axes, kept as size-1 axes (GlobalAveragePool, GlobalMaxPool).

    Examples
    --------
    >>> import numpy as np
    >>> GlobalPool("max")(np.arange(8.0).reshape(1, 2, 2, 2)).ravel()
    array([3., 7.])
    """

    def __init__(self, kind):
        super().__init__()
        if kind not in ("max", "average"):
            raise ValueError(f"kind must be 'max' or 'average', got {kind!r}")
        self.kind = kind

    def forward(self, x):
        x = as_float_array("x", x)
        if x.ndim < 3:
            raise ValueError(f"global pooling needs (N, C, ...) inputs, got shape {x.shape}")
        axes = tuple(range(2, x.ndim))
        if self.kind == "average":
            self._cache = (x.shape, None)
            return x.mean(axis=axes, keepdims=True)
        out = x.max(axis=axes, keepdims=True)
        winners = x == out
        self._cache = (x.shape, winners / winners.sum(axis=axes, keepdims=True))  # ties share
        return out

    def backward(self, grad_output):
        shape, share = self._last_cache()
        grad = np.asarray(grad_output)
        if share is None:
            return np.broadcast_to(grad / math.prod(shape[2:]), shape).copy()
        return (grad * share).astype(grad.dtype, copy=False)

    def extra_repr(self) -> str:
        return self.kind


class LRN(Module):
    """Local response normalisation with ONNX's window (``c - (size-1)//2 .. c + size//2``).

    For an odd `size` this is :class:`cnnkit.nn.LocalResponseNorm`, which loading uses.

    Examples
    --------
    >>> import numpy as np
    >>> LRN(2, alpha=2.0, beta=1.0, bias=0.0)(np.ones((1, 2, 1, 1))).ravel()
    array([0.5, 1. ])
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, bias=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.bias = (
            int(size),
            float(alpha),
            float(beta),
            float(bias),
        )

    def forward(self, x):
        window = ((self.size - 1) // 2, self.size // 2)
        out, self._cache = F.norm._local_response_norm_forward(
            x, self.size, self.alpha, self.beta, self.bias, window
        )
        return out

    def backward(self, grad_output):
        return F.local_response_norm_backward(grad_output, self._last_cache())

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, bias={self.bias}"


class _Reshaping(Module):
    """A module whose backward reshapes the gradient back to the input's shape."""

    def backward(self, grad_output):
        shape, inputs = self._last_cache()
        grad = np.asarray(grad_output).reshape(shape)
        return grad if inputs == 1 else (grad,) + (None,) * (inputs - 1)


class Flatten(_Reshaping):
    """To 2-D: axes before `axis` become the rows, the rest the columns (ONNX Flatten).

    Examples
    --------
    >>> import numpy as np
    >>> Flatten(2)(np.zeros((2, 3, 4, 5))).shape
    (6, 20)
    """

    def __init__(self, axis=1):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x):
        x = np.asarray(x)
        axis = self.axis % x.ndim if self.axis < 0 else self.axis
        self._cache = (x.shape, 1)
        return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Reshape(_Reshaping):
    """ONNX Reshape: 0 copies the input's size (unless `allowzero`), -1 is inferred.

    The target shape is fixed (`shape`) or comes as a second input at run time.

    Examples
    --------
    >>> import numpy as np
    >>> Reshape((0, -1))(np.zeros((2, 3, 4))).shape
    (2, 12)
    """

    def __init__(self, shape=None, allowzero=False):
        super().__init__()
        self.shape = None if shape is None else _ints(shape)
        self.allowzero = bool(allowzero)

    def forward(self, x, shape=None):
        x = np.asarray(x)
        target = list(self.shape if shape is None else _ints(np.asarray(shape).ravel()))
        if not self.allowzero:
            target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
        try:
            out = x.reshape(target)
        except ValueError:
            raise ValueError(
                f"Reshape: cannot reshape an input of shape {x.shape} to {tuple(target)}"
            ) from None
        self._cache = (x.shape, 1 if shape is None else 2)
        return out

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Squeeze(_Reshaping):
    """Remove the size-1 `axes` (all of them when None) (ONNX Squeeze).

    Examples
    --------
    >>> import numpy as np
    >>> Squeeze((2, 3))(np.zeros((2, 3, 1, 1))).shape
    (2, 3)
    """

    def __init__(self, axes=None):
        super().__init__()
        self.axes = None if axes is None else _ints(axes)

    def forward(self, x):
        x = np.asarray(x)
        axes = (
            self.axes
            if self.axes is not None
            else tuple(i for i, n in enumerate(x.shape) if n == 1)
        )
        self._cache = (x.shape, 1)
        return np.squeeze(x, axis=tuple(a % x.ndim for a in axes))

    def extra_repr(self) -> str:
        return f"axes={self.axes}"


class Unsqueeze(_Reshaping):
    """Insert size-1 axes at `axes` of the output (ONNX Unsqueeze).

    Examples
    --------
    >>> import numpy as np
    >>> Unsqueeze((0, 3))(np.zeros((2, 3))).shape
    (1, 2, 3, 1)
    """

    def __init__(self, axes):
        super().__init__()
        self.axes = _ints(axes)

    def forward(self, x):
        x = np.asarray(x)
        rank = x.ndim + len(self.axes)
        self._cache = (x.shape, 1)
        return np.expand_dims(x, tuple(sorted(a % rank for a in self.axes)))

    def extra_repr(self) -> str:
        return f"axes={self.axes}"


class Clip(Module):
    """Values limited to ``[min, max]`` (either may be None); gradient passes inside (ONNX Clip).

    Examples
    --------
    >>> import numpy as np
    >>> Clip(0.0, 6.0)(np.array([-1.0, 3.0, 9.0]))
    array([0., 3., 6.])
    """

    def __init__(self, min=None, max=None):
        super().__init__()
        self.min = None if min is None else float(min)
        self.max = None if max is None else float(max)

    def forward(self, x):
        x = np.asarray(x)
        low = -np.inf if self.min is None else self.min
        high = np.inf if self.max is None else self.max
        self._cache = (x >= low) & (x <= high)
        return np.clip(x, low, high).astype(x.dtype, copy=False)

    def backward(self, grad_output):
        inside = self._last_cache()
        return np.asarray(grad_output) * inside

    def extra_repr(self) -> str:
        return f"min={self.min}, max={self.max}"


_PAD_MODES = {"constant": None, "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


class Pad(Module):
    """Pad each axis by ``pads = (begin_0, begin_1, ..., end_0, end_1, ...)`` (ONNX Pad).

    `mode` is ``"constant"`` (with `value`), ``"reflect"``, ``"edge"`` or ``"wrap"``;
    negative pads crop.

    Examples
    --------
    >>> import numpy as np
    >>> Pad((0, 1, 0, 2), value=9.0)(np.zeros((1, 1)))
    array([[9., 0., 9., 9.]])
    """

    def __init__(self, pads, mode="constant", value=0.0):
        super().__init__()
        if mode not in _PAD_MODES:
            raise ValueError(f"Pad mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
        self.pads, self.mode, self.value = _ints(pads), mode, float(value)

    def forward(self, x):
        x = np.asarray(x)
        if len(self.pads) != 2 * x.ndim:
            raise ValueError(f"Pad: pads {self.pads} do not fit an input of shape {x.shape}")
        rank = x.ndim
        sources, insides = [], []
        for size, before, after in zip(x.shape, self.pads[:rank], self.pads[rank:]):
            positions = np.arange(-before, size + after)  # a negative pad starts inside: a crop
            mode = _PAD_MODES[self.mode]
            if mode is None or size == 0:
                sources.append(np.clip(positions, 0, max(size - 1, 0)))
                insides.append((positions >= 0) & (positions < size))
            else:
                grown = pad_index(size, max(before, 0), max(after, 0), mode)
                offset = max(before, 0) - before
                sources.append(grown[offset : offset + len(positions)])
                insides.append(np.ones(len(positions), bool))
        grids = np.ix_(*sources)
        inside = np.ones((), bool)
        for axis, mask in enumerate(insides):  # np.ix_ would read booleans as a selection
            inside = inside & mask.reshape((-1,) + (1,) * (rank - axis - 1))
        if x.size:
            out = np.where(inside, x[grids], np.asarray(self.value, x.dtype))
        else:
            out = np.full([len(i) for i in sources], self.value, x.dtype)
        self._cache = (x.shape, grids, inside)
        return out

    def backward(self, grad_output):
        shape, grids, inside = self._last_cache()
        grad = np.asarray(grad_output) * inside
        result = np.zeros(shape, grad.dtype)
        np.add.at(result, grids, grad)
        return result

    def extra_repr(self) -> str:
        return f"pads={self.pads}, mode={self.mode!r}, value={self.value}"


class Shape(Module):
    """The input's shape as an int64 vector, sliced ``[start:end]`` (ONNX Shape).

    Examples
    --------
    >>> import numpy as np
    >>> Shape()(np.zeros((2, 3)))
    array([2, 3])
    """

    def __init__(self, start=0, end=None):
        super().__init__()
        self.start, self.end = int(start), None if end is None else int(end)

    def forward(self, x):
        self._cache = np.shape(x)
        return np.array(np.shape(x)[self.start : self.end], np.int64)

    def backward(self, grad_output):
        return np.zeros(self._last_cache(), np.float32)  # a shape does not depend on values


class Gather(Module):
    """``np.take(data, indices, axis)``, indices fixed or a second input (ONNX Gather).

    Examples
    --------
    >>> import numpy as np
    >>> Gather(np.array([2, 0]), axis=0)(np.array([5, 6, 7]))
    array([7, 5])
    """

    def __init__(self, indices=None, axis=0):
        super().__init__()
        self.indices = None if indices is None else np.array(indices, np.int64)
        self.axis = int(axis)

    def forward(self, data, indices=None):
        data = np.asarray(data)
        inputs = 1 if indices is None else 2
        indices = np.asarray(self.indices if indices is None else indices, np.int64)
        axis = self.axis % data.ndim
        indices = np.where(indices < 0, indices + data.shape[axis], indices)
        self._cache = (data.shape, data.dtype, indices, axis, inputs)
        return np.take(data, indices, axis=axis)

    def backward(self, grad_output):
        shape, _, indices, axis, inputs = self._last_cache()
        grad = np.asarray(grad_output)
        result = np.zeros(shape, grad.dtype)
        moved = np.moveaxis(result, axis, 0)  # a view: scatter along the first axis
        np.add.at(
            moved,
            indices,
            np.moveaxis(grad, tuple(range(axis, axis + indices.ndim)), tuple(range(indices.ndim))),
        )
        return result if inputs == 1 else (result, None)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Cast(Module):
    """The input converted to `dtype` (ONNX Cast); gradients flow between float types only.

    Examples
    --------
    >>> import numpy as np
    >>> Cast("int64")(np.array([1.7, -2.2]))
    array([ 1, -2])
    """

    def __init__(self, dtype):
        super().__init__()
        self.dtype = np.dtype(dtype).name

    def forward(self, x):
        x = np.asarray(x)
        self._cache = x.dtype
        return x.astype(self.dtype)

    def backward(self, grad_output):
        dtype = self._last_cache()
        if dtype.kind != "f" or np.dtype(self.dtype).kind != "f":
            return None
        return np.asarray(grad_output).astype(dtype)

    def extra_repr(self) -> str:
        return f"dtype={self.dtype!r}"


class ConstantOfShape(Module):
    """An array of the shape given as input, filled with `value` (ONNX ConstantOfShape).

    Examples
    --------
    >>> import numpy as np
    >>> ConstantOfShape(1.5)(np.array([2, 2]))
    array([[1.5, 1.5],
           [1.5, 1.5]], dtype=float32)
    """

    def __init__(self, value=0.0, dtype="float32"):
        super().__init__()
        self.value, self.dtype = value, np.dtype(dtype).name

    def forward(self, shape):
        self._cache = True
        return np.full(_ints(np.asarray(shape).ravel()), self.value, self.dtype)

    def backward(self, grad_output):
        return None

    def extra_repr(self) -> str:
        return f"value={self.value}, dtype={self.dtype!r}"
