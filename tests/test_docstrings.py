"""numpydoc validation of every public function and class (the API reference's list).

Each must have a one-line summary, Parameters and Returns that match its signature, and
an Examples section whose doctest shows an output to compare against (an example that
prints nothing cannot fail). The doctests themselves run with `--doctest-modules`.
"""

import importlib
import sys
from pathlib import Path

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc
from numpydoc.validate import validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))
from cnnkit_docs import PUBLIC_MODULES, public_names

# Checks not enforced: an extended summary and a See Also section are optional; a
# Returns entry may carry a name ("out : ndarray of shape (N, C, H, W)"), as in NumPy's
# own docs; a summary may be a noun phrase ("Gradients of ..."), which SS05 misreads as
# a verb in the third person.
IGNORED = {"ES01", "SA01", "SA04", "RT02", "SS05"}

PUBLIC = [f"{module}.{name}" for module in PUBLIC_MODULES for name in public_names(module)]


def _object(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _problems(path):
    errors = [
        f"{code}: {message}" for code, message in validate(path)["errors"] if code not in IGNORED
    ]
    obj = _object(path)
    doc = ClassDoc(obj) if isinstance(obj, type) else FunctionDoc(obj)
    lines = [line.strip() for line in doc["Examples"]]
    if not any(line.startswith(">>>") for line in lines):
        errors.append("no example")
    elif not [line for line in lines if line and not line.startswith((">>>", "..."))]:
        errors.append("its example shows no output, so it cannot fail")
    return errors


def test_the_public_api_is_found():
    """The list covers the main entry points (so an empty list cannot pass the checks)."""
    for path in (
        "cnnkit.functional.conv2d",
        "cnnkit.nn.Conv2d",
        "cnnkit.train.fit",
        "cnnkit.images.load_image",
        "cnnkit.optim.Adam",
    ):
        assert path in PUBLIC
    assert len(PUBLIC) >= 100


@pytest.mark.parametrize("path", PUBLIC)
def test_docstring_is_valid_numpydoc_with_an_example(path):
    """No numpydoc validation error outside IGNORED, and an example with an output."""
    problems = _problems(path)
    assert not problems, "\n".join([path, *problems])
