"""Save a model to one ``.npz`` file and load it back: :func:`save`, :func:`load`.

The file is an ordinary NumPy ``.npz`` archive:

- one array per ``state_dict`` entry, under PyTorch's key (``"0.weight"``,
  ``"1.running_mean"``, ``"1.num_batches_tracked"`` ...), so
  ``{k: torch.from_numpy(v) for k, v in np.load(path).items() if not k.startswith("__")}``
  is a state dict the equivalent ``torch.nn.Sequential`` loads;
- ``"__cnnkit__"``: the UTF-8 bytes (a ``uint8`` array) of a JSON document
  ``{"format": "cnnkit-model", "version": 1, "architecture": ..., "metadata": ...}``.
  ``architecture`` describes each layer by its type and constructor arguments
  (``{"type": "Conv2d", "args": {"in_channels": 1, ...}}``; a ``Sequential`` lists its
  ``layers``); ``metadata`` holds what the caller gave, such as the class names and the
  input shape.

Nothing is pickled, so loading a file never runs code from it. Files are written to a
temporary file next to the target and renamed into place, so a crash never leaves a
half-written model.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save", "load", "describe", "build", "read_metadata", "FORMAT", "VERSION"]

#: The ``format`` field of the JSON description.
FORMAT = "cnnkit-model"

#: The version of the file layout this module writes (and the newest it reads).
VERSION = 1

_META_KEY = "__cnnkit__"

# Layers save() can describe: constructor arguments are read back from the attributes
# of the same names (as PyTorch layers store them).
_LAYERS = (
    "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "ReLU", "LeakyReLU", "Sigmoid",
    "Softmax", "Dropout", "BatchNorm2d", "Flatten", "Linear", "Sequential",
)


def _json_value(value, where: str):
    """A constructor argument as JSON: ints, floats, strings, bools, None and lists of them."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return [_json_value(v, where) for v in value]
    raise TypeError(f"cannot save {where}: {type(value).__name__} value {value!r} is not JSON")


def _constructor_args(layer) -> dict:
    """The arguments that rebuild `layer`, read from its attributes."""
    name = type(layer).__name__
    args = {}
    for parameter in list(inspect.signature(type(layer).__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name == "rng":  # only draws the initial weights, which are saved
            continue
        if parameter.name == "bias" and name in ("Conv2d", "Linear"):
            args["bias"] = getattr(layer, "bias", None) is not None
            continue
        if not hasattr(layer, parameter.name):
            raise TypeError(
                f"cannot save {name}: it has no attribute {parameter.name!r} holding its "
                f"constructor argument"
            )
        args[parameter.name] = _json_value(getattr(layer, parameter.name),
                                           f"{name}.{parameter.name}")
    return args


def describe(model) -> dict:
    """The JSON-ready description of a model's architecture.

    Parameters
    ----------
    model : cnnkit.nn.Module
        A :class:`~cnnkit.nn.Sequential` (nested ones too) of cnnkit's layers, or one
        such layer.

    Returns
    -------
    dict
        ``{"type": "Sequential", "layers": [...]}`` or ``{"type": name, "args": {...}}``.

    Raises
    ------
    TypeError
        For a module that is not one of cnnkit's layers (a user's own Module subclass).

    Examples
    --------
    >>> from cnnkit import nn
    >>> from cnnkit.serialization import describe
    >>> describe(nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU()))["layers"][0]
    {'type': 'Linear', 'args': {'in_features': 3, 'out_features': 2, 'bias': True}}
    """
    from cnnkit import nn
    from cnnkit.nn._architecture import describe_extension

    extended = describe_extension(model, describe)  # branches, graphs, ONNX operators
    if extended is not None:
        return extended
    name = type(model).__name__
    if name not in _LAYERS or getattr(nn, name, None) is not type(model):
        raise TypeError(
            f"cannot save a {name}: only cnnkit.nn layers and Sequential models of them "
            f"can be described ({', '.join(_LAYERS)})"
        )
    if isinstance(model, nn.Sequential):
        return {"type": "Sequential", "layers": [describe(layer) for layer in model]}
    return {"type": name, "args": _constructor_args(model)}


def build(description: dict):
    """Rebuild a model (with fresh weights) from :func:`describe`'s description.

    Examples
    --------
    >>> from cnnkit import nn
    >>> from cnnkit.serialization import build, describe
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU())
    >>> again = build(describe(model))
    >>> [type(layer).__name__ for layer in again], again[0].weight.shape
    (['Conv2d', 'ReLU'], (2, 1, 3, 3))
    """
    from cnnkit import nn

    if not isinstance(description, dict) or not isinstance(description.get("type"), str):
        raise ValueError(
            f"a layer description must be a dict with a 'type', got {description!r}"[:200]
        )
    name = description["type"]
    from cnnkit.nn._architecture import build_extension

    try:
        extended = build_extension(description, build)  # branches, graphs, ONNX operators
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"cannot rebuild {name} from its description: {error}") from None
    if extended is not None:
        return extended
    if name not in _LAYERS:
        raise ValueError(f"unknown layer type {name!r} in the architecture description")
    if name == "Sequential":
        layers = description.get("layers")
        if not isinstance(layers, list):
            raise ValueError("a Sequential description must list its 'layers'")
        return nn.Sequential(*(build(layer) for layer in layers))
    args = description.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"the arguments of {name} must be a dict, got {args!r}"[:200])
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    try:
        return getattr(nn, name)(**args)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot rebuild {name} from {args}: {error}") from None


