"""How branches, graphs and ONNX operator modules are described for ``.npz`` files.

:func:`cnnkit.serialization.describe` and :func:`~cnnkit.serialization.build` ask here
first: containers list their children's descriptions, other modules their constructor
arguments (read from the attributes of the same names). Arrays that are weights go to
the state dict, so a description holds only their shapes.
"""

from __future__ import annotations

import inspect

import numpy as np

_CONTAINERS = ("Residual", "Concat", "Graph")


def _types() -> dict:
    """Description type name -> class, for every module described here."""
    from cnnkit import nn
    from cnnkit.onnx import ops  # pure NumPy: does not import the onnx package

    types = {
        cls.__name__: cls
        for cls in (
            nn.Residual,
            nn.Concat,
            nn.Graph,
            nn.ChannelShuffle,
            nn.LocalResponseNorm,
            nn.Constant,
            nn.Add,
            nn.Sub,
            nn.Mul,
            nn.Div,
            nn.Cat,
            nn.Reshape,
            nn.Transpose,
        )
    }
    types.update({f"onnx.{name}": getattr(ops, name) for name in ops.__all__})
    return types


def _json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _args(module) -> dict:
    """Constructor arguments of a leaf module, from its attributes."""
    cls = type(module)
    if cls.__name__ == "Constant" and cls.__module__ == "cnnkit.nn.graph":
        value = module._array()
        return {
            "shape": list(value.shape),
            "dtype": value.dtype.name,
            "trainable": module.trainable,
        }
    if cls.__name__ == "Gemm":
        return {
            "weight": list(module.weight.shape),
            "bias": None if module.bias is None else list(module.bias.shape),
            "alpha": module.alpha,
            "beta": module.beta,
            "trans_a": module.trans_a,
            "trans_b": module.trans_b,
        }
    args = {}
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            args[parameter.name] = _json(getattr(module, parameter.name))
    return args


def describe_extension(model, describe) -> dict | None:
    """The description of `model` if it is one of the types here, else None."""
    types = _types()
    name = next((key for key, cls in types.items() if type(model) is cls), None)
    if name is None:
        return None
    if name == "Residual":
        return {
            "type": name,
            "body": describe(model.body),
            "shortcut": None if model.shortcut is None else describe(model.shortcut),
        }
    if name == "Concat":
        return {
            "type": name,
            "branches": [describe(b) for b in model._modules.values()],
            "args": {"axis": model.axis},
        }
    if name == "Graph":
        return {
            "type": name,
            "input": model.input,
            "output": model.output,
            "nodes": [
                {"name": n, "inputs": inputs, "module": describe(m)}
                for n, m, inputs in model.nodes()
            ],
        }
    return {"type": name, "args": _args(model)}


def build_extension(description: dict, build):
    """The module `description` describes if its type is one of the types here, else None."""
    types = _types()
    name = description["type"]
    if name not in types:
        return None
    cls = types[name]
    if name == "Residual":
        shortcut = description.get("shortcut")
        return cls(build(description["body"]), None if shortcut is None else build(shortcut))
    if name == "Concat":
        return cls(*(build(b) for b in description["branches"]), **description.get("args", {}))
    if name == "Graph":
        nodes = [(n["name"], build(n["module"]), n["inputs"]) for n in description["nodes"]]
        return cls(nodes, output=description["output"], input=description["input"])
    args = dict(description.get("args", {}))
    if name == "Constant":
        return cls(np.zeros(args["shape"], args["dtype"]), trainable=args["trainable"])
    if name == "onnx.Gemm":
        weight, bias = np.zeros(args.pop("weight"), np.float32), args.pop("bias")
        return cls(weight, None if bias is None else np.zeros(bias, np.float32), **args)
    return cls(**args)
