"""The notebooks in ``notebooks/`` run top to bottom, offline, and are stored without outputs."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = [
    "01_convolution.ipynb",
    "02_images_and_kernels.ipynb",
    "03_relu_pooling_normalisation.ipynb",
    "04_train_a_cnn.ipynb",
]
CELL_TIMEOUT_S = 120
# Any attempt to reach the network fails at once instead of downloading or hanging.
DEAD_PROXY = "http://127.0.0.1:9"


def _read(path: Path):
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def test_the_series_is_complete():
    """The walkthrough's notebooks are all there, in order."""
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    """A stored notebook is valid and has no outputs or execution counts, so diffs stay small."""
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} has stored outputs"
            assert cell.execution_count is None, f"cell {index} has an execution count"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, tmp_path, monkeypatch):
    """Every cell runs without an error, offline, and writes nothing to stderr (no warnings)."""
    # The kernel inherits this environment: a headless matplotlib and no network.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, DEAD_PROXY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    nb = _read(path)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error

    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"cell {index} did not run"
        for output in cell.outputs:
            assert output.output_type != "error", f"cell {index}: {output.get('ename')}"
            if output.output_type == "stream" and output.name == "stderr":
                pytest.fail(f"cell {index} wrote to stderr:\n{output.text}")
