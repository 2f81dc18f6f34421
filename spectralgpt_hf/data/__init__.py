# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The downstream datasets of SpectralGPT as `datasets.Dataset` objects, and the augmentations of its recipes.

Each loader reads the folder layout of a dataset as it is distributed, and returns a `datasets.Dataset` that
stores only file paths, labels and patch offsets. The GeoTIFFs are decoded when an example is accessed, by a
transform set with `Dataset.set_transform`: the bands are read by name through `spectralgpt_hf.raster`,
normalised with a `SpectralGPTImageProcessor` (by default the preset of the original recipe) and optionally
augmented. An accessed example holds torch tensors:

* `pixel_values`: float32 (12, H, W), bands in SpectralGPT's order B01..B08, B8A, B09, B11, B12;
* `pixel_values_2`: the second date, change detection (OSCD) only;
* `labels`: int64 class id (EuroSAT), float32 multi-hot (19,) (BigEarthNet), int64 (H, W) (SegMunich, OSCD).

Any subset of examples (`dataset[i]`, `dataset[[i, j]]`, a DataLoader batch) is decoded on demand, so the
datasets go straight into transformers' `Trainer` with its `default_data_collator`. Pass
`TrainingArguments(remove_unused_columns=False)`: otherwise the Trainer drops the stored path columns before
the transform can read them. `dataset.with_format(None)` shows the stored columns.

Layouts (folder and file names as the datasets are distributed):

