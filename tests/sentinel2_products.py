"""Sentinel-2 products as users download them, built at test time from the real Major-TOM bands of ../shared/data:
a SAFE L2A product (JPEG 2000 band files at 10/20/60 m, SCL, an MTD_MSIL2A.xml of baseline 05.10 with its -1000
offsets), the same zipped, a STAC Item whose assets are COGs of the bands, and a plain folder of GeoTIFFs that
holds the offset-corrected values (DN - 1000), which needs no metadata."""

import datetime
import glob
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
BANDS_60M = ("B01", "B09")
COMMON = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
          "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B11": "swir16", "B12": "swir22"}  # fmt: skip
TILE, SENSING = "T33NZA", "20220706T085611"
PRODUCT = f"S2A_MSIL2A_{SENSING}_N0510_R007_{TILE}_20220706T153419"
GRANULE = f"L2A_{TILE}_A036749_20220706T090313"
OFFSET = -1000
# SCL: vegetation, with a block of high-probability cloud (9) and one of cloud shadow (3), in 20 m pixels
SCL_CLOUD = (slice(100, 140), slice(200, 260))
SCL_SHADOW = (slice(200, 220), slice(40, 90))
# The products cover the top-left 5280 m of the sample (528 px at 10 m), to keep the model runs short.
EXTENT_M = 5280
SIZE = EXTENT_M // 10


def major_tom_folder(data_dir: Path) -> Path:
    return Path(glob.glob(str(data_dir / "major_tom_s2l2a" / "*" / "*" / "*"))[0])


