"""`cnnkit tour` end to end: the printed examples, every picture, index.html, and its safety."""

import contextlib
import io
import os
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main


class _Figures(HTMLParser):
    """Collects each <img src> and the text of each <figcaption>."""

    def __init__(self):
        super().__init__()
        self.sources, self.captions, self._in_caption = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        elif tag == "figcaption":
            self._in_caption = True
            self.captions.append("")

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self.captions[-1] += data


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """Run the tour once into a fresh folder; return (folder, exit code, stdout, stderr)."""
    out = tmp_path_factory.mktemp("tour") / "out"  # not there yet: the tour creates it
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["tour", "--out", str(out)])
    return out, code, stdout.getvalue(), stderr.getvalue()


@pytest.mark.slow
def test_tour_exits_0_quietly(tour):
    """The tour succeeds and writes nothing to stderr."""
    _, code, _, err = tour
    assert code == 0
    assert err == ""


@pytest.mark.slow
def test_tour_prints_the_small_matrix_examples_with_shapes(tour):
    """Convolution at stride 1 and 3, max pool, global average pool, softmax, sigmoid."""
    _, _, out, _ = tour
    assert "image shape (300, 451, 3)" in out
    assert "ck.to_tensor(image) (3, 300, 451)" in out  # the layout rule, with this image
    assert "ck.pool_image(image, 2).shape = (150, 225, 3)" in out
    assert "matrix  shape (6, 6):" in out
    assert "conv2d(matrix, kernel, stride=1)  shape (4, 4):" in out
    assert "conv2d(matrix, kernel, stride=3)  shape (2, 2):" in out
    assert "max_pool2d(matrix, kernel_size=2)  shape (2, 2):" in out
    assert re.search(r"global_avg_pool2d\(matrix\) = [\d.]+  shape \(\)", out)
    assert "softmax(x)" in out and "sigmoid(x)" in out and "sum = 1.0000" in out


@pytest.mark.slow
def test_tour_printed_numbers_are_right(tour):
    """The printed stride-3 output is the naive convolution of the printed matrix."""
    _, _, out, _ = tour

    def block(label):
        text = out.split(label, 1)[1].split(":\n", 1)[1]
        rows = []
        for line in text.splitlines():
            numbers = re.findall(r"-?\d+(?:\.\d+)?", line)
            if not line.strip().startswith("[") and not line.startswith(" ["):
                break
            rows.append([float(v) for v in numbers])
        return np.array(rows)

    matrix = block("matrix  shape (6, 6)")
    kernel = block("kernel (")
    stride3 = block("conv2d(matrix, kernel, stride=3)")
    naive = [
        [(matrix[3 * i : 3 * i + 3, 3 * j : 3 * j + 3] * kernel).sum() for j in range(2)]
        for i in range(2)
    ]
    np.testing.assert_array_equal(stride3, naive)


@pytest.mark.slow
def test_every_picture_in_index_html_exists_and_opens(tour):
    """Each <img> of index.html is a readable image file in the folder, with a caption."""
    folder, _, _, _ = tour
    page = _Figures()
    page.feed((folder / "index.html").read_text(encoding="utf-8"))
    assert len(page.sources) >= 13
    assert len(page.captions) == len(page.sources)
    assert all(len(caption) > 40 for caption in page.captions)
    for source in page.sources:
        path = folder / source
        assert path.is_file(), source
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert min(image.size) >= 200
    # and every file in the folder is shown on the page (no leftovers, no temporaries)
    assert sorted(os.listdir(folder)) == sorted([*page.sources, "index.html"])


@pytest.mark.slow
def test_tour_covers_the_walkthrough(tour):
    """Image, channels, Sobel, stride and padding, ReLU, max pooling, animations."""
    folder, _, _, _ = tour
    names = os.listdir(folder)
    for part in [
        "image",
        "channels",
        "sobel_top",
        "sobel_directions",
        "stride_padding",
        "relu",
        "max_pool.png",
        "conv_stride1.gif",
        "max_pool.gif",
    ]:
        assert any(part in name for name in names), part


