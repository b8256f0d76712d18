"""Read an ONNX model into a :class:`cnnkit.nn.Graph`: one table, op type -> builder.

A builder gets the node (its attributes, opset and which inputs are constants) and
returns the module that computes it and the positions of the inputs that module takes
at run time; the constants it does not take (a convolution's weights, a reshape's target)
it has consumed into the module. A node whose run-time inputs are all constants is run
once here and its output becomes a constant (constant folding: the shape arithmetic of
exported models disappears).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from cnnkit import nn
from cnnkit.nn.module import Parameter
from cnnkit.onnx import ops

METADATA_KEY = "cnnkit"


class _Node:
    """What a builder sees of one ONNX node."""

    def __init__(self, proto, opset, constants, shapes):
        from onnx import helper

        self.proto, self.opset, self.op_type = proto, opset, proto.op_type
        self.attributes = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        self.inputs = list(proto.input)
        self.constants = [constants.get(name) if name else None for name in self.inputs]
        self._shapes = shapes

    def attr(self, name, default=None):
        value = self.attributes.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def const(self, index):
        """The constant at input `index` (None when absent or computed at run time)."""
        return self.constants[index] if index < len(self.constants) else None

    def has_input(self, index) -> bool:
        return index < len(self.inputs) and bool(self.inputs[index])

    def require_const(self, index, what):
        value = self.const(index)
        if value is None and self.has_input(index):
            raise ValueError(
                f"{self.describe()}: {what} (input {index}) must be a constant; cnnkit "
                f"does not load one computed at run time"
            )
        return value

    def shape(self, index):
        """The static shape of input `index` (None entries for unknown sizes), or None."""
        if self.const(index) is not None:
            return self.const(index).shape
        return self._shapes.get(self.inputs[index]) if self.has_input(index) else None

    def describe(self) -> str:
        return f"{self.op_type} node {self.proto.name or self.proto.output[0]!r}"


# -- builders: node -> (module, run-time input positions), or an ndarray (a constant) ----
def _conv(node):
    weight = node.require_const(1, "the weight")
    if weight is None or weight.ndim != 4:
        raise ValueError(
            f"{node.describe()}: cnnkit loads 2-D convolutions, got a weight of shape "
            f"{None if weight is None else weight.shape}"
        )
    bias = node.require_const(2, "the bias")
    groups = int(node.attr("group", 1))
    kernel = weight.shape[2:]
    stride = tuple(node.attr("strides", (1, 1)))
    dilation = tuple(node.attr("dilations", (1, 1)))
    pads = _pads(node, kernel, stride, dilation)
    top, left, bottom, right = pads
    symmetric = top == bottom and left == right
    # Built small and given the file's weights: drawing random ones first would cost more
    # than the whole load for a large model.
    conv = nn.Conv2d(
        groups,
        groups,
        1,
        stride,
        (top, left) if symmetric else 0,
        dilation,
        groups,
        bias is not None,
        rng=0,
    )
    conv.in_channels, conv.out_channels = weight.shape[1] * groups, weight.shape[0]
    conv.kernel_size = tuple(int(k) for k in kernel)
    conv.weight = Parameter(np.array(weight))
    if bias is not None:
        conv.bias = Parameter(np.array(bias))
    if symmetric:
        return conv, [0]
    return nn.Sequential(ops.Pad((0, 0, top, left, 0, 0, bottom, right)), conv), [0]


def _pads(node, kernel, stride, dilation):
    """ONNX (top, left, bottom, right) padding of a conv or pool, auto_pad resolved."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        return tuple(int(p) for p in node.attr("pads", (0, 0, 0, 0)))
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    shape = node.shape(0)
    if shape is None or len(shape) != 4 or None in shape[2:]:
        raise ValueError(
            f"{node.describe()}: auto_pad={auto_pad} needs the input's spatial size, "
            f"which the file does not give"
        )
    pairs = [
        ops._same_pads(n, k, s, d, auto_pad == "SAME_LOWER")
        for n, k, s, d in zip(shape[2:], kernel, stride, dilation)
    ]
    return (pairs[0][0], pairs[1][0], pairs[0][1], pairs[1][1])


