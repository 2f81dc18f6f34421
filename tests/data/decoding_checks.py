"""Helpers of the dataset tests: the expected values of decoded examples, computed from the files directly."""

import numpy as np
import rasterio

from spectralgpt_hf import geo

def min_max(array, eps):
    array = array.astype(np.float64)
    low = array.min(axis=(-2, -1), keepdims=True)
    high = array.max(axis=(-2, -1), keepdims=True)
    return (array - low) / (high - low + eps)


def read_layers(path, window=None):
    with rasterio.open(path) as dataset:
        return dataset.read(window=window)


def dihedral_images(array):
    """The 8 images that flips and quarter turns make of a (H, W) array."""
    return [np.rot90(flipped, k) for flipped in (array, array[:, ::-1]) for k in range(4)]


def count_reads(monkeypatch):
    calls = []
    read_bands = geo.read_bands

    def counting_read_bands(*args, **kwargs):
        calls.append(args[0])
        return read_bands(*args, **kwargs)

    monkeypatch.setattr(geo, "read_bands", counting_read_bands)
    return calls
