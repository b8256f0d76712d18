"""``cnnkit features``: look inside a trained CNN: its kernels and its feature maps on a picture."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

from cnnkit.commands._common import (
    add_force,
    add_image_options,
    add_quiet,
    check_new,
    check_not_input,
    check_writable,
    output_folder,
    positive_int,
    prepare,
    save_figure,
)

#: Feature maps drawn per layer by default (show_kernels draws the first 16 filters too).
MAX_MAPS = 16
#: Which tensor of each convolution block the feature-map pictures show.
TENSOR_CHOICES = ("block", "conv")
#: Layers that belong to the block of the convolution they follow.
_BLOCK_LAYERS = ("BatchNorm2d", "ReLU", "LeakyReLU", "Sigmoid")

HELP = "write every conv layer's kernels and its feature maps on an image as PNG pictures"

EPILOG = """\
Writes into DIR (created if needed; files of the same names are replaced only with
--force):

  input.png               the picture as the model sees it (resized, converted, see
                          `cnnkit predict --help`)
  convK_kernels.png       the learned kernels of the K-th Conv2d layer (first 16 filters,
                          first 8 input channels; the title says when more exist)
  convK_feature_maps.png  that layer's block on the picture (first --max-maps channels):
                          with --tensor block (default) the output after the batch norm
                          and activation that follow the convolution, as the next layer
                          sees it; with --tensor conv the raw convolution output

Each picture is one grid on one colour map with one labelled colour scale.

example: cnnkit features digits.npz seven.png -o seven_features"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit features``."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", metavar="MODEL", help="a model file written by cnnkit train")
    parser.add_argument(
        "image", metavar="IMAGE", help="a picture file, an http(s) URL or a bundled sample name"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        type=output_folder,
        help="the folder to write the pictures into",
    )
    parser.add_argument(
        "--max-maps",
        type=positive_int,
        default=MAX_MAPS,
        metavar="N",
        help=f"show at most N feature maps per layer (default {MAX_MAPS}, "
        "as many as the kernel pictures show)",
    )
    parser.add_argument(
        "--tensor",
        choices=TENSOR_CHOICES,
        default="block",
        help="feature maps after the convolution's batch norm and activation "
        "(block, default) or straight out of the convolution (conv)",
    )
    add_image_options(parser)
    add_force(parser, "pictures of the same names in DIR")
    add_quiet(parser)


def layer_outputs(model, x):
    """``[(name, layer, output)]`` of every leaf layer, in the order the forward pass runs them.

    Each leaf's ``forward`` is wrapped for one pass, so branches and graphs are followed
    as they run; the model runs in eval mode on the batch ``x`` (N, C, H, W).
    """
    leaves = [(name, m) for name, m in model.named_modules() if len(list(m.named_modules())) == 1]
    calls = []

    def recording(name, layer):
        forward = layer.forward

        def run(*inputs):  # a graph's joining nodes (Add, Cat) take several
            out = forward(*inputs)
            calls.append((name, layer, out))
            return out

        return run

    was_training = model.training
    model.eval()
    try:
        for name, layer in leaves:
            object.__setattr__(layer, "forward", recording(name, layer))
        model(x)
    finally:
        for _, layer in leaves:
            layer.__dict__.pop("forward", None)
        model.train(was_training)
    return calls


def conv_blocks(model, x, tensor: str = "block"):
    """``[(name, Conv2d, maps (C, H, W), what)]`` per Conv2d, on one input (C, H, W).

    `maps` is the raw convolution output (``tensor="conv"``) or the output of the
    BatchNorm2d and activation layers that directly follow it (``"block"``); `what`
    names the layers it went through, e.g. ``"Conv2d → BatchNorm2d → ReLU"``.
    """
    from cnnkit import nn

    calls = layer_outputs(model, x[None])  # x[None]: (1, C, H, W)
    found = []
    for i, (name, layer, _) in enumerate(calls):
        if not isinstance(layer, nn.Conv2d):
            continue
        end = i
        if tensor == "block":
            while end + 1 < len(calls) and type(calls[end + 1][1]).__name__ in _BLOCK_LAYERS:
                end += 1
        what = " → ".join(type(calls[k][1]).__name__ for k in range(i, end + 1))
        found.append((name, layer, calls[end][2][0], what))
    return found


def run(args: argparse.Namespace) -> int:
    """Write the input, kernel and feature-map pictures; return the exit status."""
    from cnnkit import plot
    from cnnkit.images import load_image
    from cnnkit.serialization import load_model

    folder = args.output
    check_writable(folder / "input.png", "-o/--output")
    model, metadata = load_model(args.model)
    x = prepare(load_image(args.image), metadata, args)[0]  # (C, H, W)
    layers = conv_blocks(model, x, args.tensor)
    if not layers:
        raise ValueError(f"{args.model} has no Conv2d layer to show")

    names = ["input.png"] + [
        f"conv{k}_{kind}.png"
        for k in range(1, len(layers) + 1)
        for kind in ("kernels", "feature_maps")
    ]
    for filename in names:
        check_not_input(folder / filename, [args.model, args.image])
    check_new([folder / name for name in names], "-o/--output", args.force)

    # Draw and write one figure at a time: each is rendered once, by savefig.
    c, h, w = x.shape
    picture = x[0] if c == 1 else x.transpose(1, 2, 0)  # (H, W) or (H, W, 3)
    figures: list[tuple[str, Callable[[], object]]] = [
        (
            "input.png",
            lambda: plot.show_image(
                picture, title=f"{Path(args.image).name} as the model sees it ({c}x{h}x{w})"
            ),
        )
    ]
    for k, (name, layer, maps, what) in enumerate(layers, start=1):
        weight = layer.weight.data
        figures.append(
            (
                f"conv{k}_kernels.png",
                functools.partial(
                    plot.show_kernels,
                    weight,
                    title=f"conv{k} (layer {name}) kernels, shape {tuple(weight.shape)}",
                ),
            )
        )
        shown = maps[: args.max_maps]  # (C', H, W)
        stage = "raw output of Conv2d" if what == "Conv2d" else f"block output, {what}"
        heading = f"conv{k} (layer {name}) feature maps: {stage}, shape {tuple(maps.shape)}"
        if len(shown) < len(maps):
            heading += f"\nshowing channels 0–{len(shown) - 1} of {len(maps)}"
        label = "conv output" if what == "Conv2d" else "activation"
        figures.append(
            (
                f"conv{k}_feature_maps.png",
                functools.partial(
                    plot.show_feature_maps,
                    shown,
                    titles=[f"channel {i}" for i in range(len(shown))],
                    title=heading,
                    shared_colors=True,
                    label=label,
                ),
            )
        )
    for filename, draw in figures:
        save_figure(draw(), folder / filename)
    if not args.quiet:
        print(
            f"wrote {len(figures)} pictures to {folder}: {', '.join(name for name, _ in figures)}"
        )
    return 0
