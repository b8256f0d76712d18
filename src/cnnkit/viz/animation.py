"""GIF animations of a window sliding over an input: convolution and max pooling.

The pictures of `conv_arithmetic <https://github.com/vdumoulin/conv_arithmetic>`_, made
for any input size, kernel size, stride, padding and dilation, with real numbers: the
input is green, zero padding grey with dashed edges, the kernel yellow (its weight in
the corner of each cell it covers), and each output cell turns pink as its value is
written. There is exactly one frame per output cell.

The numbers come from :func:`cnnkit.functional.conv2d` and
:func:`cnnkit.functional.max_pool2d`; the frames are drawn with matplotlib's Agg
renderer and written as a looping GIF with Pillow. :mod:`cnnkit.plot` exports both
functions.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from PIL import Image
from tqdm import tqdm

from cnnkit._validation import (
    as_float_array,
    check_ndim,
    check_nonnegative,
    check_positive,
    to_int,
)
from cnnkit._validation import output_size as _output_size
from cnnkit.functional import conv2d, max_pool2d
from cnnkit.viz._figure import dims as _dims
from cnnkit.viz._figure import format_number as _fmt

__all__ = ["animate_conv", "animate_pool", "output_size"]

INPUT_COLOR = "#93d393"  # green
PADDING_COLOR = "#e3e3e3"  # grey
KERNEL_COLOR = "#ffe14d"  # yellow
KERNEL_PADDING_COLOR = "#fff1a8"  # pale yellow: padding under the kernel
MAX_COLOR = "#ff9326"  # orange: the maximum of a pooling window
OUTPUT_COLOR = "#f9b4d2"  # pink
CURRENT_COLOR = "#ee6aa7"  # the output cell being written
EMPTY_COLOR = "#ffffff"
WEIGHT_TEXT_COLOR = "#6b4e00"

#: Milliseconds each frame is shown (the last one three times as long).
DEFAULT_DURATION_MS = 800
#: Frames above which a progress bar is shown when ``progress=None``.
PROGRESS_MIN_FRAMES = 60
#: The most cells the padded input may have per side: beyond it the numbers in the cells
#: cannot be read in the figure, and the frames (one per output cell) take minutes.
MAX_GRID_SIDE = 20

_MAX_CELL_IN = 0.6  # cell side in inches for small grids
_MAX_GRIDS_WIDTH_IN = 10.0  # both grids together, before margins
_MAX_GRIDS_HEIGHT_IN = 6.5
_MIN_WIDTH_IN = 7.0  # room for the title, caption and legend
_GAP_CELLS = 1.5  # between the input and the output grid
_DPI = 100
_MAX_TERMS = 9  # caption lists the products up to this many taps


def output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Length of a convolution or pooling output along one axis.

    Parameters
    ----------
    size, kernel_size, stride, padding, dilation : int
        Along one axis, as for :func:`cnnkit.functional.conv2d`.

    Returns
    -------
    int
        ``floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``,
        or 0 when the dilated kernel does not fit in the padded input.

    Examples
    --------
    >>> from cnnkit.viz.animation import output_size
    >>> output_size(5, 3, stride=2, padding=1)
    3
    """
    if dilation * (kernel_size - 1) + 1 > size + 2 * padding:  # the kernel does not fit
        return 0
    return _output_size(size, kernel_size, stride, padding, dilation)


@dataclass(frozen=True)
class _Step:
    """One frame: the output cell written, the padded-input cells read, the value."""

    row: int
    col: int
    taps: tuple[tuple[int, int], ...]  # (row, col) in padded coordinates, kernel order
    value: float
    highlight: tuple[int, int] | None = None  # the max of a pooling window


@dataclass(frozen=True)
class _Scene:
    """Everything a frame shows besides the step."""

    op: str  # "conv" or "maxpool"
    values: np.ndarray  # (H, W) input
    kernel: np.ndarray | None  # (kh, kw), conv only
    padding: tuple[int, int]
    out_shape: tuple[int, int]
    title: str
    input_label: str
    output_label: str


