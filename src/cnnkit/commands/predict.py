"""``cnnkit predict``: classify pictures with a model saved by ``cnnkit train``."""

from __future__ import annotations

import argparse

from cnnkit.commands._common import (
    INVERT_CHOICES,
    add_image_options,
    add_quiet,
    output_file,
    positive_int,
    prepare,
)
from cnnkit.commands._dask import run_predict, wants_dask_predict

HELP = "classify images with a trained model: print the top classes and their probabilities"

EPILOG = """\
Each picture is made into the input the model was trained on:

- channels: a one-channel model gets the picture's luminance; a three-channel model
  gets RGB (a grayscale picture repeated three times).
- size: the picture is resized to the model's input size (e.g. 8x8 for the digits);
  any size is accepted.
- inversion (--invert auto): the digits are light strokes on a black background, while
  a digit drawn on paper or in a paint program is dark on white. For a model trained on
  the digits, a picture whose border is mostly light is inverted first. Use --invert
  yes/no to decide yourself. Models trained on a folder of pictures are never inverted
  automatically.
- cropping (digits models): the drawing is cropped to its ink, padded to a square and
  centred, so a small digit in a large picture fills the 8x8 frame as the training
  digits do; its contrast is stretched to [0, 1]. --no-crop resizes the whole picture.

Folders are classified file by file in parallel on Dask (also with --csv or
--scheduler): an unreadable file gets an error row instead of stopping the run, and the
CSV is written completely or not at all.

examples:
  cnnkit predict digits.npz seven.png three.jpg --top 3
  cnnkit predict digits.npz scans/ --csv labels.csv --scheduler tcp://10.0.0.5:8786"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit predict``."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", metavar="MODEL", help="a model file written by cnnkit train")
    parser.add_argument(
        "images",
        metavar="IMAGE",
        nargs="+",
        help="picture files, folders of them, http(s) URLs or bundled sample names",
    )
    parser.add_argument(
        "--top",
        type=positive_int,
        default=3,
        metavar="K",
        help="how many classes to print per image (default 3)",
    )
    add_image_options(parser)
    dask = parser.add_argument_group("many images (Dask)")
    dask.add_argument(
        "--csv",
        type=output_file((".csv",)),
        default=None,
        metavar="OUT.csv",
        help="write source,label,probability,error for every image",
    )
    dask.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on an existing Dask cluster (e.g. tcp://host:8786) instead of local processes",
    )
    dask.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="local worker processes (default: one per CPU)",
    )
    dask.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        metavar="B",
        help="images per task (default 64)",
    )
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    """Print the top classes of each image, or an error line for it; return the exit status.

    One unreadable image does not stop the others: each good one gets its result on
    standard output, each bad one a line on standard error, and the exit status is 1 if
    any failed.
    """
    import sys

    import numpy as np

    from cnnkit.images import load_image
    from cnnkit.serialization import load_model
    from cnnkit.train import predict_proba

    if wants_dask_predict(args):
        return run_predict(args, INVERT_CHOICES[args.invert])
    model, metadata = load_model(args.model)
    classes = metadata["classes"]
    top = min(args.top, len(classes))
    failed = 0
    for source in args.images:
        try:
            x = prepare(load_image(source), metadata, args)  # (1, C, H, W)
        except (OSError, ValueError) as error:
            failed += 1
            print(f"cnnkit predict: error: {_first_line(error)}", file=sys.stderr)
            continue
        p = predict_proba(model, x)[0]  # (K,)
        if len(classes) != len(p):
            raise ValueError(
                f"{args.model} names {len(classes)} classes but the model has {len(p)} outputs"
            )
        best = np.argsort(-p, kind="stable")[:top]
        ranked = ", ".join(f"{classes[k]} ({p[k]:.1%})" for k in best)
        print(f"{source}: {ranked}", flush=True)
    if failed and len(args.images) > 1:
        print(
            f"cnnkit predict: error: {failed} of {len(args.images)} images could not be read",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
