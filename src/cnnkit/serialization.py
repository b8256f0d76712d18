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

Nothing is pickled, so loading a file never runs code from it, and a file's architecture
is checked against its stored arrays before any layer is built, so a crafted file cannot
make cnnkit allocate more than the file holds. Files are written to a temporary file next
to the target and renamed into place, so a crash never leaves a half-written model; they
get the permissions the umask gives any new file.

:func:`load_model` is the one entry the command line uses to open a model file (``.npz``
or ``.onnx``): it returns the model and complete metadata (input shape, class names and
how to prepare a picture, see :mod:`cnnkit.preprocessing`).
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import numbers
import os
import secrets
import zipfile

import numpy as np

__all__ = [
    "save",
    "load",
    "load_model",
    "describe",
    "build",
    "read_metadata",
    "FORMAT",
    "VERSION",
]

#: The ``format`` field of the JSON description.
FORMAT = "cnnkit-model"

#: The version of the file layout this module writes (and the newest it reads).
VERSION = 1

_META_KEY = "__cnnkit__"

# Layers save() can describe: constructor arguments are read back from the attributes
# of the same names (as PyTorch layers store them).
_LAYERS = (
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "GlobalAvgPool2d",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Softmax",
    "Dropout",
    "BatchNorm2d",
    "Flatten",
    "Linear",
    "Sequential",
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
        args[parameter.name] = _json_value(
            getattr(layer, parameter.name), f"{name}.{parameter.name}"
        )
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

    Parameters
    ----------
    description : dict
        What :func:`describe` returned (as saved in a model file).

    Returns
    -------
    cnnkit.nn.Module
        The same architecture, with freshly initialised weights.

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
    """Write `payload` to `path` through a temporary file renamed into place.

    The file is created with mode 0o666 less the umask, as ``open()`` creates files, and
    an error names `path`, not the temporary file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


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
        More JSON-serialisable information to keep (training settings ...).

        What the model itself records is saved too, under these: its ``metadata``
        attribute (:func:`cnnkit.train.fit` puts the class names, the input shape and
        how its images were prepared there) and, when that has no ``"input_shape"``, the
        shape of one sample of its last forward pass.

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
    meta = _recorded_metadata(model)
    meta.update({} if metadata is None else dict(metadata))
    if not all(isinstance(k, str) for k in meta):
        raise TypeError("metadata keys must be strings")
    if classes is not None:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"classes must be a sequence of str, got {classes!r}"[:200])
        meta["classes"] = list(classes)
    if input_shape is not None:
        shape = list(input_shape)
        if (
            not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1
                for s in shape
            )
            or len(shape) != 3
        ):
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
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its bool option
    _atomic_write(path, buffer.getvalue())
    return path


def _recorded_metadata(model) -> dict:
    """What `model` recorded about its use: its ``metadata`` and its last input shape."""
    meta = dict(getattr(model, "metadata", None) or {})
    shape = getattr(model, "last_input_shape", None)
    if "input_shape" not in meta and shape is not None:
        meta["input_shape"] = [int(s) for s in shape]
    return meta


#: The first bytes of files people mistake for a model, for a clearer message.
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"\x93NUMPY": "a single .npy array",
}


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
        if not payload.startswith(b"PK"):  # every .npz is a zip archive
            kind = next((k for m, k in _MAGIC.items() if payload.startswith(m)), None)
            if kind is None and b"onnx" in payload[:64].lower():
                kind = "an ONNX model; name it *.onnx"
            raise ValueError(f"it is {kind}" if kind else "it is not an .npz archive")
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

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.

    Returns
    -------
    dict
        The metadata saved with the model (empty if none was).

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


def _size(args: dict, name: str, layer: str) -> int:
    """A layer argument that sizes an array: an int >= 1, else a clear ValueError."""
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{layer}: {name} must be an int >= 1, got {value!r}"[:200])
    return int(value)


def _state_shapes(name: str, args: dict, where: str) -> dict | None:
    """The shapes of the state_dict entries a layer of type `name` built from `args` holds.

    None for a layer type whose state this function does not know.
    """
    if name == "Conv2d":
        out, inp = _size(args, "out_channels", where), _size(args, "in_channels", where)
        groups = _size(args, "groups", where) if "groups" in args else 1
        kernel = args.get("kernel_size")
        kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel, kernel]
        if len(kernel) != 2:
            raise ValueError(f"{where}: kernel_size must be an int or a pair, got {kernel!r}")
        kh, kw = (_size({"kernel_size": k}, "kernel_size", where) for k in kernel)
        shapes: dict[str, tuple[int, ...]] = {"weight": (out, inp // groups, kh, kw)}
        if args.get("bias", True):
            shapes["bias"] = (out,)
        return shapes
    if name == "Linear":
        out, inp = _size(args, "out_features", where), _size(args, "in_features", where)
        return {"weight": (out, inp), **({"bias": (out,)} if args.get("bias", True) else {})}
    if name == "BatchNorm2d":
        c = (_size(args, "num_features", where),)
        return {
            "weight": c,
            "bias": c,
            "running_mean": c,
            "running_var": c,
            "num_batches_tracked": (),
        }
    if name in _LAYERS:  # the other layers of this module hold no arrays
        return {}
    return None


def _check_architecture(description, arrays: dict, path: str) -> None:
    """Check the arrays an architecture would create against the stored ones, first.

    Building a layer allocates its weights; a crafted description (``out_channels``
    of a billion) must be refused from the file's own arrays before anything is built.
    """
    expected: dict = {}
    known = True

    def walk(node, prefix: str) -> None:
        nonlocal known
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            return  # build() explains what is wrong with it
        name = node["type"]
        if name == "Sequential":
            for index, layer in enumerate(node.get("layers") or []):
                walk(layer, f"{prefix}{index}.")
            return
        args = node.get("args", {})
        if not isinstance(args, dict):
            return
        where = f"{path}: layer {prefix.rstrip('.') or name} ({name})"
        shapes = _state_shapes(name, args, where)
        if shapes is None:
            known = False  # another module's layer type: its state is checked on loading
            return
        for key, shape in shapes.items():
            expected[prefix + key] = shape

    walk(description, "")
    missing = [key for key in expected if key not in arrays]
    if missing:
        raise ValueError(
            f"{path}: the architecture needs arrays the file does not hold (missing keys: "
            f"{', '.join(missing[:5])}); it is damaged or was not written by cnnkit.save"
        )
    for key, shape in expected.items():
        if tuple(arrays[key].shape) != tuple(shape):
            raise ValueError(
                f"{path}: the architecture needs {key!r} of shape {tuple(shape)}, but the "
                f"file holds shape {tuple(arrays[key].shape)}; it is damaged or was not "
                "written by cnnkit.save"
            )
    extra = sorted(set(arrays) - set(expected))
    if known and extra:
        raise ValueError(
            f"{path}: the file holds arrays the architecture has no place for: "
            f"{', '.join(extra[:5])}"
        )


def load(path, *, with_metadata: bool = False):
    """Rebuild a model saved by :func:`save`, with its weights and buffers.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
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
    >>> import os, tempfile
    >>> import cnnkit as ck
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "m.npz")
    >>> _ = ck.save(ck.nn.Sequential(ck.nn.Linear(2, 1, rng=0)), path, classes=["yes"])
    >>> model, metadata = ck.load(path, with_metadata=True)
    >>> model[0].weight.shape, metadata["classes"]
    ((1, 2), ['yes'])
    >>> folder.cleanup()
    """
    if not isinstance(with_metadata, (bool, np.bool_)):
        raise TypeError(f"with_metadata must be a bool, got {with_metadata!r}")
    document, arrays = _read(path)
    _check_architecture(document.get("architecture"), arrays, os.fspath(path))
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


def _class_count(model, input_shape) -> int:
    """The number of outputs of `model` for one input of `input_shape`, in eval mode."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        out = np.asarray(model(np.zeros((1, *input_shape), np.float32)))
    finally:
        model.train(was_training)
    return int(out.reshape(len(out), -1).shape[1])


