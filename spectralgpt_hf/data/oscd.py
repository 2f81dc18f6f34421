# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""OSCD (Onera Satellite Change Detection): pairs of Sentinel-2 images of 24 cities with a change map each.

* Layout: the images folder `Onera Satellite Change Detection dataset - Images/` (or `root` itself) holds
  `<city>/imgs_1_rect/` and `<city>/imgs_2_rect/` (the two dates); the change maps are `<city>/cm/<city>-cm.tif`
  or `<city>/cm/cm.png` in the sibling folder `Onera Satellite Change Detection dataset - Train Labels/`
  (`- Test Labels/`), or in the images folder itself as the original SpectralGPT code expects.
* Bands: one file per band, `B01.tif ... B12.tif`, so the band names come from the file names.
* Classes: `OSCD_CLASSES`, ids as in `OSCD_ID2LABEL` (0 = no change, 1 = change); the GeoTIFF change maps code
  1 = no change and 2 = change, the PNGs 0 = no change and nonzero = change (`oscd_change_map`).
* Splits: `train.txt` and `test.txt` of the images folder, comma-separated city names.
* Image processor: `OSCD_PRESET`, `SpectralGPTImageProcessor.for_oscd` (per-patch per-band min-max).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import torch
from datasets import Dataset, Features, Value
from rasterio.windows import Window

from .. import geo
from ..configuration_spectralgpt import SENTINEL2_BANDS
from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from .folders import find_folder, listing
from .lazy import lazy_dataset, normalize, read_label

OSCD_CLASSES = ("no change", "change")
OSCD_ID2LABEL = dict(enumerate(OSCD_CLASSES))
OSCD_PRESET = SpectralGPTImageProcessor.for_oscd
OSCD_PATCH_SIZE, OSCD_STRIDE = 128, 63  # the original's crop size and step

_IMAGES_FOLDER = "Onera Satellite Change Detection dataset - Images"
_LABELS_FOLDER = "Onera Satellite Change Detection dataset - {split} Labels"
_DATES = ("imgs_1_rect", "imgs_2_rect")


def load_oscd(
    root: str | os.PathLike,
    split: str = "train",
    *,
    labels_root: str | os.PathLike | None = None,
    patch_size: int = OSCD_PATCH_SIZE,
    stride: int = OSCD_STRIDE,
    image_processor: SpectralGPTImageProcessor | None = None,
    augmentation: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
) -> Dataset:
    """OSCD as a lazily decoded dataset of `patch_size` crops taken every `stride` pixels over each city (the
    original: 128 and 63), with `pixel_values` and `pixel_values_2` (12, patch_size, patch_size) for the two
    dates and int64 `labels` (patch_size, patch_size): 1 = change, 0 = no change.

    A city of H x W pixels gives ceil((H - patch_size + 1) / stride) x ceil((W - patch_size + 1) / stride) patches
    (none if it is smaller than a patch), tiled over the extent both dates cover (the original padded the second
    date to the first one's size instead). Only each patch's window of the band files is read.

    Args:
        root: the images folder (`Onera Satellite Change Detection dataset - Images/`, holding `<split>.txt` and
            the city folders), or the folder that holds it.
        split: "train" or "test": the city list `<split>.txt` of the images folder.
        labels_root: the folder of `<city>/cm/`. Default: the sibling `Onera Satellite Change Detection dataset -
            Train Labels` (or `- Test Labels`) when it exists, else the images folder.
        patch_size, stride: the crop size and step, in pixels.
        image_processor: normalisation of each patch and date. Default: `SpectralGPTImageProcessor.for_oscd()`
            (per-patch per-band min-max).
        augmentation: called as `augmentation(pixel_values, pixel_values_2, labels)` and returning all three,
            e.g. `RandomFlipsAndRotations(vertical_flip_probability=0.0)` for the original training transform.
    """
    if patch_size < 1 or stride < 1:
        raise ValueError(f"patch_size and stride must be positive, got patch_size={patch_size}, stride={stride}.")
    root = Path(root)
    images_root = find_folder(
        root,
        (".", _IMAGES_FOLDER),
        lambda folder: (folder / f"{split}.txt").is_file(),
        what=f"the OSCD images folder with the city list {split}.txt (comma-separated names) and <city>/imgs_1_rect/",
    )
    if labels_root is None:
        sibling = images_root.parent / _LABELS_FOLDER.format(split=split.capitalize())
        labels_root = sibling if sibling.is_dir() else images_root
    labels_root = Path(labels_root)
    cities = [name.strip() for name in re.split(r"[,\s]+", (images_root / f"{split}.txt").read_text()) if name.strip()]

    columns = {name: [] for name in ("city", "source_1", "source_2", "label_path", "row", "col")}
    for city in cities:
        for row in _city_patches(images_root, labels_root, city, patch_size, stride):
            for name, value in zip(columns, row):
                columns[name].append(value)
    if not columns["city"]:
        raise ValueError(f"No {patch_size} x {patch_size} patch fits in the cities {cities} of {images_root}.")
    features = Features(
        {name: Value("string") for name in ("city", "source_1", "source_2", "label_path")}
        | {"row": Value("int32"), "col": Value("int32")}
    )
    return lazy_dataset(
        columns, features, _decode_example, image_processor=image_processor, preset=OSCD_PRESET,
        augmentation=augmentation, patch_size=patch_size,
    )  # fmt: skip


