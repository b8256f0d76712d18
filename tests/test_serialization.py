"""cnnkit.save / cnnkit.load: exact round trips, weights moving both ways with PyTorch, and
clear errors for files that are missing, truncated or not cnnkit models."""

import json
import os
import zipfile

import numpy as np
import pytest
import torch

import cnnkit as ck
from cnnkit import nn
from cnnkit.data import load_digits
from cnnkit.models import DIGITS_CHANNELS, digits_cnn
from cnnkit.serialization import build, describe, read_metadata
from cnnkit.train import TrainConfig, fit


def torch_simple_cnn(num_classes=10, in_channels=1, channels=DIGITS_CHANNELS, kernel_size=3):
    """PyTorch's twin of cnnkit.models.simple_cnn / digits_cnn (same layers, same keys)."""
    layers, previous = [], in_channels
    for out in channels:
        layers += [
            torch.nn.Conv2d(previous, out, kernel_size, padding=kernel_size // 2, bias=False),
            torch.nn.BatchNorm2d(out),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        previous = out
    layers += [
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(previous, num_classes),
    ]
    return torch.nn.Sequential(*layers)


def to_numpy(state):
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def to_torch(state):
    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}


def torch_logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_state_dict_keys_match_torch():
    """digits_cnn and its torch twin have the same parameters and buffers, shapes and dtypes."""
    ours = digits_cnn(rng=0).state_dict()
    theirs = to_numpy(torch_simple_cnn().state_dict())
    assert list(ours) == list(theirs)
    for key in ours:
        assert ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype, key


@pytest.mark.slow
def test_torch_weights_give_same_logits(digits):
    """A trained torch model's state_dict, as arrays, gives cnnkit the same logits."""
    train, test = digits
    torch.manual_seed(0)
    reference = torch_simple_cnn()
    optimizer = torch.optim.Adam(reference.parameters(), lr=3e-3)
    for start in range(0, 640, 64):  # some training, so no weight is at its initial value
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            reference(torch.from_numpy(train.x[start : start + 64])),
            torch.from_numpy(train.y[start : start + 64]),
        )
        loss.backward()
        optimizer.step()
    reference.eval()
    model = digits_cnn(rng=1)
    model.load_state_dict(to_numpy(reference.state_dict()))
    model.eval()
    np.testing.assert_allclose(model(test.x), torch_logits(reference, test.x), rtol=1e-4, atol=1e-5)
    assert int(model[1].num_batches_tracked) == 10
    reference.train()
    model.train()
    np.testing.assert_allclose(
        model(test.x[:50]), torch_logits(reference, test.x[:50]), rtol=1e-4, atol=1e-5
    )


def test_cnnkit_weights_load_into_torch(digits, tmp_path):
    """A model trained and saved by cnnkit loads into torch, from memory and from the file."""
    train, test = digits
    model = digits_cnn(channels=(8, 16), rng=0)
    fit(model, train[:256], TrainConfig(epochs=1, batch_size=32))
    reference = torch_simple_cnn(channels=(8, 16))
    reference.load_state_dict(to_torch(model.state_dict()))
    reference.eval()
    np.testing.assert_allclose(torch_logits(reference, test.x), model(test.x), rtol=1e-4, atol=1e-5)
    path = tmp_path / "model.npz"
    ck.save(model, path)
    with np.load(path) as archive:  # the documented recipe
        state = {k: torch.from_numpy(archive[k]) for k in archive.files if not k.startswith("__")}
    fresh = torch_simple_cnn(channels=(8, 16))
    fresh.load_state_dict(state)
    fresh.eval()
    np.testing.assert_allclose(torch_logits(fresh, test.x), model(test.x), rtol=1e-4, atol=1e-5)


def every_layer():
    """A Sequential using every layer type and non-default constructor arguments."""
    rng = np.random.default_rng(0)
    return nn.Sequential(
        nn.Conv2d(
            3,
            4,
            (3, 5),
            stride=(1, 2),
            padding=(1, 2),
            dilation=1,
            bias=False,
            padding_mode="reflect",
            rng=rng,
        ),
        nn.BatchNorm2d(4, eps=1e-3, momentum=0.2),
        nn.LeakyReLU(0.2),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding="same", groups=2, dilation=2, rng=rng), nn.ReLU()),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.AvgPool2d(2, stride=1, count_include_pad=False),
        nn.Dropout(0.25),
        nn.Sigmoid(),
        nn.GlobalAvgPool2d(),
        nn.Linear(4, 6, rng=rng),
        nn.Softmax(axis=1),
    )


