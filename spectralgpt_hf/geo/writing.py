# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Write GeoTIFF and Cloud-Optimized GeoTIFF outputs atomically: a file appears under its name only once complete."""

from __future__ import annotations

import contextlib
import json
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


# Classic TIFF addresses at most 4 GiB; the uncompressed size (with overviews, a third more) decides, since the
# compressed size is not known until the end: a compressed file under that estimate cannot overflow.
CLASSIC_TIFF_LIMIT = 2**32
OVERVIEW_FACTOR = 4 / 3
OVERVIEW_MAX_BANDS = 64
OUTPUT_FORMATS = ("cog", "gtiff")
OUTPUT_DTYPES = ("float32", "float16")


def bigtiff_needed(height: int, width: int, count: int, dtype, overviews: bool = True) -> bool:
    """Whether a raster of this size may not fit in a classic TIFF: its uncompressed size (plus overviews and a
    margin for the file's own structures) exceeds 4 GiB."""
    size = height * width * count * np.dtype(dtype).itemsize * (OVERVIEW_FACTOR if overviews else 1.0)
    return size > 0.95 * CLASSIC_TIFF_LIMIT


def has_overviews(count: int) -> bool:
    """Whether a COG output of `count` bands gets internal overviews: class maps and scores do; embeddings (more
    than `OVERVIEW_MAX_BANDS` bands) do not, as GDAL 3.10 builds the overviews of a pixel-interleaved file of
    hundreds of bands so slowly (768 bands, 1100 px: over 400 s, against 49 s for the whole conversion without
    them) that a full Sentinel-2 tile would take hours, for overviews of vectors that few would view."""
    return count <= OVERVIEW_MAX_BANDS


