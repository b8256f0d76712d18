"""The explorer's local web server: the page's files and its JSON API, nothing else.

Security as Jupyter does it: the server listens on 127.0.0.1, every ``/api/`` request
must carry the session's random token (query parameter ``token`` or header
``X-Cnnkit-Token``), and a request whose ``Host`` is not the local address with this
port is refused (a web page on another site cannot reach the server through DNS
rebinding). Uploads are capped at :data:`MAX_UPLOAD_BYTES`. Every error is a JSON
``{"error": message}``; no traceback is ever sent or printed.

The routes of the contract (``/api/model``, ``/api/input``, ``/api/activation``,
``/api/saliency``, ``/api/gradcam``, ``/api/kernel``, ``/api/kernel/reset``) are joined
by the page's own:

- ``GET /api/state``: probabilities, class names, each layer's code, shapes and value
  range, the edited weights and what the input shows.
- ``GET /api/maps?layer=&start=&count=&which=output|input``: channels of a layer's
  output (or input) as base64 float32 little-endian, ``{"shape", "start", "data"}``.
- ``GET /api/prepared``: the prepared input, packed the same way.
- ``GET /api/detail?layer=&channel=&y=&x=``: how one value was computed
  (:func:`cnnkit.explore.details.explain`).
- ``GET /api/receptive_field?layer=&channel=&y=&x=``: ``{"box": [top, left, bottom,
  right], "method"}`` in input pixels.
- ``GET /api/overlay?kind=saliency|gradcam&class=&layer=``: the map at the input's size,
  scaled to [0, 1], packed.
- ``GET /api/samples`` and ``POST /api/sample`` ``{"name"}``: the bundled inputs.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from cnnkit.explore.session import ExploreError, NotFound, Session

__all__ = ["ExplorerServer", "MAX_UPLOAD_BYTES", "STATIC_DIR"]

#: The largest request body accepted (an uploaded picture), in bytes.
MAX_UPLOAD_BYTES = 20 * 2**20

#: The page's files (package data).
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")

#: Content types of the page's files, by suffix.
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

#: The page may load from this server only (and draw images it made itself).
_CONTENT_SECURITY = (
    "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: How often the serving loop checks whether it was asked to stop, in seconds.
POLL_SECONDS = 0.05

#: How many digits of the bundled data are offered as samples (one per class).
_DIGIT_SAMPLES = 10


class BodyTooLarge(Exception):
    """A request body over :data:`MAX_UPLOAD_BYTES` (answered 413)."""


def _array(values: np.ndarray) -> dict:
    return {"shape": list(values.shape), "values": np.asarray(values, np.float64).tolist()}


def _packed(values: np.ndarray) -> str:
    """Float32 little-endian bytes, base64: large maps travel 5x smaller than JSON lists."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


class ExplorerServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one :class:`~cnnkit.explore.session.Session`."""

    daemon_threads = True

    def __init__(
        self, session: Session, port: int = 0, host: str = "127.0.0.1", *, source: str | None = None
    ):
        self.session = session
        self.token = secrets.token_urlsafe(24)
        self.source = source
        super().__init__((host, port), _Handler)
        self.port = self.server_address[1]
        self.allowed_hosts = {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost", "[::1]")}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def handle_error(self, request, client_address) -> None:
        """A broken connection is the browser's business: nothing to print."""

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, args=(POLL_SECONDS,), name="cnnkit-explore", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    # -- samples ------------------------------------------------------------------------
    def samples(self) -> list[dict]:
        """The bundled inputs the page offers: digits for a digits model, pictures always."""
        from cnnkit.images import available_samples

        found = []
        if self.session.metadata.get("data") == "digits":
            found += [{"name": f"digit:{k}", "label": f"digit {k}"} for k in range(_DIGIT_SAMPLES)]
        found += [{"name": name, "label": name} for name in available_samples()]
        return found

    def load_sample(self, name: str) -> None:
        """Make a bundled sample the current input."""
        from cnnkit.images import available_samples, load_image

        if (
            isinstance(name, str)
            and name.startswith("digit:")
            and self.session.metadata.get("data") == "digits"
        ):
            from cnnkit.data import load_digits

            digit = name.partition(":")[2]
            _, test = load_digits()
            matches = np.flatnonzero(test.y == (int(digit) if digit.isdigit() else -1))
            if not len(matches):
                raise NotFound(f"no sample {name!r}")
            self.session.set_input(test.x[matches[0]])  # already a prepared digits input
        elif name in available_samples():
            self.session.set_image(load_image(name))
        else:
            raise NotFound(f"no sample {name!r}")
        self.source = name


