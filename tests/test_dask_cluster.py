"""cnnkit.dask end to end on a real dask.distributed LocalCluster with worker processes.

One cluster for the whole session (two single-threaded worker processes, to fit small
machines): a tiled TIFF written here is filtered to Zarr and compared with the
in-memory filter; a folder of pictures, some corrupt, is classified and compared with
``cnnkit predict``.
"""

import csv
import logging

import numpy as np
import pytest
from distributed import Client, LocalCluster

import cnnkit as ck
from cnnkit import dask as ckd
from cnnkit.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def cluster():
    """A LocalCluster of two worker processes with one thread each, for the session."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as local:
        yield local


@pytest.fixture
def client(cluster):
    with Client(cluster) as connected:
        yield connected


def test_tiled_tiff_filtered_to_zarr_on_the_cluster(client, tmp_path):
    """TIFF tiles in, Zarr out, on worker processes: the in-memory result."""
    import tifffile

    rng = np.random.default_rng(7)
    pixels = (rng.random((300, 260, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "scan.tif", pixels, tile=(64, 64))
    in_memory_image = pixels.astype(np.float32) / np.float32(255)
    kernel = ck.kernels.get("sobel_top").astype(np.float32)
    for mode, stride in [("reflect", 1), ("circular", 2)]:
        image = ckd.read_image(tmp_path / "scan.tif", chunks=(96, 80, 3))
        response = ckd.filter2d(image, kernel, stride=stride, padding="same", padding_mode=mode)
        assert response.name.startswith("filter2d-")  # each block read with its halo
        out = ckd.write_image(response, tmp_path / f"{mode}.zarr")
        written = ckd.read_image(out).compute()
        expected = ck.filter2d(
            in_memory_image, kernel, stride=stride, padding="same", padding_mode=mode
        )
        assert written.shape == expected.shape
        np.testing.assert_allclose(written, expected, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def picture_folder(tmp_path_factory):
    """A digits model and a folder of 30 pictures (nested) with 5 unreadable files."""
    from PIL import Image

    from cnnkit.models import digits_cnn

    root = tmp_path_factory.mktemp("predict")
    network = digits_cnn(rng=3)
    network.parameters()[-2].data *= 40  # spread the logits: no near-ties between classes
    model = ck.save(
        network,
        root / "digits.npz",
        input_shape=(1, 8, 8),
        classes=[f"digit {k}" for k in range(10)],
    )
    folder = root / "pictures"
    (folder / "more").mkdir(parents=True)
    rng = np.random.default_rng(11)
    good = []
    for k in range(30):
        side = int(rng.integers(8, 40))
        pixels = (rng.random((side, side)) * 255).astype(np.uint8)
        path = folder / ("more" if k % 3 == 0 else ".") / f"img{k:02d}.png"
        Image.fromarray(pixels).save(path)
        good.append(path.resolve())
    (folder / "truncated.png").write_bytes((folder / "img01.png").read_bytes()[:60])
    (folder / "text.png").write_text("not a picture")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("a stray file")
    (folder / "more" / "garbage.tif").write_bytes(b"II*\x00garbage")
    return model, folder, good


def in_memory_lines(capsys, model, paths):
    """`cnnkit predict MODEL PATHS --top 1` output: {path: (label, percent text)}."""
    assert main(["predict", str(model), *map(str, paths), "--top", "1"]) == 0
    lines = {}
    for line in capsys.readouterr().out.splitlines():
        source, _, rest = line.rpartition(": ")
        label, _, percent = rest.rpartition(" (")
        lines[source] = (label, percent.rstrip(")"))
    return lines


def test_predict_folder_to_csv_on_the_cluster(cluster, picture_folder, tmp_path, capsys):
    """Every file gets a row; readable ones equal `cnnkit predict`, corrupt ones an error."""
    model, folder, _good = picture_folder
    out = tmp_path / "labels.csv"
    status = main(
        [
            "predict",
            str(model),
            str(folder),
            "--csv",
            str(out),
            "--scheduler",
            cluster.scheduler_address,
            "--batch-size",
            "8",
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    assert "5 of 35 images could not be read" in captured.err
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["source"] for row in rows] == ckd.image_files(folder)  # every file, in order
    errors = {row["source"].rsplit("/", 1)[-1] for row in rows if row["error"]}
    assert errors == {"truncated.png", "text.png", "empty.jpg", "notes.txt", "garbage.tif"}
    expected = in_memory_lines(capsys, model, [row["source"] for row in rows if not row["error"]])
    assert len(expected) == 30
    for row in rows:
        if not row["error"]:
            label, percent = expected[row["source"]]
            assert row["label"] == label
            assert f"{float(row['probability']):.1%}" == percent


def test_predict_bag_equals_the_in_memory_pipeline(client, picture_folder):
    """The library call: results in input order, probabilities as `cnnkit predict` computes."""
    import argparse

    from cnnkit.commands.predict import prepare
    from cnnkit.serialization import load_model
    from cnnkit.train import predict_proba

    model_path, folder, good = picture_folder
    sources = [str(p) for p in good[::-1]] + [str(folder / "text.png")]
    results = ckd.predict(model_path, sources, batch_size=7).compute()
    assert [r["source"] for r in results] == sources
    assert "error" in results[-1] and "text.png" in results[-1]["error"]
    model, metadata = load_model(model_path)
    args = argparse.Namespace(invert="auto", no_crop=False)
    x = np.concatenate([prepare(ck.load_image(s), metadata, args) for s in sources[:-1]])
    expected = predict_proba(model, x)
    got = np.array([r["probabilities"] for r in results[:-1]])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert [r["index"] for r in results[:-1]] == expected.argmax(axis=1).tolist()


def test_predict_partitions_travel_as_one_pickle(client, picture_folder):
    """A task's results go to the client in one pickle call, not one per image (which
    costs more than classifying the image), and arrive as the rows, in order."""
    from distributed.protocol.serialize import Serialize, serialize

    model_path, _, good = picture_folder
    sources = [str(p) for p in good]
    parts = client.gather(client.compute(ckd.predict(model_path, sources).to_delayed()))
    header, frames = serialize(Serialize(parts[0]))
    assert header.get("serializer") == "pickle" and len(frames) == 1
    assert [row["source"] for part in parts for row in part] == sources


def test_predict_csv_is_not_written_when_the_run_fails(cluster, picture_folder, tmp_path, capsys):
    """A model that cannot be loaded fails the run (exit 1) and leaves no CSV behind."""
    _, folder, _ = picture_folder
    bad_model = tmp_path / "bad.npz"
    bad_model.write_bytes(b"not a model")
    out = tmp_path / "labels.csv"
    status = main(
        [
            "predict",
            str(bad_model),
            str(folder),
            "--csv",
            str(out),
            "--scheduler",
            cluster.scheduler_address,
        ]
    )
    assert status == 1
    assert "bad.npz" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [bad_model]


def test_predict_on_local_processes_prints_like_cnnkit_predict(picture_folder, capsys):
    """Without --scheduler, a folder runs on local worker processes; same lines as in memory."""
    model, folder, _good = picture_folder
    sub = folder / "more"
    assert main(["predict", str(model), str(sub), "--workers", "2", "--top", "1"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "error" not in line]
    assert len(lines) == 10
    assert "garbage.tif" in captured.err
    expected = in_memory_lines(capsys, model, [line.rpartition(": ")[0] for line in lines])
    for line in lines:
        source, _, rest = line.rpartition(": ")
        assert rest == f"{expected[source][0]} ({expected[source][1]})"