def _batch_norm(node):
    scale, bias, mean, var = (
        node.require_const(i, name)
        for i, name in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var"))
    )
    if any(v is None for v in (scale, bias, mean, var)):
        raise ValueError(f"{node.describe()}: needs scale, bias, mean and var")
    layer = nn.BatchNorm2d(
        scale.shape[0],
        eps=float(node.attr("epsilon", 1e-5)),
        momentum=1.0 - float(node.attr("momentum", 0.9)),
    )
    dtype = np.result_type(scale, np.float32)
    layer.weight.data, layer.bias.data = scale.astype(dtype), bias.astype(dtype)
    layer.running_mean = mean.astype(dtype)
    layer.running_var = var.astype(dtype)
    return layer, [0]


def _softmax(log):
    def build(node):
        legacy = node.opset < 13
        axis = int(node.attr("axis", 1 if legacy else -1))
        return ops.Softmax(axis, log=log, coerce_2d=legacy), [0]

    return build


def _pool(kind):
    def build(node):
        kernel = tuple(node.attr("kernel_shape"))
        if len(kernel) != 2:
            raise ValueError(
                f"{node.describe()}: cnnkit loads 2-D pooling, got kernel_shape {kernel}"
            )
        return ops.Pool(
            kind,
            kernel,
            node.attr("strides", (1, 1)),
            node.attr("pads", (0, 0, 0, 0)),
            node.attr("dilations", (1, 1)),
            node.attr("ceil_mode", 0),
            node.attr("count_include_pad", 0),
            node.attr("auto_pad", "NOTSET") or "NOTSET",
        ), [0]

    return build


def _lrn(node):
    size = int(node.attr("size"))
    alpha, beta, bias = (
        float(node.attr(k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0))
    )
    if size % 2:  # the same window as PyTorch's
        return nn.LocalResponseNorm(size, alpha, beta, bias), [0]
    return ops.LRN(size, alpha, beta, bias), [0]


def _gemm(node):
    weight = node.require_const(1, "B")
    bias = node.require_const(2, "C")
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    trans_a, trans_b = bool(node.attr("transA", 0)), bool(node.attr("transB", 0))
    out_features = weight.shape[0] if trans_b else weight.shape[1]
    if not trans_a and (bias is None or bias.size in (1, out_features)):
        matrix = np.array(weight if trans_b else weight.T, order="C")  # (out, in), writeable
        if alpha != 1:
            matrix = matrix * np.asarray(alpha, weight.dtype)
        layer = nn.Linear(1, 1, bias=bias is not None, rng=0)  # small, then the file's weights
        layer.in_features, layer.out_features = matrix.shape[1], matrix.shape[0]
        layer.weight = Parameter(matrix)
        if bias is not None:
            row = np.broadcast_to(bias.reshape(-1) * np.asarray(beta, bias.dtype), (out_features,))
            layer.bias = Parameter(row.astype(weight.dtype))
        return layer, [0]
    return ops.Gemm(weight, bias, alpha, beta, trans_a, trans_b), [0]


def _elementwise(module_type):
    return lambda node: (module_type(), list(range(len(node.inputs))))


def _axes(node, index):
    """`axes` as an attribute (older opsets) or a constant input (newer ones)."""
    if "axes" in node.attributes:
        return tuple(node.attr("axes"))
    value = node.require_const(index, "axes")
    return None if value is None else tuple(int(v) for v in value.ravel())


def _reshape(node):
    if node.opset < 5:
        return ops.Reshape(node.attr("shape")), [0]
    shape = node.const(1)
    if shape is None:
        return ops.Reshape(allowzero=node.attr("allowzero", 0)), [0, 1]
    return ops.Reshape(shape.ravel(), allowzero=node.attr("allowzero", 0)), [0]


