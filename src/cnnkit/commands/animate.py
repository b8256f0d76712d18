"""``cnnkit animate``: write a GIF of a kernel sliding over an input (convolution or max pool)."""

from __future__ import annotations

import argparse

from cnnkit.commands._common import (
    UsageError,
    add_quiet,
    atomic_path,
    bounded_int,
    check_writable,
    int_or_pair,
    nonnegative_int,
    output_file,
)

HELP = "write a GIF of a kernel sliding over an input, one frame per output cell"

#: Milliseconds per frame: GIF stores hundredths of a second; 10 ms is the shortest
#: delay viewers honour, a minute per frame the longest that makes sense.
MIN_DURATION, MAX_DURATION = 10, 60_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit animate``."""
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.gif",
        type=output_file((".gif",)),
        help="the GIF to write",
    )
    parser.add_argument(
        "--op",
        choices=("conv", "maxpool"),
        default="conv",
        help="convolution or max pooling (default conv)",
    )
    parser.add_argument(
        "--input-size",
        type=int_or_pair(1),
        default=None,
        metavar="N",
        help="input height and width: an int or H,W (default 5, maxpool 4)",
    )
    parser.add_argument(
        "--kernel-size",
        type=int_or_pair(1),
        default=None,
        metavar="K",
        help="kernel size: an int or H,W (default 3, maxpool 2)",
    )
    parser.add_argument(
        "--stride",
        type=int_or_pair(1),
        default=None,
        metavar="S",
        help="step between windows (default 1, maxpool the kernel size)",
    )
    parser.add_argument(
        "--padding",
        type=int_or_pair(0),
        default=0,
        metavar="P",
        help="zero padding on each side (default 0)",
    )
    parser.add_argument(
        "--dilation",
        type=int_or_pair(1),
        default=1,
        metavar="D",
        help="spacing between kernel taps (default 1)",
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of the random integer input and kernel (default 0)",
    )
    parser.add_argument(
        "--duration",
        type=bounded_int(MIN_DURATION, MAX_DURATION),
        default=800,
        metavar="MS",
        help=f"milliseconds per frame, {MIN_DURATION} to {MAX_DURATION} (default 800)",
    )
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    """Render the frames and write the GIF atomically; return the exit status."""
    from PIL import Image

    from cnnkit.viz import animate_conv, animate_pool
    from cnnkit.viz.animation import MAX_GRID_SIDE

    size = args.input_size or (5 if args.op == "conv" else 4)
    for axis in (0, 1):
        side = size if isinstance(size, int) else size[axis]
        pad = args.padding if isinstance(args.padding, int) else args.padding[axis]
        if side + 2 * pad > MAX_GRID_SIDE:
            option = "--padding" if pad and side <= MAX_GRID_SIDE else "--input-size"
            raise UsageError(
                option,
                f"the padded input would be {side + 2 * pad} cells "
                f"across (input {side} + 2 x padding {pad}); at most "
                f"{MAX_GRID_SIDE} can be drawn legibly",
            )
    check_writable(args.output, "-o/--output")
    options = dict(
        padding=args.padding,
        dilation=args.dilation,
        seed=args.seed,
        duration=args.duration,
        progress=not args.quiet,
    )
    with atomic_path(args.output) as temporary:
        if args.op == "conv":
            animate_conv(
                temporary,
                input_size=args.input_size or 5,
                kernel_size=args.kernel_size or 3,
                stride=args.stride or 1,
                **options,
            )
        else:
            animate_pool(
                temporary,
                input_size=args.input_size or 4,
                kernel_size=args.kernel_size or 2,
                stride=args.stride,
                **options,
            )
        with Image.open(temporary) as gif:
            frames = gif.n_frames
    if not args.quiet:
        print(
            f"wrote {args.output}: {frames} frame{'s' if frames != 1 else ''}, one per output cell"
        )
    return 0
