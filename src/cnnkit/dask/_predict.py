"""Classify many image files in parallel: a dask bag of per-image results."""

from __future__ import annotations

import functools
import math
import os

import numpy as np

__all__ = ["predict", "image_files"]

#: Images per model call when none is given.
DEFAULT_BATCH_SIZE = 64

#: A task classifies up to this many batches (Dask's cost per task is a few ms) ...
TASK_BATCHES = 4

#: ... while the run keeps at least this many tasks to share among the workers.
MIN_TASKS = 16


def predict(model, sources, batch_size=DEFAULT_BATCH_SIZE, *, invert="auto", crop=True):
    """Classify image files in parallel, as ``cnnkit predict`` does, one result per file.

    Parameters
    ----------
    model : str or os.PathLike
        A model file written by :func:`cnnkit.save` (or ``cnnkit train``) that records
        its ``input_shape`` and ``classes``. It is loaded once for the whole run and each
        worker receives it once, whatever the number of images.
    sources : str, os.PathLike or iterable of them
        Image files, or a folder: every file under it (hidden ones excepted), sorted.
    batch_size : int, default 64
        Images per model call. Each task reads its files on the worker, prepares them
        and runs the model once per batch; a task takes up to four batches (fewer when
        that would leave under 16 tasks), which spreads Dask's cost per task over more
        images.
    invert : bool or "auto", default "auto"
        Whether to invert the pictures' brightness (auto: when their background does
        not match the model's training data).
    crop : bool, default True
        As ``--invert`` and (negated) ``--no-crop`` of ``cnnkit predict``: `crop` applies
        to models that record cropping (the digits).

    Returns
    -------
    dask.bag.Bag
        Lazy, one item per source in input order; computed, each is a dict with
        ``"source"`` (str), ``"label"`` (the class name), ``"index"`` (the class index),
        ``"probability"`` (of that class) and ``"probabilities"`` (a list over the
        classes), or, for a file that cannot be read or decoded, ``"source"`` and
        ``"error"`` (a one-line message): one bad file never stops the run.

    Raises
    ------
    TypeError, ValueError
        A bad `batch_size` or `sources`, an empty folder; errors of the model file
        come when the bag is computed.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> import cnnkit as ck
    >>> from cnnkit import dask as ckd
    >>> from cnnkit.models import digits_cnn
    >>> folder = tempfile.mkdtemp()
    >>> model_path = ck.save(
    ...     digits_cnn(rng=0),
    ...     os.path.join(folder, "digits.npz"),
    ...     input_shape=(1, 8, 8),
    ...     classes=[str(k) for k in range(10)],
    ... )
    >>> Image.new("L", (16, 16), 255).save(os.path.join(folder, "blank.png"))
    >>> with open(os.path.join(folder, "broken.png"), "wb") as file:
    ...     _ = file.write(b"not a picture")
    >>> sources = [os.path.join(folder, name) for name in ("blank.png", "broken.png")]
    >>> results = ckd.predict(model_path, sources).compute(scheduler="synchronous")
    >>> sorted(results[0]), results[1]["error"].startswith("cannot")
    (['index', 'label', 'probabilities', 'probability', 'source'], True)
    """
    import dask.bag as db
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    from cnnkit._validation import to_int

    batch_size = to_int("batch_size", batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if invert != "auto" and not isinstance(invert, (bool, np.bool_)):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be the path of a saved model, got {type(model).__name__}")
    paths = _as_sources(sources)
    model = os.fspath(model)
    token = tokenize(model, paths, batch_size, invert, bool(crop))
    name, loaded = f"predict-{token}", f"predict-model-{token}"
    graph = {loaded: (_load_model, model)}  # one key: loaded once, sent to each worker
    # tasks that read their own files (no separate tasks holding the paths), of up to
    # TASK_BATCHES batches while that leaves at least MIN_TASKS tasks
    batches = math.ceil(len(paths) / batch_size)
    per_task = batch_size * min(TASK_BATCHES, max(1, math.ceil(batches / MIN_TASKS)))
    classify = functools.partial(
        _classify_batches, batch_size=batch_size, invert=invert, crop=bool(crop)
    )
    for number, start in enumerate(range(0, len(paths), per_task)):
        graph[name, number] = (classify, paths[start : start + per_task], loaded)
    return db.Bag(HighLevelGraph.from_collections(name, graph), name, number + 1)


def image_files(folder) -> list[str]:
    """Every non-hidden file under `folder`, recursively, in sorted order.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to walk.

    Returns
    -------
    list of str
        The paths, sorted; hidden files and folders (a leading dot) are left out.

    Examples
    --------
    >>> import os, tempfile
    >>> from cnnkit.dask import image_files
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("b.png", "a.png", ".hidden.png"):
    ...     open(os.path.join(folder, name), "wb").close()
    >>> [os.path.basename(f) for f in image_files(folder)]
    ['a.png', 'b.png']
    """
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise ValueError(f"{root!r} is not a folder")
    files = []
    for parent, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        files += [os.path.join(parent, n) for n in sorted(names) if not n.startswith(".")]
    return files


def _as_sources(sources) -> list[str]:
    """A folder's files, or the given sources, as a non-empty list of strings."""
    if isinstance(sources, (str, os.PathLike)):
        if not os.path.isdir(sources):
            return [os.fspath(sources)]
        files = image_files(sources)
        if not files:
            raise ValueError(f"the folder {os.fspath(sources)!r} holds no files")
        return files
    try:
        paths = [os.fspath(source) for source in sources]
    except TypeError:
        raise TypeError(
            "sources must be a folder, a path or an iterable of paths, got "
            f"{type(sources).__name__}"
        ) from None
    if not paths:
        raise ValueError("sources must name at least one image, got none")
    return paths


def _load_model(path: str):
    """(model, metadata) as ``cnnkit predict`` loads them."""
    from cnnkit.serialization import load_model

    return load_model(path)


def _prepare(picture, metadata, invert, crop) -> np.ndarray:
    """A picture as ``cnnkit predict`` prepares it: the (C, H, W) model input."""
    from cnnkit.preprocessing import prepare

    return prepare(picture, metadata, invert=invert, crop=None if crop else False)[0]


class _TaskResults(list):
    """One task's results. distributed serializes a plain list element by element (a
    pickle call and a module lookup per image's dict, three times the cost of classifying
    it); a list of another type goes in one pickle call."""


def _classify_batches(sources, loaded, *, batch_size, invert, crop) -> _TaskResults:
    """:func:`_classify` on `sources` batch by batch: one task's results, in order."""
    return _TaskResults(
        row
        for start in range(0, len(sources), batch_size)
        for row in _classify(sources[start : start + batch_size], loaded, invert=invert, crop=crop)
    )


def _classify(sources, loaded, *, invert, crop) -> list[dict]:
    """Read, prepare and classify one batch of files; unreadable ones get an error."""
    from cnnkit.images import load_image
    from cnnkit.train import predict_proba

    model, metadata = loaded
    results, inputs, readable = [], [], []
    for source in sources:
        try:
            inputs.append(_prepare(load_image(source), metadata, invert, crop))
        except (ValueError, OSError) as error:  # load_image's errors for a bad file
            text = str(error).strip()
            results.append(
                {"source": source, "error": text.splitlines()[0] if text else type(error).__name__}
            )
            continue
        readable.append(len(results))
        results.append({"source": source})
    if inputs:
        probabilities = predict_proba(model, np.stack(inputs))  # (B, K)
        classes = metadata.get("classes") or [str(k) for k in range(probabilities.shape[1])]
        if len(classes) != probabilities.shape[1]:
            raise ValueError(
                f"the model names {len(classes)} classes but has {probabilities.shape[1]} outputs"
            )
        for position, p in zip(readable, probabilities, strict=True):
            best = int(np.argmax(p))
            results[position].update(
                label=str(classes[best]),
                index=best,
                probability=float(p[best]),
                probabilities=[float(v) for v in p],
            )
    return results
