"""Atomic GeoTIFF writing."""

import numpy as np
import pytest
import rasterio
import rasterio.io
from rasterio import Affine

from spectralgpt_hf.geo import read_bands, write_geotiff


@pytest.fixture(scope="module")
def bigearthnet_folder(data_dir):
    return next((data_dir / "bigearthnet_s2").glob("*/*/"))


def test_write_geotiff_round_trip(tmp_path, bigearthnet_folder):
    bands = read_bands(bigearthnet_folder, ["B02", "B8A"])
    path = tmp_path / "out.tif"

    returned = write_geotiff(
        path, bands.data, bands.crs, bands.transform, band_descriptions=["B02", "B8A"], nodata=float("nan")
    )

    assert returned == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    with rasterio.open(path) as dataset:
        np.testing.assert_array_equal(dataset.read(), bands.data)
        assert dataset.crs == bands.crs and dataset.transform == bands.transform
        assert dataset.descriptions == ("B02", "B8A")
        assert np.isnan(dataset.nodata)
    mask_path = write_geotiff(tmp_path / "mask.tif", bands.valid_mask, bands.crs, bands.transform)
    with rasterio.open(mask_path) as dataset:
        assert dataset.count == 1 and dataset.dtypes == ("uint8",)
        np.testing.assert_array_equal(dataset.read(1), bands.valid_mask)


def test_write_geotiff_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "out.tif"
    transform = Affine(10, 0, 0, 0, -10, 40)
    write_geotiff(path, np.ones((4, 4), np.float32), "EPSG:32633", transform)
    original_write = rasterio.io.DatasetWriter.write

    def write_then_fail(self, *args, **kwargs):
        original_write(self, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_geotiff(path, np.zeros((4, 4), np.float32), "EPSG:32633", transform)
    with pytest.raises(OSError, match="disk full"):
        write_geotiff(tmp_path / "new.tif", np.zeros((4, 4), np.float32), "EPSG:32633", transform)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    with rasterio.open(path) as dataset:
        np.testing.assert_array_equal(dataset.read(1), np.ones((4, 4), np.float32))


def test_write_geotiff_rejects_bad_input(tmp_path):
    transform = Affine(10, 0, 0, 0, -10, 40)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        write_geotiff(tmp_path / "a.tif", np.zeros((1, 1, 4, 4)), None, transform)
    with pytest.raises(ValueError, match="2 band descriptions given for an array with 1 bands"):
        write_geotiff(tmp_path / "a.tif", np.zeros((4, 4)), None, transform, band_descriptions=["a", "b"])
    with pytest.raises(ValueError, match="cannot store dtype float16"):
        write_geotiff(tmp_path / "a.tif", np.zeros((4, 4), np.float16), None, transform)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_geotiff(tmp_path / "missing" / "a.tif", np.zeros((4, 4)), None, transform)
    assert list(tmp_path.iterdir()) == []