def class_colormap(num_classes: int, nodata: int | None = 255) -> dict[int, tuple[int, int, int, int]]:
    """A colour per class (distinct hues, the same for every run) and transparent nodata, for a uint8 class map."""
    colours = {}
    for index in range(num_classes):
        hue = (index * 0.618033988749895) % 1.0  # golden-ratio steps keep neighbouring classes apart
        red, green, blue = _hsv_to_rgb(hue, 0.65, 0.95)
        colours[index] = (red, green, blue, 255)
    if nodata is not None:
        colours[int(nodata)] = (0, 0, 0, 0)
    return colours


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    import colorsys

    return tuple(round(channel * 255) for channel in colorsys.hsv_to_rgb(hue, saturation, value))


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike,
    *,
    dtype,
    output_format: str = "cog",
    output_dtype: str | None = None,
    compress: str = "zstd",
    class_names: Sequence[str] | None = None,
    tags: dict[str, str] | None = None,
    **grid,
) -> Iterator[rasterio.io.DatasetWriter]:
    """An open writer for a model output; the file appears at `path` complete, or not at all.

    `output_format` "cog" (default) writes a Cloud-Optimized GeoTIFF (GDAL's COG driver, internal overviews,
    predictor, `compress`), "gtiff" a tiled GeoTIFF (predictor, `compress`); both in 512 px tiles, except outputs of
    more than `OVERVIEW_MAX_BANDS` bands (embeddings): 128 px tiles and no overviews (`has_overviews`). Both are
    written as a GeoTIFF of strips beside the output first and converted at the end: writing rows into strips
    needs no block to be read back, however many bands the output has, where writing rows into 512 px tiles of
    hundreds of bands would hold (or re-read) every tile of a row of tiles. BigTIFF is used when `bigtiff_needed`.
    `output_dtype="float16"` stores float32 values as 16-bit floats (half the size; read back as float32).
    `class_names` (for uint8 class maps) adds a colour table and the names, as JSON, in the `class_names` tag.
    `grid`: the file's size, bands and georeferencing as `open_geotiff_for_writing` takes them (height, width,
    count, crs, transform, nodata, ...).
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}.")
    if output_dtype not in (None, *OUTPUT_DTYPES):
        raise ValueError(f"output dtype must be one of {OUTPUT_DTYPES}, got {output_dtype!r}.")
    half = output_dtype == "float16"
    if half and np.dtype(dtype) != np.float32:
        raise ValueError(f"float16 output is for float outputs (embeddings, scores), not {np.dtype(dtype)}.")
    bigtiff = bigtiff_needed(
        grid["height"], grid["width"], grid["count"], np.float16 if half else dtype,
        overviews=output_format == "cog" and has_overviews(grid["count"]),
    )
    staging_options = {"tiled": False, "blockysize": STAGING_STRIP_ROWS, "compress": "zstd", "zstd_level": 1}
    with contextlib.ExitStack() as stack:
        final = stack.enter_context(atomic_file(path))
        staging = stack.enter_context(_temporary_beside(Path(path), ".staging.tif"))
        staging_options["bigtiff"] = "YES" if bigtiff_needed(grid["height"], grid["width"], grid["count"], dtype,
                                                             overviews=False) else "NO"  # fmt: skip
        with open_geotiff_for_writing(staging, dtype=dtype, **grid, **staging_options) as destination:
            if class_names is not None:
                destination.write_colormap(1, class_colormap(len(class_names), grid.get("nodata")))
                destination.update_tags(class_names=json.dumps(list(class_names)))
            if tags:
                destination.update_tags(**tags)
            yield destination
        _convert(staging, final, output_format, dtype, compress, bigtiff, half, class_names is not None)


# Rows per strip of the staging file: small, so that a strip of tile rows in progress covers few partial strips.
STAGING_STRIP_ROWS = 16
OUTPUT_BLOCK_SIZE = 512
MANY_BAND_BLOCK_SIZE = 128
MINIMUM_CONVERSION_CACHE = 64 * 2**20


@contextlib.contextmanager
def _temporary_beside(path: Path, suffix: str) -> Iterator[Path]:
    temporary = path.with_name(f".{path.name}{suffix}")
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".aux.xml").unlink(missing_ok=True)


def _convert(source: Path, destination: Path, output_format, dtype, compress, bigtiff, half, categorical) -> None:
    import rasterio.shutil

    with rasterio.open(source) as staging:
        count = staging.count
        row_bytes = staging.width * count * np.dtype(staging.dtypes[0]).itemsize
    # A pixel-interleaved block holds every band: 512 px blocks of 768 bands are 805 MB each, so outputs of many
    # bands get smaller blocks.
    block = OUTPUT_BLOCK_SIZE if has_overviews(count) else MANY_BAND_BLOCK_SIZE
    # Both drivers read the staging strips by output blocks, one band at a time, and GDAL builds the overviews by
    # rows of blocks: a block cache that holds a row of output blocks in every band decodes each strip once (without
    # it, a 768-band embedding file is decompressed once per band, hours for a full Sentinel-2 tile).
    cache = max(MINIMUM_CONVERSION_CACHE, (block + 2 * STAGING_STRIP_ROWS) * row_bytes)
    options = {"compress": compress, "bigtiff": "YES" if bigtiff else "NO", "num_threads": "ALL_CPUS"}
    if half:
        options["nbits"] = 16
    if output_format == "cog":
        resampling = "nearest" if categorical or np.dtype(dtype).kind in "ui" else "average"
        # predictor 2 or 3 by dtype
        options.update(predictor="YES", blocksize=block, overview_resampling=resampling, driver="COG")
        if not has_overviews(count):
            options["overviews"] = "NONE"
    else:
        options.update(predictor=3 if np.dtype(dtype).kind == "f" else 2, tiled=True, driver="GTiff",
                       blockxsize=block, blockysize=block)  # fmt: skip
    with rasterio.Env(GDAL_CACHEMAX=cache):  # in bytes, as rasterio passes it to GDAL
        rasterio.shutil.copy(source, destination, **options)