def test_round_trip_is_exact(tmp_path, rng):
    """save then load gives the same layers, the same arrays bit for bit, the same outputs."""
    model = every_layer()
    model.train()
    model(rng.random((5, 3, 12, 12)).astype(np.float32))  # running statistics move
    model.eval()
    path = tmp_path / "m.npz"
    assert ck.save(
        model, path, classes=list("abcdef"), input_shape=(3, 12, 12), metadata={"note": "hi"}
    ) == str(path)
    again, metadata = ck.load(path, with_metadata=True)
    assert describe(again) == describe(model)
    assert repr(again) == repr(model)
    before, after = model.state_dict(), again.state_dict()
    assert list(before) == list(after)
    for key in before:
        assert before[key].dtype == after[key].dtype and before[key].shape == after[key].shape
        assert np.array_equal(before[key], after[key]), key
    assert int(after["1.num_batches_tracked"]) == 1
    x = rng.random((2, 3, 12, 12)).astype(np.float32)
    assert np.array_equal(model(x), again(x))
    assert again.training is False
    assert metadata == {"note": "hi", "classes": list("abcdef"), "input_shape": [3, 12, 12]}
    assert read_metadata(path) == metadata
    assert ck.load(path).training is False


def test_round_trip_float64(tmp_path):
    """A float64 model comes back float64, not rounded to float32."""
    model = nn.Sequential(nn.Linear(3, 2, rng=0)).astype(np.float64)
    model[0].weight.data[...] = np.pi
    ck.save(model, tmp_path / "m.npz")
    again = ck.load(tmp_path / "m.npz")
    assert again[0].weight.data.dtype == np.float64
    assert np.array_equal(again[0].weight.data, model[0].weight.data)


def test_file_layout(tmp_path):
    """The file is a plain .npz: PyTorch keys plus a JSON description, nothing pickled."""
    path = tmp_path / "m.npz"
    ck.save(digits_cnn(rng=0), path, classes=[str(d) for d in range(10)], input_shape=(1, 8, 8))
    with np.load(path, allow_pickle=False) as archive:
        keys = archive.files
        document = json.loads(archive["__cnnkit__"].tobytes())
    assert "0.weight" in keys and "1.num_batches_tracked" in keys
    assert document["format"] == "cnnkit-model" and document["version"] == 1
    assert document["architecture"]["layers"][0] == {
        "type": "Conv2d",
        "args": {
            "in_channels": 1,
            "out_channels": 32,
            "kernel_size": [3, 3],
            "stride": [1, 1],
            "padding": [1, 1],
            "dilation": [1, 1],
            "groups": 1,
            "bias": False,
            "padding_mode": "zeros",
        },
    }
    assert document["metadata"]["input_shape"] == [1, 8, 8]


def test_build_gives_fresh_model():
    model = every_layer()
    again = build(describe(model))
    assert describe(again) == describe(model)
    assert not np.array_equal(again[0].weight.data, model[0].weight.data)


# -- atomic writes -------------------------------------------------------------------------


def test_failed_save_leaves_old_file(tmp_path, monkeypatch):
    """A save that fails (here: at the final rename) keeps the old file and no temporary."""
    path = tmp_path / "m.npz"
    ck.save(nn.Sequential(nn.Linear(2, 2, rng=0)), path)
    before = path.read_bytes()

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        ck.save(nn.Sequential(nn.Linear(2, 3, rng=0)), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


class Custom(nn.Module):
    def forward(self, x):
        return x


def test_unsupported_model_writes_nothing(tmp_path):
    """A user's own Module subclass cannot be described: TypeError, no file."""
    with pytest.raises(TypeError, match="Custom"):
        ck.save(nn.Sequential(nn.ReLU(), Custom()), tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(metadata={"f": object()}), TypeError, "JSON"),
        (dict(metadata={"x": float("nan")}), TypeError, "JSON"),
        (dict(input_shape=(1, 8)), ValueError, "input_shape"),
        (dict(input_shape=(1, 0, 8)), ValueError, "input_shape"),
        (dict(classes="abc"), TypeError, "classes"),
    ],
)
def test_save_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        ck.save(nn.Sequential(nn.ReLU()), tmp_path / "m.npz", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ck.save(nn.Sequential(nn.ReLU()), tmp_path / "no" / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_to_folder_or_bad_path(tmp_path):
    with pytest.raises(IsADirectoryError):
        ck.save(nn.Sequential(nn.ReLU()), tmp_path)
    with pytest.raises(TypeError, match="path"):
        ck.save(nn.Sequential(nn.ReLU()), 3)


# -- bad files -----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    ck.save(digits_cnn(channels=(4,), rng=0), path, input_shape=(1, 8, 8))
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.npz"):
        ck.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="not a cnnkit model file") as info:
        ck.load(saved)
    assert "\n" not in str(info.value)


def test_text_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="not a cnnkit model file"):
        ck.load(path)


