"""Geospatial input and output: Sentinel-2 band names (`bands`), scenes read by band name (`reading`) and GeoTIFFs
written atomically (`writing`)."""

from ..utils.extras import requires_extra

with requires_extra("geo"):
    import rasterio  # noqa: F401 (every module of this layer reads or writes through it)

from .bands import (
    ALL_SENTINEL2_BANDS,
    DATASET_BAND_ORDERS,
    RASTER_SUFFIXES,
    band_name_from_filename,
    canonical_band_list,
    canonical_band_name,
)
from .reading import RasterBands, Scene, open_scene, read_bands
from .writing import open_geotiff_for_writing, write_geotiff

__all__ = [
    "ALL_SENTINEL2_BANDS",
    "DATASET_BAND_ORDERS",
    "RASTER_SUFFIXES",
    "RasterBands",
    "Scene",
    "band_name_from_filename",
    "canonical_band_list",
    "canonical_band_name",
    "open_geotiff_for_writing",
    "open_scene",
    "read_bands",
    "write_geotiff",
]
