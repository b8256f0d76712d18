"""The explorer's maths: one model, one current input, every layer's output and gradients.

A :class:`Session` runs the model on one prepared input and records what each leaf
module (a module without children) receives and returns, in the order the forward pass
runs them. It does so generically, by wrapping each leaf's ``forward`` and ``backward``
on the instance, so it works for :class:`~cnnkit.nn.Sequential` models and for composite
modules (residual blocks, concatenations, graphs) that call their children through
their public ``forward``/``backward``. Layer names are the modules' ``state_dict``
prefixes (``"0"``, ``"3"``, ``"1.body.0"``).

Everything the page shows is computed here, with cnnkit's own layers; the server only
turns it into JSON and the page only draws it.
"""

from __future__ import annotations

import copy
import threading

import numpy as np

from cnnkit._matmul import matmul

__all__ = ["Session", "ExploreError", "NotFound"]

#: Input sizes tried, in order, for a model given without an input shape.
_GUESSED_SIZES = (28, 32, 8, 64, 224, 16, 96, 128, 256)

#: Layer types that act on each value on its own (the receptive field passes through).
_ELEMENTWISE = ("ReLU", "LeakyReLU", "Sigmoid", "Dropout", "BatchNorm2d", "Identity")


class ExploreError(ValueError):
    """A bad request: a missing or malformed argument (the server answers 400)."""


class NotFound(LookupError):
    """An unknown layer, channel or position (the server answers 404)."""


