"""The main job on a real scene: reconstruction and whole-scene outputs, georeferenced, with PNG previews."""

import os
import shutil
import subprocess
import sys

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
from spectralgpt_hf.demo import (
    SHARED_VARIABLE,
    QuickFit,
    cluster,
    default_scene,
    evaluate_on_scene,
    fit_on_scene,
    run_demo,
)
from spectralgpt_hf.geo import open_scene, read_bands
from spectralgpt_hf.image_processing_spectralgpt import SEGMUNICH_BANDS
from spectralgpt_hf.samples import SSL4EO_LOCATION, sample_scene, sample_scene_pair
from testing_utils import REPO_ROOT


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


def test_without_the_embedded_sample_the_demo_names_input_and_the_shared_folder(tmp_path):
    """An installation without the package's data (the real command line, in a subprocess)."""
    shutil.copytree(REPO_ROOT / "spectralgpt_hf", tmp_path / "spectralgpt_hf",
                    ignore=shutil.ignore_patterns("ssl4eo_s12_l2a", "__pycache__"))  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key not in (SHARED_VARIABLE, "SPECTRALGPT_DEBUG")}
    command = [sys.executable, "-m", "spectralgpt_hf.cli", "demo", "--output", str(tmp_path / "out")]
    # run from tmp_path: `python -m` puts the working folder first on sys.path, and the checkout's has the data
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path,
                            env={**env, "PYTHONPATH": str(tmp_path)}, timeout=600)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("spectralgpt-hf demo: error: No --input given")
    assert "--input" in message and "SPECTRALGPT_SHARED is not set" in message


def test_without_the_embedded_sample_the_scene_comes_from_the_shared_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "sample_scene", lambda: tmp_path / "missing")
    monkeypatch.setenv(SHARED_VARIABLE, str(tmp_path / "shared"))
    with pytest.raises(FileNotFoundError, match="--input") as error:
        default_scene()
    assert f"{SHARED_VARIABLE}={tmp_path / 'shared'} has no data/" in str(error.value)
    first, second = sample_scene_pair()
    for date in (second, first):
        shutil.copytree(date, tmp_path / "shared" / "data" / SSL4EO_LOCATION / date.name)
    assert default_scene() == str(tmp_path / "shared" / "data" / SSL4EO_LOCATION / first.name)


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
        assert len(set(np.unique(values)) - {255}) > 1  # the patches fall in more than one cluster
    with rasterio.open(paths["reconstruction_tif"]) as reconstruction, rasterio.open(paths["crop_tif"]) as crop:
        assert reconstruction.count == 12 and reconstruction.transform == crop.transform
        kept = reconstruction.read() == crop.read()
    # The visible tokens are the input itself, the removed ones predicted: the kept values form whole 3 x 8 x 8
    # tokens (4 spectral groups x 4 x 4 patches of the 32 px crop), exactly int(L * (1 - mask_ratio)) of them.
    config = SpectralGPTConfig.from_pretrained(model)
    tokens = kept.reshape(4, 3, 4, 8, 4, 8).transpose(0, 2, 4, 1, 3, 5).reshape(config.num_tokens, 3 * 8 * 8)
    assert not (tokens.any(1) & ~tokens.all(1)).any()
    assert tokens.all(1).sum() == int(config.num_tokens * (1 - config.mask_ratio)) == 6
    # Away from tile overlaps, the class map is the segmenter's argmax on the one 64 px tile covering the pixel.
    tile = read_bands(scene, SEGMUNICH_BANDS, window=rasterio.windows.Window(0, 0, 64, 64)).data
    pixel_values = SpectralGPTImageProcessor.for_segmunich()(tile, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = segmenter.eval()(pixel_values).logits.argmax(1)[0].numpy()
    with rasterio.open(paths["classes_tif"]) as classes:
        class_map = classes.read(1)
    assert len(np.unique(expected[:32, :32])) > 1  # not a constant map
    np.testing.assert_array_equal(class_map[:32, :32], expected[:32, :32])


def test_demo_command_line_fits_a_model_when_none_is_given(tmp_path):
    """Neither --input nor a model: the embedded sample scene and a model fitted on it."""
    assert cli_main(["demo", "--output", str(tmp_path / "out"), "--steps", "2"]) == 0
    with rasterio.open(tmp_path / "out" / "clusters.tif") as clusters, open_scene(sample_scene()) as scene:
        assert clusters.crs == scene.crs and clusters.transform == scene.transform @ rasterio.Affine.scale(8)
    assert SpectralGPTForPreTraining.from_pretrained(tmp_path / "out" / "model").config.image_size == 64
    assert (tmp_path / "out" / "clusters.png").is_file()


def test_a_short_quick_fit_beats_the_band_mean_baseline_on_held_out_crops(tmp_path):
    """The demo's quick fit on a smaller budget (32 px, a 2-layer encoder, 40 steps) on the rows 0-191 of the
    scene, scored on the 16 crops of rows 192-263, which it never saw; an untrained model of the same size does
    worse than the baseline, so beating it takes learning."""
    small = (
        "hidden_size=64,num_hidden_layers=2,num_attention_heads=4,intermediate_size=128,decoder_hidden_size=64,"
        "decoder_num_hidden_layers=1,decoder_num_attention_heads=4,decoder_intermediate_size=128"
    )
    fit = QuickFit(steps=40, image_size=32, crop_size=48, num_crops=48, config_overrides=small, rows=(0, 192))
    scene, held_out = str(sample_scene()), (192, 264)
    torch.manual_seed(0)
    trained = SpectralGPTForPreTraining.from_pretrained(fit_on_scene(scene, tmp_path, fit, seed=0))
    errors = evaluate_on_scene(trained, scene, seed=0, rows=held_out)
    assert errors["crops"] == 16
    assert errors["model_mse"] < errors["baseline_mse"], errors
    untrained = SpectralGPTForPreTraining(trained.config)
    assert evaluate_on_scene(untrained, scene, seed=0, rows=held_out)["model_mse"] > errors["baseline_mse"]


def test_clusters_separate_distinct_embeddings():
    embeddings = np.zeros((4, 10, 10), dtype=np.float32)
    embeddings[0, :5] = 1.0
    embeddings[1, 5:] = 1.0
    embeddings[:, 0, 0] = np.nan
    classes = cluster(embeddings, num_clusters=2, seed=0)
    assert classes[0, 0] == 255
    assert len(set(classes[1:5].ravel())) == 1 and len(set(classes[5:].ravel())) == 1
    assert classes[1, 0] != classes[5, 0]
