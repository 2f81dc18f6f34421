# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""BigEarthNet v2 (reBEN): Sentinel-2 patches of 120 x 120 pixels, multi-label over the 19-class nomenclature.

* Layout: `<root>/BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif ... _B12.tif` (or the tile folders in
  `root` itself), where `<tile>` is the patch id without its last two `_`-separated parts, and
  `<root>/metadata.parquet`.
* Bands: one file per band, named by band, so the band names come from the file names; the 20 and 60 m bands are
  resampled onto the 10 m grid.
* Classes: `BIGEARTHNET_CLASSES`, ids as in `BIGEARTHNET_ID2LABEL`; BigEarthNet v1's 43 CORINE class names are
  grouped into them with `BIGEARTHNET_43_TO_19` (`bigearthnet_multi_hot`).
* Splits: the metadata's columns `patch_id`, `labels` (class names) and `split` (reBEN's values: "train",
  "validation", "test").
* Image processor: `BIGEARTHNET_PRESET`, `SpectralGPTImageProcessor.for_bigearthnet` (SentinelNormalize, then
  Resize(146) + CenterCrop(128)).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from datasets import Dataset, Features, List, Value

from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from .folders import listing
from .lazy import decode_classification, lazy_dataset

# The 19-class BigEarthNet nomenclature (Sumbul et al. 2021), in its standard order.
BIGEARTHNET_CLASSES = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)
BIGEARTHNET_ID2LABEL = dict(enumerate(BIGEARTHNET_CLASSES))

# The 43 CORINE classes of BigEarthNet v1 grouped into the 19 classes (the original's NEW_LABELS/GROUP_LABELS);
# None marks the 11 classes that the 19-class nomenclature drops.
BIGEARTHNET_43_TO_19 = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Pastures": "Pastures",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        "Land principally occupied by agriculture, with significant areas of natural vegetation"
    ),
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Burnt areas": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}

BIGEARTHNET_PRESET = SpectralGPTImageProcessor.for_bigearthnet

_IMAGES_FOLDER = "BigEarthNet-S2"
_METADATA_FILE = "metadata.parquet"
_METADATA_COLUMNS = ["patch_id", "labels", "split"]
_CLASS_IDS = {name: index for index, name in BIGEARTHNET_ID2LABEL.items()}


def load_bigearthnet(
    root: str | os.PathLike,
    split: str = "train",
    *,
    metadata_path: str | os.PathLike | None = None,
    image_processor: SpectralGPTImageProcessor | None = None,
    augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Dataset:
    """BigEarthNet v2 (reBEN) Sentinel-2 patches as a lazily decoded dataset with `pixel_values` (12, 120, 120 or
    the processor's size) and float32 multi-hot `labels` (19,) over `BIGEARTHNET_CLASSES`.

    The label names of the metadata may be 19-class names or BigEarthNet v1's 43 CORINE class names; the latter
    are grouped with `BIGEARTHNET_43_TO_19`, and the classes it drops are left out.

    Args:
        root: the folder that holds `BigEarthNet-S2/` (or the tile folders themselves) and `metadata.parquet`.
        split: the value of the metadata's `split` column to keep (reBEN: "train", "validation", "test").
        metadata_path: the metadata parquet, if not `<root>/metadata.parquet`.
        image_processor: normalisation. Default: `SpectralGPTImageProcessor.for_bigearthnet()` (SentinelNormalize,
            then Resize(146) + CenterCrop(128)); with an augmentation, the same without resize and crop.
        augmentation: applied to `pixel_values` after normalisation, e.g. `RandomResizedCropAndFlip(128)`.
    """
    root = Path(root)
    metadata_path = Path(metadata_path) if metadata_path is not None else root / _METADATA_FILE
    rows = _split_rows(metadata_path, split)
    image_root = root / _IMAGES_FOLDER if (root / _IMAGES_FOLDER).is_dir() else root
    sources = [image_root / row["patch_id"].rsplit("_", 2)[0] / row["patch_id"] for row in rows]
    # Only the first patch is checked, to keep loading fast; a missing one fails when it is accessed.
    if not sources[0].is_dir():
        raise FileNotFoundError(
            f"No folder for patch {rows[0]['patch_id']}: expected {sources[0]} holding "
            f"{rows[0]['patch_id']}_B02.tif etc. (layout BigEarthNet-S2/<tile>/<patch_id>/). Found in "
            f"{image_root}: {listing(image_root)}."
        )
    features = Features(
        {
            "patch_id": Value("string"),
            "source": Value("string"),
            "labels": List(Value("float32"), length=len(BIGEARTHNET_CLASSES)),
        }
    )
    columns = {
        "patch_id": [row["patch_id"] for row in rows],
        "source": [str(source) for source in sources],
        "labels": [bigearthnet_multi_hot(row["labels"], where=row["patch_id"]) for row in rows],
    }
    return lazy_dataset(
        columns, features, decode_classification, image_processor=image_processor, preset=BIGEARTHNET_PRESET,
        augmentation=augmentation, file_band_order=None,
    )  # fmt: skip


def _split_rows(metadata_path: Path, split: str) -> list[dict]:
    """The metadata rows (patch_id, labels, split) of `split`."""
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"No BigEarthNet metadata at {metadata_path}: expected reBEN's metadata.parquet (columns patch_id, "
            "labels, split). Pass metadata_path if it is elsewhere."
        )
    found = pq.read_schema(metadata_path).names
    if not set(_METADATA_COLUMNS) <= set(found):
        raise ValueError(f"{metadata_path} needs the columns {_METADATA_COLUMNS}; it has {found}.")
    table = pq.read_table(metadata_path, columns=_METADATA_COLUMNS)
    rows = table.filter(pc.equal(table["split"], split)).to_pylist()
    if not rows:
        splits = sorted(str(value) for value in pc.unique(table["split"]).to_pylist())
        raise ValueError(f"No patch of {metadata_path} has split {split!r}; its splits are {splits}.")
    return rows


def bigearthnet_multi_hot(label_names: Sequence[str], where: str = "the labels") -> list[float]:
    """The 19-class multi-hot vector of BigEarthNet label names (19-class names or 43-class CORINE names)."""
    multi_hot = [0.0] * len(BIGEARTHNET_CLASSES)
    for name in label_names:
        if name in _CLASS_IDS:
            multi_hot[_CLASS_IDS[name]] = 1.0
        elif name in BIGEARTHNET_43_TO_19:
            grouped = BIGEARTHNET_43_TO_19[name]
            if grouped is not None:
                multi_hot[_CLASS_IDS[grouped]] = 1.0
        else:
            raise ValueError(
                f"Unknown BigEarthNet label {name!r} in {where}: expected a name of the 19-class nomenclature "
                "(BIGEARTHNET_CLASSES) or one of the 43 CORINE classes (BIGEARTHNET_43_TO_19)."
            )
    return multi_hot
