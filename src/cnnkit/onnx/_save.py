"""Write a cnnkit model as an ONNX graph: one table, module type -> exporter.

The model runs once on a zero input of the given shape, module by module, so that each
exporter sees the actual input and output arrays of its module (their shapes, and the
values of shape arithmetic); containers (Sequential, Residual, Concat, Graph) only wire
their children's outputs together.
"""

from __future__ import annotations

import json
import os

import numpy as np

from cnnkit import nn
from cnnkit._validation import to_pair
from cnnkit.functional._conv_geometry import resolve_padding
from cnnkit.onnx import ops
from cnnkit.onnx._load import METADATA_KEY

MIN_OPSET = 17


class _Exporter:
    """Collects nodes and initializers with unique value names."""

    def __init__(self, opset):
        self.opset, self.nodes, self.initializers, self.taken = opset, [], [], set()

    def fresh(self, base: str) -> str:
        base = base.replace("/", "_") or "value"
        name, count = base, 1
        while name in self.taken:
            count += 1
            name = f"{base}_{count}"
        self.taken.add(name)
        return name

    def const(self, array, base: str) -> str:
        from onnx import numpy_helper

        name = self.fresh(base)
        self.initializers.append(
            numpy_helper.from_array(np.array(array, order="C"), name)
        )  # 0-d stays 0-d
        return name

    def node(self, op_type: str, inputs, base: str, **attributes) -> str:
        from onnx import helper

        output = self.fresh(base)
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [output], name=output, **attributes)
        )
        return output

    def ints(self, values, base: str) -> str:
        return self.const(np.asarray(values, np.int64).reshape(-1), base)

    # -- walking the model ------------------------------------------------------------
    def emit(self, module, prefix: str, args):
        """Export `module` applied to `args` [(value name, array)]; return (name, array)."""
        for kind, container in _CONTAINERS:
            if type(module) is kind:
                return container(self, module, prefix, args)
        exporter = _LEAVES.get(type(module))
        if exporter is None:
            raise TypeError(
                f"cannot export {prefix or 'the model'}: a {type(module).__name__} has no ONNX "
                f"form (cnnkit exports its own layers, Sequential, branches and Graph)"
            )
        saved = module._cache
        out = module(*(value for _, value in args))
        object.__setattr__(module, "_cache", saved)  # exporting leaves a pending backward intact
        name = exporter(
            self,
            module,
            prefix or type(module).__name__.lower(),
            [n for n, _ in args],
            [v for _, v in args],
            out,
        )
        return name, out


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _sequential(ex, module, prefix, args):
    for name, layer in module._modules.items():
        args = [ex.emit(layer, _join(prefix, name), args)]
    return args[0]


def _residual(ex, module, prefix, args):
    body = ex.emit(module.body, _join(prefix, "body"), args)
    skip = (
        args[0]
        if module.shortcut is None
        else ex.emit(module.shortcut, _join(prefix, "shortcut"), args)
    )
    return ex.node("Add", [body[0], skip[0]], _join(prefix, "add")), body[1] + skip[1]


def _concat(ex, module, prefix, args):
    outputs = [
        ex.emit(branch, _join(prefix, name), args) for name, branch in module._modules.items()
    ]
    axis = module.axis % outputs[0][1].ndim
    name = ex.node("Concat", [n for n, _ in outputs], _join(prefix, "cat"), axis=axis)
    return name, np.concatenate([v for _, v in outputs], axis=axis)


def _graph(ex, module, prefix, args):
    values = {module.input: args[0]}
    for name, child, inputs in module.nodes():
        values[name] = ex.emit(child, _join(prefix, name), [values[i] for i in inputs])
    return values[module.output]


_CONTAINERS = (
    (nn.Sequential, _sequential),
    (nn.Residual, _residual),
    (nn.Concat, _concat),
    (nn.Graph, _graph),
)


# -- leaves: (exporter, module, prefix, input names, input arrays, output array) -> name --
def _conv2d(ex, m, prefix, names, values, out):
    x = names[0]
    kernel = m.kernel_size
    pads = resolve_padding(
        m.padding, values[0].shape[2:], kernel, m.stride, m.dilation
    )  # t, b, l, r
    if m.padding_mode != "zeros":
        mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[m.padding_mode]
        if mode == "wrap" and ex.opset < 19:
            raise ValueError(
                f"cannot export {prefix}: padding_mode='circular' needs opset 19 or later"
            )
        top, bottom, left, right = pads
        x = ex.node(
            "Pad",
            [x, ex.ints([0, 0, top, left, 0, 0, bottom, right], _join(prefix, "pads"))],
            _join(prefix, "pad"),
            mode=mode,
        )
        pads = (0, 0, 0, 0)
    inputs = [x, ex.const(m.weight.data, _join(prefix, "weight"))]
    if m.bias is not None:
        inputs.append(ex.const(m.bias.data, _join(prefix, "bias")))
    return ex.node(
        "Conv",
        inputs,
        prefix,
        kernel_shape=list(kernel),
        strides=list(m.stride),
        dilations=list(m.dilation),
        group=m.groups,
        pads=[pads[0], pads[2], pads[1], pads[3]],
    )


