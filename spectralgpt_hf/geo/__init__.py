"""Geospatial input and output: Sentinel-2 band names (`bands`), what a scene is read from (`sources`: folders,
SAFE `products`, `stac` Items, URLs), scenes read by band name with radiometry and `masks` (`reading`), and outputs
written atomically as (Cloud-Optimized) GeoTIFFs (`writing`, checked by `cog`) and GeoParquet (`geoparquet`)."""

from ..utils.extras import requires_extra

with requires_extra("geo"):
    import rasterio  # noqa: F401 (every module of this layer reads or writes through it)

from .bands import (
    ALL_SENTINEL2_BANDS,
    COMMON_NAMES,
    DATASET_BAND_ORDERS,
    RASTER_SUFFIXES,
    band_name_from_filename,
    canonical_band_list,
    canonical_band_name,
)
from .masks import SCL_INVALID
from .reading import RasterBands, Scene, open_scene, read_bands
from .sources import SourceFiles, describe_source
from .writing import bigtiff_needed, open_geotiff_for_writing, open_output, write_geotiff

__all__ = [
    "ALL_SENTINEL2_BANDS",
    "COMMON_NAMES",
    "DATASET_BAND_ORDERS",
    "RASTER_SUFFIXES",
    "SCL_INVALID",
    "RasterBands",
    "Scene",
    "SourceFiles",
    "band_name_from_filename",
    "bigtiff_needed",
    "canonical_band_list",
    "canonical_band_name",
    "describe_source",
    "open_geotiff_for_writing",
    "open_output",
    "open_scene",
    "read_bands",
    "write_geotiff",
]