def _complete(model, metadata: dict, path: str, strict: bool) -> dict:
    """`metadata` with a checked ``input_shape``, ``classes`` and ``preprocessing``."""
    from cnnkit.preprocessing import recipe_of

    meta = dict(metadata)
    shape = meta.get("input_shape", getattr(model, "last_input_shape", None))
    if shape is not None:
        if (
            not isinstance(shape, (list, tuple))
            or len(shape) != 3
            or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) >= 1
                for s in shape
            )
        ):
            raise ValueError(
                f"{path} records an invalid input_shape {shape!r}; expected [C, H, W] positive ints"
            )
        shape = [int(s) for s in shape]
    elif strict:
        raise ValueError(
            f"{path} does not record the input shape (C, H, W) the model takes; run the "
            "model once or train it with cnnkit.train.fit before cnnkit.save, or pass "
            "cnnkit.save(model, path, input_shape=(C, H, W))"
        )
    meta["input_shape"] = shape
    classes = meta.get("classes")
    if classes is None and shape is not None:
        classes = [str(k) for k in range(_class_count(model, shape))]
    if classes is not None and (
        not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes)
    ):
        raise ValueError(f"{path} records invalid class names {classes!r}"[:200])
    meta["classes"] = None if classes is None else list(classes)
    try:
        meta["preprocessing"] = recipe_of(meta)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} records an invalid preprocessing: {error}") from None
    return meta


