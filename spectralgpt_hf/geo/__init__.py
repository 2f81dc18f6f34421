"""Geospatial input and output: Sentinel-2 scenes read by band name, GeoTIFFs written atomically."""

from .raster import RasterBands, Scene, open_scene, read_bands, write_geotiff

__all__ = ["RasterBands", "Scene", "open_scene", "read_bands", "write_geotiff"]
