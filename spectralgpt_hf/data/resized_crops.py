# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Random resized crops with flips and per-band min-max, written as two matrix products per image so that they
run fast on one CPU core and, for a whole batch at once, on the accelerator.

A bicubic resize (torch's `interpolate(mode="bicubic", align_corners=False)`, cubic coefficient -0.75, edges
clamped) is linear and separable: `resized = rows @ image @ columns.T` with a (size, height) and a (size, width)
weight matrix. A crop is the same product with zero weights outside the crop box, and a horizontal flip reverses
the rows of `columns`. Per-band min-max normalisation is affine, so it commutes with the resize (the weights of
each output pixel sum to 1) and is applied to the small output rather than the whole image.

Invalid pixels (NaN in float images, 0 in uint16 images, Sentinel-2's nodata value) do not count in the band
minimum and maximum and take the band minimum, which is what normalising first and zeroing them did.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

CUBIC_COEFFICIENT = -0.75
UINT16_NODATA = 0


def _cubic_taps(source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 source offsets (-1..2 around floor) and weights of each fractional source coordinate."""
    a = CUBIC_COEFFICIENT
    floor = torch.floor(source)
    t = source - floor
    near, far = torch.stack([t, 1 - t]), torch.stack([t + 1, 2 - t])
    inner = ((a + 2) * near - (a + 3)) * near * near + 1
    outer = ((a * far - 5 * a) * far + 8 * a) * far - 4 * a
    weights = torch.stack([outer[0], inner[0], inner[1], outer[1]], dim=-1)
    offsets = floor.long()[..., None] + torch.arange(-1, 3, device=source.device)
    return offsets, weights


def crop_weights(starts: torch.Tensor, lengths: torch.Tensor, size: int, extent: int) -> torch.Tensor:
    """(B, size, extent) matrices resizing the crop [start, start + length) of an axis of `extent` pixels to
    `size` bicubically (for B crops; `starts` and `lengths` are int64 (B,))."""
    lengths_f = lengths.to(torch.float64)[:, None]
    source = (torch.arange(size, dtype=torch.float64, device=starts.device) + 0.5) * (lengths_f / size) - 0.5
    offsets, weights = _cubic_taps(source)  # (B, size, 4)
    last = (lengths - 1)[:, None, None]
    columns = torch.minimum(offsets.clamp(min=0), last) + starts[:, None, None]
    matrices = torch.zeros(len(starts), size, extent, dtype=torch.float64, device=starts.device)
    matrices.scatter_add_(2, columns, weights)
    return matrices.to(torch.float32)


@functools.lru_cache(maxsize=512)
def _whole_axis_weights(length: int, size: int) -> torch.Tensor:
    return crop_weights(torch.zeros(1, dtype=torch.long), torch.tensor([length]), size, length)[0]


def valid_pixels(images: torch.Tensor) -> torch.Tensor:
    return images != UINT16_NODATA if images.dtype == torch.uint16 else torch.isfinite(images)


def band_ranges(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image per-band (low, high) over the valid pixels of (B, C, H, W) images, float32 (B, C, 1, 1); a band
    without valid pixels gets (0, 0)."""
    if images.dtype == torch.uint16:
        # uint16 is unsupported by most reductions; int32 holds it exactly, and nodata 0 is pushed above the range.
        values = images.to(torch.int32)
        low = torch.where(values == UINT16_NODATA, 1 << 16, values).amin(dim=(2, 3), keepdim=True)
        high = values.amax(dim=(2, 3), keepdim=True)
        low = torch.where(high == UINT16_NODATA, 0, low)
        return low.to(torch.float32), high.to(torch.float32)
    values = images.to(torch.float32)
    finite = torch.isfinite(values)
    low = torch.where(finite, values, torch.inf).amin(dim=(2, 3), keepdim=True)
    high = torch.where(finite, values, -torch.inf).amax(dim=(2, 3), keepdim=True)
    empty = ~torch.isfinite(low)
    return torch.where(empty, 0.0, low), torch.where(empty, 0.0, high)


def resized_crops(
    images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int, epsilon: float
) -> torch.Tensor:
    """
    Min-max normalised random resized crops of a batch, on the batch's device.

    Args:
        images: (B, C, H, W) uint16 (0 = nodata) or float (NaN = nodata).
        boxes: int64 (B, 4) of (top, left, height, width).
        flips: bool (B,), horizontal flips.
        size: output side.
        epsilon: added to max - min.

    Returns:
        float32 (B, C, size, size).
    """
    low, high = band_ranges(images)
    filled = torch.where(valid_pixels(images), images.to(torch.float32), low)
    boxes = boxes.to(images.device)
    rows = crop_weights(boxes[:, 0], boxes[:, 2], size, images.shape[2])
    columns = crop_weights(boxes[:, 1], boxes[:, 3], size, images.shape[3])
    columns = torch.where(flips.to(images.device)[:, None, None], columns.flip(1), columns)
    resized = rows[:, None] @ filled @ columns[:, None].transpose(-1, -2)
    return (resized - low) / (high - low + epsilon)


def resized_crop(image: np.ndarray, box: tuple[int, int, int, int], flip: bool, size: int, epsilon: float):
    """`resized_crops` of one (C, H, W) numpy image on the CPU: the crop is cut first and the weights of its size
    are cached, so that the products only span the crop; returns a float32 tensor (C, size, size)."""
    top, left, height, width = box
    low, high, any_invalid = _numpy_band_ranges(image)
    crop = torch.from_numpy(np.ascontiguousarray(image[:, top : top + height, left : left + width]))
    crop = crop.to(torch.float32)
    if any_invalid:
        crop = torch.where(valid_pixels(crop if image.dtype != np.uint16 else crop.to(torch.uint16)), crop, low)
    rows, columns = _whole_axis_weights(height, size), _whole_axis_weights(width, size)
    if flip:
        columns = columns.flip(0)
    # The column pass as one (C * height, width) product, then the row pass per band.
    resized = rows @ (crop.view(-1, width) @ columns.T).view(len(crop), height, size)
    return resized.sub_(low).div_(high - low + epsilon)


def _numpy_band_ranges(image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """band_ranges of one numpy image, as (C, 1, 1) tensors, and whether it has invalid pixels."""
    if image.dtype == np.uint16:
        # 0 wraps round to 65535, above every valid value, so this minimum skips nodata.
        low = (image - np.uint16(1)).min(axis=(1, 2)) + np.uint16(1)
        high = image.max(axis=(1, 2))
        low = np.where(high == UINT16_NODATA, 0, low)
        any_invalid = bool((image.min(axis=(1, 2)) == UINT16_NODATA).any())
    else:
        invalid = ~np.isfinite(image)
        any_invalid = bool(invalid.any())
        if any_invalid:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bands
                low, high = np.nanmin(image, axis=(1, 2)), np.nanmax(image, axis=(1, 2))
            empty = ~np.isfinite(low)
            low, high = np.where(empty, 0, low), np.where(empty, 0, high)
        else:
            low, high = image.min(axis=(1, 2)), image.max(axis=(1, 2))
    as_tensor = lambda values: torch.from_numpy(np.asarray(values, dtype=np.float32))[:, None, None]  # noqa: E731
    return as_tensor(low), as_tensor(high), any_invalid
