"""`Parameter`, `Module` and `Sequential`: the stateful shell around :mod:`cnnkit.functional`."""

from __future__ import annotations

import contextlib
import contextvars
from collections import OrderedDict

import numpy as np

from cnnkit._validation import check_bool

__all__ = ["Parameter", "Module", "Sequential"]

_backward_follows = contextvars.ContextVar("cnnkit_backward_follows", default=True)


@contextlib.contextmanager
def forward_only():
    """Forwards in the block are for prediction: no backward pass will follow them.

    Layers whose cache costs memory (the windows and padded copy a convolution keeps)
    skip it; calling their backward after such a forward is an error. In a
    :class:`Sequential`, batch norm (evaluating) and ReLU write their output over the
    array the layer before them made, never over the caller's. Results are the same bit
    for bit. Used by :func:`cnnkit.train.predict_proba` and ``evaluate``.
    """
    token = _backward_follows.set(False)
    try:
        yield
    finally:
        _backward_follows.reset(token)


def backward_follows() -> bool:
    """False inside :func:`forward_only` (on this thread)."""
    return _backward_follows.get()


def refuse_shared_modules(container) -> None:
    """Refuse a module object that appears twice in `container`'s tree.

    A module keeps the cache of its last forward only, so a second use would overwrite
    the first one's and give wrong gradients; use two modules (and share Parameters
    between them if the weights should be tied).
    """
    seen: dict[int, str] = {}
    for name, module in container.named_modules():
        if id(module) in seen:
            raise ValueError(
                f"the same {type(module).__name__} object is used twice in one model (as "
                f"{seen[id(module)] or 'the model'!r} and {name!r}); a module remembers only "
                f"its last forward, so its gradients would be wrong: use a separate module "
                f"for each use (to tie weights, share the Parameter objects between them)"
            )
        seen[id(module)] = name


