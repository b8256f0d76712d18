"""``cnnkit convert`` and ``cnnkit info``, and ``.onnx`` files in ``cnnkit predict``."""

import numpy as np
import onnx
import pytest

import cnnkit as ck
import cnnkit.onnx
from cnnkit import nn
from cnnkit.cli import main


def small_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, rng=0),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, rng=1), nn.ReLU())),
        nn.MaxPool2d(2),
        nn.GlobalAvgPool2d(),
        nn.Linear(8, 3, rng=2),
    )


@pytest.fixture
def saved(tmp_path):
    model = small_net().eval()
    path = ck.save(
        model,
        tmp_path / "net.npz",
        input_shape=(3, 16, 16),
        classes=["a", "b", "c"],
        metadata={"crop": False},
    )
    return model, path


def test_convert_npz_to_onnx_and_back_keeps_outputs_and_metadata(saved, tmp_path, rng, capsys):
    """npz -> onnx -> npz: onnx.checker passes, same outputs, same classes and preparation."""
    model, path = saved
    assert main(["convert", str(path), str(tmp_path / "net.onnx")]) == 0
    onnx.checker.check_model(onnx.load(tmp_path / "net.onnx"), full_check=True)
    assert main(["convert", str(tmp_path / "net.onnx"), str(tmp_path / "again.npz")]) == 0
    again, metadata = ck.load(tmp_path / "again.npz", with_metadata=True)
    assert metadata == {"crop": False, "classes": ["a", "b", "c"], "input_shape": [3, 16, 16]}
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(again(x), model(x), rtol=1e-5, atol=1e-6)
    assert "wrote" in capsys.readouterr().out


def test_convert_needs_an_input_shape_the_npz_does_not_record(tmp_path, capsys):
    path = ck.save(small_net(), tmp_path / "bare.npz")
    assert main(["convert", str(path), str(tmp_path / "bare.onnx")]) == 2
    assert "--input-shape" in capsys.readouterr().err
    assert not (tmp_path / "bare.onnx").exists()
    assert (
        main(["convert", str(path), str(tmp_path / "bare.onnx"), "--input-shape", "3,12,12"]) == 0
    )
    assert cnnkit.onnx.load_model(tmp_path / "bare.onnx")[1]["input_shape"] == [3, 12, 12]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["convert", "{npz}", "{dir}/out.txt"], "must end in .npz, .onnx"),
        (["convert", "{npz}", "{dir}/out.onnx", "--input-shape", "3,0,4"], "C,H,W"),
        (["convert", "{dir}/in.pt", "{dir}/out.onnx"], "must end in .npz or .onnx"),
        (["info", "{npz}", "--input-shape", "3x4x4"], "C,H,W"),
    ],
)
def test_usage_errors_exit_2_naming_the_argument(argv, message, saved, tmp_path, capsys):
    _, path = saved
    argv = [a.format(npz=path, dir=tmp_path) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_convert_refuses_to_overwrite_its_input_and_bad_files_exit_1(saved, tmp_path, capsys):
    _, path = saved
    main(["convert", str(path), str(tmp_path / "net.onnx")])
    before = (tmp_path / "net.onnx").read_bytes()
    assert main(["convert", str(tmp_path / "net.onnx"), str(tmp_path / "net.onnx")]) == 1
    assert (tmp_path / "net.onnx").read_bytes() == before
    (tmp_path / "broken.onnx").write_bytes(before[:100])
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "broken.onnx"), str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.onnx" in err and "Traceback" not in err
    assert main(["info", str(tmp_path / "missing.onnx")]) == 1


def test_info_lists_layers_in_forward_order_with_shapes_and_parameter_counts(
    saved, tmp_path, capsys
):
    """Output shapes and parameter counts as a forward pass and the state dict give them."""
    model, path = saved
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    lines = [
        line for line in text.splitlines() if "(" in line and "[" in line and "Input" not in line
    ]
    names = [line.split(" (")[0] for line in lines]
    assert names == ["0", "1", "2", "3.body.0", "3.body.1", "4", "5", "6"]
    assert "[1, 8, 8, 8]" in lines[5] and "[1, 3]" in lines[7]
    assert lines[0].split()[-1] == f"{3 * 8 * 9 + 8:,}"
    assert f"Total params: {sum(p.data.size for p in model.parameters()):,}" in text
    assert "Classes (3): a, b, c" in text


def test_info_on_onnx_model_matches_torchinfo_style_counts(tmp_path, capsys):
    """cnnkit info reads .onnx files: the loaded graph's layers, shapes and counts."""
    model = small_net().eval()
    cnnkit.onnx.save(model, tmp_path / "net.onnx", (3, 16, 16))
    assert main(["info", str(tmp_path / "net.onnx")]) == 0
    text = capsys.readouterr().out
    assert f"Total params: {sum(p.data.size for p in model.parameters()):,}" in text
    assert "(Conv2d)" in text and "[1, 3]" in text


def test_predict_reads_onnx_files_like_npz(saved, tmp_path, capsys):
    """cnnkit predict gives the same ranking for the .onnx as for the .npz."""
    _, path = saved
    main(["convert", str(path), str(tmp_path / "net.onnx")])
    capsys.readouterr()
    assert main(["predict", str(path), "chelsea"]) == 0
    from_npz = capsys.readouterr().out
    assert main(["predict", str(tmp_path / "net.onnx"), "chelsea"]) == 0
    assert capsys.readouterr().out == from_npz


def test_features_reads_onnx_files_with_branches(saved, tmp_path):
    """cnnkit features follows a loaded graph (its Add joins two inputs) and writes pictures."""
    _, path = saved
    main(["convert", str(path), str(tmp_path / "net.onnx")])
    assert (
        main(
            ["features", str(tmp_path / "net.onnx"), "chelsea", "-o", str(tmp_path / "maps"), "-q"]
        )
        == 0
    )
    assert len(list((tmp_path / "maps").glob("*_feature_maps.png"))) == 2
