"""Regularisation: inverted dropout, forward and backward."""

from __future__ import annotations

import numpy as np

from cnnkit._random import get_rng
from cnnkit._validation import as_float_array, check_bool, check_grad, check_probability

__all__ = ["dropout", "dropout_forward", "dropout_backward"]


def dropout_forward(x, p=0.5, training=True, rng=None):
    """:func:`dropout` and its cache (the scaled keep-mask, or None when nothing is dropped)."""
    x = as_float_array("x", x)
    p = check_probability("p", p)
    training = check_bool("training", training)
    rng = get_rng(rng)
    if not training or p == 0.0:
        return x, None
    if p == 1.0:
        scale = np.zeros(x.shape, dtype=x.dtype)
    else:
        keep = rng.random(x.shape) >= p
        scale = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * scale, scale


def dropout_backward(grad_output, cache):
    """Gradient of :func:`dropout`: the same mask and scale as the forward."""
    scale = cache
    if scale is None:
        return as_float_array("grad_output", grad_output)
    return check_grad(grad_output, scale.shape) * scale


def dropout(x, p=0.5, training=True, rng=None):
    """Zero each element with probability `p` and scale the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    x : ndarray of any shape
    p : float in [0, 1]
        Probability of dropping an element.
    training : bool
        With False (evaluation), `x` is returned unchanged.
    rng : numpy.random.Generator, int or None
        Source of randomness: a generator, a seed, or None for cnnkit's default
        (see :func:`cnnkit.manual_seed`).

    Returns
    -------
    ndarray, the shape and float dtype of `x`
        The expectation of each element equals the input's.

    Examples
    --------
    >>> import numpy as np
    >>> out = dropout(np.ones(8), p=0.5, rng=0)
    >>> sorted(set(out.tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    >>> dropout(np.ones(3), training=False)
    array([1., 1., 1.])
    """
    return dropout_forward(x, p, training, rng)[0]
