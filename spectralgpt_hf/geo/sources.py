# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""What a scene is read from: the files behind a path, folder, SAFE product, STAC Item or URL, with the product's
radiometry (offset and quantification value) and its masks.

`describe_source` turns whatever the user names into a `SourceFiles`; `reading.Scene` opens those files. Local
paths, GDAL virtual paths (`/vsizip/...`, `/vsicurl/...`) and URLs (`https://`, `s3://`) all end up as strings that
GDAL opens, so remote and local files go through one code path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .bands import band_and_resolution_from_filename

# Reflectance x QUANTIFICATION_SCALE is the scale the model's statistics are on (pre-04.00 digital numbers).
QUANTIFICATION_SCALE = 10000.0
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
# Scene classification files: `SCL.tif`, `x_SCL.tif`, `T33UVP_..._SCL_20m.jp2`.
_SCL_FILE = re.compile(r"(?:^|.*[_.\-])SCL(?:_(\d+)m)?", re.IGNORECASE)


@dataclass
class SourceFiles:
    """The files of one scene and what is known about their values.

    Attributes:
        name: the source as the user named it, for messages.
        scene_id: a short identifier (product or item id, or the file or folder name).
        stacked: a multi-band file (exclusive with `band_files`).
        band_files: band name -> GDAL path of a single-band file.
        offsets: band name -> offset added to the stored value (DN) before scaling; -1000 for 04.00+ products.
        quantification: stored value per unit reflectance (10000 for Sentinel-2).
        nodata: the product's nodata value for files that carry none (0 for SAFE products), or None.
        scl: GDAL path of the scene classification (L2A), if any.
        missing_files: band name -> path of a band file the product lists but lacks.
    """

    name: str
    scene_id: str
    stacked: str | None = None
    band_files: dict[str, str] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    quantification: float = QUANTIFICATION_SCALE
    nodata: float | None = None
    scl: str | None = None
    missing_files: dict[str, str] = field(default_factory=dict)


def is_remote(source: str | os.PathLike) -> bool:
    """Whether `source` is a URL or a GDAL virtual path rather than a local file."""
    text = os.fspath(source)
    return text.startswith("/vsi") or bool(_URL.match(text))


def gdal_path(source: str | os.PathLike) -> str:
    """The path GDAL opens for `source`: URLs through /vsicurl/ (object stores such as s3:// as rasterio maps them)."""
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        return f"/vsicurl/{text}"
    return text


def describe_source(source: str | os.PathLike) -> SourceFiles:
    """The files behind `source`: a STAC Item (`.json`, local or URL), a `.SAFE` folder or `.SAFE.zip`, a folder
    searched recursively for per-band files, or one (local or remote) stacked file."""
    from . import products, stac  # these import this module

    text = os.fspath(source)
    if text.lower().endswith(".json"):
        return stac.describe_stac_item(text)
    if is_remote(text):
        if text.lower().rstrip("/").endswith(".zip"):  # a zipped SAFE product by URL or GDAL path
            return products.describe_safe(text)
        return SourceFiles(name=text, scene_id=Path(text.rstrip("/")).stem, stacked=gdal_path(text))
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"No raster file or folder at {path}.")
    if products.is_safe_product(path):
        return products.describe_safe(path)
    if path.is_dir():
        return describe_band_folder(path)
    return SourceFiles(name=text, scene_id=path.stem, stacked=text)


def describe_band_folder(folder: Path) -> SourceFiles:
    """A folder of single-band files named by band (`B02.tif`, `x_B8A.jp2`, `x_B02_10m.tif`), searched
    recursively; a scene classification file (`SCL.tif`, `x_SCL_20m.jp2`) is picked up for masking."""
    band_files: dict[str, list[Path]] = {}
    scl_files: list[Path] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        band = band_and_resolution_from_filename(path)
        if band is not None:
            band_files.setdefault(band[0], []).append(path)
        elif path.suffix.lower() in (".tif", ".tiff", ".jp2") and _SCL_FILE.fullmatch(path.stem):
            scl_files.append(path)
    if not band_files:
        raise ValueError(
            f"No band files found in {folder}: expected single-band GeoTIFF or JPEG 2000 files named like B02.tif, "
            "B2.tif, <prefix>_B02.tif or <prefix>_B02_10m.jp2 (searched recursively)."
        )
    ambiguous = {name: paths for name, paths in band_files.items() if len(paths) > 1}
    if ambiguous:
        listing = "; ".join(
            f"{name}: {', '.join(str(p.relative_to(folder)) for p in paths)}" for name, paths in ambiguous.items()
        )
        raise ValueError(f"Several files in {folder} hold the same band ({listing}). Keep one per band.")
    if len(scl_files) > 1:
        listing = ", ".join(str(p.relative_to(folder)) for p in scl_files)
        raise ValueError(f"Several scene classification files in {folder} ({listing}). Keep one.")
    return SourceFiles(
        name=str(folder),
        scene_id=folder.name,
        band_files={name: str(paths[0]) for name, paths in band_files.items()},
        scl=str(scl_files[0]) if scl_files else None,
    )