def _city_patches(images_root: Path, labels_root: Path, city: str, patch_size: int, stride: int) -> list[tuple]:
    """The stored rows (city, source_1, source_2, label_path, row, col) of a city's patches."""
    dates = [images_root / city / date for date in _DATES]
    label_path = _label_path(labels_root, city)
    (height_1, width_1), (height_2, width_2) = (_grid_size(folder) for folder in dates)
    with rasterio.open(label_path) as label:
        if label.shape != (height_1, width_1):
            raise ValueError(
                f"The change map {label_path} is {label.height} x {label.width} pixels but {dates[0]} is "
                f"{height_1} x {width_1}; the change map must cover the first date's grid."
            )
    return [
        (city, *map(str, dates), str(label_path), row, col)
        for row in range(0, min(height_1, height_2) - patch_size + 1, stride)
        for col in range(0, min(width_1, width_2) - patch_size + 1, stride)
    ]


def _label_path(labels_root: Path, city: str) -> Path:
    candidates = [labels_root / city / "cm" / f"{city}-cm.tif", labels_root / city / "cm" / "cm.png"]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"No change map for the OSCD city {city!r}: expected {candidates[0]} or {candidates[1]}. Pass "
            "labels_root if the labels are in another folder."
        )
    return found


def _grid_size(folder: Path) -> tuple[int, int]:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No folder {folder}: an OSCD city needs imgs_1_rect/ and imgs_2_rect/ with the band files B01.tif ... "
            f"B12.tif. Found in {folder.parent}: {listing(folder.parent)}."
        )
    # Opening reads only the headers; it also checks that all 12 bands are there.
    with geo.open_scene(folder, SENTINEL2_BANDS) as scene:
        return scene.height, scene.width


def read_oscd_patch(example: dict, patch_size: int) -> tuple[geo.RasterBands, geo.RasterBands, np.ndarray]:
    """The raw 12 bands of a stored row's patch at both dates, and its change map (H, W), int64: what `load_oscd`
    decodes and `prepare` stores."""
    window = Window(example["col"], example["row"], patch_size, patch_size)
    first, second = (geo.read_bands(example[date], SENTINEL2_BANDS, window=window) for date in ("source_1", "source_2"))
    return first, second, oscd_change_map(example["label_path"], window)


def _decode_example(example: dict, patch_size: int, processor, augmentation) -> dict[str, torch.Tensor]:
    first, second, change_map = read_oscd_patch(example, patch_size)
    pixel_values, pixel_values_2 = normalize(processor, first.data), normalize(processor, second.data)
    labels = torch.from_numpy(change_map)
    if augmentation is not None:
        pixel_values, pixel_values_2, labels = augmentation(pixel_values, pixel_values_2, labels)
    return {"pixel_values": pixel_values, "pixel_values_2": pixel_values_2, "labels": labels}


def oscd_change_map(path: str | os.PathLike, window: Window | None = None) -> np.ndarray:
    """The int64 change map (H, W) of an OSCD label file, or of its `window`: 1 = change, 0 = no change. Reads
    both codings: a `<city>-cm.tif` (1 = no change, 2 = change; other values are an error) and a `cm.png`
    (nonzero = change)."""
    values = read_label(path, window)
    if Path(path).suffix.lower() == ".png":
        return np.any(values != 0, axis=0).astype(np.int64)
    unexpected = sorted(set(np.unique(values).tolist()) - {1, 2})
    if unexpected:
        raise ValueError(
            f"{path} holds the values {unexpected}, but an OSCD change map GeoTIFF codes 1 = no change and "
            "2 = change. Check that the file is the <city>-cm.tif of the OSCD labels."
        )
    return (values[0] == 2).astype(np.int64)


def oscd_change_pixels(dataset: Dataset) -> dict[str, tuple[int, int]]:
    """The changed and total pixels of the whole change map of each city in `dataset`: a `load_oscd` dataset (its
    change maps are read), or a prepared OSCD split's (`load_prepared`; `prepare` counted them)."""
    stored = dataset.with_format(None)
    if "label_path" not in stored.column_names:
        return {city: (changed, total) for city, changed, total in
                zip(stored["city"], stored["city_changed_pixels"], stored["city_pixels"])}  # fmt: skip
    counts = {}
    for city, path in sorted(set(zip(stored["city"], stored["label_path"]))):
        change_map = oscd_change_map(path, window=None)
        counts[city] = (int(change_map.sum()), int(change_map.size))
    return counts
