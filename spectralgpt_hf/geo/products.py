# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Sentinel-2 SAFE products (L1C and L2A), as a `.SAFE` folder or a `.SAFE.zip`.

The band files are the ones the product metadata (`MTD_MSIL2A.xml` / `MTD_MSIL1C.xml`) lists, read through GDAL's
JPEG 2000 driver (and `/vsizip/` inside a zip). An L2A product holds most bands at several resolutions; the finest
is taken. The metadata also gives the quantification value, the per-band offsets of baseline 04.00 and later, and
the nodata value (0).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from .bands import ALL_SENTINEL2_BANDS, band_and_resolution_from_filename
from .sources import QUANTIFICATION_SCALE, SourceFiles

_METADATA_NAME = re.compile(r"(?:.*/)?MTD_MSIL(1C|2A)\.xml")
_SCL_STEM = re.compile(r".*_SCL(?:_(\d+)m)?")


def is_safe_product(path: Path) -> bool:
    """A `.SAFE` folder (or any folder with an `MTD_MSIL1C/2A.xml`), or a zip file (taken to be a zipped SAFE)."""
    if path.is_dir():
        return any((path / f"MTD_MSIL{level}.xml").is_file() for level in ("1C", "2A"))
    return path.is_file() and path.suffix.lower() == ".zip"


def _metadata_file(path: Path) -> tuple[str, bytes, set[str] | None]:
    """(GDAL path of the product root, the metadata XML, the zip's member names or None for a folder)."""
    if path.is_dir():
        metadata = next(path / f"MTD_MSIL{level}.xml" for level in ("2A", "1C") if (path / f"MTD_MSIL{level}.xml").is_file())
        return str(path), metadata.read_bytes(), None
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            candidates = sorted((name for name in names if _METADATA_NAME.fullmatch(name)), key=len)
            if not candidates:
                raise ValueError(
                    f"{path} holds no MTD_MSIL2A.xml or MTD_MSIL1C.xml, so it is not a zipped Sentinel-2 SAFE product."
                )
            xml = archive.read(candidates[0])
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path} is not a readable zip file ({error}).") from None
    root = str(PurePosixPath(candidates[0]).parent)
    prefix = f"/vsizip/{path.resolve()}"
    return (prefix if root == "." else f"{prefix}/{root}"), xml, {name for name in names}


def _local_name(element: ElementTree.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _elements(tree: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [element for element in tree.iter() if _local_name(element) == name]


def _first_number(tree: ElementTree.Element, names: tuple[str, ...]) -> float | None:
    for name in names:
        for element in _elements(tree, name):
            if element.text and element.text.strip():
                return float(element.text)
    return None


def product_radiometry(tree: ElementTree.Element) -> tuple[float, dict[str, float]]:
    """(quantification value, band name -> offset) of a SAFE product's metadata; no offset elements: offset 0."""
    quantification = _first_number(tree, ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE"))
    offsets = {}
    for element in _elements(tree, "BOA_ADD_OFFSET") + _elements(tree, "RADIO_ADD_OFFSET"):
        offsets[ALL_SENTINEL2_BANDS[int(element.get("band_id"))]] = float(element.text)
    return quantification or QUANTIFICATION_SCALE, offsets


def _nodata_value(tree: ElementTree.Element) -> float:
    for special in _elements(tree, "Special_Values"):
        texts = {_local_name(child): (child.text or "").strip() for child in special}
        if texts.get("SPECIAL_VALUE_TEXT") == "NODATA" and texts.get("SPECIAL_VALUE_INDEX"):
            return float(texts["SPECIAL_VALUE_INDEX"])
    return 0.0


def describe_safe(path: Path) -> SourceFiles:
    """The band files, SCL, radiometry and nodata of a SAFE product folder or zip."""
    root, xml, members = _metadata_file(path)
    try:
        tree = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise ValueError(f"The metadata of the SAFE product {path} is not valid XML ({error}).") from None
    image_files = [element.text.strip() for element in _elements(tree, "IMAGE_FILE") if element.text]
    if not image_files:
        raise ValueError(f"The metadata of the SAFE product {path} lists no IMAGE_FILE entries.")
    chosen: dict[str, tuple[int, str]] = {}
    scl: tuple[int, str] | None = None
    for relative in image_files:
        relative = relative if relative.lower().endswith(".jp2") else f"{relative}.jp2"
        band = band_and_resolution_from_filename(PurePosixPath(relative).name)
        if band is not None:
            name, resolution = band
            resolution = resolution or 0
            if name not in chosen or resolution < chosen[name][0]:
                chosen[name] = (resolution, relative)
        elif match := _SCL_STEM.fullmatch(PurePosixPath(relative).stem):
            resolution = int(match[1] or 0)
            if scl is None or resolution < scl[0]:
                scl = (resolution, relative)
    quantification, offsets = product_radiometry(tree)

    def exists(relative: str) -> bool:
        if members is None:
            return (path / relative).is_file()
        inner = root.split(f"{path.resolve()}", 1)[1].lstrip("/")
        return str(PurePosixPath(inner) / relative) in members

    band_files, missing = {}, {}
    for name, (_, relative) in chosen.items():
        (band_files if exists(relative) else missing)[name] = f"{root}/{relative}"
    name = path.name.removesuffix(".zip").removesuffix(".SAFE")
    return SourceFiles(
        name=str(path),
        scene_id=name,
        band_files=band_files,
        missing_files=missing,
        offsets={band: offset for band, offset in offsets.items() if band in chosen},
        quantification=quantification,
        nodata=_nodata_value(tree),
        scl=f"{root}/{scl[1]}" if scl is not None and exists(scl[1]) else None,
    )
