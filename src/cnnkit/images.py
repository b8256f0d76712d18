"""Load pictures as float arrays: files, ``http(s)://`` URLs and scikit-image's bundled samples.

Every image comes back as float32 in ``[0, 1]``, shaped ``(H, W, 3)`` (or ``(H, W)`` with
``gray=True``), whatever the file held: grayscale, RGBA, palette, 16-bit or EXIF-rotated.
Decoding is Pillow's; Pillow, scikit-image and urllib are imported inside the functions
that use them, so ``import cnnkit`` stays NumPy-only.
"""

from __future__ import annotations

import os
import re
import time
import warnings

import numpy as np

from cnnkit._matmul import matmul
from cnnkit._validation import _describe, as_float_array

__all__ = [
    "load_image",
    "SourceNotFoundError",
    "available_samples",
    "rgb_to_gray",
    "DEFAULT_SAMPLE",
    "GRAY_WEIGHTS",
    "URL_TIMEOUT",
    "DOWNLOAD_TIMEOUT",
    "MAX_DOWNLOAD_BYTES",
]

#: The sample ``load_image()`` returns when given no source.
DEFAULT_SAMPLE = "chelsea"

#: Luminance weights for R, G, B: ITU-R BT.709, the weights of ``skimage.color.rgb2gray``.
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)

#: Seconds to wait for a URL to connect or send data before giving up.
URL_TIMEOUT = 30.0

#: Seconds a whole download may take, however steadily the server trickles its bytes.
DOWNLOAD_TIMEOUT = 120.0

#: The most bytes a URL may send; larger downloads are refused (50 MiB).
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024

# Sample name -> file inside scikit-image's package data (``skimage/data``). Only pictures
# that ship in the scikit-image wheel are listed, so no sample ever needs a download.
_SAMPLES = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "cat": "chelsea.png",
    "cell": "cell.png",
    "chelsea": "chelsea.png",
    "clock": "clock_motion.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "colorwheel": "color.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "logo": "logo.png",
    "microaneurysms": "microaneurysms.png",
    "moon": "moon.png",
    "page": "page.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
    "text": "text.png",
}

# The start of Pillow's warnings about damaged EXIF data (matched case-insensitively).
_EXIF_WARNINGS = r"(possibly )?corrupt exif"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class SourceNotFoundError(FileNotFoundError, ValueError):
    """A bare name that is neither an existing file nor a bundled sample.

    It is both a ``FileNotFoundError`` (it may have been meant as a file) and a
    ``ValueError`` (it may have been meant as a sample name), so either ``except`` works.

    Examples
    --------
    >>> import cnnkit as ck
    >>> try:
    ...     ck.load_image("chelsey")
    ... except FileNotFoundError as error:
    ...     print(type(error).__name__, isinstance(error, ValueError))
    SourceNotFoundError True
    """


def available_samples() -> list[str]:
    """Return the names of the bundled sample images, sorted.

    Returns
    -------
    list of str
        Names accepted as ``source`` by :func:`load_image`; all ship inside
        scikit-image's package data and load offline.

    Examples
    --------
    >>> from cnnkit.images import available_samples
    >>> "chelsea" in available_samples() and "camera" in available_samples()
    True
    """
    return sorted(_SAMPLES)