def _linear(ex, m, prefix, names, values, out):
    inputs = [names[0], ex.const(m.weight.data, _join(prefix, "weight"))]
    if m.bias is not None:
        inputs.append(ex.const(m.bias.data, _join(prefix, "bias")))
    return ex.node("Gemm", inputs, prefix, transB=1)


def _batch_norm(ex, m, prefix, names, values, out):
    inputs = [names[0]] + [
        ex.const(a, _join(prefix, key))
        for key, a in (
            ("weight", m.weight.data),
            ("bias", m.bias.data),
            ("running_mean", m.running_mean),
            ("running_var", m.running_var),
        )
    ]
    return ex.node(
        "BatchNormalization", inputs, prefix, epsilon=float(m.eps), momentum=1.0 - float(m.momentum)
    )


def _pool_attributes(kernel, stride, padding, dilation=1):
    kernel = to_pair("kernel_size", kernel)
    stride = kernel if stride is None else to_pair("stride", stride)
    ph, pw = to_pair("padding", padding)
    attributes = dict(kernel_shape=list(kernel), strides=list(stride), pads=[ph, pw, ph, pw])
    if to_pair("dilation", dilation) != (1, 1):
        attributes["dilations"] = list(to_pair("dilation", dilation))
    return attributes


def _max_pool(ex, m, prefix, names, values, out):
    return ex.node(
        "MaxPool",
        names,
        prefix,
        ceil_mode=int(m.ceil_mode),
        **_pool_attributes(m.kernel_size, m.stride, m.padding, m.dilation),
    )


def _avg_pool(ex, m, prefix, names, values, out):
    return ex.node(
        "AveragePool",
        names,
        prefix,
        ceil_mode=int(m.ceil_mode),
        count_include_pad=int(m.count_include_pad),
        **_pool_attributes(m.kernel_size, m.stride, m.padding),
    )


def _global_avg_pool(ex, m, prefix, names, values, out):
    if values[0].ndim != 4:
        raise ValueError(
            f"cannot export {prefix}: GlobalAvgPool2d is exported for (N, C, H, W) inputs"
        )
    pooled = ex.node("GlobalAveragePool", names, _join(prefix, "pool"))
    return ex.node("Flatten", [pooled], prefix, axis=1)  # cnnkit gives (N, C)


def _local_response_norm(ex, m, prefix, names, values, out):
    if m.size % 2 == 0:
        raise ValueError(
            f"cannot export {prefix}: ONNX's LRN centres an even window differently "
            f"from PyTorch's (size={m.size}); use an odd size"
        )
    return ex.node("LRN", names, prefix, size=m.size, alpha=m.alpha, beta=m.beta, bias=m.k)


