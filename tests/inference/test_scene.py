"""Whole-scene inference on a real Major-TOM scene (the 528 x 528 px crop of tests/fixtures/data) and the SSL4EO
two-date pair, with tiny models."""

import glob
import json
import re

import numpy as np
import pytest
import rasterio
import torch

from spectralgpt_hf import (
    SpectralGPTConfig,
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
    SpectralGPTModel,
)
from spectralgpt_hf.cli import main as cli_main
from spectralgpt_hf.image_processing_spectralgpt import BIGEARTHNET_MEAN, BIGEARTHNET_STD, SEGMUNICH_BANDS
from spectralgpt_hf.geo import open_scene, read_bands
from spectralgpt_hf.inference.scene import embed_scene, predict_scene, scene_band_names, scene_tiling
from spectralgpt_hf.inference.tiling import OutputLayout, TiledScene, blend_weights, run_tiles, tile_starts


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


def test_scene_tiling_defaults_and_checks():
    config = tiny_config()  # 64 px, patch 8
    assert scene_tiling(config) == (64, 16)
    assert scene_tiling(config, 128) == (128, 32)
    assert scene_tiling(config, 64, 12) == (64, 12)  # class maps and scores blend any overlap
    with pytest.raises(ValueError, match=r"overlap \(12\) must be a multiple of the model's patch size \(8 px\)"):
        scene_tiling(config, 64, 12, aligned=True)  # embeddings: one pixel per patch
    with pytest.raises(ValueError, match=r"tile \(60\) must be a multiple of the model's patch size \(8 px\)"):
        scene_tiling(config, 60)
    with pytest.raises(ValueError, match=r"overlap \(64\) must be in \[0, tile\) = \[0, 64\)"):
        scene_tiling(config, 64, 64)


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
            model,
            tiles,
            tmp_path / "copy.tif",
            OutputLayout(3, np.float32, None, None, finish=lambda values, valid: values),
            scale=1,
            channels=3,
            compute=lambda model, batch, interpolate: batch.pixel_values,
            batch_size=5,
            progress=False,
        )
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
        height, width = scene.shape
        assert height > 256 and width > 256  # several tiles of 128
        assert (result.count, result.height, result.width) == (32, height // 8, width // 8)
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
    with pytest.raises(ValueError, match=r"reader must be one of \('strip', 'tile'\), got 'rows'"):
        predict_scene(model, major_tom, tmp_path / "classes.tif", reader="rows", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_mismatched_dates_are_refused(ssl4eo_dates, major_tom):
    processor = SpectralGPTImageProcessor.for_pretraining()
    with open_scene(ssl4eo_dates[0]) as first, open_scene(major_tom) as other:
        with pytest.raises(ValueError, match="The two dates must share one grid"):
            TiledScene(first, processor, 64, 0, scene_2=other)


def test_embed_command_line(major_tom, tmp_path, capsys):
    model = SpectralGPTModel(tiny_config())
    model.save_pretrained(tmp_path / "model")
    output = tmp_path / "embeddings.tif"
    arguments = ["embed", "--model", str(tmp_path / "model"), "--input", major_tom, "--output", str(output)]
    assert cli_main([*arguments, "--tile", "128", "--overlap", "16", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"Wrote {output}"
    with rasterio.open(output) as result, open_scene(major_tom) as scene:
        assert (result.count, result.height, result.width) == (32, scene.shape[0] // 8, scene.shape[1] // 8)
        embeddings = result.read()
    # the command is embed_scene with its flags
    expected = embed_scene(model, major_tom, tmp_path / "expected.tif", tile=128, overlap=16, progress=False)
    with rasterio.open(expected) as result:
        np.testing.assert_array_equal(embeddings, result.read())
    assert cli_main([*arguments, "--overlap", "12"]) == 2
    assert capsys.readouterr().err.strip() == (
        "spectralgpt-hf embed: error: --tile / --overlap: overlap (12) must be a multiple of the model's patch size "
        "(8 px) here."
    )


HEAD_SIZES = dict(
    neck_intermediate_sizes=[8, 8, 16, 16], neck_hidden_sizes=[4, 8, 16, 16], neck_norm_groups=4,
    decode_head_hidden_size=8, decode_head_norm_groups=4,
)  # fmt: skip


def test_segmentation_class_map_on_the_scene_grid(major_tom, tmp_path):
    torch.manual_seed(0)
    model = SpectralGPTForSemanticSegmentation(tiny_config(num_labels=5, **HEAD_SIZES))
    output = predict_scene(model, major_tom, tmp_path / "classes.tif", tile=128, overlap=32, progress=False)
    with rasterio.open(output) as result, open_scene(major_tom) as scene:
        assert (result.count, result.height, result.width) == (1, *scene.shape)
        assert result.transform == scene.transform and result.crs == scene.crs
        assert result.dtypes[0] == "uint8" and result.nodata == 255
        assert result.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"  # the default output format
        assert json.loads(result.tags()["class_names"]) == [model.config.id2label[index] for index in range(5)]
        assert result.tags()["scene_id"] == scene.scene_id
        classes = result.read(1)
    assert classes.max() < 5 and len(np.unique(classes)) > 1
    # away from any overlap, a pixel's class is the model's argmax on the one tile covering it
    tile = read_bands(major_tom, window=rasterio.windows.Window(0, 0, 128, 128)).data
    pixel_values = SpectralGPTImageProcessor.for_pretraining()(tile, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(pixel_values, interpolate_pos_encoding=True).logits.argmax(1)[0].numpy()
    np.testing.assert_array_equal(classes[:96, :96], expected[:96, :96])


def test_segmunich_model_reads_its_ten_bands_and_appends_their_mean(major_tom, tmp_path):
    torch.manual_seed(0)
    model = SpectralGPTForSemanticSegmentation(tiny_config(num_labels=13, **HEAD_SIZES))
    processor = SpectralGPTImageProcessor.for_segmunich()
    assert scene_band_names(model.config, processor) == list(SEGMUNICH_BANDS)
    output = predict_scene(model, major_tom, tmp_path / "classes.tif", processor=processor, tile=128, progress=False)
    with rasterio.open(output) as result:
        classes = result.read(1)
    tile = read_bands(major_tom, SEGMUNICH_BANDS, window=rasterio.windows.Window(0, 0, 128, 128)).data
    band_mean = tile.mean(0, keepdims=True)
    channels = np.concatenate([tile, band_mean, band_mean])
    low, high = channels.min((1, 2), keepdims=True), channels.max((1, 2), keepdims=True)
    pixel_values = torch.from_numpy((channels - low) / (high - low + 1e-9)).float()[None]
    with torch.no_grad():
        expected = model(pixel_values, interpolate_pos_encoding=True).logits.argmax(1)[0].numpy()
    np.testing.assert_array_equal(classes[:96, :96], expected[:96, :96])

    # a 6-band model without band names reads the bands its processor names, which must be 6
    ten_bands = SpectralGPTImageProcessor(band_names=list(SEGMUNICH_BANDS))
    with pytest.raises(ValueError, match=r"makes 10 channels \(B01, .*, B12\) but the model takes 6; use"):
        scene_band_names(SpectralGPTConfig(num_bands=6), ten_bands)
    twelve_bands_and_means = SpectralGPTImageProcessor(band_mean_channels=2)
    with pytest.raises(ValueError, match="makes 14 channels .* and 2 band-mean channels\\) but the model takes 12"):
        predict_scene(model, major_tom, tmp_path / "wrong.tif", processor=twelve_bands_and_means, progress=False)
    assert not (tmp_path / "wrong.tif").exists()


def test_change_detection_on_two_dates_marks_nodata(ssl4eo_dates, tmp_path):
    torch.manual_seed(0)
    model = SpectralGPTForChangeDetection(tiny_config(num_labels=2, **HEAD_SIZES))
    first, second = ssl4eo_dates
    output = predict_scene(model, first, tmp_path / "change.tif", input_2=second, tile=64, overlap=16, progress=False)
    with rasterio.open(output) as result, open_scene(first) as scene, open_scene(second) as scene_2:
        classes = result.read(1)
        assert classes.shape == scene.shape and result.transform == scene.transform
        valid = scene.read().valid_mask & scene_2.read().valid_mask
    assert np.all(classes[valid] <= 1) and np.all(classes[~valid] == 255) and (~valid).any()


def test_classification_writes_blended_scores_per_label(major_tom, tmp_path, capsys):
    torch.manual_seed(0)
    model = SpectralGPTForImageClassification(tiny_config(num_labels=3, id2label={0: "crop", 1: "forest", 2: "water"}))
    output = predict_scene(model, major_tom, tmp_path / "scores.tif", tile=256, overlap=0, output_dtype="float16",
                           output_format="gtiff", reader="tile")  # fmt: skip
    # the progress bar counts the 3 x 3 tiles (starts 0, 256 and 272 along each axis), in tiles
    assert re.search(r" 9/9 \[.*[\d.]+(tile/s|s/tile)\]", capsys.readouterr().err)
    with rasterio.open(output) as result, open_scene(major_tom) as scene:
        assert result.count == 3 and result.descriptions == ("crop", "forest", "water")
        assert "LAYOUT" not in result.tags(ns="IMAGE_STRUCTURE")  # a plain tiled GeoTIFF, as asked
        # float16 is stored as 16-bit floats and read back as float32
        assert result.tags(1, ns="IMAGE_STRUCTURE").get("NBITS") == "16" and result.dtypes[0] == "float32"
        assert result.tags()["scene_id"] == scene.scene_id
        scores = result.read().astype(np.float32)
    np.testing.assert_allclose(scores.sum(0), 1.0, atol=2e-3)
    # constant over each tile's footprint
    assert np.all(scores[:, :256, :256] == scores[:, :1, :1])


def test_predict_command_line(major_tom, tmp_path, capsys):
    torch.manual_seed(0)
    SpectralGPTForSemanticSegmentation(tiny_config(num_labels=3, **HEAD_SIZES)).save_pretrained(tmp_path / "model")
    output = tmp_path / "classes.tif"
    arguments = ["predict", "--model", str(tmp_path / "model"), "--input", major_tom, "--output", str(output)]
    assert cli_main([*arguments, "--tile", "256", "--batch-size", "4", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"Wrote {output}"
    with rasterio.open(output) as result, open_scene(major_tom) as scene:
        assert result.shape == scene.shape
    assert cli_main([*arguments, "--tile", "256", "--overlap", "300"]) == 2
    assert capsys.readouterr().err.strip() == (
        "spectralgpt-hf predict: error: --tile / --overlap: overlap (300) must be in [0, tile) = [0, 256)."
    )


def tile_inputs(path, row, col, size):
    """The normalised model input of the tile at (row, col), read on its own as predict_scene's tiles are."""
    data = read_bands(path, window=rasterio.windows.Window(col, row, size, size)).data
    return SpectralGPTImageProcessor.for_pretraining()(data, return_tensors="pt")["pixel_values"]


def linear_ramp(tile, overlap):
    return np.array([min(1.0, (index + 0.5) / overlap, (tile - index - 0.5) / overlap) for index in range(tile)])


@pytest.mark.parametrize("problem_type", ["single_label_classification", "multi_label_classification"])
def test_classification_scores_are_the_model_probabilities_blended(major_tom, tmp_path, problem_type):
    """Away from overlaps a pixel's scores are the model's probabilities (softmax, or sigmoid for multi-label) on the
    one tile covering it; where two tiles overlap, their ramp-weighted mean."""
    torch.manual_seed(0)
    model = SpectralGPTForImageClassification(tiny_config(num_labels=3, problem_type=problem_type)).eval()
    with torch.no_grad():  # pooled features of neighbouring tiles are alike: point the head at their difference
        pooled = [model.base_model(tile_inputs(major_tom, 0, col, 128), interpolate_pos_encoding=True).pooler_output[0]
                  for col in (0, 96)]  # fmt: skip
        difference = pooled[0] - pooled[1]
        model.classifier.weight.zero_()
        model.classifier.weight[0] = 2 * difference / difference.norm() ** 2
        model.classifier.weight[2] = -difference / difference.norm() ** 2
    output = predict_scene(model, major_tom, tmp_path / "scores.tif", tile=128, overlap=32, progress=False)
    with rasterio.open(output) as result:
        assert result.dtypes[0] == "float32"
        scores = result.read()
    with torch.no_grad():
        logits = [model(tile_inputs(major_tom, 0, col, 128), interpolate_pos_encoding=True).logits[0] for col in (0, 96)]
    probabilities = [
        (value.sigmoid() if problem_type.startswith("multi") else value.softmax(-1)).numpy() for value in logits
    ]
    assert np.abs(probabilities[0] - probabilities[1]).max() > 0.1  # the two tiles differ
    # rows [0, 96) and columns [0, 96) lie in the top-left tile only
    np.testing.assert_allclose(scores[:, :96, :96], np.broadcast_to(probabilities[0][:, None, None], (3, 96, 96)),
                               atol=1e-6)  # fmt: skip
    # columns [96, 128) of rows [0, 96): the top-left tile fading out, the next one fading in
    ramp = linear_ramp(128, 32)
    first, second = ramp[96:128], ramp[0:32]
    blended = (probabilities[0][:, None] * first + probabilities[1][:, None] * second) / (first + second)
    for row in (10, 50, 90):
        np.testing.assert_allclose(scores[:, row, 96:128], blended, atol=1e-5)
    if problem_type.startswith("multi"):
        assert not np.allclose(scores.sum(0), 1.0, atol=1e-3)  # independent sigmoids, not a distribution


def test_change_detection_interior_is_the_argmax_of_the_model_on_both_dates(ssl4eo_dates, tmp_path):
    torch.manual_seed(0)
    model = SpectralGPTForChangeDetection(tiny_config(num_labels=3, **HEAD_SIZES)).eval()
    first, second = ssl4eo_dates
    output = predict_scene(model, first, tmp_path / "change.tif", input_2=second, tile=64, overlap=16, progress=False)
    with rasterio.open(output) as result:
        classes = result.read(1)
    with torch.no_grad():
        logits = model(tile_inputs(first, 0, 0, 64), pixel_values_2=tile_inputs(second, 0, 0, 64)).logits
    expected = logits.argmax(1)[0].numpy()
    assert len(np.unique(expected[:48, :48])) > 1
    np.testing.assert_array_equal(classes[:48, :48], expected[:48, :48])
    # swapping the dates changes the input of the model: the map is the model's on (first, second), in that order
    with torch.no_grad():
        swapped = model(tile_inputs(second, 0, 0, 64), pixel_values_2=tile_inputs(first, 0, 0, 64)).logits
    assert not torch.equal(swapped.argmax(1), logits.argmax(1))


def test_failed_predict_keeps_the_existing_output(scene_crops, tmp_path):
    """A run that fails after some strips were written leaves the previous output untouched and no temporary file."""
    torch.manual_seed(0)
    model = SpectralGPTForSemanticSegmentation(tiny_config(num_labels=3, **HEAD_SIZES))
    output = tmp_path / "classes.tif"
    scene = scene_crops[0]  # 180 px: 4 x 4 tiles of 64
    predict_scene(model, scene, output, tile=64, overlap=16, batch_size=2, progress=False)
    before = output.read_bytes()
    written = []
    original_write = rasterio.io.DatasetWriter.write

    def counting_write(self, *args, **kwargs):
        written.append(1)
        return original_write(self, *args, **kwargs)

    calls = []
    original_forward = model.forward

    def failing_forward(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # the second row of tiles: the first one has been blended and written
            raise RuntimeError("out of memory")
        return original_forward(*args, **kwargs)

    model.forward = failing_forward
    with pytest.MonkeyPatch.context() as patches:
        patches.setattr(rasterio.io.DatasetWriter, "write", counting_write)
        with pytest.raises(RuntimeError, match="out of memory"):
            predict_scene(model, scene, output, tile=64, overlap=16, batch_size=2, progress=False, prefetch=0)
    assert written  # rows had been written before the failure
    assert output.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["classes.tif"]


def test_fixed_normalisation_uses_the_bigearthnet_statistics_on_every_tile(major_tom, tmp_path):
    """normalization="fixed": every tile is (x - mean) / std with the BigEarthNet statistics, not stretched on its
    own, so an interior pixel's class is the model's argmax on its tile normalised so."""
    torch.manual_seed(0)
    model = SpectralGPTForSemanticSegmentation(tiny_config(num_labels=5, **HEAD_SIZES))
    output = predict_scene(model, major_tom, tmp_path / "classes.tif", tile=128, overlap=32, normalization="fixed",
                           progress=False)  # fmt: skip
    with rasterio.open(output) as result:
        classes = result.read(1)
    tile = read_bands(major_tom, window=rasterio.windows.Window(0, 0, 128, 128)).data
    mean, std = np.array(BIGEARTHNET_MEAN)[:, None, None], np.array(BIGEARTHNET_STD)[:, None, None]
    pixel_values = torch.from_numpy((tile - mean) / std).float()[None]
    with torch.no_grad():
        expected = model(pixel_values, interpolate_pos_encoding=True).logits.argmax(1)[0].numpy()
        stretched = model(tile_inputs(major_tom, 0, 0, 128), interpolate_pos_encoding=True).logits.argmax(1)[0]
    assert (stretched.numpy()[:96, :96] != expected[:96, :96]).any()  # the two normalisations tell apart here
    np.testing.assert_array_equal(classes[:96, :96], expected[:96, :96])
