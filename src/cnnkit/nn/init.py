"""PyTorch's default initialisation of layer parameters."""

from __future__ import annotations

import math

import numpy as np

from cnnkit._random import get_rng

__all__ = ["uniform_fan_in"]


def uniform_fan_in(shape, fan_in: int, rng=None) -> np.ndarray:
    """Float32 samples from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    This is PyTorch's default for Conv2d and Linear weights (kaiming_uniform with
    ``a=sqrt(5)``, whose bound reduces to ``1/sqrt(fan_in)``) and for their biases.
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return get_rng(rng).uniform(-bound, bound, size=shape).astype(np.float32)