def load_model(path, *, strict: bool = True):
    """Open a model file for use: the model and what is needed to feed it.

    This is how every ``cnnkit`` command opens a model. A ``.npz`` file is read with
    :func:`load` (its architecture checked against its arrays before anything is built);
    a path ending in ``.onnx`` is read by :mod:`cnnkit.onnx` when that is installed.

    Parameters
    ----------
    path : str or os.PathLike
        A model file: ``.npz`` as :func:`save` writes it, or ``.onnx``.
    strict : bool, default True
        Require the file to record the model's input shape (every command that feeds
        the model an image needs it); with False a missing one is None.

    Returns
    -------
    model : cnnkit.nn.Module
        In evaluation mode.
    metadata : dict
        What the file records, completed: ``"input_shape"`` ``[C, H, W]``,
        ``"classes"`` (a list of str; ``"0"``, ``"1"`` ... when the file names none) and
        ``"preprocessing"`` (how :func:`cnnkit.preprocessing.prepare` prepares a
        picture; see :func:`cnnkit.preprocessing.preprocessing_metadata`).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is not a cnnkit model (a picture, a truncated file, a crafted
        architecture), or, with `strict`, records no input shape.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import cnnkit as ck
    >>> from cnnkit.serialization import load_model
    >>> model = ck.nn.Sequential(ck.nn.Flatten(), ck.nn.Linear(4, 2, rng=0))
    >>> _ = model(np.zeros((1, 1, 2, 2), np.float32))  # the input shape is now known
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "model.npz")
    >>> _ = ck.save(model, path)
    >>> again, metadata = load_model(path)
    >>> metadata["input_shape"], metadata["classes"], metadata["preprocessing"]["crop"]
    ([1, 2, 2], ['0', '1'], False)
    >>> folder.cleanup()
    """
    if not isinstance(strict, (bool, np.bool_)):
        raise TypeError(f"strict must be a bool, got {strict!r}")
    path = _check_path(path)
    if path.lower().endswith(".onnx"):
        if importlib.util.find_spec("cnnkit.onnx") is None:
            raise ValueError(f"cannot open {path}: this cnnkit cannot read ONNX models")
        from cnnkit import onnx as cnnkit_onnx

        model, metadata = cnnkit_onnx.load_model(path)
    else:
        model, metadata = load(path, with_metadata=True)
    return model, _complete(model, dict(metadata or {}), path, bool(strict))
