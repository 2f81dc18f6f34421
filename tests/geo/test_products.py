"""Real Sentinel-2 products in: SAFE folders and zips (JPEG 2000), STAC Items of COGs, exported folders, URLs; their
radiometry, nodata and masks; and the one-line errors of broken inputs. Products are built from the real bands."""

import json
import re
import shutil

import numpy as np
import pytest
import rasterio
import sentinel2_products as products
from sentinel2_products import corrected_folder, product_root, safe, safe_zip, stac_item  # noqa: F401 (fixtures)

from spectralgpt_hf.geo import describe_source, open_scene, read_bands
from spectralgpt_hf.geo.masks import SCL_INVALID, parse_mask
from spectralgpt_hf.geo.products import archive_gdal_path, describe_safe

BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def test_the_jpeg2000_driver_is_available():
    with rasterio.Env() as env:
        assert "JP2OpenJPEG" in env.drivers()


def test_safe_metadata_gives_band_files_radiometry_and_scl(safe, safe_zip):
    for source in (safe, safe_zip):
        files = describe_source(source)
        assert files.scene_id == products.PRODUCT
        assert sorted(files.band_files) == sorted(BANDS)
        # the finest resolution wins: B02 exists at 10, 20 and 60 m, B8A at 20 m only
        assert files.band_files["B02"].endswith("R10m/T33NZA_20220706T085611_B02_10m.jp2")
        assert files.band_files["B8A"].endswith("_B8A_20m.jp2")
        assert files.offsets == dict.fromkeys(BANDS, -1000.0) and files.quantification == 10000
        assert files.nodata == 0 and files.scl.endswith("_SCL_20m.jp2")
    assert describe_source(safe_zip).band_files["B02"].startswith(f"/vsizip/{safe_zip}/{products.PRODUCT}.SAFE/")


def test_safe_zip_stac_and_folder_give_the_same_model_input(safe, safe_zip, stac_item, corrected_folder):
    expected = read_bands(corrected_folder, BANDS)
    assert expected.valid_mask.all()
    for source in (safe, safe_zip, stac_item):
        bands = read_bands(source, BANDS)
        # the offset is applied after resampling here, before it there: float rounding only
        np.testing.assert_allclose(bands.data, expected.data, atol=1e-3, rtol=0)
        assert bands.crs == expected.crs and bands.transform == expected.transform
        np.testing.assert_array_equal(bands.valid_mask, expected.valid_mask)
    # the 10 m bands are read as stored: exactly DN - 1000
    np.testing.assert_array_equal(read_bands(safe, ["B02"]).data, read_bands(corrected_folder, ["B02"]).data)


def test_radiometric_correction_can_be_turned_off(data_dir, safe, tmp_path):
    plain = read_bands(products.build_corrected_folder(data_dir, tmp_path, offset=0), ["B02", "B05"])
    stored = read_bands(safe, ["B02", "B05"], radiometric_correction=False)
    np.testing.assert_array_equal(stored.data, plain.data)


def test_stac_assets_are_found_by_band_name_common_name_or_key(data_dir, tmp_path, stac_item):
    item = json.loads(stac_item.read_text())
    files = describe_source(stac_item)
    assert files.scene_id == products.PRODUCT and files.scl.endswith("SCL.tif") and files.nodata == 0
    assert files.offsets["B02"] == pytest.approx(-1000) and files.quantification == pytest.approx(10000)
    # keyed by band, no eo:bands, no raster:bands: the processing baseline gives the offset
    for key in list(item["assets"]):
        asset = item["assets"].pop(key)
        if key in products.COMMON.values():
            band = next(band for band, common in products.COMMON.items() if common == key)
            del asset["eo:bands"], asset["raster:bands"]
            item["assets"][band] = asset
    by_key = tmp_path / "by-key.json"
    by_key.write_text(json.dumps(item))
    files = describe_source(by_key)
    assert sorted(files.band_files) == sorted(BANDS) and files.offsets["B11"] == -1000 and files.scl is None
    np.testing.assert_allclose(read_bands(by_key, ["blue", "swir16"]).data, read_bands(stac_item, ["B02", "B11"]).data)


def test_common_names_name_bands_everywhere(corrected_folder):
    by_name = read_bands(corrected_folder, ["B02", "B8A", "B11"])
    by_common_name = read_bands(corrected_folder, ["blue", "nir08", "swir16"])
    assert by_common_name.band_names == ("B02", "B8A", "B11")
    np.testing.assert_array_equal(by_common_name.data, by_name.data)


