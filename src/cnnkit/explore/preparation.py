"""Pictures prepared as ``cnnkit predict`` prepares them, for a model known by its metadata."""

from __future__ import annotations

import numpy as np

__all__ = ["prepare_input"]


def prepare_input(picture: np.ndarray, metadata: dict, input_shape) -> np.ndarray:
    """A picture from :func:`cnnkit.load_image` as the model's ``(C, H, W)`` float32 input.

    The preparation is ``cnnkit predict``'s (channels, size, the digits' inversion and
    cropping, as the model's metadata asks).

    Examples
    --------
    >>> import numpy as np
    >>> prepare_input(np.ones((20, 30, 3), np.float32), {}, (1, 8, 8)).shape
    (1, 8, 8)
    """
    from cnnkit.preprocessing import prepare

    metadata = {**metadata, "input_shape": [int(s) for s in input_shape]}
    return np.asarray(prepare(picture, metadata), dtype=np.float32)[0]
