"""Training data: scikit-learn's digits, folders of your own images, and seeded batches.

A :class:`Dataset` holds images as float32 ``(N, C, H, W)`` in ``[0, 1]``, integer labels
``(N,)`` and the class names. :func:`load_digits` reads the 8x8 digits that ship inside
scikit-learn (no download); :func:`load_image_folder` reads a folder with one sub-folder
per class (the ImageFolder convention); :func:`split` makes a stratified, seeded
train/test split and :func:`batches` yields mini-batches in a seeded order.
(:mod:`cnnkit.preprocessing` turns any picture into the input a trained model expects.)

scikit-learn and Pillow are imported inside the functions that use them.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from cnnkit._random import get_rng
from cnnkit._validation import check_positive, check_positive_int, to_int

__all__ = [
    "Dataset",
    "load_digits",
    "load_image_folder",
    "split",
    "batches",
    "DEFAULT_TEST_SIZE",
    "DIGITS_MAX",
]

#: Fraction of the samples held out for testing by :func:`load_digits` and :func:`split`.
DEFAULT_TEST_SIZE = 0.2

#: The largest pixel value in scikit-learn's digits (each pixel counts ink in a 4x4 block).
DIGITS_MAX = 16.0


@dataclass(eq=False, repr=False)
class Dataset:
    """Images, labels and class names, ready for :func:`cnnkit.train.fit`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W), float32
        The images, values in ``[0, 1]``.
    y : ndarray of shape (N,), int64
        The class index of each image, in ``range(len(classes))``.
    classes : list of str
        The class names; ``classes[y[i]]`` names image ``i``.
    preprocessing : dict, optional
        How the images were made from pictures, as
        :func:`cnnkit.preprocessing.preprocessing_metadata` describes it (their shared
        background, whether they were cropped to their content). :func:`cnnkit.train.fit`
        records it on the model, so a saved model prepares new pictures the same way.
        None: unknown (pictures are then only resized).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.data import Dataset
    >>> data = Dataset(np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 1, 0]), ["a", "b"])
    >>> len(data), data.input_shape, data.num_classes
    (4, (1, 8, 8), 2)
    >>> data
    Dataset(4 images of shape (1, 8, 8), float32; 2 classes: a, b)
    >>> data[1:3].y
    array([1, 1])
    """

    x: np.ndarray
    y: np.ndarray
    classes: list = field(default_factory=list)
    preprocessing: dict | None = None

    def __post_init__(self):
        if not isinstance(self.x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, got {type(self.x).__name__}")
        if self.x.ndim != 4:
            raise ValueError(f"x must have shape (N, C, H, W), got shape {self.x.shape}")
        y = np.asarray(self.y)
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
            raise ValueError(f"y must be a 1-d integer array, got shape {y.shape}, dtype {y.dtype}")
        if len(y) != len(self.x):
            raise ValueError(f"x and y must have the same length, got {len(self.x)} and {len(y)}")
        self.y = y.astype(np.int64, copy=False)
        self.classes = [str(c) for c in self.classes]
        if not self.classes and len(y):
            self.classes = [str(c) for c in range(int(y.max()) + 1)]
        if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
            raise ValueError(
                f"y must hold class indices in [0, {len(self.classes) - 1}], "
                f"got values in [{y.min()}, {y.max()}]"
            )

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        names = ", ".join(self.classes[:5]) + (", ..." if len(self.classes) > 5 else "")
        return (
            f"Dataset({len(self)} images of shape {self.input_shape}, {self.x.dtype}; "
            f"{self.num_classes} classes: {names})"
        )

    def __getitem__(self, index) -> Dataset:
        """The samples at `index` (a slice, an integer array or a boolean mask)."""
        if isinstance(index, numbers.Integral):
            index = slice(index, index + 1 if index != -1 else None)
        return Dataset(
            self.x[index],
            self.y[index],
            list(self.classes),
            None if self.preprocessing is None else dict(self.preprocessing),
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one image, ``(C, H, W)``."""
        c, h, w = (int(s) for s in self.x.shape[1:])
        return c, h, w

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)


