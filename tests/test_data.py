"""cnnkit.data: the digits split, image folders and batching."""

import os

import numpy as np
import pytest
from PIL import Image

from cnnkit.data import Dataset, batches, load_digits, load_image_folder, split

# -- digits ------------------------------------------------------------------------------


def test_digits_shapes_dtype_range():
    """Digits come as float32 (N, 1, 8, 8) in [0, 1], 1797 images split 80/20."""
    train, test = load_digits()
    assert train.x.shape == (1437, 1, 8, 8) and test.x.shape == (360, 1, 8, 8)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    assert train.classes == [str(d) for d in range(10)]


def test_digits_values_are_sklearn_counts_over_16():
    """Every image is one of scikit-learn's, divided by 16, with its own label."""
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    train, test = load_digits()
    both = np.concatenate([train.x, test.x])[:, 0] * 16  # (N, 8, 8)
    labels = np.concatenate([train.y, test.y])
    images = digits.images.astype(np.float32)
    keys = {im.tobytes(): y for im, y in zip(images, digits.target, strict=True)}
    assert len(both) == len(digits.images)
    assert all(keys[im.tobytes()] == y for im, y in zip(both, labels, strict=True))


def test_digits_split_is_stratified_seeded_and_disjoint():
    """The same seed gives the same split; class proportions match; no image in both."""
    train, test = load_digits(seed=3)
    again, test_again = load_digits(seed=3)
    other, _ = load_digits(seed=4)
    assert np.array_equal(train.x, again.x) and np.array_equal(test.y, test_again.y)
    assert not np.array_equal(train.y, other.y)
    counts = np.bincount(test.y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20 % of 174..183 per class
    train_rows = {row.tobytes() for row in train.x}
    assert sum(row.tobytes() in train_rows for row in test.x) <= 1  # digits has one duplicate


def test_digits_test_size():
    """`test_size` sets the held-out fraction."""
    train, test = load_digits(test_size=0.5)
    assert abs(len(test) - 899) <= 1 and len(train) + len(test) == 1797


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1])
def test_digits_bad_test_size(bad):
    """A test_size outside (0, 1) is refused, naming the argument."""
    with pytest.raises(ValueError, match="test_size"):
        load_digits(test_size=bad)


def test_digits_bad_test_size_type():
    with pytest.raises(TypeError, match="test_size"):
        load_digits(test_size="0.2")


# -- Dataset and split -------------------------------------------------------------------


