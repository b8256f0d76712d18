"""Loss modules."""

from __future__ import annotations

from cnnkit import functional as F

__all__ = ["CrossEntropyLoss"]


class CrossEntropyLoss:
    """Mean cross-entropy of logits against integer class targets.

    ``loss = crit(logits, target)`` returns a float; ``crit.backward()`` returns the
    gradient with respect to the logits of that call.

    Examples
    --------
    >>> import numpy as np
    >>> crit = CrossEntropyLoss()
    >>> round(crit(np.zeros((2, 4)), np.array([1, 2])), 4)
    1.3863
    >>> crit.backward().shape
    (2, 4)
    """

    def __init__(self):
        self._cache = None

    def __call__(self, logits, target) -> float:
        loss, self._cache = F.cross_entropy_forward(logits, target)
        return float(loss)

    def backward(self, grad_output=1.0):
        if self._cache is None:
            raise RuntimeError("CrossEntropyLoss.backward called before the loss was computed")
        return F.cross_entropy_backward(grad_output, self._cache)

    def __repr__(self) -> str:
        return "CrossEntropyLoss()"
