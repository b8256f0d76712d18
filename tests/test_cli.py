"""The `cnnkit` commands filter, kernels and animate: outputs, exit codes, error lines, safety."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import cnnkit as ck
from cnnkit.cli import main
from cnnkit.commands import _common


@pytest.fixture
def picture(tmp_path):
    """A small RGB PNG with edges in every direction."""
    y, x = np.mgrid[0:24, 0:32]
    rgb = np.stack([(x > 12) * 200, (y > 10) * 180, ((x + y) % 7) * 30], axis=-1)
    path = tmp_path / "input.png"
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def one_error_line(capsys, command):
    """The captured stderr: exactly one line, `cnnkit COMMAND: error: ...`, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cnnkit {command}: error: ")
    return lines[0]


def read_png(path):
    with Image.open(path) as im:
        return np.asarray(im)


def test_kernels_lists_every_kernel_with_its_description(capsys):
    """`cnnkit kernels` prints one line per kernel: name, shape, description."""
    assert main(["kernels"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(ck.kernels.available())
    for line, name in zip(lines, ck.kernels.available()):
        assert line.split()[0] == name
        assert line.endswith(ck.kernels.describe(name))


def test_kernels_shows_one_kernel(capsys):
    """`cnnkit kernels NAME` prints the description and the values."""
    assert main(["kernels", "sobel_left"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sobel_left: " + ck.kernels.describe("sobel_left"))
    assert "[ 2.  0. -2.]" in out


def test_kernels_unknown_name_is_one_line_exit_1(capsys):
    """An unknown kernel exits 1 with one line naming it."""
    assert main(["kernels", "sobel_up"]) == 1
    assert "sobel_up" in one_error_line(capsys, "kernels")


@pytest.mark.parametrize(
    "options, settings, gray, mode",
    [
        ([], {}, False, "robust"),
        (
            ["--stride", "2", "--padding", "1", "--gray"],
            {"stride": 2, "padding": 1},
            True,
            "robust",
        ),
        (["--display", "abs"], {}, False, "abs"),
        (
            ["--display", "signed", "--padding", "same", "--padding-mode", "reflect"],
            {"padding": "same", "padding_mode": "reflect"},
            False,
            "signed",
        ),
        (
            ["--stride", "1,2", "--padding", "0,1", "--display", "minmax"],
            {"stride": (1, 2), "padding": (0, 1)},
            False,
            "minmax",
        ),
    ],
)
def test_filter_png_matches_filter2d(picture, tmp_path, capsys, options, settings, gray, mode):
    """The written picture is filter2d's response, mapped by to_display, in 8 bits."""
    from cnnkit.filtering import to_display

    out = tmp_path / "edges.png"
    assert main(["filter", str(picture), "--kernel", "sobel_top", "-o", str(out), *options]) == 0
    assert str(out) in capsys.readouterr().out
    response = ck.filter2d(
        ck.load_image(str(picture), gray=gray), ck.kernels.get("sobel_top"), **settings
    )
    expected = np.rint(to_display(response, mode=mode) * 255)
    written = read_png(out).astype(np.float64)
    assert written.shape == expected.shape
    assert np.abs(written - expected).max() <= 1


def test_filter_output_shape_follows_stride_and_padding(picture, tmp_path):
    """24x32 input, 3x3 kernel, stride 2, padding 1: (24 + 2 - 3) // 2 + 1 rows."""
    out = tmp_path / "s.png"
    assert (
        main(
            [
                "filter",
                str(picture),
                "-k",
                "sobel_top",
                "--stride",
                "2",
                "--padding",
                "1",
                "-o",
                str(out),
                "--gray",
                "-q",
            ]
        )
        == 0
    )
    assert read_png(out).shape == ((24 + 2 - 3) // 2 + 1, (32 + 2 - 3) // 2 + 1)


def test_filter_identity_writes_the_input_unchanged(picture, tmp_path):
    """identity sums to 1, so auto clips instead of stretching: the input's own pixels."""
    out = tmp_path / "same.png"
    assert (
        main(["filter", str(picture), "-k", "identity", "--padding", "same", "-o", str(out), "-q"])
        == 0
    )
    np.testing.assert_array_equal(read_png(out), read_png(picture))


def test_filter_auto_display_clips_blurs(picture, tmp_path):
    """A blur (weights sum to 1) is shown as its values clipped to [0, 1], not stretched."""
    out = tmp_path / "blur.png"
    assert main(["filter", str(picture), "-k", "box_blur", "-o", str(out), "-q"]) == 0
    response = ck.filter2d(ck.load_image(str(picture)), ck.kernels.get("box_blur"))
    expected = np.rint(np.clip(response, 0, 1) * 255)
    assert np.abs(read_png(out).astype(np.float64) - expected).max() <= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_display_reads_built_kernels_by_their_exact_sum(dtype):
    """Built kernels miss 0 or 1 by their entries' rounding (a float32 LoG by ~4e-9):
    auto still reads an edge detector as one and a blur as one; other sums stretch."""
    from cnnkit.commands.filter import display_mode

    log = ck.kernels.laplacian_of_gaussian(9, 1.4, dtype=dtype)
    assert display_mode(log) == "robust"
    assert display_mode(ck.kernels.box(5, dtype=dtype)) == "clip"
    assert display_mode(ck.kernels.gaussian(7, 2.0, dtype=dtype)) == "clip"
    assert display_mode(2 * ck.kernels.box(3, dtype=dtype)) == "minmax"
    assert display_mode(log + dtype(1e-3)) == "minmax"
    assert display_mode(np.array([[1, 2], [3, 4]])) == "minmax"


@pytest.mark.slow
def test_filter_edges_on_a_photo_are_readable(tmp_path):
    """sobel_top on the cat: robust scaling puts the 99.5th percentile at white, not the max.

    With |r| / max|r| the picture was nearly black (mean 0.048); robust is several times
    brighter, and still black where the kernel sees nothing.
    """
    out = tmp_path / "edges.png"
    assert main(["filter", "chelsea", "-k", "sobel_top", "-o", str(out), "-q"]) == 0
    written = read_png(out).astype(np.float64) / 255
    response = np.abs(ck.filter2d(ck.load_image("chelsea"), ck.kernels.get("sobel_top")))
    by_max = response / response.max()
    assert written.mean() > 3 * by_max.mean()
    assert np.mean(written >= 254 / 255) == pytest.approx(0.005, abs=0.002)
    assert np.isclose(written[response < 1e-6], 0).all()


def test_filter_refuses_to_overwrite_its_input(picture, capsys):
    """Writing over the input file is refused; the input keeps its bytes and mtime."""
    before = picture.read_bytes(), os.stat(picture).st_mtime_ns
    assert main(["filter", str(picture), "--kernel", "sobel_top", "-o", str(picture)]) == 1
    assert "refusing to overwrite the input" in one_error_line(capsys, "filter")
    assert (picture.read_bytes(), os.stat(picture).st_mtime_ns) == before


def test_filter_refuses_input_reached_by_another_path(picture, capsys):
    """A different spelling of the same file is still the input."""
    other = picture.parent / "." / picture.name
    assert main(["filter", str(picture), "-k", "sobel_top", "-o", str(other)]) == 1
    one_error_line(capsys, "filter")


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--kernel", "nope"], 1),
        (["--kernel", "sobel_top", "--padding", "9"], 0),
        (["--kernel", "sobel_top", "--stride", "0"], 2),
        (["--kernel", "sobel_top", "--stride", "two"], 2),
        (["--kernel", "sobel_top", "--padding", "-1"], 2),
        (["--kernel", "sobel_top", "--padding-mode", "mirror"], 2),
        (["--kernel", "sobel_top", "--padding", "30", "--padding-mode", "reflect"], 1),
        ([], 2),
    ],
)
def test_filter_bad_arguments(picture, tmp_path, capsys, argv, code):
    """Usage errors exit 2; other failures exit 1 with one line; no traceback."""
    out = tmp_path / "out.png"
    assert main(["filter", str(picture), "-o", str(out), *argv]) == code
    if code == 1:
        one_error_line(capsys, "filter")
        assert not out.exists()
    if code == 2:
        err = capsys.readouterr().err
        assert "Traceback" not in err and "usage: cnnkit filter" in err


@pytest.mark.parametrize("output", ["out.txt", "out"])
def test_filter_output_must_be_a_picture(picture, tmp_path, capsys, output):
    """An output without a picture suffix is a usage error."""
    assert main(["filter", str(picture), "-k", "sobel_top", "-o", str(tmp_path / output)]) == 2
    assert "must end in" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["missing.png", "no_such_sample", "ftp://example.com/a.png"])
def test_filter_bad_source_is_one_line(tmp_path, capsys, monkeypatch, source):
    """A missing file, unknown sample or bad URL scheme exits 1 with one line."""
    monkeypatch.chdir(tmp_path)
    assert main(["filter", source, "-k", "sobel_top", "-o", "out.png"]) == 1
    one_error_line(capsys, "filter")
    assert os.listdir(tmp_path) == []


def test_filter_writes_atomically_and_replaces_an_old_output(picture, tmp_path):
    """An existing output is replaced whole; no temporary file is left behind."""
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    assert main(["filter", str(picture), "-k", "sobel_left", "-o", str(out), "-q"]) == 0
    assert read_png(out).shape == (22, 30, 3)
    assert sorted(os.listdir(tmp_path)) == ["input.png", "out.png"]


def test_atomic_path_leaves_the_old_file_on_failure(tmp_path):
    """If writing fails, the destination keeps its old content and the temporary is removed."""
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), _common.atomic_path(out) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".png"
        temporary.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert out.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_progress_is_off_when_not_a_terminal():
    """Progress bars are disabled under pytest (stderr is not a TTY) and with quiet."""
    assert _common.progress(range(3)).disable
    assert _common.progress(range(3), quiet=True).disable


@pytest.mark.parametrize(
    "argv, frames",
    [
        ([], 9),
        (["--input-size", "5", "--stride", "2", "--padding", "1"], 9),
        (["--input-size", "7", "--dilation", "2"], 9),
        (["--input-size", "4,6", "--kernel-size", "2,3"], 12),
        (["--op", "maxpool"], 4),
        (
            [
                "--op",
                "maxpool",
                "--input-size",
                "5",
                "--kernel-size",
                "3",
                "--stride",
                "2",
                "--padding",
                "1",
            ],
            9,
        ),
    ],
)
def test_animate_writes_one_frame_per_output_cell(tmp_path, capsys, argv, frames):
    """`cnnkit animate` writes a GIF with one frame per output cell and says so."""
    out = tmp_path / "a.gif"
    assert main(["animate", "-o", str(out), "--duration", "20", *argv]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == frames
    assert f"{frames} frames" in capsys.readouterr().out
    assert os.listdir(tmp_path) == ["a.gif"]


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--kernel-size", "9"], 1),
        (["--op", "maxpool", "--padding", "2"], 1),
        (["--stride", "0"], 2),
        (["--op", "avgpool"], 2),
        (["--input-size", "3,3,3"], 2),
    ],
)
def test_animate_bad_arguments(tmp_path, capsys, argv, code):
    """Impossible sizes exit 1 with one line; malformed ones are usage errors (2)."""
    out = tmp_path / "a.gif"
    assert main(["animate", "-o", str(out), *argv]) == code
    if code == 1:
        one_error_line(capsys, "animate")
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_animate_needs_a_gif_name(tmp_path, capsys):
    """The output must end in .gif."""
    assert main(["animate", "-o", str(tmp_path / "a.png")]) == 2
    assert "must end in .gif" in capsys.readouterr().err


