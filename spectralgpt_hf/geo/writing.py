# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Write GeoTIFF outputs atomically: a file appears under its name only once complete."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio

from ..utils.atomic import atomic_file


@contextlib.contextmanager
def open_geotiff_for_writing(
    path: str | os.PathLike,
    *,
    height: int,
    width: int,
    count: int,
    dtype,
    crs,
    transform: rasterio.Affine,
    band_descriptions: Sequence[str] | None = None,
    nodata: float | None = None,
    **creation_options,
) -> Iterator[rasterio.io.DatasetWriter]:
    """An open GeoTIFF writer whose file appears at `path` only once the `with` block completes.

    Write whole arrays or windows into it (`writer.write(array, window=...)`); the file is written under a
    temporary name in the target folder and renamed over `path` at the end, so `path` never holds a partial file;
    on any error (or interruption) the temporary file is removed. `creation_options` go to the GTiff driver
    (default compression: deflate).
    """
    path = Path(path)
    if not rasterio.dtypes.check_dtype(np.dtype(dtype)):
        raise ValueError(f"GeoTIFF cannot store dtype {np.dtype(dtype)}; convert the array, e.g. to float32.")
    if band_descriptions is not None and len(band_descriptions) != count:
        raise ValueError(f"{len(band_descriptions)} band descriptions given for an array with {count} bands.")
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": np.dtype(dtype),
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        **creation_options,
    }
    with atomic_file(path) as temporary, rasterio.open(temporary, "w", **profile) as destination:
        for index, description in enumerate(band_descriptions or (), start=1):
            destination.set_band_description(index, description)
        yield destination


def write_geotiff(
    path: str | os.PathLike,
    array: np.ndarray,
    crs,
    transform: rasterio.Affine,
    *,
    band_descriptions: Sequence[str] | None = None,
    nodata: float | None = None,
    **creation_options,
) -> Path:
    """Write a (H, W) or (C, H, W) array as a GeoTIFF, atomically (see `open_geotiff_for_writing`).

    Boolean arrays are written as uint8.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"write_geotiff needs a (H, W) or (C, H, W) array, got shape {array.shape}.")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    count, height, width = array.shape
    with open_geotiff_for_writing(
        path,
        height=height,
        width=width,
        count=count,
        dtype=array.dtype,
        crs=crs,
        transform=transform,
        band_descriptions=band_descriptions,
        nodata=nodata,
        **creation_options,
    ) as destination:
        destination.write(array)
    return Path(path)
