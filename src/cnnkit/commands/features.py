"""``cnnkit features``: look inside a trained CNN: its kernels and its feature maps on a picture."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnkit.commands._common import add_quiet, check_not_input, positive_int
from cnnkit.commands.predict import add_image_options

#: Feature maps drawn per layer by default (show_kernels draws the first 16 filters too).
MAX_MAPS = 16

HELP = "write every conv layer's kernels and its feature maps on an image as PNG pictures"

EPILOG = """\
Writes into DIR (created if needed; files of the same names are replaced):

  input.png               the picture as the model sees it (resized, converted, see
                          `cnnkit predict --help`)
  convK_kernels.png       the learned kernels of the K-th Conv2d layer (first 16 filters,
                          first 8 input channels)
  convK_feature_maps.png  that layer's output on the picture (first --max-maps channels)

example: cnnkit features digits.npz seven.png -o seven_features"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit features``."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", metavar="MODEL", help="a model file written by cnnkit train")
    parser.add_argument("image", metavar="IMAGE",
                        help="a picture file, an http(s) URL or a bundled sample name")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", type=Path,
                        help="the folder to write the pictures into")
    parser.add_argument("--max-maps", type=positive_int, default=MAX_MAPS, metavar="N",
                        help=f"show at most N feature maps per layer (default {MAX_MAPS}, "
                             "as many as the kernel pictures show)")
    add_image_options(parser)
    add_quiet(parser)


def conv_activations(model, x):
    """``[(name, Conv2d layer, output (C, H, W))]`` for every Conv2d on one input (C, H, W)."""
    from cnnkit import nn

    leaves = [(name, m) for name, m in model.named_modules() if not m._modules]
    was_training = model.training
    model.eval()
    try:
        out, found = x[None], []  # (1, C, H, W)
        for name, layer in leaves:
            out = layer(out)
            if isinstance(layer, nn.Conv2d):
                found.append((name, layer, out[0]))
    finally:
        model.train(was_training)
    return found


def run(args: argparse.Namespace) -> int:
    """Write the input, kernel and feature-map pictures; return the exit status."""
    from cnnkit import plot
    from cnnkit.commands._common import save_figure
    from cnnkit.commands.predict import load_model, prepare
    from cnnkit.images import load_image

    folder = args.output
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"-o must be a folder, but {str(folder)!r} is a file")
    model, metadata = load_model(args.model)
    x = prepare(load_image(args.image), metadata, args)  # (C, H, W)
    layers = conv_activations(model, x)
    if not layers:
        raise ValueError(f"{args.model} has no Conv2d layer to show")

    names = ["input.png"] + [f"conv{k}_{kind}.png" for k in range(1, len(layers) + 1)
                             for kind in ("kernels", "feature_maps")]
    for filename in names:
        check_not_input(folder / filename, [args.model, args.image])

    # Draw every figure before writing any file.
    c, h, w = x.shape
    picture = x[0] if c == 1 else x.transpose(1, 2, 0)  # (H, W) or (H, W, 3)
    figures = {"input.png": plot.show_image(
        picture, title=f"{Path(args.image).name} as the model sees it ({c}x{h}x{w})")}
    for k, (name, layer, maps) in enumerate(layers, start=1):
        figures[f"conv{k}_kernels.png"] = plot.show_kernels(
            layer.weight.data,
            title=f"conv{k} (layer {name}) kernels, shape {tuple(layer.weight.shape)}")
        shown = maps[: args.max_maps]  # (C', H, W)
        heading = f"conv{k} (layer {name}) feature maps, {maps.shape[0]}x{maps.shape[1]}x" \
                  f"{maps.shape[2]}"
        if len(shown) < len(maps):
            heading += f" (first {len(shown)})"
        figures[f"conv{k}_feature_maps.png"] = plot.show_feature_maps(shown, title=heading)
    for filename, figure in figures.items():
        save_figure(figure, folder / filename)
    if not args.quiet:
        print(f"wrote {len(figures)} pictures to {folder}: {', '.join(figures)}")
    return 0
