"""The training commands: ``cnnkit train``, ``cnnkit predict`` and ``cnnkit features``,
through ``main([...])`` (and a few real subprocesses)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import cnnkit as ck
from cnnkit.cli import main
from cnnkit.data import load_digits

FAST = ["--epochs", "1", "--channels", "8"]


def is_png(path):
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 50


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A digits model good enough to read digits (3 short epochs)."""
    path = tmp_path_factory.mktemp("model") / "digits.npz"
    assert main(["train", "-q", "--epochs", "3", "--channels", "16,32", "-o", str(path)]) == 0
    return path


def drawn_digit(folder, index, test):
    """A test digit blown up to 120x120 with margins, dark ink on white, as an RGB PNG."""
    digit = test.x[index, 0]  # (8, 8) light on dark
    big = np.kron(digit, np.ones((12, 12)))  # (96, 96)
    paper = 1.0 - np.pad(big, ((20, 20), (40, 10)))  # off-centre, dark on light
    path = folder / f"digit_{index}.png"
    Image.fromarray((paper * 255).astype(np.uint8)).convert("RGB").save(path)
    return path


# -- train ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_digits_writes_model_and_pictures(tmp_path, capsys):
    """Per-epoch metrics and the final test accuracy are printed; three files written."""
    out = tmp_path / "m.npz"
    assert main(["train", *FAST, "--epochs", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/2" in printed and "epoch 2/2" in printed and "test accuracy" in printed
    assert "test accuracy: " in printed.splitlines()[-2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.npz",
        "m_confusion.png",
        "m_history.png",
    ]
    assert is_png(tmp_path / "m_history.png") and is_png(tmp_path / "m_confusion.png")
    model, meta = ck.load(out, with_metadata=True)
    assert meta["classes"] == [str(d) for d in range(10)]
    assert meta["input_shape"] == [1, 8, 8]
    assert meta["preprocessing"] == {"background": "dark", "crop": True, "resize": "box"}
    assert meta["train_config"]["epochs"] == 2 and len(meta["history"]["loss"]) == 2
    _, test = load_digits()
    accuracy = ck.train.evaluate(model, test)[1]
    assert f"test accuracy: {accuracy:.2%}" in printed


@pytest.mark.slow
def test_train_same_seed_same_model(tmp_path):
    """Two runs with the same seed write identical weights; another seed differs."""
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        out = str(tmp_path / f"{name}.npz")
        assert main(["train", "-q", *FAST, "--seed", seed, "-o", out]) == 0
    a, b, c = (ck.load(tmp_path / f"{n}.npz").state_dict() for n in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


@pytest.mark.slow
def test_train_creates_the_output_folder(tmp_path):
    out = tmp_path / "new" / "deeper" / "m.npz"
    assert main(["train", "-q", *FAST, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "m.npz",
        "m_confusion.png",
        "m_history.png",
    ]


@pytest.mark.slow
def test_train_quiet(tmp_path, capsys):
    assert main(["train", "--quiet", *FAST, "-o", str(tmp_path / "m.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("test accuracy: ")


def _stripes(root, n=8, size=16):
    """Two classes of pictures: horizontal and vertical stripes, with noise."""
    rng = np.random.default_rng(0)
    for name, axis in (("horizontal", 0), ("vertical", 1)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            stripes = (np.arange(size) // 2 % 2).astype(float)
            picture = np.broadcast_to(stripes[:, None] if axis == 0 else stripes, (size, size))
            picture = np.clip(picture + rng.normal(0, 0.1, (size, size)), 0, 1)
            rgb = (np.stack([picture] * 3, axis=2) * 255).astype(np.uint8)
            Image.fromarray(rgb).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_train_on_folder_then_predict(tmp_path, capsys):
    """A folder of the user's pictures trains; predict names the folder's classes."""
    data = _stripes(tmp_path / "data")
    out = tmp_path / "stripes.npz"
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--size",
                "8",
                "--epochs",
                "15",
                "--batch-size",
                "4",
                "--channels",
                "4,8",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "2 classes" in printed
    _model, meta = ck.load(out, with_metadata=True)
    assert meta["classes"] == ["horizontal", "vertical"] and meta["input_shape"] == [3, 8, 8]
    assert meta["preprocessing"]["background"] is None
    assert meta["preprocessing"]["crop"] is False
    assert (
        main(
            [
                "predict",
                str(out),
                str(data / "vertical" / "0.png"),
                str(data / "horizontal" / "1.png"),
                "--top",
                "2",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{data / 'vertical' / '0.png'}: vertical (")
    assert lines[1].startswith(f"{data / 'horizontal' / '1.png'}: horizontal (")
    assert lines[0].count("%") == 2


@pytest.mark.slow
def test_train_small_folder_gets_small_batches(tmp_path, capsys):
    """Without --batch-size, 12 training images are trained in batches of 2 (>= 8 steps)."""
    data = _stripes(tmp_path / "data", n=8)
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--size",
                "8",
                "--epochs",
                "1",
                "--channels",
                "4",
                "-o",
                str(tmp_path / "m.npz"),
            ]
        )
        == 0
    )
    assert "batch 2," in capsys.readouterr().out
    assert ck.load(tmp_path / "m.npz", with_metadata=True)[1]["train_config"]["batch_size"] == 2


def test_train_refuses_output_inside_data_folder(tmp_path, capsys):
    data = _stripes(tmp_path / "data", n=2)
    assert main(["train", "--data", str(data), "-o", str(data / "model.npz")]) == 1
    err = capsys.readouterr().err
    assert "inside the training folder" in err and len(err.splitlines()) == 1
    assert not (data / "model.npz").exists()


@pytest.mark.parametrize("classes", [[], ["cats"]])
def test_train_too_few_classes(tmp_path, capsys, classes):
    """An empty or one-class folder: exit 1, one line, nothing written."""
    for name in classes:
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "data" / name / "a.png")
    (tmp_path / "data").mkdir(exist_ok=True)
    assert main(["train", "--data", str(tmp_path / "data"), "-o", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert "at least 2 classes" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()


def test_train_non_image_in_folder(tmp_path, capsys):
    data = _stripes(tmp_path / "data", n=2)
    (data / "vertical" / "readme.txt").write_text("not a picture")
    assert main(["train", "--data", str(data), "-o", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert "readme.txt" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["-o", "model.txt"],
        ["--epochs", "0", "-o", "m.npz"],
        ["--lr", "-1", "-o", "m.npz"],
        ["--channels", "8,x", "-o", "m.npz"],
        ["--test-size", "1.5", "-o", "m.npz"],
        ["--optimizer", "rmsprop", "-o", "m.npz"],
        [],
    ],
)
def test_train_usage_errors(argv, capsys):
    assert main(["train", *argv]) == 2


def test_train_missing_data_folder(tmp_path, capsys):
    """A usage error (2), found before any work, naming the option."""
    assert main(["train", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--data" in err


# -- predict -------------------------------------------------------------------------------


@pytest.mark.slow
def test_predict_reads_drawn_digits(digits_model, tmp_path, capsys):
    """Digits drawn dark on white, large and off-centre, are inverted, cropped and read."""
    _, test = load_digits()
    indices = range(0, 40, 2)
    paths = [drawn_digit(tmp_path, i, test) for i in indices]
    assert main(["predict", str(digits_model), *map(str, paths), "--top", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(paths)
    predicted = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    correct = np.mean(np.array(predicted) == test.y[list(indices)])
    assert correct >= 0.75  # 0.9 here; a 3-epoch model, and the pictures are resampled
    # Without inversion the same pictures are mostly misread: the option matters.
    assert (
        main(["predict", str(digits_model), *map(str, paths), "--top", "1", "--invert", "no"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    wrong = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    assert np.mean(np.array(wrong) == test.y[list(indices)]) < correct - 0.3


@pytest.mark.slow
def test_predict_output_format(digits_model, tmp_path, capsys):
    """One line per image: the top classes, most probable first, probabilities that add up."""
    _, test = load_digits()
    path = drawn_digit(tmp_path, 1, test)
    assert main(["predict", str(digits_model), str(path), "--top", "10"]) == 0
    line = capsys.readouterr().out.strip()
    name, ranked = line.split(": ", 1)
    assert name == str(path)
    entries = [e.rstrip(")").split(" (") for e in ranked.split(", ")]
    assert sorted(label for label, _ in entries) == [str(d) for d in range(10)]
    shares = [float(p.rstrip("%")) for _, p in entries]
    assert shares == sorted(shares, reverse=True) and abs(sum(shares) - 100) < 0.6


@pytest.mark.slow
def test_predict_any_size_and_channels(digits_model, tmp_path, capsys):
    """An RGBA picture of any size goes to the one-channel 8x8 model."""
    Image.new("RGBA", (33, 17), (10, 200, 30, 128)).save(tmp_path / "odd.png")
    assert main(["predict", str(digits_model), str(tmp_path / "odd.png")]) == 0
    assert capsys.readouterr().out.count("%") == 3


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: None, "model file not found"),
        (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "not a cnnkit model file"),
        (lambda p: np.savez(p, weight=np.zeros(2)), "not a cnnkit model file"),
    ],
)
def test_predict_bad_model(tmp_path, capsys, make, match):
    path = tmp_path / "m.npz"
    make(path)
    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    assert main(["predict", str(path), str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert match in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_predict_bad_image(digits_model, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not a picture")
    assert main(["predict", str(digits_model), str(tmp_path / "notes.png")]) == 1
    err = capsys.readouterr().err
    assert "notes.png" in err and len(err.splitlines()) == 1
    assert main(["predict", str(digits_model), str(tmp_path / "missing.png")]) == 1
    assert "missing.png" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_one_bad_image_spoils_nothing(digits_model, tmp_path, capsys):
    """A result per good image, an error line per bad one, exit 1 (issue 9 item 9)."""
    _, test = load_digits()
    good = [drawn_digit(tmp_path, k, test) for k in (0, 1)]
    (tmp_path / "notes.png").write_text("not a picture")
    sources = [
        str(good[0]),
        str(tmp_path / "notes.png"),
        str(tmp_path / "missing.png"),
        str(good[1]),
    ]
    assert main(["predict", str(digits_model), *sources]) == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert [line.split(":")[0] for line in out] == [str(good[0]), str(good[1])]
    err = captured.err.splitlines()
    assert "notes.png" in err[0] and "missing.png" in err[1]
    assert "2 of 4 images" in err[2] and len(err) == 3


@pytest.mark.slow
def test_model_saved_from_python_as_the_readme_shows(tmp_path, capsys):
    """fit then ck.save, as the README teaches: predict and features take the file."""
    from cnnkit import data, models, train

    train_set, test_set = data.load_digits()
    model = models.digits_cnn(channels=(8,), rng=0)
    train.fit(model, train_set[:256], train.TrainConfig(epochs=1))
    ck.save(model, tmp_path / "digits.npz")
    image = drawn_digit(tmp_path, 3, test_set)
    assert main(["predict", str(tmp_path / "digits.npz"), str(image)]) == 0
    printed = capsys.readouterr().out
    x = ck.preprocessing.prepare_image(
        ck.load_image(str(image)), (1, 8, 8), background="dark", crop=True
    )
    p = ck.train.predict_proba(model, x)[0]
    assert printed.startswith(f"{image}: {int(np.argmax(p))} ({p.max():.1%})")
    assert (
        main(["features", str(tmp_path / "digits.npz"), str(image), "-o", str(tmp_path / "maps")])
        == 0
    )
    assert (tmp_path / "maps" / "conv1_feature_maps.png").exists()
    # A model that only ran a forward pass works too.
    plain = models.digits_cnn(channels=(8,), rng=0).eval()
    plain(test_set.x[:2])
    ck.save(plain, tmp_path / "plain.npz")
    assert main(["predict", str(tmp_path / "plain.npz"), str(image)]) == 0


def test_train_refuses_to_replace_a_model(tmp_path, capsys):
    """An existing model is kept unless --force; found before any work (exit 2)."""
    path = tmp_path / "m.npz"
    path.write_bytes(b"precious")
    assert main(["train", "-q", "-o", str(path), *FAST]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "-o/--output" in err and str(path) in err
    assert path.read_bytes() == b"precious"


@pytest.mark.slow
def test_train_force_replaces_a_model(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    assert main(["train", "-q", "--force", "-o", str(path), *FAST]) == 0
    assert ck.load(path) is not None


@pytest.mark.parametrize(
    "argv, option",
    [
        (["train", "-o", ""], "-o/--output"),
        (["features", "m.npz", "camera", "-o", ""], "-o/--output"),
        (["tour", "--out", ""], "--out"),
        (["train", "-o", "m.npz", "--seed", "-1"], "--seed"),
        (["train", "-o", "m.npz", "--seed", "99999999999999999999"], "--seed"),
        (["train", "-o", "m.npz", "--size", "16"], "--size"),
        (["train", "-o", "m.npz", "--gray"], "--gray"),
    ],
)
def test_usage_errors_name_the_option(tmp_path, monkeypatch, capsys, argv, option):
    """Exit 2 before any work, naming the option (issue 9 items 3 and 16)."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_train_checks_the_output_before_training(tmp_path, capsys):
    """An output that cannot be written fails at once, naming the user's path."""
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "m.npz"
    assert main(["train", "-q", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and ".tmp" not in err and "-o/--output" in err


@pytest.mark.slow
def test_train_survives_a_closed_stdout(tmp_path):
    """`cnnkit train | head -1`: the pipe closes at once, the model is still written."""
    path = tmp_path / "m.npz"
    with subprocess.Popen(
        [sys.executable, "-m", "cnnkit", "train", "-o", str(path), *FAST, "--epochs", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        process.stdout.readline()
        process.stdout.close()  # as head does after its lines
        _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert ck.load(path) is not None


def test_predict_model_without_input_shape(tmp_path, capsys):
    ck.save(ck.models.digits_cnn(channels=(4,), rng=0), tmp_path / "bare.npz")
    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "bare.npz"), str(tmp_path / "x.png")]) == 1
    assert "input_shape" in capsys.readouterr().err


@pytest.mark.slow
def test_model_to_torch_and_back(digits_model, tmp_path, capsys):
    """A trained model goes to PyTorch (from the .npz), takes a step there, comes back into
    cnnkit with its metadata, and predict gives PyTorch's probabilities."""
    import torch

    layers, previous = [], 1
    for out in (16, 32):  # the digits_model fixture's channels
        layers += [
            torch.nn.Conv2d(previous, out, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(out),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        previous = out
    twin = torch.nn.Sequential(
        *layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(previous, 10)
    )
    with np.load(digits_model) as archive:
        twin.load_state_dict(
            {k: torch.from_numpy(archive[k]) for k in archive.files if not k.startswith("__")}
        )
    train, test = load_digits()
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(
        twin(torch.from_numpy(train.x[:64])), torch.from_numpy(train.y[:64])
    )
    loss.backward()
    optimizer.step()
    twin.eval()

    model, metadata = ck.load(digits_model, with_metadata=True)
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    ck.save(model, tmp_path / "back.npz", metadata=metadata)
    image = drawn_digit(tmp_path, 3, test)
    assert main(["predict", str(tmp_path / "back.npz"), str(image), "--top", "1"]) == 0
    label, share = capsys.readouterr().out.split(": ")[1].rstrip(")\n").split(" (")
    x = ck.preprocessing.prepare_image(
        ck.load_image(str(image)), (1, 8, 8), background="dark", crop=True
    )
    with torch.no_grad():
        expected = torch.softmax(twin(torch.from_numpy(x[None])), 1)[0].numpy()
    assert int(label) == int(np.argmax(expected))
    assert share == f"{expected.max():.1%}"
    before = ck.train.predict_proba(ck.load(digits_model), x)[0]
    assert not np.allclose(before, expected, atol=1e-4)  # the step in torch did change it


# -- features ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """An untrained two-conv digits model (quick to draw), saved as cnnkit train would."""
    path = tmp_path_factory.mktemp("small") / "small.npz"
    ck.save(
        ck.models.digits_cnn(channels=(4, 6), rng=0),
        path,
        input_shape=(1, 8, 8),
        classes=[str(d) for d in range(10)],
        metadata={"background": "dark", "crop": True},
    )
    return path


@pytest.mark.slow
def test_features_writes_kernels_and_maps(small_model, tmp_path, capsys):
    """One picture of the input, and kernels and feature maps for each of the 2 convs."""
    _, test = load_digits()
    image = drawn_digit(tmp_path, 0, test)
    out = tmp_path / "inside" / "features"
    assert main(["features", str(small_model), str(image), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "conv1_feature_maps.png",
        "conv1_kernels.png",
        "conv2_feature_maps.png",
        "conv2_kernels.png",
        "input.png",
    ]
    assert all(is_png(out / name) for name in names)
    assert "wrote 5 pictures" in capsys.readouterr().out


@pytest.mark.slow
def test_features_on_a_photo(small_model, tmp_path):
    """A bundled colour photo works too (converted to the model's one 8x8 channel)."""
    assert main(["features", "-q", str(small_model), "chelsea", "-o", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.png"))) == 5


def test_features_never_overwrites_its_input(small_model, tmp_path, capsys):
    """An input picture named like an output stays untouched, and nothing is written."""
    image = tmp_path / "input.png"
    Image.new("L", (16, 16), 255).save(image)
    before = image.read_bytes()
    assert main(["features", str(small_model), str(image), "-o", str(tmp_path)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert image.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png"]


def test_features_output_is_a_file(small_model, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    assert (
        main(["features", str(small_model), str(tmp_path / "x.png"), "-o", str(tmp_path / "f")])
        == 2
    )
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow
def test_features_keeps_existing_pictures(small_model, tmp_path, capsys):
    """Pictures already in the folder are replaced only with --force."""
    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    out = tmp_path / "f"
    out.mkdir()
    (out / "input.png").write_bytes(b"mine")
    argv = ["features", str(small_model), str(tmp_path / "x.png"), "-o", str(out)]
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["input.png"]
    assert main([*argv, "--force"]) == 0
    assert (out / "input.png").read_bytes() != b"mine"


def test_features_model_without_conv(tmp_path, capsys):
    ck.save(
        ck.nn.Sequential(ck.nn.Flatten(), ck.nn.Linear(64, 10, rng=0)),
        tmp_path / "mlp.npz",
        input_shape=(1, 8, 8),
    )
    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    assert (
        main(
            [
                "features",
                str(tmp_path / "mlp.npz"),
                str(tmp_path / "x.png"),
                "-o",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )
    assert "no Conv2d" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- real processes ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "predict", "features"])
def test_help_in_a_subprocess(command):
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "usage: cnnkit " + command in result.stdout


@pytest.mark.slow
def test_error_in_a_subprocess_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", "predict", str(tmp_path / "none.npz"), "chelsea"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("cnnkit predict: error: model file not found")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
