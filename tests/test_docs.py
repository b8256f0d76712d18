"""The documentation site builds offline without a single warning (Sphinx's -W)."""

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


class _Page(HTMLParser):
    """The <img> sources and the text of one built page."""

    def __init__(self):
        super().__init__()
        self.images, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def _read(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"  # nothing listens there: any download fails
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return out


@pytest.mark.slow
def test_api_reference_has_a_page_per_public_function(site):
    """conv2d's page shows its parameters and its example; the index links every module."""
    page = " ".join(_read(site / "generated/api/cnnkit.functional.conv2d.html").text)
    assert "padding_mode" in page and "Examples" in page and "Returns" in page
    index = " ".join(_read(site / "generated/api.html").text)
    for name in ("cnnkit.nn", "Conv2d", "max_pool2d", "fit", "load_image"):
        assert name in index


@pytest.mark.slow
def test_notebooks_are_rendered_with_their_outputs(site):
    """Each notebook page carries the figures its cells drew (stored notebooks have none)."""
    pages = sorted((site / "generated/notebooks").glob("*.html"))
    assert len(pages) == 4
    for path in pages:
        images = [src for src in _read(path).images if "_images/" in src]
        assert images, f"{path.name} shows no output figure"
        for src in images:
            assert (path.parent / src).resolve().is_file(), src


@pytest.mark.slow
def test_tour_pictures_and_cli_help(site):
    """The tour page shows the tour's pictures; the CLI page holds every command's --help."""
    tour = _read(site / "generated/tour.html")
    assert len(tour.images) >= 8
    for src in tour.images:
        assert (site / "generated" / src).resolve().is_file(), src
    cli = "".join(_read(site / "cli.html").text)
    from cnnkit.cli import COMMANDS

    for command in COMMANDS:
        assert f"usage: cnnkit {command}" in cli
