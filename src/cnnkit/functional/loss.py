"""Cross-entropy loss: forward and backward."""

from __future__ import annotations

import numpy as np

from cnnkit._validation import as_float_array, check_ndim
from cnnkit.functional.activation import log_softmax_forward

__all__ = ["cross_entropy", "cross_entropy_forward", "cross_entropy_backward"]


def cross_entropy_forward(logits, target):
    """Forward pass of :func:`cross_entropy`: the loss and the cache its backward needs.

    Parameters
    ----------
    logits : ndarray of shape (N, K)
        Unnormalised class scores.
    target : ndarray of int, shape (N,)
        Class indices in ``[0, K)``.

    Returns
    -------
    loss : numpy floating scalar
        What :func:`cross_entropy` returns.
    cache : tuple
        What :func:`cross_entropy_backward` needs; opaque to the caller.

    Examples
    --------
    >>> loss, cache = cross_entropy_forward(np.zeros((1, 2)), np.array([1]))
    >>> float(loss)  # log(2)
    0.6931471805599453
    """
    logits = as_float_array("logits", logits)
    check_ndim("logits", logits, (2,), "(N, K)")
    if not isinstance(target, np.ndarray):
        raise TypeError(
            f"target must be a numpy.ndarray of class indices, got {type(target).__name__}"
        )
    if not np.issubdtype(target.dtype, np.integer) or target.dtype == np.bool_:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    n, k = logits.shape
    if target.shape != (n,):
        raise ValueError(
            f"target must have shape ({n},) for logits of shape {logits.shape}, got shape {target.shape}"
        )
    if n == 0:
        raise ValueError("logits must hold at least one row, got shape (0, K)")
    if target.min() < 0 or target.max() >= k:
        raise ValueError(
            f"target values must be class indices in [0, {k}), got values from "
            f"{target.min()} to {target.max()}"
        )
    log_probs, _ = log_softmax_forward(logits, axis=1)
    loss = -log_probs[np.arange(n), target].mean()
    return logits.dtype.type(loss), (log_probs, target)


def cross_entropy_backward(grad_output=1.0, cache=None):
    """Gradient of :func:`cross_entropy` with respect to the logits: ``(softmax - onehot) / N``.

    Parameters
    ----------
    grad_output : float, default 1.0
        Gradient of the final loss with respect to this loss (1 when it is the final loss).
    cache : tuple
        The cache :func:`cross_entropy_forward` returned.

    Returns
    -------
    grad_logits : ndarray of shape (N, K)
        In the dtype of the logits.

    Examples
    --------
    >>> loss, cache = cross_entropy_forward(np.zeros((1, 2)), np.array([1]))
    >>> cross_entropy_backward(1.0, cache)
    array([[ 0.5, -0.5]])
    """
    log_probs, target = cache
    n = log_probs.shape[0]
    grad = np.exp(log_probs)
    grad[np.arange(n), target] -= 1
    grad *= log_probs.dtype.type(np.asarray(grad_output, dtype=np.float64) / n)
    return grad


def cross_entropy(logits, target):
    """Mean negative log-likelihood of the target classes under ``softmax(logits)``.

    Parameters
    ----------
    logits : ndarray of shape (N, K)
        Unnormalised class scores.
    target : ndarray of int, shape (N,)
        Class indices in ``[0, K)``.

    Returns
    -------
    numpy floating scalar
        ``mean_n(logsumexp(logits[n]) - logits[n, target[n]])``, in the dtype of `logits`.

    Examples
    --------
    >>> import numpy as np
    >>> float(cross_entropy(np.zeros((2, 4)), np.array([0, 3])))  # log(4)
    1.3862943611198906
    """
    return cross_entropy_forward(logits, target)[0]