def _int_arg(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int in ``[low, high)``; ExploreError (or NotFound out of range)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ExploreError(f"{name} must be an integer, got {value!r}") from None
    if (low is not None and number < low) or (high is not None and number >= high):
        raise NotFound(f"{name} must be in [{low}, {high - 1 if high else ''}], got {number}")
    return number


#: Composite modules that compute a value of their own (a sum, a concatenation): shown as
#: layers too, after the layers inside them.
_MERGES = ("Residual", "Concat")


def _leaves(model):
    """(name, module) of every module without children, in registration order."""
    return [(name, module) for name, module in model.named_modules() if not module._modules]


def _shown(model):
    """(name, module) of the modules the explorer records: leaves and merging blocks."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if name and (not module._modules or type(module).__name__ in _MERGES)
    ] or [("", model)]


def _describe(module) -> str:
    """The layer as it would be written in code: ``Conv2d(1, 8, kernel_size=(3, 3), ...)``."""
    return f"{type(module).__name__}({module.extra_repr()})"


def _softmax(z: np.ndarray) -> np.ndarray:
    from cnnkit import functional as F

    return F.softmax(z.astype(np.float64), axis=-1)


class Session:
    """The model, its current input and what each layer made of it.

    Parameters
    ----------
    model : cnnkit.nn.Module
        Copied, so the caller's model (weights, gradients, mode) is never touched.
    metadata : dict
        ``input_shape`` ``[C, H, W]`` and ``classes``, and the preparation settings
        :func:`cnnkit.explore.prepare_input` reads.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit import nn
    >>> model = nn.Sequential(
    ...     nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=0)
    ... )
    >>> session = Session(model, {"input_shape": [1, 4, 4]})
    >>> [layer["name"] for layer in session.model_info()["layers"]]
    ['0', '1', '2', '3']
    >>> session.activation("0", 1).shape
    (2, 2)
    """

    def __init__(self, model, metadata: dict | None = None):
        from cnnkit.nn import Module

        if not isinstance(model, Module):
            raise TypeError(f"model must be a cnnkit.nn.Module, got {type(model).__name__}")
        self.lock = threading.RLock()
        self.model = copy.deepcopy(model).eval()
        self.metadata = dict(metadata or {})
        self._modules = dict(_shown(self.model))
        if not self._modules:
            raise ValueError("the model has no layers")
        self._records: dict[str, tuple] = {}
        self._operands: dict[str, tuple] = {}  # every input of a layer with several
        self._gradients: dict[str, np.ndarray] = {}
        self._order: list[str] = []
        self._inject: tuple[str, np.ndarray] | None = None
        self._skip_softmax = False
        for name, module in self._modules.items():
            self._wrap(name, module)
        self._edits: dict[tuple, float] = {}
        shape = self.metadata.get("input_shape") or self._guess_input_shape()
        self.input_shape = tuple(int(s) for s in shape)
        self.x = np.zeros(self.input_shape, np.float32)
        self._forward()
        # Layers with (1, F) or (1, C, H, W) outputs are drawn; others (a reshape into
        # five axes inside an imported graph) are computed but not shown.
        self.layers = [
            n
            for n in self._order
            if self._records[n][1].ndim in (2, 4) and self._records[n][1].shape[0] == 1
        ]
        self._final_softmax = self._ends_in_softmax()
        classes = self.metadata.get("classes")
        count = self.logits.shape[-1]
        if not classes or len(classes) != count:
            classes = [str(k) for k in range(count)]
        self.classes = [str(c) for c in classes]

    # -- recording ----------------------------------------------------------------------
    def _wrap(self, name: str, module) -> None:
        """Record `module`'s input, output and output gradient while it runs."""
        forward, backward = module.forward, module.backward

        def recording_forward(*inputs):
            out = forward(*inputs)
            if not inputs:  # a constant of an imported graph: not a layer
                return out
            if name not in self._records:
                self._order.append(name)
            self._records[name] = (np.asarray(inputs[0]), np.asarray(out))
            if len(inputs) > 1:
                self._operands[name] = tuple(np.asarray(i) for i in inputs)
            return out

        def recording_backward(grad_output):
            if self._inject is not None and self._inject[0] == name:
                grad_output = self._inject[1]
            self._gradients[name] = np.asarray(grad_output)
            if self._skip_softmax and name == self._final_softmax:
                return grad_output  # the gradient of the logits, not of the probabilities
            return backward(grad_output)

        object.__setattr__(module, "forward", recording_forward)
        object.__setattr__(module, "backward", recording_backward)

    def _guess_input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) for a model given without one: C from its first layer, H = W tried."""
        first = next(iter(self._modules.values()))
        channels = getattr(first, "in_channels", None) or getattr(first, "num_features", None) or 3
        channels = int(channels)
        for size in _GUESSED_SIZES:
            try:
                self.model(np.zeros((1, channels, size, size), np.float32))
                return (int(channels), size, size)
            except (ValueError, TypeError):
                continue
        raise ValueError("cannot tell the model's input shape; pass input_shape=(C, H, W)")

    def _ends_in_softmax(self) -> str | None:
        """The name of a final Softmax layer whose output is the model's output, else None."""
        last = self.layers[-1]
        if (
            type(self._modules[last]).__name__ == "Softmax"
            and self._records[last][1] is self.output
        ):
            return last
        return None

    def _forward(self) -> None:
        """Run the model on the current input, recording every layer."""
        self._records, self._order, self._operands = {}, [], {}
        self.output = np.asarray(self.model(self.x[None]))

    @property
    def logits(self) -> np.ndarray:
        """The model's output before a final softmax, ``(K,)``."""
        name = getattr(self, "_final_softmax", None)
        return (self._records[name][0] if name else self.output)[0]

    @property
    def probabilities(self) -> np.ndarray:
        """Class probabilities ``(K,)`` (the softmax of the logits)."""
        return _softmax(self.logits)

    def _backward(self, seed: np.ndarray, inject: tuple | None = None) -> np.ndarray:
        """Gradient at the input for `seed` at the logits (or injected at one layer)."""
        parameters = self.model.parameters()
        saved = [p.grad for p in parameters]
        self._gradients = {}
        self._inject, self._skip_softmax = inject, True
        try:
            grad = self.model.backward(seed.astype(self.output.dtype)[None])
        finally:
            self._inject, self._skip_softmax = None, False
            for parameter, grad_before in zip(parameters, saved):
                parameter.grad = grad_before
        return np.asarray(grad)[0]

    # -- the input ------------------------------------------------------------------------
    def set_input(self, x) -> None:
        """Make `x`, a prepared ``(C, H, W)`` input, the current one."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape != self.input_shape:
            raise ExploreError(
                f"the input must have shape {list(self.input_shape)}, got {list(x.shape)}"
            )
        with self.lock:
            self.x = np.ascontiguousarray(x)
            self._forward()

    def set_image(self, picture) -> None:
        """Prepare a loaded picture as ``cnnkit predict`` does and make it the input."""
        from cnnkit.explore.preparation import prepare_input

        self.set_input(prepare_input(picture, self.metadata, self.input_shape))

    # -- what the API returns --------------------------------------------------------------
    def _layer(self, name) -> str:
        if name is None or name == "":
            raise ExploreError("the layer argument is missing")
        if name not in self._records:
            raise NotFound(f"unknown layer {name!r}; layers are {', '.join(self.layers)}")
        return name

    def model_info(self) -> dict:
        """``{"input_shape", "classes", "layers": [{"name", "type", "output_shape"}]}``."""
        with self.lock:
            return {
                "input_shape": list(self.input_shape),
                "classes": list(self.classes),
                "layers": [
                    {
                        "name": name,
                        "type": type(self._modules[name]).__name__,
                        "output_shape": list(self._records[name][1].shape[1:]),
                    }
                    for name in self.layers
                ],
            }

    def layer_summary(self) -> list[dict]:
        """Per layer: its code, output shape and value range for the current input."""
        with self.lock:
            summary = []
            for name in self.layers:
                module = self._modules[name]
                x, out = self._records[name]
                summary.append(
                    {
                        "name": name,
                        "type": type(module).__name__,
                        "description": _describe(module),
                        "input_shape": list(x.shape[1:]),
                        "output_shape": list(out.shape[1:]),
                        "min": float(out.min()),
                        "max": float(out.max()),
                        "editable": type(module).__name__ == "Conv2d",
                        "spatial": out.ndim == 4,
                    }
                )
            return summary

    def activation(self, layer, channel=0, *, which: str = "output") -> np.ndarray:
        """Channel `channel` of a layer's output (or input) without the batch axis."""
        with self.lock:
            name = self._layer(layer)
            values = self._records[name][0 if which == "input" else 1][0]
            if values.ndim == 3:
                k = _int_arg("channel", channel, 0, values.shape[0])
                return values[k]
            return values

    def maps(self, layer, start=0, count=None, *, which: str = "output") -> np.ndarray:
        """Channels ``start .. start + count`` of a layer's output (or input), ``(n, ...)``."""
        with self.lock:
            name = self._layer(layer)
            values = self._records[name][0 if which == "input" else 1][0]
            if values.ndim != 3:
                return values[None]
            start = _int_arg("start", start, 0, values.shape[0])
            count = values.shape[0] if count is None else _int_arg("count", count, 1)
            return values[start : start + count]

    def _class(self, value) -> int:
        return _int_arg("class", value, 0, len(self.classes))

    def saliency(self, class_index) -> np.ndarray:
        """d logit_K / d input, ``(C, H, W)``, in evaluation mode."""
        with self.lock:
            k = self._class(class_index)
            self._forward()
            seed = np.zeros(self.logits.shape, self.output.dtype)
            seed[k] = 1.0
            return self._backward(seed)

    def gradcam(self, layer, class_index) -> np.ndarray:
        """Grad-CAM at `layer`'s own resolution: ``relu(sum_k alpha_k A_k)``, ``(h, w)``."""
        with self.lock:
            name = self._layer(layer)
            k = self._class(class_index)
            activations = self._records[name][1][0]
            if activations.ndim != 3:
                raise ExploreError(
                    f"Grad-CAM needs a layer with (C, H, W) maps; {name} "
                    f"gives shape {list(activations.shape)}"
                )
            self._forward()
            seed = np.zeros(self.logits.shape, self.output.dtype)
            seed[k] = 1.0
            self._backward(seed)
            activations = self._records[name][1][0]  # (C, h, w)
            gradient = self._gradients.get(name)
            if gradient is None:  # the layer does not reach the logits
                return np.zeros(activations.shape[1:], activations.dtype)
            alpha = gradient[0].mean(axis=(1, 2))  # (C,)
            cam = matmul(alpha, activations.reshape(len(alpha), -1)).reshape(activations.shape[1:])
            return np.maximum(cam, 0).astype(activations.dtype)

    def overlay(self, kind: str, class_index, layer=None) -> np.ndarray:
        """A saliency or Grad-CAM map at the input's resolution, scaled to [0, 1]."""
        if kind == "saliency":
            values = np.abs(self.saliency(class_index)).max(axis=0)  # (H, W)
        elif kind == "gradcam":
            values = _resize(self.gradcam(layer, class_index), self.input_shape[1:])
        else:
            raise ExploreError(f"kind must be 'saliency' or 'gradcam', got {kind!r}")
        top = float(values.max())
        return (values / top if top > 0 else values).astype(np.float32)

    # -- editing a kernel --------------------------------------------------------------------
    def set_weight(self, layer, index, value) -> None:
        """Set one weight ``[o, c, i, j]`` of a convolution layer and run the model again."""
        with self.lock:
            name = self._layer(layer)
            module = self._modules[name]
            if type(module).__name__ != "Conv2d":
                raise ExploreError(f"layer {name} is a {type(module).__name__}, not a Conv2d")
            weight = module.weight.data
            if not isinstance(index, (list, tuple)) or len(index) != 4:
                raise ExploreError(f"index must be [o, c, i, j], got {index!r}")
            position = tuple(
                _int_arg(f"index[{a}]", v, 0, n)
                for a, (v, n) in enumerate(zip(index, weight.shape))
            )
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not np.isfinite(value)
            ):
                raise ExploreError(f"value must be a finite number, got {value!r}")
            self._edits.setdefault((name, position), float(weight[position]))
            weight[position] = value
            self._forward()

    def reset_weights(self) -> None:
        """Restore every edited weight and run the model again."""
        with self.lock:
            for (name, position), original in self._edits.items():
                self._modules[name].weight.data[position] = original
            self._edits.clear()
            self._forward()

    @property
    def edits(self) -> list[dict]:
        with self.lock:
            return [
                {
                    "layer": name,
                    "index": list(position),
                    "value": float(self._modules[name].weight.data[position]),
                    "original": original,
                }
                for (name, position), original in self._edits.items()
            ]

    # -- one cell, explained -------------------------------------------------------------------
    def detail(self, layer, channel=0, y=0, x=0) -> dict:
        """How `layer` computed one value of its output, with the real numbers."""
        from cnnkit.explore import details

        with self.lock:
            name = self._layer(layer)
            module = self._modules[name]
            inp, out = (a[0] for a in self._records[name])
            position: tuple[int, ...]
            if out.ndim == 3:
                position = (
                    _int_arg("channel", channel, 0, out.shape[0]),
                    _int_arg("y", y, 0, out.shape[1]),
                    _int_arg("x", x, 0, out.shape[2]),
                )
            elif out.ndim == 1:
                position = (_int_arg("channel", channel, 0, out.shape[0]),)
            else:
                raise ExploreError(f"layer {name} has output shape {list(out.shape)}")
            explained = self._explain_merge(name, module, inp, out, position)
            if explained is None:
                explained = details.explain(module, inp, out, position)
            explained.update(
                layer=name,
                type=type(module).__name__,
                description=_describe(module),
                position=list(position),
                value=float(out[position]),
            )
            return explained

    def _branch_output(self, prefix: str):
        """The output of the last recorded layer inside `prefix` (a block's branch), or None."""
        inside = [n for n in self._order if n == prefix or n.startswith(prefix + ".")]
        return self._records[inside[-1]][1][0] if inside else None

    def _explain_merge(self, name, module, inp, out, position):
        """A residual sum, a concatenation or a graph's two-operand node, or None."""
        from cnnkit.explore import details

        kind = type(module).__name__
        if kind == "Residual":
            body = self._branch_output(f"{name}.body")
            shortcut = inp if module.shortcut is None else self._branch_output(f"{name}.shortcut")
            if body is None or shortcut is None or body.shape != out.shape:
                return None
            return {
                "kind": "residual",
                "body": float(body[position]),
                "shortcut": float(shortcut[position]),
                "identity": module.shortcut is None,
                "total": float(body[position]) + float(shortcut[position]),
            }
        if kind == "Concat" and module.axis in (1, -out.ndim):
            start = 0
            for index in range(len(module)):
                branch = self._branch_output(f"{name}.{index}")
                if branch is None:
                    return None
                if position[0] < start + branch.shape[0]:
                    source = (position[0] - start, *position[1:])
                    return {
                        "kind": "concat",
                        "branch": index,
                        "source": list(source),
                        "total": float(branch[source]),
                    }
                start += branch.shape[0]
            return None
        operands = self._operands.get(name)
        if operands is not None and kind in details.BINARY_SYMBOLS and len(operands) == 2:
            a, b = (np.broadcast_to(o, (1, *out.shape))[0][position] for o in operands)
            return {
                "kind": "binary",
                "symbol": details.BINARY_SYMBOLS[kind],
                "a": float(a),
                "b": float(b),
                "total": float(out[position]),
            }
        return None

    def receptive_field(self, layer, y=0, x=0, channel=0) -> dict:
        """The input pixels one output cell of `layer` depends on, as a box.

        Along a chain of known layers the box follows from each layer's kernel, stride,
        padding and dilation (``"method": "geometry"``); otherwise it is the bounding box
        of the input pixels with a non-zero gradient for this input (``"gradient"``).
        """
        with self.lock:
            name = self._layer(layer)
            out = self._records[name][1][0]
            _, height, width = self.input_shape
            if out.ndim != 3:
                return {"box": [0, 0, height, width], "method": "geometry"}
            k = _int_arg("channel", channel, 0, out.shape[0])
            y, x = _int_arg("y", y, 0, out.shape[1]), _int_arg("x", x, 0, out.shape[2])
            box = self._geometric_field(name, y, x)
            if box is not None:
                return {"box": box, "method": "geometry"}
            seed = np.zeros(out.shape, out.dtype)
            seed[k, y, x] = 1.0
            self._forward()
            grad = np.abs(self._backward(np.zeros(self.logits.shape), inject=(name, seed[None])))
            rows, cols = np.nonzero(grad.sum(axis=0))
            if not len(rows):
                return {"box": None, "method": "gradient"}
            return {
                "box": [int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1],
                "method": "gradient",
            }

    def _geometric_field(self, name: str, y: int, x: int):
        """[top, left, bottom, right) by composing the layers' geometry, or None."""
        from cnnkit.explore.details import window_geometry
        from cnnkit.nn import Sequential

        def is_chain(module) -> bool:
            return not module._modules or (
                isinstance(module, Sequential) and all(map(is_chain, module._modules.values()))
            )

        if not is_chain(self.model):
            return None
        chain = [n for n, _ in _leaves(self.model)]
        if chain != self.layers:
            return None
        (top, bottom), (left, right) = (y, y), (x, x)
        for layer in reversed(chain[: chain.index(name) + 1]):
            module = self._modules[layer]
            kind = type(module).__name__
            if kind in _ELEMENTWISE:
                continue
            geometry = window_geometry(module, self._records[layer][0][0].shape)
            if geometry is None:
                return None
            (kh, kw), (sh, sw), (dh, dw), (pt, _, pl, _) = (
                geometry["kernel"],
                geometry["stride"],
                geometry["dilation"],
                geometry["padding"],
            )
            height, width = self._records[layer][0].shape[-2:]
            top, bottom = _taps(top, bottom, kh, sh, pt, dh, height)
            left, right = _taps(left, right, kw, sw, pl, dw, width)
            if top is None or left is None:  # only padding: let the gradient decide
                return None
        return [top, left, bottom + 1, right + 1]


def _taps(low: int, high: int, kernel: int, stride: int, pad: int, dilation: int, size: int):
    """First and last input index read by outputs ``low .. high`` (taps in padding read none)."""
    taps = np.arange(low, high + 1)[:, None] * stride - pad + np.arange(kernel)[None] * dilation
    inside = taps[(taps >= 0) & (taps < size)]
    return (int(inside.min()), int(inside.max())) if inside.size else (None, None)


def _resize(plane: np.ndarray, size) -> np.ndarray:
    """A float map resized bilinearly to ``(H, W)`` (Pillow), for drawing over the input."""
    from PIL import Image

    height, width = size
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))  # mode "F"
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