def _float_dtype(model) -> str | None:
    """The dtype name of the model's floating parameters (None when it has none)."""
    kinds = {p.data.dtype.name for p in model.parameters() if p.data.dtype.kind == "f"}
    if len(kinds) > 1:
        raise TypeError(f"cannot save a model whose parameters mix dtypes {sorted(kinds)}")
    return kinds.pop() if kinds else None


def _atomic_write(path: str, payload: bytes) -> None:
    """Write `payload` to `path` through a temporary file renamed into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _check_path(path) -> str:
    """`path` as a str; TypeError for anything but a str or os.PathLike."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}: {path!r}")
    return os.fspath(path)


def save(model, path, *, classes=None, input_shape=None, metadata=None) -> str:
    """Write a model's weights and architecture to one ``.npz`` file, atomically.

    Parameters
    ----------
    model : cnnkit.nn.Module
        A :class:`~cnnkit.nn.Sequential` of cnnkit layers (see :func:`describe`).
    path : str or os.PathLike
        The file to write, replaced if it exists; written as given (no suffix added).
    classes : sequence of str, optional
        The class names, in output order (stored in the metadata).
    input_shape : (C, H, W), optional
        The input one image must have (stored in the metadata).
    metadata : dict, optional
        More JSON-serialisable information to keep (training settings, the images'
        background ...).

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import cnnkit as ck
    >>> model = ck.nn.Sequential(ck.nn.Flatten(), ck.nn.Linear(4, 2, rng=0))
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "model.npz")
    >>> _ = ck.save(model, path, classes=["no", "yes"], input_shape=(1, 2, 2))
    >>> again = ck.load(path)
    >>> x = np.ones((1, 1, 2, 2), np.float32)
    >>> bool(np.array_equal(model(x), again(x)))
    True
    >>> folder.cleanup()
    """
    path = _check_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"path must be a file, got the folder {path}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save {path}: the folder {folder} does not exist")
    meta = {} if metadata is None else dict(metadata)
    if not all(isinstance(k, str) for k in meta):
        raise TypeError("metadata keys must be strings")
    if classes is not None:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"classes must be a sequence of str, got {classes!r}"[:200])
        meta["classes"] = list(classes)
    if input_shape is not None:
        shape = list(input_shape)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1
                   for s in shape) or len(shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W) positive ints, got {input_shape!r}")
        meta["input_shape"] = [int(s) for s in shape]
    document = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": describe(model),
        "dtype": _float_dtype(model),
        "metadata": meta,
    }
    try:
        text = json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"metadata must be JSON-serialisable: {error}") from None
    state = model.state_dict()
    if _META_KEY in state:
        raise ValueError(f"a state_dict key may not be {_META_KEY!r}")
    arrays = {key: np.asarray(value) for key, value in state.items()}  # 0-d stays 0-d
    arrays[_META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _atomic_write(path, buffer.getvalue())
    return path


def _read(path):
    """Open a model file: (JSON document, {state key: array})."""
    path = _check_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a cnnkit model file")
    try:
        # Read the bytes first: np.load leaks its file handle on a truncated archive.
        with open(path, "rb") as file:
            payload = file.read()
        archive = np.load(io.BytesIO(payload), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{path} is not a cnnkit model file (cannot read it as .npz: {reason})"
        ) from None
    raw = arrays.pop(_META_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{path} is not a cnnkit model file (no {_META_KEY!r} description)")
    try:
        document = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} has a corrupt cnnkit description: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a cnnkit model file (format is not {FORMAT!r})")
    version = document.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ValueError(
            f"{path} has model format version {version!r}; this cnnkit reads up to {VERSION}"
        )
    return document, arrays


def read_metadata(path) -> dict:
    """The metadata saved with a model (class names, input shape ...), without the weights.

    Examples
    --------
    >>> import os, tempfile
    >>> import cnnkit as ck
    >>> from cnnkit.serialization import read_metadata
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "m.npz")
    >>> _ = ck.save(ck.nn.Sequential(ck.nn.ReLU()), path, classes=["a", "b"])
    >>> read_metadata(path)
    {'classes': ['a', 'b']}
    >>> folder.cleanup()
    """
    document, _ = _read(path)
    return dict(document.get("metadata") or {})


def load(path, *, with_metadata: bool = False):
    """Rebuild a model saved by :func:`save`, with its weights and buffers.

    Parameters
    ----------
    path : str or os.PathLike
    with_metadata : bool, default False
        Also return the metadata dict (``"classes"``, ``"input_shape"`` ...).

    Returns
    -------
    model : cnnkit.nn.Module
        In evaluation mode, its arrays equal to the saved ones (same dtypes).
    metadata : dict
        Only with `with_metadata`.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is truncated, is not an ``.npz`` archive, is not a cnnkit model, or
        its weights do not fit its architecture.

    Examples
    --------
    See :func:`save`.
    """
    if not isinstance(with_metadata, (bool, np.bool_)):
        raise TypeError(f"with_metadata must be a bool, got {with_metadata!r}")
    document, arrays = _read(path)
    model = build(document.get("architecture"))
    dtype = document.get("dtype")
    if dtype not in (None, "float32"):
        if dtype not in ("float64", "float16"):
            raise ValueError(f"{os.fspath(path)} has an unsupported dtype {dtype!r}")
        model.astype(np.dtype(dtype))
    try:
        model.load_state_dict(arrays)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{os.fspath(path)}: the weights do not fit the architecture: {error}"
        ) from None
    model.eval()
    metadata = dict(document.get("metadata") or {})
    return (model, metadata) if with_metadata else model
