"""Figures of cnnkit.plot, checked by their pixels, titles and data rather than 'no exception'."""

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import plot


def render(fig) -> np.ndarray:
    """The figure's pixels, (H, W, 4) uint8, row 0 at the top."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def image_axes(fig):
    """The axes holding pictures, without colour bars, in drawing order."""
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def pixel_at(pixels, ax, x, y):
    """RGB of the figure pixel at data coordinates (x, y) of `ax`."""
    dx, dy = ax.transData.transform((x, y))
    return pixels[int(pixels.shape[0] - dy), int(dx), :3].astype(int)


def centre_of(pixels, ax):
    """RGB at the centre of an axes' box."""
    box = ax.get_window_extent()
    return pixels[int(pixels.shape[0] - (box.y0 + box.y1) / 2), int((box.x0 + box.x1) / 2), :3]


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    """No function registers a figure with pyplot (nothing leaks, nothing pops up)."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def test_red_channel_of_a_pure_red_image_is_red():
    """The red panel of a pure-red image is red; the green and blue panels are black."""
    image = np.zeros((12, 16, 3), dtype=np.float32)
    image[..., 0] = 1.0
    fig = plot.show_channels(image)
    red, green, blue = image_axes(fig)
    assert red.get_title().startswith("red") and blue.get_title().startswith("blue")
    pixels = render(fig)
    r, g, b = centre_of(pixels, red).astype(int)
    assert r > 230 and g < 25 and b < 25
    assert centre_of(pixels, green).max() < 25
    assert centre_of(pixels, blue).max() < 25


def test_each_channel_in_its_own_colour_uint8():
    """A uint8 pure-green image: the green panel is green, each panel has a colour bar."""
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    image[..., 1] = 255
    fig = plot.show_channels(image)
    assert len(fig.axes) == 6  # three panels, three colour bars
    pixels = render(fig)
    _, green, _ = image_axes(fig)
    r, g, b = centre_of(pixels, green).astype(int)
    assert g > 230 and r < 25 and b < 25


def test_show_image_draws_the_pixels():
    """The centre of the drawn image has the image's colour; the title gives the shape."""
    image = np.empty((20, 30, 3), dtype=np.float32)
    image[:] = (0.2, 0.4, 0.6)
    fig = plot.show_image(image)
    (ax,) = image_axes(fig)
    assert ax.get_title() == "image, shape (20, 30, 3)"
    rgb = centre_of(render(fig), ax).astype(int)
    np.testing.assert_allclose(rgb, [51, 102, 153], atol=2)


def test_show_image_gray_has_a_colour_bar_and_custom_title():
    """A 2-D image is drawn in gray with a colour bar."""
    fig = plot.show_image(np.full((5, 5), 0.5), title="gray")
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "gray"
    rgb = centre_of(render(fig), fig.axes[0]).astype(int)
    assert abs(rgb[0] - 128) <= 2 and rgb[0] == rgb[1] == rgb[2]


def test_show_kernel_writes_values_and_colours_by_sign():
    """Each weight is written in its cell; positive cells are red, negative blue, 0 white."""
    kernel = ck.kernels.get("sobel_top")
    fig = plot.show_kernel(kernel)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # heatmap and colour bar
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    minus = "\u2212"  # a real minus sign, as in the animations
    assert texts == {
        (r, c): str(int(kernel[r, c])).replace("-", minus) for r in range(3) for c in range(3)
    }
    pixels = render(fig)
    r, _, b = pixel_at(pixels, ax, 0.0, -0.3)  # the +1 cell, away from its text
    assert r > b + 40
    r, _, b = pixel_at(pixels, ax, 1.0, 1.7)  # the -2 cell
    assert b > r + 40
    assert pixel_at(pixels, ax, 0.0, 0.7).min() > 225  # a 0 cell is (near) white


def test_show_kernel_accepts_a_conv_weight_and_titles():
    """A (1, 1, kh, kw) weight is shown as its (kh, kw) kernel."""
    fig = plot.show_kernel(np.ones((1, 1, 2, 4)), title="ones")
    assert fig.axes[0].get_title() == "ones"
    assert fig.axes[0].images[0].get_array().shape == (2, 4)


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.zeros((0, 3))])
def test_show_kernel_rejects_bad_shapes(bad):
    """Kernels that are not matrices are refused with the argument named."""
    with pytest.raises(ValueError, match="kernel"):
        plot.show_kernel(bad)


