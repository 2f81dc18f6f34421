"""Sentinel-2 band names: canonical spellings and the band a file name holds."""

import pytest

from spectralgpt_hf.geo import band_name_from_filename, canonical_band_name


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("B1", "B01"), ("b01", "B01"), ("01", "B01"), ("1", "B01"), ("B8a", "B8A"), ("8A", "B8A"), ("B08", "B08"),
     (" b10 ", "B10"), ("B12", "B12"), ("blue", "B02"), ("NIR", "B08"), ("nir08", "B8A"), ("swir16", "B11"),
     ("coastal", "B01"), ("rededge3", "B07")],
)  # fmt: skip
def test_canonical_band_name_accepts_common_spellings(spelling, canonical):
    assert canonical_band_name(spelling) == canonical


@pytest.mark.parametrize("spelling", ["B13", "B00", "B9A", "nir10", "", "B", "scl"])
def test_canonical_band_name_rejects_non_bands(spelling):
    with pytest.raises(ValueError, match="is not a Sentinel-2 band name"):
        canonical_band_name(spelling)


@pytest.mark.parametrize(
    ("filename", "band"),
    [("B02.tif", "B02"), ("B2.tif", "B02"), ("S2A_MSIL2A_T33UUP_75_43_B8A.tif", "B8A"), ("x-B11.TIFF", "B11"),
     ("cloud_mask.tif", None), ("thumbnail.png", None), ("metadata.json", None), ("B02.png", None),
     ("AB02.tif", None), ("B13.tif", None), ("T33UVP_20220626T095029_B02_10m.jp2", "B02"),
     ("T33UVP_20220626T095029_B8A.jp2", "B8A"), ("x_B11_20m.tif", "B11"), ("T33UVP_20220626T095029_SCL_20m.jp2", None),
     ("T33UVP_20220626T095029_TCI_10m.jp2", None)],
)  # fmt: skip
def test_band_name_from_filename(filename, band):
    assert band_name_from_filename(filename) == band

