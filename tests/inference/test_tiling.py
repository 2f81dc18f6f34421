"""The strip reader gives exactly the tiles of the per-tile reader; batches fill across rows; prefetching."""

import itertools
import threading

import numpy as np
import pytest
import rasterio
import torch

from spectralgpt_hf import SpectralGPTConfig, SpectralGPTImageProcessor, SpectralGPTModel
from spectralgpt_hf.geo import open_scene
from spectralgpt_hf.inference.scene import embed_scene
from spectralgpt_hf.inference.tiling import OutputLayout, TiledScene, blend_weights, prefetched, run_tiles


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


def ramp(tile, overlap):
    """The blending ramp written out: a pixel's weight grows by 1 / overlap per pixel from the tile's edge (measured
    at pixel centres) up to 1."""
    return np.array([min(1.0, (index + 0.5) / overlap, (tile - index - 0.5) / overlap) for index in range(tile)])


@pytest.mark.parametrize("tile, overlap, batch_size", [(64, 16, 5), (64, 0, 3), (96, 40, 16)])
def test_overlaps_are_the_ramp_weighted_mean_of_the_tiles(scene_crops, tmp_path, tile, overlap, batch_size):
    """Each tile's 'output' is its own constant, so every blended pixel must be the mean of the constants of the
    tiles covering it, weighted by their ramps: flat weights, a ramp of the wrong width or a tile added at the wrong
    place all change it."""
    model = SpectralGPTModel(SpectralGPTConfig(image_size=64, hidden_size=8, num_hidden_layers=1,
                                               num_attention_heads=2, intermediate_size=8))  # fmt: skip
    processor = SpectralGPTImageProcessor(normalization=None, band_names=["B02"])

    def constant_per_tile(model, batch, interpolate):
        values = torch.tensor([1.0 + row * 7 + col * 0.01 for row, col in zip(batch.rows, batch.cols)])
        return values[:, None, None, None].expand(-1, 1, tile, tile)

    with open_scene(scene_crops[2], ["B02"]) as scene:
        tiles = TiledScene(scene, processor, tile, overlap)
        height, width = scene.shape
        output = run_tiles(
            model, tiles, tmp_path / "blend.tif",
            OutputLayout(1, np.float32, None, None, finish=lambda values, valid: values),
            scale=1, channels=1, compute=constant_per_tile, batch_size=batch_size, progress=False,
        )  # fmt: skip
    weights = np.outer(ramp(tile, overlap), ramp(tile, overlap)) if overlap else np.ones((tile, tile))
    sums, totals = np.zeros((height, width)), np.zeros((height, width))
    for row in tiles.rows:
        for col in tiles.cols:
            h, w = min(tile, height - row), min(tile, width - col)
            sums[row : row + h, col : col + w] += weights[:h, :w] * (1.0 + row * 7 + col * 0.01)
            totals[row : row + h, col : col + w] += weights[:h, :w]
    with rasterio.open(output) as result:
        blended = result.read(1)
    np.testing.assert_allclose(blended, sums / totals, rtol=1e-5)
    if overlap:
        # a pixel in the band shared by the first two tiles of the first row: neither tile's own value
        middle = tiles.cols[1] + overlap // 2
        assert blended[tile // 2, middle] not in (1.0, 1.0 + tiles.cols[1] * 0.01)


def test_blend_weights_are_the_outer_product_of_linear_ramps():
    np.testing.assert_allclose(blend_weights(10, 4), np.outer(ramp(10, 4), ramp(10, 4)), rtol=1e-6)
    assert blend_weights(10, 4).dtype == np.float32 and blend_weights(10, 0).dtype == np.float32
    assert blend_weights(6, 0).shape == (6, 6)


@pytest.mark.parametrize("output_format, output_dtype", [("cog", None), ("gtiff", None), ("gtiff", "float16")])
def test_prefetching_writes_the_same_bytes(scene_crops, tmp_path, output_format, output_dtype):
    """The 180 px crop gives 22 px of embeddings: every output block (512 px) is a partial edge block."""
    torch.manual_seed(0)
    config = SpectralGPTConfig(
        image_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    model = SpectralGPTModel(config).eval()
    written = {}
    for prefetch in (0, 3):
        path = tmp_path / f"prefetch-{prefetch}.tif"
        embed_scene(model, scene_crops[1], path, tile=64, overlap=16, batch_size=3, prefetch=prefetch,
                    output_format=output_format, output_dtype=output_dtype, progress=False)  # fmt: skip
        written[prefetch] = path.read_bytes()
    with rasterio.open(tmp_path / "prefetch-0.tif") as result:
        assert result.width < result.block_shapes[0][1] or output_format == "gtiff"
        assert np.isfinite(result.read()).any()
    assert written[0] == written[3]


@pytest.mark.parametrize("normalization", ["min_max", "mean_std"])
def test_tiles_are_normalised_as_the_processor_normalises_them(scene_crops, normalization):
    """Bit for bit, including NaN (nodata) pixels and an all-NaN band of one tile."""
    if normalization == "min_max":
        processor = SpectralGPTImageProcessor.for_pretraining()
    else:
        processor = SpectralGPTImageProcessor(normalization="mean_std", image_mean=list(range(100, 1300, 100)),
                                              image_std=list(range(50, 650, 50)))  # fmt: skip
    with open_scene(scene_crops[0]) as scene:
        tiled = TiledScene(scene, processor, 64, 16)
        tiles = [data.copy() for _, _, data, _ in itertools.islice(tiled.tiles(scene), 4)]
    tiles[1][:, 5:20, 7:9] = np.nan
    tiles[2][3] = np.nan
    expected = processor(np.stack(tiles), return_tensors="pt")["pixel_values"]
    normalised = tiled.normalise(tiles)
    assert normalised.dtype == expected.dtype == torch.float32
    assert torch.equal(normalised, expected)
    assert torch.all(normalised[2, 3] == 0) and torch.all(normalised[1, :, 5:20, 7:9] == 0)