def test_scl_mask_makes_cloud_and_shadow_pixels_invalid(safe, corrected_folder):
    for source in (safe, corrected_folder):
        bands = read_bands(source, ["B02", "B05"], mask="scl")
        expected = np.zeros((products.SIZE, products.SIZE), dtype=bool)
        for rows, cols in (products.SCL_CLOUD, products.SCL_SHADOW):  # 20 m SCL pixels cover 2 x 2 pixels
            expected[rows.start * 2 : rows.stop * 2, cols.start * 2 : cols.stop * 2] = True
        np.testing.assert_array_equal(~bands.valid_mask, expected)
        assert np.isnan(bands.data[:, expected]).all() and np.isfinite(bands.data[:, ~expected]).all()
    only_cloud = read_bands(safe, ["B02"], mask="scl:9")
    assert (~only_cloud.valid_mask).sum() == 80 * 120
    assert parse_mask("scl").scl_classes == SCL_INVALID and parse_mask([8, 9]).scl_classes == (8, 9)
    with pytest.raises(ValueError, match="SCL classes must be whole numbers 0-11"):
        parse_mask("scl:cloud")


def test_cloud_mask_file_and_nodata_override(data_dir, tmp_path):
    folder = products.major_tom_folder(data_dir)
    with rasterio.open(folder / "B02.tif") as source:
        profile, shape = source.profile, source.shape
    mask = np.zeros(shape, dtype=np.uint8)
    mask[10:20, 30:50] = 1
    products.write_raster(tmp_path / "clouds.tif", mask, profile)
    bands = read_bands(folder, ["B02"], mask=tmp_path / "clouds.tif")
    np.testing.assert_array_equal(~bands.valid_mask, mask == 1)
    value = read_bands(folder, ["B02"]).data[0, 0, 0]
    overridden = read_bands(folder, ["B02"], nodata=value)
    assert not overridden.valid_mask[0, 0] and np.isnan(overridden.data[0, 0, 0])
    with pytest.raises(ValueError, match="Masking by SCL classes needs a scene classification"):
        read_bands(folder, ["B02"], mask="scl")


def test_safe_with_a_missing_band_file_names_band_and_file(safe, tmp_path):
    broken = shutil.copytree(safe, tmp_path / safe.name)
    next(broken.rglob("*_B03_10m.jp2")).unlink()
    with pytest.raises(FileNotFoundError, match=r"band B03 is missing .*_B03_10m\.jp2"):
        open_scene(broken, ["B02", "B03"])
    read_bands(broken, ["B02"], window=rasterio.windows.Window(0, 0, 8, 8))  # other bands still read


def test_corrupt_jpeg2000_is_a_one_line_error_naming_the_file(safe, tmp_path):
    broken = shutil.copytree(safe, tmp_path / safe.name)
    band = next(broken.rglob("*_B04_10m.jp2"))
    band.write_bytes(band.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"_B04_10m\.jp2") as error:
        read_bands(broken, ["B04"])
    assert "\n" not in str(error.value)


def test_stac_item_without_the_needed_bands(stac_item, tmp_path):
    item = json.loads(stac_item.read_text())
    del item["assets"]["rededge1"]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(item))
    with pytest.raises(ValueError, match=r"lacks the requested bands B05"):
        open_scene(partial, BANDS)
    item["assets"] = {"thumbnail": item["assets"]["thumbnail"]}
    partial.write_text(json.dumps(item))
    with pytest.raises(ValueError, match="has no single-band Sentinel-2 assets"):
        open_scene(partial, BANDS)
    with pytest.raises(FileNotFoundError, match="No STAC Item at"):
        open_scene(tmp_path / "absent.json")