* EuroSAT-MS: `<root>/<ClassName>/<ClassName>_<n>.tif`, 13-band GeoTIFFs with B8A as the last layer. `root`
  may also be the folder that holds `EuroSAT_MS/` or the original zip's `ds/images/remote_sensing/otherDatasets/
  sentinel_2/tif/`. Split files as torchgeo distributes them (`eurosat-train.txt`, `eurosat-val.txt`,
  `eurosat-test.txt`, one file name per line, `.jpg` or `.tif`) are used when a split is asked for.
* BigEarthNet v2 (reBEN): `<root>/BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif ... _B12.tif` (10, 20
  and 60 m bands, resampled onto the 10 m grid) and `<root>/metadata.parquet` with the columns `patch_id`,
  `labels` (class names) and `split` (reBEN's values: "train", "validation", "test"). `<tile>` is the patch id
  without its last two `_`-separated parts.
* SegMunich (TUM_128, the layout read by the original `TUM_128.py`): `<root>/<split>/img/<name>.tif` (10-band
  128 x 128), `<root>/<split>/label/<name>.tif`, and the split lists `<root>/dataset/<split>.txt` (one name
  per line, without extension; the original trains on "train" and evaluates on "test").
* OSCD: the images folder `Onera Satellite Change Detection dataset - Images/` (or `root` itself) holds
  `train.txt` and `test.txt` (comma-separated city names) and `<city>/imgs_1_rect/B01.tif ... B12.tif`,
  `<city>/imgs_2_rect/`; the change maps are `<city>/cm/<city>-cm.tif` (1 = no change, 2 = change) or
  `<city>/cm/cm.png` (0 = no change, nonzero = change) in the sibling folder `Onera Satellite Change Detection
  dataset - Train Labels/` (`- Test Labels/`), or in the images folder itself as the original SpectralGPT code
  expects.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import rasterio
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, List, Value
from rasterio.windows import Window

from .. import geo
from ..configuration_spectralgpt import SENTINEL2_BANDS
from ..image_processing_spectralgpt import SEGMUNICH_BANDS, SpectralGPTImageProcessor

EUROSAT_CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
EUROSAT_ID2LABEL = dict(enumerate(EUROSAT_CLASSES))
EUROSAT_LABEL2ID = {name: index for index, name in EUROSAT_ID2LABEL.items()}

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
BIGEARTHNET_LABEL2ID = {name: index for index, name in BIGEARTHNET_ID2LABEL.items()}

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

# Class names of a third-party predictor (cpratikaki/Segment_spectralGPT), unverified.
SEGMUNICH_CLASSES = (
    "background", "arable land", "permanent crops", "pastures", "forests", "surface water", "shrub",
    "open spaces", "wetlands", "mine dump", "artificial vegetation", "urban fabric", "buildings",
)  # fmt: skip
SEGMUNICH_ID2LABEL = dict(enumerate(SEGMUNICH_CLASSES))
SEGMUNICH_LABEL2ID = {name: index for index, name in SEGMUNICH_ID2LABEL.items()}
# Label codes of the TUM_128 label tifs and the class ids the original maps them to; other codes are kept.
SEGMUNICH_LABEL_REMAP = {21: 1, 22: 2, 23: 3, 31: 4, 32: 6, 33: 7, 41: 8, 13: 9, 14: 10}

OSCD_CLASSES = ("no change", "change")
OSCD_ID2LABEL = dict(enumerate(OSCD_CLASSES))
OSCD_LABEL2ID = {name: index for index, name in OSCD_ID2LABEL.items()}

_EUROSAT_IMAGE_FOLDERS = (".", "EuroSAT_MS", "ds/images/remote_sensing/otherDatasets/sentinel_2/tif")
_OSCD_IMAGES_FOLDER = "Onera Satellite Change Detection dataset - Images"
_BIGEARTHNET_IMAGES_FOLDER = "BigEarthNet-S2"


# --- Lazy decoding -------------------------------------------------------------------------------------------


class _DecodeExamples:
    """The `set_transform` function of every loader: decodes each example of a batch with `decode_example`."""

    def __init__(self, decode_example: Callable[[dict], dict]):
        self.decode_example = decode_example

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        size = len(next(iter(batch.values())))
        examples = [
            self.decode_example({name: values[index] for name, values in batch.items()}) for index in range(size)
        ]
        return {name: [example[name] for example in examples] for name in examples[0]}


def _lazy_dataset(columns: dict[str, list], features: Features, decode_example: Callable[[dict], dict]) -> Dataset:
    dataset = Dataset.from_dict(columns, features=features)
    dataset.set_transform(_DecodeExamples(decode_example))
    return dataset


def _recipe_processor(image_processor, preset: Callable[..., SpectralGPTImageProcessor], augmentation):
    """The given processor, else the dataset's preset. The original evaluation transforms resize and centre-crop;
    its training transforms only normalise before the random crop, so with an augmentation the preset is used
    without its resize and crop."""
    if image_processor is not None:
        return image_processor
    return preset() if augmentation is None else preset(do_resize=False, do_center_crop=False)


def _normalize(processor: SpectralGPTImageProcessor, image: np.ndarray) -> torch.Tensor:
    return processor(image, return_tensors="pt")["pixel_values"][0]


def _read_label(path: str, window: Window | None = None) -> np.ndarray:
    """All layers (C, H, W) of a label raster; labels are codes, not Sentinel-2 bands, so geo.py does not apply."""
    with rasterio.open(path) as dataset:
        return dataset.read(window=window)


def _decode_classification(example: dict, file_band_order, processor, augmentation) -> dict:
    image = geo.read_bands(example["source"], SENTINEL2_BANDS, file_band_order=file_band_order).data
    pixel_values = _normalize(processor, image)
    if augmentation is not None:
        pixel_values = augmentation(pixel_values)
    return {"pixel_values": pixel_values, "labels": torch.as_tensor(example["labels"])}


def _decode_segmunich(example: dict, processor, augmentation) -> dict:
    bands = geo.read_bands(example["image_path"], SEGMUNICH_BANDS, file_band_order=SEGMUNICH_BANDS).data
    pixel_values = _normalize(processor, bands)  # the processor appends the band-mean channels
    codes = _read_label(example["label_path"])[0]
    if codes.shape != bands.shape[1:]:
        raise ValueError(
            f"The label {example['label_path']} is {codes.shape[0]} x {codes.shape[1]} pixels but its image "
            f"{example['image_path']} is {bands.shape[1]} x {bands.shape[2]}; each label must match its image."
        )
    labels = codes.astype(np.int64)
    for code, class_id in SEGMUNICH_LABEL_REMAP.items():
        labels[codes == code] = class_id
    labels = torch.from_numpy(labels)
    if augmentation is not None:
        pixel_values, labels = augmentation(pixel_values, labels)
    return {"pixel_values": pixel_values, "labels": labels}


def _decode_oscd(example: dict, patch_size: int, processor, augmentation) -> dict:
    window = Window(example["col"], example["row"], patch_size, patch_size)
    pixel_values, pixel_values_2 = (
        _normalize(processor, geo.read_bands(example[date], SENTINEL2_BANDS, window=window).data)
        for date in ("source_1", "source_2")
    )
    labels = torch.from_numpy(_oscd_change_map(example["label_path"], window))
    if augmentation is not None:
        pixel_values, pixel_values_2, labels = augmentation(pixel_values, pixel_values_2, labels)
    return {"pixel_values": pixel_values, "pixel_values_2": pixel_values_2, "labels": labels}


def _oscd_change_map(path: str, window: Window) -> np.ndarray:
    values = _read_label(path, window)
    if Path(path).suffix.lower() == ".png":
        return np.any(values != 0, axis=0).astype(np.int64)
    unexpected = sorted(set(np.unique(values).tolist()) - {1, 2})
    if unexpected:
        raise ValueError(
            f"{path} holds the values {unexpected}, but an OSCD change map GeoTIFF codes 1 = no change and "
            "2 = change. Check that the file is the <city>-cm.tif of the OSCD labels."
        )
    return (values[0] == 2).astype(np.int64)


# --- Loaders ---------------------------------------------------------------------------------------------------


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
    image_root = _find_folder(
        root,
        _EUROSAT_IMAGE_FOLDERS,
        lambda folder: any((folder / name).is_dir() for name in EUROSAT_CLASSES),
        what=f"EuroSAT-MS class folders ({', '.join(EUROSAT_CLASSES)}) holding <ClassName>_<n>.tif",
    )
    files = {
        path.stem: (path, class_id)
        for class_id, name in enumerate(EUROSAT_CLASSES)
        if (image_root / name).is_dir()
        for path in sorted((image_root / name).glob("*.tif"), key=_natural_order)
    }
    if split is not None:
        names = _eurosat_split_names(root, image_root, split)
        missing = [name for name in names if name not in files]
        if missing:
            raise ValueError(
                f"{len(missing)} of the {len(names)} files listed for split {split!r} are not in the class folders "
                f"under {image_root} (first: {missing[:3]}). Point root at the EuroSAT-MS copy the list belongs to."
            )
        files = {name: files[name] for name in names}
    if not files:
        raise ValueError(f"The EuroSAT class folders under {image_root} hold no .tif files.")
    features = Features({"source": Value("string"), "labels": ClassLabel(names=list(EUROSAT_CLASSES))})
    columns = {"source": [str(path) for path, _ in files.values()], "labels": [label for _, label in files.values()]}
    decode = functools.partial(
        _decode_classification,
        file_band_order="eurosat_ms",
        processor=_recipe_processor(image_processor, SpectralGPTImageProcessor.for_eurosat, augmentation),
        augmentation=augmentation,
    )
    return _lazy_dataset(columns, features, decode)


def _eurosat_split_names(root: Path, image_root: Path, split: str) -> list[str]:
    candidates = [folder / f"eurosat-{split}.txt" for folder in dict.fromkeys((root, image_root))]
    split_file = next((path for path in candidates if path.is_file()), None)
    if split_file is None:
        raise FileNotFoundError(
            f"No split file for split {split!r}: expected {' or '.join(map(str, candidates))} (torchgeo's "
            "eurosat-train.txt / eurosat-val.txt / eurosat-test.txt). Pass split=None to use every file."
        )
    return [Path(line.strip()).stem for line in split_file.read_text().splitlines() if line.strip()]


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
    metadata_path = Path(metadata_path) if metadata_path is not None else root / "metadata.parquet"
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"No BigEarthNet metadata at {metadata_path}: expected reBEN's metadata.parquet (columns patch_id, "
            "labels, split). Pass metadata_path if it is elsewhere."
        )
    image_root = root / _BIGEARTHNET_IMAGES_FOLDER if (root / _BIGEARTHNET_IMAGES_FOLDER).is_dir() else root
    required = ["patch_id", "labels", "split"]
    found = pq.read_schema(metadata_path).names
    if not set(required) <= set(found):
        raise ValueError(f"{metadata_path} needs the columns {required}; it has {found}.")
    table = pq.read_table(metadata_path, columns=required)
    rows = table.filter(pc.equal(table["split"], split)).to_pylist()
    if not rows:
        splits = sorted(str(value) for value in pc.unique(table["split"]).to_pylist())
        raise ValueError(f"No patch of {metadata_path} has split {split!r}; its splits are {splits}.")
    sources = [image_root / row["patch_id"].rsplit("_", 2)[0] / row["patch_id"] for row in rows]
    # Only the first patch is checked, to keep loading fast; a missing one fails when it is accessed.
    if not sources[0].is_dir():
        raise FileNotFoundError(
            f"No folder for patch {rows[0]['patch_id']}: expected {sources[0]} holding "
            f"{rows[0]['patch_id']}_B02.tif etc. (layout BigEarthNet-S2/<tile>/<patch_id>/). Found in "
            f"{image_root}: {_listing(image_root)}."
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
    decode = functools.partial(
        _decode_classification,
        file_band_order=None,
        processor=_recipe_processor(image_processor, SpectralGPTImageProcessor.for_bigearthnet, augmentation),
        augmentation=augmentation,
    )
    return _lazy_dataset(columns, features, decode)


def bigearthnet_multi_hot(label_names: Sequence[str], where: str = "the labels") -> list[float]:
    """The 19-class multi-hot vector of BigEarthNet label names (19-class names or 43-class CORINE names)."""
    multi_hot = [0.0] * len(BIGEARTHNET_CLASSES)
    for name in label_names:
        if name in BIGEARTHNET_LABEL2ID:
            multi_hot[BIGEARTHNET_LABEL2ID[name]] = 1.0
        elif name in BIGEARTHNET_43_TO_19:
            grouped = BIGEARTHNET_43_TO_19[name]
            if grouped is not None:
                multi_hot[BIGEARTHNET_LABEL2ID[grouped]] = 1.0
        else:
            raise ValueError(
                f"Unknown BigEarthNet label {name!r} in {where}: expected a name of the 19-class nomenclature "
                "(BIGEARTHNET_CLASSES) or one of the 43 CORINE classes (BIGEARTHNET_43_TO_19)."
            )
    return multi_hot


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
            f"{root}: {_listing(root)}."
        )
    split_file = root / "dataset" / f"{split}.txt"
    if split_file.is_file():
        names = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    else:
        names = [path.stem for path in sorted(image_folder.glob("*.tif"), key=_natural_order)]
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
    features = Features({"name": Value("string"), "image_path": Value("string"), "label_path": Value("string")})
    columns = {
        "name": names,
        "image_path": [str(image_folder / f"{name}.tif") for name in names],
        "label_path": [str(label_folder / f"{name}.tif") for name in names],
    }
    decode = functools.partial(
        _decode_segmunich,
        processor=_recipe_processor(image_processor, SpectralGPTImageProcessor.for_segmunich, augmentation),
        augmentation=augmentation,
    )
    return _lazy_dataset(columns, features, decode)


def load_oscd(
    root: str | os.PathLike,
    split: str = "train",
    *,
    labels_root: str | os.PathLike | None = None,
    patch_size: int = 128,
    stride: int = 63,
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
    images_root = _find_folder(
        root,
        (".", _OSCD_IMAGES_FOLDER),
        lambda folder: (folder / f"{split}.txt").is_file(),
        what=f"the OSCD images folder with the city list {split}.txt (comma-separated names) and <city>/imgs_1_rect/",
    )
    if labels_root is None:
        sibling = images_root.parent / f"Onera Satellite Change Detection dataset - {split.capitalize()} Labels"
        labels_root = sibling if sibling.is_dir() else images_root
    labels_root = Path(labels_root)
    cities = [name.strip() for name in re.split(r"[,\s]+", (images_root / f"{split}.txt").read_text()) if name.strip()]

    columns = {name: [] for name in ("city", "source_1", "source_2", "label_path", "row", "col")}
    for city in cities:
        dates = [images_root / city / f"imgs_{date}_rect" for date in (1, 2)]
        label_path = _oscd_label_path(labels_root, city)
        (height_1, width_1), (height_2, width_2) = (_grid_size(folder) for folder in dates)
        with rasterio.open(label_path) as label:
            if label.shape != (height_1, width_1):
                raise ValueError(
                    f"The change map {label_path} is {label.height} x {label.width} pixels but {dates[0]} is "
                    f"{height_1} x {width_1}; the change map must cover the first date's grid."
                )
        for row in range(0, min(height_1, height_2) - patch_size + 1, stride):
            for col in range(0, min(width_1, width_2) - patch_size + 1, stride):
                for name, value in zip(columns, (city, *map(str, dates), str(label_path), row, col)):
                    columns[name].append(value)
    if not columns["city"]:
        raise ValueError(f"No {patch_size} x {patch_size} patch fits in the cities {cities} of {images_root}.")
    features = Features(
        {name: Value("string") for name in ("city", "source_1", "source_2", "label_path")}
        | {"row": Value("int32"), "col": Value("int32")}
    )
    decode = functools.partial(
        _decode_oscd,
        patch_size=patch_size,
        processor=_recipe_processor(image_processor, SpectralGPTImageProcessor.for_oscd, augmentation),
        augmentation=augmentation,
    )
    return _lazy_dataset(columns, features, decode)


def _oscd_label_path(labels_root: Path, city: str) -> Path:
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
            f"B12.tif. Found in {folder.parent}: {_listing(folder.parent)}."
        )
    # Opening reads only the headers; it also checks that all 12 bands are there.
    with geo.open_scene(folder, SENTINEL2_BANDS) as scene:
        return scene.height, scene.width


def _find_folder(root: Path, candidates: Sequence[str], is_match: Callable[[Path], bool], what: str) -> Path:
    for candidate in candidates:
        folder = root / candidate
        if folder.is_dir() and is_match(folder):
            return folder
    places = ", ".join(str(root / candidate) for candidate in candidates)
    raise FileNotFoundError(f"Expected {what} in one of: {places}. Found in {root}: {_listing(root)}.")


def _listing(folder: Path, limit: int = 10) -> str:
    if not folder.is_dir():
        return "nothing (the folder does not exist)"
    names = sorted(path.name + ("/" if path.is_dir() else "") for path in folder.iterdir())
    if not names:
        return "nothing (the folder is empty)"
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _natural_order(path: Path) -> list:
    """Sort key that puts AnnualCrop_2 before AnnualCrop_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


# --- Augmentations -----------------------------------------------------------------------------------------------


class _RandomAugmentation:
    """Draws from torch's global generator (`seed=None`: reproducible with `torch.manual_seed`, and DataLoader
    workers already get distinct seeds), or from a private generator seeded with `seed`. Inside a DataLoader
    worker the private generator is re-seeded from `seed` and the worker's seed, so that workers, and the
    fresh workers of each epoch, do not replay the same draws."""

    def __init__(self, seed: int | None):
        self.seed = seed
        self._generator = None
        self._worker_seed = None

    def _random_generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        worker = torch.utils.data.get_worker_info()
        worker_seed = None if worker is None else worker.seed
        if self._generator is None or worker_seed != self._worker_seed:
            seed = self.seed if worker_seed is None else (self.seed + worker_seed) % 2**63
            self._generator = torch.Generator().manual_seed(seed)
            self._worker_seed = worker_seed
        return self._generator


def _uniform(low: float, high: float, generator) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=generator))


def _chance(probability: float, generator) -> bool:
    return float(torch.rand((), generator=generator)) < probability


class RandomResizedCropAndFlip(_RandomAugmentation):
    """The classification and pretraining augmentation of the original recipes: a random crop covering `scale` of
    the image area with an aspect ratio in `ratio`, resized to `size` (bicubic, no antialiasing), then a
    horizontal flip with `flip_probability`. Called on one image (C, H, W); returns (C, *size)."""

    def __init__(
        self,
        size: int | tuple[int, int] = 128,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_probability: float = 0.5,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]):
            raise ValueError(
                f"scale must satisfy 0 < low <= high <= 1 and ratio 0 < low <= high; got scale={scale}, ratio={ratio}."
            )
        self.scale, self.ratio, self.flip_probability = tuple(scale), tuple(ratio), flip_probability

    def _crop_box(self, height: int, width: int, generator=None) -> tuple[int, int, int, int]:
        """(top, left, crop_height, crop_width): ten tries at a random box that fits (the sampling of
        torchvision's RandomResizedCrop), else the largest centred box whose ratio is within `ratio`."""
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = height * width * _uniform(*self.scale, generator)
            aspect = math.exp(_uniform(*log_ratio, generator))
            crop_width, crop_height = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < crop_width <= width and 0 < crop_height <= height:
                top = int(torch.randint(height - crop_height + 1, (), generator=generator))
                left = int(torch.randint(width - crop_width + 1, (), generator=generator))
                return top, left, crop_height, crop_width
        aspect = width / height
        crop_height, crop_width = height, width
        if aspect < self.ratio[0]:
            crop_height = round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            crop_width = round(height * self.ratio[1])
        return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 3 or not image.is_floating_point():
            raise ValueError(
                f"Expected one float image (C, H, W), got dtype {image.dtype} and shape {tuple(image.shape)}."
            )
        generator = self._random_generator()
        top, left, crop_height, crop_width = self._crop_box(*image.shape[1:], generator=generator)
        crop = image[None, :, top : top + crop_height, left : left + crop_width]
        resized = F.interpolate(crop, size=self.size, mode="bicubic", align_corners=False, antialias=False)[0]
        return resized.flip(-1) if _chance(self.flip_probability, generator) else resized


class RandomFlipsAndRotations(_RandomAugmentation):
    """The segmentation and change-detection augmentation of the original recipes: a horizontal flip, a vertical
    flip (each with its probability) and a rotation by a random multiple of 90 degrees, applied identically to
    every tensor of a call: `augmentation(image, mask)` or `augmentation(image, image_2, mask)`, each (..., H, W).
    Masks are only moved, never interpolated. Returns the tensors in the same order (a lone tensor as itself).

    Defaults: SegMunich (Rot90 k in 0..3, vertical and horizontal flips with p = 0.5). OSCD flipped only along the
    width: use `vertical_flip_probability=0.0`.
    """

    def __init__(
        self,
        horizontal_flip_probability: float = 0.5,
        vertical_flip_probability: float = 0.5,
        rotate: bool = True,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.horizontal_flip_probability = horizontal_flip_probability
        self.vertical_flip_probability = vertical_flip_probability
        self.rotate = rotate

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        sizes = {tuple(tensor.shape[-2:]) for tensor in tensors}
        if len(sizes) != 1:
            raise ValueError(f"All tensors must share their last two (H, W) dimensions, got {sorted(sizes)}.")
        generator = self._random_generator()
        flip_dims = [
            dim
            for dim, probability in ((-1, self.horizontal_flip_probability), (-2, self.vertical_flip_probability))
            if _chance(probability, generator)
        ]
        quarter_turns = int(torch.randint(4, (), generator=generator)) if self.rotate else 0
        moved = tuple(torch.rot90(tensor.flip(flip_dims), quarter_turns, dims=(-2, -1)) for tensor in tensors)
        return moved[0] if len(moved) == 1 else moved


__all__ = [
    "BIGEARTHNET_43_TO_19",
    "BIGEARTHNET_CLASSES",
    "BIGEARTHNET_ID2LABEL",
    "BIGEARTHNET_LABEL2ID",
    "EUROSAT_CLASSES",
    "EUROSAT_ID2LABEL",
    "EUROSAT_LABEL2ID",
    "OSCD_CLASSES",
    "OSCD_ID2LABEL",
    "OSCD_LABEL2ID",
    "SEGMUNICH_BANDS",
    "SEGMUNICH_CLASSES",
    "SEGMUNICH_ID2LABEL",
    "SEGMUNICH_LABEL2ID",
    "SEGMUNICH_LABEL_REMAP",
    "RandomFlipsAndRotations",
    "RandomResizedCropAndFlip",
    "bigearthnet_multi_hot",
    "load_bigearthnet",
    "load_eurosat",
    "load_oscd",
    "load_segmunich",
]