def test_show_kernels_grid_and_shared_scale(rng):
    """An (O, C, kh, kw) bank gives O x C panels on one colour scale."""
    weight = rng.normal(size=(5, 3, 3, 3))
    fig = plot.show_kernels(weight)
    panels = image_axes(fig)
    assert len(panels) == 15
    limits = {im.get_clim() for ax in panels for im in ax.images}
    assert len(limits) == 1
    low, high = limits.pop()
    assert low == -high == -np.abs(weight).max()
    np.testing.assert_array_equal(panels[3].images[0].get_array(), weight[3, 0])
    assert "(5, 3, 3, 3)" in fig.get_suptitle()


def test_show_feature_maps_titles_colour_bars_and_shapes(rng):
    """A (C, H, W) stack gives C titled panels, each with a colour bar."""
    maps = rng.normal(size=(3, 6, 7))
    fig = plot.show_feature_maps(maps, titles=["a", "b", "c"], title="maps")
    panels = image_axes(fig)
    assert [ax.get_title() for ax in panels] == ["a", "b", "c"]
    assert len(fig.axes) == 6
    assert fig.get_suptitle() == "maps"
    for ax, m in zip(panels, maps):
        np.testing.assert_array_equal(ax.images[0].get_array(), m)
        low, high = ax.images[0].get_clim()
        assert low == -high  # signed maps are centred on 0


def test_show_feature_maps_default_titles_batch_and_many(rng):
    """(1, C, H, W) is one sample; more than 16 maps share one colour bar."""
    fig = plot.show_feature_maps(rng.random((1, 2, 4, 4)))
    assert [ax.get_title() for ax in image_axes(fig)] == ["map 0 (4\u00d74)", "map 1 (4\u00d74)"]
    maps = rng.random((20, 4, 4))
    fig = plot.show_feature_maps(maps, ncols=5)
    (ax,) = image_axes(fig)  # one picture of 4 x 5 tiles, drawn at once, and a colour bar
    assert len(fig.axes) == 2
    mosaic = ax.images[0].get_array()
    x, y = next(t.get_position() for t in ax.texts if t.get_text() == "map 7 (4\u00d74)")
    top, left = int(np.ceil(y)), round(x - 1.5)
    np.testing.assert_allclose(mosaic[top : top + 4, left : left + 4], maps[7], rtol=1e-6)


def test_show_feature_maps_same_scale_makes_smaller_maps_smaller():
    """With same_scale, a pooled map occupies a quarter of the area of its input."""
    big, small = np.ones((8, 8)), np.ones((4, 4))
    fig = plot.show_feature_maps([big, small], same_scale=True)
    first, second = image_axes(fig)
    assert first.get_xlim() == second.get_xlim() == (-0.5, 7.5)


@pytest.mark.parametrize("titles", [["only one"], "ab"])
def test_show_feature_maps_rejects_wrong_titles(titles):
    """The titles must be one string per map."""
    with pytest.raises(ValueError, match="titles"):
        plot.show_feature_maps(np.zeros((2, 3, 3)), titles=titles)


def test_show_history_plots_every_curve():
    """Training and validation curves share a panel per metric, epochs counted from 1."""
    history = {
        "loss": [1.0, 0.6, 0.4],
        "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [1.1, 0.5, 0.7],
        "val_accuracy": [0.4, 0.8, 0.75],
    }
    fig = plot.show_history(history)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_title() == "loss" and acc_ax.get_title() == "accuracy"
    train, val = loss_ax.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(train.get_ydata(), history["loss"])
    np.testing.assert_array_equal(val.get_ydata(), history["val_loss"])
    assert val.get_label() == "validation"
    (best,) = loss_ax.collections  # the lowest validation loss, epoch 2
    np.testing.assert_array_equal(best.get_offsets(), [[2, 0.5]])
    (best,) = acc_ax.collections  # the highest validation accuracy, epoch 2
    np.testing.assert_array_equal(best.get_offsets(), [[2, 0.8]])
    assert best.get_label() == "best: 80 % (epoch 2)"
    assert loss_ax.collections[0].get_label() == "best: 0.5 (epoch 2)"


