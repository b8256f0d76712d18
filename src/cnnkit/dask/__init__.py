"""Past one machine: images larger than memory and folders of many images, on Dask.

Needs the ``dask`` extra (``pip install 'cnnkit[dask]'``: dask, distributed, zarr,
tifffile); ``import cnnkit`` does not import any of them. Everything here builds lazy
Dask collections, which run on whatever scheduler is active: the threads of this
process, a ``distributed.LocalCluster`` or a remote cluster.

- :func:`filter2d` and :func:`conv2d`: the in-memory :func:`cnnkit.filter2d` and
  :func:`cnnkit.functional.conv2d` over blocks of a chunked image, with the same result
  for any chunking (padding is applied at the true image edges only).
- :func:`read_image` and :func:`write_image`: TIFF, Zarr and ordinary pictures in,
  Zarr and tiled TIFF out, block by block.
- :func:`predict`: a folder of pictures classified in parallel, one result per file.

Examples
--------
>>> import dask.array as da
>>> import numpy as np
>>> import cnnkit as ck
>>> from cnnkit import dask as ckd
>>> big = da.random.default_rng(0).random((512, 512), chunks=128).astype(np.float32)
>>> edges = ckd.filter2d(big, ck.kernels.get("laplacian"), padding="same")
>>> edges
dask.array<_filter_block, shape=(512, 512), dtype=float32, chunksize=(128, 128), chunktype=numpy.ndarray>
"""

from __future__ import annotations

try:
    import dask.array
    import dask.bag  # noqa: F401
except ImportError as error:  # pragma: no cover - the extra is installed in tests and CI
    raise ImportError(
        f"cnnkit.dask needs the dask extra: pip install 'cnnkit[dask]' ({error})"
    ) from None

from cnnkit.dask._convolve import conv2d, filter2d
from cnnkit.dask._io import read_image, write_image
from cnnkit.dask._predict import image_files, predict

__all__ = ["filter2d", "conv2d", "read_image", "write_image", "predict", "image_files"]
