"""Regularisation: inverted dropout, forward and backward."""

from __future__ import annotations

import numpy as np

from cnnkit._random import get_rng
from cnnkit._validation import as_float_array, check_bool, check_grad, check_probability

__all__ = ["dropout", "dropout_forward", "dropout_backward"]


def dropout_forward(x, p=0.5, training=True, rng=None):
    """Forward pass of :func:`dropout`: its output and the scaled keep-mask.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    p : float in [0, 1], default 0.5
        Probability of dropping an element.
    training : bool, default True
        With False (evaluation), `x` is returned unchanged.
    rng : numpy.random.Generator, int or None
        Source of randomness: a generator, a seed, or None for cnnkit's default.

    Returns
    -------
    out : ndarray
        What :func:`dropout` returns.
    cache : ndarray or None
        The keep-mask times ``1 / (1 - p)``, or None when nothing was dropped.

    Examples
    --------
    >>> out, scale = dropout_forward(np.ones(4), p=0.5, rng=0)
    >>> bool(np.all(out == scale)) and set(out.tolist()) <= {0.0, 2.0}
    True
    """
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
    """Gradient of :func:`dropout`: the same mask and scale as the forward.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, of its shape.
    cache : ndarray or None
        The cache :func:`dropout_forward` returned.

    Returns
    -------
    grad_x : ndarray
        ``grad_output`` times the forward's scaled mask.

    Examples
    --------
    >>> out, cache = dropout_forward(np.ones(4), p=0.5, rng=0)
    >>> np.array_equal(dropout_backward(np.arange(1.0, 5.0), cache), np.arange(1.0, 5.0) * out)
    True
    """
    scale = cache
    if scale is None:
        return as_float_array("grad_output", grad_output)
    return check_grad(grad_output, scale.shape) * scale


def dropout(x, p=0.5, training=True, rng=None):
    """Zero each element with probability `p` and scale the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    x : ndarray
        Input of any shape; integer and bool inputs are computed in float32.
    p : float in [0, 1], default 0.5
        Probability of dropping an element.
    training : bool, default True
        With False (evaluation), `x` is returned unchanged.
    rng : numpy.random.Generator, int or None
        Source of randomness: a generator, a seed, or None for cnnkit's default
        (see :func:`cnnkit.manual_seed`).

    Returns
    -------
    ndarray
        Of the shape and float dtype of `x`. The expectation of each element equals the input's.

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