def _check_test_size(test_size) -> float:
    """`test_size` as a float strictly between 0 and 1."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a number in (0, 1), got {test_size!r}")
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    return float(test_size)


def split(data: Dataset, test_size: float = DEFAULT_TEST_SIZE, seed: int = 0):
    """Split a dataset into stratified, seeded train and test parts.

    Parameters
    ----------
    data : Dataset
        The images and labels to split.
    test_size : float, default 0.2
        The fraction of the samples (of each class, rounded) that goes to the test part.
    seed : int, default 0
        Seeds the shuffle; the same seed gives the same split.

    Returns
    -------
    train, test : Dataset
        The two parts, each holding every class in the same proportions.

    Raises
    ------
    ValueError
        If a class has fewer than two samples or the test part would be smaller than the
        number of classes (a stratified split needs one of each on both sides).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.data import Dataset, split
    >>> data = Dataset(np.zeros((10, 1, 2, 2), np.float32), np.arange(10) % 2, ["even", "odd"])
    >>> train, test = split(data, test_size=0.2, seed=0)
    >>> len(train), len(test), sorted(test.y.tolist())
    (8, 2, [0, 1])
    """
    from sklearn.model_selection import train_test_split

    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a cnnkit.data.Dataset, got {type(data).__name__}")
    test_size = _check_test_size(test_size)
    seed = to_int("seed", seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    counts = np.bincount(data.y, minlength=data.num_classes)
    if counts.min() < 2:
        name = data.classes[int(np.argmin(counts))]
        raise ValueError(
            f"each class needs at least 2 images to split into train and test; "
            f"class {name!r} has {int(counts.min())}"
        )
    n_test = int(np.ceil(test_size * len(data)))
    if n_test < data.num_classes or len(data) - n_test < data.num_classes:
        raise ValueError(
            f"test_size={test_size} of {len(data)} images leaves {n_test} for testing and "
            f"{len(data) - n_test} for training; each needs at least one image of each of "
            f"the {data.num_classes} classes"
        )
    train_idx, test_idx = train_test_split(
        np.arange(len(data)), test_size=test_size, stratify=data.y, random_state=seed
    )
    return data[np.sort(train_idx)], data[np.sort(test_idx)]


def load_digits(test_size: float = DEFAULT_TEST_SIZE, seed: int = 0):
    """Load scikit-learn's 8x8 handwritten digits, split into train and test.

    The 1797 images ship inside scikit-learn, so nothing is downloaded.

    Parameters
    ----------
    test_size : float, default 0.2
        Fraction of each digit's images held out for testing (360 of 1797 at 0.2).
    seed : int, default 0
        Seeds the stratified split.

    Returns
    -------
    train, test : Dataset
        The two parts, each holding every class in the same proportions.
        Images float32 ``(N, 1, 8, 8)`` in ``[0, 1]`` (the stored counts 0..16 divided by
        16): light strokes on a dark background. Classes ``"0"`` to ``"9"``.

    Examples
    --------
    >>> from cnnkit.data import load_digits
    >>> train, test = load_digits()
    >>> train.x.shape, test.x.shape, train.x.dtype, float(train.x.max())
    ((1437, 1, 8, 8), (360, 1, 8, 8), dtype('float32'), 1.0)
    >>> test.classes[:3]
    ['0', '1', '2']
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    from cnnkit.preprocessing import preprocessing_metadata

    digits = _sk_load_digits()
    x = (digits.images / DIGITS_MAX).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    # Light strokes on black, each digit cropped to its box as the originals were made.
    data = Dataset(
        x,
        digits.target.astype(np.int64),
        [str(d) for d in range(10)],
        preprocessing_metadata("dark", crop=True),
    )
    return split(data, test_size=test_size, seed=seed)