def run_cnnkit(*args, cwd):
    """Run `python -m cnnkit ARGS` in a fresh interpreter."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.mark.slow
def test_subprocess_filter_and_animate(picture, tmp_path):
    """Real runs of `python -m cnnkit` write their outputs and exit 0."""
    done = run_cnnkit(
        "filter", str(picture), "--kernel", "laplacian", "-o", "lap.png", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert read_png(tmp_path / "lap.png").shape == (22, 30, 3)
    done = run_cnnkit("animate", "--op", "maxpool", "-o", "pool.gif", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    with Image.open(tmp_path / "pool.gif") as gif:
        assert gif.n_frames == 4


@pytest.mark.slow
def test_subprocess_errors_are_one_line(picture, tmp_path):
    """Real runs: exit 1 with one stderr line and the input untouched; usage errors exit 2."""
    before = picture.read_bytes(), os.stat(picture).st_mtime_ns
    done = run_cnnkit(
        "filter", str(picture), "--kernel", "sobel_top", "-o", str(picture), cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert (picture.read_bytes(), os.stat(picture).st_mtime_ns) == before
    done = run_cnnkit("animate", "--stride", "x", "-o", "a.gif", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert not (tmp_path / "a.gif").exists()


# -- usage errors exit 2 before any work, naming the option (issue 9 items 5 and 16) ------


@pytest.mark.parametrize(
    "argv, option, words",
    [
        (["animate", "--input-size", "1000"], "--input-size", "at most 20"),
        (["animate", "--padding", "50"], "--padding", "at most 20"),
        (["animate", "--input-size", "15", "--padding", "5"], "--padding", "25 cells"),
        (["animate", "--seed", "-1"], "--seed", "must be >= 0"),
        (["animate", "--duration", "0"], "--duration", "must be >= 10"),
        (["animate", "--duration", "99999999999"], "--duration", "must be <= 60000"),
        (
            ["filter", "PICTURE", "-k", "sobel_top", "--padding", "99999999"],
            "--padding",
            "must be <= 100",
        ),
        (
            ["filter", "PICTURE", "-k", "sobel_top", "--padding", "-1,0"],
            "--padding",
            "must be >= 0",
        ),
        (["filter", "PICTURE", "-k", "sobel_top", "--padding=-1,0"], "--padding", "must be >= 0"),
        (
            ["filter", "PICTURE", "-k", "sobel_top", "--stride", "99999999999"],
            "--stride",
            "must be <=",
        ),
    ],
)
def test_usage_errors_exit_2_naming_the_option(picture, tmp_path, capsys, argv, option, words):
    out = tmp_path / ("a.gif" if argv[0] == "animate" else "out.png")
    argv = [str(picture) if a == "PICTURE" else a for a in argv]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert option in err and words in err and "Traceback" not in err
    assert not out.exists()


def test_outputs_are_checked_before_the_work(picture, tmp_path, capsys):
    """An output that cannot be written is refused at once, naming the user's path."""
    (tmp_path / "file").write_text("x")
    for argv in (["filter", str(picture), "-k", "sobel_top"], ["animate"]):
        target = tmp_path / "file" / ("out.gif" if argv[0] == "animate" else "out.png")
        assert main([*argv, "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert str(target) in err and "-o/--output" in err and ".tmp" not in err


def test_filter_memory_follows_the_image(tmp_path, capsys):
    """A large picture costs a few float32 copies of itself, not float64 temporaries."""
    import tracemalloc

    pixels = np.zeros((1200, 1500, 3), np.uint8)
    pixels[::5] = 255
    source = tmp_path / "big.png"
    Image.fromarray(pixels).save(source)
    image_bytes = pixels.size * 4  # as float32
    tracemalloc.start()
    try:
        assert (
            main(["filter", str(source), "-k", "sobel_top", "-o", str(tmp_path / "o.png"), "-q"])
            == 0
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3.5 * image_bytes, f"peak {peak / image_bytes:.1f} x the float32 image"
