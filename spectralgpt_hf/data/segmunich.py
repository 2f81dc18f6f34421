# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""SegMunich (TUM_128): Sentinel-2 tiles of 128 x 128 pixels over Munich with a land-cover class per pixel.

* Layout (the one read by the original `TUM_128.py`): `<root>/<split>/img/<name>.tif` (image),
  `<root>/<split>/label/<name>.tif` (label codes).
* Bands: 10-band GeoTIFFs, layers in the order `SEGMUNICH_BANDS` (B01-B07, B8A, B11, B12). The image processor
  keeps that list, since its `for_segmunich` preset reads those bands and it ships as remote code on its own;
  this module takes it from there.
* Classes: `SEGMUNICH_CLASSES`, ids as in `SEGMUNICH_ID2LABEL` (the names of a third-party predictor,
  cpratikaki/Segment_spectralGPT, unverified); the label codes of the tifs map to class ids with
  `SEGMUNICH_LABEL_REMAP`.
* Splits: `<root>/dataset/<split>.txt`, one name per line without extension; the original trains on "train" and
  evaluates on "test".
* Image processor: `SEGMUNICH_PRESET`, `SpectralGPTImageProcessor.for_segmunich` (the 10 bands and their
  per-pixel mean twice, per-image per-band min-max, eps 1e-9).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, Value

from .. import geo
from ..image_processing_spectralgpt import SEGMUNICH_BANDS, SpectralGPTImageProcessor
from .folders import listing, natural_order, read_split_file
from .lazy import lazy_dataset, normalize, read_label

SEGMUNICH_CLASSES = (
    "background", "arable land", "permanent crops", "pastures", "forests", "surface water", "shrub",
    "open spaces", "wetlands", "mine dump", "artificial vegetation", "urban fabric", "buildings",
)  # fmt: skip
SEGMUNICH_ID2LABEL = dict(enumerate(SEGMUNICH_CLASSES))
# Label codes of the TUM_128 label tifs and the class ids the original maps them to; other codes are kept.
SEGMUNICH_LABEL_REMAP = {21: 1, 22: 2, 23: 3, 31: 4, 32: 6, 33: 7, 41: 8, 13: 9, 14: 10}
SEGMUNICH_PRESET = SpectralGPTImageProcessor.for_segmunich


def load_segmunich(
    root: str | os.PathLike,
    split: str = "train",
    *,
    image_processor: SpectralGPTImageProcessor | None = None,
    augmentation: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Dataset:
    """SegMunich (TUM_128) as a lazily decoded dataset with `pixel_values` (12, 128, 128) and int64 `labels`
    (128, 128) with the class ids of `SEGMUNICH_ID2LABEL`.

    The 12 channels are the 10 bands of the tif in file order, then their per-pixel mean twice, as in the
    original (the image processor's `band_mean_channels=2` appends them); the label codes are remapped with
    `SEGMUNICH_LABEL_REMAP` (21->1, 22->2, 23->3, 31->4, 32->6, 33->7, 41->8, 13->9, 14->10; other codes such as 0,
    5, 11 and 12 are kept).

    Args:
        root: the TUM_128 folder, holding `<split>/img/`, `<split>/label/` and `dataset/<split>.txt`.
        split: "train" or "test" (the folder name); the names come from `dataset/<split>.txt`, or from the
            tifs of `<split>/img/` when that list is absent.
        image_processor: band-mean channels and normalisation. Default: `SpectralGPTImageProcessor.for_segmunich()`
            (two band-mean channels, per-image per-band min-max, eps 1e-9).
        augmentation: called as `augmentation(pixel_values, labels)` and returning both, e.g.
            `RandomFlipsAndRotations()` for the original training transform.
    """
    root = Path(root)
    image_folder, label_folder = root / split / "img", root / split / "label"
    if not image_folder.is_dir() or not label_folder.is_dir():
        raise FileNotFoundError(
            f"{root} does not have the SegMunich (TUM_128) layout for split {split!r}: expected the folders "
            f"{image_folder} and {label_folder} (and the list {root / 'dataset' / (split + '.txt')}). Found in "
            f"{root}: {listing(root)}."
        )
    names = _split_names(root, split, image_folder, label_folder)
    features = Features({"name": Value("string"), "image_path": Value("string"), "label_path": Value("string")})
    columns = {
        "name": names,
        "image_path": [str(image_folder / f"{name}.tif") for name in names],
        "label_path": [str(label_folder / f"{name}.tif") for name in names],
    }
    return lazy_dataset(
        columns, features, _decode_example, image_processor=image_processor, preset=SEGMUNICH_PRESET,
        augmentation=augmentation,
    )  # fmt: skip


def _split_names(root: Path, split: str, image_folder: Path, label_folder: Path) -> list[str]:
    """The names of `dataset/<split>.txt` (else of every image tif), each checked to have an image and a label."""
    split_file = root / "dataset" / f"{split}.txt"
    if split_file.is_file():
        names = read_split_file(split_file)
    else:
        names = [path.stem for path in sorted(image_folder.glob("*.tif"), key=natural_order)]
    missing = [
        name
        for name in names
        if not (image_folder / f"{name}.tif").is_file() or not (label_folder / f"{name}.tif").is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} SegMunich names lack an image {image_folder}/<name>.tif or a label "
            f"{label_folder}/<name>.tif (first: {missing[:3]})."
        )
    if not names:
        raise ValueError(f"No SegMunich images for split {split!r}: {split_file} and {image_folder} list none.")
    return names


def read_segmunich_example(example: dict) -> tuple[geo.RasterBands, np.ndarray]:
    """The raw 10 bands (`SEGMUNICH_BANDS`) of a stored row's image and its class ids (H, W), int64, remapped
    with `SEGMUNICH_LABEL_REMAP`: what `load_segmunich` decodes and `prepare` stores."""
    bands = geo.read_bands(example["image_path"], SEGMUNICH_BANDS, file_band_order=SEGMUNICH_BANDS)
    codes = read_label(example["label_path"])[0]
    if codes.shape != bands.data.shape[1:]:
        raise ValueError(
            f"The label {example['label_path']} is {codes.shape[0]} x {codes.shape[1]} pixels but its image "
            f"{example['image_path']} is {bands.data.shape[1]} x {bands.data.shape[2]}; each label must match its "
            "image."
        )
    return bands, _remap_label_codes(codes)


def _decode_example(example: dict, processor, augmentation) -> dict[str, torch.Tensor]:
    bands, labels = read_segmunich_example(example)
    pixel_values = normalize(processor, bands.data)  # the processor appends the band-mean channels
    labels = torch.from_numpy(labels)
    if augmentation is not None:
        pixel_values, labels = augmentation(pixel_values, labels)
    return {"pixel_values": pixel_values, "labels": labels}


def _remap_label_codes(codes: np.ndarray) -> np.ndarray:
    labels = codes.astype(np.int64)
    for code, class_id in SEGMUNICH_LABEL_REMAP.items():
        labels[codes == code] = class_id
    return labels
