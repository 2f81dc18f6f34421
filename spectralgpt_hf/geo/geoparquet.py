# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Embeddings as GeoParquet: one row per patch, with its footprint as the geometry, for vector databases and
geopandas / DuckDB / GDAL.

Columns: `scene_id`, `row` and `col` (the patch's pixel in the embedding raster), `embedding` (a fixed-size list of
float32) and `geometry` (the patch's square footprint, WKB, in the scene's CRS). The file metadata carries the
`geo` key of GeoParquet 1.1 (WKB encoding, the CRS as PROJJSON). Written with pyarrow, strip by strip, so memory
stays bounded whatever the scene size; written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..utils.atomic import atomic_file

GEOPARQUET_VERSION = "1.1.0"
ROWS_PER_GROUP = 32  # raster rows of patches per Parquet row group
# WKB of a one-ring, five-point polygon: byte order, geometry type 3, one ring, five points of two float64.
_WKB_HEADER = np.array([1], "u1").tobytes() + np.array([3, 1, 5], "<u4").tobytes()
_WKB_SIZE = len(_WKB_HEADER) + 5 * 2 * 8


def polygons_wkb(transform: rasterio.Affine, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, 93) uint8: the WKB polygons of pixels (rows, cols) of a raster with `transform`, closed rings."""
    corners = np.array([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], dtype=np.float64)  # (col, row) offsets
    col_corners = cols[:, None] + corners[None, :, 0]
    row_corners = rows[:, None] + corners[None, :, 1]
    x = transform.a * col_corners + transform.b * row_corners + transform.c
    y = transform.d * col_corners + transform.e * row_corners + transform.f
    points = np.stack([x, y], axis=-1).astype("<f8").reshape(len(rows), -1)
    header = np.broadcast_to(np.frombuffer(_WKB_HEADER, np.uint8), (len(rows), len(_WKB_HEADER)))
    return np.concatenate([header, points.view(np.uint8)], axis=1)


def geo_metadata(crs) -> dict:
    """The GeoParquet `geo` file metadata for one WKB polygon column `geometry` in `crs`."""
    column = {"encoding": "WKB", "geometry_types": ["Polygon"]}
    column["crs"] = crs.to_dict(projjson=True) if crs is not None else None
    return {"version": GEOPARQUET_VERSION, "primary_column": "geometry", "columns": {"geometry": column}}


def _table(pa, scene_id: str, rows, cols, vectors, wkb):
    count = len(rows)
    offsets = pa.py_buffer((np.arange(count + 1, dtype=np.int32) * _WKB_SIZE).tobytes())
    geometry = pa.Array.from_buffers(pa.binary(), count, [None, offsets, pa.py_buffer(wkb.tobytes())])
    dimension = vectors.shape[1]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dimension)
    return pa.table(
        {
            "scene_id": pa.array([scene_id] * count, pa.string()),
            "row": pa.array(rows, pa.int32()),
            "col": pa.array(cols, pa.int32()),
            "embedding": embedding,
            "geometry": geometry,
        }
    )


def write_embeddings_geoparquet(
    embeddings: str | os.PathLike, output: str | os.PathLike, *, scene_id: str | None = None
) -> Path:
    """Write the embedding GeoTIFF `embeddings` (one band per dimension, one pixel per patch, NaN where no valid
    pixel) as GeoParquet at `output`; patches that are NaN are left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    output = Path(output)
    with rasterio.open(embeddings) as source, atomic_file(output) as temporary:
        scene_id = scene_id or source.tags().get("scene_id") or Path(embeddings).stem
        metadata = {b"geo": json.dumps(geo_metadata(source.crs)).encode()}
        writer = None
        try:
            for top in range(0, source.height, ROWS_PER_GROUP):
                height = min(ROWS_PER_GROUP, source.height - top)
                values = source.read(window=Window(0, top, source.width, height)).astype(np.float32)
                valid = ~np.isnan(values).all(axis=0)
                rows, cols = np.nonzero(valid)
                vectors = values[:, rows, cols].T
                rows = rows + top
                table = _table(pa, scene_id, rows, cols, vectors, polygons_wkb(source.transform, rows, cols))
                if writer is None:
                    schema = table.schema.with_metadata(metadata)
                    writer = pq.ParquetWriter(temporary, schema, compression="zstd")
                writer.write_table(table.cast(schema))
        finally:
            if writer is not None:
                writer.close()
    return output