def test_show_history_names_the_held_out_set():
    """cnnkit train evaluates on the test set: its curves say "test", a perfect score 100 %."""
    fig = plot.show_history(
        {"accuracy": [0.9, 0.99], "val_accuracy": [0.95, 1.0]}, val_label="test"
    )
    (ax,) = fig.axes
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["training", "test", "best: 100 % (epoch 2)"]


@pytest.mark.parametrize(
    "history, error",
    [
        ([1, 2], TypeError),
        ({"loss": "abc"}, TypeError),
        ({"loss": []}, ValueError),
        ({"loss": [1, None]}, TypeError),
    ],
)
def test_show_history_rejects_bad_input(history, error):
    """A history must be a dict of lists of numbers with at least one value."""
    with pytest.raises(error, match="history"):
        plot.show_history(history)


def test_show_confusion_matrix_counts_and_accuracy():
    """Counts in the cells, labels on both axes, accuracy in the title."""
    matrix = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 9]])
    fig = plot.show_confusion_matrix(matrix, labels=["cat", "dog", "bird"])
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in matrix.ravel())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "bird"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "85.0%" in ax.get_title() and "20 samples" in ax.get_title()
    pixels = render(fig)
    assert pixel_at(pixels, ax, 2.3, 2.3).sum() < pixel_at(pixels, ax, 2.3, 0.3).sum()


@pytest.mark.parametrize(
    "matrix, labels", [(np.ones((2, 3)), None), (np.ones((2, 2)), ["a"]), (-np.ones((2, 2)), None)]
)
def test_show_confusion_matrix_rejects_bad_input(matrix, labels):
    """Non-square or negative matrices and wrong label counts are refused."""
    with pytest.raises(ValueError, match=r"matrix|labels"):
        plot.show_confusion_matrix(matrix, labels=labels)


def _expected(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


@pytest.mark.parametrize("channels", [None, 3])
def test_compare_stride_padding_titles_give_output_shapes(rng, channels):
    """Each panel is titled with its setting and the output shape, at one pixel scale."""
    shape = (17, 23) if channels is None else (17, 23, channels)
    image = rng.random(shape).astype(np.float32)
    configs = [(1, 0), {"stride": 2, "padding": 1}, {"stride": 3, "padding": 0}]
    fig = plot.compare_stride_padding(image, np.ones((3, 3)), configs)
    panels = image_axes(fig)
    assert len(panels) == 4
    assert panels[0].get_title().splitlines()[-1] == f"shape {shape}"
    for ax, (stride, padding) in zip(panels[1:], [(1, 0), (2, 1), (3, 0)]):
        out = (_expected(17, 3, stride, padding), _expected(23, 3, stride, padding))
        head, tail = ax.get_title().splitlines()
        assert head == f"stride {stride}, padding {padding}"
        assert tail.startswith(f"output shape ({out[0]}, {out[1]}")
        assert ax.images[0].get_array().shape[:2] == out
        low, high = ax.get_xlim()
        assert (low, high) == panels[0].get_xlim() and low < -0.5 and high > 22.5


def test_zero_padding_edge_lines_are_visible():
    """A flat photo-sized image, sobel_top, padding 1: the blue top and red bottom rows show.

    They are the only non-zero rows (black padding next to a bright picture); they used to
    hide under the axes' frame.
    """
    image = np.full((300, 451), 0.8, dtype=np.float32)
    fig = plot.compare_stride_padding(image, ck.kernels.get("sobel_top"), [(1, 1)])
    ax = image_axes(fig)[1]
    assert not any(side.get_visible() for side in ax.spines.values())
    pixels = render(fig)
    r, _, b = pixel_at(pixels, ax, 225.0, 0.0)
    assert b > r + 60  # blue: black above a brighter picture
    r, _, b = pixel_at(pixels, ax, 225.0, 299.0)
    assert r > b + 60  # red: a brighter picture above black
    r, g, b = pixel_at(pixels, ax, 225.0, 150.0)
    assert min(r, g, b) > 240  # white inside: a flat picture has no edges


def test_compare_stride_padding_rejects_bad_configs():
    """Settings must be (stride, padding) pairs or dicts of known keys."""
    with pytest.raises(ValueError, match="configs"):
        plot.compare_stride_padding(np.ones((5, 5)), np.ones((3, 3)), [])
    with pytest.raises(ValueError, match="configs\\[0\\]"):
        plot.compare_stride_padding(np.ones((5, 5)), np.ones((3, 3)), [{"strides": 2}])
    with pytest.raises(TypeError, match="configs\\[1\\]"):
        plot.compare_stride_padding(np.ones((5, 5)), np.ones((3, 3)), [(1, 0), 3])


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: plot.show_image("cat.png"), TypeError, "image"),
        (lambda: plot.show_image(np.zeros((4, 4, 5))), ValueError, "image"),
        (lambda: plot.show_channels(np.zeros((4,))), ValueError, "image"),
        (lambda: plot.show_kernels(np.zeros((2, 2))), ValueError, "weight"),
        (lambda: plot.show_feature_maps("maps"), TypeError, "maps"),
        (lambda: plot.show_feature_maps(np.zeros((2, 3, 3)), ncols=0), ValueError, "ncols"),
    ],
)
def test_bad_arguments_name_the_argument(call, error, name):
    """Bad arguments raise ValueError or TypeError naming the argument."""
    with pytest.raises(error, match=name):
        call()