def load_image(source=None, *, gray: bool = False, timeout=DOWNLOAD_TIMEOUT) -> np.ndarray:
    """Load an image as float32 in ``[0, 1]``.

    Parameters
    ----------
    source : str or os.PathLike, optional
        A file path, an ``http://`` or ``https://`` URL, or the name of a bundled sample
        image (see :func:`available_samples`: ``"chelsea"``, ``"astronaut"``,
        ``"camera"``, ``"coffee"``, ...). An existing file wins over a sample of the same
        name. ``None`` (the default) loads ``"chelsea"``.
    gray : bool, default False
        Return one luminance channel instead of three colour channels.
    timeout : float, default 120
        Seconds a URL's whole download may take (:data:`DOWNLOAD_TIMEOUT`); files and
        samples ignore it.

    Returns
    -------
    image : ndarray of shape (H, W, 3), or (H, W) when ``gray`` is True, dtype float32
        Values in ``[0, 1]``, rows top to bottom as the picture is meant to be seen.

    Raises
    ------
    FileNotFoundError
        A path that does not exist. A bare name (no folder, no extension) that is neither
        a file nor a sample raises an error that is both a ``FileNotFoundError`` and a
        ``ValueError``, listing the sample names.
    ValueError
        A file or download that is not a decodable image (a text file, a truncated or
        corrupt file, a decompression bomb), a URL scheme other than http/https, an HTTP
        error, a timeout or a download over :data:`MAX_DOWNLOAD_BYTES`. The message names
        the source.
    TypeError
        ``source`` is not a string or a path, or ``gray`` is not a bool.

    Notes
    -----
    How each kind of file becomes ``[0, 1]`` floats:

    - 8-bit channels are divided by 255; 16-bit grayscale (Pillow mode ``I;16``) by
      65535. Pillow decodes 16-bit-per-channel colour PNGs to 8 bits per channel.
    - Grayscale and black-and-white files give three equal channels unless ``gray``.
    - Palette files are expanded through their palette; one with a transparent entry
      is treated as RGBA.
    - Transparency (RGBA, LA, palette): the picture is composited over a white
      background, ``out = alpha * colour + (1 - alpha) * 1``, so fully transparent
      pixels are white.
    - The EXIF orientation tag is applied (``PIL.ImageOps.exif_transpose``), so a phone
      photo stored sideways comes back upright. An unreadable EXIF block is ignored.
    - ``gray=True`` on a colour image takes the ITU-R BT.709 luminance
      ``0.2125 R + 0.7154 G + 0.0721 B`` (:data:`GRAY_WEIGHTS`, as
      ``skimage.color.rgb2gray``), after compositing; a grayscale file is returned as is.
    - 32-bit integer pixels (Pillow mode ``I``) are taken as 16-bit values and divided
      by 65535 (values outside ``[0, 65535]`` are refused); 32-bit float pixels (mode
      ``F``) must already lie in ``[0, 1]``.
    - Multi-frame files (GIF, TIFF) give their first frame.
    - Pictures over Pillow's ``Image.MAX_IMAGE_PIXELS`` are refused as decompression
      bombs, as is any download over :data:`MAX_DOWNLOAD_BYTES`.
    - URLs are fetched with urllib, waiting at most :data:`URL_TIMEOUT` seconds for the
      connection and for each read, and `timeout` seconds for the whole download (a
      server that trickles bytes cannot hold it longer); redirects are followed to
      http(s) URLs only.

    Examples
    --------
    >>> import cnnkit as ck
    >>> cat = ck.load_image("chelsea")
    >>> cat.shape, cat.dtype, float(cat.min()) >= 0.0, float(cat.max()) <= 1.0
    ((300, 451, 3), dtype('float32'), True, True)
    >>> ck.load_image("camera", gray=True).shape
    (512, 512)
    """
    if not isinstance(gray, (bool, np.bool_)):
        raise TypeError(f"gray must be a bool, got {gray!r}")
    if isinstance(timeout, (bool, np.bool_)) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if source is None:
        source = DEFAULT_SAMPLE
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
        if isinstance(source, bytes):
            source = os.fsdecode(source)
        image = _load_path(source)
    elif isinstance(source, str):
        image = _load_str(source, float(timeout))
    else:
        raise TypeError(
            "source must be a file path, an http(s):// URL or a sample name, "
            f"got {type(source).__name__}: {_describe(source)}"
        )
    if image.ndim == 2:  # a single-channel file
        return image if gray else np.repeat(image[:, :, None], 3, axis=2)  # (H, W, 3)
    # BT.709 weights sum to 1, so only float32 rounding can step outside [0, 1].
    return np.clip(rgb_to_gray(image), 0.0, 1.0) if gray else image


