# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Lazily decoded `datasets.Dataset` objects, shared by the loaders of the dataset modules.

A loader stores only file paths, labels and patch offsets; `lazy_dataset` sets a transform that decodes each
accessed example (reads its bands by name through `spectralgpt_hf.geo`, normalises them with an image processor
and optionally augments them), so any subset of examples is decoded on demand.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import rasterio
import torch
from datasets import Dataset, Features
from rasterio.windows import Window

from .. import geo
from ..configuration_spectralgpt import SENTINEL2_BANDS
from ..image_processing_spectralgpt import SpectralGPTImageProcessor


class DecodeExamples:
    """The `set_transform` function of every loader: decodes each example of a batch with `decode_example`."""

    def __init__(self, decode_example: Callable[[dict], dict]):
        self.decode_example = decode_example

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        size = len(next(iter(batch.values())))
        examples = [
            self.decode_example({name: values[index] for name, values in batch.items()}) for index in range(size)
        ]
        return {name: [example[name] for example in examples] for name in examples[0]}


def lazy_dataset(
    columns: dict[str, list],
    features: Features,
    decode_example: Callable[..., dict],
    *,
    image_processor: SpectralGPTImageProcessor | None,
    preset: Callable[..., SpectralGPTImageProcessor],
    augmentation: Callable | None,
    **decode_options,
) -> Dataset:
    """A dataset of the stored `columns` whose accessed examples are `decode_example(row, processor=...,
    augmentation=..., **decode_options)` of their stored row, with the processor `recipe_processor` chooses."""
    processor = recipe_processor(image_processor, preset, augmentation)
    decode = functools.partial(decode_example, processor=processor, augmentation=augmentation, **decode_options)
    dataset = Dataset.from_dict(columns, features=features)
    dataset.set_transform(DecodeExamples(decode))
    return dataset


def recipe_processor(image_processor, preset: Callable[..., SpectralGPTImageProcessor], augmentation):
    """The given processor, else the dataset's preset. The original evaluation transforms resize and centre-crop;
    its training transforms only normalise before the random crop, so with an augmentation the preset is used
    without its resize and crop."""
    if image_processor is not None:
        return image_processor
    return preset() if augmentation is None else preset(do_resize=False, do_center_crop=False)


def normalize(processor: SpectralGPTImageProcessor, image: np.ndarray) -> torch.Tensor:
    return processor(image, return_tensors="pt")["pixel_values"][0]


def read_label(path: str, window: Window | None = None) -> np.ndarray:
    """All layers (C, H, W) of a label raster; labels are codes, not Sentinel-2 bands, so geo does not apply."""
    with rasterio.open(path) as dataset:
        return dataset.read(window=window)


def decode_classification(
    example: dict, file_band_order: Sequence[str] | None, processor, augmentation
) -> dict[str, torch.Tensor]:
    """An image-level example: SpectralGPT's 12 bands of `example["source"]`, normalised and augmented, and its
    `labels` as a tensor."""
    image = geo.read_bands(example["source"], SENTINEL2_BANDS, file_band_order=file_band_order).data
    pixel_values = normalize(processor, image)
    if augmentation is not None:
        pixel_values = augmentation(pixel_values)
    return {"pixel_values": pixel_values, "labels": torch.as_tensor(example["labels"])}