class _Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    server_version = "cnnkit-explore"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:
        """Quiet: the terminal shows the address and errors reach the page."""

    # -- replies ------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CONTENT_SECURITY)
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, status: int = 200) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    # -- checks -------------------------------------------------------------------------
    def _host_allowed(self) -> bool:
        return self.headers.get("Host", "").strip().lower() in self.server.allowed_hosts

    def _token_ok(self, query: dict) -> bool:
        given = self.headers.get("X-Cnnkit-Token") or (query.get("token") or [""])[0]
        return secrets.compare_digest(given.encode(), self.server.token.encode())

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ExploreError("send the body with a Content-Length, not chunked")
        try:
            size = int(length or 0)
        except ValueError:
            raise ExploreError(f"bad Content-Length {length!r}") from None
        if size > MAX_UPLOAD_BYTES:
            self.close_connection = True  # the unread body must not be taken as a request
            raise BodyTooLarge(
                f"the body has {size} bytes; at most {MAX_UPLOAD_BYTES} are accepted"
            )
        return self.rfile.read(size) if size > 0 else b""

    # -- dispatch -------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            if not self._host_allowed():
                self.close_connection = True
                self._error(403, "refused: the Host header is not this computer's address")
                return
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if not parts.path.startswith("/api/"):
                self._static(parts.path, method)
                return
            if not self._token_ok(query):
                self._error(
                    403, "refused: missing or wrong token (open the address cnnkit explore printed)"
                )
                return
            route = _ROUTES.get((method, parts.path))
            if route is None:
                known = any(path == parts.path for _, path in _ROUTES)
                status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND
                self._error(status, f"no route {method} {parts.path}")
                return
            args = {key: values[-1] for key, values in query.items()}
            body = self._body() if method == "POST" else b""
            self._json(route(self.server, args, body))
        except BodyTooLarge as error:
            self._error(413, str(error))
        except NotFound as error:
            self._error(404, str(error.args[0] if error.args else error))
        except (ExploreError, ValueError, TypeError) as error:
            self._error(400, _one_line(error))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # noqa: BLE001 - the page gets a message, never a traceback
            self._error(500, f"internal error: {_one_line(error)}")

    def _static(self, path: str, method: str) -> None:
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        if (
            method != "GET"
            or "/" in name
            or name.startswith(".")
            or os.path.splitext(name)[1] not in _CONTENT_TYPES
        ):
            self._error(404, f"no page {path}")
            return
        file = os.path.join(STATIC_DIR, name)
        if not os.path.isfile(file):
            self._error(404, f"no page {path}")
            return
        with open(file, "rb") as handle:
            body = handle.read()
        self._send(200, body, _CONTENT_TYPES[os.path.splitext(name)[1]])


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _json_body(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExploreError(f"the body must be JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ExploreError("the body must be a JSON object")
    return payload


# -- routes: (server, query arguments, body) -> JSON-ready value ---------------------------
def _model(server, args, body):
    return server.session.model_info()


def _probabilities(server) -> list[float]:
    return server.session.probabilities.tolist()


def _post_input(server, args, body):
    from cnnkit.images import load_image

    if not body:
        raise ExploreError("the body is empty: send an image file's bytes")
    folder = tempfile.mkdtemp(prefix="cnnkit-explore-")
    path = os.path.join(folder, "upload")
    try:
        with open(path, "wb") as file:
            file.write(body)
        try:
            picture = load_image(path)
        except (ValueError, OSError) as error:
            raise ExploreError(_one_line(error).replace(path, "the uploaded file")) from None
    finally:
        os.unlink(path)
        os.rmdir(folder)
    server.session.set_image(picture)
    server.source = args.get("name") or "upload"
    return {
        "input_shape": list(server.session.input_shape),
        "probabilities": _probabilities(server),
    }


def _get_input(server, args, body):
    with server.session.lock:
        return _array(server.session.x)


def _activation(server, args, body):
    return _array(server.session.activation(args.get("layer"), args.get("channel", 0)))


def _saliency(server, args, body):
    return _array(server.session.saliency(args.get("class")))


def _gradcam(server, args, body):
    return _array(server.session.gradcam(args.get("layer"), args.get("class")))


def _kernel(server, args, body):
    payload = _json_body(body)
    server.session.set_weight(payload.get("layer"), payload.get("index"), payload.get("value"))
    return {"probabilities": _probabilities(server)}


def _kernel_reset(server, args, body):
    server.session.reset_weights()
    return {"probabilities": _probabilities(server)}


# Routes beyond the contract, for the page.
def _prepared(server, args, body):
    with server.session.lock:
        return {"shape": list(server.session.x.shape), "data": _packed(server.session.x)}


def _state(server, args, body):
    session = server.session
    with session.lock:
        return {
            "classes": session.classes,
            "input_shape": list(session.input_shape),
            "probabilities": _probabilities(server),
            "layers": session.layer_summary(),
            "edits": session.edits,
            "source": server.source,
            "final_softmax": session._final_softmax,
        }


def _maps(server, args, body):
    which = args.get("which", "output")
    if which not in ("output", "input"):
        raise ExploreError(f"which must be 'output' or 'input', got {which!r}")
    session = server.session
    with session.lock:
        values = session.maps(
            args.get("layer"), args.get("start", 0), args.get("count"), which=which
        )
        return {
            "shape": list(values.shape),
            "start": int(args.get("start", 0)),
            "data": _packed(values),
        }


def _detail(server, args, body):
    return server.session.detail(
        args.get("layer"), args.get("channel", 0), args.get("y", 0), args.get("x", 0)
    )


def _receptive_field(server, args, body):
    return server.session.receptive_field(
        args.get("layer"), args.get("y", 0), args.get("x", 0), args.get("channel", 0)
    )


def _overlay(server, args, body):
    values = server.session.overlay(args.get("kind"), args.get("class"), args.get("layer"))
    return {"shape": list(values.shape), "data": _packed(values)}


def _samples(server, args, body):
    return {"samples": server.samples()}


def _sample(server, args, body):
    server.load_sample(_json_body(body).get("name"))
    return {
        "input_shape": list(server.session.input_shape),
        "probabilities": _probabilities(server),
    }


_ROUTES = {
    ("GET", "/api/model"): _model,
    ("POST", "/api/input"): _post_input,
    ("GET", "/api/input"): _get_input,
    ("GET", "/api/activation"): _activation,
    ("GET", "/api/saliency"): _saliency,
    ("GET", "/api/gradcam"): _gradcam,
    ("POST", "/api/kernel"): _kernel,
    ("POST", "/api/kernel/reset"): _kernel_reset,
    ("GET", "/api/state"): _state,
    ("GET", "/api/prepared"): _prepared,
    ("GET", "/api/maps"): _maps,
    ("GET", "/api/detail"): _detail,
    ("GET", "/api/receptive_field"): _receptive_field,
    ("GET", "/api/overlay"): _overlay,
    ("GET", "/api/samples"): _samples,
    ("POST", "/api/sample"): _sample,
}
