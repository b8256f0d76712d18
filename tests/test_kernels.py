"""Tests for cnnkit.kernels against SciPy and scikit-image, applied by cross-correlation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.filters

from cnnkit import kernels

REQUIRED = [
    "identity",
    "sobel_top",
    "sobel_bottom",
    "sobel_left",
    "sobel_right",
    "scharr_top",
    "scharr_bottom",
    "scharr_left",
    "scharr_right",
    "prewitt_top",
    "prewitt_bottom",
    "prewitt_left",
    "prewitt_right",
    "laplacian",
    "sharpen",
    "box_blur",
    "gaussian_blur",
    "emboss",
    "outline",
]


@pytest.fixture
def image(rng):
    """A random float64 picture."""
    return rng.random((12, 15))


def _interior(a):
    return a[1:-1, 1:-1]


def test_contract_names_present_and_sorted():
    """available() is sorted and holds every name the contract promises."""
    names = kernels.available()
    assert names == sorted(names)
    assert set(REQUIRED) <= set(names)


@pytest.mark.parametrize("name", kernels.available())
def test_get_returns_fresh_float32(name):
    """get() returns a writable float32 2-D copy; changing it leaves the bank alone."""
    k = kernels.get(name)
    assert k.dtype == np.float32 and k.ndim == 2 and k.flags.writeable
    before = k.copy()
    k += 100
    np.testing.assert_array_equal(kernels.get(name), before)


@pytest.mark.parametrize("name", kernels.available())
def test_describe_is_one_line(name):
    """Each kernel has a one-line description."""
    text = kernels.describe(name)
    assert isinstance(text, str) and 10 < len(text) < 100 and "\n" not in text


def test_constants_read_only():
    """The module constants cannot be changed in place."""
    with pytest.raises(ValueError):
        kernels.SOBEL_TOP[0, 0] = 5


def test_unknown_name_lists_available():
    """An unknown name raises ValueError naming it and listing the names."""
    with pytest.raises(ValueError, match=r"'sobel_up'.*sobel_top.*available:.*identity"):
        kernels.get("sobel_up")
    with pytest.raises(ValueError, match="nope"):
        kernels.describe("nope")
    with pytest.raises(TypeError, match="name"):
        kernels.get(3)


def test_sobel_exact_values():
    """The Sobel kernels are the contract's unscaled arrays, written out independently."""
    top = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=float)
    left = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=float)
    np.testing.assert_array_equal(kernels.get("sobel_top"), top)
    np.testing.assert_array_equal(kernels.get("sobel_bottom"), np.flipud(top))
    np.testing.assert_array_equal(kernels.get("sobel_left"), left)
    np.testing.assert_array_equal(kernels.get("sobel_right"), np.fliplr(left))


@pytest.mark.parametrize("family", ["sobel", "prewitt"])
def test_scipy_sobel_prewitt(image, family):
    """scipy.ndimage.<family>(axis=0) is correlation with <family>_bottom, axis=1 with _right.

    SciPy differentiates along increasing index (bottom minus top, right minus left),
    unscaled, so its result equals ours with the bottom and right kernels.
    """
    op = getattr(ndi, family)
    for axis, side in ((0, "bottom"), (1, "right")):
        ours = ndi.correlate(image, kernels.get(f"{family}_{side}"), mode="reflect")
        np.testing.assert_allclose(op(image, axis=axis, mode="reflect"), ours, atol=1e-12)
    opposite = {"bottom": "top", "right": "left"}
    for side, other in opposite.items():
        np.testing.assert_array_equal(
            kernels.get(f"{family}_{side}"), -kernels.get(f"{family}_{other}")
        )


@pytest.mark.parametrize("family, scale", [("sobel", 4.0), ("scharr", 16.0), ("prewitt", 3.0)])
def test_skimage_directional_filters(image, family, scale):
    """skimage.filters.<family>_h/_v divide by the weight sum and respond to bottom/right.

    ``<family>_h(img) == correlate(img, <family>_bottom) / scale`` and likewise ``_v`` with
    ``_right`` (compared away from the border, where skimage's edge handling differs).
    """
    h = getattr(skimage.filters, f"{family}_h")(image)
    v = getattr(skimage.filters, f"{family}_v")(image)
    ours_h = ndi.correlate(image, kernels.get(f"{family}_bottom")) / scale
    ours_v = ndi.correlate(image, kernels.get(f"{family}_right")) / scale
    np.testing.assert_allclose(_interior(h), _interior(ours_h), atol=1e-12)
    np.testing.assert_allclose(_interior(v), _interior(ours_v), atol=1e-12)
    np.testing.assert_allclose(
        _interior(-h), _interior(ndi.correlate(image, kernels.get(f"{family}_top")) / scale)
    )


