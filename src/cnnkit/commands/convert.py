"""``cnnkit convert``: a model file to the other format (``.npz`` <-> ``.onnx``)."""

from __future__ import annotations

import argparse

from cnnkit.commands._common import check_not_input, output_file

HELP = "convert a model between cnnkit's .npz and ONNX (.onnx), with its class names"

MODEL_SUFFIXES = (".npz", ".onnx")

EPILOG = """examples:
  cnnkit convert digits.npz digits.onnx
  cnnkit convert resnet.onnx resnet.npz
  cnnkit convert mine.npz mine.onnx --input-shape 3,64,64

The class names and the image preparation travel with the model (ONNX metadata_props).
An .npz model that does not record its input shape needs --input-shape C,H,W."""


def model_file(text: str):
    """An argparse type: an existing .npz or .onnx file."""
    from pathlib import Path

    path = Path(text)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text!r} must end in .npz or .onnx")
    return path


def input_shape(text: str) -> tuple[int, int, int]:
    """An argparse type: ``C,H,W``, three positive integers."""
    try:
        values = tuple(int(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three positive integers), got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit convert``."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "source", metavar="IN", type=model_file, help="the model to read (.npz or .onnx)"
    )
    parser.add_argument(
        "target",
        metavar="OUT",
        type=output_file(MODEL_SUFFIXES),
        help="the file to write (.npz or .onnx)",
    )
    parser.add_argument(
        "--input-shape",
        type=input_shape,
        metavar="C,H,W",
        help="the shape of one input image, when the .npz model does not record it",
    )


def read_model(path):
    """(model, metadata) of an ``.npz`` or ``.onnx`` model file."""
    if str(path).lower().endswith(".onnx"):
        from cnnkit.onnx import load_model

        return load_model(path)
    from cnnkit.serialization import load

    return load(path, with_metadata=True)


def run(args: argparse.Namespace) -> int:
    """Convert; return the exit status."""
    import sys

    if not args.source.is_file():
        raise FileNotFoundError(f"model file not found: {args.source}")
    check_not_input(args.target, [args.source])
    if not args.target.resolve().parent.is_dir():
        raise FileNotFoundError(f"the folder of {args.target} does not exist")
    model, metadata = read_model(args.source)
    shape = args.input_shape or metadata.get("input_shape")
    if shape is None:
        print(
            f"cnnkit convert: error: {args.source} does not record its input shape; "
            "give --input-shape C,H,W",
            file=sys.stderr,
        )
        return 2
    metadata = {**metadata, "input_shape": [int(s) for s in shape]}
    classes = metadata.pop("classes", None)
    shape = tuple(metadata.pop("input_shape"))
    if args.target.suffix.lower() == ".onnx":
        from cnnkit.onnx import save as save_onnx

        save_onnx(model, args.target, shape, classes=classes, metadata=metadata)
    else:
        from cnnkit.serialization import save

        save(model, args.target, classes=classes, input_shape=shape, metadata=metadata)
    print(f"wrote {args.target}")
    return 0
