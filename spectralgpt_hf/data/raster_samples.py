# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The samples of GeoTIFF files, folders and glob patterns: each stacked file, or each folder of band files, is one
sample. Pretraining (`--rasters`) and `prepare` read them."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from .. import geo


def is_raster(path: Path) -> bool:
    return path.suffix.lower() in geo.RASTER_SUFFIXES and path.is_file()


def find_raster_samples(locations: list[str]) -> list[str]:
    """The samples of `--rasters`, in a fixed order: every GeoTIFF in the given files, folders (searched with their
    subfolders) and glob patterns, where a folder holding band-named files (B02.tif, x_B8A.tif) is one per-band
    sample, its other files (cloud masks, ...) ignored, and any other GeoTIFF is a stacked sample."""
    files = []
    for location in locations:
        is_pattern = re.search(r"[*?[]", location) is not None
        matches = sorted(map(Path, glob.glob(location, recursive=True))) if is_pattern else [Path(location)]
        if not matches:
            raise FileNotFoundError(f"No file or folder matches the pattern {location!r}.")
        for path in matches:
            if path.is_dir():
                files.extend(child for child in sorted(path.rglob("*")) if is_raster(child))
            elif is_raster(path):
                files.append(path)
            elif not path.exists():
                raise FileNotFoundError(f"No GeoTIFF or folder at {path}.")
            elif not is_pattern:
                raise ValueError(f"{path} is not a GeoTIFF (.tif, .tiff) or a folder of them.")
    is_band_folder = {}
    samples = {}
    for path in files:
        folder = path.parent
        if folder not in is_band_folder:
            is_band_folder[folder] = any(geo.band_name_from_filename(child) for child in folder.iterdir())
        samples[folder if is_band_folder[folder] else path] = None
    if not samples:
        raise ValueError(f"No GeoTIFF in {locations}: expected stacked .tif files or folders of band files (B02.tif).")
    return [str(path) for path in samples]