@pytest.mark.parametrize("name", ["sobel_top", "scharr_top", "prewitt_top"])
def test_top_is_positive_below_a_bright_top(name):
    """A picture bright above and dark below gives a positive response along the edge."""
    step = np.zeros((8, 8))
    step[:4] = 1.0  # bright top half
    response = ndi.correlate(step, kernels.get(name), mode="nearest")
    assert (response[3:5] > 0).all() and (response[:2] == 0).all() and (response[6:] == 0).all()
    bottom = ndi.correlate(step, kernels.get(name.replace("top", "bottom")), mode="nearest")
    assert (bottom[3:5] < 0).all()


@pytest.mark.parametrize("name", ["sobel_left", "scharr_left", "prewitt_left"])
def test_left_is_positive_right_of_a_bright_left(name):
    """A picture bright on the left gives a positive response along the edge."""
    step = np.zeros((8, 8))
    step[:, :4] = 1.0
    response = ndi.correlate(step, kernels.get(name), mode="nearest")
    assert (response[:, 3:5] > 0).all() and (response[:, :2] == 0).all()
    right = ndi.correlate(step, kernels.get(name.replace("left", "right")), mode="nearest")
    assert (right[:, 3:5] < 0).all()


def test_laplacian_matches_scipy(image):
    """laplacian is scipy.ndimage.laplace (same sign and scale)."""
    np.testing.assert_allclose(
        ndi.correlate(image, kernels.get("laplacian"), mode="reflect"),
        ndi.laplace(image, mode="reflect"),
        atol=1e-12,
    )


def test_laplacian_matches_skimage(image):
    """skimage.filters.laplace(ksize=3) is the same operator with the opposite sign.

    skimage's kernel has +4 at the centre (minus the Laplacian); ours, like SciPy's and
    the mathematical second derivative, has -4.
    """
    np.testing.assert_allclose(
        -_interior(skimage.filters.laplace(image, ksize=3)),
        _interior(ndi.correlate(image, kernels.get("laplacian"))),
        atol=1e-12,
    )


def test_sharpen_is_image_minus_laplacian(image):
    """sharpen boosts edges: image - laplace(image)."""
    np.testing.assert_allclose(
        ndi.correlate(image, kernels.get("sharpen"), mode="mirror"),
        image - ndi.laplace(image, mode="mirror"),
        atol=1e-12,
    )


def test_outline_is_nine_times_centre_minus_box_sum(image):
    """outline = 9 * pixel - sum of the 3x3 window: 0 on flat regions."""
    expected = 9 * image - 9 * ndi.uniform_filter(image, size=3, mode="nearest")
    np.testing.assert_allclose(
        ndi.correlate(image, kernels.get("outline"), mode="nearest"), expected, atol=1e-12
    )


def test_box_blur_matches_uniform_filter(image):
    """box_blur is scipy.ndimage.uniform_filter(size=3)."""
    np.testing.assert_allclose(
        ndi.correlate(image, kernels.get("box_blur"), mode="reflect"),
        ndi.uniform_filter(image, size=3, mode="reflect"),
        atol=1e-12,
    )


def test_gaussian_blur_is_binomial(image):
    """gaussian_blur is the 1-2-1 binomial filter along each axis (separable, sum 1)."""
    binomial = np.array([0.25, 0.5, 0.25])
    expected = ndi.correlate1d(ndi.correlate1d(image, binomial, axis=0), binomial, axis=1)
    np.testing.assert_allclose(ndi.correlate(image, kernels.get("gaussian_blur")), expected)


def test_identity_leaves_image_unchanged(image):
    """A delta kernel is the identity."""
    np.testing.assert_array_equal(ndi.correlate(image, kernels.get("identity")), image)


def test_emboss_structure():
    """emboss is the identity plus a kernel odd under a half turn, positive toward bottom right."""
    k = kernels.get("emboss")
    edge = k - kernels.get("identity")
    np.testing.assert_array_equal(edge, -np.rot90(edge, 2))
    assert k.sum() == 1.0 and k[2, 2] > 0 > k[0, 0]


@pytest.mark.parametrize("name", ["sharpen", "box_blur", "gaussian_blur", "identity", "emboss"])
def test_brightness_preserving_kernels_sum_to_one(name):
    """Kernels that keep a flat region's value sum to 1."""
    assert kernels.get(name).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name",
    [n for n in REQUIRED if n.split("_")[0] in ("sobel", "scharr", "prewitt")]
    + ["laplacian", "outline"],
)
def test_edge_kernels_sum_to_zero(name):
    """Edge detectors give 0 on a flat region."""
    assert kernels.get(name).sum() == 0.0


