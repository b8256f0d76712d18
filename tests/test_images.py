"""Tests for cnnkit.images: every file kind built with Pillow in tmp_path, URLs on loopback."""

from __future__ import annotations

import contextlib
import http.server
import io
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

import cnnkit as ck
from cnnkit import images


@pytest.fixture
def rgb8(rng):
    """A random, non-square 8-bit RGB picture."""
    return rng.integers(0, 256, size=(7, 10, 3), dtype=np.uint8)


def _save(tmp_path, array, name, **params):
    """Write `array` with Pillow and return the path."""
    path = tmp_path / name
    Image.fromarray(array).save(path, **params)
    return path


def _expect_float(array, scale=255.0):
    """The float32 [0, 1] version of integer pixels, computed independently."""
    return (array.astype(np.float64) / scale).astype(np.float32)


# -- formats ---------------------------------------------------------------------------


def test_rgb_png_exact(tmp_path, rgb8):
    """An RGB PNG comes back as its 8-bit values over 255, float32, (H, W, 3)."""
    out = ck.load_image(_save(tmp_path, rgb8, "rgb.png"))
    assert out.dtype == np.float32 and out.shape == (7, 10, 3)
    np.testing.assert_allclose(out, _expect_float(rgb8), rtol=0, atol=1e-7)


def test_str_and_path_sources_agree(tmp_path, rgb8):
    """A path given as str or as pathlib.Path loads the same pixels."""
    path = _save(tmp_path, rgb8, "rgb.png")
    np.testing.assert_array_equal(ck.load_image(str(path)), ck.load_image(path))


def test_jpeg_matches_pillow_decode(tmp_path, rgb8):
    """A JPEG gives Pillow's own decoded pixels over 255."""
    path = _save(tmp_path, rgb8, "rgb.jpg", quality=90)
    with Image.open(path) as im:
        expected = _expect_float(np.asarray(im.convert("RGB")))
    np.testing.assert_allclose(ck.load_image(path), expected, atol=1e-7)


def test_grayscale_replicated_or_kept(tmp_path, rng):
    """An L file gives three equal channels, or the single channel with gray=True."""
    gray = rng.integers(0, 256, size=(6, 5), dtype=np.uint8)
    path = _save(tmp_path, gray, "gray.png")
    rgb = ck.load_image(path)
    assert rgb.shape == (6, 5, 3)
    for c in range(3):
        np.testing.assert_allclose(rgb[..., c], _expect_float(gray), atol=1e-7)
    one = ck.load_image(path, gray=True)
    assert one.shape == (6, 5) and one.dtype == np.float32
    np.testing.assert_allclose(one, _expect_float(gray), atol=1e-7)


def test_one_bit_image(tmp_path):
    """A black-and-white (mode 1) file gives 0 and 1."""
    bits = np.array([[True, False, True], [False, False, True]])
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)
    np.testing.assert_array_equal(ck.load_image(path, gray=True), bits.astype(np.float32))


def test_rgba_composited_over_white(tmp_path, rng, rgb8):
    """RGBA: colour * alpha + (1 - alpha); transparent is white, opaque is the colour."""
    alpha = rng.integers(0, 256, size=rgb8.shape[:2], dtype=np.uint8)
    alpha[0, 0], alpha[0, 1] = 0, 255
    path = _save(tmp_path, np.dstack([rgb8, alpha]), "rgba.png")
    a = alpha[..., None] / 255.0
    expected = rgb8 / 255.0 * a + (1 - a)
    out = ck.load_image(path)
    assert out.shape == (7, 10, 3)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_array_equal(out[0, 0], [1, 1, 1])
    np.testing.assert_allclose(out[0, 1], rgb8[0, 1] / 255.0, atol=1e-7)


def test_la_composited_over_white(tmp_path, rng):
    """LA: gray * alpha + (1 - alpha), as one channel or three."""
    gray = rng.integers(0, 256, size=(4, 6), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(4, 6), dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([gray, alpha]), mode="LA").save(path)
    a = alpha / 255.0
    expected = gray / 255.0 * a + (1 - a)
    np.testing.assert_allclose(ck.load_image(path, gray=True), expected, atol=1e-6)
    np.testing.assert_allclose(ck.load_image(path), np.dstack([expected] * 3), atol=1e-6)


def _palette_image(rng, transparency=None):
    """A P-mode image with a random palette, and its indices and palette as arrays."""
    indices = rng.integers(0, 4, size=(5, 8), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette.ravel().tolist())
    if transparency is not None:
        image.info["transparency"] = transparency
    return image, indices, palette


@pytest.mark.parametrize("suffix", ["png", "gif"])
def test_palette_expanded(tmp_path, rng, suffix):
    """A palette file gives each index's palette colour."""
    image, indices, palette = _palette_image(rng)
    path = tmp_path / f"pal.{suffix}"
    image.save(path)
    np.testing.assert_allclose(ck.load_image(path), palette[indices] / 255.0, atol=1e-6)


