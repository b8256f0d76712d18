"""How long the pictures of ``cnnkit features`` take: one mosaic per grid vs one axes per panel.

For the digits CNN's second convolution, a (64, 32, 3, 3) kernel bank (16 filters x 8
input channels drawn) and 16 feature maps of 8x8, each picture is drawn and saved as a
PNG (in memory) two ways, alternating, in one run:

- cnnkit: ``plot.show_kernels`` and ``plot.show_feature_maps(shared_colors=True)``, one
  image per grid on axes placed by hand (what the command does);
- panels: the same pictures as a plain matplotlib script would draw them, and as cnnkit
  did before: one axes per kernel or map, under constrained layout, a colour bar per map.

Prints the median seconds of each and their ratio.

    python benchmarks/features_figures.py
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnnkit import plot

REPEATS = 5


def panels_kernels(weight):
    """One axes per (filter, input channel), constrained layout, one colour bar."""
    shown = weight[:16, :8]
    limit = float(np.abs(shown).max())
    fig = Figure(figsize=(19.0, 9.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(8, 16)
    for ci in range(8):
        for oi in range(16):
            ax = axes[ci, oi]
            im = ax.imshow(shown[oi, ci], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes, label="weight")
    return fig


def panels_maps(maps):
    """One axes and one colour bar per map, constrained layout."""
    fig = Figure(figsize=(17.9, 17.8), layout="constrained")
    FigureCanvasAgg(fig)
    for k, m in enumerate(maps):
        ax = fig.add_subplot(4, 4, k + 1)
        im = ax.imshow(m, cmap="viridis")
        ax.set_title(f"channel {k}", fontsize=8)
        fig.colorbar(im, ax=ax)
    return fig


def save(fig) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)


def main() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(scale=0.05, size=(64, 32, 3, 3)).astype(np.float32)
    maps = np.maximum(rng.normal(size=(16, 8, 8)), 0).astype(np.float32)
    ways = {
        "cnnkit (one mosaic per grid)": lambda: (
            save(plot.show_kernels(weight)),
            save(plot.show_feature_maps(maps, shared_colors=True, label="activation")),
        ),
        "panels (one axes per kernel or map)": lambda: (
            save(panels_kernels(weight)),
            save(panels_maps(maps)),
        ),
    }
    times = {name: [] for name in ways}
    for _ in range(REPEATS):
        for name, draw in ways.items():  # alternating: both see the same machine load
            start = time.perf_counter()
            draw()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:40s} {median:7.3f} s  (median of {REPEATS})")
    mine, panels = medians.values()
    print(f"panels / cnnkit: {panels / mine:.1f}x")


if __name__ == "__main__":
    main()