@pytest.mark.parametrize("size, sigma", [(3, 1.0), (5, 0.8), (7, 2.0), (9, 1.5)])
def test_gaussian_matches_scipy(size, sigma):
    """gaussian(size, sigma) is gaussian_filter's impulse response, radius (size - 1) // 2."""
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    expected = ndi.gaussian_filter(delta, sigma, mode="constant", radius=(size - 1) // 2)
    k = kernels.gaussian(size, sigma, dtype=np.float64)
    assert k.shape == (size, size) and k.dtype == np.float64
    np.testing.assert_allclose(k, expected, atol=1e-12)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    single = kernels.gaussian(size, sigma)  # the default: float32, the same values rounded
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, expected, rtol=1e-6, atol=1e-9)


def test_gaussian_anisotropic_matches_scipy():
    """A pair of sizes and sigmas matches scipy with per-axis sigma and radius."""
    delta = np.zeros((5, 9))
    delta[2, 4] = 1.0
    expected = ndi.gaussian_filter(delta, (0.7, 2.0), mode="constant", radius=(2, 4))
    np.testing.assert_allclose(
        kernels.gaussian((5, 9), (0.7, 2.0), dtype=np.float64), expected, atol=1e-12
    )


def test_gaussian_even_size_symmetric():
    """An even size is centred between taps, symmetric and normalised."""
    k = kernels.gaussian(4, 1.0)
    np.testing.assert_allclose(k, k[::-1, ::-1])
    np.testing.assert_allclose(k, k.T)
    assert k.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [1, 2, 3, (2, 5)])
def test_box_matches_uniform_filter(size):
    """box(size) is uniform_filter's impulse response: all weights 1 / area."""
    h, w = (size, size) if isinstance(size, int) else size
    np.testing.assert_allclose(kernels.box(size), np.full((h, w), 1.0 / (h * w)))
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    # uniform_filter is symmetric, so correlation and convolution agree for odd sizes
    if h % 2 and w % 2:
        ref = ndi.uniform_filter(delta, size=(h, w), mode="constant")
        ref = ref[3 - h // 2 : 3 + h // 2 + 1, 3 - w // 2 : 3 + w // 2 + 1]
        np.testing.assert_allclose(kernels.box(size, dtype=np.float64), ref, atol=1e-12)


def test_laplacian_of_gaussian_matches_scipy():
    """laplacian_of_gaussian agrees with scipy's gaussian_laplace up to the zero-sum shift."""
    size, sigma = 9, 1.2
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    expected = ndi.gaussian_laplace(delta, sigma, mode="constant", radius=size // 2)
    k = kernels.laplacian_of_gaussian(size, sigma, dtype=np.float64)
    assert abs(k.sum()) < 1e-12
    # scipy differentiates a normalised 1-D Gaussian, so its weights are ours up to a constant
    np.testing.assert_allclose(k - k.mean(), expected - expected.mean(), atol=2e-3)


@pytest.mark.parametrize("name", kernels.available())
def test_named_kernels_keep_a_float32_image_float32(name):
    """The README's ck.filter2d(image, ck.kernels.get(name)) on float32 gives float32."""
    from cnnkit.filtering import filter2d

    image = np.random.default_rng(0).random((9, 11, 3)).astype(np.float32)
    out = filter2d(image, kernels.get(name), padding=1)
    assert out.dtype == np.float32
    reference = filter2d(image.astype(np.float64), kernels.get(name).astype(np.float64), padding=1)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "build",
    [
        lambda **k: kernels.gaussian(5, 1.0, **k),
        lambda **k: kernels.box(3, **k),
        lambda **k: kernels.laplacian_of_gaussian(5, 1.0, **k),
    ],
)
def test_builders_dtype(build):
    assert build().dtype == np.float32
    assert build(dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        build(dtype=np.int32)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: kernels.gaussian(0, 1.0), ValueError, "size must be >= 1, got 0"),
        (lambda: kernels.gaussian(3, 0.0), ValueError, "sigma must be > 0"),
        (lambda: kernels.gaussian(3, -1), ValueError, "sigma"),
        (lambda: kernels.gaussian(3, float("nan")), ValueError, "sigma"),
        (lambda: kernels.gaussian(3, "wide"), TypeError, "sigma"),
        (lambda: kernels.gaussian(2.5, 1.0), TypeError, "size"),
        (lambda: kernels.box(-1), ValueError, "size"),
        (lambda: kernels.box((3, 0)), ValueError, "size"),
        (lambda: kernels.laplacian_of_gaussian(5, 0), ValueError, "sigma"),
    ],
)
def test_builder_argument_errors(call, exc, pattern):
    """Bad builder arguments raise errors naming the argument and value."""
    with pytest.raises(exc, match=pattern):
        call()