def _transpose(node):
    perm = node.attr("perm")
    if perm is None:
        shape = node.shape(0)
        if shape is None:
            raise ValueError(f"{node.describe()}: without perm, the input's rank must be known")
        perm = tuple(reversed(range(len(shape))))
    return nn.Transpose(tuple(perm)), [0]


def _dropout(node):
    ratio = node.const(1) if node.opset >= 12 else None
    ratio = float(node.attr("ratio", 0.5)) if ratio is None else float(ratio)
    return (nn.Dropout(ratio) if ratio > 0 else ops.Identity()), [0]


def _clip(node):
    if node.opset < 11:
        low, high = node.attr("min"), node.attr("max")
    else:
        low, high = (node.require_const(i, name) for i, name in ((1, "min"), (2, "max")))
    return ops.Clip(None if low is None else float(low), None if high is None else float(high)), [0]


def _pad(node):
    if node.opset < 11:
        pads, value = node.attr("pads"), float(node.attr("value", 0.0))
    else:
        pads = node.require_const(1, "pads")
        value = node.require_const(2, "constant_value")
        value = 0.0 if value is None else float(value)
        axes = node.require_const(3, "axes")
        if axes is not None:
            rank = len(node.shape(0) or ())
            full = [0] * (2 * rank)
            half = len(axes)
            for i, axis in enumerate(axes.ravel()):
                full[int(axis) % rank] = int(pads[i])
                full[int(axis) % rank + rank] = int(pads[i + half])
            pads = full
    return ops.Pad(np.asarray(pads).ravel(), node.attr("mode", "constant"), value), [0]


def _constant(node):
    from onnx import numpy_helper

    for key, convert in (
        ("value", numpy_helper.to_array),
        ("value_float", lambda v: np.array(v, np.float32)),
        ("value_floats", lambda v: np.array(v, np.float32)),
        ("value_int", lambda v: np.array(v, np.int64)),
        ("value_ints", lambda v: np.array(v, np.int64)),
    ):
        if key in node.attributes:
            return np.array(convert(node.attributes[key]))
    raise ValueError(f"{node.describe()}: unsupported constant attribute {sorted(node.attributes)}")


def _constant_of_shape(node):
    from onnx import numpy_helper

    value = node.attributes.get("value")
    array = np.zeros(1, np.float32) if value is None else numpy_helper.to_array(value)
    return ops.ConstantOfShape(array.ravel()[0].item(), array.dtype), [0]


def _shape(node):
    start, end = int(node.attr("start", 0)), node.attr("end")
    shape = node.shape(0)
    if shape is not None and None not in shape:
        return np.array(shape[start:end], np.int64)
    return ops.Shape(start, end), [0]


def _gather(node):
    indices = node.const(1)
    if indices is None:
        return ops.Gather(axis=node.attr("axis", 0)), [0, 1]
    return ops.Gather(indices, node.attr("axis", 0)), [0]


def _cast(node):
    from onnx import helper

    return ops.Cast(helper.tensor_dtype_to_np_dtype(node.attr("to"))), [0]


BUILDERS = {
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "Relu": lambda node: (nn.ReLU(), [0]),
    "LeakyRelu": lambda node: (nn.LeakyReLU(float(node.attr("alpha", 0.01))), [0]),
    "Sigmoid": lambda node: (nn.Sigmoid(), [0]),
    "Softmax": _softmax(log=False),
    "LogSoftmax": _softmax(log=True),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("average"),
    "GlobalAveragePool": lambda node: (ops.GlobalPool("average"), [0]),
    "GlobalMaxPool": lambda node: (ops.GlobalPool("max"), [0]),
    "LRN": _lrn,
    "Gemm": _gemm,
    "MatMul": lambda node: (ops.MatMul(), [0, 1]),
    "Add": _elementwise(nn.Add),
    "Sub": _elementwise(nn.Sub),
    "Mul": _elementwise(nn.Mul),
    "Div": _elementwise(nn.Div),
    "Sum": _elementwise(ops.Sum),
    "Concat": lambda node: (nn.Cat(int(node.attr("axis"))), list(range(len(node.inputs)))),
    "Flatten": lambda node: (ops.Flatten(int(node.attr("axis", 1))), [0]),
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": lambda node: (ops.Squeeze(_axes(node, 1)), [0]),
    "Unsqueeze": lambda node: (ops.Unsqueeze(_axes(node, 1)), [0]),
    "Dropout": _dropout,
    "Identity": lambda node: (ops.Identity(), [0]),
    "Clip": _clip,
    "Pad": _pad,
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Shape": _shape,
    "Gather": _gather,
    "Cast": _cast,
}

