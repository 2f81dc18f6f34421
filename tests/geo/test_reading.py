"""Reading Sentinel-2 rasters by band name (real samples: tests/fixtures/data and the package's embedded SSL4EO-S12
pair)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.io
import rasterio.warp
from rasterio import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from spectralgpt_hf import SENTINEL2_BANDS
from spectralgpt_hf.geo import (
    DATASET_BAND_ORDERS,
    band_name_from_filename,
    open_scene,
    read_bands,
    write_geotiff,
)

MODEL_BANDS = tuple(SENTINEL2_BANDS)

# Layer numbers of each band in the EuroSAT-MS tifs, from the data README (B8A is the last layer).
EUROSAT_FILE_LAYERS = {"B01": 1, "B02": 2, "B03": 3, "B04": 4, "B05": 5, "B06": 6, "B07": 7, "B08": 8, "B09": 9,
                       "B10": 10, "B11": 11, "B12": 12, "B8A": 13}  # fmt: skip


@pytest.fixture(scope="module")
def eurosat_file(data_dir):
    return data_dir / "eurosat_ms" / "AnnualCrop" / "AnnualCrop_1.tif"


@pytest.fixture(scope="module")
def bigearthnet_folder(data_dir):
    return next((data_dir / "bigearthnet_s2").glob("*/*/"))


@pytest.fixture(scope="module")
def major_tom_folder(data_dir):
    return next((data_dir / "major_tom_s2l2a").glob("*/*/*/"))


@pytest.fixture(scope="module")
def ssl4eo_folder(data_dir):
    return sorted((data_dir / "ssl4eo_s12_l2a").glob("*/*/"))[0]


def read_raw(path):
    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset.transform


def test_eurosat_stack_is_read_by_name(eurosat_file):
    with rasterio.open(eurosat_file) as dataset:
        raw, crs, transform = dataset.read(), dataset.crs, dataset.transform

    bands = read_bands(eurosat_file, file_band_order="eurosat_ms")

    assert bands.band_names == MODEL_BANDS
    assert "B10" not in bands.band_names
    assert bands.data.shape == (12, 64, 64) and bands.data.dtype == np.float32
    for position, name in enumerate(bands.band_names):
        np.testing.assert_array_equal(bands.data[position], raw[EUROSAT_FILE_LAYERS[name] - 1])
    np.testing.assert_array_equal(bands.data[MODEL_BANDS.index("B8A")], raw[12])
    assert bands.crs == crs and bands.transform == transform
    assert bands.valid_mask.all()


def test_stack_band_order_from_explicit_list_matches_dataset_key(eurosat_file):
    by_key = read_bands(eurosat_file, ["B8A", "B2"], file_band_order="eurosat_ms")
    by_list = read_bands(eurosat_file, ["B8A", "B2"], file_band_order=list(DATASET_BAND_ORDERS["eurosat_ms"]))
    np.testing.assert_array_equal(by_key.data, by_list.data)
    assert by_key.band_names == ("B8A", "B02")
    with open_scene(eurosat_file, ["B02"], file_band_order="eurosat_ms") as scene:
        assert scene.available_bands == DATASET_BAND_ORDERS["eurosat_ms"]


def test_stack_without_descriptions_needs_band_order(eurosat_file):
    with pytest.raises(ValueError, match="file_band_order"):
        read_bands(eurosat_file)
    with pytest.raises(ValueError, match="names 12 bands .* has 13 bands"):
        read_bands(eurosat_file, file_band_order="spectralgpt")
    with pytest.raises(ValueError, match="Unknown dataset key"):
        read_bands(eurosat_file, file_band_order="eurosat")


def write_single_band(path, array, pixel_size=None, nodata=None, *, crs="EPSG:32633", transform=None):
    """A one-band GeoTIFF: north-up at (500000, 4000000) with `pixel_size`, or on `transform` in `crs`."""
    height, width = array.shape
    transform = transform or Affine(pixel_size, 0, 500000, 0, -pixel_size, 4000000)
    with rasterio.open(
        path, "w", driver="GTiff", height=height, width=width, count=1, dtype=array.dtype, crs=crs,
        transform=transform, nodata=nodata,
    ) as dataset:  # fmt: skip
        dataset.write(array, 1)


def test_stack_band_order_from_descriptions(tmp_path):
    layers = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    path = tmp_path / "stack.tif"
    write_geotiff(path, layers, "EPSG:32633", Affine(10, 0, 0, 0, -10, 40), band_descriptions=["B04", "B03", "B8A"])

    bands = read_bands(path, ["B8a", "b4"])

    assert bands.band_names == ("B8A", "B04")
    np.testing.assert_array_equal(bands.data, layers[[2, 0]])
    with pytest.raises(ValueError, match="band descriptions .* say B04, B03, B8A but file_band_order says"):
        read_bands(path, ["B04"], file_band_order=["B02", "B03", "B04"])


def test_bigearthnet_folder_is_resampled_onto_the_10m_grid(bigearthnet_folder):
    b02_path = next(bigearthnet_folder.glob("*_B02.tif"))
    b02, transform_10m = read_raw(b02_path)
    b01, transform_60m = read_raw(next(bigearthnet_folder.glob("*_B01.tif")))
    assert transform_60m.a == 60 and transform_10m.a == 10

    bilinear = read_bands(bigearthnet_folder)
    nearest = read_bands(bigearthnet_folder, ["B01"], resampling="nearest")

    assert bilinear.band_names == MODEL_BANDS
    assert bilinear.data.shape == (12, 120, 120)
    assert bilinear.transform == transform_10m
    np.testing.assert_array_equal(bilinear.data[MODEL_BANDS.index("B02")], b02)
    # Nearest: every 60 m pixel becomes a 6 x 6 block of 10 m pixels.
    np.testing.assert_array_equal(nearest.data[0], np.kron(b01, np.ones((6, 6))))
    # Bilinear: linear interpolation between 60 m pixel centres, clamped at the edges, separable by axis.
    centres = (np.arange(120) + 0.5) / 6 - 0.5
    along_rows = np.stack([np.interp(centres, np.arange(20), column) for column in b01.T.astype(float)], axis=1)
    expected = np.stack([np.interp(centres, np.arange(20), row) for row in along_rows])
    np.testing.assert_allclose(bilinear.data[0], expected, rtol=1e-5)


def test_major_tom_windows_equal_the_same_region_of_a_full_read(major_tom_folder):
    with rasterio.open(major_tom_folder / "B02.tif") as b02, rasterio.open(major_tom_folder / "B01.tif") as b01:
        height, width = b02.shape  # 10 m; the 60 m band covers the same ground
        assert (b01.height * 6, b01.width * 6) == (height, width) and height > 400
    # odd offsets (not on the 20 m or 60 m grid), a window flush with the bottom-right corner, a single pixel
    windows = [Window(317, 233, 64, 64), Window(width - 68, height - 64, 68, 64), Window(0, 0, 1, 1)]
    with open_scene(major_tom_folder) as scene:
        assert scene.band_names == MODEL_BANDS  # cloud_mask.tif and thumbnail.png are not bands
        assert scene.shape == (height, width)
        full = scene.read()
        parts = [scene.read(window) for window in windows]

    assert full.data.shape == (12, height, width) and full.crs == "EPSG:32633"
    for window, part in zip(windows, parts):
        rows, columns = window.toslices()
        np.testing.assert_array_equal(part.data, full.data[:, rows, columns])
        np.testing.assert_array_equal(part.valid_mask, full.valid_mask[rows, columns])
        assert part.transform.c == pytest.approx(full.transform.c + 10 * window.col_off)
        assert part.transform.f == pytest.approx(full.transform.f - 10 * window.row_off)


def test_windows_must_be_whole_pixels_inside_the_grid(major_tom_folder):
    with open_scene(major_tom_folder, ["B02"]) as scene:
        height, width = scene.shape
        with pytest.raises(ValueError, match=f"extends beyond the {height} x {width}"):
            scene.read(Window(width - 68, 0, 100, 10))
        with pytest.raises(ValueError, match="fractional"):
            scene.read(Window(0.5, 0, 10, 10))
        with pytest.raises(TypeError, match="rasterio.windows.Window"):
            scene.read((0, 0, 10, 10))


def test_ssl4eo_unpadded_band_names(ssl4eo_folder):
    b2, transform_10m = read_raw(ssl4eo_folder / "B2.tif")

    bands = read_bands(ssl4eo_folder)

    assert bands.band_names == MODEL_BANDS
    assert bands.data.shape == (12, 264, 264)
    assert bands.transform == transform_10m
    np.testing.assert_array_equal(bands.data[MODEL_BANDS.index("B02")], b2)
    # The 20 m / 60 m grids of SSL4EO are offset from the 10 m grid; the few uncovered edge pixels are invalid.
    np.testing.assert_array_equal(~bands.valid_mask, np.isnan(bands.data).any(axis=0))
    assert bands.valid_mask[:-3, :-3].all()


def copy_folder_without(folder, tmp_path, band):
    target = tmp_path / "patch"
    target.mkdir()
    for path in folder.iterdir():
        if band_name_from_filename(path) != band:
            shutil.copy(path, target / path.name)
    return target


def test_missing_band_is_an_error_unless_filled(bigearthnet_folder, tmp_path):
    folder = copy_folder_without(bigearthnet_folder, tmp_path, "B05")

    with pytest.raises(ValueError, match=r"lacks the requested bands B05 \(found: B01, B02, B03, B04, B06, B07, B08,"):
        read_bands(folder, ["B02", "B05"])
    filled = read_bands(folder, fill_missing=True)

    complete = read_bands(bigearthnet_folder)
    missing = MODEL_BANDS.index("B05")
    assert filled.missing_bands == ("B05",)
    assert np.isnan(filled.data[missing]).all()
    others = [position for position in range(12) if position != missing]
    np.testing.assert_array_equal(filled.data[others], complete.data[others])
    assert filled.valid_mask.all()


def test_folder_errors(bigearthnet_folder, tmp_path):
    with pytest.raises(ValueError, match="applies to stacked files only"):
        read_bands(bigearthnet_folder, file_band_order="eurosat_ms")
    with pytest.raises(FileNotFoundError):
        read_bands(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="Unknown resampling 'bicubic'; use one of: nearest, bilinear, cubic"):
        read_bands(bigearthnet_folder, resampling="bicubic")
    with pytest.raises(ValueError, match="No band files found"):
        read_bands(tmp_path)
    write_single_band(tmp_path / "B2.tif", np.ones((4, 4), np.uint16), 10)
    write_single_band(tmp_path / "B02.tif", np.ones((4, 4), np.uint16), 10)
    with pytest.raises(ValueError, match="Several files .* hold the same band"):
        read_bands(tmp_path, ["B02"])
    (tmp_path / "broken.tif").write_text("not a GeoTIFF")
    with pytest.raises(ValueError, match=r"Cannot open .*broken\.tif \(the scene\): "):
        read_bands(tmp_path / "broken.tif")


def test_nodata_and_nan_pixels_are_invalid_and_nan(tmp_path):
    b02 = np.arange(1, 65, dtype=np.uint16).reshape(8, 8)
    b02[1, 1] = 0
    b03 = np.full((8, 8), 0.5, dtype=np.float32)
    b03[0, 5] = np.nan
    b05 = np.arange(1, 17, dtype=np.uint16).reshape(4, 4)
    b05[3, 3] = 0
    write_single_band(tmp_path / "B02.tif", b02, 10, nodata=0)
    write_single_band(tmp_path / "B03.tif", b03, 10)
    write_single_band(tmp_path / "B05.tif", b05, 20, nodata=0)

    bands = read_bands(tmp_path, ["B02", "B03", "B05"], resampling="nearest")

    expected_invalid = np.zeros((8, 8), dtype=bool)
    expected_invalid[1, 1] = expected_invalid[0, 5] = True
    expected_invalid[6:, 6:] = True  # the 20 m nodata pixel covers a 2 x 2 block of the 10 m grid
    np.testing.assert_array_equal(bands.valid_mask, ~expected_invalid)
    assert np.isnan(bands.data[0, 1, 1]) and np.isnan(bands.data[1, 0, 5]) and np.isnan(bands.data[2, 6:, 6:]).all()
    assert np.isnan(bands.data).sum() == 6
    np.testing.assert_array_equal(bands.data[2, :2, :2], np.full((2, 2), b05[0, 0]))
    # read_bands passes the options of open_scene on: a declared nodata value overrides the file's
    declared = read_bands(tmp_path, ["B03"], nodata=0.5)
    assert not declared.valid_mask.any() and np.isnan(declared.data).all()



def gdal_warp(path, transform, shape, resampling=Resampling.bilinear, src_nodata=None, crs=None):
    """GDAL's warp of the band at `path` onto the grid (`transform`, `shape`, `crs`: default the band's own), NaN
    where invalid."""
    with rasterio.open(path) as dataset, WarpedVRT(
        dataset, crs=crs or dataset.crs, transform=transform, height=shape[0], width=shape[1], resampling=resampling,
        dtype="float32", nodata=float("nan"), src_nodata=src_nodata,
    ) as warped:  # fmt: skip
        return warped.read(1)


@pytest.mark.parametrize("resampling", ["bilinear", "nearest"])
def test_coarser_bands_are_gdals_warp_bit_for_bit(major_tom_folder, resampling):
    """20 m and 60 m bands on the 10 m grid, with nodata holes (the most common value of each band declared nodata),
    equal GDAL's warper onto that grid: its values and its NaN, over the whole scene and in a window."""
    with rasterio.open(major_tom_folder / "B02.tif") as grid:
        crs, transform, shape = grid.crs, grid.transform, grid.shape
    window = Window(300, 5, 64, 48)  # holes of both bands; not square: rows and columns are not interchangeable
    for band in ("B05", "B01"):
        values, counts = np.unique(read_raw(major_tom_folder / f"{band}.tif")[0], return_counts=True)
        nodata = float(values[np.argmax(counts)])
        expected = gdal_warp(major_tom_folder / f"{band}.tif", transform, shape, Resampling[resampling], nodata, crs)
        with open_scene(major_tom_folder, [band], nodata=nodata, resampling=resampling) as scene:
            full, part = scene.read(), scene.read(window)
        assert 0 < np.isnan(expected).sum() < expected.size // 10  # there are holes, and mostly data
        assert np.isnan(expected[window.toslices()]).any()  # in the window too
        np.testing.assert_array_equal(full.data[0], expected)
        np.testing.assert_array_equal(full.valid_mask, ~np.isnan(expected))
        np.testing.assert_array_equal(part.data[0], expected[window.toslices()])