def rgb_to_gray(image: np.ndarray) -> np.ndarray:
    """Return the ITU-R BT.709 luminance of an RGB image (:data:`GRAY_WEIGHTS`).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3)
        An RGB image; integer images are converted to float32 first.

    Returns
    -------
    ndarray of shape (H, W)
        ``0.2125 R + 0.7154 G + 0.0721 B``, in the floating dtype of the input.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnkit.images import rgb_to_gray
    >>> rgb_to_gray(np.array([[[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]])).round(4)
    array([[1.    , 0.7154]])
    """
    image = as_float_array("image", image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got shape {image.shape}")
    weights = np.asarray(GRAY_WEIGHTS, dtype=image.dtype)
    return matmul(image, weights)  # (H, W, 3) @ (3,) -> (H, W)


# -- sources -----------------------------------------------------------------------------


def _load_str(source: str, timeout: float = DOWNLOAD_TIMEOUT) -> np.ndarray:
    """Dispatch a string source to the URL, file or sample loader."""
    match = _SCHEME.match(source)
    if match:
        if match.group(1).lower() not in ("http", "https"):
            raise ValueError(
                f"source {source!r}: only http:// and https:// URLs are supported, "
                f"got scheme {match.group(1)!r}"
            )
        return _load_url(source, timeout)
    if source.startswith("~"):
        source = os.path.expanduser(source)
    if os.path.exists(source):
        return _load_path(source)
    if source in _SAMPLES:
        return _load_sample(source)
    if os.sep in source or "/" in source or os.path.splitext(source)[1]:
        raise FileNotFoundError(f"no such file: {source!r}")
    raise SourceNotFoundError(
        f"source {source!r} is neither an existing file nor a bundled sample image; "
        f"samples: {', '.join(available_samples())}"
    )


def _load_path(path: str) -> np.ndarray:
    """Decode an image file on disk."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"cannot read image {path!r}: it is a directory")
    return _decode(path, repr(path))


def _load_sample(name: str) -> np.ndarray:
    """Decode one of scikit-image's bundled sample pictures."""
    import importlib.resources

    try:
        resource = importlib.resources.files("skimage.data").joinpath(_SAMPLES[name])
    except ModuleNotFoundError:  # pragma: no cover - scikit-image is a dependency
        raise ValueError(f"sample {name!r} needs scikit-image, which is not installed") from None
    with importlib.resources.as_file(resource) as path:
        if not os.path.isfile(path):  # pragma: no cover - a stripped scikit-image install
            raise ValueError(f"sample {name!r} is missing from this scikit-image install")
        return _decode(os.fspath(path), f"sample {name!r}")


class _DownloadTooSlow(Exception):
    """The whole download took longer than allowed."""


def _load_url(url: str, timeout: float = DOWNLOAD_TIMEOUT) -> np.ndarray:
    """Download an http(s) URL (bounded in time and size) and decode it."""
    import http.client
    import io
    import urllib.error
    import urllib.parse
    import urllib.request

    from cnnkit import __version__

    class HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
        """Follow redirects to http(s) only (urllib alone would also follow ftp://)."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            scheme = urllib.parse.urlsplit(newurl).scheme.lower()
            if scheme not in ("http", "https"):
                raise urllib.error.HTTPError(
                    newurl, code, f"redirect to non-http(s) URL {newurl!r} refused", headers, fp
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(HttpOnlyRedirects)
    limit = MAX_DOWNLOAD_BYTES
    too_big = None
    deadline = time.monotonic() + timeout
    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"cnnkit/{__version__}"})
        with opener.open(request, timeout=min(URL_TIMEOUT, timeout)) as response:
            content_type = response.headers.get("Content-Type", "unknown")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > limit:
                too_big = f"its {int(length)} bytes are over the {limit}-byte limit"
            else:
                data = _read_until(response, limit + 1, deadline)
                if len(data) > limit:
                    too_big = f"it sent more than the {limit}-byte limit"
    except _DownloadTooSlow:
        raise ValueError(
            f"could not download {url!r}: not finished after {timeout:g} s "
            "(the whole download's limit)"
        ) from None
    except urllib.error.HTTPError as exc:
        raise ValueError(f"could not download {url!r}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ValueError(f"could not download {url!r}: {exc.reason}") from None
    except TimeoutError:
        raise ValueError(f"could not download {url!r}: timed out after {URL_TIMEOUT} s") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # connection reset, a malformed response, an invalid URL (spaces, bad port) ...
        raise ValueError(f"could not download {url!r}: {type(exc).__name__}: {exc}") from None
    if too_big:
        raise ValueError(f"refusing to download {url!r}: {too_big}")
    return _decode(io.BytesIO(data), f"{url!r} (Content-Type: {content_type})")


def _read_until(response, limit: int, deadline: float) -> bytes:
    """Read at most `limit` bytes of `response`, raising _DownloadTooSlow at `deadline`.

    ``read1`` returns whatever has arrived, so a server that trickles bytes is checked
    against the deadline between its packets; each wait is itself bounded by the socket
    timeout.
    """
    chunks, size = [], 0
    while size < limit:
        if time.monotonic() > deadline:
            raise _DownloadTooSlow
        chunk = response.read1(min(1 << 16, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if time.monotonic() > deadline:
        raise _DownloadTooSlow
    return b"".join(chunks)


# -- decoding ----------------------------------------------------------------------------


def _decode(file, label: str) -> np.ndarray:
    """Decode a path or binary file object into float32 ``(H, W)`` or ``(H, W, 3)``."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        # Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises above: refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Pillow warns about a damaged EXIF block (with its own file and line) while
        # opening and rotating; the pixels are fine and the orientation unknowable: the
        # block is ignored, as documented, without a word, also under `python -W error`.
        warnings.filterwarnings("ignore", _EXIF_WARNINGS, UserWarning)
        try:
            with Image.open(file) as image:
                image.load()
                mode, raw = _pixels(_upright(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"refusing to decode {label}: {exc}") from None
        except UnidentifiedImageError:
            raise ValueError(f"cannot read {label}: not a recognised image file") from None
        except PermissionError as exc:
            raise ValueError(
                f"cannot read {label}: {exc.strerror or 'permission denied'}"
            ) from None
        except Exception as exc:  # noqa: BLE001
            # Pillow reports truncated and corrupt data as OSError, SyntaxError, EOFError,
            # ValueError, struct.error, zlib.error ... depending on the format and the damage.
            raise ValueError(
                f"cannot decode {label}: corrupt or truncated image ({type(exc).__name__}: {exc})"
            ) from None
    return _to_float(mode, raw, label)


def _upright(image):
    """Apply the EXIF orientation tag; a damaged EXIF block leaves the image as stored."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - any EXIF damage: keep the image as stored
        return image


def _pixels(image) -> tuple[str, np.ndarray]:
    """Bring a Pillow image to one of L, LA, RGB, RGBA, I;16*, I, F and return its pixels."""
    mode = image.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode == "La":
        image = image.convert("LA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...
    return image.mode, np.asarray(image)


def _to_float(mode: str, raw: np.ndarray, label: str) -> np.ndarray:
    """Scale pixels to float32 [0, 1], compositing any alpha over white."""
    if raw.size == 0:
        raise ValueError(f"cannot read {label}: the image is empty (shape {raw.shape})")
    # One float32 copy of the pixels, scaled and clipped in place: memory follows the image.
    if mode.startswith("I;16"):
        values = raw.astype(np.float32)  # (H, W)
        values /= np.float32(65535)
    elif mode == "I":
        if raw.min() < 0 or raw.max() > 65535:
            raise ValueError(
                f"cannot read {label}: 32-bit integer pixels outside [0, 65535] "
                f"(range {raw.min()}..{raw.max()}) have no defined scale"
            )
        values = raw.astype(np.float32)  # (H, W)
        values /= np.float32(65535)
    elif mode == "F":
        values = raw.astype(np.float32)  # (H, W)
        if not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
            raise ValueError(f"cannot read {label}: floating-point pixels outside [0, 1]")
    else:
        values = raw.astype(np.float32)  # (H, W) or (H, W, bands)
        values /= np.float32(255)

    if mode == "LA":
        gray, alpha = values[..., 0], values[..., 1]  # (H, W) each
        values = gray * alpha + (1 - alpha)
    elif mode == "RGBA":
        rgb, alpha = values[..., :3], values[..., 3:]  # (H, W, 3), (H, W, 1)
        values = rgb * alpha + (1 - alpha)
    # Compositing in float32 can leave a hair outside [0, 1].
    values = np.ascontiguousarray(values, dtype=np.float32)
    return np.clip(values, 0.0, 1.0, out=values)
