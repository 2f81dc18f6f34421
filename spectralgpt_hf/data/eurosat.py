# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""EuroSAT-MS: 27,000 Sentinel-2 patches of 64 x 64 pixels in 10 land-use classes, single-label.

* Layout: `<root>/<ClassName>/<ClassName>_<n>.tif`. `root` may also be the folder that holds `EuroSAT_MS/` or the
  original zip's `ds/images/remote_sensing/otherDatasets/sentinel_2/tif/`.
* Bands: 13-band GeoTIFFs without band descriptions, layers in the order `EUROSAT_BANDS` (B8A is the last
  layer). The order is the file format's, so it is kept by `spectralgpt_hf.geo` as the key "eurosat_ms" of
  `DATASET_BAND_ORDERS`, where `read_bands(path, file_band_order="eurosat_ms")` finds it; this module reads it
  from there.
* Classes: `EUROSAT_CLASSES` (alphabetical), ids as in `EUROSAT_ID2LABEL`.
* Splits: the split files torchgeo distributes, `eurosat-train.txt`, `eurosat-val.txt`, `eurosat-test.txt`
  (one file name per line, `.jpg` or `.tif`), in `root` or in the folder of the class folders.
* Image processor: `EUROSAT_PRESET`, `SpectralGPTImageProcessor.for_eurosat` (per-band mean/std, then the
  evaluation Resize(146) + CenterCrop(128)).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from datasets import ClassLabel, Dataset, Features, Value

from .. import geo
from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from .folders import find_folder, natural_order, read_split_file
from .lazy import decode_classification, lazy_dataset

EUROSAT_BANDS = geo.DATASET_BAND_ORDERS["eurosat_ms"]
EUROSAT_CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
EUROSAT_ID2LABEL = dict(enumerate(EUROSAT_CLASSES))
EUROSAT_PRESET = SpectralGPTImageProcessor.for_eurosat

_IMAGE_FOLDERS = (".", "EuroSAT_MS", "ds/images/remote_sensing/otherDatasets/sentinel_2/tif")
_SPLIT_FILE = "eurosat-{split}.txt"


def load_eurosat(
    root: str | os.PathLike,
    split: str | None = None,
    *,
    image_processor: SpectralGPTImageProcessor | None = None,
    augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Dataset:
    """EuroSAT-MS as a lazily decoded dataset with `pixel_values` (12, H, W) and int64 `labels` (class ids of
    `EUROSAT_ID2LABEL`, also in `dataset.features["labels"].names`).

    Args:
        root: the folder of the class folders (`AnnualCrop/`, ..., `SeaLake/`), or a folder that holds it as
            `EuroSAT_MS/` or `ds/images/remote_sensing/otherDatasets/sentinel_2/tif/`.
        split: None for every file; "train", "val" or "test" for the files listed in `eurosat-<split>.txt`, found
            in `root` or in the folder of the class folders.
        image_processor: normalisation. Default: `SpectralGPTImageProcessor.for_eurosat()` (mean/std, then the
            evaluation Resize(146) + CenterCrop(128)); with an augmentation, the same without resize and crop.
        augmentation: applied to `pixel_values` after normalisation, e.g. `RandomResizedCropAndFlip(128)` for
            the original training transform.
    """
    root = Path(root)
    image_root = find_folder(
        root,
        _IMAGE_FOLDERS,
        lambda folder: any((folder / name).is_dir() for name in EUROSAT_CLASSES),
        what=f"EuroSAT-MS class folders ({', '.join(EUROSAT_CLASSES)}) holding <ClassName>_<n>.tif",
    )
    files = _class_files(image_root)
    if split is not None:
        files = _split_files(files, _split_names(root, image_root, split), split, image_root)
    if not files:
        raise ValueError(f"The EuroSAT class folders under {image_root} hold no .tif files.")
    features = Features({"source": Value("string"), "labels": ClassLabel(names=list(EUROSAT_CLASSES))})
    columns = {"source": [str(path) for path, _ in files.values()], "labels": [label for _, label in files.values()]}
    return lazy_dataset(
        columns, features, decode_classification, image_processor=image_processor, preset=EUROSAT_PRESET,
        augmentation=augmentation, file_band_order=EUROSAT_BANDS,
    )  # fmt: skip


def _class_files(image_root: Path) -> dict[str, tuple[Path, int]]:
    """File stem -> (path, class id) of every tif in the class folders, in class then natural order."""
    return {
        path.stem: (path, class_id)
        for class_id, name in enumerate(EUROSAT_CLASSES)
        if (image_root / name).is_dir()
        for path in sorted((image_root / name).glob("*.tif"), key=natural_order)
    }


def _split_names(root: Path, image_root: Path, split: str) -> list[str]:
    candidates = [folder / _SPLIT_FILE.format(split=split) for folder in dict.fromkeys((root, image_root))]
    split_file = next((path for path in candidates if path.is_file()), None)
    if split_file is None:
        raise FileNotFoundError(
            f"No split file for split {split!r}: expected {' or '.join(map(str, candidates))} (torchgeo's "
            "eurosat-train.txt / eurosat-val.txt / eurosat-test.txt). Pass split=None to use every file."
        )
    return [Path(line).stem for line in read_split_file(split_file)]


def _split_files(files: dict, names: list[str], split: str, image_root: Path) -> dict:
    missing = [name for name in names if name not in files]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(names)} files listed for split {split!r} are not in the class folders "
            f"under {image_root} (first: {missing[:3]}). Point root at the EuroSAT-MS copy the list belongs to."
        )
    return {name: files[name] for name in names}
