"""Optimisers with PyTorch's update rules: the same inputs give the same trajectory.

Each update runs elementwise over flat blocks of the parameter and its state (over the
thread pool for large parameters), with block-sized temporaries from the workspace, so
a step allocates nothing the size of the model. The arithmetic is the same for any
block cut or thread count.
"""

from __future__ import annotations

import math

import numpy as np

from cnnkit import _threads
from cnnkit._validation import check_real
from cnnkit._workspace import scratch
from cnnkit.nn.module import Parameter

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Base class: holds the parameters and their per-parameter state.

    Subclasses implement ``step()``, which updates each parameter from its ``.grad``.

    Parameters
    ----------
    params : iterable of cnnkit.nn.Parameter
        The parameters to update (``model.parameters()``); duplicates are refused.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.nn import Parameter
    >>> p = Parameter(np.ones(2))
    >>> p.grad = np.ones(2)
    >>> optimizer = SGD([p], lr=0.1)
    >>> optimizer.zero_grad()
    >>> p.grad is None
    True
    """

    def __init__(self, params):
        if isinstance(params, Parameter):
            raise TypeError(
                "params must be an iterable of Parameters (e.g. model.parameters()), got one Parameter"
            )
        try:
            self.params = list(params)
        except TypeError:
            raise TypeError(
                f"params must be an iterable of Parameters, got {type(params).__name__}"
            ) from None
        if not self.params:
            raise ValueError("params is empty: the optimiser has nothing to update")
        for index, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"params[{index}] must be a cnnkit.nn.Parameter, got {type(p).__name__}"
                )
        self.state: dict[int, dict] = {}

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set to None, as PyTorch does)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for p in self.params:
            if p.grad is not None:
                self._update(
                    p, p.grad.astype(p.data.dtype, copy=False), self.state.setdefault(id(p), {})
                )

    def _update(self, p: Parameter, grad: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update (``model.parameters()``).
    lr : float
        Learning rate.
    momentum : float, default 0.0
        Momentum factor (0: plain gradient descent).
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.

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
        lr, momentum, weight_decay = self.lr, self.momentum, self.weight_decay
        first = momentum and "momentum_buffer" not in state
        if momentum and first:
            state["momentum_buffer"] = np.empty_like(p.data)
        buffer = state.get("momentum_buffer", p.data)  # p.data: a stand-in, not written

        def update(data, grad, buffer):
            step = scratch("sgd.step", grad.shape, data.dtype, data)
            if weight_decay:  # g = grad + weight_decay * p
                np.multiply(data, weight_decay, out=step)
                np.add(grad, step, out=step)
                grad = step
            if momentum:  # buf = g on the first step, then momentum * buf + g
                if first:
                    np.copyto(buffer, grad)
                else:
                    buffer *= momentum
                    buffer += grad
                grad = buffer
            np.multiply(grad, lr, out=step)  # p -= lr * g
            data -= step

        _threads.elementwise(update, p.data, grad, buffer)


class Adam(Optimizer):
    """Adam (Kingma & Ba), with L2 weight decay added to the gradient as PyTorch's Adam does.

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update (``model.parameters()``).
    lr : float, default 1e-3
        Learning rate.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the running averages of the gradient and of its square.
    eps : float, default 1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient.

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
        weight_decay, eps = self.weight_decay, self.eps
        step_size = self.lr / (1 - beta1**step)
        correction2 = math.sqrt(1 - beta2**step)

        def update(data, grad, exp_avg, exp_avg_sq):
            temp = scratch("adam.temp", grad.shape, data.dtype, data)
            if weight_decay:  # g = grad + weight_decay * p
                decayed = scratch("adam.grad", grad.shape, data.dtype, data)
                np.multiply(data, weight_decay, out=decayed)
                grad = np.add(grad, decayed, out=decayed)
            np.subtract(grad, exp_avg, out=temp)  # m += (1 - b1) * (g - m)
            temp *= 1 - beta1
            exp_avg += temp
            exp_avg_sq *= beta2  # v = b2 * v + (1 - b2) * g * g
            np.multiply(grad, 1 - beta2, out=temp)
            temp *= grad
            exp_avg_sq += temp
            np.sqrt(exp_avg_sq, out=temp)  # denom = sqrt(v) / sqrt(1 - b2**t) + eps
            temp /= correction2
            temp += eps
            np.divide(exp_avg, temp, out=temp)  # p -= step_size * (m / denom)
            temp *= step_size
            data -= temp

        _threads.elementwise(update, p.data, grad, state["exp_avg"], state["exp_avg_sq"])