@pytest.mark.parametrize("suffix", ["png", "gif"])
def test_palette_transparency_is_white(tmp_path, rng, suffix):
    """A palette file with a transparent index shows that index as white."""
    image, indices, palette = _palette_image(rng, transparency=2)
    path = tmp_path / f"palt.{suffix}"
    image.save(path, transparency=2)
    expected = palette[indices] / 255.0
    expected[indices == 2] = 1.0
    assert (indices == 2).any()
    np.testing.assert_allclose(ck.load_image(path), expected, atol=1e-6)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_sixteen_bit_scaled_by_65535(tmp_path, rng, suffix):
    """A 16-bit grayscale file (I;16) is divided by 65535, not 255."""
    deep = rng.integers(0, 65536, size=(6, 7), dtype=np.uint16)
    deep[0, 0], deep[0, 1] = 0, 65535
    path = tmp_path / f"deep.{suffix}"
    Image.fromarray(deep).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")
    out = ck.load_image(path, gray=True)
    np.testing.assert_allclose(out, deep / 65535.0, rtol=0, atol=1e-7)
    assert out[0, 0] == 0.0 and out[0, 1] == 1.0
    np.testing.assert_allclose(ck.load_image(path), np.dstack([deep / 65535.0] * 3), atol=1e-7)


def test_32bit_integer_taken_as_16bit(tmp_path, rng):
    """Mode I pixels in [0, 65535] are divided by 65535; values beyond are refused."""
    values = rng.integers(0, 65536, size=(4, 5)).astype(np.int32)
    path = tmp_path / "int32.tif"
    Image.fromarray(values, mode="I").save(path)
    np.testing.assert_allclose(ck.load_image(path, gray=True), values / 65535.0, atol=1e-7)
    Image.fromarray(values * 4, mode="I").save(path)
    with pytest.raises(ValueError, match=r"int32\.tif.*65535"):
        ck.load_image(path)


def test_float_tiff_in_unit_range_only(tmp_path, rng):
    """Mode F pixels in [0, 1] are kept; others are refused."""
    values = rng.random((4, 5)).astype(np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(ck.load_image(path, gray=True), values)
    Image.fromarray(values * 255).save(path)
    with pytest.raises(ValueError, match=r"float\.tif.*\[0, 1\]"):
        ck.load_image(path)


def test_cmyk_jpeg(tmp_path, rgb8):
    """A CMYK JPEG gives Pillow's RGB conversion of it."""
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb8).convert("CMYK").save(path)
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB")) / 255.0
    np.testing.assert_allclose(ck.load_image(path), expected, atol=1e-6)


def test_animated_gif_first_frame(tmp_path, rng):
    """A multi-frame GIF gives its first frame."""
    frames = [rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8) for _ in range(3)]
    pictures = [Image.fromarray(f).convert("P") for f in frames]
    path = tmp_path / "anim.gif"
    pictures[0].save(path, save_all=True, append_images=pictures[1:])
    expected = np.asarray(pictures[0].convert("RGB")) / 255.0
    np.testing.assert_allclose(ck.load_image(path), expected, atol=1e-6)


# EXIF orientation -> how the stored array is turned to be seen upright (EXIF 2.3, table).
_ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),  # stored rotated: turn 90 degrees clockwise
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(_ORIENTATIONS))
def test_exif_orientation_png(tmp_path, rgb8, orientation):
    """A PNG with an EXIF orientation tag comes back turned upright."""
    image = Image.fromarray(rgb8)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "oriented.png"
    image.save(path, exif=exif)
    expected = _ORIENTATIONS[orientation](rgb8) / 255.0
    out = ck.load_image(path)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-7)


def test_exif_orientation_jpeg(tmp_path, rgb8):
    """A JPEG tagged orientation 6 (phone held upright) is rotated 90 degrees clockwise."""
    image = Image.fromarray(rgb8)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=95)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"))
    out = ck.load_image(path)
    assert out.shape == (10, 7, 3)
    np.testing.assert_allclose(out, np.rot90(stored, -1) / 255.0, atol=1e-6)


def test_jpeg_with_corrupt_exif_loads_silently(tmp_path, rgb8):
    """A damaged EXIF block: the pixels load as stored, and no Pillow warning escapes
    (the suite runs with warnings as errors, as `python -W error` does)."""
    image = Image.fromarray(rgb8)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "damaged.jpg"
    image.save(path, exif=exif, quality=95)
    data = bytearray(path.read_bytes())
    tiff = data.index(b"Exif\0\0") + 6  # the TIFF header inside the APP1 segment
    big_endian = data[tiff : tiff + 2] == b"MM"
    data[tiff + 4 : tiff + 8] = (0xFF00).to_bytes(4, "big" if big_endian else "little")
    path.write_bytes(bytes(data))  # the first IFD now points past the segment
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as im:
            stored = np.asarray(im.convert("RGB"))
    out = ck.load_image(path)
    np.testing.assert_allclose(out, stored / 255.0, atol=1e-6)