def test_import_cnnkit_does_not_import_matplotlib():
    """Plotting is imported on first use: `import cnnkit` stays NumPy-only."""
    import subprocess
    import sys

    code = "import sys, cnnkit; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_gray_alpha_and_rgba_images_are_drawn(channels):
    """(H, W, 1), gray + alpha and RGBA images draw; opaque white stays white."""
    image = np.ones((8, 8, channels), dtype=np.float32)
    fig = plot.show_image(image)
    assert centre_of(render(fig), image_axes(fig)[0]).min() > 245
    fig = plot.compare_stride_padding(image, np.ones((3, 3)), [(2, 1)])
    assert (
        image_axes(fig)[1]
        .get_title()
        .endswith("(4, 4)" if channels == 1 else f"(4, 4, {channels})")
    )


def test_figures_show_in_jupyter_without_pyplot_and_pickle():
    """A figure carries its own PNG for Jupyter and survives a pickle round trip."""
    import pickle

    fig = plot.show_kernel(np.eye(3))
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    copy = pickle.loads(pickle.dumps(fig))
    assert type(copy) is type(fig) and len(copy.axes) == 2
    assert copy.axes[0].get_title() == "kernel 3\u00d73"


def test_show_on_a_headless_backend_does_nothing():
    """Under Agg, `fig.show()` neither raises nor warns, and pyplot still knows no figure."""
    import matplotlib.pyplot as plt

    fig = plot.show_channels(np.ones((4, 4, 3)))
    fig.show()
    assert fig.canvas.manager is None and plt.get_fignums() == []


def test_kernel_labels_share_one_format_per_grid():
    """0.006 and 0.14 in one kernel read 0.006 and 0.140, not 6e-03 next to 0.14.

    A bank's small panels get two significant digits of its largest weight, all alike.
    """
    fig = plot.show_kernel(np.array([[0.006, 0.14], [-0.05, 0.0]]))
    assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(
        ["0.006", "0.140", "\u22120.050", "0.000"]
    )
    fig = plot.show_kernel(np.array([[1.5, 0.25], [-2.0, 0.0]]))
    assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(
        ["1.50", "0.25", "\u22122.00", "0.00"]
    )
    bank = np.array([[[[0.006, 0.14], [-0.05, 0.0]]], [[[0.1, -0.123], [0.2, 0.3]]]])
    fig = plot.show_kernels(bank)
    texts = [t.get_text() for ax in image_axes(fig) for t in ax.texts]
    assert sorted(texts) == sorted(
        ["0.01", "0.14", "\u22120.05", "0.00", "0.10", "\u22120.12", "0.20", "0.30"]
    )


