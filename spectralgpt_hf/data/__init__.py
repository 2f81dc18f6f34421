# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The downstream datasets of SpectralGPT as `datasets.Dataset` objects, and the augmentations of its recipes.

One module per dataset holds its facts (folder layout, band order, split files, classes, image-processor preset)
in its docstring and constants, and its loader: `eurosat` (`load_eurosat`), `bigearthnet` (`load_bigearthnet`),
`segmunich` (`load_segmunich`), `oscd` (`load_oscd`); `custom` reads the user's own labelled data (a folder per
class, image/mask pairs, or a `datasets` dataset of arrays). `augmentation` holds the training augmentations; `lazy` and
`folders` the machinery the loaders share.

Each loader reads the folder layout of a dataset as it is distributed, and returns a `datasets.Dataset` that
stores only file paths, labels and patch offsets. The GeoTIFFs are decoded when an example is accessed, by a
transform set with `Dataset.set_transform`: the bands are read by name through `spectralgpt_hf.geo`,
normalised with a `SpectralGPTImageProcessor` (by default the preset of the original recipe) and optionally
augmented. An accessed example holds torch tensors:

* `pixel_values`: float32 (12, H, W), bands in SpectralGPT's order B01..B08, B8A, B09, B11, B12;
* `pixel_values_2`: the second date, change detection (OSCD) only;
* `labels`: int64 class id (EuroSAT), float32 multi-hot (19,) (BigEarthNet), int64 (H, W) (SegMunich, OSCD).

Any subset of examples (`dataset[i]`, `dataset[[i, j]]`, a DataLoader batch) is decoded on demand, so the
datasets go straight into transformers' `Trainer` with its `default_data_collator`. Pass
`TrainingArguments(remove_unused_columns=False)`: otherwise the Trainer drops the stored path columns before
the transform can read them. `dataset.with_format(None)` shows the stored columns.
"""

from ..utils.extras import requires_extra

with requires_extra("train"):
    import datasets  # noqa: F401 (the loaders return datasets.Dataset objects)

from .augmentation import RandomFlipsAndRotations, RandomResizedCropAndFlip
from .bigearthnet import (
    BIGEARTHNET_43_TO_19,
    BIGEARTHNET_CLASSES,
    BIGEARTHNET_ID2LABEL,
    BIGEARTHNET_PRESET,
    bigearthnet_multi_hot,
    load_bigearthnet,
)
from .custom import load_class_folders, load_dataset_with_images, load_image_mask_pairs, read_class_names
from .eurosat import EUROSAT_BANDS, EUROSAT_CLASSES, EUROSAT_ID2LABEL, EUROSAT_PRESET, load_eurosat
from .oscd import OSCD_CLASSES, OSCD_ID2LABEL, OSCD_PRESET, load_oscd, oscd_change_map, oscd_change_pixels
from .segmunich import (
    SEGMUNICH_BANDS,
    SEGMUNICH_CLASSES,
    SEGMUNICH_ID2LABEL,
    SEGMUNICH_LABEL_REMAP,
    SEGMUNICH_PRESET,
    load_segmunich,
)

__all__ = [
    "BIGEARTHNET_43_TO_19",
    "BIGEARTHNET_CLASSES",
    "BIGEARTHNET_ID2LABEL",
    "BIGEARTHNET_PRESET",
    "EUROSAT_BANDS",
    "EUROSAT_CLASSES",
    "EUROSAT_ID2LABEL",
    "EUROSAT_PRESET",
    "OSCD_CLASSES",
    "OSCD_ID2LABEL",
    "OSCD_PRESET",
    "SEGMUNICH_BANDS",
    "SEGMUNICH_CLASSES",
    "SEGMUNICH_ID2LABEL",
    "SEGMUNICH_LABEL_REMAP",
    "SEGMUNICH_PRESET",
    "RandomFlipsAndRotations",
    "RandomResizedCropAndFlip",
    "bigearthnet_multi_hot",
    "load_bigearthnet",
    "load_class_folders",
    "load_dataset_with_images",
    "load_eurosat",
    "load_image_mask_pairs",
    "load_oscd",
    "load_segmunich",
    "oscd_change_map",
    "oscd_change_pixels",
    "read_class_names",
]