def _scene(op, x, kernel, config, out_shape, *, headline, window, padding_word) -> _Scene:
    """The titles and labels both animations show around their frames."""
    stride, pad, dil = config
    label = f"input {_dims(x.shape)}"
    if pad != (0, 0):
        label += f" + {padding_word} {pad[0] if pad[0] == pad[1] else pad}"
    title = (
        f"{headline}\n"
        f"input {_dims(x.shape)}, {window}, {_setting('stride', stride)}, "
        f"{_setting('padding', pad)}, {_setting('dilation', dil)} "
        f"\u2192 output {_dims(out_shape)}"
    )
    return _Scene(
        op=op,
        values=x,
        kernel=kernel,
        padding=pad,
        out_shape=out_shape,
        title=title,
        input_label=label,
        output_label=f"output {_dims(out_shape)}",
    )


def _check_config(op, input_shape, kernel_size, stride, padding, dilation):
    """Validate sizes that must fit together; return them as pairs."""
    stride = check_positive("stride", stride)
    padding = check_nonnegative("padding", padding)
    dilation = check_positive("dilation", dilation)
    for axis in (0, 1):
        span = dilation[axis] * (kernel_size[axis] - 1) + 1
        padded = input_shape[axis] + 2 * padding[axis]
        if padded > MAX_GRID_SIDE:
            raise ValueError(
                f"the padded input is {padded} cells across (input {input_shape[axis]} + "
                f"2 x padding {padding[axis]}); at most {MAX_GRID_SIDE} can be drawn legibly"
            )
        if span > padded:
            raise ValueError(
                f"kernel_size {kernel_size[axis]} with dilation {dilation[axis]} spans "
                f"{span} cells, more than the padded input ({padded} = input "
                f"{input_shape[axis]} + 2 x padding {padding[axis]})"
            )
        if op == "maxpool" and 2 * padding[axis] > kernel_size[axis]:
            raise ValueError(
                f"padding must be at most half of kernel_size for max pooling, got padding "
                f"{padding[axis]} with kernel_size {kernel_size[axis]}"
            )
    return stride, padding, dilation


def _input_values(values, input_size, rng, high):
    """The given input as float64, or a random integer-valued one of `input_size`."""
    if values is None:
        shape = check_positive("input_size", input_size)
        if max(shape) > MAX_GRID_SIDE:
            raise ValueError(
                f"input_size must be at most {MAX_GRID_SIDE} to be drawn "
                f"legibly, got {input_size!r}"
            )
        return rng.integers(0, high, size=shape).astype(np.float64)
    values = as_float_array("values", values)
    check_ndim("values", values, (2,), "(H, W)")
    if values.size == 0:
        raise ValueError(f"values must not be empty, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite, got NaN or infinity")
    return values.astype(np.float64)


def _conv_steps(values, kernel, stride, padding, dilation):
    """The frames of a convolution: window taps and the value conv2d gives each cell."""
    out = conv2d(values, kernel, stride=stride, padding=padding, dilation=dilation)
    kh, kw = kernel.shape
    steps = []
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            taps = tuple(
                (i * stride[0] + a * dilation[0], j * stride[1] + b * dilation[1])
                for a in range(kh)
                for b in range(kw)
            )
            steps.append(_Step(i, j, taps, float(out[i, j])))
    return out.shape, steps


def _pool_steps(values, kernel_size, stride, padding, dilation):
    """The frames of a max pool, each with the cell max_pool2d picked."""
    out, indices = max_pool2d(
        values,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        return_indices=True,
    )
    width = values.shape[1]
    steps = []
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            taps = tuple(
                (i * stride[0] + a * dilation[0], j * stride[1] + b * dilation[1])
                for a in range(kernel_size[0])
                for b in range(kernel_size[1])
            )
            r, c = divmod(int(indices[i, j]), width)
            highlight = (r + padding[0], c + padding[1])
            steps.append(_Step(i, j, taps, float(out[i, j]), highlight))
    return out.shape, steps


def _setting(name, pair) -> str:
    return f"{name} {pair[0]}" if pair[0] == pair[1] else f"{name} {pair}"