GUI_SCRIPT = """
import sys
import numpy as np
if sys.argv[1] == "pyplot-first":
    import matplotlib.pyplot as plt  # a script that uses pyplot, then cnnkit
from cnnkit import plot

fig = plot.show_channels(np.ones((8, 8, 3)))
import matplotlib.pyplot as plt
managed_at_once = plt.get_fignums() == [fig.number] if sys.argv[1] == "pyplot-first" else None
fig.show()
widget = fig.canvas.get_tk_widget()
for _ in range(100):
    plt.pause(0.05)
    if widget.winfo_ismapped():
        break
print(plt.get_backend(), managed_at_once, plt.get_fignums() == [fig.number],
      bool(widget.winfo_ismapped()), widget.winfo_width() > 100)
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pyplot-first", "show-only"])
def test_figures_open_windows_with_a_gui_backend(mode, tmp_path):
    """With TkAgg on a (virtual) display, a figure is pyplot's and `fig.show()` opens its window.

    "pyplot-first": pyplot was imported before drawing, so pyplot manages the figure from
    the start and `plt.show()` would show it; "show-only": a script that never imported
    pyplot calls `fig.show()`, which hands the figure to pyplot and maps its window.
    """
    import os
    import shutil
    import subprocess
    import sys

    assert shutil.which("xvfb-run"), "xvfb-run is needed (apt-get install xvfb xauth)"
    script = tmp_path / "show.py"
    script.write_text(GUI_SCRIPT)
    env = {**os.environ, "MPLBACKEND": "TkAgg"}
    out = subprocess.run(
        ["xvfb-run", "-a", sys.executable, str(script), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    expected = "True" if mode == "pyplot-first" else "None"
    assert out.stdout.split() == ["TkAgg", expected, "True", "True", "True"], out.stdout


@pytest.mark.slow
def test_figures_in_jupyter_show_once_and_stay_out_of_pyplot(tmp_path):
    """In a Jupyter kernel with pyplot imported: a returned figure displays once, `fig.show()`
    displays it, and no figure is left registered with pyplot."""
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nimport numpy as np\n"
        "from cnnkit import plot",
        "plot.show_kernel(np.eye(3))",
        "fig = plot.show_channels(np.ones((4, 4, 3)))\nfig.show()",
        "print(plt.get_fignums())",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    pngs = [[o for o in cell.outputs if "image/png" in o.get("data", {})] for cell in nb.cells]
    assert [len(p) for p in pngs] == [0, 1, 1, 0]
    assert nb.cells[3].outputs[0].text.strip() == "[]"


def test_shared_colors_give_equal_values_equal_colours():
    """With shared_colors, 0.5 in a map reaching 1 and in a map reaching 0.5 look the same."""
    a = np.full((6, 6), 0.5)
    a[0, 0] = 1.0
    b = np.full((6, 6), 0.5)
    b[0, 0] = 0.0
    a[0, 1] = b[0, 1] = 0.0
    fig = plot.show_feature_maps([a, b], titles=["a", "b"], shared_colors=True, label="activation")
    (ax,) = image_axes(fig)
    colorbars = [c for c in fig.axes if c.get_label() == "<colorbar>"]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "activation"
    corners = {t.get_text(): t.get_position() for t in ax.texts}
    pixels = render(fig)
    colours = [
        pixel_at(pixels, ax, corners[name][0] + 1.0, corners[name][1] + 4.0) for name in ("a", "b")
    ]  # a cell holding 0.5 in each map
    assert np.abs(colours[0] - colours[1]).max() <= 2
    fig = plot.show_feature_maps([a, b], titles=["a", "b"])  # own scales: 0.5 differs
    axes = image_axes(fig)
    pixels = render(fig)
    own = [pixel_at(pixels, axis, 3.0, 3.0) for axis in axes]
    assert np.abs(own[0] - own[1]).max() > 40


def test_a_large_kernel_bank_is_one_picture_and_says_what_is_shown(rng):
    """A (64, 32, 3, 3) bank: one picture of 8 x 16 kernels, and the heading says so."""
    weight = rng.normal(size=(64, 32, 3, 3))
    fig = plot.show_kernels(weight)
    (ax,) = image_axes(fig)
    assert "showing filters 0\u201315 of 64 \u00d7 input channels 0\u20137 of 32" in (
        fig.get_suptitle()
    )
    assert fig.get_suptitle().endswith(
        "(64, 32, 3, 3)\nshowing filters 0\u201315 of 64 \u00d7 input channels 0\u20137 of 32"
    )
    heading = plot.show_kernels(rng.normal(size=(32, 1, 3, 3))).get_suptitle()
    assert heading.endswith("\nshowing filters 0\u201315 of 32")
    mosaic = ax.images[0].get_array()
    assert mosaic.shape == (8 * 4 - 1, 16 * 4 - 1)
    np.testing.assert_allclose(
        mosaic[4 * 2 : 4 * 2 + 3, 4 * 5 : 4 * 5 + 3], weight[5, 2], rtol=1e-6
    )
    low, high = ax.images[0].get_clim()
    assert -low == high == pytest.approx(np.abs(weight[:16, :8]).max())