def test_coarser_band_window_reads_only_the_source_pixels_under_it(major_tom_folder, monkeypatch):
    """A window of a 60 m band on the 10 m grid reads the 60 m pixels under it plus one for the bilinear kernel,
    straight from the file (no warped view)."""
    reads = []
    original_read = rasterio.io.DatasetReader.read

    def recording_read(self, *args, **kwargs):
        reads.append((self.name, kwargs.get("window")))
        return original_read(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", recording_read)
    with open_scene(major_tom_folder, ["B01"]) as scene:
        reads.clear()
        scene.read(Window(317, 233, 64, 48))
    # columns 317..380: centres at 52.4 .. 62.9 of the 60 m pixels, so pixels 52 .. 63; rows 233..280: 38 .. 47
    assert [(Path(name).name, window) for name, window in reads] == [("B01.tif", Window(52, 38, 12, 10))]


def test_coarser_band_that_is_not_a_whole_multiple_is_warped(tmp_path):
    """A 15 m band on a 10 m grid is no whole multiple of it: the values are GDAL's warp, not the fast path's."""
    write_single_band(tmp_path / "B02.tif", np.ones((12, 12), np.uint16), 10)
    b05 = np.arange(1, 65, dtype=np.uint16).reshape(8, 8) * 7 % 61
    write_single_band(tmp_path / "B05.tif", b05, 15)
    expected = gdal_warp(tmp_path / "B05.tif", Affine(10, 0, 500000, 0, -10, 4000000), (12, 12))

    np.testing.assert_array_equal(read_bands(tmp_path, ["B05"]).data[0], expected)


def test_band_in_another_crs_is_reprojected_onto_the_grid(tmp_path):
    """A band stored in another CRS (here geographic) is read at the same places of the earth: a field linear in
    the grid's coordinates, stored at about 30 m, comes back as that field, to the bilinear kernel's error."""
    grid = Affine(10, 0, 500000, 0, -10, 4000000)
    write_single_band(tmp_path / "B02.tif", np.ones((32, 32), np.uint16), 10)
    (west, east), (north, south) = rasterio.warp.transform("EPSG:32633", "EPSG:4326", [500000, 500320],
                                                           [4000000, 3999680])  # fmt: skip
    west, north, east, south = west - 0.001, north + 0.001, east + 0.001, south - 0.001
    geographic = Affine((east - west) / 16, 0, west, 0, (south - north) / 16, north)
    columns, rows = np.meshgrid(np.arange(16) + 0.5, np.arange(16) + 0.5)
    longitudes, latitudes = geographic @ (columns.ravel(), rows.ravel())
    x, y = rasterio.warp.transform("EPSG:4326", "EPSG:32633", longitudes, latitudes)
    field = lambda x, y: (np.asarray(x) - 500000) + 2 * (4000000 - np.asarray(y))  # noqa: E731
    values = field(x, y).reshape(16, 16).astype(np.float32)
    write_single_band(tmp_path / "B05.tif", values, crs="EPSG:4326", transform=geographic)

    bands = read_bands(tmp_path, ["B05"])

    columns, rows = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5)
    expected = field(*(grid @ (columns, rows)))
    assert bands.crs == "EPSG:32633" and bands.valid_mask.all()
    np.testing.assert_allclose(bands.data[0], expected, atol=2.0)  # the field spans 0 .. 960