class Parameter:
    """A trainable array: `data`, and `grad` (same shape, or None before any backward).

    Parameters
    ----------
    data : ndarray
        The initial values (kept as given, not copied).

    Examples
    --------
    >>> import numpy as np
    >>> p = Parameter(np.zeros(3, dtype=np.float32))
    >>> p.shape, p.grad is None
    ((3,), True)
    """

    def __init__(self, data: np.ndarray):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"data must be a numpy.ndarray, got {type(data).__name__}")
        self.data = data
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def accumulate(self, grad: np.ndarray) -> None:
        """Add `grad` into `self.grad` (created on first use), in this parameter's dtype."""
        grad = np.asarray(grad).reshape(self.data.shape)
        if self.grad is None:
            self.grad = grad.astype(self.data.dtype, copy=True)
        else:
            self.grad += grad.astype(self.data.dtype, copy=False)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of layers: parameters, buffers and sub-modules registered by attribute.

    Subclasses implement ``forward(x)`` and ``backward(grad_output)``. `backward`
    returns the gradient with respect to the input of the last `forward` and adds the
    parameters' gradients into their ``.grad`` (gradients accumulate until
    :meth:`zero_grad`). `state_dict` keys follow PyTorch (``"0.weight"``,
    ``"1.running_mean"``), so weights move both ways between the two.

    ``metadata`` is a plain dict of what is known about the model's use (its
    ``"classes"``, ``"input_shape"``, ``"preprocessing"``): :func:`cnnkit.train.fit` fills
    it from its data and :func:`cnnkit.save` writes it into the model file. A module also
    remembers the shape of one sample of its last ``(N, C, H, W)`` or ``(C, H, W)``
    input (``last_input_shape``), which :func:`cnnkit.save` records when ``metadata`` has none.

    Examples
    --------
    A layer that scales its input by a learned factor:

    >>> import numpy as np
    >>> class Scale(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.factor = Parameter(np.array(2.0))
    ...
    ...     def forward(self, x):
    ...         self._x = x
    ...         return self.factor.data * x
    ...
    ...     def backward(self, grad_output):
    ...         grad = np.sum(grad_output * self._x)
    ...         self.factor.grad = grad if self.factor.grad is None else self.factor.grad + grad
    ...         return grad_output * self.factor.data
    >>> layer = Scale()
    >>> layer(np.array([1.0, 3.0])), layer.backward(np.ones(2)), layer.factor.grad
    (array([2., 6.]), array([2., 2.]), np.float64(4.0))
    >>> list(layer.state_dict())
    ['factor']
    """

    # Inside forward_only, Sequential lets a layer that can (`_forward_in_place`) write
    # its output over its input when the previous layer's output is a new array nobody
    # else holds: layers whose forward always returns one set `_output_is_new`.
    _output_is_new = False

    # Set in __init__ through object.__setattr__ (this class's own __setattr__ files
    # attributes into them).
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, np.ndarray]
    _modules: dict[str, Module]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "metadata", {})
        object.__setattr__(self, "last_input_shape", None)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"call Module.__init__() in {type(self).__name__}.__init__ before assigning {name}"
            )
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffers:
            if not isinstance(value, np.ndarray):
                raise TypeError(
                    f"buffer {name} must be a numpy.ndarray, got {type(value).__name__}"
                )
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_parameter(self, name: str, parameter: Parameter | None) -> None:
        """Register `parameter` under `name`; None records an absent one (``bias=False``)."""
        object.__setattr__(self, name, parameter)
        self._parameters[name] = parameter

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """Register a non-trainable array saved in the state dict (e.g. running statistics)."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    # -- computation ------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *inputs):
        self._note_input(inputs)
        return self.forward(*inputs)

    def _call_in_place(self, x):
        """:meth:`__call__` through :meth:`_forward_in_place`."""
        self._note_input((x,))
        return self._forward_in_place(x)

    def _note_input(self, inputs) -> None:
        x = inputs[0] if len(inputs) == 1 else None
        if isinstance(x, np.ndarray) and x.ndim in (3, 4):
            object.__setattr__(self, "last_input_shape", tuple(int(s) for s in x.shape[-3:]))

    def _forward_in_place(self, x):
        """The forward, written over `x` where the layer can (else a new array), keeping
        no cache; only called inside :func:`forward_only` on an array nobody else holds."""
        return self(x)

    def _last_cache(self):
        """The cache of the last forward; backward before any forward is an error."""
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward (or after a forward "
                f"for prediction only)"
            )
        return self._cache

    # -- parameters and state ---------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        """Yield ``(qualified name, module)`` for this module and every descendant."""
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self):
        """Yield ``(qualified name, Parameter)``, each parameter once."""
        seen = set()
        for prefix, module in self.named_modules():
            for name, parameter in module._parameters.items():
                if parameter is not None and id(parameter) not in seen:
                    seen.add(id(parameter))
                    yield (f"{prefix}.{name}" if prefix else name), parameter

    def parameters(self) -> list[Parameter]:
        """Every trainable parameter of this module and its descendants."""
        return [parameter for _, parameter in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget accumulated gradients (set each ``.grad`` to None, as PyTorch does)."""
        for parameter in self.parameters():
            parameter.grad = None

    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch statistics) on this module and its children."""
        mode = check_bool("mode", mode)
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode; same as ``train(False)``."""
        return self.train(False)

    def astype(self, dtype) -> Module:
        """Convert floating parameters and buffers to `dtype` in place (e.g. np.float64)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"dtype must be a floating type, got {dtype}")
        for _, module in self.named_modules():
            for parameter in module._parameters.values():
                if parameter is not None:
                    parameter.data = parameter.data.astype(dtype)
                    parameter.grad = (
                        None if parameter.grad is None else parameter.grad.astype(dtype)
                    )
            for name, buffer in list(module._buffers.items()):
                if buffer.dtype.kind == "f":
                    setattr(module, name, buffer.astype(dtype))
        return self

    def state_dict(self) -> OrderedDict:
        """Copies of every parameter and buffer, keyed as PyTorch keys them."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, parameter in module._parameters.items():
                if parameter is not None:
                    state[dot + name] = parameter.data.copy()
            for name, buffer in module._buffers.items():
                state[dot + name] = buffer.copy()
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        """Copy arrays from `state_dict` (e.g. a PyTorch state dict converted to NumPy) in place.

        Values keep each parameter's dtype. With `strict`, missing or unexpected keys
        are an error; shapes must always match.
        """
        targets = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, parameter in module._parameters.items():
                if parameter is not None:
                    targets[dot + name] = (module, name, True)
            for name in module._buffers:
                targets[dot + name] = (module, name, False)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for key, (module, name, is_parameter) in targets.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            current = module._parameters[name].data if is_parameter else module._buffers[name]
            if value.shape != current.shape:
                raise ValueError(
                    f"state_dict[{key!r}] has shape {value.shape}, expected {current.shape}"
                )
            if not np.can_cast(value.dtype, current.dtype, casting="same_kind"):
                raise TypeError(
                    f"state_dict[{key!r}] has dtype {value.dtype}, expected {current.dtype}"
                )
            current[...] = value

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        lines.append(")")
        return "\n".join(lines)


def _in_layer(error: Exception, name: str, layer: Module, shape) -> Exception:
    """`error` from a Sequential's layer `name`, of the same type, saying where it arose.

    A nested Sequential's context is replaced by one naming the whole path ("2.0") and
    the shape given to the outermost model, the one the user passed in.
    """
    path, message = f"{name}", str(error)
    context = getattr(error, "_cnnkit_layer", None)
    if context is not None:  # raised by a nested Sequential: extend its path
        inner_path, layer_type, message = context
        path = f"{name}.{inner_path}"
    else:
        layer_type = type(layer).__name__
    where = f"layer {path} ({layer_type}) of a Sequential given input of shape {shape}"
    try:
        wrapped = type(error)(f"{where}: {message}")
    except Exception:  # noqa: BLE001 - an exception type with its own constructor: keep it as is
        return error
    wrapped._cnnkit_layer = (path, layer_type, message)  # type: ignore[attr-defined]
    return wrapped


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse.

    Parameters
    ----------
    *layers : Module
        The layers, applied in this order; their indices name them in `state_dict`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit import nn
    >>> model = nn.Sequential(
    ...     nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2, rng=0)
    ... )
    >>> model(np.ones((5, 1, 4, 4))).shape
    (5, 2)
    >>> list(model.state_dict())
    ['0.weight', '0.bias', '3.weight', '3.bias']
    """

    def __init__(self, *layers: Module):
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"layer {index} must be a cnnkit.nn.Module, got {type(layer).__name__}"
                )
            setattr(self, str(index), layer)
        refuse_shared_modules(self)

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        shape = getattr(x, "shape", None)
        reuse = not backward_follows()
        owned = False  # whether x is an array only this loop holds (never the caller's)
        for name, layer in self._modules.items():
            try:
                out = layer._call_in_place(x) if owned else layer(x)
            except (ValueError, TypeError, RuntimeError) as error:
                raise _in_layer(error, name, layer, shape) from error
            owned = reuse and (
                (owned and out is x)
                or (
                    layer._output_is_new
                    and isinstance(out, np.ndarray)
                    and not np.may_share_memory(out, x)
                )
            )
            x = out
        return x

    def backward(self, grad_output):
        for layer in reversed(self._modules.values()):
            grad_output = layer.backward(grad_output)
        return grad_output