def test_unreachable_url_is_a_one_line_error_naming_it():
    url = "http://127.0.0.1:9/x.tif"
    with rasterio.Env(GDAL_HTTP_TIMEOUT=2, GDAL_HTTP_MAX_RETRY=0, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        with pytest.raises(ValueError, match=r"Cannot open /vsicurl/http://127\.0\.0\.1:9/x\.tif") as error:
            open_scene(url, ["B02"])
    assert "\n" not in str(error.value)


def test_recursive_folder_search_refuses_two_files_for_one_band(corrected_folder, tmp_path):
    folder = shutil.copytree(corrected_folder, tmp_path / "exported")
    shutil.copy(next(folder.rglob("*_B02_10m.tif")), folder / "R20m" / "T33NZA_B02_20m.tif")
    with pytest.raises(ValueError, match=r"Several files .* hold the same band \(B02: R10m/T33NZA_B02_10m.tif, R20m/"):
        open_scene(folder, ["B02"])


def test_l1c_product_without_resolution_folders(data_dir, tmp_path):
    """L1C: band files straight in IMG_DATA, no resolution suffix, RADIO_ADD_OFFSET and QUANTIFICATION_VALUE."""
    source = products.major_tom_folder(data_dir)
    safe = tmp_path / "S2A_MSIL1C_20220706T085611_N0400_R007_T33NZA_20220706T110000.SAFE"
    images = "GRANULE/L1C_T33NZA_A036749_20220706T090313/IMG_DATA"
    names = []
    for band in ("B02", "B8A", "B10"):
        array, profile = products.read_band(source, "B09" if band == "B10" else band)
        names.append(f"{images}/T33NZA_20220706T085611_{band}")
        products.write_jp2(safe / f"{names[-1]}.jp2", array, profile)
    entries = "".join(f"<IMAGE_FILE>{name}</IMAGE_FILE>" for name in names)
    offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{index}">-1000</RADIO_ADD_OFFSET>' for index in range(13))
    (safe / "MTD_MSIL1C.xml").write_text(
        '<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">'
        f"<n1:General_Info><Product_Info><Product_Organisation><Granule_List><Granule>{entries}</Granule>"
        "</Granule_List></Product_Organisation></Product_Info><Product_Image_Characteristics>"
        f"<QUANTIFICATION_VALUE unit=\"none\">10000</QUANTIFICATION_VALUE><Radiometric_Offset_List>{offsets}"
        "</Radiometric_Offset_List></Product_Image_Characteristics></n1:General_Info></n1:Level-1C_User_Product>"
    )
    files = describe_source(safe)
    assert sorted(files.band_files) == ["B02", "B10", "B8A"] and files.scl is None
    assert files.offsets == {"B02": -1000, "B8A": -1000, "B10": -1000} and files.quantification == 10000
    bands = read_bands(safe, ["B02", "B10"])
    stored = read_bands(safe, ["B02", "B10"], radiometric_correction=False)
    np.testing.assert_allclose(bands.data, stored.data - 1000)


def test_remote_safe_zips_are_read_through_vsizip_over_their_url():
    name = f"{products.PRODUCT}.SAFE.zip"
    assert archive_gdal_path(f"https://example.com/a/{name}") == f"/vsicurl/https://example.com/a/{name}"
    assert archive_gdal_path(f"/vsicurl/https://example.com/{name}") == f"/vsicurl/https://example.com/{name}"
    assert archive_gdal_path(f"s3://bucket/a/{name}") == f"/vsis3/bucket/a/{name}"
    assert archive_gdal_path(f"gs://bucket/{name}") == f"/vsigs/bucket/{name}"


def test_a_zip_by_gdal_path_is_described_as_the_local_zip(safe_zip):
    # /vsimem/ is a GDAL virtual path like /vsicurl/: no listing, the metadata found and read through /vsizip/
    with rasterio.io.MemoryFile(safe_zip.read_bytes(), filename=safe_zip.name) as memory:
        assert memory.name.startswith("/vsimem/") and memory.name.endswith(safe_zip.name)
        remote, local = describe_safe(memory.name), describe_safe(safe_zip)
        assert local.band_files["B02"].startswith(f"/vsizip/{safe_zip.resolve()}/{products.PRODUCT}.SAFE/")
        prefix = f"/vsizip/{memory.name}"
        assert remote.band_files == {band: prefix + path.split(safe_zip.name, 1)[1] for band, path in local.band_files.items()}
        assert (remote.offsets, remote.quantification, remote.nodata) == (local.offsets, local.quantification, local.nodata)
        assert remote.scene_id == local.scene_id == products.PRODUCT and remote.scl.startswith(prefix)
        with rasterio.open(remote.band_files["B8A"]) as band, rasterio.open(local.band_files["B8A"]) as same:
            np.testing.assert_array_equal(band.read(window=((0, 16), (0, 16))), same.read(window=((0, 16), (0, 16))))


def test_a_zip_by_gdal_path_opens_as_the_same_scene_as_the_local_zip(safe_zip):
    with rasterio.io.MemoryFile(safe_zip.read_bytes(), filename=safe_zip.name) as memory:
        remote, local = open_scene(memory.name, BANDS), open_scene(safe_zip, BANDS)
        window = rasterio.windows.Window(0, 0, 32, 32)
        np.testing.assert_array_equal(remote.read(window).data, local.read(window).data)


def test_unreachable_safe_zip_is_a_one_line_error_naming_the_url():
    url = f"http://127.0.0.1:9/{products.PRODUCT}.SAFE.zip"
    with rasterio.Env(GDAL_HTTP_TIMEOUT=2, GDAL_HTTP_MAX_RETRY=0):
        with pytest.raises(ValueError, match=f"Cannot read a Sentinel-2 SAFE product from {re.escape(url)}") as error:
            describe_safe(url)
        with pytest.raises(ValueError, match=f"Cannot read a Sentinel-2 SAFE product from {re.escape(url)}"):
            open_scene(url, BANDS)  # the path the CLI takes
    assert "\n" not in str(error.value)
