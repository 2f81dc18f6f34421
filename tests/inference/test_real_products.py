"""Whole-scene inference on real Sentinel-2 products (SAFE, zipped SAFE, STAC Item, exported folder, all built from
the real Major-TOM bands): the same outputs from each, masks written as nodata without touching the normalisation,
COG and GeoParquet outputs, and bad input refused in one line with nothing written."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import sentinel2_products as products
import torch
from sentinel2_products import corrected_folder, product_root, safe, safe_zip, stac_item  # noqa: F401 (fixtures)

from spectralgpt_hf import SpectralGPTConfig, SpectralGPTForSemanticSegmentation, SpectralGPTModel
from spectralgpt_hf.cli import main as cli_main
from spectralgpt_hf.geo.cog import cog_layout_errors
from spectralgpt_hf.inference.scene import embed_scene, predict_scene

HEAD_SIZES = dict(
    neck_intermediate_sizes=[8, 8, 16, 16], neck_hidden_sizes=[4, 8, 16, 16], neck_norm_groups=4,
    decode_head_hidden_size=8, decode_head_norm_groups=4,
)  # fmt: skip
RUN = dict(tile=128, overlap=0, batch_size=32, progress=False)


def tiny_config(**kwargs):
    defaults = dict(image_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    return SpectralGPTConfig(**{**defaults, **kwargs})


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    config = tiny_config(num_labels=3, id2label={0: "water", 1: "forest", 2: "urban"}, **HEAD_SIZES)
    return SpectralGPTForSemanticSegmentation(config).eval()


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return SpectralGPTModel(tiny_config()).eval()


def cloud_pixels() -> np.ndarray:
    masked = np.zeros((products.SIZE, products.SIZE), dtype=bool)
    for rows, cols in (products.SCL_CLOUD, products.SCL_SHADOW):
        masked[rows.start * 2 : rows.stop * 2, cols.start * 2 : cols.stop * 2] = True
    return masked


def read(path) -> np.ndarray:
    with rasterio.open(path) as result:
        return result.read()


def test_every_input_form_gives_the_same_outputs(safe, safe_zip, stac_item, corrected_folder, encoder, segmenter, tmp_path):
    sources = {"safe": safe, "zip": safe_zip, "stac": stac_item, "folder": corrected_folder}
    embeddings = {
        name: read(embed_scene(encoder, source, tmp_path / f"{name}.tif", normalization="fixed", **RUN))
        for name, source in sources.items()
    }
    for name in ("zip", "stac", "folder"):
        np.testing.assert_allclose(embeddings[name], embeddings["safe"], atol=1e-4, err_msg=name)
    classes = {
        name: read(predict_scene(segmenter, sources[name], tmp_path / f"{name}-classes.tif", normalization="fixed", **RUN))
        for name in ("zip", "stac")
    }
    np.testing.assert_array_equal(classes["stac"], classes["zip"])


def test_radiometric_correction_flag(data_dir, safe, segmenter, tmp_path):
    """Without the correction a 05.10 product gives what its stored values give; with it, other inputs (the
    fixed statistics see the offset)."""
    stored_folder = products.build_corrected_folder(data_dir, tmp_path, offset=0)
    plain = read(predict_scene(segmenter, stored_folder, tmp_path / "plain.tif", normalization="fixed", **RUN))
    stored = read(predict_scene(segmenter, safe, tmp_path / "stored.tif", normalization="fixed", radiometric_correction=False, **RUN))
    corrected = read(predict_scene(segmenter, safe, tmp_path / "corrected.tif", normalization="fixed", **RUN))
    np.testing.assert_array_equal(stored, plain)
    assert (corrected != plain).any()


def test_masked_pixels_are_nodata_and_leave_the_tile_normalisation_alone(corrected_folder, segmenter, tmp_path):
    masked = cloud_pixels()
    classes = read(predict_scene(segmenter, corrected_folder, tmp_path / "classes.tif", mask="scl", **RUN))[0]
    assert (classes[masked] == 255).all() and (classes[~masked] < 3).all()
    # make the masked pixels of the 10 m bands extreme (10 m bands are not resampled, so nothing bleeds out of
    # the mask): with per-tile min-max, any use of them would change the stretch of their tiles
    bright = shutil.copytree(corrected_folder, tmp_path / "bright")
    for path in (bright / "R10m").iterdir():
        with rasterio.open(path, "r+") as band:
            values = band.read(1)
            values[masked] = 60000
            band.write(values, 1)
    bright_classes = read(predict_scene(segmenter, bright, tmp_path / "bright.tif", mask="scl", **RUN))[0]
    np.testing.assert_array_equal(bright_classes, classes)
    unmasked = read(predict_scene(segmenter, bright, tmp_path / "unmasked.tif", **RUN))[0]
    assert (unmasked[~masked] != classes[~masked]).any()  # the check above can fail


def test_class_map_is_a_cog_with_colours_and_class_names(safe_zip, segmenter, tmp_path):
    output = predict_scene(segmenter, safe_zip, tmp_path / "classes.tif", mask="scl", **RUN)
    assert cog_layout_errors(output) == []
    with rasterio.open(output) as result:
        assert json.loads(result.tags()["class_names"]) == ["water", "forest", "urban"]
        assert result.tags()["scene_id"] == products.PRODUCT
        assert result.colormap(1)[255] == (0, 0, 0, 0) and result.nodata == 255


def test_embed_command_line_with_product_options(safe_zip, encoder, tmp_path):
    encoder.save_pretrained(tmp_path / "model")
    output, parquet = tmp_path / "embeddings.tif", tmp_path / "embeddings.parquet"
    arguments = ["embed", "--model", str(tmp_path / "model"), "--input", str(safe_zip), "--output", str(output)]
    options = ["--mask", "scl", "--output-dtype", "float16", "--geoparquet", str(parquet), "--normalization", "fixed"]
    assert cli_main([*arguments, *options, "--tile", "128", "--overlap", "0", "--quiet"]) == 0
    assert cog_layout_errors(output) == []
    embeddings = read(output)
    valid = ~np.isnan(embeddings).all(0)
    assert embeddings.shape == (32, products.SIZE // 8, products.SIZE // 8) and not valid.all()  # patches entirely under cloud are NaN
    table = pq.read_table(parquet)
    assert table.num_rows == valid.sum() and set(table["scene_id"].to_pylist()) == {products.PRODUCT}
    assert json.loads(pq.read_schema(parquet).metadata[b"geo"])["primary_column"] == "geometry"


@pytest.mark.parametrize("broken", ["missing band", "corrupt band", "stac without bands", "unreachable url"])
def test_bad_input_is_one_line_and_writes_nothing(broken, safe, stac_item, segmenter, tmp_path, capsys):
    segmenter.save_pretrained(tmp_path / "model")
    if broken == "missing band":
        source = shutil.copytree(safe, tmp_path / safe.name)
        next(source.rglob("*_B03_10m.jp2")).unlink()
        expected = "band B03"
    elif broken == "corrupt band":
        source = shutil.copytree(safe, tmp_path / safe.name)
        band = next(source.rglob("*_B04_10m.jp2"))
        band.write_bytes(band.read_bytes()[:2000])
        expected = "_B04_10m.jp2"
    elif broken == "stac without bands":
        item = json.loads(stac_item.read_text())
        del item["assets"]["nir"]
        source = tmp_path / "item.json"
        source.write_text(json.dumps(item))
        expected = "lacks the requested bands B08"
    else:
        source, expected = "http://127.0.0.1:9/x.tif", "http://127.0.0.1:9/x.tif"
    out = tmp_path / "out"
    out.mkdir()
    arguments = ["predict", "--model", str(tmp_path / "model"), "--input", str(source), "--output", str(out / "c.tif")]
    with rasterio.Env(GDAL_HTTP_TIMEOUT=2, GDAL_HTTP_MAX_RETRY=0):
        assert cli_main([*arguments, "--tile", "128", "--overlap", "0", "--quiet"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0]
    assert list(out.iterdir()) == []
