"""The explorer's page as one self-contained HTML file: the current input's maps, no server.

The page's own modules are inlined (their ``import`` lines dropped, as they then share
one scope) and the data the API would have answered is embedded as JSON, so the file
opens anywhere, offline, and can be shared. Clicking a cell for its numbers needs the
live explorer; the saved page says so.
"""

from __future__ import annotations

import json
import os
import re

from cnnkit.explore.server import STATIC_DIR, _packed

__all__ = ["render_html", "write_html"]

#: The page's modules, each after the modules it imports.
MODULES = ("colormap.js", "api.js", "overview.js", "input.js", "detail.js", "main.js")

_IMPORT = re.compile(r"^import\s[^;]*;\s*$", re.MULTILINE)
_EXPORT = re.compile(r"^export\s+", re.MULTILINE)


def _read(name: str) -> str:
    with open(os.path.join(STATIC_DIR, name), encoding="utf-8") as file:
        return file.read()


def _script_json(value) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def export_data(session, source=None) -> dict:
    """What the page reads from the API, for the current input."""
    with session.lock:
        state = {
            "classes": session.classes,
            "input_shape": list(session.input_shape),
            "probabilities": session.probabilities.tolist(),
            "layers": session.layer_summary(),
            "edits": session.edits,
            "source": source,
            "final_softmax": session._final_softmax,
        }
        maps = {}
        for name in session.layers:
            values = session.maps(name)
            maps[name] = {"shape": list(values.shape), "data": _packed(values)}
        prepared = {"shape": list(session.x.shape), "data": _packed(session.x)}
        return {"state": state, "maps": maps, "prepared": prepared}


def render_html(session, source=None) -> str:
    """The self-contained page (a str) for `session`'s current input."""
    page = _read("index.html")
    style = _read("style.css")
    script = "\n".join(_EXPORT.sub("", _IMPORT.sub("", _read(name))) for name in MODULES)
    data = _script_json(export_data(session, source))
    page = page.replace(
        '<link rel="stylesheet" href="/static/style.css">', f"<style>\n{style}</style>"
    )
    script = script.replace("</script", "<\\/script")
    page = page.replace(
        '<script type="module" src="/static/main.js"></script>',
        f"<script>globalThis.CNNKIT_EXPORT = {data};</script>\n"
        f'<script type="module">\n{script}</script>',
    )
    return page.replace(
        "<title>cnnkit explore</title>", "<title>cnnkit explore (saved page)</title>"
    )


def write_html(session, path, source=None) -> str:
    """Write :func:`render_html` to `path` atomically; return the path."""
    from cnnkit.commands._common import atomic_path

    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        file.write(render_html(session, source))
    return os.fspath(path)
