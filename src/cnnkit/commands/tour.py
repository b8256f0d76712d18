"""``cnnkit tour``: the whole CNN walkthrough, offline, in numbers and pictures.

It prints the small-matrix examples (a convolution at two strides, max pooling, global
average pooling, softmax and sigmoid) with their shapes, then writes to a folder the
pictures of each step on a real image (a bundled sample by default) and an
``index.html`` that lays them out with captions.
"""

from __future__ import annotations

import argparse
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.commands._common import (
    UsageError,
    add_force,
    atomic_path,
    check_not_input,
    check_writable,
    output_folder,
    progress,
    save_figure,
)

HELP = "run the CNN walkthrough offline: print the examples, write every picture and an index.html"

DEFAULT_OUT = "cnnkit-tour"
#: Marks the tour's own index.html, which a later tour may replace without --force.
GENERATOR = "cnnkit tour"
DEFAULT_IMAGE = "chelsea"
SEED = 0
#: Larger images are shrunk to this many pixels on their longer side for the pictures:
#: a figure shows no more, and a phone photo would only slow the tour down.
MAX_SIDE = 800


@dataclass
class Picture:
    """One output of the tour: its file, the section it belongs to, and its caption."""

    name: str
    section: str
    caption: str
    make: Callable[[Path], None]  # writes the file at the given (temporary) path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit tour``."""
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        metavar="SOURCE",
        help="an image file, an http(s) URL or a bundled sample name "
        f"(default {DEFAULT_IMAGE}, no download)",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        type=output_folder,
        help=f"folder for the pictures and index.html (default ./{DEFAULT_OUT}); "
        "a tour already there is replaced, any other index.html only "
        "with --force",
    )
    add_force(parser, "an index.html that an earlier tour did not write")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only where the pictures went, not the walkthrough",
    )


def _text(a: np.ndarray) -> str:
    """An array as text: whole numbers without decimal points."""
    a = np.asarray(a)
    if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        a = a.astype(np.int64)
    return np.array2string(a, precision=4, suppress_small=True, max_line_width=100)


class _Printer:
    """Collects the printed examples so index.html can show them too (printed unless quiet)."""

    def __init__(self, quiet: bool = False):
        self.lines: list[str] = []
        self.quiet = quiet

    def __call__(self, *parts) -> None:
        line = " ".join(str(p) for p in parts)
        if not self.quiet:
            print(line)
        self.lines.append(line)

    def show(self, label: str, a) -> None:
        a = np.asarray(a)
        self(f"{label}  shape {a.shape}:")
        self(_text(a))


