# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Check that a file has the Cloud-Optimized GeoTIFF layout that GDAL's COG driver documents, by reading the TIFF
structure itself: a tiled full-resolution image, internal overviews when it is larger than a tile, every IFD
(image directory) before the image data, and the data of the smaller overviews before that of the larger ones
and of the full-resolution image, so that a reader fetches the header once and then any tile by one range request.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import rasterio

_TILE_WIDTH, _TILE_OFFSETS, _STRIP_OFFSETS, _IMAGE_WIDTH, _IMAGE_LENGTH, _SUBFILE_TYPE = 322, 324, 273, 256, 257, 254
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
_TYPE_FORMATS = {1: "B", 3: "H", 4: "I", 16: "Q"}


@dataclass
class _Directory:
    offset: int
    tags: dict[int, tuple]


def _read_directories(handle) -> tuple[bool, list[_Directory]]:
    header = handle.read(16)
    order = {b"II": "<", b"MM": ">"}.get(header[:2])
    if order is None:
        raise ValueError("not a TIFF file")
    version = struct.unpack(order + "H", header[2:4])[0]
    big = version == 43
    if version not in (42, 43):
        raise ValueError("not a TIFF file")
    count_format, entry_size, value_size = ("Q", 20, 8) if big else ("H", 12, 4)
    offset = struct.unpack(order + ("Q" if big else "I"), header[8:16] if big else header[4:8])[0]
    directories = []
    while offset and len(directories) < 64:
        handle.seek(offset)
        (count,) = struct.unpack(order + count_format, handle.read(struct.calcsize(count_format)))
        raw = handle.read(count * entry_size + value_size)
        tags = {}
        for index in range(count):
            entry = raw[index * entry_size : (index + 1) * entry_size]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            (length,) = struct.unpack(order + ("Q" if big else "I"), entry[4 : 4 + value_size])
            if kind not in _TYPE_FORMATS:
                continue
            payload = entry[4 + value_size :]
            size = _TYPE_SIZES[kind] * length
            if size > value_size:
                (where,) = struct.unpack(order + ("Q" if big else "I"), payload)
                position = handle.tell()
                handle.seek(where)
                payload = handle.read(size)
                handle.seek(position)
            tags[tag] = struct.unpack(order + _TYPE_FORMATS[kind] * length, payload[:size])
        directories.append(_Directory(offset, tags))
        (offset,) = struct.unpack(order + ("Q" if big else "I"), raw[count * entry_size :])
    return big, directories


def cog_layout_errors(path: str | os.PathLike, require_overviews: bool = True) -> list[str]:
    """The ways `path` departs from the COG layout (empty when it is a valid Cloud-Optimized GeoTIFF).
    `require_overviews=False` accepts an image larger than a tile without overviews, which the COG layout allows
    (GDAL's validator only warns) and which `geo.writing` writes for outputs of many bands."""
    errors = []
    with open(path, "rb") as handle:
        try:
            _, directories = _read_directories(handle)
        except (ValueError, struct.error) as error:
            return [f"{path} is not a readable TIFF file ({error})"]
        handle.seek(0)
        start = handle.read(1024)
    # Masks (NewSubfileType bit 4) are left out: COG outputs here carry none.
    images = [d for d in directories if not (d.tags.get(_SUBFILE_TYPE, (0,))[0] & 4)]
    main, overviews = images[0], images[1:]
    width, height = main.tags[_IMAGE_WIDTH][0], main.tags[_IMAGE_LENGTH][0]
    if _TILE_WIDTH not in main.tags and (width > 512 or height > 512):
        errors.append(f"the full-resolution image ({width} x {height}) is not tiled")
    if require_overviews and (width > 512 or height > 512) and not overviews:
        errors.append(f"the image is {width} x {height} px but has no overviews")
    if b"GDAL_STRUCTURAL_METADATA" not in start or b"LAYOUT=IFDS_BEFORE_DATA" not in start:
        errors.append("the header lacks GDAL's structural metadata (LAYOUT=IFDS_BEFORE_DATA)")

    def data_offsets(directory: _Directory) -> list[int]:
        offsets = directory.tags.get(_TILE_OFFSETS) or directory.tags.get(_STRIP_OFFSETS) or ()
        return [offset for offset in offsets if offset]

    offsets = [data_offsets(directory) for directory in images]
    first_data = min((min(values) for values in offsets if values), default=None)
    if any(b.offset <= a.offset for a, b in zip(directories, directories[1:])):
        errors.append("the IFDs are not in file order")
    if first_data is not None and max(d.offset for d in directories) > first_data:
        errors.append("an IFD comes after image data (the IFDs must all come first)")
    for level in range(len(images) - 1):
        larger, smaller = offsets[level], offsets[level + 1]
        if larger and smaller and min(larger) < max(smaller):
            name = "the full-resolution image" if level == 0 else f"overview {level}"
            errors.append(f"the data of {name} comes before that of overview {level + 1}")
    with rasterio.open(path) as dataset:
        if dataset.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG":
            errors.append("GDAL does not report LAYOUT=COG in the IMAGE_STRUCTURE metadata")
    return errors