def _channel_shuffle(ex, m, prefix, names, values, out):
    shape = values[0].shape
    c, spatial = shape[1], list(shape[2:])
    grouped = ex.node(
        "Reshape",
        [names[0], ex.ints([0, m.groups, c // m.groups, *spatial], _join(prefix, "grouped"))],
        _join(prefix, "split"),
    )
    perm = [0, 2, 1, *range(3, 3 + len(spatial))]
    swapped = ex.node("Transpose", [grouped], _join(prefix, "swap"), perm=perm)
    return ex.node("Reshape", [swapped, ex.ints([0, c, *spatial], _join(prefix, "shape"))], prefix)


def _constant(ex, m, prefix, names, values, out):
    return ex.const(out, prefix)


def _softmax(ex, m, prefix, names, values, out):
    op = "LogSoftmax" if m.log else "Softmax"
    ndim = values[0].ndim
    axis = m.axis % max(ndim, 1)
    if not m.coerce_2d or axis == ndim - 1:
        return ex.node(op, names, prefix, axis=axis)
    flat = ex.node("Flatten", names, _join(prefix, "flat"), axis=axis)
    soft = ex.node(op, [flat], _join(prefix, "soft"), axis=-1)
    return ex.node("Reshape", [soft, ex.node("Shape", names, _join(prefix, "shape"))], prefix)


def _pool(ex, m, prefix, names, values, out):
    attributes = dict(
        kernel_shape=list(m.kernel_shape), strides=list(m.strides), ceil_mode=int(m.ceil_mode)
    )
    if m.auto_pad in ("NOTSET", ""):
        attributes["pads"] = list(m.pads)
    else:
        attributes["auto_pad"] = m.auto_pad
    if m.kind == "max":
        return ex.node("MaxPool", names, prefix, dilations=list(m.dilations), **attributes)
    if tuple(m.dilations) != (1, 1) and ex.opset < 19:
        raise ValueError(f"cannot export {prefix}: a dilated average pool needs opset 19 or later")
    if tuple(m.dilations) != (1, 1):
        attributes["dilations"] = list(m.dilations)
    return ex.node(
        "AveragePool", names, prefix, count_include_pad=int(m.count_include_pad), **attributes
    )


def _gemm(ex, m, prefix, names, values, out):
    inputs = [names[0], ex.const(m.weight.data, _join(prefix, "weight"))]
    if m.bias is not None:
        inputs.append(ex.const(m.bias.data, _join(prefix, "bias")))
    return ex.node(
        "Gemm",
        inputs,
        prefix,
        alpha=m.alpha,
        beta=m.beta,
        transA=int(m.trans_a),
        transB=int(m.trans_b),
    )


def _reshape(ex, m, prefix, names, values, out):
    if len(names) == 2:
        return ex.node("Reshape", names, prefix, allowzero=int(m.allowzero))
    return ex.node(
        "Reshape",
        [names[0], ex.ints(m.shape, _join(prefix, "shape"))],
        prefix,
        allowzero=int(m.allowzero),
    )


def _nn_reshape(ex, m, prefix, names, values, out):
    return ex.node(
        "Reshape",
        [names[0], ex.ints(m.shape, _join(prefix, "shape"))],
        prefix,
        allowzero=int(0 in m.shape),
    )


def _axes_node(op):
    def export(ex, m, prefix, names, values, out):
        axes = m.axes
        if axes is None:  # Squeeze of every size-1 axis: name them, as the output shows
            axes = [i for i, n in enumerate(values[0].shape) if n == 1]
        return ex.node(op, [names[0], ex.ints(axes, _join(prefix, "axes"))], prefix)

    return export


def _clip(ex, m, prefix, names, values, out):
    dtype = values[0].dtype
    bounds = [
        ex.const(np.array(v, dtype), _join(prefix, key)) if v is not None else ""
        for key, v in (("min", m.min), ("max", m.max))
    ]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return ex.node("Clip", [names[0], *bounds], prefix)


def _pad(ex, m, prefix, names, values, out):
    inputs = [names[0], ex.ints(m.pads, _join(prefix, "pads"))]
    if m.mode == "constant":
        inputs.append(ex.const(np.array(m.value, values[0].dtype), _join(prefix, "value")))
    elif m.mode == "wrap" and ex.opset < 19:
        raise ValueError(f"cannot export {prefix}: Pad mode 'wrap' needs opset 19 or later")
    return ex.node("Pad", inputs, prefix, mode=m.mode)


def _shape(ex, m, prefix, names, values, out):
    attributes = {"start": m.start} if m.start else {}
    if m.end is not None:
        attributes["end"] = m.end
    return ex.node("Shape", names, prefix, **attributes)


def _gather(ex, m, prefix, names, values, out):
    indices = names[1:] or [ex.const(m.indices, _join(prefix, "indices"))]
    return ex.node("Gather", [names[0], *indices], prefix, axis=m.axis)


def _cast(ex, m, prefix, names, values, out):
    from onnx import helper

    return ex.node("Cast", names, prefix, to=helper.np_dtype_to_tensor_dtype(np.dtype(m.dtype)))


def _constant_of_shape(ex, m, prefix, names, values, out):
    from onnx import numpy_helper

    value = numpy_helper.from_array(np.array([m.value], m.dtype), "value")
    return ex.node("ConstantOfShape", names, prefix, value=value)


def _simple(op_type, **fixed):
    return lambda ex, m, prefix, names, values, out: ex.node(op_type, names, prefix, **fixed)


_LEAVES = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.BatchNorm2d: _batch_norm,
    nn.ReLU: _simple("Relu"),
    nn.Sigmoid: _simple("Sigmoid"),
    nn.LeakyReLU: lambda ex, m, prefix, names, values, out: ex.node(
        "LeakyRelu", names, prefix, alpha=float(m.negative_slope)
    ),
    nn.Softmax: lambda ex, m, prefix, names, values, out: ex.node(
        "Softmax", names, prefix, axis=int(m.axis)
    ),
    nn.Dropout: _simple("Identity"),  # exported for inference
    nn.Flatten: lambda ex, m, prefix, names, values, out: (
        names[0] if values[0].ndim == 1 else ex.node("Flatten", names, prefix, axis=1)
    ),
    nn.MaxPool2d: _max_pool,
    nn.AvgPool2d: _avg_pool,
    nn.GlobalAvgPool2d: _global_avg_pool,
    nn.LocalResponseNorm: _local_response_norm,
    nn.ChannelShuffle: _channel_shuffle,
    nn.Constant: _constant,
    nn.Add: _simple("Add"),
    nn.Sub: _simple("Sub"),
    nn.Mul: _simple("Mul"),
    nn.Div: _simple("Div"),
    nn.Cat: lambda ex, m, prefix, names, values, out: ex.node(
        "Concat", names, prefix, axis=m.axis % values[0].ndim
    ),
    nn.Reshape: _nn_reshape,
    nn.Transpose: lambda ex, m, prefix, names, values, out: ex.node(
        "Transpose", names, prefix, perm=list(m.perm)
    ),
    ops.Identity: _simple("Identity"),
    ops.Sum: _simple("Sum"),
    ops.MatMul: _simple("MatMul"),
    ops.Gemm: _gemm,
    ops.Softmax: _softmax,
    ops.Pool: _pool,
    ops.GlobalPool: lambda ex, m, prefix, names, values, out: ex.node(
        "GlobalAveragePool" if m.kind == "average" else "GlobalMaxPool", names, prefix
    ),
    ops.LRN: lambda ex, m, prefix, names, values, out: ex.node(
        "LRN", names, prefix, size=m.size, alpha=m.alpha, beta=m.beta, bias=m.bias
    ),
    ops.Flatten: lambda ex, m, prefix, names, values, out: ex.node(
        "Flatten", names, prefix, axis=m.axis
    ),
    ops.Reshape: _reshape,
    ops.Squeeze: _axes_node("Squeeze"),
    ops.Unsqueeze: _axes_node("Unsqueeze"),
    ops.Clip: _clip,
    ops.Pad: _pad,
    ops.Shape: _shape,
    ops.Gather: _gather,
    ops.Cast: _cast,
    ops.ConstantOfShape: _constant_of_shape,
}


def _check_input_shape(input_shape):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape
        )
    ):
        raise ValueError(f"input_shape must be (C, H, W), three positive ints, got {input_shape!r}")
    return tuple(int(s) for s in shape)