def _shrink(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """`image` scaled down (box filter, per channel, in float) to at most `max_side` pixels."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    planes = image[:, :, None] if image.ndim == 2 else image
    shrunk = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(planes[:, :, c])).resize(
                size, Image.Resampling.BOX
            )
        )
        for c in range(planes.shape[2])
    ]
    out = np.clip(np.stack(shrunk, axis=-1), 0.0, 1.0).astype(np.float32)  # (h', w', C)
    return out[:, :, 0] if image.ndim == 2 else out


def _examples(say: _Printer, rng: np.random.Generator) -> dict:
    """Print the small-matrix examples of the walkthrough; return the arrays the pictures reuse."""
    from cnnkit import functional as F

    matrix = rng.integers(0, 10, size=(6, 6)).astype(np.float32)
    kernel = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float32)
    say("1. Convolution by hand: slide a 3x3 kernel over a 6x6 matrix, multiply, add")
    say.show("matrix", matrix)
    say.show("kernel (bright left, dark right responds positively)", kernel)
    say.show("conv2d(matrix, kernel, stride=1)", F.conv2d(matrix, kernel, stride=1))
    say.show("conv2d(matrix, kernel, stride=3)", F.conv2d(matrix, kernel, stride=3))
    say(
        "output size = floor((input + 2*padding - kernel) / stride) + 1: "
        "(6 - 3)/1 + 1 = 4, floor((6 - 3)/3) + 1 = 2"
    )
    say()

    pool_input = rng.permutation(16).reshape(4, 4).astype(np.float32)
    say("2. Max pooling: keep the largest value of each 2x2 window")
    say.show("matrix", pool_input)
    say.show("max_pool2d(matrix, kernel_size=2)", F.max_pool2d(pool_input, 2))
    say()

    say("3. Global average pooling: one number per channel, the mean of the whole map")
    say.show("matrix (from step 1)", matrix)
    pooled = F.global_avg_pool2d(matrix)
    say(f"global_avg_pool2d(matrix) = {float(pooled):.4g}  shape {np.shape(pooled)}")
    maps = np.stack([matrix, F.relu(F.conv2d(matrix, kernel, padding=1)), 1.0 - matrix / 9])
    say(
        f"on a stack of {maps.shape[0]} feature maps {maps.shape}: "
        f"{_text(F.global_avg_pool2d(maps))}  shape {F.global_avg_pool2d(maps).shape}"
    )
    say()

    values = rng.normal(size=5).astype(np.float32)
    say("4. Softmax and sigmoid of random values")
    say.show("x", values)
    soft = F.softmax(values)
    say.show("softmax(x)  (positive, sums to 1: class probabilities)", soft)
    say(f"sum = {float(soft.sum()):.4f}")
    say.show("sigmoid(x)  (each squashed into (0, 1) on its own)", F.sigmoid(values))
    say()
    return {"matrix": matrix, "kernel": kernel, "pool_input": pool_input}


def _layout_rule(say: _Printer, image: np.ndarray) -> None:
    """Print the one layout rule, with the loaded image's own shapes."""
    from cnnkit import functional as F
    from cnnkit.layout import pool_image, to_tensor

    tensor = to_tensor(image)
    say(
        "0. Images and tensors: images are (height, width, channels), as loaded, filtered "
        "and plotted; tensors are (channels, height, width), or (batch, channels, height, "
        "width), as the functional ops and nn layers take them. Convert with "
        "ck.to_tensor(image) and ck.to_image(tensor)."
    )
    say(
        f"image {image.shape} -> ck.to_tensor(image) {tensor.shape}, "
        f"ck.to_tensor(image, batch=True) {(1, *tensor.shape)}"
    )
    say(
        f"one mean per colour channel: F.global_avg_pool2d(ck.to_tensor(image)) = "
        f"{_text(F.global_avg_pool2d(tensor))}"
    )
    say(
        f"pooling an image keeps it an image: ck.pool_image(image, 2).shape = "
        f"{pool_image(image, 2).shape}"
    )
    say()


def _pictures(image: np.ndarray, source: str, arrays: dict, loaded_shape=None) -> list[Picture]:
    """The tour's pictures, in walkthrough order; nothing is drawn until `make` is called."""
    from cnnkit import functional as F
    from cnnkit import kernels, plot
    from cnnkit.filtering import filter2d
    from cnnkit.images import rgb_to_gray

    gray = rgb_to_gray(image) if image.ndim == 3 else image
    sobel = kernels.get("sobel_top")
    # No padding: a zero border would show up as a strong false edge around the picture.
    response = filter2d(gray, sobel)
    rectified = F.relu(response)
    directions = ["sobel_top", "sobel_bottom", "sobel_left", "sobel_right"]

    def figure(build):
        return lambda path: save_figure(build(), path)

    def gif(animate, **options):
        return lambda path: animate(path, progress=False, **options)

    def shape_text(a):
        return f"({', '.join(map(str, a.shape))})"

    m, k = arrays["matrix"], arrays["kernel"]
    loaded_shape = image.shape if loaded_shape is None else tuple(loaded_shape)
    shrunk = "" if loaded_shape == image.shape else f", shown shrunk to {image.shape}"
    return [
        Picture(
            "01_image.png",
            "An image is a 3-D array",
            f"The image {source!r} as loaded: a NumPy array of shape {loaded_shape} "
            f"(height, width, channels), floats from 0 to 1{shrunk}. Axes count pixels.",
            figure(
                lambda: plot.show_image(
                    image, title=f"{source}: shape {image.shape} (height, width, channels)"
                )
            ),
        ),
        Picture(
            "02_channels.png",
            "An image is a 3-D array",
            "Each colour channel on its own, image[:, :, k], drawn from black (0) to "
            "its colour (1): bright where the pixel holds much of that colour.",
            figure(lambda: plot.show_channels(image)),
        ),
        Picture(
            "03_sobel_top_kernel.png",
            "A Sobel kernel finds edges",
            "The sobel_top kernel: +1 +2 +1 on the top row, -1 -2 -1 on the bottom. Its "
            "weights sum to 0, so flat regions give 0 and an edge whose top side is "
            "brighter gives a positive response.",
            figure(lambda: plot.show_kernel(sobel, title="sobel_top kernel (3\u00d73)")),
        ),
        Picture(
            "04_sobel_top.png",
            "A Sobel kernel finds edges",
            f"sobel_top applied to the grayscale image (no padding, so the output "
            f"{shape_text(response)} is 2 pixels smaller than the image on each axis): "
            "red where the top side of an edge is "
            "brighter, blue where the bottom side is, white where nothing changes.",
            figure(
                lambda: plot.show_feature_maps(
                    response, titles=[f"sobel_top response, shape {shape_text(response)}"]
                )
            ),
        ),
        Picture(
            "05_sobel_directions.png",
            "A Sobel kernel finds edges",
            "The four Sobel directions: top and bottom find horizontal edges, left and "
            "right vertical ones; opposite directions give the same map with the sign "
            "flipped.",
            figure(
                lambda: plot.show_feature_maps(
                    [filter2d(gray, kernels.get(n)) for n in directions],
                    titles=directions,
                    ncols=2,
                    title="one image, four edge detectors (red > 0 > blue)",
                )
            ),
        ),
        Picture(
            "06_stride_padding.png",
            "Stride and padding",
            "The same sobel_top kernel with different strides and paddings, all drawn "
            "at the same pixel scale: padding 1 keeps the input's size, stride 2 halves "
            "each side, stride 3 divides it by three. Each title gives the output shape. "
            "Zero padding puts black next to the picture's border, which the kernel "
            "sees as an edge: a thin blue line along the top of every padded output "
            "(black above a brighter picture) and, at stride 1, a red one along the "
            "bottom (a brighter picture above black).",
            figure(
                lambda: plot.compare_stride_padding(gray, sobel, [(1, 0), (1, 1), (2, 1), (3, 1)])
            ),
        ),
        Picture(
            "07_relu.png",
            "ReLU",
            "ReLU on the sobel_top feature map: negative values (blue) become 0 "
            "(white) and positive ones pass unchanged, so only edges with a brighter "
            "top side remain. Both maps share one colour scale.",
            figure(
                lambda: plot.show_feature_maps(
                    [response, rectified],
                    titles=["feature map (sobel_top)", "ReLU(feature map) = max(0, x)"],
                    shared_colors=True,
                    label="response",
                )
            ),
        ),
        Picture(
            "08_max_pool.png",
            "Max pooling",
            "Max pooling the ReLU map: a 2\u00d72 window with stride 2 keeps the "
            "strongest value of each window and halves each side; 4\u00d74 quarters it. "
            "Each map fills its panel, so the pooled ones look coarser, yet the edges "
            "survive the downsampling. All three share one colour scale: pooling only "
            "keeps values, so the pooled maps are brighter because each cell holds the "
            "strongest value of its window, not because any value grew.",
            figure(
                lambda: plot.show_feature_maps(
                    [rectified, F.max_pool2d(rectified, 2), F.max_pool2d(rectified, 4)],
                    titles=[
                        f"ReLU map {shape_text(rectified)}",
                        f"max_pool2d 2\u00d72 {shape_text(F.max_pool2d(rectified, 2))}",
                        f"max_pool2d 4\u00d74 {shape_text(F.max_pool2d(rectified, 4))}",
                    ],
                    shared_colors=True,
                    label="response",
                )
            ),
        ),
        Picture(
            "09_conv_stride1.gif",
            "Animations: the kernel sliding",
            "The 6\u00d76 matrix and 3\u00d73 kernel printed by the tour, stride 1: "
            "yellow is the kernel (its weights in the corners), green the input, pink "
            "the output written one cell per frame, 4\u00d74 cells.",
            gif(plot.animate_conv, values=m, kernel=k, stride=1),
        ),
        Picture(
            "10_conv_stride3.gif",
            "Animations: the kernel sliding",
            "The same matrix and kernel with stride 3: the kernel jumps three cells, "
            "the output is 2\u00d72.",
            gif(plot.animate_conv, values=m, kernel=k, stride=3),
        ),
        Picture(
            "11_conv_padding1_stride2.gif",
            "Animations: the kernel sliding",
            "A 5\u00d75 input with zero padding 1 (grey, dashed) and stride 2: the "
            "padding lets the kernel centre on border pixels; output 3\u00d73.",
            gif(plot.animate_conv, input_size=5, kernel_size=3, stride=2, padding=1, seed=SEED),
        ),
        Picture(
            "12_conv_dilation2.gif",
            "Animations: the kernel sliding",
            "A 7\u00d77 input with a dilated kernel (dilation 2): the 3\u00d73 kernel's "
            "taps are spread two cells apart and see a 5\u00d75 area; output 3\u00d73.",
            gif(plot.animate_conv, input_size=7, kernel_size=3, dilation=2, seed=SEED),
        ),
        Picture(
            "13_max_pool.gif",
            "Animations: the kernel sliding",
            "Max pooling the 4\u00d74 matrix printed by the tour with a 2\u00d72 window "
            "and stride 2: the maximum of each window (orange) becomes the output cell.",
            gif(plot.animate_pool, values=arrays["pool_input"], kernel_size=2),
        ),
    ]


_INTRO = {
    "An image is a 3-D array": "A typical image is RGB: three channels holding the red, "
    "green and blue value of each pixel.",
    "A Sobel kernel finds edges": "A kernel (also called weights or a filter) slides over "
    "the image; at each position the output is the sum of the kernel times the pixels "
    "under it. In a CNN these kernels are learned during training.",
    "Stride and padding": "Stride: how many pixels the kernel moves between positions. "
    "Padding: pixels added around the edges so the kernel also fits over the border.",
    "ReLU": "ReLU keeps positive features and zeroes negative ones; it works well for "
    "image tasks and is cheap.",
    "Max pooling": "Pooling downsamples a feature map, keeping the strongest feature of "
    "each window, so later layers see more of the image at lower cost.",
    "Animations: the kernel sliding": "Yellow: the kernel. Green: the input. Grey dashed: "
    "zero padding. Pink: the output (the activation or feature map), one cell per frame.",
}


def _index_html(source: str, pictures: list[Picture], printed: list[str]) -> str:
    """The page that lays out every picture with its caption."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>cnnkit tour</title>",
        f'<meta name="generator" content="{GENERATOR}">',
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222}figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}"
        "figcaption{margin-top:.4em;color:#444}pre{background:#f6f6f6;padding:1em;"
        "overflow-x:auto}</style>",
        "</head><body>",
        "<h1>cnnkit tour: convolutional neural networks, step by step</h1>",
        f"<p>Image: <code>{html.escape(source)}</code>. Written by <code>cnnkit tour</code>; "
        "every picture below is a file in this folder.</p>",
        "<h2>The examples in numbers</h2>",
        f"<pre>{html.escape(chr(10).join(printed))}</pre>",
    ]
    section = None
    for picture in pictures:
        if picture.section != section:
            section = picture.section
            parts.append(f"<h2>{html.escape(section)}</h2>")
            if section in _INTRO:
                parts.append(f"<p>{html.escape(_INTRO[section])}</p>")
        name = html.escape(picture.name)
        parts.append(
            f'<figure id="{name}"><img src="{name}" alt="{html.escape(picture.caption)}">'
            f"<figcaption><b>{name}</b>: {html.escape(picture.caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _check_out(out: Path, force: bool) -> None:
    """Refuse to replace an index.html a tour did not write (without `force`); check access."""
    index = out / "index.html"
    if index.exists() and not force:
        with open(index, "rb") as file:
            head = file.read(4096)
        if f'<meta name="generator" content="{GENERATOR}">'.encode() not in head:
            raise UsageError(
                "--out",
                f"{index} exists and was not written by cnnkit tour; "
                "pass --force to replace it, or choose another folder",
            )
    check_writable(index, "--out")


def run(args: argparse.Namespace) -> int:
    """Print the examples, write the pictures and index.html; return the exit status."""
    from cnnkit.images import load_image

    out: Path = args.out
    _check_out(out, args.force)
    source = str(args.image)
    image = load_image(source)
    say = _Printer(quiet=args.quiet)
    say(
        f"cnnkit tour on {source!r}: image shape {image.shape} (height, width, channels), "
        f"dtype {image.dtype}"
    )
    shown = _shrink(image)
    if shown.shape != image.shape:
        say(f"(shrunk to {shown.shape} for the pictures)")
    say()
    _layout_rule(say, image)
    arrays = _examples(say, np.random.default_rng(SEED))
    pictures = _pictures(shown, source, arrays, loaded_shape=image.shape)
    for name in [p.name for p in pictures] + ["index.html"]:
        check_not_input(out / name, [source])
    out.mkdir(parents=True, exist_ok=True)
    for picture in progress(pictures, desc="tour pictures", unit="picture", quiet=args.quiet):
        with atomic_path(out / picture.name) as temporary:
            picture.make(temporary)
    with atomic_path(out / "index.html") as temporary:
        temporary.write_text(_index_html(source, pictures, say.lines[:-1]), encoding="utf-8")
    print(
        f"wrote {len(pictures)} pictures and index.html to {out}/ - open "
        f"{out / 'index.html'} in a browser"
    )
    return 0