def test_coarser_band_covering_less_than_the_grid_is_nan_beyond_it(tmp_path):
    """A 20 m band 5 x 6 px under a 12 x 12 px 10 m grid covers its first 10 rows only: rows 10 and 11 are NaN,
    the rest GDAL's warp."""
    write_single_band(tmp_path / "B02.tif", np.ones((12, 12), np.uint16), 10)
    write_single_band(tmp_path / "B05.tif", np.arange(1, 31, dtype=np.uint16).reshape(5, 6) ** 2, 20)
    expected = gdal_warp(tmp_path / "B05.tif", Affine(10, 0, 500000, 0, -10, 4000000), (12, 12))

    bands = read_bands(tmp_path, ["B05"])

    assert np.isnan(bands.data[0, 10:]).all() and not np.isnan(bands.data[0, :10]).any()
    np.testing.assert_array_equal(bands.data[0], expected)
    np.testing.assert_array_equal(bands.valid_mask, ~np.isnan(expected))


def test_rotated_grid_is_read_through_the_warper(tmp_path):
    """Grids with rotation terms (a = 0 here: rows run east) are no case for the fast upsampler: GDAL warps them."""
    rotated = lambda pixel_size: Affine(0, pixel_size, 500000, pixel_size, 0, 4000000)  # noqa: E731
    write_single_band(tmp_path / "B02.tif", np.ones((8, 8), np.uint16), transform=rotated(10))
    b05 = np.arange(1, 17, dtype=np.uint16).reshape(4, 4) ** 2
    write_single_band(tmp_path / "B05.tif", b05, transform=rotated(20))
    expected = gdal_warp(tmp_path / "B05.tif", rotated(10), (8, 8), Resampling.nearest)

    bands = read_bands(tmp_path, ["B05"], resampling="nearest")

    np.testing.assert_array_equal(bands.data[0], np.kron(b05, np.ones((2, 2))))
    np.testing.assert_array_equal(bands.data[0], expected)
