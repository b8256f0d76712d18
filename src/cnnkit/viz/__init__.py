"""Pictures and animations of CNNs, drawn with matplotlib (the public name is :mod:`cnnkit.plot`).

- :mod:`cnnkit.viz.plots`: figures of images, channels, kernels, feature maps, training
  runs, confusion matrices and stride/padding comparisons.
- :mod:`cnnkit.viz.animation`: GIFs of a kernel or a pooling window sliding over an input.
- :mod:`cnnkit.viz._figure`: the Figure they all draw on (shown in Jupyter, in a pyplot
  window, or saved headless) and the number formats they share.

Importing this package imports matplotlib; ``import cnnkit`` does not (``ck.plot`` is
imported on first use).
"""

from cnnkit.viz.animation import animate_conv, animate_pool
from cnnkit.viz.plots import (
    POSITIVE_CMAP,
    SIGNED_CMAP,
    compare_stride_padding,
    show_channels,
    show_confusion_matrix,
    show_feature_maps,
    show_history,
    show_image,
    show_kernel,
    show_kernels,
)

__all__ = [
    "show_image",
    "show_channels",
    "show_kernel",
    "show_kernels",
    "show_feature_maps",
    "show_history",
    "show_confusion_matrix",
    "compare_stride_padding",
    "animate_conv",
    "animate_pool",
    "SIGNED_CMAP",
    "POSITIVE_CMAP",
]
