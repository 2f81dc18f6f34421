"""The main job on a real scene: reconstruction and whole-scene outputs, georeferenced, with PNG previews."""

import numpy as np
import pytest
import rasterio
import torch

from spectralgpt_hf import (
    SpectralGPTConfig,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
)
from spectralgpt_hf.cli import main as cli_main
from spectralgpt_hf import SENTINEL2_BANDS, demo
from spectralgpt_hf.demo import cluster, default_scene, run_demo
from spectralgpt_hf.geo import open_scene
from spectralgpt_hf.inference import predict_scene
from spectralgpt_hf.samples import sample_scene, sample_scene_pair


def tiny_pretraining_model(folder):
    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )  # fmt: skip
    SpectralGPTForPreTraining(config).save_pretrained(folder)
    return str(folder)


def test_default_scene_is_the_embedded_sample():
    first, second = sample_scene_pair()
    assert sample_scene() == first and first.parent == second.parent and first.name < second.name
    assert default_scene() == str(first)
    for date in (first, second):
        with open_scene(date) as scene:
            assert scene.band_names == tuple(SENTINEL2_BANDS) and scene.shape == (264, 264)


def test_missing_sample_names_the_input_option(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "sample_scene", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="--input"):
        default_scene()


def test_demo_writes_georeferenced_outputs_and_previews(tmp_path):
    scene = str(sample_scene())
    model = tiny_pretraining_model(tmp_path / "model")
    # a SegMunich-style model: its saved processor reads 10 bands and appends their mean twice
    segmenter = SpectralGPTForSemanticSegmentation(SpectralGPTConfig.from_pretrained(model, num_labels=13, image_size=64))
    segmenter.save_pretrained(tmp_path / "segmenter")
    SpectralGPTImageProcessor.for_segmunich().save_pretrained(tmp_path / "segmenter")
    paths = run_demo(
        tmp_path / "out", input=scene, model=model, num_clusters=4, segmentation_model=str(tmp_path / "segmenter")
    )
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    for name in ("input_png", "masked_png", "prediction_png", "pasted_png", "clusters_png", "scene_png"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open_scene(scene) as source, rasterio.open(paths["clusters_tif"]) as clusters:
        assert clusters.crs == source.crs
        assert clusters.transform == source.transform @ rasterio.Affine.scale(8)
        values = clusters.read(1)
        assert set(np.unique(values)) <= {0, 1, 2, 3, 255}
    with rasterio.open(paths["reconstruction_tif"]) as reconstruction, rasterio.open(paths["crop_tif"]) as crop:
        assert reconstruction.count == 12 and reconstruction.transform == crop.transform
        # visible tokens are the input itself; only the removed 90 % are predicted
        assert 0.02 < np.mean(reconstruction.read() == crop.read()) < 0.2
    expected = predict_scene(
        segmenter, scene, tmp_path / "expected.tif", processor=SpectralGPTImageProcessor.for_segmunich(), overlap=32
    )
    with rasterio.open(paths["classes_tif"]) as classes, rasterio.open(expected) as expected_classes:
        np.testing.assert_array_equal(classes.read(), expected_classes.read())


def test_demo_command_line_fits_a_model_when_none_is_given(tmp_path):
    """Neither --input nor a model: the embedded sample scene and a model fitted on it."""
    assert cli_main(["demo", "--output", str(tmp_path / "out"), "--steps", "2"]) == 0
    with rasterio.open(tmp_path / "out" / "clusters.tif") as clusters, open_scene(sample_scene()) as scene:
        assert clusters.crs == scene.crs and clusters.transform == scene.transform @ rasterio.Affine.scale(8)
    assert SpectralGPTForPreTraining.from_pretrained(tmp_path / "out" / "model").config.image_size == 64
    assert (tmp_path / "out" / "clusters.png").is_file()


def test_clusters_separate_distinct_embeddings():
    embeddings = np.zeros((4, 10, 10), dtype=np.float32)
    embeddings[0, :5] = 1.0
    embeddings[1, 5:] = 1.0
    embeddings[:, 0, 0] = np.nan
    classes = cluster(embeddings, num_clusters=2, seed=0)
    assert classes[0, 0] == 255
    assert len(set(classes[1:5].ravel())) == 1 and len(set(classes[5:].ravel())) == 1
    assert classes[1, 0] != classes[5, 0]
