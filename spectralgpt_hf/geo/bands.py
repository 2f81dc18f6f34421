# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Sentinel-2 band names: their canonical spellings, the band a file name names, and the layer orders of stacked
files that carry no band descriptions."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..configuration_spectralgpt import SENTINEL2_BANDS

# The 13 bands of the Sentinel-2 MSI, in wavelength order.
ALL_SENTINEL2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

# Layer order inside stacked files whose band descriptions are missing, by dataset: facts of the file formats,
# kept here so that the reader resolves the keys (`file_band_order="eurosat_ms"`) on its own; the dataset modules
# of spectralgpt_hf.data read them from here. Datasets stored as one file per band (bigearthnet_s2,
# major_tom_s2l2a, ssl4eo_s12) need no entry: their band names come from file names.
DATASET_BAND_ORDERS = {
    # EuroSAT-MS 13-band tifs: B8A is the LAST layer (verified on the data from the spectra: layer 10 is the
    # cirrus band B10 at ~10 DN). The original SpectralGPT code assumed B8A at layer 9.
    "eurosat_ms": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"),
    # fMoW-Sentinel 13-band tifs (SatMAE convention; its layer 11 has the cirrus-like mean 14.8).
    "fmow_sentinel": ALL_SENTINEL2_BANDS,
    # 12-band stacks in SpectralGPT's own order, such as the pre-stacked BigEarthNet tifs of the original code.
    "spectralgpt": tuple(SENTINEL2_BANDS),
}

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")

# STAC `eo:bands` common names of the Sentinel-2 bands; accepted wherever a band is named.
COMMON_NAMES = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11",
    "swir22": "B12",
}  # fmt: skip

_BAND_NAME = re.compile(r"\s*B?0*(\d{1,2})(A?)\s*", re.IGNORECASE)
# A band token at the end of a file stem, optionally followed by a resolution: "B02", "B2", "x_B8A", "x-B11",
# "x.B03", "T33UVP_20220626T095029_B02_10m".
_BAND_FILE_STEM = re.compile(r"(?:^|.*[_.\-])(B\d{1,2}A?)(?:_(\d+)m)?", re.IGNORECASE)


def canonical_band_name(name: str) -> str:
    """The canonical Sentinel-2 name of a band: "B1", "b01", "01" give "B01"; "B8a", "8A" give "B8A"; STAC common
    names too: "blue" gives "B02", "nir08" gives "B8A"."""
    alias = COMMON_NAMES.get(str(name).strip().lower())
    if alias is not None:
        return alias
    match = _BAND_NAME.fullmatch(str(name))
    if match:
        number, suffix = int(match[1]), match[2].upper()
        canonical = f"B{number}A" if suffix else f"B{number:02d}"
        if canonical in ALL_SENTINEL2_BANDS:
            return canonical
    raise ValueError(
        f"{name!r} is not a Sentinel-2 band name. Use one of {', '.join(ALL_SENTINEL2_BANDS)} "
        "(spellings such as 'B1', 'b01', '01' or 'B8a' are accepted), or a STAC common name: "
        f"{', '.join(COMMON_NAMES)}."
    )


def band_name_from_filename(path: str | os.PathLike) -> str | None:
    """The band a single-band file holds according to its name (`B02.tif`, `x_B8A.tif`, `T33UVP_..._B02_10m.jp2`),
    or None if no band."""
    band_and_resolution = band_and_resolution_from_filename(path)
    return None if band_and_resolution is None else band_and_resolution[0]


def band_and_resolution_from_filename(path: str | os.PathLike) -> tuple[str, int | None] | None:
    """(band, resolution in metres or None) from a band file's name: `x_B02_10m.jp2` gives ("B02", 10)."""
    path = Path(path)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        return None
    match = _BAND_FILE_STEM.fullmatch(path.stem)
    if match is None:
        return None
    try:
        return canonical_band_name(match[1]), int(match[2]) if match[2] else None
    except ValueError:
        return None


def canonical_band_list(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError(f"{what} must be a sequence of band names such as ['B02', 'B03'], not the string {names!r}.")
    canonical = tuple(canonical_band_name(name) for name in names)
    duplicates = sorted({name for name in canonical if canonical.count(name) > 1})
    if duplicates:
        raise ValueError(f"{what} names {', '.join(duplicates)} more than once: {list(names)}.")
    if not canonical:
        raise ValueError(f"{what} is empty; name at least one band.")
    return canonical
