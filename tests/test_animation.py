"""GIF animations: one frame per output cell, the right windows and values, the right colours."""

import numpy as np
import pytest
from PIL import Image, ImageColor

from cnnkit.plot import animate_conv, animate_pool
from cnnkit.viz import animation


def out_len(size, kernel, stride, padding, dilation):
    """Output length along one axis, written out independently of the code under test."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


LEGEND_AND_CAPTION_PX = 110  # the bottom of each frame, where the legend repeats the colours


def frames_of(path):
    """Every frame of a GIF as an (H, W, 3) uint8 array, legend and caption cut off."""
    with Image.open(path) as gif:
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(np.asarray(gif.convert("RGB"))[:-LEGEND_AND_CAPTION_PX])
        return frames


def count_colour(frame, colour, tol=6):
    """How many pixels of `frame` are within `tol` of a hex colour."""
    rgb = np.array(ImageColor.getrgb(colour))
    return int(np.all(np.abs(frame.astype(int) - rgb) <= tol, axis=-1).sum())


CONV_CASES = [
    # input, kernel, stride, padding, dilation
    (5, 3, 1, 0, 1),
    (5, 3, 2, 1, 1),
    (2, 3, 2, 2, 1),  # padding wider than the input
    (7, 3, 1, 0, 2),
    (6, 2, 3, 0, 1),
    (3, 3, 1, 0, 1),  # one output cell
    ((5, 7), (2, 3), (2, 1), (1, 0), (1, 2)),
]


@pytest.mark.parametrize("size, kernel, stride, padding, dilation", CONV_CASES)
def test_conv_gif_has_one_frame_per_output_cell(tmp_path, size, kernel, stride, padding, dilation):
    """A conv GIF has as many frames as the output has cells."""
    path = animate_conv(
        tmp_path / "conv.gif",
        input_size=size,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        duration=50,
    )
    expected = 1
    for axis in (0, 1):
        expected *= out_len(
            pair(size)[axis],
            pair(kernel)[axis],
            pair(stride)[axis],
            pair(padding)[axis],
            pair(dilation)[axis],
        )
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == expected
        assert gif.info["loop"] == 0
        assert gif.info["duration"] == (50 if expected > 1 else 150)  # the last lasts 3x


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [
        (4, 2, None, 0, 1),
        (5, 3, 2, 1, 1),
        (6, 2, 1, 0, 2),
        ((4, 6), (2, 3), None, 0, 1),
    ],
)
def test_pool_gif_has_one_frame_per_output_cell(tmp_path, size, kernel, stride, padding, dilation):
    """A max-pool GIF has as many frames as the output has cells; stride defaults to the window."""
    path = animate_pool(
        tmp_path / "pool.gif",
        input_size=size,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        duration=50,
    )
    stride = kernel if stride is None else stride
    expected = 1
    for axis in (0, 1):
        expected *= out_len(
            pair(size)[axis],
            pair(kernel)[axis],
            pair(stride)[axis],
            pair(padding)[axis],
            pair(dilation)[axis],
        )
    with Image.open(path) as gif:
        assert gif.n_frames == expected


@pytest.mark.parametrize(
    "stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), ((2, 1), (0, 1), (1, 2))]
)
def test_conv_windows_and_values_match_a_naive_loop(rng, stride, padding, dilation):
    """Each frame's highlighted cells, times the kernel, sum to the value it writes."""
    x = rng.integers(-3, 4, size=(6, 7)).astype(np.float64)
    k = rng.integers(-2, 3, size=(3, 2)).astype(np.float64)
    s, p, d = pair(stride), pair(padding), pair(dilation)
    padded = np.pad(x, ((p[0], p[0]), (p[1], p[1])))
    shape, steps = animation._conv_steps(x, k, s, p, d)
    assert shape == (out_len(6, 3, s[0], p[0], d[0]), out_len(7, 2, s[1], p[1], d[1]))
    assert [(st.row, st.col) for st in steps] == [
        (i, j) for i in range(shape[0]) for j in range(shape[1])
    ]
    for st in steps:
        naive = sum(
            padded[st.row * s[0] + a * d[0], st.col * s[1] + b * d[1]] * k[a, b]
            for a in range(3)
            for b in range(2)
        )
        drawn = sum(padded[r, c] * w for (r, c), w in zip(st.taps, k.ravel()))
        assert st.value == pytest.approx(naive) == pytest.approx(drawn)


def test_pool_highlights_the_maximum_of_each_window(rng):
    """The highlighted cell is in the window and holds the value written."""
    x = rng.permutation(30).reshape(5, 6).astype(np.float64)
    padded = np.pad(x, 1, constant_values=-np.inf)
    shape, steps = animation._pool_steps(x, (3, 3), (2, 2), (1, 1), (1, 1))
    assert shape == (3, 3)
    for st in steps:
        assert st.highlight in st.taps
        assert st.value == padded[st.highlight] == max(padded[t] for t in st.taps)


