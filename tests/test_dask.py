"""cnnkit.dask on the synchronous scheduler: chunked results equal the in-memory ops.

Every chunking that has bitten chunked filters elsewhere: one block, a ragged last
block, blocks smaller than the kernel's reach, a stride that does not divide the block;
every padding mode (PyTorch's, at the true image edges only), odd and even kernels,
stride and dilation. The in-memory op is the oracle; it is itself tested against
PyTorch and naive loops.
"""

import itertools
import subprocess
import sys

import dask
import dask.array as da
import numpy as np
import pytest

import cnnkit as ck
from cnnkit import dask as ckd
from cnnkit import functional as F
from cnnkit.cli import main
from cnnkit.dask._convolve import _axis_plan

MODES = ("zeros", "reflect", "replicate", "circular")

# (rows, cols) blocks of a 13 x 17 image
CHUNKINGS = {
    "one block": (-1, -1),
    "ragged last block": (5, 7),
    "blocks smaller than the reach": (3, 2),
    "stride does not divide the block": (6, 5),
    "single rows": (1, 17),
}

# (kernel shape, stride, padding): odd, even and oblong kernels; 1x1; stride; asymmetric
CASES = [
    ((3, 3), 1, "same"),
    ((3, 3), 2, 1),
    ((4, 4), 1, "same"),
    ((4, 4), (3, 2), (2, 3)),
    ((2, 5), 1, 0),
    ((2, 5), 4, "same"),
    ((7, 7), 1, 3),
    ((5, 4), 3, "valid"),
    ((1, 1), 2, 0),
    ((3, 3), 1, (5, 1)),
]


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


class Stored:
    """An array-like read region by region (as a Zarr, HDF5 or TIFF array is), not NumPy."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads = []

    def __getitem__(self, index):
        self.reads.append(index)
        return self.array[index].copy()


SOURCES = ("in memory", "stored")


def chunked(array, chunks, source="in memory"):
    """`array` in dask blocks: a NumPy array's blocks, or regions of a stored array-like."""
    chunks = chunks + (-1,) * (array.ndim - 2)
    return da.from_array(Stored(array) if source == "stored" else array, chunks=chunks)


def assert_path(lazy, source):
    """Stored arrays go through the read-your-own-region graph, others through overlap."""
    assert lazy.name.startswith(("filter2d-", "conv2d-")) == (source == "stored"), lazy.name


