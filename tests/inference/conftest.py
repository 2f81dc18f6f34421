"""Small crops of the real Major-TOM scene, in both layouts, for fast many-scene and reader tests."""

import glob
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from spectralgpt_hf.configuration_spectralgpt import SENTINEL2_BANDS
from spectralgpt_hf.geo import read_bands, write_geotiff


def crop_band_folder(source: Path, destination: Path, row: int, col: int, size: int) -> Path:
    """The 10 m window (row, col, size) of a per-band folder, each band cropped at its own resolution (offsets and
    size multiples of 60 m, so every band's crop covers the same footprint)."""
    destination.mkdir(parents=True)
    for path in sorted(source.glob("B*.tif")):
        with rasterio.open(path) as dataset:
            factor = round(dataset.res[0] / 10)
            window = Window(col // factor, row // factor, size // factor, size // factor)
            data = dataset.read(1, window=window)
            write_geotiff(destination / path.name, data, dataset.crs, dataset.window_transform(window))
    return destination


def stacked_file(source: Path, destination: Path) -> Path:
    bands = read_bands(source, SENTINEL2_BANDS)
    data = np.nan_to_num(bands.data).astype(np.uint16)
    return write_geotiff(destination, data, bands.crs, bands.transform, band_descriptions=list(SENTINEL2_BANDS))


@pytest.fixture(scope="session")
def major_tom_folder(data_dir) -> Path:
    return Path(glob.glob(str(data_dir / "major_tom_s2l2a" / "*" / "*" / "*"))[0])


@pytest.fixture(scope="session")
def scene_crops(major_tom_folder, tmp_path_factory) -> list[Path]:
    """Four 180 px per-band folders cut from different parts of the Major-TOM scene."""
    root = tmp_path_factory.mktemp("crops")
    offsets = [(0, 0), (0, 336), (336, 0), (300, 324)]
    return [
        crop_band_folder(major_tom_folder, root / f"scene_{index}", row, col, 180)
        for index, (row, col) in enumerate(offsets)
    ]


@pytest.fixture(scope="session")
def stacked_crop(scene_crops, tmp_path_factory) -> Path:
    """The last crop as one stacked 12-band GeoTIFF on the 10 m grid."""
    return stacked_file(scene_crops[3], tmp_path_factory.mktemp("stacked") / "scene.tif")