def test_gray_uses_bt709_like_skimage(tmp_path, rgb8):
    """gray=True on a colour file matches skimage.color.rgb2gray (BT.709 weights)."""
    from skimage.color import rgb2gray

    path = _save(tmp_path, rgb8, "rgb.png")
    out = ck.load_image(path, gray=True)
    assert out.shape == (7, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, rgb2gray(rgb8 / 255.0), atol=1e-6)


def test_rgb_to_gray_rejects_wrong_shape():
    """rgb_to_gray names the argument and the shape it got."""
    with pytest.raises(ValueError, match=r"image.*\(4, 4\)"):
        images.rgb_to_gray(np.zeros((4, 4)))


# -- bad files -------------------------------------------------------------------------


def _png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_valueerror(tmp_path, rng, fmt):
    """A file cut short raises ValueError naming it (never a partial image or None)."""
    array = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match="cut"):
        ck.load_image(path)


@pytest.mark.parametrize(
    "content",
    [b"hello, I am text\n", b"", b"\x89PNG\r\n\x1a\n garbage"],
    ids=["text", "empty", "header"],
)
def test_non_image_file_is_valueerror(tmp_path, content):
    """A .png that is not an image raises ValueError naming the file."""
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"fake\.png"):
        ck.load_image(path)


def test_missing_path_is_filenotfound(tmp_path):
    """A path that does not exist raises FileNotFoundError naming it."""
    for source in (tmp_path / "nope.png", str(tmp_path / "nope.png"), "nope.png"):
        with pytest.raises(FileNotFoundError, match=r"nope\.png"):
            ck.load_image(source)


def test_directory_is_valueerror(tmp_path):
    """A folder is not an image."""
    with pytest.raises(ValueError, match="directory"):
        ck.load_image(tmp_path)


@pytest.mark.parametrize("side", [12, 20])
def test_decompression_bomb_refused(tmp_path, monkeypatch, side):
    """Pictures over Pillow's pixel limit (warning or error range) raise ValueError."""
    path = _save(tmp_path, np.zeros((side, side), dtype=np.uint8), "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144 warns, 400 > 2 * 100 errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # refused by load_image itself, not by pytest's filter
        with pytest.raises(ValueError, match=r"bomb\.png"):
            ck.load_image(path)


@pytest.mark.slow
def test_import_stays_numpy_only():
    """Importing the image, kernel and filtering modules pulls in no Pillow, skimage or urllib."""
    import subprocess
    import sys

    code = (
        "import sys, cnnkit, cnnkit.images, cnnkit.kernels, cnnkit.filtering; "
        "heavy = [m for m in ('PIL', 'skimage', 'urllib.request', 'scipy') if m in sys.modules]; "
        "print(heavy); sys.exit(bool(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_type_errors():
    """Non-path sources and a non-bool gray raise TypeError."""
    with pytest.raises(TypeError, match="source"):
        ck.load_image(42)
    with pytest.raises(TypeError, match="gray"):
        ck.load_image("camera", gray="yes")


# -- samples ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", images.available_samples())
def test_sample_matches_skimage_data(name):
    """Each sample equals skimage.data.<name>() over 255 (alpha composited over white)."""
    import skimage.data

    reference = getattr(skimage.data, name)() / 255.0
    if reference.ndim == 2:
        reference = np.dstack([reference] * 3)
    if reference.shape[-1] == 4:
        reference = reference[..., :3] * reference[..., 3:] + (1 - reference[..., 3:])
    out = ck.load_image(name)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference, atol=1e-6)


def test_default_is_chelsea():
    """load_image() with no source is the chelsea sample."""
    np.testing.assert_array_equal(ck.load_image(), ck.load_image("chelsea"))


def test_unknown_sample_lists_names():
    """An unknown bare name lists the samples; it is both ValueError and FileNotFoundError."""
    with pytest.raises(ValueError, match=r"chelsey.*chelsea") as info:
        ck.load_image("chelsey")
    assert isinstance(info.value, FileNotFoundError)
    assert "camera" in str(info.value)


def test_existing_file_wins_over_sample(tmp_path, monkeypatch, rgb8):
    """A file in the working folder named like a sample is loaded as the file."""
    path = tmp_path / "camera"
    path.write_bytes(_png_bytes(rgb8))
    monkeypatch.chdir(tmp_path)
    np.testing.assert_allclose(ck.load_image("camera"), rgb8 / 255.0, atol=1e-7)


# -- URLs ------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves a PNG, a text page, a 404, a slow answer and oversized bodies."""

    png = b""

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, body, content_type, length=True):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/cat.png":
            self._send(self.png, "image/png")
        elif self.path == "/page.html":
            self._send(b"<html><body>not a picture</body></html>", "text/html")
        elif self.path == "/slow.png":
            time.sleep(1.0)
            with contextlib.suppress(OSError):
                self._send(self.png, "image/png")
        elif self.path in ("/moved", "/to-ftp"):
            self.send_response(302)
            target = "/cat.png" if self.path == "/moved" else "ftp://127.0.0.1/cat.png"
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/trickle.png":  # 10 bytes every 50 ms, for ever (until closed)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(2000):
                    self.wfile.write(b"\0" * 10)
                    self.wfile.flush()
                    time.sleep(0.05)
        elif self.path == "/stream.png":  # no Content-Length, 4 KiB body
            self.close_connection = True
            self._send(self.png + b"\0" * 4096, "image/png", length=False)
        else:
            self.send_error(404, "Not Found")


