"""ONNX import and export: :func:`load` a model any framework exported, :func:`save` one.

Needs the ``onnx`` package (``pip install 'cnnkit[onnx]'``), imported only when these
functions run; the loaded model is an ordinary :class:`cnnkit.nn.Graph` that runs,
trains and saves to ``.npz`` without it.
"""

from __future__ import annotations

__all__ = ["load", "load_model", "save", "supported_operators"]


def _require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError(
            "cnnkit.onnx needs the onnx package: pip install 'cnnkit[onnx]'"
        ) from None


def supported_operators() -> tuple[str, ...]:
    """The ONNX operator types :func:`load` understands.

    Returns
    -------
    tuple of str
        The operator types, sorted.

    Examples
    --------
    >>> "Conv" in supported_operators()
    True
    """
    from cnnkit.onnx._load import SUPPORTED

    return SUPPORTED


def load(source):
    """Load an ONNX model as a cnnkit module (a :class:`cnnkit.nn.Graph`), in eval mode.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The ``.onnx`` file, or its contents.

    Returns
    -------
    cnnkit.nn.Graph
        ``model(x)`` takes the graph's one input ``(N, C, H, W)`` and returns its one
        output; ``model.backward(grad)`` returns the input's gradient; the weights are
        :class:`~cnnkit.nn.Parameter` objects (fine-tune with :mod:`cnnkit.optim`, after
        ``model.train()``). Convolutions, batch norms and fully connected layers load as
        :class:`~cnnkit.nn.Conv2d`, :class:`~cnnkit.nn.BatchNorm2d` and
        :class:`~cnnkit.nn.Linear`, named after their PyTorch modules where the weights'
        names tell them.

    Raises
    ------
    ValueError
        For a file that is not a valid ONNX model (truncated, another format), an
        operator outside :func:`supported_operators` (naming it, its node and the set),
        more than one input or output, or an input with dynamic sizes other than the
        batch.
    FileNotFoundError
        If the path does not exist.

    Notes
    -----
    Nodes whose inputs are all constants (shape arithmetic, weights stored as
    ``ConstantOfShape``) are computed once when loading.

    Examples
    --------
    >>> import numpy as np
    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Relu", ["x"], ["y"])],
    ...     "tiny",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    ... )
    >>> model = load(helper.make_model(graph).SerializeToString())
    >>> model(np.array([[-1.0, 2.0]], np.float32))
    array([[0., 2.]], dtype=float32)
    """
    _require_onnx()
    from cnnkit.onnx._load import build_graph, read_model

    model, where = read_model(source)
    return build_graph(model, where)


def load_model(path):
    """Load an ONNX model and the metadata it carries: ``(module, metadata)``.

    `metadata` holds ``"input_shape"`` ``[C, H, W]`` (from the saved metadata, else the
    graph's input), and ``"classes"`` and the image preparation when :func:`save` stored
    them; ``cnnkit predict``, ``features`` and ``explore`` read ``.onnx`` files through it.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.onnx`` file.

    Returns
    -------
    model : cnnkit.nn.Module
        The network, in evaluation mode.
    metadata : dict
        ``"input_shape"``, and what :func:`save` stored.

    Examples
    --------
    >>> import os, tempfile
    >>> from cnnkit import nn
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "m.onnx")
    >>> _ = save(
    ...     nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0)), path, (1, 2, 2), classes=["a", "b"]
    ... )
    >>> model, metadata = load_model(path)
    >>> metadata["classes"], metadata["input_shape"]
    (['a', 'b'], [1, 2, 2])
    >>> folder.cleanup()
    """
    _require_onnx()
    from cnnkit.onnx._load import build_graph, read_metadata, read_model

    model, where = read_model(path)
    return build_graph(model, where), read_metadata(model)


def save(model, path, input_shape, *, classes=None, metadata=None, opset=17):
    """Export a cnnkit model to an ONNX file that ``onnx.checker`` and onnxruntime accept.

    Parameters
    ----------
    model : cnnkit.nn.Module
        Layers, :class:`~cnnkit.nn.Sequential`, branches (:class:`~cnnkit.nn.Residual`,
        :class:`~cnnkit.nn.Concat` ...) or a :class:`~cnnkit.nn.Graph` (a loaded ONNX
        model too). Exported as in eval mode.
    path : str or os.PathLike
        The file to write (replaced atomically if it exists).
    input_shape : (C, H, W)
        The shape of one input; the batch dimension stays dynamic (``"N"``).
    classes : sequence of str, optional
        Class names, kept in the file's metadata_props (with `metadata`).
    metadata : dict, optional
        More JSON-serialisable information (the image preparation ``cnnkit predict``
        uses), kept in metadata_props under ``"cnnkit"``.
    opset : int, default 17
        The ONNX opset to write (17 or later).

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from cnnkit import nn
    >>> import cnnkit.onnx
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU())
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = cnnkit.onnx.save(net, os.path.join(folder.name, "net.onnx"), (1, 4, 4))
    >>> x = np.ones((2, 1, 4, 4), np.float32)
    >>> bool(np.allclose(cnnkit.onnx.load(path)(x), net(x)))
    True
    >>> folder.cleanup()
    """
    _require_onnx()
    from cnnkit.onnx._save import save as _save

    return _save(model, path, input_shape, classes=classes, metadata=metadata, opset=opset)
