"""Branching blocks: :class:`Residual` (ResNet), :class:`Concat` (Inception, DenseNet,
SqueezeNet) and :class:`ChannelShuffle` (ShuffleNet)."""

from __future__ import annotations

import numpy as np

from cnnkit._validation import as_float_array, check_grad, check_positive_int, to_int
from cnnkit.nn.module import Module, refuse_shared_modules

__all__ = ["Residual", "Concat", "ChannelShuffle"]


class Residual(Module):
    """``body(x) + shortcut(x)``; the shortcut is the identity when None (ResNet's block).

    The input's gradient is the sum of the gradients through both paths. State dict
    keys are ``"body.*"`` and ``"shortcut.*"``.

    Parameters
    ----------
    body : Module
        The residual branch.
    shortcut : Module or None, default None
        The other branch (a 1x1 convolution when the shapes change); None is the identity.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit import nn
    >>> block = nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=0), nn.ReLU()))
    >>> x = np.ones((2, 4, 5, 5), np.float32)
    >>> block(x).shape, block.backward(np.ones((2, 4, 5, 5), np.float32)).shape
    ((2, 4, 5, 5), (2, 4, 5, 5))
    >>> list(block.state_dict())
    ['body.0.weight', 'body.0.bias']
    """

    def __init__(self, body: Module, shortcut: Module | None = None):
        super().__init__()
        for name, module in (("body", body), ("shortcut", shortcut)):
            if module is not None and not isinstance(module, Module):
                raise TypeError(f"{name} must be a cnnkit.nn.Module, got {type(module).__name__}")
        if body is None:
            raise TypeError("body must be a cnnkit.nn.Module, got None")
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut
        else:
            object.__setattr__(self, "shortcut", None)
        refuse_shared_modules(self)

    def forward(self, x):
        out = self.body(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if np.shape(out) != np.shape(skip):
            raise ValueError(
                f"Residual: the body gives shape {np.shape(out)} but the shortcut gives "
                f"{np.shape(skip)}; give a shortcut that maps the input to the body's shape"
            )
        self._cache = True
        return out + skip

    def backward(self, grad_output):
        self._last_cache()
        grad_input = self.body.backward(grad_output)
        skip = grad_output if self.shortcut is None else self.shortcut.backward(grad_output)
        return grad_input + skip


class Concat(Module):
    """Each branch applied to the same input, outputs joined along `axis` (Inception's block).

    State dict keys are the branch indices (``"0.weight"``, ``"1.0.bias"``), as a
    PyTorch ``ModuleList``'s.

    Parameters
    ----------
    *branches : Module
        Applied to the same input, each one in turn.
    axis : int, default 1
        The axis their outputs are joined along.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit import nn
    >>> block = nn.Concat(nn.Conv2d(3, 2, 1, rng=0), nn.Conv2d(3, 5, 3, padding=1, rng=0))
    >>> block(np.ones((1, 3, 4, 4), np.float32)).shape
    (1, 7, 4, 4)
    """

    def __init__(self, *branches: Module, axis: int = 1):
        super().__init__()
        if not branches:
            raise ValueError("Concat needs at least one branch")
        for index, branch in enumerate(branches):
            if not isinstance(branch, Module):
                raise TypeError(
                    f"branch {index} must be a cnnkit.nn.Module, got {type(branch).__name__}"
                )
            setattr(self, str(index), branch)
        self.axis = to_int("axis", axis)
        refuse_shared_modules(self)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x):
        outputs = [branch(x) for branch in self._modules.values()]
        ndim = np.ndim(outputs[0])
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"Concat: axis {self.axis} is out of range for outputs of shape {np.shape(outputs[0])}"
            )
        axis = self.axis % ndim
        try:
            out = np.concatenate(outputs, axis=axis)
        except ValueError:
            shapes = [np.shape(o) for o in outputs]
            raise ValueError(
                f"Concat: the branches' outputs {shapes} differ outside axis {self.axis}"
            ) from None
        self._cache = (axis, np.cumsum([np.shape(o)[axis] for o in outputs])[:-1])
        return out

    def backward(self, grad_output):
        axis, splits = self._last_cache()
        parts = np.split(np.asarray(grad_output), splits, axis=axis)
        grad_input = None
        for branch, part in zip(self._modules.values(), parts):
            grad = branch.backward(part)
            grad_input = grad if grad_input is None else grad_input + grad
        return grad_input

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class ChannelShuffle(Module):
    """Interleave the channels of `groups` groups (ShuffleNet), as ``torch.nn.ChannelShuffle``.

    Channel ``g * (C // groups) + i`` goes to ``i * groups + g``.

    Parameters
    ----------
    groups : int
        Number of channel groups; it must divide the number of channels.

    Examples
    --------
    >>> import numpy as np
    >>> ChannelShuffle(2)(np.arange(6.0).reshape(1, 6, 1, 1)).ravel()
    array([0., 3., 1., 4., 2., 5.])
    """

    def __init__(self, groups):
        super().__init__()
        self.groups = check_positive_int("groups", groups)

    def forward(self, x):
        x = as_float_array("x", x)
        if x.ndim < 3 or x.shape[1] % self.groups:
            raise ValueError(
                f"ChannelShuffle({self.groups}) needs x of shape (N, C, ...) with C divisible "
                f"by {self.groups}, got shape {x.shape}"
            )
        n, c = x.shape[:2]
        self._cache = x.shape
        grouped = x.reshape(n, self.groups, c // self.groups, *x.shape[2:])  # (N, g, C/g, ...)
        return np.swapaxes(grouped, 1, 2).reshape(x.shape)  # (N, C/g, g, ...) flattened

    def backward(self, grad_output):
        shape = self._last_cache()
        grad = check_grad(grad_output, shape)
        n, c = shape[:2]
        grouped = grad.reshape(n, c // self.groups, self.groups, *shape[2:])  # (N, C/g, g, ...)
        return np.swapaxes(grouped, 1, 2).reshape(shape)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
