"""cnnkit: a NumPy toolkit for understanding, building and running convolutional neural networks.

``import cnnkit`` needs NumPy only; the images, pictures, data and training modules are
imported on first use.

>>> import numpy as np
>>> import cnnkit as ck
>>> x = np.arange(36, dtype=np.float32).reshape(6, 6)
>>> ck.functional.conv2d(x, np.ones((3, 3)), stride=3).shape
(2, 2)
"""

from __future__ import annotations

import importlib

from cnnkit import functional, nn, optim
from cnnkit._random import manual_seed
from cnnkit._threads import get_num_threads, set_num_threads
from cnnkit.layout import pool_image, to_image, to_tensor

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself), imported on first access
_LAZY = {
    "kernels": ("cnnkit.kernels", None),
    "filter2d": ("cnnkit.filtering", "filter2d"),
    "load_image": ("cnnkit.images", "load_image"),
    "plot": ("cnnkit.plot", None),
    "data": ("cnnkit.data", None),
    "preprocessing": ("cnnkit.preprocessing", None),
    "train": ("cnnkit.train", None),
    "models": ("cnnkit.models", None),
    "save": ("cnnkit.serialization", "save"),
    "load": ("cnnkit.serialization", "load"),
    "explore": ("cnnkit.explore", "explore"),
}

__all__ = [
    "functional",
    "nn",
    "optim",
    "manual_seed",
    "set_num_threads",
    "get_num_threads",
    "to_tensor",
    "to_image",
    "pool_image",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
