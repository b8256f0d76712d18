"""``cnnkit explore``: the --html export, usage errors, and a real server stopped by Ctrl-C."""

import base64
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from explore_models import CLASSES, INPUT_SHAPE, Client, png_bytes, varied_model

import cnnkit as ck
from cnnkit.cli import main
from cnnkit.preprocessing import prepare_image


@pytest.fixture
def saved(tmp_path, rng):
    model = varied_model()
    path = tmp_path / "model.npz"
    ck.save(model, path, classes=CLASSES, input_shape=INPUT_SHAPE)
    picture = tmp_path / "picture.png"
    picture.write_bytes(png_bytes(rng.uniform(0, 1, (25, 18, 3))))
    return model, path, picture


def embedded(page: str) -> dict:
    match = re.search(r"globalThis\.CNNKIT_EXPORT = (.*?);</script>", page, re.DOTALL)
    return json.loads(match.group(1))


def test_html_export_holds_every_layers_maps(saved, tmp_path, capsys):
    """--html: one page whose embedded maps equal the model's layers on the prepared image."""
    model, path, picture = saved
    out = tmp_path / "sub" / "page.html"
    assert main(["explore", str(path), "--image", str(picture), "--html", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert "/static/" not in page and "http://" not in page and "https://" not in page
    assert not re.search(r"^(import|export)\s", page, re.MULTILINE)  # one inlined script
    data = embedded(page)
    x = prepare_image(ck.load_image(str(picture)), INPUT_SHAPE)
    shown = np.frombuffer(base64.b64decode(data["prepared"]["data"]), "<f4")
    np.testing.assert_array_equal(shown.reshape(data["prepared"]["shape"]), x)
    h = x[None]
    for index, layer in enumerate(model):
        h = layer(h)
        saved_map = data["maps"][str(index)]
        values = np.frombuffer(base64.b64decode(saved_map["data"]), "<f4").reshape(
            saved_map["shape"]
        )
        expected = h[0] if h.ndim == 4 else h
        np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)
    assert data["state"]["classes"] == CLASSES
    assert data["state"]["source"] == str(picture)


@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["explore", "--port", "-3"], 2, "--port"),
        (["explore", "--port", "99999"], 2, "--port"),
        (["explore", "--html", "page.png"], 2, "--html"),
        (["explore", "missing.npz", "--html", "x.html"], 1, "missing.npz"),
        (
            ["explore", "--image", "no-such-picture.png", "--html", "x.html"],
            1,
            "no-such-picture.png",
        ),
    ],
)
def test_usage_and_input_errors_are_one_line(argv, code, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert words in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow
def test_server_answers_then_stops_cleanly_on_ctrl_c(saved):
    """A real `cnnkit explore` process: prints the address, serves, exits 0 on SIGINT."""
    _, path, _ = saved
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnkit", "explore", str(path), "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        url = line.split()[-1]
        assert url.startswith("http://127.0.0.1:") and "token=" in url
        assert Client(url).get("/api/model")["classes"] == CLASSES
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "Traceback" not in err and "stopped" in err
