"""``cnnkit animate``: write a GIF of a kernel sliding over an input (convolution or max pool)."""

from __future__ import annotations

import argparse

from cnnkit.commands._common import add_quiet, atomic_path, int_or_pair, output_file

HELP = "write a GIF of a kernel sliding over an input, one frame per output cell"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit animate``."""
    parser.add_argument("-o", "--output", required=True, metavar="OUT.gif",
                        type=output_file((".gif",)), help="the GIF to write")
    parser.add_argument("--op", choices=("conv", "maxpool"), default="conv",
                        help="convolution or max pooling (default conv)")
    parser.add_argument("--input-size", type=int_or_pair(1), default=None, metavar="N",
                        help="input height and width: an int or H,W (default 5, maxpool 4)")
    parser.add_argument("--kernel-size", type=int_or_pair(1), default=None, metavar="K",
                        help="kernel size: an int or H,W (default 3, maxpool 2)")
    parser.add_argument("--stride", type=int_or_pair(1), default=None, metavar="S",
                        help="step between windows (default 1, maxpool the kernel size)")
    parser.add_argument("--padding", type=int_or_pair(0), default=0, metavar="P",
                        help="zero padding on each side (default 0)")
    parser.add_argument("--dilation", type=int_or_pair(1), default=1, metavar="D",
                        help="spacing between kernel taps (default 1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random integer input and kernel (default 0)")
    parser.add_argument("--duration", type=int, default=800, metavar="MS",
                        help="milliseconds per frame (default 800)")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    """Render the frames and write the GIF atomically; return the exit status."""
    from PIL import Image

    from cnnkit.viz import animate_conv, animate_pool

    options = dict(padding=args.padding, dilation=args.dilation, seed=args.seed,
                   duration=args.duration, progress=not args.quiet)
    with atomic_path(args.output) as temporary:
        if args.op == "conv":
            animate_conv(temporary, input_size=args.input_size or 5,
                         kernel_size=args.kernel_size or 3, stride=args.stride or 1, **options)
        else:
            animate_pool(temporary, input_size=args.input_size or 4,
                         kernel_size=args.kernel_size or 2, stride=args.stride, **options)
        with Image.open(temporary) as gif:
            frames = gif.n_frames
    if not args.quiet:
        print(f"wrote {args.output}: {frames} frame{'s' if frames != 1 else ''}, one per "
              "output cell")
    return 0