def test_plain_npz_and_npy(tmp_path):
    """Ordinary NumPy files (an .npz without the description, an .npy) are refused."""
    np.savez(tmp_path / "plain.npz", weight=np.zeros(3))
    with pytest.raises(ValueError, match="no '__cnnkit__' description"):
        ck.load(tmp_path / "plain.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a cnnkit model file"):
        ck.load(tmp_path / "array.npy")
    with pytest.raises(ValueError, match="folder"):
        ck.load(tmp_path)


def _rewrite(path, change):
    """Rewrite a saved model with change(arrays, document) applied."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    document = json.loads(arrays.pop("__cnnkit__").tobytes())
    change(arrays, document)
    arrays["__cnnkit__"] = np.frombuffer(json.dumps(document).encode(), np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a, d: d.update(format="something-else"), "format"),
        (lambda a, d: d.update(version=99), "version 99"),
        (lambda a, d: a.update({"0.weight": np.zeros((4, 1, 5, 5), np.float32)}), "shape"),
        (lambda a, d: a.pop("1.running_var"), "missing keys"),
        (
            lambda a, d: d["architecture"]["layers"].__setitem__(0, {"type": "Evil", "args": {}}),
            "unknown layer type 'Evil'",
        ),
        (lambda a, d: d["architecture"]["layers"][0]["args"].update(stride=0), "Conv2d"),
    ],
)
def test_tampered_file(saved, change, match):
    _rewrite(saved, change)
    with pytest.raises(ValueError, match=match):
        ck.load(saved)


def test_corrupt_description(saved):
    with np.load(saved) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["__cnnkit__"] = np.frombuffer(b"{not json", np.uint8)
    np.savez(saved, **arrays)
    with pytest.raises(ValueError, match="corrupt"):
        ck.load(saved)


def test_pickled_content_is_not_loaded(tmp_path):
    """An object array (which would need pickle) is refused, not unpickled."""
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("__cnnkit__.npy", "w") as member:
        np.save(member, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a cnnkit model file"):
        ck.load(path)


def test_load_bad_arguments(saved):
    with pytest.raises(TypeError, match="path"):
        ck.load(None)
    with pytest.raises(TypeError, match="with_metadata"):
        ck.load(saved, with_metadata="yes")


# -- crafted files, pictures, permissions (issue 9 items 8, 15, 19) ------------------------


@pytest.mark.parametrize(
    "layer, args",
    [
        (0, {"out_channels": 1_000_000_000}),
        (0, {"in_channels": 1_000_000, "out_channels": 1_000_000}),
        (1, {"num_features": 2_000_000_000}),
        (-1, {"in_features": 1_000_000_000}),
    ],
)
def test_crafted_architecture_is_refused_before_building(saved, layer, args):
    """Sizes the stored arrays do not have are refused without allocating them."""
    import tracemalloc

    def change(arrays, document):
        document["architecture"]["layers"][layer]["args"].update(args)

    _rewrite(saved, change)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="shape") as info:
            ck.load(saved)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"peak {peak / 1e6:.0f} MB"
    assert str(saved) in str(info.value) and "\n" not in str(info.value)


def test_crafted_argument_type_is_refused(saved):
    _rewrite(saved, lambda a, d: d["architecture"]["layers"][0]["args"].update(out_channels="many"))
    with pytest.raises(ValueError, match="out_channels must be an int"):
        ck.load(saved)


def test_stray_arrays_are_refused(saved):
    _rewrite(saved, lambda a, d: a.update({"9.weight": np.zeros(3, np.float32)}))
    with pytest.raises(ValueError, match=r"no place for: 9\.weight"):
        ck.load(saved)


@pytest.mark.parametrize(
    "make, kind",
    [
        (
            lambda p: __import__("PIL.Image").Image.new("L", (4, 4)).save(p, format="PNG"),
            "a PNG image",
        ),
        (
            lambda p: __import__("PIL.Image").Image.new("RGB", (4, 4)).save(p, format="JPEG"),
            "a JPEG image",
        ),
    ],
)
def test_picture_as_model_says_so(tmp_path, make, kind):
    """Swapped arguments (a picture where the model goes): no advice about pickles."""
    path = tmp_path / "photo.npz"
    make(path)
    with pytest.raises(ValueError, match="not a cnnkit model file") as info:
        ck.load(path)
    assert kind in str(info.value) and "pickle" not in str(info.value)


def test_model_file_follows_the_umask(tmp_path):
    """Written as open() writes any file: 0o666 less the umask (not mkstemp's 0o600)."""
    old = os.umask(0o022)
    try:
        ck.save(nn.Sequential(nn.ReLU()), tmp_path / "a.npz")
        os.umask(0o077)
        ck.save(nn.Sequential(nn.ReLU()), tmp_path / "b.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o600


def test_unwritable_target_names_the_path(tmp_path):
    """An error names the file the user asked for, not a hidden temporary one."""
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "m.npz"  # a file where the folder should be
    with pytest.raises(OSError) as info:
        ck.save(nn.Sequential(nn.ReLU()), target)
    assert str(target) in str(info.value) or "file" in str(info.value)
    assert ".tmp" not in str(info.value)


# -- what a model records, and load_model (issue 9 item 4) -------------------------------


def test_save_after_forward_records_input_shape(tmp_path):
    """A model that only ran a forward pass is saved with its input shape."""
    from cnnkit.serialization import load_model

    model = digits_cnn(channels=(4,), rng=0).eval()
    model(np.zeros((3, 1, 8, 8), np.float32))
    ck.save(model, tmp_path / "m.npz")
    assert read_metadata(tmp_path / "m.npz") == {"input_shape": [1, 8, 8]}
    _, metadata = load_model(tmp_path / "m.npz")
    assert metadata["classes"] == [str(k) for k in range(10)]  # from the output size
    assert metadata["preprocessing"] == {"background": None, "crop": False, "resize": "bilinear"}


def test_explicit_arguments_win_over_recorded_metadata(tmp_path):
    model = digits_cnn(channels=(4,), rng=0)
    model.metadata.update(classes=list("abcdefghij"), input_shape=[1, 8, 8], note="fit")
    ck.save(
        model, tmp_path / "m.npz", classes=[str(k) for k in range(10)], metadata={"note": "mine"}
    )
    assert read_metadata(tmp_path / "m.npz") == {
        "classes": [str(k) for k in range(10)],
        "input_shape": [1, 8, 8],
        "note": "mine",
    }


def test_load_model_needs_an_input_shape(tmp_path):
    from cnnkit.serialization import load_model

    ck.save(digits_cnn(channels=(4,), rng=0), tmp_path / "m.npz")  # never ran
    with pytest.raises(ValueError, match="input shape"):
        load_model(tmp_path / "m.npz")
    model, metadata = load_model(tmp_path / "m.npz", strict=False)
    assert metadata["input_shape"] is None and metadata["classes"] is None
    assert model.training is False


def test_load_model_reads_older_metadata(tmp_path):
    """Files that kept background/crop at the top level still prepare as before."""
    from cnnkit.serialization import load_model

    ck.save(
        digits_cnn(channels=(4,), rng=0),
        tmp_path / "m.npz",
        input_shape=(1, 8, 8),
        metadata={"background": "dark", "crop": True},
    )
    _, metadata = load_model(tmp_path / "m.npz")
    assert metadata["preprocessing"] == {"background": "dark", "crop": True, "resize": "box"}


@pytest.mark.parametrize(
    "meta, match",
    [
        ({"input_shape": [1, 8]}, "input_shape"),
        ({"input_shape": [1, 8, 8], "classes": "abc"}, "class names"),
        ({"input_shape": [1, 8, 8], "preprocessing": {"background": "grey"}}, "preprocessing"),
    ],
)
def test_load_model_bad_metadata(tmp_path, meta, match):
    from cnnkit.serialization import load_model

    ck.save(digits_cnn(channels=(4,), rng=0), tmp_path / "m.npz", metadata=meta)
    with pytest.raises(ValueError, match=match):
        load_model(tmp_path / "m.npz")
