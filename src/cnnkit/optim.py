"""Optimisers with PyTorch's update rules: the same inputs give the same trajectory."""

from __future__ import annotations

import math

import numpy as np

from cnnkit._validation import check_real
from cnnkit.nn.module import Parameter

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Base class: holds the parameters and their per-parameter state."""

    def __init__(self, params):
        if isinstance(params, Parameter):
            raise TypeError("params must be an iterable of Parameters (e.g. model.parameters()), got one Parameter")
        try:
            self.params = list(params)
        except TypeError:
            raise TypeError(f"params must be an iterable of Parameters, got {type(params).__name__}") from None
        if not self.params:
            raise ValueError("params is empty: the optimiser has nothing to update")
        for index, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{index}] must be a cnnkit.nn.Parameter, got {type(p).__name__}")
        self.state: dict[int, dict] = {}

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set to None, as PyTorch does)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for p in self.params:
            if p.grad is not None:
                self._update(p, p.grad.astype(p.data.dtype, copy=False), self.state.setdefault(id(p), {}))

    def _update(self, p: Parameter, grad: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

    Notes
    -----
    As PyTorch: ``g = grad + weight_decay * p``; with momentum, ``buf = g`` on the first
    step, then ``buf = momentum * buf + g``; ``p -= lr * buf`` (or ``lr * g``).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.nn import Parameter
    >>> p = Parameter(np.array([1.0]))
    >>> p.grad = np.array([0.5])
    >>> SGD([p], lr=0.1).step()
    >>> p.data
    array([0.95])
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr = check_real("lr", lr, minimum=0.0)
        self.momentum = check_real("momentum", momentum, minimum=0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, minimum=0.0)

    def _update(self, p, grad, state):
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if self.momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                buf = state["momentum_buffer"]
                buf *= self.momentum
                buf += grad
            grad = state["momentum_buffer"]
        p.data -= self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba), with L2 weight decay added to the gradient as PyTorch's Adam does.

    Notes
    -----
    ``m += (1 - b1) * (g - m)``; ``v = b2 * v + (1 - b2) * g**2``;
    ``p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.nn import Parameter
    >>> p = Parameter(np.array([1.0]))
    >>> p.grad = np.array([0.5])
    >>> Adam([p], lr=0.1).step()
    >>> p.data.round(6)
    array([0.9])
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        self.lr = check_real("lr", lr, minimum=0.0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        self.betas = tuple(check_real("betas", b, minimum=0.0) for b in betas)
        if max(self.betas) >= 1.0:
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        self.eps = check_real("eps", eps, minimum=0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, minimum=0.0)

    def _update(self, p, grad, state):
        beta1, beta2 = self.betas
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        step = state["step"]
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1**step)
        denom = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**step) + self.eps
        p.data -= step_size * (exp_avg / denom)