def write_raster(path: Path, array: np.ndarray, profile: dict, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {**profile, "count": 1, "dtype": array.dtype, "height": array.shape[0], "width": array.shape[1]}
    for key in ("blockxsize", "blockysize", "tiled", "compress", "interleave", "photometric"):
        profile.pop(key, None)
    profile.update(options)
    with rasterio.open(path, "w", **profile) as destination:
        destination.write(array, 1)
    return path


def write_jp2(path: Path, array: np.ndarray, profile: dict) -> Path:
    """Lossless JPEG 2000, as GDAL's JP2OpenJPEG driver writes it."""
    return write_raster(path, array, {**profile, "driver": "JP2OpenJPEG"}, quality=100, reversible="YES")


def read_band(folder: Path, band: str, factor: int = 1) -> tuple[np.ndarray, dict]:
    """The top-left `EXTENT_M` of a band of the sample, averaged over `factor` x `factor` pixels."""
    with rasterio.open(folder / f"{band}.tif") as source:
        size = round(EXTENT_M / source.transform.a)
        window = rasterio.windows.Window(0, 0, size, size)
        shape = (size // factor, size // factor)
        array = source.read(1, window=window, out_shape=shape, resampling=Resampling.average)
        profile = {**source.profile, "width": shape[1], "height": shape[0]}
        profile["transform"] = source.transform @ rasterio.Affine.scale(factor)
        return array, profile


def scl_array(profile_20m: dict) -> np.ndarray:
    scl = np.full((profile_20m["height"], profile_20m["width"]), 4, dtype=np.uint8)
    scl[SCL_CLOUD] = 9
    scl[SCL_SHADOW] = 3
    return scl


def build_safe(data_dir: Path, root: Path) -> Path:
    """A SAFE L2A product folder from the real bands: 10 m bands in R10m, 20 m bands (and B02-B04, B08 resampled)
    in R20m, 60 m bands (and B02 resampled) in R60m, SCL at 20 m, and its metadata."""
    source = major_tom_folder(data_dir)
    safe = root / f"{PRODUCT}.SAFE"
    images = f"GRANULE/{GRANULE}/IMG_DATA"
    files = []
    for resolution, bands, coarser in ((10, BANDS_10M, ()), (20, BANDS_20M, BANDS_10M), (60, BANDS_60M, ("B02",))):
        for band in (*bands, *coarser):
            array, profile = read_band(source, band, factor=2 if band in coarser and resolution == 20 else
                                       6 if band in coarser else 1)  # fmt: skip
            relative = f"{images}/R{resolution}m/{TILE}_{SENSING}_{band}_{resolution}m"
            write_jp2(safe / f"{relative}.jp2", array, profile)
            files.append(relative)
    _, profile_20m = read_band(source, "B05")
    scl_relative = f"{images}/R20m/{TILE}_{SENSING}_SCL_20m"
    write_jp2(safe / f"{scl_relative}.jp2", scl_array(profile_20m), profile_20m)
    files.append(scl_relative)
    (safe / "MTD_MSIL2A.xml").write_text(product_metadata(files), encoding="utf-8")
    return safe


def product_metadata(image_files: list[str], baseline: str = "05.10", offset: int = OFFSET) -> str:
    """An MTD_MSIL2A.xml in the structure of ESA's Level-2A user product metadata (the parts readers use)."""
    entries = "\n".join(f"            <IMAGE_FILE>{name}</IMAGE_FILE>" for name in image_files)
    offsets = "\n".join(
        f'        <BOA_ADD_OFFSET band_id="{index}">{offset}</BOA_ADD_OFFSET>' for index in range(13)
    )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2022-07-06T08:56:11.024Z</PRODUCT_START_TIME>
      <PRODUCT_URI>{PRODUCT}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2A_OPER_MSI_L2A_DS_2APS_20220706T153419_S20220706T090313_N05.10"
              granuleIdentifier="S2A_OPER_MSI_L2A_TL_2APS_20220706T153419_A036749_{TILE}_N05.10" imageFormat="JPEG2000">
{entries}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      <BOA_ADD_OFFSET_VALUES_LIST>
{offsets}
      </BOA_ADD_OFFSET_VALUES_LIST>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


def zip_safe(safe: Path, root: Path) -> Path:
    """The product zipped as ESA ships it: the .SAFE folder at the root of the zip."""
    archive = shutil.make_archive(str(root / safe.name), "zip", root_dir=safe.parent, base_dir=safe.name)
    return Path(archive)


def build_stac_item(data_dir: Path, root: Path, keys: str = "common") -> Path:
    """A STAC Item JSON (Earth Search style: assets keyed by common name, raster:bands scale 0.0001 and offset
    -0.1) whose assets are COGs of the real bands, and an scl asset."""
    import pystac

    source = major_tom_folder(data_dir)
    cogs = root / "cogs"
    cogs.mkdir(parents=True, exist_ok=True)
    item = pystac.Item(
        id=PRODUCT, geometry=None, bbox=None, datetime=datetime.datetime(2022, 7, 6, 8, 56, 11),
        properties={"s2:processing_baseline": "05.10", "platform": "sentinel-2a"},
    )  # fmt: skip
    for band in (*BANDS_10M, *BANDS_20M, *BANDS_60M):
        href = cogs / f"{band}.tif"
        array, profile = read_band(source, band)
        staging = write_raster(cogs / f"staging-{band}.tif", array, {**profile, "driver": "GTiff"})
        rasterio.shutil.copy(staging, href, driver="COG")
        staging.unlink()
        key = COMMON[band] if keys == "common" else band
        item.add_asset(key, pystac.Asset(
            href=str(href), media_type=pystac.MediaType.COG, roles=["data"],
            extra_fields={
                "eo:bands": [{"name": band, "common_name": COMMON[band]}],
                "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}],
            },
        ))  # fmt: skip
    _, profile_20m = read_band(source, "B05")
    write_raster(cogs / "SCL.tif", scl_array(profile_20m), profile_20m)
    item.add_asset("scl", pystac.Asset(href=str(cogs / "SCL.tif"), media_type=pystac.MediaType.COG, roles=["data"]))
    item.add_asset("thumbnail", pystac.Asset(href=str(source / "thumbnail.png"), roles=["thumbnail"]))
    path = root / f"{PRODUCT}.json"
    path.write_text(json.dumps(item.to_dict(include_self_link=False)), encoding="utf-8")
    return path


def build_corrected_folder(data_dir: Path, root: Path, offset: int = OFFSET, name: str = "exported") -> Path:
    """The bands minus the offset (what a 04.00+ product means), as nested GeoTIFFs with resolution suffixes and
    no metadata; the SCL beside them. `offset=0`: the stored values."""
    source = major_tom_folder(data_dir)
    folder = root / name
    for band in (*BANDS_10M, *BANDS_20M, *BANDS_60M):
        array, profile = read_band(source, band)
        resolution = 10 if band in BANDS_10M else 20 if band in BANDS_20M else 60
        corrected = (array.astype(np.int32) + offset).astype(np.uint16)
        write_raster(folder / f"R{resolution}m" / f"{TILE}_{band}_{resolution}m.tif", corrected, {**profile, "driver": "GTiff"})
    _, profile_20m = read_band(source, "B05")
    write_raster(folder / f"{TILE}_SCL_20m.tif", scl_array(profile_20m), {**profile_20m, "driver": "GTiff"})
    return folder


# Fixtures for the test modules that import them: each product is built once per session.
@pytest.fixture(scope="session")
def product_root(tmp_path_factory):
    return tmp_path_factory.mktemp("products")


@pytest.fixture(scope="session")
def safe(data_dir, product_root):
    return build_safe(data_dir, product_root)


@pytest.fixture(scope="session")
def safe_zip(safe, product_root):
    return zip_safe(safe, product_root)


@pytest.fixture(scope="session")
def stac_item(data_dir, product_root):
    return build_stac_item(data_dir, product_root)


@pytest.fixture(scope="session")
def corrected_folder(data_dir, product_root):
    return build_corrected_folder(data_dir, product_root)
