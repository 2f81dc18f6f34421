"""Whole-scene inference on the real Major-TOM scene (1068 x 1068 px) and SSL4EO two-date pair, with tiny models."""

import glob

import numpy as np
import pytest
import rasterio
import torch

from spectralgpt_hf import SpectralGPTConfig, SpectralGPTImageProcessor, SpectralGPTModel
from spectralgpt_hf.cli import main as cli_main
from spectralgpt_hf.inference import TiledScene, blend_weights, embed_scene, run_tiles, tile_starts
from spectralgpt_hf.raster import open_scene, read_bands


@pytest.fixture(scope="module")
def major_tom(data_dir):
    return glob.glob(str(data_dir / "major_tom_s2l2a" / "*" / "*" / "*"))[0]


@pytest.fixture(scope="module")
def ssl4eo_dates(data_dir):
    return sorted(glob.glob(str(data_dir / "ssl4eo_s12_l2a" / "*" / "*")))


def tiny_config(**kwargs):
    defaults = dict(image_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    return SpectralGPTConfig(**{**defaults, **kwargs})


def test_tile_starts_cover_the_scene_with_the_last_tile_flush():
    assert tile_starts(1068, 128, 96) == [0, 96, 192, 288, 384, 480, 576, 672, 768, 864, 940]
    assert tile_starts(1068, 128, 96, align=8) == [0, 96, 192, 288, 384, 480, 576, 672, 768, 864, 936]
    assert tile_starts(100, 128, 96) == [0]
    assert tile_starts(128, 128, 96) == [0]


def test_blend_weights_fade_at_edges_only():
    weights = blend_weights(8, 2)
    assert weights[4, 4] == 1.0 and weights[0, 0] == pytest.approx(0.0625)
    assert np.all(weights > 0) and np.array_equal(weights, weights.T)
    assert np.all(blend_weights(8, 0) == 1.0)


def test_tiling_and_blending_reassemble_the_scene_exactly(major_tom, tmp_path):
    """A 'model' that returns its input tile must give back the scene: every tile, overlap, edge and strip lands
    in the right place, and the blend is a weighted mean."""
    model = SpectralGPTModel(tiny_config())
    processor = SpectralGPTImageProcessor(normalization=None, band_names=["B02", "B03", "B04"])
    with open_scene(major_tom, ["B02", "B03", "B04"]) as scene:
        tiles = TiledScene(scene, processor, tile=160, overlap=48)
        output = run_tiles(
            model, tiles, tmp_path / "copy.tif", scale=1, channels=3,
            compute=lambda model, batch, interpolate: batch.pixel_values,
            finish=lambda values, valid: values, dtype=np.float32, nodata=None, band_descriptions=None,
            batch_size=5, progress=False,
        )  # fmt: skip
        expected = scene.read().data
    with rasterio.open(output) as result:
        np.testing.assert_allclose(result.read(), expected, rtol=1e-6)
        assert result.transform == scene.transform and result.crs == scene.crs


def test_embed_writes_patch_grid_embeddings(major_tom, tmp_path):
    torch.manual_seed(0)
    model = SpectralGPTModel(tiny_config()).eval()
    output = embed_scene(
        model, major_tom, tmp_path / "embeddings.tif", tile=128, overlap=0, batch_size=16, progress=False
    )
    with rasterio.open(output) as result, open_scene(major_tom) as scene:
        assert (result.count, result.height, result.width) == (32, 1068 // 8, 1068 // 8)
        assert result.crs == scene.crs
        assert result.transform == scene.transform @ rasterio.Affine.scale(8)
        embeddings = result.read()
    # the top-left tile alone covers patches [0, 16): they equal the encoder on that tile, averaged over groups
    tile = read_bands(major_tom, window=rasterio.windows.Window(0, 0, 128, 128)).data
    pixel_values = SpectralGPTImageProcessor.for_pretraining()(tile, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = model(pixel_values, interpolate_pos_encoding=True).last_hidden_state
    hidden = hidden.reshape(1, 4, 16, 16, 32).mean(1)[0]
    np.testing.assert_allclose(embeddings[:, :16, :16], hidden.permute(2, 0, 1).numpy(), atol=1e-5)


def test_failed_run_leaves_no_file(major_tom, tmp_path):
    model = SpectralGPTModel(tiny_config())
    calls = []

    def failing_forward(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return original(*args, **kwargs)

    original = model.forward
    model.forward = failing_forward
    with pytest.raises(RuntimeError, match="out of memory"):
        embed_scene(model, major_tom, tmp_path / "embeddings.tif", tile=128, batch_size=4, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_mismatched_dates_are_refused(ssl4eo_dates, major_tom):
    processor = SpectralGPTImageProcessor.for_pretraining()
    with open_scene(ssl4eo_dates[0]) as first, open_scene(major_tom) as other:
        with pytest.raises(ValueError, match="The two dates must share one grid"):
            TiledScene(first, processor, 64, 0, scene_2=other)


def test_embed_command_line(major_tom, tmp_path):
    model = SpectralGPTModel(tiny_config())
    model.save_pretrained(tmp_path / "model")
    output = tmp_path / "embeddings.tif"
    arguments = ["embed", "--model", str(tmp_path / "model"), "--input", major_tom, "--output", str(output)]
    assert cli_main([*arguments, "--tile", "128", "--overlap", "16", "--quiet"]) == 0
    with rasterio.open(output) as result:
        assert (result.count, result.height, result.width) == (32, 133, 133)
    assert cli_main([*arguments, "--overlap", "12"]) == 1
