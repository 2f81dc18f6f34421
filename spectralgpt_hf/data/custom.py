# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The user's own labelled data, for the fine-tuning recipes: GeoTIFF folders, or a `datasets` dataset.

* Classification, a folder per class: `<root>/[<split>/]<class name>/<any name>.tif`. The classes are the class
  folders' names, sorted, with ids in that order (in `dataset.features["labels"].names`).
* Segmentation, image/mask pairs: `<root>/[<split>/]images/<name>.tif` and `<root>/[<split>/]masks/<name>.tif`,
  a mask holding a class id per pixel (its first layer), and `<root>/classes.txt`, one class name per line (line
  i: class id i).
* A `datasets` dataset (`load_dataset_with_images`): a Hub dataset id, a `save_to_disk` folder or Parquet files,
  with an image column of (12, H, W) arrays (bands in SpectralGPT's order, B01..B08, B8A, B09, B11, B12) and a
  label column of class ids.

The GeoTIFFs' bands are read by name (`spectralgpt_hf.geo`): from the files' band descriptions, or, when they have
none, from `file_band_order` (band names in file order, or a key of `geo.DATASET_BAND_ORDERS` such as
"spectralgpt" for 12-band stacks in the model's order). The images are normalised per image and band by their
minimum and maximum (`SpectralGPTImageProcessor.for_pretraining`, as in pretraining) unless another image
processor is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, Value

from .. import geo
from ..configuration_spectralgpt import SENTINEL2_BANDS
from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from .folders import listing, natural_order, read_split_file
from .lazy import (
    DecodeExamples,
    decode_classification,
    lazy_dataset,
    normalize,
    read_label,
    recipe_processor,
)

CUSTOM_PRESET = SpectralGPTImageProcessor.for_pretraining
CLASSES_FILE = "classes.txt"
RASTER_GLOB = "*.tif*"


def load_class_folders(
    root: str | os.PathLike,
    split: str | None = None,
    *,
    file_band_order: Sequence[str] | str | None = None,
    image_processor: SpectralGPTImageProcessor | None = None,
    augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Dataset:
    """GeoTIFFs in a folder per class, as a lazily decoded dataset with `pixel_values` (12, H, W) and int64
    `labels`, the class ids of `dataset.features["labels"].names` (the class folders' names, sorted).

    Args:
        root: the folder of the class folders, or of the split folders that hold them.
        split: None for `root` itself; else the split folder `root / split`.
        file_band_order: the files' band order when they have no band descriptions (module docstring).
        image_processor: normalisation. Default: per-image per-band min-max.
        augmentation: applied to `pixel_values` after normalisation, e.g. `RandomResizedCropAndFlip(128)`.
    """
    folder = split_folder(Path(root), split)
    classes = sorted(path.name for path in folder.iterdir() if path.is_dir() and any(path.glob(RASTER_GLOB)))
    if not classes:
        raise FileNotFoundError(
            f"{folder} holds no class folders with GeoTIFFs (expected {folder}/<class name>/<name>.tif). Found: "
            f"{listing(folder)}."
        )
    files = [
        (str(path), class_id)
        for class_id, name in enumerate(classes)
        for path in sorted((folder / name).glob(RASTER_GLOB), key=natural_order)
    ]
    features = Features({"source": Value("string"), "labels": ClassLabel(names=classes)})
    columns = {"source": [path for path, _ in files], "labels": [label for _, label in files]}
    return lazy_dataset(
        columns, features, decode_classification, image_processor=image_processor, preset=CUSTOM_PRESET,
        augmentation=augmentation, file_band_order=file_band_order,
    )  # fmt: skip


def load_image_mask_pairs(
    root: str | os.PathLike,
    split: str | None = None,
    *,
    file_band_order: Sequence[str] | str | None = None,
    image_processor: SpectralGPTImageProcessor | None = None,
    augmentation: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Dataset:
    """GeoTIFF images and masks of the same names, as a lazily decoded dataset with `pixel_values` (12, H, W) and
    int64 `labels` (H, W), the class ids of `read_class_names(root)`.

    Args:
        root: the folder of `images/`, `masks/` (or of the split folders that hold them) and `classes.txt`.
        split: None for `root` itself; else the split folder `root / split`.
        file_band_order: the images' band order when they have no band descriptions (module docstring).
        image_processor: normalisation. Default: per-image per-band min-max.
        augmentation: called as `augmentation(pixel_values, labels)` and returning both, e.g.
            `RandomFlipsAndRotations()`.
    """
    folder = split_folder(Path(root), split)
    image_folder, mask_folder = folder / "images", folder / "masks"
    if not image_folder.is_dir() or not mask_folder.is_dir():
        raise FileNotFoundError(
            f"Expected the folders {image_folder} and {mask_folder} (an image and a mask of the same name each). "
            f"Found in {folder}: {listing(folder)}."
        )
    images = {path.stem: path for path in sorted(image_folder.glob(RASTER_GLOB), key=natural_order)}
    masks = {path.stem: path for path in mask_folder.glob(RASTER_GLOB)}
    unpaired = sorted(set(images) ^ set(masks))
    if unpaired:
        raise FileNotFoundError(
            f"{len(unpaired)} names have an image or a mask but not both under {folder} (first: {unpaired[:3]})."
        )
    if not images:
        raise ValueError(f"{image_folder} holds no GeoTIFFs.")
    features = Features({"image_path": Value("string"), "label_path": Value("string")})
    columns = {
        "image_path": [str(path) for path in images.values()],
        "label_path": [str(masks[name]) for name in images],
    }
    return lazy_dataset(
        columns, features, _decode_pair, image_processor=image_processor, preset=CUSTOM_PRESET,
        augmentation=augmentation, file_band_order=file_band_order,
    )  # fmt: skip


def read_class_names(root: str | os.PathLike) -> list[str]:
    """The class names of `<root>/classes.txt`, one per line, class id = line number from 0."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected {path}: the segmentation classes, one name per line, the first for class id 0."
        )
    return read_split_file(path)


def load_dataset_with_images(
    name: str,
    split: str,
    *,
    image_column: str = "image",
    label_column: str = "label",
    image_processor: SpectralGPTImageProcessor | None = None,
    augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Dataset:
    """One split of a `datasets` dataset of images and class ids, decoded on access into `pixel_values` (12, H, W)
    and int64 `labels`; the class names are in `dataset.features["labels"].names` when the label column is a
    `ClassLabel`.

    Args:
        name: a Hub dataset id, a `save_to_disk` folder, or a folder of data files named after their splits
            (`train.parquet`, `test.parquet`, ...), as `datasets.load_dataset` reads them.
        split: the split to read.
        image_column: the column of (12, H, W) arrays, bands in SpectralGPT's order.
        label_column: the column of class ids.
        image_processor: normalisation. Default: per-image per-band min-max.
        augmentation: applied to `pixel_values` after normalisation.
    """
    dataset = _open_dataset(name, split)
    missing = [column for column in (image_column, label_column) if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{name} has no column {', '.join(map(repr, missing))}; its columns are {dataset.column_names}. Name "
            "the image and label columns with image_column / label_column."
        )
    dataset = dataset.select_columns([image_column, label_column])
    if label_column != "labels":
        dataset = dataset.rename_column(label_column, "labels")
    processor = recipe_processor(image_processor, CUSTOM_PRESET, augmentation)

    def decode(example: dict) -> dict[str, torch.Tensor]:
        image = np.asarray(example[image_column], dtype=np.float32)
        if image.ndim != 3 or image.shape[0] != len(SENTINEL2_BANDS):
            raise ValueError(
                f"The images of {name}'s column {image_column!r} must be ({len(SENTINEL2_BANDS)}, H, W) arrays, "
                f"bands {', '.join(SENTINEL2_BANDS)}; got shape {image.shape}."
            )
        pixel_values = normalize(processor, image)
        if augmentation is not None:
            pixel_values = augmentation(pixel_values)
        return {"pixel_values": pixel_values, "labels": torch.as_tensor(example["labels"])}

    dataset.set_transform(DecodeExamples(decode))
    return dataset


def split_folder(root: Path, split: str | None) -> Path:
    """`root / split`, or `root` for split None; an error naming what `root` holds when it is not there."""
    folder = root if split is None else root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {folder} for split {split!r}. Found in {root}: {listing(root)}.")
    return folder


def _open_dataset(name: str, split: str) -> Dataset:
    import datasets

    path = Path(name)
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        dataset = datasets.load_from_disk(str(path))
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise ValueError(f"{path} has the splits {list(dataset)}, not {split!r}.")
            dataset = dataset[split]
        return dataset
    # A Hub id, or a local folder of data files whose names give the splits (train.parquet, test.parquet, ...).
    return datasets.load_dataset(name, split=split)


def _decode_pair(example: dict, file_band_order, processor, augmentation) -> dict[str, torch.Tensor]:
    bands = geo.read_bands(example["image_path"], SENTINEL2_BANDS, file_band_order=file_band_order).data
    pixel_values = normalize(processor, bands)
    mask = read_label(example["label_path"])[0]
    if mask.shape != bands.shape[1:]:
        raise ValueError(
            f"The mask {example['label_path']} is {mask.shape[0]} x {mask.shape[1]} pixels but its image "
            f"{example['image_path']} is {bands.shape[1]} x {bands.shape[2]}; each mask must match its image."
        )
    labels = torch.from_numpy(mask.astype(np.int64))
    if augmentation is not None:
        pixel_values, labels = augmentation(pixel_values, labels)
    return {"pixel_values": pixel_values, "labels": labels}