def test_dataset_validates():
    """Mismatched lengths, out-of-range labels and non-4-d images are refused."""
    x = np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="same length"):
        Dataset(x, np.array([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="class indices"):
        Dataset(x, np.array([0, 1, 2]), ["a", "b"])
    with pytest.raises(ValueError, match="x must have shape"):
        Dataset(np.zeros((3, 2, 2)), np.array([0, 1, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="y must be"):
        Dataset(x, np.array([0.0, 1.0, 1.0]), ["a", "b"])


def test_dataset_indexing_keeps_classes():
    data = Dataset(np.arange(12, dtype=np.float32).reshape(3, 1, 2, 2), [0, 1, 1], ["a", "b"])
    part = data[np.array([2, 0])]
    assert part.y.tolist() == [1, 0] and part.classes == ["a", "b"]
    assert np.array_equal(part.x[0], data.x[2])
    assert len(data[1]) == 1 and len(data[-1]) == 1 and data[-1].y.tolist() == [1]


def test_split_needs_two_per_class():
    """A class with a single image cannot be split and says which class."""
    data = Dataset(np.zeros((5, 1, 2, 2), np.float32), [0, 0, 0, 0, 1], ["many", "lonely"])
    with pytest.raises(ValueError, match="lonely"):
        split(data)


# -- batches -----------------------------------------------------------------------------


def _counting(n=10):
    return Dataset(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), np.arange(n) % 3)


def test_batches_cover_everything_once():
    """Shuffled batches are a permutation of the data, images and labels kept together."""
    data = _counting(10)
    seen = []
    for x, y in batches(data, 3, rng=0):
        assert len(x) == len(y) <= 3
        assert np.array_equal(x[:, 0, 0, 0].astype(int) % 3, y)
        seen += x[:, 0, 0, 0].astype(int).tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))


def test_batches_seeded_and_generator():
    """An int seed gives a fixed order; a Generator is advanced (new order each epoch)."""
    data = _counting(20)
    order = lambda rng: [y.tolist() for _, y in batches(data, 4, rng=rng)]  # noqa: E731
    assert order(5) == order(5)
    gen = np.random.default_rng(5)
    first, second = order(gen), order(gen)
    assert first == order(5) and first != second


def test_batches_default_generator_follows_manual_seed():
    import cnnkit as ck

    data = _counting(20)
    ck.manual_seed(1)
    a = [y.tolist() for _, y in batches(data, 4)]
    ck.manual_seed(1)
    assert a == [y.tolist() for _, y in batches(data, 4)]


def test_batches_in_order_and_drop_last():
    data = _counting(7)
    assert [len(y) for _, y in batches(data, 3, shuffle=False)] == [3, 3, 1]
    assert [len(y) for _, y in batches(data, 3, shuffle=False, drop_last=True)] == [3, 3]


@pytest.mark.parametrize("bad, error", [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_batches_bad_batch_size(bad, error):
    with pytest.raises(error, match="batch_size"):
        next(batches(_counting(), bad))


# -- image folders -----------------------------------------------------------------------


def _folder(tmp_path, spec):
    """Make class folders: spec maps class name -> list of (file name, PIL image or bytes)."""
    for name, files in spec.items():
        os.makedirs(tmp_path / name, exist_ok=True)
        for file, content in files:
            if isinstance(content, bytes):
                (tmp_path / name / file).write_bytes(content)
            else:
                content.save(tmp_path / name / file)
    return tmp_path


def test_image_folder_loads_classes_resized(tmp_path):
    """Sorted sub-folders are the classes; images are resized; RGB gives 3 channels."""
    root = _folder(
        tmp_path,
        {
            "red": [
                ("a.png", Image.new("RGB", (30, 20), (255, 0, 0))),
                ("b.jpg", Image.new("RGB", (10, 40), (250, 0, 0))),
            ],
            "blue": [
                ("c.png", Image.new("RGB", (12, 12), (0, 0, 255))),
                (".DS_Store", b"junk that is skipped"),
            ],
        },
    )
    data = load_image_folder(root, size=(6, 5))
    assert data.classes == ["blue", "red"]
    assert data.x.shape == (3, 3, 6, 5) and data.x.dtype == np.float32
    assert data.y.tolist() == [0, 1, 1]
    np.testing.assert_allclose(data.x[0, :, 2, 2], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(data.x[1, :, 2, 2], [1, 0, 0], atol=1e-6)


def test_image_folder_gray_and_nested(tmp_path):
    """gray=True gives one luminance channel; images in nested folders count."""
    root = _folder(
        tmp_path,
        {
            "a": [("x.png", Image.new("RGB", (8, 8), (0, 255, 0)))],
            "b/deeper": [("y.png", Image.new("L", (8, 8), 255))],
        },
    )
    data = load_image_folder(root, size=4, gray=True)
    assert data.x.shape == (2, 1, 4, 4) and data.classes == ["a", "b"]
    np.testing.assert_allclose(data.x[0], 0.7154, atol=1e-4)  # BT.709 green weight
    np.testing.assert_allclose(data.x[1], 1.0)


def test_image_folder_resize_is_an_average(tmp_path):
    """Shrinking a checkerboard gives its mean grey, not aliasing."""
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    root = _folder(
        tmp_path,
        {"a": [("c.png", Image.fromarray(board))], "b": [("d.png", Image.new("L", (64, 64), 0))]},
    )
    data = load_image_folder(root, size=(8, 8), gray=True)
    np.testing.assert_allclose(data.x[0], 0.5, atol=0.02)


def test_image_folder_empty(tmp_path):
    with pytest.raises(ValueError, match="at least 2 classes; found none"):
        load_image_folder(tmp_path)


def test_image_folder_one_class(tmp_path):
    root = _folder(tmp_path, {"cats": [("a.png", Image.new("L", (4, 4)))]})
    with pytest.raises(ValueError, match="found one \\('cats'\\)"):
        load_image_folder(root)


def test_image_folder_empty_class(tmp_path):
    root = _folder(tmp_path, {"cats": [("a.png", Image.new("L", (4, 4)))], "dogs": []})
    with pytest.raises(ValueError, match="dogs holds no readable image"):
        load_image_folder(root)


def test_image_folder_skips_and_lists_bad_files(tmp_path):
    """Stray non-images are skipped with one warning naming the count and the first few."""
    root = _folder(
        tmp_path,
        {
            "cats": [
                ("a.png", Image.new("L", (4, 4))),
                ("Thumbs.db", b"\x00" * 40),
                ("empty.png", b""),
            ],
            "dogs": [("b.png", Image.new("L", (4, 4), 255)), ("notes.txt", b"not a picture\n")],
        },
    )
    with pytest.warns(UserWarning, match=r"skipped 3 files") as record:
        data = load_image_folder(root, size=(4, 4))
    assert len(record) == 1
    message = str(record[0].message)
    assert "Thumbs.db" in message and "empty.png" in message and "notes.txt" in message
    assert "\n" not in message
    assert len(data) == 2 and data.y.tolist() == [0, 1]


def test_image_folder_class_of_only_bad_files(tmp_path):
    """A class folder whose every file is unreadable is an error naming the folder."""
    root = _folder(
        tmp_path,
        {"cats": [("a.png", Image.new("L", (4, 4)))], "dogs": [("notes.txt", b"not a picture\n")]},
    )
    with (
        pytest.raises(ValueError, match=r"dogs holds no readable image") as info,
        pytest.warns(UserWarning, match="notes.txt"),
    ):
        load_image_folder(root)
    assert "\n" not in str(info.value)


def test_dataset_keeps_preprocessing():
    """Indexing and split keep how the images were made; load_digits says it."""
    train, test = load_digits()
    assert (
        train.preprocessing
        == test.preprocessing
        == {"background": "dark", "crop": True, "resize": "box"}
    )
    assert train[:5].preprocessing == train.preprocessing


def test_image_folder_missing_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="folder"):
        load_image_folder(tmp_path / "f.png")


@pytest.mark.parametrize(
    "size, error", [((0, 4), ValueError), ((4,), ValueError), ("big", TypeError)]
)
def test_image_folder_bad_size(tmp_path, size, error):
    with pytest.raises(error, match="size"):
        load_image_folder(tmp_path, size=size)