class _Board:
    """The matplotlib figure of one animation, redrawn frame by frame by blitting.

    The grids, their numbers, the labels and the legend are drawn once into a saved
    background; each frame restores it and draws only what moves (the window's cells
    and numbers, the current output cell, the caption). A written output cell is then
    drawn into the background, so it stays pink in every later frame.
    """

    def __init__(self, scene: _Scene):
        self.scene = scene
        h, w = scene.values.shape
        ph, pw = scene.padding
        hp, wp = h + 2 * ph, w + 2 * pw
        ho, wo = scene.out_shape
        self.out_x0 = wp + _GAP_CELLS
        total_w = wp + _GAP_CELLS + wo
        total_h = max(hp, ho)
        cell = min(_MAX_CELL_IN, _MAX_GRIDS_WIDTH_IN / total_w, _MAX_GRIDS_HEIGHT_IN / total_h)
        title_in, label_in, caption_in, legend_in = 0.7, 0.35, 0.6, 0.4
        width_in = max(_MIN_WIDTH_IN, total_w * cell + 0.6)
        height_in = title_in + label_in + total_h * cell + caption_in + legend_in
        self.cell_pt = cell * 72
        self.value_size = min(14.0, 0.38 * self.cell_pt)
        self.show_text = self.value_size >= 5

        fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
        self.canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        margin_x = (width_in / cell - total_w) / 2
        ax.set_xlim(-margin_x, total_w + margin_x)
        ax.set_ylim(total_h + (caption_in + legend_in) / cell, -(title_in + label_in) / cell)
        fig.text(0.5, 1 - 0.1 / height_in, scene.title, ha="center", va="top", fontsize=11)

        # The input grid, padding included: green cells, grey dashed padding.
        self.padded = np.zeros((hp, wp), dtype=bool)
        self.padded[:ph, :] = self.padded[hp - ph :, :] = True
        self.padded[:, :pw] = self.padded[:, wp - pw :] = True
        flat = self.padded.ravel()
        ax.add_collection(
            PatchCollection(
                [Rectangle((c, r), 1, 1) for r in range(hp) for c in range(wp)],
                facecolors=[PADDING_COLOR if p else INPUT_COLOR for p in flat],
                edgecolors=["#8c8c8c" if p else "#2f5f2f" for p in flat],
                linestyles=["--" if p else "-" for p in flat],
                linewidths=0.8,
            )
        )
        if self.show_text:
            for r in range(hp):
                for c in range(wp):
                    text, color = self._input_text(r, c)
                    ax.text(
                        c + 0.5,
                        r + 0.5,
                        text,
                        ha="center",
                        va="center",
                        color=color,
                        fontsize=self._fit(text),
                    )
        ax.text(wp / 2, -0.12 / cell, scene.input_label, ha="center", va="bottom", fontsize=10)

        # The output grid, white until written.
        ax.add_collection(
            PatchCollection(
                [Rectangle((self.out_x0 + c, r), 1, 1) for r in range(ho) for c in range(wo)],
                facecolors=EMPTY_COLOR,
                edgecolors="#7a3557",
                linewidths=0.8,
            )
        )
        ax.text(
            self.out_x0 + wo / 2,
            -0.12 / cell,
            scene.output_label,
            ha="center",
            va="bottom",
            fontsize=10,
        )

        handles = [Patch(facecolor=INPUT_COLOR, edgecolor="#2f5f2f", label="input")]
        if ph or pw:
            label = "zero padding" if scene.op == "conv" else "padding (\u2212\u221e)"
            handles.append(
                Patch(facecolor=PADDING_COLOR, edgecolor="#8c8c8c", linestyle="--", label=label)
            )
        handles.append(
            Patch(
                facecolor=KERNEL_COLOR,
                edgecolor="#b38f00",
                label="kernel" if scene.op == "conv" else "pooling window",
            )
        )
        if scene.op == "maxpool":
            handles.append(Patch(facecolor=MAX_COLOR, edgecolor="#b38f00", label="maximum"))
        handles.append(Patch(facecolor=OUTPUT_COLOR, edgecolor="#7a3557", label="output"))
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=len(handles),
            frameon=False,
            fontsize=9,
            bbox_to_anchor=(0.5, 0.02 / height_in),
        )

        # What moves: drawn by hand each frame, never by canvas.draw().
        self.ax = ax
        self.tap_cells: list = []
        self.tap_values: list = []
        self.tap_weights: list = []
        self.window = Rectangle(
            (0, 0), 1, 1, fill=False, edgecolor="#b38f00", linewidth=2.2, animated=True
        )
        self.out_cell = Rectangle(
            (0, 0), 1, 1, facecolor=CURRENT_COLOR, edgecolor="#a3004f", linewidth=2.2, animated=True
        )
        self.done_cell = Rectangle(
            (0, 0), 1, 1, facecolor=OUTPUT_COLOR, edgecolor="#7a3557", linewidth=0.8, animated=True
        )
        for patch in (self.window, self.out_cell, self.done_cell):
            ax.add_patch(patch)
        self.out_value = ax.text(0, 0, "", ha="center", va="center", animated=True)
        self.caption = ax.text(
            total_w / 2,
            total_h + 0.15 / cell,
            "",
            ha="center",
            va="top",
            fontsize=10,
            linespacing=1.5,
            animated=True,
        )
        self.fig = fig
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)

    def _input_text(self, r: int, c: int) -> tuple[str, str]:
        """The number shown in padded-input cell (r, c), and its colour."""
        if self.padded[r, c]:
            return ("0" if self.scene.op == "conv" else "\u2212\u221e"), "#808080"
        ph, pw = self.scene.padding
        return _fmt(self.scene.values[r - ph, c - pw]), "black"

    def _fit(self, text: str) -> float:
        """A font size for `text` that fits in a cell."""
        return min(self.value_size, 0.85 * self.cell_pt / (0.62 * max(len(text), 1)))

    def _tap_artists(self, n: int) -> None:
        """Create the window's cell overlays on first use (the window size is fixed)."""
        while len(self.tap_cells) < n:
            cell = Rectangle((0, 0), 1, 1, linewidth=0.8, animated=True)
            self.ax.add_patch(cell)
            self.tap_cells.append(cell)
            self.tap_values.append(self.ax.text(0, 0, "", ha="center", va="center", animated=True))
            self.tap_weights.append(
                self.ax.text(
                    0,
                    0,
                    "",
                    ha="right",
                    va="bottom",
                    color=WEIGHT_TEXT_COLOR,
                    fontsize=max(4.0, 0.22 * self.cell_pt),
                    animated=True,
                )
            )

    def draw(self, step: _Step) -> np.ndarray:
        """Draw the frame of `step`; return its RGB pixels (H, W, 3) uint8."""
        fig, canvas = self.fig, self.canvas
        canvas.restore_region(self.background)
        self._tap_artists(len(step.taps))
        weights = self.scene.kernel.ravel() if self.scene.kernel is not None else None
        for k, (r, c) in enumerate(step.taps):
            padding = bool(self.padded[r, c])
            face = KERNEL_PADDING_COLOR if padding else KERNEL_COLOR
            if step.highlight == (r, c):
                face = MAX_COLOR
            cell = self.tap_cells[k]
            cell.set_xy((c, r))
            cell.set_facecolor(face)
            cell.set_edgecolor("#8c8c8c" if padding else "#2f5f2f")
            cell.set_linestyle("--" if padding else "-")
            fig.draw_artist(cell)
            if self.show_text:
                text, color = self._input_text(r, c)
                value = self.tap_values[k]
                value.set_text(text)
                value.set_color(color)
                value.set_fontsize(self._fit(text))
                value.set_position((c + 0.5, r + 0.5))
                fig.draw_artist(value)
                if weights is not None:
                    weight = self.tap_weights[k]
                    weight.set_text("\u00d7" + _fmt(weights[k]))
                    weight.set_position((c + 0.95, r + 0.97))
                    fig.draw_artist(weight)
        rows = [r for r, _ in step.taps]
        cols = [c for _, c in step.taps]
        self.window.set_bounds(
            min(cols), min(rows), max(cols) - min(cols) + 1, max(rows) - min(rows) + 1
        )
        fig.draw_artist(self.window)
        self._draw_output(self.out_cell, step)
        self.caption.set_text(self._caption(step))
        fig.draw_artist(self.caption)
        pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8

        # The written cell stays pink: put it into the background of later frames.
        canvas.restore_region(self.background)
        self._draw_output(self.done_cell, step)
        self.background = canvas.copy_from_bbox(fig.bbox)
        return pixels

    def _draw_output(self, patch, step: _Step) -> None:
        """Draw output cell (step.row, step.col) with `patch` and its value."""
        patch.set_xy((self.out_x0 + step.col, step.row))
        self.fig.draw_artist(patch)
        if self.show_text:
            text = _fmt(step.value)
            self.out_value.set_text(text)
            self.out_value.set_fontsize(self._fit(text))
            self.out_value.set_position((self.out_x0 + step.col + 0.5, step.row + 0.5))
            self.fig.draw_artist(self.out_value)

    def _caption(self, step: _Step) -> str:
        """What the frame computes, with its numbers."""
        scene = self.scene
        ph, pw = scene.padding
        h, w = scene.values.shape

        def read(r, c):
            if ph <= r < ph + h and pw <= c < pw + w:
                return scene.values[r - ph, c - pw]
            return 0.0 if scene.op == "conv" else -np.inf

        inputs = [read(r, c) for r, c in step.taps]
        head = f"output[{step.row}, {step.col}] = {_fmt(step.value)}"
        if scene.op == "maxpool":
            shown = ["\u2212\u221e" if np.isinf(v) else _fmt(v) for v in inputs]
            if len(shown) > 3 * _MAX_TERMS:
                return f"{head}\n= max of the {len(shown)} values in the window"
            return f"{head}\n= max({', '.join(shown)})"
        if len(inputs) > _MAX_TERMS:
            return f"{head}\n= sum of the {len(inputs)} products input \u00d7 kernel weight"
        terms = []
        assert scene.kernel is not None  # a conv scene (pooling returned above)
        for v, k in zip(inputs, scene.kernel.ravel()):
            kt = _fmt(k)
            terms.append(f"{_fmt(v)}\u00d7{'(' + kt + ')' if k < 0 else kt}")
        return f"{head}\n= " + " + ".join(terms)

    def close(self):
        """Drop the figure's artists."""
        self.fig.clear()


