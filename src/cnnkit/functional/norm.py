"""Batch normalisation: forward and backward, with PyTorch's running-statistics rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkit._validation import as_float_array, check_bool, check_grad, check_ndim, check_real

__all__ = ["batch_norm", "batch_norm_forward", "batch_norm_backward"]


@dataclass
class _BatchNormCache:
    centered: np.ndarray  # x - mean, the shape of x
    inv_std: np.ndarray  # (C,): 1 / sqrt(var + eps), in the output dtype
    weight: np.ndarray | None
    has_bias: bool
    training: bool
    axes: tuple[int, ...]


def _per_channel(name, value, channels):
    """A (C,) array or None; anything else is refused."""
    if value is None:
        return None
    value = as_float_array(name, value)
    if value.shape != (channels,):
        raise ValueError(f"{name} must have shape ({channels},), got shape {value.shape}")
    return value


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per channel (axis 1), the sum of ``a * b``, without forming the product."""
    letters = "nchw"[: a.ndim]  # (N, C, H, W) or (N, C)
    return np.einsum(f"{letters},{letters}->c", a, b)


def _broadcastable(v: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> (C, 1, 1) for 4-D inputs, unchanged for (N, C)."""
    return v.reshape(v.shape + (1,) * (ndim - 2))


def batch_norm_forward(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    """:func:`batch_norm` and the cache :func:`batch_norm_backward` needs.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(4, 2)
    >>> out, cache = batch_norm_forward(x, training=True)
    >>> dx, dw, db = batch_norm_backward(np.ones_like(out), cache)
    >>> np.allclose(dx, 0), dw, db
    (True, None, None)
    """
    x = as_float_array("x", x)
    check_ndim("x", x, (2, 4), "((N, C) or (N, C, H, W))")
    training = check_bool("training", training)
    channels = x.shape[1]
    running_mean = _per_channel("running_mean", running_mean, channels)
    running_var = _per_channel("running_var", running_var, channels)
    weight = _per_channel("weight", weight, channels)
    bias = _per_channel("bias", bias, channels)
    momentum = check_real("momentum", momentum)
    eps = check_real("eps", eps, minimum=0.0)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together or not at all")
    for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
        if buffer is not None and training and not buffer.flags.writeable:
            raise ValueError(f"{name} must be writeable: it is updated in place when training")
    axes = (0, *tuple(range(2, x.ndim)))
    count = x.size // channels if channels else 0
    if training:
        if count <= 1:
            raise ValueError(
                f"batch_norm needs more than 1 value per channel when training, "
                f"got x of shape {x.shape}"
            )
        mean = x.mean(axis=axes)
        centered = x - _broadcastable(mean, x.ndim)
        var = _channel_dot(centered, centered) / count  # biased: normalises the batch
        if running_mean is not None:
            unbiased = var * (count / (count - 1))
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * unbiased
    else:
        if running_mean is None:
            raise ValueError(
                "batch_norm with training=False needs running_mean and running_var, got None"
            )
        centered = x - _broadcastable(running_mean, x.ndim).astype(x.dtype, copy=False)
        var = running_var
    dtype = np.result_type(x, *(v for v in (weight, bias) if v is not None))
    # float32 running buffers must not round a float64 computation
    inv_std = 1.0 / np.sqrt(var.astype(dtype, copy=False) + eps)
    scale = inv_std if weight is None else inv_std * weight  # one multiply per element
    out = centered * _broadcastable(scale, x.ndim)
    if bias is not None:
        out += _broadcastable(bias, x.ndim)
    cache = _BatchNormCache(centered, inv_std, weight, bias is not None, bool(training), axes)
    return out, cache


def batch_norm_backward(grad_output, cache):
    """Gradients of :func:`batch_norm` with respect to `x`, `weight` and `bias`.

    Returns
    -------
    grad_x : ndarray, the shape of `x`
    grad_weight, grad_bias : ndarray of shape (C,), or None where the forward had none

    Notes
    -----
    In training the mean and variance depend on `x`:
    ``dx = w * inv_std * (g - mean(g) - xhat * mean(g * xhat))``, means over the ``m``
    values of each channel; in evaluation ``dx = w * inv_std * g``.
    """
    centered, inv_std = cache.centered, cache.inv_std
    grad = check_grad(grad_output, centered.shape, inv_std.dtype)
    ndim, axes = centered.ndim, cache.axes
    count = centered.size // centered.shape[1]
    grad_sum = grad.sum(axis=axes) if cache.has_bias or cache.training else None
    grad_bias = grad_sum if cache.has_bias else None
    # sum(g * xhat) = inv_std * sum(g * (x - mean)), without forming xhat
    grad_xhat_sum = None
    if cache.weight is not None or cache.training:
        grad_xhat_sum = inv_std * _channel_dot(grad, centered)
    grad_weight = grad_xhat_sum if cache.weight is not None else None
    scale = inv_std if cache.weight is None else inv_std * cache.weight
    if not cache.training:
        return grad * _broadcastable(scale, ndim), grad_weight, grad_bias
    # dx = w * inv_std * (g - mean(g) - xhat * mean(g * xhat))
    grad_x = grad - _broadcastable(grad_sum / count, ndim)
    grad_x -= centered * _broadcastable(inv_std * grad_xhat_sum / count, ndim)
    grad_x *= _broadcastable(scale, ndim)
    return grad_x, grad_weight, grad_bias


def batch_norm(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    """Normalise each channel to zero mean and unit variance, then scale and shift.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W) or (N, C)
    running_mean, running_var : ndarray of shape (C,), optional
        Running statistics. Used to normalise when not `training` (then required);
        updated in place when `training`:
        ``running = (1 - momentum) * running + momentum * batch_statistic``, with the
        unbiased batch variance.
    weight, bias : ndarray of shape (C,), optional
        Per-channel scale (gamma) and shift (beta).
    training : bool
        Normalise with the batch's statistics (biased variance) instead of the running ones.
    momentum : float
    eps : float
        Added to the variance; >= 0.

    Returns
    -------
    ndarray, the shape of `x`

    Raises
    ------
    ValueError
        When training with one value per channel, or evaluating without running statistics.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> batch_norm(x, mean, var, training=True, eps=0.0)
    array([[-1.],
           [ 1.]])
    >>> mean, var
    (array([0.2]), array([1.1]))
    """
    return batch_norm_forward(
        x, running_mean, running_var, weight, bias, training, momentum, eps
    )[0]
