# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The training augmentations of the original recipes, on normalised tensors: `RandomResizedCropAndFlip` for one
image (classification, pretraining) and `RandomFlipsAndRotations` for an image with its mask (segmentation) or
two dates with their change map (change detection)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
