# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Which pixels to leave out: scene classification (SCL) classes or a cloud-mask raster.

Masked pixels are NaN in the data read, False in its valid mask, left out of the per-tile normalisation statistics
and written as nodata in every output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# SCL classes: 0 no data, 1 saturated or defective, 2 cast shadows, 3 cloud shadows, 4 vegetation, 5 not vegetated,
# 6 water, 7 unclassified, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus, 11 snow or ice.
SCL_INVALID = (0, 1, 3, 8, 9, 10)


@dataclass(frozen=True)
class MaskSpec:
    """`scl_classes`: mask these classes of the product's SCL; or `path`: mask where any band of a raster is not 0."""

    scl_classes: tuple[int, ...] | None = None
    path: str | None = None

    def masked(self, values: np.ndarray) -> np.ndarray:
        """(H, W) True where masked, from the (bands, H, W) mask raster values on the scene's grid."""
        if self.scl_classes is not None:
            return np.isin(values[0], self.scl_classes)
        return (values != 0).any(axis=0)


def parse_mask(mask: str | os.PathLike | Sequence[int] | MaskSpec | None) -> MaskSpec | None:
    """A mask specification from "scl" (the usual invalid classes, `SCL_INVALID`), "scl:3,8,9,10" or a list of
    SCL classes, or the path (or URL) of a cloud-mask raster such as L1C's `MSK_CLASSI_B00.jp2`."""
    if mask is None or isinstance(mask, MaskSpec):
        return mask
    if not isinstance(mask, (str, os.PathLike)):
        return MaskSpec(scl_classes=_classes(mask, str(mask)))
    text = os.fspath(mask)
    if text.lower() == "scl":
        return MaskSpec(scl_classes=SCL_INVALID)
    if text.lower().startswith("scl:"):
        return MaskSpec(scl_classes=_classes(text[4:].split(","), text))
    return MaskSpec(path=text)


def _classes(values, spec: str) -> tuple[int, ...]:
    try:
        classes = tuple(int(value) for value in values)
    except (TypeError, ValueError):
        raise ValueError(f"Mask {spec!r}: SCL classes must be whole numbers 0-11, such as scl:3,8,9,10.") from None
    if not classes or not all(0 <= value <= 11 for value in classes):
        raise ValueError(f"Mask {spec!r}: SCL classes must be whole numbers 0-11, such as scl:3,8,9,10.")
    return classes