def _write_gif(path, scene: _Scene, steps: list[_Step], duration, progress) -> Path:
    """Render one frame per step and save them as a looping GIF."""
    duration = to_int("duration", duration)
    if duration < 10:
        raise ValueError(f"duration must be >= 10 milliseconds, got {duration}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    if progress is None:
        progress = len(steps) > PROGRESS_MIN_FRAMES
    board = _Board(scene)
    frames = []
    iterator = steps
    if progress:
        # disable=None: off when stderr is not a terminal
        iterator = tqdm(
            steps,
            desc=f"frames of {Path(path).name}",
            unit="frame",
            disable=None,
            leave=False,
            file=sys.stderr,
        )
    try:
        for step in iterator:
            rgb = board.draw(step)
            # One palette per frame, no dithering: flat colours stay flat.
            frames.append(
                Image.fromarray(rgb).quantize(
                    colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
                )
            )
    finally:
        board.close()
    durations = [duration] * (len(frames) - 1) + [3 * duration]
    frames[0].save(
        path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
    )
    return Path(path)


def animate_conv(
    path,
    input_size=5,
    kernel_size=3,
    stride=1,
    padding=0,
    dilation=1,
    values=None,
    kernel=None,
    *,
    seed=0,
    duration=DEFAULT_DURATION_MS,
    progress=None,
) -> Path:
    """Write a GIF of a kernel sliding over an input, one frame per output cell.

    The input is green, the zero padding grey with dashed edges, the kernel yellow with
    its weight in the corner of each cell it covers (spread out by the dilation), and
    each output cell turns pink as :func:`cnnkit.functional.conv2d` gives its value; the
    caption under the grids writes the sum of products.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the GIF (overwritten if it exists).
    input_size : int or (int, int), default 5
        Height and width of a random input; ignored when `values` is given.
    kernel_size : int or (int, int), default 3
        Size of a random kernel; ignored when `kernel` is given.
    stride, padding, dilation : int or (int, int)
        As for :func:`cnnkit.functional.conv2d` (padding with zeros).
    values : ndarray of shape (H, W), optional
        The input. Default: random integers 0 to 3.
    kernel : ndarray of shape (kh, kw), optional
        The kernel. Default: random integers 0 to 2.
    seed : int, default 0
        Seed of the random input and kernel.
    duration : int, default 800
        Milliseconds per frame; the last frame stays three times as long.
    progress : bool or None, default None
        Show a tqdm progress bar (on a terminal only); None shows one for more than
        60 frames.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    ValueError
        A size, stride or dilation below 1, negative padding, or a dilated kernel
        larger than the padded input.

    Notes
    -----
    The output has ``floor((H + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1``
    rows (columns alike), and the GIF as many frames as output cells.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from cnnkit.plot import animate_conv
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     gif = animate_conv(pathlib.Path(tmp) / "conv.gif", input_size=4, stride=1)
    ...     with Image.open(gif) as im:
    ...         im.n_frames
    4
    """
    rng = np.random.default_rng(to_int("seed", seed))
    x = _input_values(values, input_size, rng, high=4)
    if kernel is None:
        ksize = check_positive("kernel_size", kernel_size)
        weight = rng.integers(0, 3, size=ksize).astype(np.float64)
    else:
        weight = as_float_array("kernel", kernel)
        check_ndim("kernel", weight, (2,), "(kh, kw)")
        if weight.size == 0 or not np.all(np.isfinite(weight)):
            raise ValueError(f"kernel must be non-empty and finite, got shape {weight.shape}")
        weight = weight.astype(np.float64)
    stride, pad, dil = _check_config("conv", x.shape, weight.shape, stride, padding, dilation)
    out_shape, steps = _conv_steps(x, weight, stride, pad, dil)
    scene = _scene(
        "conv",
        x,
        weight,
        (stride, pad, dil),
        out_shape,
        headline="convolution (cross-correlation): slide the kernel, multiply, add",
        window=f"kernel {_dims(weight.shape)}",
        padding_word="zero padding",
    )
    return _write_gif(path, scene, steps, duration, progress)


def animate_pool(
    path,
    input_size=4,
    kernel_size=2,
    stride=None,
    padding=0,
    dilation=1,
    values=None,
    *,
    seed=0,
    duration=DEFAULT_DURATION_MS,
    progress=None,
) -> Path:
    """Write a GIF of max pooling, one frame per output cell, the maximum highlighted.

    The input is green, the window yellow with its maximum orange (the element
    :func:`cnnkit.functional.max_pool2d` picks, the first one on a tie), padding grey
    (it reads as minus infinity, so it never wins), and each output cell turns pink as
    its value is written.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the GIF (overwritten if it exists).
    input_size : int or (int, int), default 4
        Height and width of a random input; ignored when `values` is given.
    kernel_size : int or (int, int), default 2
        Pooling window size.
    stride : int or (int, int), optional
        Default: `kernel_size`.
    padding, dilation : int or (int, int)
        As for :func:`cnnkit.functional.max_pool2d`; padding at most half the window.
    values : ndarray of shape (H, W), optional
        The input. Default: random integers 0 to 9.
    seed : int, default 0
        Seed of the random input.
    duration : int, default 800
        Milliseconds per frame; the last frame stays three times as long.
    progress : bool or None, default None
        Show a tqdm progress bar (on a terminal only); None shows one for more than
        60 frames.

    Returns
    -------
    pathlib.Path
        `path`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from cnnkit.plot import animate_pool
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     gif = animate_pool(pathlib.Path(tmp) / "pool.gif", input_size=4)
    ...     with Image.open(gif) as im:
    ...         im.n_frames
    4
    """
    rng = np.random.default_rng(to_int("seed", seed))
    x = _input_values(values, input_size, rng, high=10)
    ksize = check_positive("kernel_size", kernel_size)
    stride = ksize if stride is None else stride
    stride, pad, dil = _check_config("maxpool", x.shape, ksize, stride, padding, dilation)
    out_shape, steps = _pool_steps(x, ksize, stride, pad, dil)
    scene = _scene(
        "maxpool",
        x,
        None,
        (stride, pad, dil),
        out_shape,
        headline="max pooling: keep the largest value of each window",
        window=f"window {_dims(ksize)}",
        padding_word="padding",
    )
    return _write_gif(path, scene, steps, duration, progress)
