"""The strip reader gives exactly the tiles of the per-tile reader; batches fill across rows; prefetching."""

import threading

import numpy as np
import pytest
import rasterio
import torch

from spectralgpt_hf import SpectralGPTConfig, SpectralGPTImageProcessor, SpectralGPTModel
from spectralgpt_hf.geo import open_scene
from spectralgpt_hf.inference.scene import embed_scene
from spectralgpt_hf.inference.tiling import TiledScene, prefetched


def all_tiles(tiled, scene):
    return [(row, col, data.copy(), valid.copy()) for row, col, data, valid in tiled.tiles(scene)]


@pytest.mark.parametrize("layout", ["per-band", "stacked"])
@pytest.mark.parametrize("tile, overlap, align", [(64, 16, 1), (48, 8, 8), (256, 32, 1)])
def test_strip_reader_gives_the_tiles_of_the_tile_reader(layout, tile, overlap, align, scene_crops, stacked_crop):
    """Bit for bit, including the 20 m and 60 m bands resampled onto the 10 m grid and the mirrored padding of a
    scene smaller than a tile."""
    source = scene_crops[3] if layout == "per-band" else stacked_crop
    processor = SpectralGPTImageProcessor.for_pretraining()
    with open_scene(source) as scene:
        strips = all_tiles(TiledScene(scene, processor, tile, overlap, align, reader="strip"), scene)
        tiles = all_tiles(TiledScene(scene, processor, tile, overlap, align, reader="tile"), scene)
    assert len(strips) == len(tiles) > 0
    for (row, col, data, valid), (row_2, col_2, data_2, valid_2) in zip(strips, tiles):
        assert (row, col) == (row_2, col_2)
        assert data.shape == (12, tile, tile)
        np.testing.assert_array_equal(data, data_2)
        np.testing.assert_array_equal(valid, valid_2)


def test_batches_fill_across_rows_of_tiles(scene_crops):
    with open_scene(scene_crops[0]) as scene:
        tiled = TiledScene(scene, SpectralGPTImageProcessor.for_pretraining(), 64, 16)
        assert (len(tiled.rows), len(tiled.cols)) == (4, 4)
        batches = list(tiled.batches(5))
    assert [len(batch.cols) for batch in batches] == [5, 5, 5, 1]
    assert batches[0].rows == [0, 0, 0, 0, 48] and batches[0].cols == [0, 48, 96, 116, 0]
    assert all(batch.pixel_values.shape[1:] == (12, 64, 64) for batch in batches)


def test_embeddings_equal_with_either_reader_and_with_prefetching(scene_crops, tmp_path):
    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    model = SpectralGPTModel(config).eval()
    outputs = {}
    for reader, prefetch in (("tile", 0), ("strip", 0), ("strip", 3)):
        path = tmp_path / f"{reader}-{prefetch}.tif"
        embed_scene(model, scene_crops[1], path, tile=64, overlap=16, batch_size=3, reader=reader, prefetch=prefetch,
                    progress=False)  # fmt: skip
        with rasterio.open(path) as result:
            outputs[reader, prefetch] = result.read()
    np.testing.assert_array_equal(outputs["tile", 0], outputs["strip", 0])
    np.testing.assert_array_equal(outputs["strip", 0], outputs["strip", 3])


def test_prefetched_passes_errors_on_and_stops_its_thread():
    def items():
        yield from range(3)
        raise OSError("disk gone")

    received = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetched(items(), 2):
            received.append(item)
    assert received == [0, 1, 2]

    # a consumer that stops early leaves no thread behind
    for item in prefetched(iter(range(1000)), 2):
        break
    assert not [thread for thread in threading.enumerate() if thread.name == "tile-prefetch"]


def test_unknown_reader_is_refused(scene_crops):
    with open_scene(scene_crops[0]) as scene, pytest.raises(ValueError, match="reader must be one of"):
        TiledScene(scene, SpectralGPTImageProcessor.for_pretraining(), 64, 16, reader="fast")