def to_proto(model, input_shape, *, metadata=None, opset=MIN_OPSET):
    """The ONNX ModelProto of `model` for inputs of `input_shape` (C, H, W), checked."""
    import onnx
    from onnx import helper

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a cnnkit.nn.Module, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an int >= {MIN_OPSET}, got {opset!r}")
    shape = _check_input_shape(input_shape)
    dtypes = {p.data.dtype for p in model.parameters() if p.data.dtype.kind == "f"}
    dtype = np.dtype(dtypes.pop()) if len(dtypes) == 1 else np.dtype(np.float32)
    modes = {id(m): m.training for _, m in model.named_modules()}
    model.eval()
    try:
        ex = _Exporter(int(opset))
        ex.taken.add("input")
        name, out = ex.emit(model, "", [("input", np.zeros((1, *shape), dtype))])
    finally:
        for _, module in model.named_modules():
            object.__setattr__(module, "training", modes[id(module)])
    if name == "input" or name in {t.name for t in ex.initializers}:
        name = ex.node("Identity", [name], "output")
    else:  # the graph's output is called "output"
        for node in ex.nodes:
            node.output[:] = ["output" if o == name else o for o in node.output]
            node.input[:] = ["output" if i == name else i for i in node.input]
        name = "output"
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    out_dtype = helper.np_dtype_to_tensor_dtype(np.asarray(out).dtype)
    graph = helper.make_graph(
        ex.nodes,
        "cnnkit",
        [helper.make_tensor_value_info("input", elem, ["N", *shape])],
        [helper.make_tensor_value_info(name, out_dtype, ["N", *np.shape(out)[1:]])],
        ex.initializers,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", int(opset))], producer_name="cnnkit"
    )
    proto.ir_version = min(proto.ir_version, 10)  # what current runtimes read
    if metadata:
        helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata, allow_nan=False)})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:  # a bug here, not the user's
        raise RuntimeError(f"the exported graph does not pass onnx.checker: {error}") from None
    return proto


def save(model, path, input_shape, *, classes=None, metadata=None, opset=MIN_OPSET):
    """See :func:`cnnkit.onnx.save`."""
    from cnnkit.serialization import _atomic_write, _check_path

    path = _check_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"path must be a file, got the folder {path}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save {path}: the folder {folder} does not exist")
    meta = {} if metadata is None else dict(metadata)
    if not all(isinstance(k, str) for k in meta):
        raise TypeError("metadata keys must be strings")
    if classes is not None:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"classes must be a sequence of str, got {classes!r}"[:200])
        meta["classes"] = list(classes)
    meta["input_shape"] = list(_check_input_shape(input_shape))
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"metadata must be JSON-serialisable: {error}") from None
    proto = to_proto(model, input_shape, metadata=meta, opset=opset)
    _atomic_write(path, proto.SerializeToString())
    return path
