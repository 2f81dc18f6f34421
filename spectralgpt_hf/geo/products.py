# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Sentinel-2 SAFE products (L1C and L2A), as a `.SAFE` folder or a `.SAFE.zip`, local or by URL.

The band files are the ones the product metadata (`MTD_MSIL2A.xml` / `MTD_MSIL1C.xml`) lists, read through GDAL's
JPEG 2000 driver (and `/vsizip/` inside a zip: over the local file, or over `/vsicurl/`, `/vsis3/`, ... for a zip by
URL, so that both go through one code path and only windows are fetched). An L2A product holds most bands at several resolutions; the finest
is taken. The metadata also gives the quantification value, the per-band offsets of baseline 04.00 and later, and
the nodata value (0).
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

import rasterio

from .bands import ALL_SENTINEL2_BANDS, band_and_resolution_from_filename
from .sources import QUANTIFICATION_SCALE, SourceFiles, gdal_path, is_remote

_METADATA_NAME = re.compile(r"(?:.*/)?MTD_MSIL(1C|2A)\.xml")
_OBJECT_STORES = {"s3://": "/vsis3/", "gs://": "/vsigs/"}
_SCL_STEM = re.compile(r".*_SCL(?:_(\d+)m)?")


def is_safe_product(path: Path) -> bool:
    """A `.SAFE` folder (or any folder with an `MTD_MSIL1C/2A.xml`), or a zip file (taken to be a zipped SAFE)."""
    if path.is_dir():
        return any((path / f"MTD_MSIL{level}.xml").is_file() for level in ("1C", "2A"))
    return path.is_file() and path.suffix.lower() == ".zip"


def archive_gdal_path(source: str | os.PathLike) -> str:
    """The path GDAL reads a zip archive at, to chain `/vsizip/` onto: a local file resolved, `https://` through
    `/vsicurl/`, `s3://` and `gs://` through `/vsis3/` and `/vsigs/`, a GDAL virtual path as it is."""
    text = os.fspath(source)
    for scheme, handler in _OBJECT_STORES.items():
        if text.startswith(scheme):
            return handler + text[len(scheme) :]
    return gdal_path(text) if is_remote(text) else str(Path(text).resolve())


def _zip_members(source: str | os.PathLike) -> set[str] | None:
    """The member names of a local zip (None for a remote one: GDAL opens its members but lists none here)."""
    if is_remote(os.fspath(source)):
        return None
    try:
        with zipfile.ZipFile(source) as archive:
            return set(archive.namelist())
    except zipfile.BadZipFile as error:
        raise ValueError(f"{source} is not a readable zip file ({error}).") from None


def _product_xml(path: str) -> str | None:
    """The text of the SAFE metadata file at GDAL path `path`, through GDAL's SENTINEL2 driver; None if absent."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # a metadata file has no grid
            with rasterio.open(path, driver="SENTINEL2") as dataset:
                return dataset.tags(ns="xml:SENTINEL2").get("xml:SENTINEL2")
    except rasterio.errors.RasterioIOError:
        return None


def _zip_metadata(source: str, members: set[str] | None) -> tuple[str, str]:
    """(GDAL path of the product root inside the zip, the metadata XML) of a local or remote zipped SAFE, read
    through the same `/vsizip/` path over the local file or `/vsicurl/` (`/vsis3/`, ...). The root is the folder of
    the metadata file where the zip's listing is known (local), else `<name>.SAFE/` as ESA and the Copernicus Data
    Space deliver it, or the zip's top level."""
    prefix = f"/vsizip/{archive_gdal_path(source)}"
    stem = PurePosixPath(source.rstrip("/")).name.removesuffix(".zip").removesuffix(".ZIP").removesuffix(".SAFE")
    if members is None:
        candidates = [f"{stem}.SAFE/MTD_MSIL{level}.xml" for level in ("2A", "1C")] + ["MTD_MSIL2A.xml", "MTD_MSIL1C.xml"]
    else:
        candidates = sorted((name for name in members if _METADATA_NAME.fullmatch(name)), key=len)
    for candidate in candidates:
        xml = _product_xml(f"{prefix}/{candidate}")
        if xml is not None:
            root = str(PurePosixPath(candidate).parent)
            return (prefix if root == "." else f"{prefix}/{root}"), xml
    raise ValueError(
        f"Cannot read a Sentinel-2 SAFE product from {source}: no MTD_MSIL2A.xml or MTD_MSIL1C.xml opens in it "
        f"(looked for {stem}.SAFE/ and the top level); check that the zip exists, is reachable and is a zipped SAFE."
        if members is None
        else f"{source} holds no MTD_MSIL2A.xml or MTD_MSIL1C.xml that GDAL's SENTINEL2 driver opens, so it is not a "
        "zipped Sentinel-2 SAFE product."
    )


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


def describe_safe(source: str | os.PathLike) -> SourceFiles:
    """The band files, SCL, radiometry and nodata of a SAFE product folder, or of a zipped one, local or remote."""
    text = os.fspath(source)
    if not is_remote(text) and Path(text).is_dir():
        path = Path(text)
        metadata = next(path / f"MTD_MSIL{level}.xml" for level in ("2A", "1C") if (path / f"MTD_MSIL{level}.xml").is_file())
        root, xml = str(path), metadata.read_bytes()

        def exists(relative: str) -> bool:
            return (path / relative).is_file()

    else:
        members = _zip_members(text)
        root, xml = _zip_metadata(text, members)
        inner = root.removeprefix(f"/vsizip/{archive_gdal_path(text)}").lstrip("/")

        def exists(relative: str) -> bool:  # a remote zip's missing file is reported when it is opened
            return members is None or str(PurePosixPath(inner) / relative) in members

    try:
        tree = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise ValueError(f"The metadata of the SAFE product {text} is not valid XML ({error}).") from None
    image_files = [element.text.strip() for element in _elements(tree, "IMAGE_FILE") if element.text]
    if not image_files:
        raise ValueError(f"The metadata of the SAFE product {text} lists no IMAGE_FILE entries.")
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
    band_files, missing = {}, {}
    for name, (_, relative) in chosen.items():
        (band_files if exists(relative) else missing)[name] = f"{root}/{relative}"
    name = PurePosixPath(text.rstrip("/")).name.removesuffix(".zip").removesuffix(".SAFE")
    return SourceFiles(
        name=text,
        scene_id=name,
        band_files=band_files,
        missing_files=missing,
        offsets={band: offset for band, offset in offsets.items() if band in chosen},
        quantification=quantification,
        nodata=_nodata_value(tree),
        scl=f"{root}/{scl[1]}" if scl is not None and exists(scl[1]) else None,
    )