def assert_same(lazy, expected):
    """Same shape and dtype, and equal up to the rounding of another summation order.

    The in-memory op picks its summation order by the array's shape (an image and its
    blocks may take different paths), so values may differ by a few units in the last
    place; most cases are bit-for-bit equal.
    """
    result = lazy.compute()
    assert result.shape == expected.shape
    assert result.dtype == expected.dtype
    scale = np.abs(expected).max() if expected.size else 1.0
    np.testing.assert_allclose(
        result, expected, rtol=0, atol=16 * np.finfo(expected.dtype).eps * scale
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("channels", [0, 3])
@pytest.mark.parametrize("source", SOURCES)
def test_filter2d_equals_in_memory(mode, chunks, channels, source, rng):
    """Every chunking, padding mode, kernel shape, stride and padding: the in-memory result."""
    shape = (13, 17, channels) if channels else (13, 17)
    image = rng.random(shape, dtype=np.float32)
    for kernel_shape, stride, padding in CASES:
        kernel = rng.standard_normal(kernel_shape).astype(np.float32)
        expected = ck.filter2d(image, kernel, stride=stride, padding=padding, padding_mode=mode)
        lazy = ckd.filter2d(
            chunked(image, chunks, source),
            kernel,
            stride=stride,
            padding=padding,
            padding_mode=mode,
        )
        assert_path(lazy, source)
        assert lazy.shape == expected.shape, (kernel_shape, stride, padding)
        assert_same(lazy, expected)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunks", [(5, 4), (2, 3)])
@pytest.mark.parametrize("source", SOURCES)
def test_conv2d_equals_in_memory(mode, chunks, source, rng):
    """A batch of multi-channel maps with dilation, groups and bias, chunked over N, H and W."""
    x = rng.standard_normal((3, 4, 11, 10)).astype(np.float32)
    for (kh, kw), stride, padding, dilation, groups in [
        ((3, 3), 1, "same", 1, 1),
        ((3, 2), 2, 1, 2, 2),
        ((2, 2), (1, 3), (2, 1), (3, 1), 4),
        ((5, 3), 1, "same", 2, 1),
        ((1, 1), 2, 0, 1, 1),
    ]:
        weight = rng.standard_normal((6 if groups != 4 else 4, 4 // groups, kh, kw))
        weight = weight.astype(np.float32)
        bias = rng.standard_normal(weight.shape[0]).astype(np.float32)
        options = dict(
            stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode
        )
        expected = F.conv2d(x, weight, bias, **options)
        stored = Stored(x) if source == "stored" else x
        lazy = ckd.conv2d(da.from_array(stored, chunks=(2, 2, *chunks)), weight, bias, **options)
        assert_path(lazy, source)
        assert lazy.chunks[0] == (2, 1)  # the batch keeps its blocks
        assert_same(lazy, expected)


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("source", SOURCES)
def test_conv2d_single_sample_and_matrix(rank, source, rng):
    """(C, H, W) and (H, W) inputs give the ranks the in-memory conv2d gives."""
    x = rng.standard_normal((2, 13, 11)[3 - rank :]).astype(np.float64)
    weight = rng.standard_normal((3, 2, 3, 3) if rank == 3 else (3, 3))
    expected = F.conv2d(x, weight, stride=2, padding=1, padding_mode="reflect")
    lazy = ckd.conv2d(
        da.from_array(Stored(x) if source == "stored" else x, chunks=4),
        weight,
        stride=2,
        padding=1,
        padding_mode="reflect",
    )
    assert_path(lazy, source)
    assert_same(lazy, expected)


def test_layer_by_layer_stack(rng):
    """A conv stack applied layer by layer over a chunked image equals it in memory."""
    x = rng.random((1, 3, 40, 36)).astype(np.float32)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    lazy = da.maximum(ckd.conv2d(da.from_array(x, chunks=(1, 3, 9, 10)), w1, padding=1), 0)
    lazy = ckd.conv2d(lazy, w2, stride=2, padding=1, padding_mode="replicate")
    expected = F.conv2d(
        F.relu(F.conv2d(x, w1, padding=1)), w2, stride=2, padding=1, padding_mode="replicate"
    )
    assert_same(lazy, expected)


@pytest.mark.slow
def test_seams_see_the_whole_image():
    """Reflect/circular padding reads the far side of the image, not a block's own edge."""
    image = np.arange(12 * 12, dtype=np.float64).reshape(12, 12)
    kernel = np.zeros((3, 3))
    kernel[0, 0] = 1.0  # out[i, j] = padded[i, j]: the padding itself is the output
    for mode in MODES:
        expected = ck.filter2d(image, kernel, padding=1, padding_mode=mode)
        result = ckd.filter2d(
            da.from_array(image, chunks=4), kernel, padding=1, padding_mode=mode
        ).compute()
        np.testing.assert_array_equal(result, expected)
    # PyTorch's reflect does not repeat the edge: the row above row 0 is row 1
    reflected = ckd.filter2d(
        da.from_array(image, chunks=4), kernel, padding=1, padding_mode="reflect"
    ).compute()
    np.testing.assert_array_equal(reflected[0, 1:], image[1, :-1])


def test_stored_blocks_are_read_with_thin_halos_only():
    """From a store, a task reads at most one block and gets only thin edges of others.

    That is what bounds the memory of a worker by a few blocks, whatever the image size:
    no task ever waits with a neighbour's whole block.
    """
    image = np.random.default_rng(1).random((64, 80), dtype=np.float32)
    stored = Stored(image)
    lazy = ckd.filter2d(
        da.from_array(stored, chunks=16), np.ones((5, 5), np.float32), padding="same"
    )
    assert_path(lazy, "stored")
    graph = dict(lazy.__dask_graph__())
    donors = [key for key in graph if isinstance(key, tuple) and "-halo-" in key[0]]
    assert len(donors) == 4 * 5
    halo = 2  # rows and columns each side of a 5 x 5 window
    for pieces in dask.get(graph, donors):
        for piece in pieces.values():
            assert min(piece.shape) <= halo and max(piece.shape) <= 16 + halo
    stored.reads.clear()
    np.testing.assert_array_equal(
        lazy.compute(), ck.filter2d(image, np.ones((5, 5), np.float32), padding="same")
    )
    assert len(stored.reads) == 2 * 4 * 5  # each block twice: by its donor and by itself
    assert all(s.stop - s.start <= 16 for index in stored.reads for s in index)


@pytest.mark.parametrize("mode", MODES)
def test_zarr_and_tiled_tiff_are_filtered_from_the_store(mode, tmp_path):
    """da.from_zarr and read_image (integer TIFF tiles, luminance) use the store path."""
    import tifffile
    import zarr

    rng = np.random.default_rng(2)
    kernel = rng.standard_normal((5, 4)).astype(np.float32)
    options = dict(stride=(2, 1), padding="same", padding_mode=mode)
    pixels = rng.random((50, 70), dtype=np.float32)
    stored = zarr.open_array(
        str(tmp_path / "in.zarr"), mode="w", shape=pixels.shape, chunks=(16, 24), dtype="f4"
    )
    stored[:] = pixels
    lazy = ckd.filter2d(da.from_zarr(str(tmp_path / "in.zarr")), kernel, **options)
    assert_path(lazy, "stored")
    assert_same(lazy, ck.filter2d(pixels, kernel, **options))

    rgb = (rng.random((70, 90, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", rgb, tile=(32, 32))
    gray = ckd.read_image(tmp_path / "in.tif", chunks=(32, 40), gray=True)
    lazy = ckd.filter2d(gray, kernel, **options)
    assert_path(lazy, "stored")
    in_memory = ck.images.rgb_to_gray(rgb.astype(np.float32) / np.float32(65535))
    assert_same(lazy, ck.filter2d(in_memory, kernel, **options))


def test_output_blocks_follow_input_blocks_with_same_padding():
    """'same' padding at stride 1 gives output blocks equal to the input's (Zarr-ready)."""
    image = da.zeros((100, 90), chunks=(32, 40), dtype=np.float32)
    lazy = ckd.filter2d(image, np.ones((5, 5), np.float32), padding="same", padding_mode="reflect")
    assert lazy.chunks == image.chunks


def test_axis_plan_covers_every_output_once():
    """Each plan cuts the output into non-empty blocks that add up to the output size."""
    for chunks, pads, reach, stride in itertools.product(
        [(5,), (3, 3, 3), (1,) * 9, (4, 1, 6)],
        [(0, 0), (1, 1), (3, 0), (0, 2)],
        [1, 2, 3, 5],
        [1, 2, 3],
    ):
        padded = (pads[0], *chunks, pads[1])
        padded = tuple(c for c in padded if c)
        length = sum(padded)
        if length < reach:
            continue
        plan = _axis_plan(padded, pads, reach, stride)
        assert sum(plan.out_chunks) == (length - reach) // stride + 1
        assert min(plan.out_chunks) >= 1
        assert sum(plan.padded_chunks) == length
        if len(plan.padded_chunks) > 1:
            assert min(plan.padded_chunks) >= max(plan.depth)


@pytest.mark.parametrize("source", SOURCES)
def test_dtypes_follow_the_in_memory_op(source, rng):
    """uint8 images are filtered in float32; a float64 kernel promotes, as in memory."""
    image = (rng.random((10, 12, 3)) * 255).astype(np.uint8)
    for kernel in (np.ones((3, 3), np.float32), ck.kernels.get("sobel_top")):
        expected = ck.filter2d(image, kernel, padding=1)
        lazy = ckd.filter2d(chunked(image, (4, 5), source), kernel, padding=1)
        assert_path(lazy, source)
        assert lazy.dtype == expected.dtype
        assert_same(lazy, expected)
    # a NumPy image is accepted as one block
    assert_same(
        ckd.filter2d(image, np.ones((3, 3), np.float32)),
        ck.filter2d(image, np.ones((3, 3), np.float32)),
    )


BAD_FILTER_ARGUMENTS = [
    dict(stride=0),
    dict(stride=(1, 2, 3)),
    dict(padding=-1),
    dict(padding="full"),
    dict(padding_mode="symmetric"),
    dict(padding=9, padding_mode="reflect"),  # not smaller than the 9-row image
    dict(padding=10, padding_mode="circular"),
    dict(kernel=np.ones((12, 3))),  # larger than the padded image
    dict(kernel=np.ones(3)),
    dict(kernel=np.ones((0, 3))),
    dict(kernel=[[1, "a"]]),
    dict(kernel="sobel"),
    dict(image=np.ones((9,))),
    dict(image=np.ones((0, 4))),
    dict(image=np.array([["a"]])),
    dict(image=np.ones((2, 2, 2, 2))),
]


@pytest.mark.parametrize("arguments", BAD_FILTER_ARGUMENTS, ids=str)
def test_bad_arguments_raise_the_in_memory_errors_at_build_time(arguments):
    """The same exception type and message as ck.filter2d, before anything is computed."""
    arguments = dict(arguments)
    image = arguments.pop("image", np.ones((9, 10), np.float32))
    kernel = arguments.pop("kernel", np.ones((3, 3)))
    with pytest.raises((ValueError, TypeError)) as in_memory:
        ck.filter2d(image, kernel, **arguments)
    lazy_image = da.from_array(image, chunks=2) if image.size else da.from_array(image)
    with pytest.raises(in_memory.type) as lazy:
        ckd.filter2d(lazy_image, kernel, **arguments)
    assert str(lazy.value) == str(in_memory.value)


def test_bad_conv2d_arguments_raise_the_in_memory_errors():
    """conv2d's own checks (groups, weight shape, dilation) with its messages."""
    x = np.ones((1, 4, 8, 8), np.float32)
    for weight, options in [
        (np.ones((3, 4, 3, 3)), dict(groups=2)),
        (np.ones((3, 3, 3, 3)), {}),
        (np.ones((3, 4, 3, 3)), dict(dilation=0)),
        (np.ones((3, 4, 3, 3)), dict(dilation=5)),
        (np.ones((3, 4, 3)), {}),
    ]:
        with pytest.raises((ValueError, TypeError)) as in_memory:
            F.conv2d(x, weight, **options)
        with pytest.raises(in_memory.type) as lazy:
            ckd.conv2d(da.from_array(x, chunks=(1, 2, 3, 3)), weight, **options)
        assert str(lazy.value) == str(in_memory.value)
    with pytest.raises(TypeError, match=r"x must be a dask\.array\.Array or numpy\.ndarray"):
        ckd.conv2d([[1.0]], np.ones((1, 1)))


def test_read_and_write_tiff_and_zarr(tmp_path, rng):
    """TIFF and Zarr round trips, lazily read in any chunks, integers scaled as load_image."""
    import tifffile

    pixels = (rng.random((70, 90, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", pixels, tile=(32, 32))
    image = ckd.read_image(tmp_path / "in.tif", chunks=(40, 50, 3))
    assert image.chunks == ((40, 30), (50, 40), (3,))
    np.testing.assert_array_equal(image.compute(), pixels.astype(np.float32) / np.float32(65535))
    gray = ckd.read_image(tmp_path / "in.tif", gray=True).compute()
    np.testing.assert_allclose(gray, ck.images.rgb_to_gray(image.compute()), rtol=1e-6)

    response = ckd.filter2d(image, np.ones((3, 3), np.float32), padding="same")
    for name in ("out.zarr", "out.tif"):
        ckd.write_image(response, tmp_path / name)
        back = ckd.read_image(tmp_path / name).compute()
        np.testing.assert_array_equal(back, response.compute())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif", "out.zarr"]
    with pytest.raises(FileExistsError):
        ckd.write_image(response, tmp_path / "out.zarr", overwrite=False)
    ckd.write_image(response[::2], tmp_path / "out.zarr")  # replaces the old folder
    assert ckd.read_image(tmp_path / "out.zarr").shape == (35, 90, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif", "out.zarr"]


def test_read_ordinary_picture_is_lazy_and_equals_load_image(tmp_path, rng):
    """A PNG is read by load_image, on compute, with the shape known beforehand."""
    from PIL import Image

    Image.fromarray((rng.random((30, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    image = ckd.read_image(tmp_path / "a.png", chunks=16)
    assert image.shape == (30, 20, 3)
    np.testing.assert_array_equal(image.compute(), ck.load_image(str(tmp_path / "a.png")))
    assert ckd.read_image(tmp_path / "a.png", gray=True).shape == (30, 20)


def test_read_image_errors(tmp_path):
    """Missing files, non-images and unsupported layouts are refused, naming the file."""
    import tifffile

    with pytest.raises(FileNotFoundError, match=r"missing\.tif"):
        ckd.read_image(tmp_path / "missing.tif")
    (tmp_path / "text.tif").write_text("not a tiff")
    with pytest.raises(ValueError, match=r"text\.tif"):
        ckd.read_image(tmp_path / "text.tif")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((4, 5, 6, 7), np.uint8))
    with pytest.raises(ValueError, match=r"stack\.tif"):
        ckd.read_image(tmp_path / "stack.tif")


def test_import_cnnkit_does_not_import_dask():
    """The extra stays optional: `import cnnkit` loads none of its packages."""
    code = (
        "import sys, cnnkit; cnnkit.filter2d; "
        "print(sorted(m for m in ('dask', 'distributed', 'zarr', 'tifffile') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def scan(tmp_path, rng):
    """A tiled 16-bit TIFF and its in-memory float32 image."""
    import tifffile

    pixels = (rng.random((150, 130)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "scan.tif", pixels, tile=(32, 32))
    return tmp_path / "scan.tif", pixels.astype(np.float32) / np.float32(65535)


def test_cli_filter_streams_tiff_to_zarr_and_zarr_to_tiff(scan, tmp_path, capsys):
    """`cnnkit filter --chunks`: TIFF -> Zarr -> TIFF, each the in-memory response."""
    source, image = scan
    kernel = ck.kernels.get("sobel_left").astype(np.float32)
    expected = ck.filter2d(image, kernel, stride=2, padding="same", padding_mode="reflect")
    assert (
        main(
            [
                "filter",
                str(source),
                "-k",
                "sobel_left",
                "-o",
                str(tmp_path / "out.zarr"),
                "--chunks",
                "48,40",
                "--stride",
                "2",
                "--padding",
                "same",
                "--padding-mode",
                "reflect",
            ]
        )
        == 0
    )
    assert "out.zarr" in capsys.readouterr().out
    written = ckd.read_image(tmp_path / "out.zarr")
    assert written.dtype == np.float32
    np.testing.assert_allclose(written.compute(), expected, rtol=0, atol=1e-6)
    # a Zarr input always streams; its response, blurred, to a float32 TIFF
    assert (
        main(
            [
                "filter",
                str(tmp_path / "out.zarr"),
                "-k",
                "box_blur",
                "-o",
                str(tmp_path / "blur.tif"),
                "-q",
            ]
        )
        == 0
    )
    blurred = ck.filter2d(written.compute(), ck.kernels.get("box_blur").astype(np.float32))
    np.testing.assert_allclose(
        ckd.read_image(tmp_path / "blur.tif").compute(), blurred, rtol=0, atol=1e-6
    )


def test_cli_filter_streaming_refusals(scan, tmp_path, capsys):
    """Streaming refuses a picture output and --display as usage errors (exit 2, naming
    the option, before any work), and its own input (exit 1), each with one line."""
    source, _ = scan
    zarr_input = tmp_path / "in.zarr"
    ckd.write_image(ckd.read_image(source), zarr_input)
    cases = [
        (source, ["-o", str(tmp_path / "x.png"), "--chunks", "32"], "-o/--output", "not .png"),
        (zarr_input, ["-o", str(tmp_path / "x.png")], "-o/--output", "not .png"),
        (source, ["-o", str(tmp_path / "x.zarr"), "--display", "abs"], "--display", ""),
        (zarr_input, ["-o", str(tmp_path / "x.tif"), "--display", "clip"], "--display", ""),
    ]
    for image, extra, option, message in cases:
        assert main(["filter", str(image), "-k", "sobel_top", *extra]) == 2
        err = capsys.readouterr().err
        assert f"error: argument {option}: " in err and message in err
        assert len(err.strip().splitlines()) == 1
    assert main(["filter", str(zarr_input), "-k", "sobel_top", "-o", str(zarr_input)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "scan.tif"]
    # --chunks is checked by the parser: a usage error
    assert main(["filter", str(source), "-k", "sobel_top", "-o", "x.zarr", "--chunks", "0"]) == 2


def test_predict_argument_errors(tmp_path):
    """Bad arguments are refused when the bag is built, naming the argument."""
    (tmp_path / "empty").mkdir()
    model = tmp_path / "model.npz"
    for arguments, error, message in [
        (dict(sources=[tmp_path / "a.png"], batch_size=0), ValueError, "batch_size"),
        (dict(sources=[tmp_path / "a.png"], batch_size=2.5), TypeError, "batch_size"),
        (dict(sources=tmp_path / "empty"), ValueError, "holds no files"),
        (dict(sources=[]), ValueError, "at least one image"),
        (dict(sources=5), TypeError, "sources"),
        (dict(sources=[tmp_path / "a.png"], invert="maybe"), ValueError, "invert"),
    ]:
        with pytest.raises(error, match=message):
            ckd.predict(model, **arguments)
    with pytest.raises(TypeError, match="model"):
        ckd.predict(object(), [tmp_path / "a.png"])


def test_predict_tasks_group_batches_in_input_order(tmp_path):
    """Tasks take several batches when there are many; results stay in input order and
    equal those of one model call over everything, bad files included."""
    from PIL import Image

    from cnnkit.models import digits_cnn

    rng = np.random.default_rng(5)
    model = ck.save(
        digits_cnn(rng=0),
        tmp_path / "digits.npz",
        input_shape=(1, 8, 8),
        classes=[str(k) for k in range(10)],
    )
    sources = []
    for k in range(70):
        path = tmp_path / f"{k:02d}.png"
        if k % 23 == 5:
            path.write_bytes(b"not a picture")
        else:
            Image.fromarray((rng.random((12, 10)) * 255).astype(np.uint8)).save(path)
        sources.append(str(path))
    grouped = ckd.predict(model, sources, batch_size=2)
    assert grouped.npartitions == 12  # 35 batches, 3 to a task, at least 16 tasks not possible
    assert ckd.predict(model, sources[:20], batch_size=2).npartitions == 10  # one batch a task
    results = grouped.compute()
    assert [r["source"] for r in results] == sources
    assert sum("error" in r for r in results) == 3
    at_once = ckd.predict(model, sources, batch_size=70).compute()  # one model call
    for row, expected in zip(results, at_once, strict=True):
        assert row.keys() == expected.keys() and row.get("label") == expected.get("label")
        if "probabilities" in row:  # another batch size may sum in another order
            np.testing.assert_allclose(row["probabilities"], expected["probabilities"], 1e-5)