def load_image_folder(path, size=(32, 32), *, gray: bool = False) -> Dataset:
    """Load a folder of images arranged one sub-folder per class.

    ``path/cat/1.jpg``, ``path/cat/2.png``, ``path/dog/x.jpg`` ... give classes
    ``["cat", "dog"]`` (sub-folder names, sorted). Files are found recursively inside
    each class folder; names starting with ``.`` (``.DS_Store``) are skipped, as are
    files lying directly in `path`. Files that are not readable images (``Thumbs.db``,
    ``notes.txt``, an empty ``.png``) are skipped too, with one ``UserWarning`` giving
    their count and the first few names.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    size : int or (int, int), default (32, 32)
        Every image is resized to ``(H, W)`` (Pillow's antialiased bilinear filter; the
        aspect ratio is not kept).
    gray : bool, default False
        One luminance channel instead of three colour channels.

    Returns
    -------
    Dataset
        Images float32 ``(N, 1 or 3, H, W)`` in ``[0, 1]``, sorted by class then path.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If `path` is not a folder, has fewer than two class folders, or a class folder
        holds no readable image.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from cnnkit.data import load_image_folder
    >>> folder = tempfile.TemporaryDirectory()
    >>> for name, value in [("black", 0), ("white", 255)]:
    ...     os.mkdir(os.path.join(folder.name, name))
    ...     Image.new("L", (20, 10), value).save(os.path.join(folder.name, name, "a.png"))
    >>> data = load_image_folder(folder.name, size=(8, 8), gray=True)
    >>> data.x.shape, data.classes, data.y.tolist()
    ((2, 1, 8, 8), ['black', 'white'], [0, 1])
    >>> folder.cleanup()
    """
    from cnnkit.images import load_image
    from cnnkit.preprocessing import _as_hwc, _resize, preprocessing_metadata

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder path, got {type(path).__name__}: {path!r}")
    size = check_positive("size", size)
    if not isinstance(gray, (bool, np.bool_)):
        raise TypeError(f"gray must be a bool, got {gray!r}")
    root = os.fspath(path)
    if not os.path.exists(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    if not os.path.isdir(root):
        raise ValueError(f"path must be a folder with one sub-folder per class, got file {root}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if len(classes) < 2:
        found = f"one ({classes[0]!r})" if classes else "none"
        raise ValueError(
            f"{root} must hold one sub-folder per class and at least 2 classes; found {found}"
        )
    images, labels, skipped = [], [], []
    channels = 1 if gray else 3
    for label, name in enumerate(classes):
        files = []
        for folder, subdirs, names in os.walk(os.path.join(root, name)):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            files += [os.path.join(folder, n) for n in sorted(names) if not n.startswith(".")]
        kept = 0
        for file in files:
            try:
                picture = load_image(file, gray=gray)
            except (OSError, ValueError):  # Thumbs.db, notes.txt, an empty .png ...
                skipped.append(os.path.relpath(file, root))
                continue
            images.append(_resize(_as_hwc(picture, channels, file), size))  # (H, W, C)
            labels.append(label)
            kept += 1
        if not kept:
            _warn_skipped(skipped, root)
            raise ValueError(
                f"class folder {os.path.join(root, name)} holds no readable image"
                + (f" ({len(files)} other files)" if files else "")
            )
    _warn_skipped(skipped, root)
    x = np.stack(images).transpose(0, 3, 1, 2)  # (N, C, H, W)
    return Dataset(
        np.ascontiguousarray(x, np.float32),
        np.array(labels, np.int64),
        classes,
        preprocessing_metadata(background=None, crop=False),
    )


#: How many skipped files a warning names.
SKIPPED_SHOWN = 5


def _warn_skipped(skipped: list, root: str) -> None:
    """One warning with the count and the first few names of files that were not images."""
    if not skipped:
        return
    import warnings

    names = ", ".join(skipped[:SKIPPED_SHOWN]) + (", ..." if len(skipped) > SKIPPED_SHOWN else "")
    warnings.warn(
        f"skipped {len(skipped)} files in {root} that are not readable images: {names}",
        UserWarning,
        stacklevel=3,
    )
    skipped.clear()


def batches(data: Dataset, batch_size: int, shuffle: bool = True, rng=None, *, drop_last=False):
    """Yield ``(x, y)`` mini-batches of a dataset, in a seeded random order.

    Parameters
    ----------
    data : Dataset
        The images and labels to batch.
    batch_size : int
        Images per batch; the last batch may be smaller (unless `drop_last`).
    shuffle : bool, default True
        Visit the samples in a random order drawn from `rng`; else in order.
    rng : numpy.random.Generator, int or None
        The generator for the order, a seed for a fresh one, or None for cnnkit's default
        generator (reseeded by :func:`cnnkit.manual_seed`). Ignored without `shuffle`.
    drop_last : bool, default False
        Skip a last batch smaller than `batch_size`.

    Yields
    ------
    x : ndarray of shape (B, C, H, W)
    y : ndarray of shape (B,), int64

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.data import Dataset, batches
    >>> data = Dataset(np.zeros((5, 1, 2, 2), np.float32), np.array([0, 1, 2, 3, 4]))
    >>> [y.tolist() for _, y in batches(data, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    >>> a = [y.tolist() for _, y in batches(data, 2, rng=7)]
    >>> b = [y.tolist() for _, y in batches(data, 2, rng=7)]
    >>> a == b, sorted(sum(a, []))
    (True, [0, 1, 2, 3, 4])
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a cnnkit.data.Dataset, got {type(data).__name__}")
    batch_size = check_positive_int("batch_size", batch_size)
    order = get_rng(rng).permutation(len(data)) if shuffle else np.arange(len(data))
    stop = len(data) - len(data) % batch_size if drop_last else len(data)
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        yield data.x[index], data.y[index]
