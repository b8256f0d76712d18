"""``cnnkit info``: a model's layers, their output shapes and parameter counts."""

from __future__ import annotations

import argparse

from cnnkit.commands.convert import input_shape, model_file, read_model

HELP = "print a model's layers with their output shapes and parameter counts"

EPILOG = """examples:
  cnnkit info digits.npz
  cnnkit info resnet50.onnx
  cnnkit info mine.npz --input-shape 3,64,64

Layers are listed in the order the forward pass runs them, named as in the state dict."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit info``."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "model", metavar="MODEL", type=model_file, help="a model file (.npz or .onnx)"
    )
    parser.add_argument(
        "--input-shape",
        type=input_shape,
        metavar="C,H,W",
        help="the shape of one input image, when the model does not record it",
    )


def summary(model, shape) -> list[tuple[str, str, tuple, int]]:
    """(name, type, output shape, parameter count) of each layer, in forward order.

    Runs the model once on a zero batch of one; each leaf module's forward is wrapped
    for that run only.

    Examples
    --------
    >>> from cnnkit import nn
    >>> summary(nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU()), (1, 5, 5))
    [('0', 'Conv2d', (1, 2, 3, 3), 20), ('1', 'ReLU', (1, 2, 3, 3), 0)]
    """
    import numpy as np

    rows = []
    leaves = [(name, m) for name, m in model.named_modules() if not m._modules]

    def recording(name, module):
        forward = module.forward

        def wrapped(*inputs):
            out = forward(*inputs)
            count = sum(p.data.size for p in module._parameters.values() if p is not None)
            rows.append(
                (name or type(module).__name__, type(module).__name__, np.shape(out), count)
            )
            return out

        return wrapped

    dtypes = {p.data.dtype for p in model.parameters()}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.float32
    for name, module in leaves:
        object.__setattr__(module, "forward", recording(name, module))
    try:
        model.eval()(np.zeros((1, *shape), dtype))
    finally:
        for _, module in leaves:
            del module.__dict__["forward"]
    return rows


def run(args: argparse.Namespace) -> int:
    """Print the summary; return the exit status."""
    import sys

    if not args.model.is_file():
        raise FileNotFoundError(f"model file not found: {args.model}")
    model, metadata = read_model(args.model)
    shape = args.input_shape or metadata.get("input_shape")
    if shape is None:
        print(
            f"cnnkit info: error: {args.model} does not record its input shape; "
            "give --input-shape C,H,W",
            file=sys.stderr,
        )
        return 2
    rows = summary(model, tuple(shape))
    width = max([len(f"{n} ({t})") for n, t, _, _ in rows] + [20])
    line = "-" * (width + 34)
    print(line)
    print(f"{'Layer (type)':<{width}}  {'Output shape':<20}  {'Param #':>10}")
    print(line.replace("-", "="))
    for name, kind, out, count in rows:
        print(f"{f'{name} ({kind})':<{width}}  {list(out)!s:<20}  {count:>10,}")
    print(line.replace("-", "="))
    total = sum(p.data.size for p in model.parameters())
    print(f"Total params: {total:,}")
    print(f"Input shape: {[1, *shape]}")
    classes = metadata.get("classes")
    if classes:
        print(
            f"Classes ({len(classes)}): {', '.join(map(str, classes[:10]))}{' ...' if len(classes) > 10 else ''}"
        )
    print(line)
    return 0
