"""``cnnkit filter``: apply a named kernel to a picture and write the response as a picture."""

from __future__ import annotations

import argparse

from cnnkit.commands._common import (
    IMAGE_SUFFIXES,
    add_quiet,
    check_not_input,
    check_writable,
    int_or_pair,
    padding_value,
    save_image,
)
from cnnkit.commands._dask import (
    DEFAULT_CHUNK,
    LARGE_IMAGE_BYTES,
    filter_output,
    run_filter,
    wants_dask_filter,
)

HELP = "apply a named kernel to an image and write the response as a picture"

DISPLAY_CHOICES = ("auto", "clip", "robust", "abs", "signed", "minmax")

EPILOG = """\
how the response becomes a picture (--display):
  auto    (default) by the kernel's sum: clip for kernels whose weights sum to 1
          (identity, blurs, sharpen, emboss: the response is an image already, so
          identity writes the input unchanged); robust for kernels that sum to 0
          (sobel, scharr, prewitt, laplacian, outline: edge detectors); minmax for
          any other kernel
  clip    the response itself, clipped to [0, 1]
  robust  edge strength |r| / p, p the 99.5th percentile of |r|: black where the
          kernel sees nothing, white at the strongest 0.5 % of edges
  abs     edge strength |r| / max|r| (a few strong edges darken the rest)
  signed  0.5 + r / (2 max|r|): gray is 0, darker negative, brighter positive
  minmax  stretch min..max to 0..1

example: cnnkit filter chelsea -k sobel_top -o edges.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit filter``."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="an image file (also a large .tif/.tiff or a .zarr array), an "
        "http(s) URL or a bundled sample name (chelsea, astronaut, "
        "camera, coffee, ...)",
    )
    parser.add_argument(
        "-k",
        "--kernel",
        required=True,
        metavar="NAME",
        help="a kernel name from `cnnkit kernels`, e.g. sobel_top",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.png",
        type=filter_output(IMAGE_SUFFIXES),
        help=f"the picture to write ({', '.join(IMAGE_SUFFIXES)}); or, "
        "streaming, the response values (.zarr, .tif, .tiff)",
    )
    parser.add_argument(
        "--stride",
        type=int_or_pair(1),
        default=1,
        metavar="S",
        help="step between windows: an int or H,W (default 1)",
    )
    parser.add_argument(
        "--padding",
        type=padding_value,
        default=0,
        metavar="P",
        help="border added on each side: an int, H,W, same or valid (default 0)",
    )
    parser.add_argument(
        "--padding-mode",
        default="zeros",
        choices=("zeros", "reflect", "replicate", "circular"),
        help="what the border holds (default zeros)",
    )
    parser.add_argument(
        "--gray", action="store_true", help="filter the luminance instead of each colour channel"
    )
    parser.add_argument(
        "--display",
        default="auto",
        choices=DISPLAY_CHOICES,
        help="how the response becomes a picture in [0, 1] (default auto: "
        "clip for kernels summing to 1, robust for kernels summing to "
        "0; see below)",
    )
    parser.add_argument(
        "--chunks",
        type=int_or_pair(16),
        default=None,
        metavar="N",
        help="stream the image through Dask in blocks of N (or H,W) pixels "
        "and write the float32 response to a .zarr or .tif; done "
        "anyway for a .zarr or a TIFF over "
        f"{LARGE_IMAGE_BYTES // 2**20} MiB (blocks of {DEFAULT_CHUNK})",
    )
    add_quiet(parser)


def display_mode(kernel, requested: str = "auto") -> str:
    """The ``to_display`` mode for `kernel`: `requested`, or auto's choice by the kernel's sum."""
    if requested != "auto":
        return requested
    import numpy as np

    total = float(kernel.sum(dtype=np.float64))
    scale = max(float(np.abs(kernel).sum(dtype=np.float64)), 1.0)
    # a float32 kernel built to sum to 0 or 1 misses by its entries' rounding
    eps = np.finfo(kernel.dtype).eps if kernel.dtype.kind == "f" else np.finfo(np.float64).eps
    tolerance = 4 * kernel.size * eps * scale
    if abs(total) <= tolerance:
        return "robust"  # an edge detector: |response|, robust to a few extreme pixels
    if abs(total - 1.0) <= tolerance:
        return "clip"  # a weighted mean: the response is an image already
    return "minmax"


def run(args: argparse.Namespace) -> int:
    """Filter the image and write the picture; return the exit status."""
    import numpy as np

    from cnnkit import kernels
    from cnnkit.filtering import filter2d, to_display
    from cnnkit.images import load_image

    check_not_input(args.output, [args.source])
    check_writable(args.output, "-o/--output")
    kernel = kernels.get(args.kernel)
    if wants_dask_filter(args):
        return run_filter(args, kernel)
    image = load_image(args.source, gray=args.gray)
    shape = image.shape
    response = filter2d(
        image, kernel, stride=args.stride, padding=args.padding, padding_mode=args.padding_mode
    )
    del image  # memory follows the image: at most two image-sized arrays alive at once
    low, high, response_shape = float(response.min()), float(response.max()), response.shape
    mode = display_mode(kernel, args.display)
    picture = to_display(response, mode=mode)
    del response
    save_image(np.asarray(picture), args.output)
    if not args.quiet:
        print(
            f"wrote {args.output}: {args.kernel} on {shape} -> response "
            f"{response_shape}, values {low:.3g} to {high:.3g}, shown as {mode}"
        )
    return 0
