"""How one layer computed one value: the real numbers behind a cell of a map.

:func:`explain` takes a layer, the input it received and the output it gave (without the
batch axis) and one output position, and returns the numbers the detail view shows: for
a convolution the window in each input channel, the kernel, each channel's partial sum,
the bias and the total; for the other layers the formula's operands. Sums are taken in
float64; the layer's own float32 value is returned beside them (as ``value``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["explain", "window_geometry"]

#: How many of a linear layer's inputs the detail view lists by contribution.
TOP_CONTRIBUTIONS = 12


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[1]))
    return (int(value), int(value))


def window_geometry(module, input_shape) -> dict | None:
    """Kernel, stride, dilation and (top, bottom, left, right) padding of a sliding layer.

    None for a layer that does not slide a window (a linear layer, an activation).
    """
    from cnnkit.functional._conv_geometry import resolve_padding

    kind = type(module).__name__
    if kind == "Conv2d":
        kernel, stride, dilation = module.kernel_size, module.stride, module.dilation
        padding = resolve_padding(module.padding, input_shape[-2:], kernel, stride, dilation)
    elif kind in ("MaxPool2d", "AvgPool2d"):
        kernel = _pair(module.kernel_size)
        stride = kernel if module.stride is None else _pair(module.stride)
        dilation = _pair(getattr(module, "dilation", 1))
        ph, pw = _pair(module.padding)
        padding = (ph, ph, pw, pw)
    else:
        return None
    return {
        "kernel": list(kernel),
        "stride": list(stride),
        "dilation": list(dilation),
        "padding": list(padding),
    }


def _window(plane_stack, geometry, y, x, mode="zeros", fill=0.0):
    """Values under the window of output cell (y, x) in each plane, and which are inside.

    Returns ``(values (C, kh, kw), inside (kh, kw) bool, origin (row, col))`` with
    `origin` the window's top-left in unpadded input coordinates (negative in padding).
    """
    from cnnkit.functional._shapes import pad_index

    (kh, kw), (sh, sw), (dh, dw) = geometry["kernel"], geometry["stride"], geometry["dilation"]
    top, bottom, left, right = geometry["padding"]
    _, height, width = plane_stack.shape
    rows = y * sh - top + np.arange(kh) * dh
    cols = x * sw - left + np.arange(kw) * dw
    inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    if mode == "zeros":
        source_rows, source_cols = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
    else:  # reflect, replicate, circular: padding positions read from inside the input
        source_rows = pad_index(height, top, bottom + kh * dh, mode)[rows + top]
        source_cols = pad_index(width, left, right + kw * dw, mode)[cols + left]
    values = plane_stack[:, source_rows[:, None], source_cols[None, :]].astype(np.float64)
    if mode == "zeros":
        values = np.where(inside[None], values, fill)
    return values, inside, [int(rows[0]), int(cols[0])]


def _conv(module, x, out, position):
    k, y, col = position
    geometry = window_geometry(module, x.shape)
    per_group = module.in_channels // module.groups
    group = k // (module.out_channels // module.groups)
    channels = list(range(group * per_group, (group + 1) * per_group))
    windows, inside, origin = _window(x[channels], geometry, y, col, module.padding_mode)
    kernel = module.weight.data[k].astype(np.float64)  # (C/groups, kh, kw)
    partial = (windows * kernel).sum(axis=(1, 2))  # (C/groups,)
    bias = 0.0 if module.bias is None else float(module.bias.data[k])
    return {
        "kind": "conv",
        "geometry": {
            **geometry,
            "input_shape": list(x.shape),
            "output_shape": list(out.shape),
            "padding_mode": module.padding_mode,
            "origin": origin,
        },
        "channels": channels,
        "windows": windows.tolist(),
        "inside": inside.tolist(),
        "kernel": kernel.tolist(),
        "partial_sums": partial.tolist(),
        "sum": float(partial.sum()),
        "bias": bias,
        "total": float(partial.sum() + bias),
    }


def _pool(module, x, out, position):
    k, y, col = position
    kind = type(module).__name__
    geometry = window_geometry(module, x.shape)
    fill = -np.inf if kind == "MaxPool2d" else 0.0
    windows, inside, origin = _window(x[k : k + 1], geometry, y, col, fill=fill)
    values = windows[0]
    result = {
        "geometry": {
            **geometry,
            "input_shape": list(x.shape),
            "output_shape": list(out.shape),
            "origin": origin,
        },
        "channels": [k],
        "windows": np.where(inside, values, 0.0).tolist(),
        "inside": inside.tolist(),
    }
    if kind == "MaxPool2d":
        masked = np.where(inside, values, -np.inf)
        winner = np.unravel_index(int(np.argmax(masked)), masked.shape)
        return {
            **result,
            "kind": "maxpool",
            "argmax": [int(winner[0]), int(winner[1])],
            "total": float(masked[winner]),
        }
    # PyTorch's divisor: the window clipped to the padded input, or to the input itself.
    (kh, kw), (ph, _, pw, _) = geometry["kernel"], geometry["padding"]
    sizes = []
    for start, k_, p, n in ((origin[0], kh, ph, x.shape[1]), (origin[1], kw, pw, x.shape[2])):
        end = min(start + k_, n + p)
        sizes.append(end - start if module.count_include_pad else min(end, n) - max(start, 0))
    divisor = sizes[0] * sizes[1]
    total = float(values[inside].sum())
    return {
        **result,
        "kind": "avgpool",
        "sum": total,
        "divisor": int(divisor),
        "count_include_pad": bool(module.count_include_pad),
        "total": total / divisor,
    }


def _elementwise(module, x, out, position):
    kind = type(module).__name__
    value = float(x[position])
    result = {"kind": "elementwise", "input": value}
    if kind == "ReLU":
        return {**result, "formula": "max(0, x)", "total": max(0.0, value)}
    if kind == "LeakyReLU":
        slope = float(module.negative_slope)
        return {
            **result,
            "formula": "x if x > 0 else slope * x",
            "slope": slope,
            "total": value if value > 0 else slope * value,
        }
    if kind == "Sigmoid":
        return {**result, "formula": "1 / (1 + exp(-x))", "total": float(1 / (1 + np.exp(-value)))}
    if kind == "Dropout":
        return {
            **result,
            "formula": "x (evaluation mode: dropout passes values through)",
            "total": value,
        }
    return {**result, "formula": f"{kind}(x)", "total": float(out[position])}


def _batch_norm(module, x, out, position):
    k = position[0]
    mean, var = float(module.running_mean[k]), float(module.running_var[k])
    gamma, beta, eps = float(module.weight.data[k]), float(module.bias.data[k]), float(module.eps)
    value = float(x[position])
    normalised = (value - mean) / np.sqrt(var + eps)
    return {
        "kind": "batchnorm",
        "input": value,
        "running_mean": mean,
        "running_var": var,
        "eps": eps,
        "weight": gamma,
        "bias": beta,
        "normalised": float(normalised),
        "total": float(normalised * gamma + beta),
    }


def _global_pool(module, x, out, position):
    k = position[0]
    plane = x[k].astype(np.float64)
    return {
        "kind": "globalpool",
        "input_shape": list(x.shape),
        "sum": float(plane.sum()),
        "count": int(plane.size),
        "total": float(plane.mean()),
    }


def _linear(module, x, out, position):
    k = position[0]
    inputs = x.astype(np.float64).ravel()
    weights = module.weight.data[k].astype(np.float64)
    contributions = weights * inputs
    order = np.argsort(-np.abs(contributions), kind="stable")
    top = order[:TOP_CONTRIBUTIONS]
    bias = 0.0 if module.bias is None else float(module.bias.data[k])
    return {
        "kind": "linear",
        "contributions": [
            {
                "index": int(i),
                "input": float(inputs[i]),
                "weight": float(weights[i]),
                "product": float(contributions[i]),
            }
            for i in top
        ],
        "others": {
            "count": int(len(order) - len(top)),
            "sum": float(contributions[order[TOP_CONTRIBUTIONS:]].sum()),
        },
        "bias": bias,
        "total": float(contributions.sum() + bias),
    }


def _flatten(module, x, out, position):
    source = np.unravel_index(position[0], x.shape)
    return {
        "kind": "flatten",
        "source": [int(s) for s in source],
        "input_shape": list(x.shape),
        "total": float(x[source]),
    }


def _softmax(module, x, out, position):
    if x.ndim != 1:
        return _elementwise(module, x, out, position)
    z = x.astype(np.float64)
    shift = float(z.max())
    exps = np.exp(z - shift)
    k = position[0]
    return {
        "kind": "softmax",
        "logits": z.tolist(),
        "max": shift,
        "exps": exps.tolist(),
        "sum": float(exps.sum()),
        "index": k,
        "total": float(exps[k] / exps.sum()),
    }


#: A graph's two-operand nodes (ONNX Add, Sub, Mul, Div) and their symbols.
BINARY_SYMBOLS = {"Add": "+", "Sub": "−", "Mul": "×", "Div": "/"}

#: Layer type -> the function explaining one of its values.
_EXPLAINERS = {
    "Conv2d": _conv,
    "MaxPool2d": _pool,
    "AvgPool2d": _pool,
    "ReLU": _elementwise,
    "LeakyReLU": _elementwise,
    "Sigmoid": _elementwise,
    "Dropout": _elementwise,
    "BatchNorm2d": _batch_norm,
    "GlobalAvgPool2d": _global_pool,
    "Linear": _linear,
    "Flatten": _flatten,
    "Softmax": _softmax,
}


def explain(module, x: np.ndarray, out: np.ndarray, position: tuple) -> dict:
    """The numbers behind ``out[position]`` for `module` applied to `x` (no batch axis).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit import nn
    >>> relu = nn.ReLU()
    >>> x = np.array([[[-1.0, 2.0]]], np.float32)
    >>> explain(relu, x, relu(x), (0, 0, 1))["total"]
    2.0
    """
    explainer = _EXPLAINERS.get(type(module).__name__)
    if explainer is None:
        if x.shape == out.shape:
            return {
                "kind": "elementwise",
                "input": float(x[position]),
                "formula": f"{type(module).__name__}(x)",
                "total": float(out[position]),
            }
        return {"kind": "other", "total": float(out[position])}
    return explainer(module, x, out, position)
