"""Stateless CNN operations on NumPy arrays, each with its backward pass.

Every op ``f`` comes with ``f_forward(...) -> (out, cache)`` and
``f_backward(grad_output, cache)``; :mod:`cnnkit.nn` layers are built on these.
One module per op family: conv, pool, norm, activation, regularization (dropout),
dense (linear) and loss.
"""

from cnnkit.functional import activation, conv, dense, loss, norm, pool, regularization
from cnnkit.functional.activation import *  # noqa: F403
from cnnkit.functional.conv import *  # noqa: F403
from cnnkit.functional.dense import *  # noqa: F403
from cnnkit.functional.loss import *  # noqa: F403
from cnnkit.functional.norm import *  # noqa: F403
from cnnkit.functional.pool import *  # noqa: F403
from cnnkit.functional.regularization import *  # noqa: F403

__all__ = [
    name
    for module in (activation, conv, dense, loss, norm, pool, regularization)
    for name in module.__all__
]
