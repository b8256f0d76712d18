"""A module for any directed acyclic graph of modules: :class:`Graph`, and the small
elementwise and shape operations that join its branches (:class:`Add`, :class:`Mul`,
:class:`Cat`, :class:`Reshape` ...).

A graph is a list of nodes ``(name, module, inputs)``: the node's module is applied to the
values named by `inputs` (the graph's input or earlier nodes' outputs) and its output is
the value called `name`. Forward runs the nodes in a topological order; backward runs
them in reverse, adding (``+=``) the gradients of a value that feeds several nodes. The
graph knows nothing about what its modules compute.

A module with one input follows the usual ``forward(x)`` / ``backward(grad) -> grad_x``;
one with ``k != 1`` inputs has ``forward(*xs)`` and ``backward(grad)`` returning a tuple of
``k`` gradients (None for an input that has none, such as a shape).
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnkit._validation import check_grad, to_int
from cnnkit.nn.module import Module, Parameter, refuse_shared_modules

__all__ = ["Graph", "Constant", "Add", "Sub", "Mul", "Div", "Cat", "Reshape", "Transpose"]


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting stretched, back to `shape`."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Graph(Module):
    """Any directed acyclic graph of modules, run in topological order.

    Parameters
    ----------
    nodes : sequence of (name, module, inputs)
        `name` names the node's output value and its module (state dict keys are
        ``"name.weight"`` ...); `inputs` is one value name or a list of them, each the
        graph's `input` or another node's name. The order does not matter.
    output : str, optional
        The value the graph returns; defaults to the last node's.
    input : str, default "input"
        The name of the graph's input value.

    Raises
    ------
    ValueError
        For a duplicate or unknown name, a cycle, or a module object used twice (its
        cached forward would be overwritten; share Parameters between two modules to tie
        weights).

    Examples
    --------
    A residual block with its shortcut written out:

    >>> import numpy as np
    >>> from cnnkit import nn
    >>> graph = nn.Graph(
    ...     [
    ...         ("conv", nn.Conv2d(2, 2, 3, padding=1, rng=0), "input"),
    ...         ("relu", nn.ReLU(), "conv"),
    ...         ("sum", nn.Add(), ["relu", "input"]),
    ...     ]
    ... )
    >>> x = np.ones((1, 2, 4, 4), np.float32)
    >>> graph(x).shape, graph.backward(np.ones((1, 2, 4, 4), np.float32)).shape
    ((1, 2, 4, 4), (1, 2, 4, 4))
    >>> list(graph.state_dict())
    ['conv.weight', 'conv.bias']
    """

    def __init__(self, nodes, output: str | None = None, input: str = "input"):
        super().__init__()
        if not isinstance(input, str) or not input:
            raise TypeError(f"input must be a non-empty str, got {input!r}")
        specs = {}
        for index, node in enumerate(nodes):
            if not (isinstance(node, (tuple, list)) and len(node) == 3):
                raise TypeError(f"node {index} must be (name, module, inputs), got {node!r}"[:200])
            name, module, inputs = node
            if not isinstance(name, str) or not name or name == input:
                raise ValueError(
                    f"node {index}: name must be a non-empty str other than the input {input!r}, got {name!r}"
                )
            if name in specs:
                raise ValueError(f"node name {name!r} is used twice")
            if not isinstance(module, Module):
                raise TypeError(
                    f"node {name!r}: module must be a cnnkit.nn.Module, got {type(module).__name__}"
                )
            inputs = [inputs] if isinstance(inputs, str) else list(inputs)
            if not all(isinstance(i, str) for i in inputs):
                raise TypeError(f"node {name!r}: inputs must be value names (str), got {inputs!r}")
            specs[name] = (module, inputs)
        if not specs:
            raise ValueError("a Graph needs at least one node")
        order = self._topological_order(specs, input)
        output = order[-1] if output is None else output
        if output not in specs:
            raise ValueError(f"output {output!r} is not a node of the graph")
        for name in order:
            self._modules[name] = specs[name][0]  # not setattr: a node may be called "eval"
        refuse_shared_modules(self)
        # object.__setattr__: Module.__setattr__ would unregister a node called "output"
        inputs = {name: specs[name][1] for name in order}
        # The last node reading each value: forward frees it after that one.
        last_use = {}
        for name in order:
            for value in inputs[name]:
                last_use[value] = name
        frees: dict[str, list[str]] = {name: [] for name in order}
        for value, name in last_use.items():
            if value != output:
                frees[name].append(value)
        for key, value in (
            ("input", input),
            ("output", output),
            ("_inputs", inputs),
            ("_frees", frees),
        ):
            object.__setattr__(self, key, value)

    @staticmethod
    def _topological_order(specs, input) -> list[str]:
        """Node names with every node after the nodes it reads (depth first, stable)."""
        order: list[str] = []
        state: dict[str, int] = {}  # 1 while visiting, 2 when placed
        for start in specs:
            stack = [(start, iter(specs[start][1]))]
            if state.get(start) == 2:
                continue
            state[start] = 1
            while stack:
                name, pending = stack[-1]
                value = next(pending, None)
                if value is None:
                    stack.pop()
                    state[name] = 2
                    order.append(name)
                elif value == input or state.get(value) == 2:
                    continue
                elif value not in specs:
                    raise ValueError(
                        f"node {name!r} reads {value!r}, which is neither the input {input!r} nor a node"
                    )
                elif state.get(value) == 1:
                    raise ValueError(f"the graph has a cycle through {value!r}")
                else:
                    state[value] = 1
                    stack.append((value, iter(specs[value][1])))
        return order

    def __getitem__(self, name: str) -> Module:
        """The module of node `name`."""
        if name not in self._inputs:
            raise KeyError(f"the graph has no node {name!r}")
        return self._modules[name]

    def __getattr__(self, name: str):
        # Called only when ordinary lookup fails: nodes as attributes, methods first.
        modules = self.__dict__.get("_modules", {})
        if name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or node {name!r}")

    def nodes(self):
        """``(name, module, inputs)`` of every node, in the order forward runs them."""
        return [(name, self._modules[name], list(inputs)) for name, inputs in self._inputs.items()]

    def forward(self, x):
        values = {self.input: x}
        for name, inputs in self._inputs.items():
            values[name] = self._modules[name](*(values[value] for value in inputs))
            for value in self._frees[name]:
                del values[value]
        self._cache = (np.shape(x), np.asarray(x).dtype)
        return values[self.output]

    def backward(self, grad_output):
        shape, dtype = self._last_cache()
        grads = {self.output: grad_output}
        for name in reversed(self._inputs):
            grad = grads.pop(name, None)
            if grad is None:  # the output does not depend on this node
                continue
            inputs = self._inputs[name]
            result = self._modules[name].backward(grad)
            parts = (result,) if len(inputs) == 1 else tuple(result)
            for value, part in zip(inputs, parts, strict=True):
                if part is not None:
                    grads[value] = part if value not in grads else grads[value] + part
        grad_input = grads.get(self.input)
        return np.zeros(shape, dtype) if grad_input is None else grad_input

    def extra_repr(self) -> str:
        return f"input={self.input!r}, output={self.output!r}"

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, inputs in self._inputs.items():
            child = repr(self._modules[name]).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child} <- {', '.join(inputs)}")
        lines.append(f"  -> {self.output}")
        lines.append(")")
        return "\n".join(lines)


class Constant(Module):
    """A node with no input that gives a fixed array: a trainable Parameter, or a buffer.

    Parameters
    ----------
    value : ndarray
        The array the node gives.
    trainable : bool, default False
        Register it as a Parameter (trained, floating point) rather than a buffer.

    Examples
    --------
    >>> import numpy as np
    >>> c = Constant(np.array([1.0, 2.0], np.float32), trainable=True)
    >>> c(), list(c.state_dict())
    (array([1., 2.], dtype=float32), ['value'])
    """

    def __init__(self, value, trainable: bool = False):
        super().__init__()
        value = np.array(value)
        self.trainable = bool(trainable)
        if self.trainable:
            if value.dtype.kind != "f":
                raise TypeError(f"a trainable Constant must be floating point, got {value.dtype}")
            self.value = Parameter(value)
        else:
            self.register_buffer("value", value)

    def _array(self) -> np.ndarray:
        value = self.value
        return value.data if isinstance(value, Parameter) else value

    def forward(self):
        self._cache = True
        return self._array()

    def backward(self, grad_output):
        self._last_cache()
        if self.trainable:
            self.value.accumulate(check_grad(grad_output, self.value.shape))
        return ()

    def extra_repr(self) -> str:
        value = self._array()
        return f"shape={value.shape}, dtype={value.dtype}, trainable={self.trainable}"


class _Binary(Module):
    """An elementwise operation of two broadcast inputs."""

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        self._cache = (a, b)
        return self._apply(a, b)

    def backward(self, grad_output):
        a, b = self._last_cache()
        grad = np.asarray(grad_output)
        grad_a, grad_b = self._gradients(grad, a, b)
        return _unbroadcast(grad_a, a.shape), _unbroadcast(grad_b, b.shape)


class Add(_Binary):
    """``a + b`` with broadcasting (a skip connection's sum).

    Examples
    --------
    >>> import numpy as np
    >>> Add()(np.ones((2, 3)), np.arange(3.0))
    array([[1., 2., 3.],
           [1., 2., 3.]])
    """

    def _apply(self, a, b):
        return a + b

    def _gradients(self, grad, a, b):
        return grad, grad


class Sub(_Binary):
    """``a - b`` with broadcasting.

    Examples
    --------
    >>> import numpy as np
    >>> Sub()(np.ones(2), np.arange(2.0))
    array([1., 0.])
    """

    def _apply(self, a, b):
        return a - b

    def _gradients(self, grad, a, b):
        return grad, -grad


class Mul(_Binary):
    """``a * b`` with broadcasting.

    Examples
    --------
    >>> import numpy as np
    >>> Mul()(np.full(2, 3.0), np.arange(2.0))
    array([0., 3.])
    """

    def _apply(self, a, b):
        return a * b

    def _gradients(self, grad, a, b):
        return grad * b, grad * a


class Div(_Binary):
    """``a / b`` with broadcasting (integer inputs divide as integers, for shape arithmetic).

    Examples
    --------
    >>> import numpy as np
    >>> Div()(np.arange(3.0), np.full(3, 2.0))
    array([0. , 0.5, 1. ])
    """

    def _apply(self, a, b):
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":
            return np.trunc(a / b).astype(np.result_type(a, b))
        return a / b

    def _gradients(self, grad, a, b):
        return grad / b, -grad * a / (b * b)


class Cat(Module):
    """Its inputs joined along `axis` (a graph's concatenation node).

    Parameters
    ----------
    axis : int, default 1
        The axis to join along (1: the channels of (N, C, H, W) inputs).

    Examples
    --------
    >>> import numpy as np
    >>> Cat(axis=1)(np.ones((1, 2)), np.zeros((1, 1)))
    array([[1., 1., 0.]])
    """

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = to_int("axis", axis)

    def forward(self, *inputs):
        inputs = [np.asarray(x) for x in inputs]
        if not inputs:
            raise ValueError("Cat needs at least one input")
        ndim = inputs[0].ndim
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"Cat: axis {self.axis} is out of range for inputs of shape {inputs[0].shape}"
            )
        axis = self.axis % ndim
        try:
            out = np.concatenate(inputs, axis=axis)
        except ValueError:
            shapes = [x.shape for x in inputs]
            raise ValueError(
                f"Cat: inputs of shapes {shapes} differ outside axis {self.axis}"
            ) from None
        self._cache = (axis, np.cumsum([x.shape[axis] for x in inputs])[:-1], len(inputs))
        return out

    def backward(self, grad_output):
        axis, splits, count = self._last_cache()
        parts = tuple(np.split(np.asarray(grad_output), splits, axis=axis))
        return parts[0] if count == 1 else parts

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Reshape(Module):
    """Reshape to `shape` as ``torch.reshape`` does: one entry may be -1 (inferred).

    Parameters
    ----------
    shape : tuple of int
        The new shape, batch axis included; one entry may be -1.

    Examples
    --------
    >>> import numpy as np
    >>> Reshape((2, -1))(np.zeros((2, 3, 4))).shape
    (2, 12)
    """

    def __init__(self, shape):
        super().__init__()
        if isinstance(shape, numbers.Integral):
            shape = (shape,)
        self.shape = tuple(to_int("shape", s) for s in shape)
        if sum(s == -1 for s in self.shape) > 1 or any(s < -1 for s in self.shape):
            raise ValueError(f"shape may hold one -1 and otherwise sizes >= 0, got {self.shape}")

    def forward(self, x):
        x = np.asarray(x)
        try:
            out = x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"cannot reshape x of shape {x.shape} to {self.shape}") from None
        self._cache = x.shape
        return out

    def backward(self, grad_output):
        return np.asarray(grad_output).reshape(self._last_cache())

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Transpose(Module):
    """Permute the axes: output axis ``i`` is input axis ``perm[i]`` (``np.transpose``).

    Parameters
    ----------
    perm : tuple of int
        A permutation of the input's axes.

    Examples
    --------
    >>> import numpy as np
    >>> Transpose((0, 2, 3, 1))(np.zeros((1, 3, 4, 5))).shape
    (1, 4, 5, 3)
    """

    def __init__(self, perm):
        super().__init__()
        self.perm = tuple(to_int("perm", p) for p in perm)
        if sorted(self.perm) != list(range(len(self.perm))):
            raise ValueError(
                f"perm must be a permutation of 0..{len(self.perm) - 1}, got {self.perm}"
            )

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim != len(self.perm):
            raise ValueError(
                f"Transpose{self.perm} needs a {len(self.perm)}-d input, got shape {x.shape}"
            )
        self._cache = True
        return np.ascontiguousarray(np.transpose(x, self.perm))

    def backward(self, grad_output):
        self._last_cache()
        return np.ascontiguousarray(np.transpose(np.asarray(grad_output), np.argsort(self.perm)))

    def extra_repr(self) -> str:
        return f"perm={self.perm}"