#: The ONNX operators :func:`load` understands.
SUPPORTED = tuple(sorted(BUILDERS))


# -- reading a file ------------------------------------------------------------------
def read_model(source):
    """Parse and check an ONNX model from a path or bytes; a clear ValueError if it is not one."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(source, (bytes, bytearray, memoryview)):
        payload, where = bytes(source), "the given bytes"
    elif isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        if not os.path.exists(where):
            raise FileNotFoundError(f"ONNX model not found: {where}")
        if os.path.isdir(where):
            raise ValueError(f"{where} is a folder, not an ONNX model file")
        with open(where, "rb") as file:
            payload = file.read()
    else:
        raise TypeError(f"source must be a path or bytes, got {type(source).__name__}")
    if not payload:
        raise ValueError(f"{where} is empty, not an ONNX model")
    try:
        model = onnx.load_model_from_string(payload)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{where} is not an ONNX model (it cannot be parsed: {_first_line(error)}); "
            f"is it truncated?"
        ) from None
    if model.ir_version < 1 or not model.HasField("graph") or not model.graph.node:
        raise ValueError(f"{where} is not an ONNX model (no IR version or no graph)")
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ValueError(
                f"{where} keeps its weights in external files; cnnkit loads self-contained "
                f"models (save it with all tensors inside)"
            )
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as error:
        raise ValueError(f"{where} is not a valid ONNX model: {_first_line(error)}") from None
    return model, where


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _static_shapes(model) -> dict:
    """Value name -> shape tuple (None for an unknown size), from ONNX shape inference."""
    import onnx

    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 - inference is only a help; builders say what they lack
        graph = model.graph
    shapes = {}
    for info in (*graph.value_info, *graph.input, *graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            shapes[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None
                for d in info.type.tensor_type.shape.dim
            )
    return shapes


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", name).strip("._")


_WEIGHT_SUFFIXES = (".weight", ".bias", ".running_mean", ".running_var")


def _node_name(proto, initializers) -> str:
    """A state-dict prefix for a node: PyTorch's module path where the weights tell it."""
    for name in proto.input[1:]:
        if name in initializers and name.endswith(_WEIGHT_SUFFIXES):
            return _safe_name(name.rsplit(".", 1)[0])
    if proto.name.startswith("/"):  # PyTorch's scopes: "/layer1/layer1.0/conv1/Conv"
        *scopes, operation = proto.name.strip("/").split("/")
        path = ""
        for scope in scopes:  # a scope holds the full path of a container's child, or one name
            path = scope if path and scope.startswith(path + ".") else _join(path, scope)
        if path:
            has_weights = any(name in initializers for name in proto.input[1:])
            return _safe_name(path if has_weights else _join(path, operation))
    return _safe_name(proto.name) or _safe_name(proto.output[0]) or proto.op_type.lower()


def _join(path, name):
    return f"{path}.{name}" if path else name


def _unique(base, taken) -> str:
    name, count = base or "constant", 1
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    taken.add(name)
    return name


