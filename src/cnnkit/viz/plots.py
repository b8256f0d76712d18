"""Figures of images, channels, kernels, feature maps and training runs.

Each function draws one :class:`~cnnkit.viz._figure.CnnkitFigure` and returns it; it
never calls ``plt.show()``. See :mod:`cnnkit.plot` for how the figures are seen.

Colour conventions: an image's channels in their own colour (black to red, green,
blue); values that can be negative (kernels, filter responses) on a blue-white-red
scale centred on 0, with a colour bar; values that cannot on ``viridis``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.ticker import MaxNLocator

from cnnkit._validation import as_float_array, check_ndim, check_positive, to_int
from cnnkit.filtering import filter2d, to_display
from cnnkit.viz._figure import dims as _dims
from cnnkit.viz._figure import format_grid, format_number
from cnnkit.viz._figure import new_figure as _figure

__all__ = [
    "show_image",
    "show_channels",
    "show_kernel",
    "show_kernels",
    "show_feature_maps",
    "show_history",
    "show_confusion_matrix",
    "compare_stride_padding",
    "SIGNED_CMAP",
    "POSITIVE_CMAP",
]

#: Colormap of values that can be negative: blue < 0 < red, white at 0.
SIGNED_CMAP = "RdBu_r"
#: Colormap of values that cannot be negative.
POSITIVE_CMAP = "viridis"

_CHANNEL_NAMES = {
    1: ("gray",),
    2: ("gray", "alpha"),
    3: ("red", "green", "blue"),
    4: ("red", "green", "blue", "alpha"),
}
_CHANNEL_COLORS = {"gray": "white", "alpha": "white", "red": "red", "green": "lime", "blue": "blue"}
_MAX_ANNOTATED_CELLS = 400  # write values in a heatmap up to 20 x 20 cells
_MAX_PANEL_COLORBARS = 16  # beyond this, feature maps share one scale and colour bar


def _as_picture(name: str, image) -> np.ndarray:
    """`image` as float: uint8 scaled by 1/255, uint16 by 1/65535; (H, W) or (H, W, C<=4)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        image = image.astype(np.float32) / 255
    elif isinstance(image, np.ndarray) and image.dtype == np.uint16:
        image = image.astype(np.float32) / 65535
    image = as_float_array(name, image)
    check_ndim(name, image, (2, 3), "((H, W) or (H, W, C))")
    if image.ndim == 3 and image.shape[2] not in _CHANNEL_NAMES:
        raise ValueError(
            f"{name} must have 1 to 4 channels in its last axis, got shape {image.shape}"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if min(image.shape[:2]) == 0:
        raise ValueError(f"{name} must not be empty, got shape {image.shape}")
    return image


def _rgb(picture: np.ndarray) -> np.ndarray:
    """A (H, W, C) picture as RGB(A) for imshow, clipped to [0, 1]; gray + alpha becomes RGBA."""
    if picture.shape[2] == 2:
        gray, alpha = picture[:, :, :1], picture[:, :, 1:]
        picture = np.concatenate([gray, gray, gray, alpha], axis=2)  # (H, W, 4)
    return np.clip(picture, 0, 1)


def _as_matrix(name: str, x) -> np.ndarray:
    """`x` as a non-empty 2-D float array, leading axes of length 1 dropped."""
    x = as_float_array(name, x)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    check_ndim(name, x, (2,), "(rows, columns)")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    return x


def _range01(x: np.ndarray) -> tuple[float, float]:
    """Display limits: [0, 1] for values inside it, else the data range."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= 0 and hi <= 1:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _symmetric(x: np.ndarray) -> float:
    """Half-width of a colour scale centred on 0 that holds every finite value."""
    finite = np.abs(x[np.isfinite(x)])
    m = float(finite.max()) if finite.size else 0.0
    return m if m > 0 else 1.0


def _robust_limits(x: np.ndarray, signed: bool) -> tuple[float, float, str]:
    """Colour limits for a large map and the colour bar's ``extend``.

    A few extreme pixels (an edge map's strongest edges) would wash the rest out, so a
    map of more than 1024 values is scaled to its 99.5th percentile (of ``|x|`` when
    signed); the colour bar's pointed ends mark that values beyond are clipped.
    """
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return (-1.0, 1.0, "neither") if signed else (0.0, 1.0, "neither")
    if signed:
        full = float(np.abs(finite).max())
        limit = float(np.percentile(np.abs(finite), 99.5)) if finite.size > 1024 else full
        limit = limit if limit > 0 else (full if full > 0 else 1.0)
        return -limit, limit, "both" if limit < full else "neither"
    lo, full = float(finite.min()), float(finite.max())
    hi = float(np.percentile(finite, 99.5)) if finite.size > 1024 else full
    if hi <= lo:
        hi = full if full > lo else lo + 1.0
    return lo, hi, "max" if hi < full else "neither"


def _annotate(
    ax, values: np.ndarray, lo: float, hi: float, fontsize: float, signed: bool, texts=None
):
    """Write each value in its cell, white on dark cells; `texts` default: ``format_grid``."""
    span = hi - lo if hi > lo else 1.0
    texts = format_grid(values) if texts is None else list(texts)
    for ((r, c), v), text in zip(np.ndenumerate(values), texts):
        if signed:
            dark = abs(v) > 0.55 * max(abs(lo), abs(hi))
        else:
            dark = (v - lo) / span > 0.6
        ax.text(
            c,
            r,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if dark else "black",
        )


def _integer_ticks(ax, rows: int, cols: int, limit: int = 16):
    """Tick every row and column of a small heatmap."""
    if cols <= limit:
        ax.set_xticks(range(cols))
    if rows <= limit:
        ax.set_yticks(range(rows))


def show_image(image, title=None):
    """Show an image with its pixel coordinates.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Floats in ``[0, 1]`` (colour values outside are clipped), or uint8 / uint16
        (scaled to ``[0, 1]``). A 2-D image is drawn in gray with a colour bar.
    title : str, optional
        Default: the image's shape, as the walkthrough prints it.

    Returns
    -------
    matplotlib.figure.Figure
        The image on axes counted in pixels (row down, column across); a 2-D image
        with a gray colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.plot import show_image
    >>> fig = show_image(np.zeros((4, 6, 3)))
    >>> fig.axes[0].get_title()
    'image, shape (4, 6, 3)'
    """
    shape = getattr(image, "shape", None)
    picture = _as_picture("image", image)
    h, w = picture.shape[:2]
    width = 6.0
    fig = _figure(
        width + (1.0 if picture.ndim == 2 else 0.0), min(max(width * h / w + 0.8, 2.5), 9.0)
    )
    ax = fig.add_subplot()
    if picture.ndim == 2:
        lo, hi = _range01(picture)
        im = ax.imshow(picture, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8, label="intensity")
    else:
        ax.imshow(_rgb(picture), interpolation="nearest")
    ax.set_title(f"image, shape {tuple(shape)}" if title is None else str(title))
    ax.set_xlabel("column (x)")
    ax.set_ylabel("row (y)")
    return fig


def show_channels(image):
    """Show each channel of an image on its own, in its own colour.

    Channel ``k`` is ``image[:, :, k]``; it is drawn from black (0) to its colour (1):
    red, green, blue, and white for gray or alpha, so a bright panel means much of that
    colour, as the image's pixels mix it. Each panel has a colour bar.

    Parameters
    ----------
    image : ndarray of shape (H, W, C) with C in 1..4, or (H, W)
        Floats in ``[0, 1]``, or uint8 / uint16 (scaled to ``[0, 1]``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per channel, left to right.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.plot import show_channels
    >>> fig = show_channels(np.ones((4, 4, 3)))
    >>> [ax.get_title().split()[0] for ax in fig.axes[::2]]
    ['red', 'green', 'blue']
    """
    picture = _as_picture("image", image)
    planes = picture[:, :, None] if picture.ndim == 2 else picture
    h, w, c = planes.shape
    panel = 4.2 if c > 2 else 5.0
    fig = _figure(c * (panel + 0.9), min(max(panel * h / w + 1.2, 2.6), 8.0))
    names = _CHANNEL_NAMES[c]
    for k, name in enumerate(names):
        ax = fig.add_subplot(1, c, k + 1)
        cmap = LinearSegmentedColormap.from_list(
            f"black_to_{name}", ["black", _CHANNEL_COLORS[name]]
        )
        lo, hi = _range01(planes[:, :, k])
        im = ax.imshow(planes[:, :, k], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.75, label=f"{name} intensity")
        ax.set_title(f"{name} channel  image[:, :, {k}]" if c > 1 else "image[:, :]")
        ax.set_xlabel("column (x)")
        if k == 0:
            ax.set_ylabel("row (y)")
    fig.suptitle(
        f"the {c} channel{'s' if c > 1 else ''} of an image of shape "
        f"{tuple(getattr(image, 'shape', planes.shape))}"
    )
    return fig


def show_kernel(kernel, title=None):
    """Show a kernel as a heatmap with its values written in the cells.

    Parameters
    ----------
    kernel : ndarray of shape (kh, kw)
        Leading axes of length 1 (a ``(1, 1, kh, kw)`` weight) are dropped.
    title : str, optional
        Default: ``"kernel kh×kw"``.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap (blue negative, white 0, red positive) and its colour bar. Values
        are written up to 20×20 cells.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.plot import show_kernel
    >>> fig = show_kernel(np.eye(3))
    >>> len(fig.axes), len(fig.axes[0].texts)
    (2, 9)
    """
    k = _as_matrix("kernel", kernel)
    kh, kw = k.shape
    side = min(max(0.55 * max(kh, kw), 3.2), 9.0)
    fig = _figure(side * kw / max(kh, kw) + 1.6, side * kh / max(kh, kw) + 0.8)
    ax = fig.add_subplot()
    m = _symmetric(k)
    im = ax.imshow(k, cmap=SIGNED_CMAP, vmin=-m, vmax=m, interpolation="nearest")
    if k.size <= _MAX_ANNOTATED_CELLS:
        cell_pt = 72 * side / max(kh, kw)
        _annotate(ax, k, -m, m, fontsize=min(14.0, 0.3 * cell_pt), signed=True)
    _integer_ticks(ax, kh, kw)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(f"kernel {_dims(k.shape)}" if title is None else str(title))
    fig.colorbar(im, ax=ax, shrink=0.85, label="weight")
    return fig


def _mosaic(
    tiles: np.ndarray, ncols: int, gap: int, gap_top: int = 0
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Equal-sized (n, h, w) tiles as one (rows, cols) picture, NaN (drawn white) between them.

    Each tile has `gap` blank pixels to its right and below, plus `gap_top` above it (room
    for a label); returns the picture and the (row, column) of each tile's top-left pixel.
    """
    n, h, w = tiles.shape
    nrows = math.ceil(n / ncols)
    step_y, step_x = gap_top + h + gap, w + gap
    picture = np.full((nrows * step_y - gap, ncols * step_x - gap), np.nan)
    corners = []
    for k in range(n):
        r, c = divmod(k, ncols)
        y, x = r * step_y + gap_top, c * step_x
        picture[y : y + h, x : x + w] = tiles[k]  # (h, w) into its slot
        corners.append((y, x))
    return picture, corners


def _mosaic_figure(picture, inches, *, lo, hi, cmap, extend, label, left=0.25, bottom=0.25):
    """A figure holding one mosaic, drawn by one imshow, and its one labelled colour bar.

    `inches` per picture pixel (shrunk to fit 18 x 22 inches); `left` and `bottom` margins
    in inches for tick labels. The axes are placed by hand: no layout engine, so saving
    draws the figure once.
    """
    import matplotlib

    rows, cols = picture.shape
    inches = min(inches, 18.0 / cols, 22.0 / rows)
    width, height = cols * inches, rows * inches
    top, right = 0.8, 1.2  # room for a two-line heading; for the colour bar and its label
    fig_w, fig_h = left + width + right, bottom + height + top
    fig = _figure(fig_w, fig_h, layout=None)
    ax = fig.add_axes((left / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="white")
    im = ax.imshow(picture, cmap=colormap, vmin=lo, vmax=hi, interpolation="nearest")
    for side in ax.spines.values():
        side.set_visible(False)
    bar_h = min(height, max(0.8 * height, 1.5))
    cax = fig.add_axes(
        (
            (left + width + 0.25) / fig_w,
            (bottom + (height - bar_h) / 2) / fig_h,
            0.18 / fig_w,
            bar_h / fig_h,
        ),
        label="<colorbar>",  # as matplotlib names the axes it makes for a colour bar
    )
    fig.colorbar(im, cax=cax, extend=extend, label=label)
    return fig, ax


def show_kernels(weight, title=None):
    """Show a bank of convolution weights: one column per filter, one row per input channel.

    Parameters
    ----------
    weight : ndarray of shape (O, C, kh, kw)
        A ``Conv2d`` weight; ``(O, kh, kw)`` reads as ``C = 1``. The first 16 filters
        and 8 input channels are shown.
    title : str, optional
        Default: the weight's shape.

    Returns
    -------
    matplotlib.figure.Figure
        One heatmap per ``(filter, input channel)`` on one shared scale centred on 0,
        with one colour bar; up to 16 are separate panels (3×3 ones with their values),
        more are tiles of one picture, drawn at once. When not all are drawn, the
        heading says which (``showing filters 0–15 of 64 × input channels 0–7 of 32``).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.plot import show_kernels
    >>> fig = show_kernels(np.zeros((4, 2, 3, 3)))
    >>> len(fig.axes)  # 2 x 4 panels and a colour bar
    9
    """
    w = as_float_array("weight", weight)
    if w.ndim == 3:
        w = w[:, None]
    check_ndim("weight", w, (4,), "((O, C, kh, kw) or (O, kh, kw))")
    if w.size == 0:
        raise ValueError(f"weight must not be empty, got shape {w.shape}")
    o_all, c_all, kh, kw = w.shape
    o, c = min(o_all, 16), min(c_all, 8)
    shown = w[:o, :c]
    m = _symmetric(shown)
    panel = 1.1 if max(kh, kw) <= 7 else 1.6
    if o * c > _MAX_PANEL_COLORBARS:
        # One picture, drawn once: c rows of o kernels, one pixel apart.
        tiles = shown.transpose(1, 0, 2, 3).reshape(c * o, kh, kw)  # (c*o, kh, kw), row = channel
        picture, corners = _mosaic(tiles, o, gap=1)
        scale = 0.25 if max(kh, kw) <= 7 else 0.1  # inches per kernel pixel
        fig, ax = _mosaic_figure(
            picture,
            scale,
            lo=-m,
            hi=m,
            cmap=SIGNED_CMAP,
            extend="neither",
            label="weight",
            left=0.75,
            bottom=0.6,
        )
        ax.set_xticks([x + (kw - 1) / 2 for _, x in corners[:o]], range(o))
        ax.set_yticks([y + (kh - 1) / 2 for y, _ in corners[::o]], range(c))
        ax.tick_params(length=0, labelsize=8)
        ax.set_xlabel("filter (output channel)")
        ax.set_ylabel("input channel")
    else:
        fig = _figure(max(o * panel + 1.4, 4.0), c * panel + 1.0)
        axes = []
        annotate = kh * kw <= 9
        # one number format for the whole grid: (o, c, kh*kw) texts
        texts = np.array(format_grid(shown, digits=2), dtype=object).reshape(o, c, kh * kw)
        for ci in range(c):
            for oi in range(o):
                ax = fig.add_subplot(c, o, ci * o + oi + 1)
                im = ax.imshow(
                    shown[oi, ci], cmap=SIGNED_CMAP, vmin=-m, vmax=m, interpolation="nearest"
                )
                if annotate:
                    _annotate(
                        ax, shown[oi, ci], -m, m, fontsize=7, signed=True, texts=texts[oi, ci]
                    )
                ax.set_xticks([])
                ax.set_yticks([])
                if ci == 0:
                    ax.set_title(f"filter {oi}", fontsize=8)
                if oi == 0:
                    ax.set_ylabel(f"in {ci}", fontsize=8)
                axes.append(ax)
        fig.colorbar(im, ax=axes, shrink=0.9, label="weight")
    heading = (
        f"convolution weights, shape {tuple(np.shape(weight))}" if title is None else str(title)
    )
    shown_parts = [
        f"{what} 0\u2013{count - 1} of {total}"
        for what, count, total in (("filters", o, o_all), ("input channels", c, c_all))
        if count < total
    ]
    if shown_parts:
        heading += "\nshowing " + " \u00d7 ".join(shown_parts)
    fig.suptitle(heading)
    return fig


def _map_list(maps) -> list[np.ndarray]:
    """`maps` as a list of 2-D float arrays."""
    if isinstance(maps, np.ndarray):
        a = as_float_array("maps", maps)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        check_ndim("maps", a, (2, 3), "((C, H, W), (1, C, H, W) or (H, W))")
        items = [a] if a.ndim == 2 else list(a)
    elif isinstance(maps, Sequence) and not isinstance(maps, str):
        items = []
        for i, m in enumerate(maps):
            m = as_float_array(f"maps[{i}]", m)
            check_ndim(f"maps[{i}]", m, (2,), "(H, W)")
            items.append(m)
    else:
        raise TypeError(
            f"maps must be an ndarray of shape (C, H, W) or a list of (H, W) arrays, "
            f"got {type(maps).__name__}"
        )
    if not items or any(m.size == 0 for m in items):
        raise ValueError("maps must hold at least one non-empty map")
    return items


def _draw_maps(
    fig, items, titles, ncols, *, cmap=None, same_scale=False, shared=False, colorbar_label="value"
):
    """Draw 2-D maps in a grid, each on its own axes; return the axes."""
    n = len(items)
    nrows = math.ceil(n / ncols)
    per_panel = not shared and n <= _MAX_PANEL_COLORBARS
    signs = [bool(np.isfinite(m).any() and np.nanmin(m) < 0) for m in items]
    if not per_panel:
        shared = _robust_limits(np.concatenate([m.ravel() for m in items]), any(signs))
    hmax = max(m.shape[0] for m in items)
    wmax = max(m.shape[1] for m in items)
    axes = []
    for i, m in enumerate(items):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        signed = signs[i] if per_panel else any(signs)
        lo, hi, extend = _robust_limits(m, signed) if per_panel else shared
        chosen = cmap or (SIGNED_CMAP if signed else POSITIVE_CMAP)
        im = ax.imshow(m, cmap=chosen, vmin=lo, vmax=hi, interpolation="nearest")
        if same_scale:
            ax.set_xlim(-0.5, wmax - 0.5)
            ax.set_ylim(hmax - 0.5, -0.5)
        ax.set_title(titles[i], fontsize=10 if n <= 4 else 8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if per_panel:
            fig.colorbar(
                im, ax=ax, shrink=0.8, extend=extend, label=colorbar_label if n <= 4 else None
            )
        axes.append(ax)
    if not per_panel:
        fig.colorbar(im, ax=axes, shrink=0.8, extend=shared[2], label=colorbar_label)
    return axes


def _maps_mosaic(stack, titles, ncols, cmap, label):
    """Equal-sized maps (n, h, w) on one shared scale as one picture, titled tile by tile."""
    n, h, w = stack.shape
    signed = bool(np.isfinite(stack).any() and np.nanmin(stack) < 0)
    lo, hi, extend = _robust_limits(stack.ravel(), signed)
    nrows = math.ceil(n / ncols)
    inches = min(3.6 if n <= 4 else 2.2, 16.0 / ncols) / max(h, w)  # per map pixel
    gap = math.ceil(0.15 / inches)  # about 0.15 inch between maps
    gap_top = math.ceil(0.25 / inches)  # room for a tile's title
    picture, corners = _mosaic(stack, ncols, gap=gap, gap_top=gap_top)
    fig, ax = _mosaic_figure(
        picture,
        inches,
        lo=lo,
        hi=hi,
        cmap=cmap or (SIGNED_CMAP if signed else POSITIVE_CMAP),
        extend=extend,
        label=label,
    )
    ax.set_xticks([])
    ax.set_yticks([])
    fontsize = 9 if nrows * ncols <= 16 else 7
    for (y, x), text in zip(corners, titles):
        ax.text(
            x + (w - 1) / 2,
            y - 0.6,
            text,
            ha="center",
            va="bottom",
            fontsize=fontsize,
            clip_on=False,
        )
    return fig


def _grid_size(n, ncols, hmax, wmax, panel=3.6):
    """Figure width and height for `n` panels in `ncols` columns."""
    nrows = math.ceil(n / ncols)
    panel = min(panel, 18.0 / ncols)
    colorbar = 0.8 if n <= _MAX_PANEL_COLORBARS else 0.1
    width = ncols * (panel + colorbar) + (0.8 if n > _MAX_PANEL_COLORBARS else 0.3)
    height = nrows * (panel * hmax / wmax + 0.7) + 0.6
    return max(width, 3.5), min(max(height, 2.5), 24.0)


def show_feature_maps(
    maps,
    titles=None,
    ncols=None,
    title=None,
    *,
    cmap=None,
    same_scale=False,
    shared_colors=False,
    label="value",
):
    """Show feature maps (the channels of an activation) as a grid with titles and colour bars.

    Parameters
    ----------
    maps : ndarray of shape (C, H, W), or a list of (H, W) arrays
        ``(1, C, H, W)`` (one sample of a batch) and a single ``(H, W)`` map work too; a
        list may hold maps of different sizes.
    titles : list of str, optional
        One per map. Default: ``"map k (H×W)"``.
    ncols : int, optional
        Panels per row. Default: all in one row up to 4, else about a square grid.
    title : str, optional
        A heading over the grid.
    cmap : str, optional
        Colormap. Default: blue-white-red centred on 0 for maps with negative values,
        ``viridis`` for the others.
    same_scale : bool, default False
        Draw every map at the same pixel scale (axes sized for the largest), so a
        smaller map looks smaller, as after striding or pooling.
    shared_colors : bool, default False
        One colour map and one colour bar for all maps, so equal colours mean equal
        values across the grid (always so beyond 16 maps).
    label : str, default "value"
        The colour bar's label: what the values are.

    Returns
    -------
    matplotlib.figure.Figure
        Up to 16 maps each get a colour bar on their own scale unless `shared_colors`;
        maps that share one scale and one size are tiles of one picture, drawn at once,
        each titled above its tile.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.plot import show_feature_maps
    >>> fig = show_feature_maps(np.zeros((3, 5, 5)), titles=["a", "b", "c"])
    >>> [ax.get_title() for ax in fig.axes[::2]]
    ['a', 'b', 'c']
    """
    items = _map_list(maps)
    n = len(items)
    if titles is None:
        titles = [f"map {i} ({_dims(m.shape)})" for i, m in enumerate(items)]
    elif isinstance(titles, str) or not isinstance(titles, Sequence) or len(titles) != n:
        raise ValueError(f"titles must be a list of {n} strings, one per map, got {titles!r}")
    if ncols is None:
        ncols = n if n <= 4 else min(8, math.ceil(math.sqrt(n)))
    else:
        ncols = check_positive("ncols", to_int("ncols", ncols))[0]
        ncols = min(ncols, n)
    hmax = max(m.shape[0] for m in items)
    wmax = max(m.shape[1] for m in items)
    shared = shared_colors or n > _MAX_PANEL_COLORBARS
    if shared and all(m.shape == items[0].shape for m in items):
        fig = _maps_mosaic(np.stack(items), [str(t) for t in titles], ncols, cmap, str(label))
    else:
        fig = _figure(*_grid_size(n, ncols, hmax, wmax))
        _draw_maps(
            fig,
            items,
            [str(t) for t in titles],
            ncols,
            cmap=cmap,
            same_scale=same_scale,
            shared=shared,
            colorbar_label=str(label),
        )
    if title is not None:
        fig.suptitle(str(title))
    return fig


def _history_series(history) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Group a history's curves by metric: ``{"loss": [("loss", ...), ("val_loss", ...)]}``."""
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a dict of lists, got {type(history).__name__}")
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for key, values in history.items():
        if not isinstance(key, str):
            raise TypeError(f"history keys must be strings, got {key!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(f"history[{key!r}] must be a list of numbers, got {values!r}")
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            raise TypeError(f"history[{key!r}] must be a list of numbers, got {list(values)!r}")
        if len(values) == 0:
            continue
        base = key[4:] if key.startswith("val_") else key
        groups.setdefault(base, []).append((key, np.asarray(values, dtype=np.float64)))
    if not groups:
        raise ValueError("history has no values to plot")
    return groups


def show_history(history, *, val_label="validation"):
    """Show training curves: one panel per metric, training and validation together.

    Parameters
    ----------
    history : dict of str to list of float
        One value per epoch, e.g. ``{"loss": [...], "accuracy": [...], "val_loss": [...],
        "val_accuracy": [...]}``. A key ``val_X`` is drawn in the panel of ``X``; the
        best validation epoch is marked (accuracies in ``[0, 1]`` as percentages).
    val_label : str, default "validation"
        What the ``val_`` curves are called in the legends, e.g. ``"test"`` when the
        held-out set is the test set (as in ``cnnkit train``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric (loss, accuracy, ...), epochs across, the best held-out
        epoch circled.

    Examples
    --------
    >>> from cnnkit.plot import show_history
    >>> fig = show_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    >>> fig.axes[0].get_title(), len(fig.axes[0].get_lines())
    ('loss', 2)
    """
    groups = _history_series(history)
    fig = _figure(4.8 * len(groups) + 0.4, 3.8)
    for k, (base, series) in enumerate(groups.items()):
        ax = fig.add_subplot(1, len(groups), k + 1)
        higher_better = "acc" in base.lower()
        fractions = higher_better and all(
            np.nanmax(v) <= 1 for _, v in series if np.isfinite(v).any()
        )
        for key, values in series:
            validation = key.startswith("val_")
            epochs = np.arange(1, len(values) + 1)
            label = str(val_label) if validation else "training"
            ax.plot(
                epochs,
                values,
                marker="o" if len(values) <= 30 else None,
                markersize=4,
                linestyle="--" if validation else "-",
                label=label,
            )
            if validation and np.isfinite(values).any():
                best = int(np.nanargmax(values) if higher_better else np.nanargmin(values))
                ax.scatter(
                    [best + 1],
                    [values[best]],
                    s=90,
                    facecolors="none",
                    edgecolors="black",
                    zorder=3,
                    label=f"best: {_best_text(values[best], fractions)} (epoch {best + 1})",
                )
        if fractions:
            ax.set_ylim(
                min(0.0, min(np.nanmin(v) for _, v in series)), 1.05
            )  # room for a marker at 1
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(base)
        ax.set_title(base)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _best_text(value: float, fraction: bool) -> str:
    """A best value for a legend: an accuracy in [0, 1] as ``100 %``, else 3 digits."""
    return f"{100 * value:.4g} %" if fraction else f"{value:.3g}"


def show_confusion_matrix(matrix, labels=None):
    """Show a confusion matrix: true classes down, predicted classes across, counts in cells.

    Parameters
    ----------
    matrix : ndarray of shape (K, K)
        ``matrix[i, j]``: how many samples of true class ``i`` were predicted as ``j``.
    labels : list of str, optional
        Class names, one per row. Default: ``0 .. K-1``.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap, its colour bar, and the accuracy (trace over total) in the title.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.plot import show_confusion_matrix
    >>> fig = show_confusion_matrix(np.array([[5, 1], [0, 4]]), labels=["cat", "dog"])
    >>> fig.axes[0].get_title()
    'confusion matrix: accuracy 90.0% of 10 samples'
    """
    m = as_float_array("matrix", matrix)
    check_ndim("matrix", m, (2,), "(K, K)")
    if m.shape[0] != m.shape[1] or m.size == 0:
        raise ValueError(f"matrix must be square and non-empty, got shape {m.shape}")
    if not np.all(np.isfinite(m)) or (m < 0).any():
        raise ValueError("matrix must hold finite counts >= 0")
    k = m.shape[0]
    if labels is None:
        labels = [str(i) for i in range(k)]
    elif isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) != k:
        raise ValueError(f"labels must be a list of {k} names, one per class, got {labels!r}")
    labels = [str(label) for label in labels]
    side = min(max(0.55 * k + 2.5, 4.5), 13.0)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    hi = float(m.max()) if m.max() > 0 else 1.0
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=hi, interpolation="nearest")
    if k <= 25:
        _annotate(ax, m, 0.0, hi, fontsize=min(12.0, 0.35 * 72 * side / k), signed=False)
    ax.set_xticks(
        range(k),
        labels,
        rotation=45 if max(map(len, labels)) > 5 else 0,
        ha="right" if max(map(len, labels)) > 5 else "center",
    )
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = m.sum()
    accuracy = np.trace(m) / total if total > 0 else float("nan")
    ax.set_title(f"confusion matrix: accuracy {accuracy:.1%} of {format_number(total)} samples")
    fig.colorbar(im, ax=ax, shrink=0.8, label="samples")
    return fig


def _parse_config(i: int, config) -> dict:
    """One stride/padding setting as keyword arguments of filter2d."""
    if isinstance(config, Mapping):
        unknown = set(config) - {"stride", "padding", "padding_mode"}
        if unknown:
            raise ValueError(
                f"configs[{i}] may set stride, padding and padding_mode, got {sorted(unknown)}"
            )
        return {
            "stride": config.get("stride", 1),
            "padding": config.get("padding", 0),
            "padding_mode": config.get("padding_mode", "zeros"),
        }
    if isinstance(config, (tuple, list)) and len(config) == 2:
        return {"stride": config[0], "padding": config[1], "padding_mode": "zeros"}
    raise TypeError(
        f"configs[{i}] must be a dict like {{'stride': 2, 'padding': 1}} or a pair "
        f"(stride, padding), got {config!r}"
    )


def _describe_config(config: dict) -> str:
    parts = [f"stride {config['stride']}", f"padding {config['padding']!s}"]
    if config["padding_mode"] != "zeros":
        parts[-1] += f" ({config['padding_mode']})"
    return ", ".join(parts)


def compare_stride_padding(image, kernel, configs):
    """Show one kernel applied with several stride and padding settings, side by side.

    The input comes first, then one response per setting, each titled with its setting
    and output shape, all at the same pixel scale: a stride of 2 gives a picture half
    as wide, padding keeps the border.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        A color image is filtered per channel (:func:`cnnkit.filter2d`) and its
        response drawn as the channels' absolute values, scaled to the largest.
    kernel : ndarray of shape (kh, kw)
        The kernel applied in every panel.
    configs : list of dict or of (stride, padding) pairs
        Each dict may set ``stride``, ``padding`` (an int, a pair, ``"same"`` or
        ``"valid"``) and ``padding_mode``.

    Returns
    -------
    matplotlib.figure.Figure
        A 2-D response is drawn blue-white-red around 0 with a colour bar, on one
        scale shared by all responses.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.plot import compare_stride_padding
    >>> fig = compare_stride_padding(np.ones((6, 6)), np.ones((3, 3)), [(1, 0), (3, 0)])
    >>> [ax.get_title().splitlines()[-1] for ax in fig.axes if ax.get_label() != "<colorbar>"]
    ['shape (6, 6)', 'output shape (4, 4)', 'output shape (2, 2)']
    """
    picture = _as_picture("image", image)
    k = _as_matrix("kernel", kernel)
    if isinstance(configs, (str, Mapping)) or not isinstance(configs, Sequence) or not configs:
        raise ValueError(f"configs must be a non-empty list of settings, got {configs!r}")
    settings = [_parse_config(i, c) for i, c in enumerate(configs)]
    responses = [filter2d(picture, k, **s) for s in settings]
    n = len(settings) + 1
    ncols = n if n <= 4 else 3
    nrows = math.ceil(n / ncols)
    hmax = max([picture.shape[0], *(r.shape[0] for r in responses)])
    wmax = max([picture.shape[1], *(r.shape[1] for r in responses)])
    panel = min(4.0, 16.0 / ncols)
    fig = _figure(ncols * (panel + 0.9), nrows * (panel * hmax / wmax + 0.9) + 0.6)

    # A margin and no frame: the outermost rows and columns (where zero padding makes its
    # edge lines) stay visible instead of hiding under the axes' border.
    margin = max(1.0, 0.015 * max(hmax, wmax))

    def place(ax):
        ax.set_xlim(-0.5 - margin, wmax - 0.5 + margin)
        ax.set_ylim(hmax - 0.5 + margin, -0.5 - margin)
        ax.tick_params(labelsize=7)
        for side in ax.spines.values():
            side.set_visible(False)

    ax = fig.add_subplot(nrows, ncols, 1)
    if picture.ndim == 2:
        lo, hi = _range01(picture)
        im = ax.imshow(picture, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.7)
    else:
        ax.imshow(_rgb(picture), interpolation="nearest")
    ax.set_title(f"input\nshape {picture.shape}", fontsize=10)
    place(ax)
    # One colour scale for every response, so their strengths compare.
    lo, hi, extend = _robust_limits(np.concatenate([r.ravel() for r in responses]), signed=True)
    for i, (setting, response) in enumerate(zip(settings, responses), start=1):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if response.ndim == 2:
            im = ax.imshow(
                response, cmap=SIGNED_CMAP, vmin=lo, vmax=hi, interpolation="antialiased"
            )
            fig.colorbar(im, ax=ax, shrink=0.7, extend=extend)
        else:
            ax.imshow(_rgb(to_display(response, mode="abs")), interpolation="nearest")
        ax.set_title(f"{_describe_config(setting)}\noutput shape {response.shape}", fontsize=10)
        place(ax)
    fig.suptitle(
        f"kernel {_dims(k.shape)} with different strides and paddings (all at the same pixel scale)"
    )
    return fig