@pytest.fixture
def server(rgb8):
    """A local http.server on 127.0.0.1 in a thread; yields its base URL."""
    handler = type("Handler", (_Handler,), {"png": _png_bytes(rgb8)})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    # A short poll interval: shutdown() waits up to one interval (0.5 s by default)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_url_png(server, rgb8):
    """An http URL to a PNG loads its pixels."""
    out = ck.load_image(f"{server}/cat.png")
    np.testing.assert_allclose(out, rgb8 / 255.0, atol=1e-7)
    gray = ck.load_image(f"{server}/cat.png", gray=True)
    assert gray.shape == rgb8.shape[:2]


def test_url_redirects_http_only(server, rgb8):
    """An http redirect is followed; a redirect to ftp:// is refused."""
    np.testing.assert_allclose(ck.load_image(f"{server}/moved"), rgb8 / 255.0, atol=1e-7)
    with pytest.raises(ValueError, match=r"to-ftp.*redirect to non-http\(s\) URL .ftp:"):
        ck.load_image(f"{server}/to-ftp")


def test_url_malformed(server):
    """A URL urllib cannot send raises ValueError naming it, not http.client's error."""
    with pytest.raises(ValueError, match=r"could not download 'http://127\.0\.0\.1:99999"):
        ck.load_image("http://127.0.0.1:99999/x.png")
    with pytest.raises(ValueError, match="could not download"):
        ck.load_image(f"{server}/a picture.png")


def test_url_404(server):
    """An HTTP error raises ValueError with the URL and the status."""
    with pytest.raises(ValueError, match=r"missing\.png.*404"):
        ck.load_image(f"{server}/missing.png")


def test_url_not_an_image(server):
    """A page that is not an image raises ValueError naming the URL and its content type."""
    with pytest.raises(ValueError, match=r"page\.html.*text/html"):
        ck.load_image(f"{server}/page.html")


def test_url_size_cap(server, monkeypatch):
    """Downloads over MAX_DOWNLOAD_BYTES are refused, with or without Content-Length."""
    monkeypatch.setattr(images, "MAX_DOWNLOAD_BYTES", 64)
    for path in ("/cat.png", "/stream.png"):
        with pytest.raises(ValueError, match="limit"):
            ck.load_image(server + path)


def test_url_whole_download_is_bounded(server):
    """A server that trickles bytes (each read on time) is stopped at the total timeout."""
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"trickle\.png.*not finished after 0\.5 s"):
        ck.load_image(f"{server}/trickle.png", timeout=0.5)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "timeout, error", [(0, ValueError), (-1, ValueError), ("soon", TypeError), (True, TypeError)]
)
def test_load_image_bad_timeout(timeout, error):
    with pytest.raises(error, match="timeout"):
        ck.load_image("camera", timeout=timeout)


def test_url_timeout(server, monkeypatch):
    """A server slower than URL_TIMEOUT raises ValueError, promptly."""
    monkeypatch.setattr(images, "URL_TIMEOUT", 0.2)
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"slow\.png"):
        ck.load_image(f"{server}/slow.png")
    assert time.monotonic() - start < 0.9


def test_url_connection_refused():
    """Nothing listening raises ValueError naming the URL."""
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ValueError, match=str(port)):
        ck.load_image(f"http://127.0.0.1:{port}/x.png")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "data://x", "javascript://x"]
)
def test_url_other_schemes_refused(url):
    """Only http and https are fetched; other schemes raise ValueError naming the source."""
    with pytest.raises(ValueError, match="http"):
        ck.load_image(url)
    with pytest.raises(ValueError, match=url.split(":")[0]):
        ck.load_image(url)