def test_frames_show_kernel_input_padding_and_output_colours(tmp_path):
    """Frame 1 shows the yellow kernel, green input, grey padding and only the current cell;
    the last frame has every earlier output cell pink."""
    path = animate_conv(tmp_path / "c.gif", input_size=3, kernel_size=3, stride=1, padding=1)
    frames = frames_of(path)
    assert len(frames) == 9
    first, last = frames[0], frames[-1]
    one_cell = count_colour(first, animation.CURRENT_COLOR)
    assert one_cell > 1000  # the current output cell, 60 px square less its text and edge
    # the window at the top-left corner: 4 input cells in yellow, 5 padding cells pale yellow
    assert 3 * one_cell < count_colour(first, animation.KERNEL_COLOR) < 5 * one_cell
    assert 4 * one_cell < count_colour(first, animation.KERNEL_PADDING_COLOR) < 6 * one_cell
    assert 4 * one_cell < count_colour(first, animation.INPUT_COLOR) < 6 * one_cell
    assert 10 * one_cell < count_colour(first, animation.PADDING_COLOR) < 12 * one_cell
    assert count_colour(first, animation.OUTPUT_COLOR) == 0
    # 8 earlier output cells are pink in the last frame
    assert 7 * one_cell < count_colour(last, animation.OUTPUT_COLOR) < 9 * one_cell


def test_no_padding_drawn_without_padding(tmp_path):
    """Without padding there is no grey padding cell."""
    frames = frames_of(animate_conv(tmp_path / "c.gif", input_size=4, kernel_size=3))
    one_cell = count_colour(frames[0], animation.CURRENT_COLOR)
    # (anti-aliased text edges pass through light grey; a padding cell would be a whole cell)
    assert count_colour(frames[0], animation.PADDING_COLOR) < 0.2 * one_cell
    assert count_colour(frames[0], animation.KERNEL_PADDING_COLOR) < 0.2 * one_cell


def test_pool_frames_highlight_the_maximum(tmp_path):
    """Every max-pool frame shows one orange maximum inside the yellow window."""
    for frame in frames_of(animate_pool(tmp_path / "p.gif", input_size=4)):
        one_cell = count_colour(frame, animation.CURRENT_COLOR)
        assert 0.8 * one_cell < count_colour(frame, animation.MAX_COLOR) < 1.2 * one_cell
        assert 2.5 * one_cell < count_colour(frame, animation.KERNEL_COLOR) < 3.5 * one_cell


def test_given_values_and_kernel_set_the_sizes(tmp_path):
    """Explicit values and kernel override input_size and kernel_size."""
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = animate_conv(
        tmp_path / "c.gif", input_size=9, kernel_size=5, values=values, kernel=np.ones((2, 2))
    )
    with Image.open(path) as gif:
        assert gif.n_frames == 2 * 3


def test_same_seed_same_gif(tmp_path):
    """The random input and kernel come from the seed."""
    a = animate_conv(tmp_path / "a.gif", seed=3).read_bytes()
    b = animate_conv(tmp_path / "b.gif", seed=3).read_bytes()
    c = animate_conv(tmp_path / "c.gif", seed=4).read_bytes()
    assert a == b != c


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda p: animate_conv(p, input_size=3, kernel_size=5), ValueError, "kernel_size 5"),
        (lambda p: animate_conv(p, input_size=5, dilation=3), ValueError, "dilation 3"),
        (lambda p: animate_conv(p, stride=0), ValueError, "stride"),
        (lambda p: animate_conv(p, padding=-1), ValueError, "padding"),
        (lambda p: animate_conv(p, input_size=0), ValueError, "input_size"),
        (lambda p: animate_conv(p, kernel_size=2.5), TypeError, "kernel_size"),
        (lambda p: animate_conv(p, values=np.zeros((2, 2, 2))), ValueError, "values"),
        (lambda p: animate_conv(p, kernel=np.full((2, 2), np.nan)), ValueError, "kernel"),
        (lambda p: animate_conv(p, duration=0), ValueError, "duration"),
        (lambda p: animate_pool(p, kernel_size=2, padding=2), ValueError, "padding"),
        (lambda p: animate_pool(p, input_size=4, kernel_size=5), ValueError, "kernel_size"),
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path, call, error, match):
    """Bad sizes raise ValueError/TypeError naming the argument, and write no file."""
    path = tmp_path / "x.gif"
    with pytest.raises(error, match=match):
        call(path)
    assert not path.exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_size=1000), "input_size must be at most 20"),
        (dict(input_size=(4, 99999999)), "input_size must be at most 20"),
        (dict(input_size=10, padding=6), "22 cells across"),
    ],
)
def test_sizes_that_cannot_be_drawn_are_refused(tmp_path, kwargs, match):
    """Refused at once with the limit in the message, before any frame is drawn."""
    with pytest.raises(ValueError, match=match):
        animate_conv(tmp_path / "a.gif", **kwargs)
    with pytest.raises(ValueError, match=match):
        animate_pool(tmp_path / "p.gif", kernel_size=2, **kwargs)
    assert list(tmp_path.iterdir()) == []
