"""Parts of the cnnkit site made at build time, offline, from the package itself.

- the notebooks in ``notebooks/`` are copied to ``generated/notebooks`` (MyST-NB then
  executes them and shows their outputs);
- ``cnnkit tour`` runs into ``generated/tour`` and its pictures become ``generated/tour.rst``;
- the API reference, ``generated/api.rst``, lists every name in each public module's
  ``__all__`` (autosummary then makes a page per name from its numpydoc docstring);
- the ``cnnkit-help`` directive prints the command line's ``--help`` texts.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

REPO = Path(__file__).resolve().parents[2]
HELP_COLUMNS = "78"

#: The public modules, in the order the API reference shows them: every name in their
#: ``__all__`` is documented, and its docstring is validated by tests/test_docstrings.py.
PUBLIC_MODULES = [
    "cnnkit",
    "cnnkit.functional",
    "cnnkit.nn",
    "cnnkit.optim",
    "cnnkit.kernels",
    "cnnkit.filtering",
    "cnnkit.images",
    "cnnkit.layout",
    "cnnkit.plot",  # the public name of cnnkit.viz
    "cnnkit.data",
    "cnnkit.preprocessing",
    "cnnkit.models",
    "cnnkit.train",
    "cnnkit.serialization",
    "cnnkit.onnx",
    "cnnkit.dask",
    "cnnkit.explore",
    "cnnkit.cli",
]


def public_names(module_name: str) -> list[str]:
    """The documented functions and classes of a public module: its ``__all__``, less
    submodules, constants (described in the module's docstring) and re-exports that are
    documented where they are defined."""
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    names = []
    for name in module.__all__:
        value = getattr(module, name)
        if not (inspect.isfunction(value) or inspect.isclass(value)):
            continue
        home = getattr(value, "__module__", module_name)
        if home != module_name and home in PUBLIC_MODULES and module_name == "cnnkit":
            continue  # ck.filter2d is documented as cnnkit.filtering.filter2d
        names.append(name)
    return names


def _write_api(generated: Path) -> None:
    import importlib

    lines = [
        "API reference",
        "=============",
        "",
        "Every public function and class, one page each, from its docstring. Names follow",
        "PyTorch's where they exist; :doc:`the contract <../API>` fixes names, arguments,",
        "shapes and errors.",
        "",
    ]
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().split("\n\n")[0]
        lines += [f"``{module_name}``", "-" * (len(module_name) + 4), "", summary, ""]
        if module_name == "cnnkit":
            lines += [
                "The package root also gives short names to the most used functions:",
                "``ck.filter2d``, ``ck.load_image``, ``ck.save``, ``ck.load`` (documented",
                "below in their modules) and the submodules, imported on first use.",
                "",
            ]
        names = public_names(module_name)
        if names:
            lines += [
                f".. currentmodule:: {module_name}",
                "",
                ".. autosummary::",
                "   :toctree: api",
                "",
                *(f"   {name}" for name in names),
                "",
            ]
    (generated / "api.rst").write_text(
        "\n".join(lines), encoding="utf-8"
    )  # argparse wraps --help to $COLUMNS; fixed so the page is stable


def _copy_notebooks(generated: Path) -> None:
    target = generated / "notebooks"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)


class _TourPage(HTMLParser):
    """Reads the tour's index.html: its sections, printed examples and figures."""

    def __init__(self):
        super().__init__()
        self.items: list[tuple[str, str]] = []  # (kind, text): h2, p, pre, img, caption
        self._open: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.items.append(("img", dict(attrs)["src"]))
        elif tag in ("h2", "p", "pre", "figcaption"):
            self._open, self._text = tag, ""

    def handle_endtag(self, tag):
        if tag == self._open:
            self.items.append((tag, self._text))
            self._open = None

    def handle_data(self, data):
        if self._open:
            self._text += data


def _rst_text(text: str) -> str:
    """Plain text safe in reStructuredText (no markup characters interpreted)."""
    for char in "\\*`_|":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


def _write_tour(generated: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from cnnkit.cli import main

    out = generated / "tour"
    shutil.rmtree(out, ignore_errors=True)
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()) as err,
    ):
        code = main(["tour", "--out", str(out), "--quiet"])
    if code != 0:
        raise RuntimeError(f"cnnkit tour failed with exit status {code}: {err.getvalue()}")
    page = _TourPage()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    lines = [
        "The tour's pictures",
        "===================",
        "",
        "Every picture that ``cnnkit tour`` writes, drawn while these pages were built, on the",
        "bundled photo of Chelsea the cat. Run it yourself with ``cnnkit tour`` (it writes",
        "the same files and an ``index.html`` to ``./cnnkit-tour``).",
        "",
    ]
    image, in_section = None, False
    for kind, text in page.items:
        if kind == "h2":
            in_section = True
            lines += [_rst_text(text), "-" * len(_rst_text(text)), ""]
        elif kind == "p" and in_section:  # the page's own preamble is replaced above
            lines += [_rst_text(text), ""]
        elif kind == "pre":
            lines += [".. code-block:: text", ""]
            lines += ["    " + line for line in text.splitlines()] + [""]
        elif kind == "img":
            image = text
        elif kind == "figcaption" and image is not None:
            lines += [
                f".. figure:: tour/{image}",
                "   :width: 100%",
                "",
                "   " + _rst_text(text),
                "",
            ]
            image = None
    (generated / "tour.rst").write_text("\n".join(lines), encoding="utf-8")


def _generate(app, config) -> None:
    generated = Path(app.srcdir) / "generated"
    shutil.rmtree(generated, ignore_errors=True)  # no page left over from an older build
    generated.mkdir()
    _write_api(generated)
    _copy_notebooks(generated)
    _write_tour(generated)


def _help(parser, argv: list[str]) -> str:
    """What ``cnnkit ARGV`` prints (argv ends with --help)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.suppress(SystemExit):
        parser.parse_args(argv)
    return printed.getvalue()


class CnnkitHelp(Directive):
    """``.. cnnkit-help::``: ``cnnkit --help`` and each command's ``--help``, as literal blocks."""

    def run(self):
        from cnnkit.cli import COMMANDS, get_parser

        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = HELP_COLUMNS
        try:
            parser = get_parser()
            sections = [("cnnkit", _help(parser, ["--help"]))]
            sections += [(f"cnnkit {name}", _help(parser, [name, "--help"])) for name in COMMANDS]
        finally:
            if previous is None:
                os.environ.pop("COLUMNS")
            else:
                os.environ["COLUMNS"] = previous
        result = []
        for title, text in sections:
            section = nodes.section(
                ids=[nodes.make_id(title)], names=[nodes.fully_normalize_name(title)]
            )
            section += nodes.title(text=title)
            block = nodes.literal_block(text, text)
            block["language"] = "text"
            section += block
            result.append(section)
        return result


def _skip_foreign_member(app, what, name, obj, skip, options):
    """Document a class's own members only: not those a base class (matplotlib's
    Figure) generates, whose docstrings use that project's Sphinx roles."""
    module = getattr(obj, "__module__", None) or "cnnkit"
    return True if not module.startswith("cnnkit") else None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_member)
    # Before Sphinx looks for the source files and autosummary for the pages it must make.
    app.connect("config-inited", _generate)
    app.add_directive("cnnkit-help", CnnkitHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
