"""Sphinx configuration of the cnnkit documentation site.

Build it with ``python -m sphinx -W -b html docs docs/_build/html``. The build is offline:
the notebooks are executed, the tour's pictures drawn and the command-line reference
taken from each command's ``--help`` while it runs (see ``_ext/cnnkit_docs.py``).
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import cnnkit  # noqa: E402

project = "cnnkit"
author = "The cnnkit contributors"
copyright = "2026, The cnnkit contributors"
release = cnnkit.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "cnnkit_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# API reference: one page per public object, from its numpydoc docstring.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc Parameters section says it, with shapes
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Notebooks: stored without outputs, executed at every build and shown with them.
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
# The notebooks draw with the inline backend; a headless Agg inherited from the test
# environment would leave their figures out.
os.environ.pop("MPLBACKEND", None)

html_theme = "pydata_sphinx_theme"
html_title = f"cnnkit {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
# Pages without sub-pages get the full width instead of an empty navigation column.
html_sidebars = {
    page: [] for page in ("index", "cli", "generated/tour", "contributing", "changelog")
}
html_static_path: list[str] = []
html_last_updated_fmt = None