def build_graph(model, where="the model") -> nn.Graph:
    """The :class:`cnnkit.nn.Graph` of a parsed, checked ONNX model."""
    from onnx import numpy_helper

    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    initializers = set(constants)
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise ValueError(
            f"{where} has {len(inputs)} inputs {[i.name for i in inputs]}; cnnkit loads "
            f"models with one image input"
        )
    if len(graph.output) != 1:
        raise ValueError(
            f"{where} has {len(graph.output)} outputs {[o.name for o in graph.output]}; "
            f"cnnkit loads models with one output"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") or d.dim_value < 1 for d in dims[1:]):
        shown = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        raise ValueError(
            f"{where}: the input {inputs[0].name!r} has dynamic shape {shown}; cnnkit "
            f"loads models whose input sizes are fixed (the batch size may vary)"
        )
    shapes = _static_shapes(model)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    input_name = _safe_name(inputs[0].name) or "input"
    taken = {input_name}
    values = {inputs[0].name: input_name}  # ONNX value -> graph value name
    nodes: list[tuple] = []
    for proto in graph.node:
        if proto.domain not in ("", "ai.onnx") or proto.op_type not in BUILDERS:
            domain = f" (domain {proto.domain!r})" if proto.domain not in ("", "ai.onnx") else ""
            raise ValueError(
                f"unsupported ONNX operator {proto.op_type!r}{domain} in node "
                f"{proto.name or proto.output[0]!r} of {where}; cnnkit loads: {', '.join(SUPPORTED)}"
            )
        extra = [o for o in proto.output[1:] if o and o in used]
        node = _Node(proto, opset, constants, shapes)
        if extra:
            raise ValueError(
                f"{node.describe()}: its extra outputs {extra} are used; cnnkit supports one output per node"
            )
        for name in proto.input:
            if name and name not in constants and name not in values:
                raise ValueError(
                    f"{node.describe()} reads {name!r}, which no earlier node computes"
                )
        try:
            built = BUILDERS[proto.op_type](node)
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(
                f"{node.describe()} has unusable attributes or inputs: {_first_line(error)}"
            ) from None
        if isinstance(built, np.ndarray):
            constants[proto.output[0]] = built
            continue
        module, feeds = built
        feeds = [i for i in feeds if node.has_input(i)]
        if all(node.const(i) is not None for i in feeds):
            # Every run-time input is known: run it once now (constant folding).
            try:
                constants[proto.output[0]] = np.asarray(
                    module.eval()(*(node.const(i) for i in feeds))
                )
            except (ValueError, TypeError, IndexError) as error:
                raise ValueError(
                    f"{node.describe()} fails on its constant inputs: {_first_line(error)}"
                ) from None
            continue
        sources = []
        for i in feeds:
            name = proto.input[i]
            if name not in values:  # a constant feeding a run-time op: a Constant node
                value = constants[name]
                trainable = value.dtype.kind == "f" and value.ndim > 0
                values[name] = _unique(_safe_name(name), taken)
                nodes.append((values[name], nn.Constant(value, trainable=trainable), []))
            sources.append(values[name])
        values[proto.output[0]] = _unique(_node_name(proto, initializers), taken)
        nodes.append((values[proto.output[0]], module, sources))
    output = graph.output[0].name
    if output == inputs[0].name:
        raise ValueError(f"{where}: the output is the input; nothing to run")
    if output not in values:  # computed from constants alone (a Shape of a fixed input)
        values[output] = _unique(_safe_name(output), taken)
        nodes.append((values[output], nn.Constant(constants[output]), []))
    model = nn.Graph(nodes, output=values[output], input=input_name)
    model.eval()
    return model


def read_metadata(model) -> dict:
    """The cnnkit metadata a model carries (classes, input shape, image preparation)."""
    props = {p.key: p.value for p in model.metadata_props}
    metadata = {}
    if METADATA_KEY in props:
        try:
            metadata = json.loads(props[METADATA_KEY])
        except json.JSONDecodeError:
            metadata = {}
        metadata = metadata if isinstance(metadata, dict) else {}
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if "input_shape" not in metadata and len(inputs) == 1:
        dims = inputs[0].type.tensor_type.shape.dim
        if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[1:]):
            metadata["input_shape"] = [int(d.dim_value) for d in dims[1:]]
    return metadata