@pytest.mark.slow
def test_tour_animations_match_the_printed_examples(tour):
    """The 6x6 matrix at stride 1 gives 16 frames, at stride 3 gives 4; the 4x4 pool 4."""
    folder, _, _, _ = tour
    frames = {}
    for name in os.listdir(folder):
        if name.endswith(".gif"):
            with Image.open(folder / name) as gif:
                frames[name] = gif.n_frames
    assert frames["09_conv_stride1.gif"] == 16
    assert frames["10_conv_stride3.gif"] == 4
    assert frames["11_conv_padding1_stride2.gif"] == 9
    assert frames["12_conv_dilation2.gif"] == 9
    assert frames["13_max_pool.gif"] == 4


@pytest.mark.slow
def test_channels_picture_is_coloured(tour):
    """The channels picture holds strong red, green and blue pixels."""
    folder, _, _, _ = tour
    with Image.open(folder / "02_channels.png") as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert ((r > 150) & (g < 40) & (b < 40)).sum() > 10_000
    assert ((g > 150) & (r < 40) & (b < 40)).sum() > 10_000
    assert ((b > 100) & (r < 40) & (g < 40)).sum() > 10_000  # the cat is not very blue


def test_tour_refuses_to_overwrite_its_input_image(tmp_path, capsys):
    """An --image inside --out with an output's name is refused before anything is written."""
    out = tmp_path / "out"
    out.mkdir()
    source = out / "01_image.png"
    Image.fromarray(np.full((40, 50, 3), 90, dtype=np.uint8)).save(source)
    before = source.read_bytes(), os.stat(source).st_mtime_ns
    assert main(["tour", "--image", str(source), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to overwrite the input" in err
    assert (source.read_bytes(), os.stat(source).st_mtime_ns) == before
    assert os.listdir(out) == ["01_image.png"]


@pytest.mark.parametrize("argv", [["--image", "no_such_picture.png"], ["--image", "nosample"]])
def test_tour_bad_image_is_one_line(tmp_path, capsys, argv):
    """A missing image exits 1 with one line and writes nothing."""
    out = tmp_path / "out"
    assert main(["tour", *argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnkit tour: error: ")
    assert not out.exists()


def test_tour_out_must_be_a_folder(tmp_path, capsys):
    """--out naming a file is a usage error."""
    path = tmp_path / "file.txt"
    path.write_text("keep")
    assert main(["tour", "--out", str(path)]) == 2
    assert "--out" in capsys.readouterr().err
    assert path.read_text() == "keep"


def test_tour_keeps_an_index_html_it_did_not_write(tmp_path, capsys):
    """Someone's index.html is replaced only with --force (exit 2 before any work)."""
    (tmp_path / "index.html").write_text("<p>my site</p>")
    assert main(["tour", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "index.html" in err
    assert (tmp_path / "index.html").read_text() == "<p>my site</p>"
    assert os.listdir(tmp_path) == ["index.html"]


@pytest.mark.slow
def test_tour_quiet_prints_one_line_and_replaces_its_own_tour(tmp_path, capsys):
    """-q prints only where the pictures went; a second tour into the folder is fine."""
    out = tmp_path / "out"
    for _ in range(2):
        assert main(["tour", "--out", str(out), "-q"]) == 0
        printed = capsys.readouterr().out
        assert printed.count("\n") == 1 and printed.startswith("wrote ")
    assert "Convolution by hand" in (out / "index.html").read_text()  # the page keeps it


def test_large_images_are_shrunk_for_the_pictures(rng):
    """A photo larger than MAX_SIDE keeps its aspect and mean, in float32 [0, 1]."""
    from cnnkit.commands.tour import MAX_SIDE, _shrink

    image = rng.random((2 * MAX_SIDE, MAX_SIDE, 3)).astype(np.float32)
    small = _shrink(image)
    assert small.shape == (MAX_SIDE, MAX_SIDE // 2, 3) and small.dtype == np.float32
    assert abs(small.mean() - image.mean()) < 1e-3
    assert small.min() >= 0 and small.max() <= 1
    assert _shrink(image[:10, :20]).shape == (10, 20, 3)  # small images stay as they are
    assert _shrink(image[..., 0]).shape == (MAX_SIDE, MAX_SIDE // 2)
