"""Whole-scene inference: run a SpectralGPT model over a Sentinel-2 scene far larger than its input in overlapping
tiles, blend the overlaps, and write georeferenced GeoTIFFs on the scene's own grid.

Memory stays bounded by the tile batch and one strip of tile rows, whatever the scene size: tiles are processed
row by row and every finished strip is written out at once. Outputs are written atomically (a failed or
interrupted run leaves no partial file).
"""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from tqdm.auto import tqdm

from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from ..geo.raster import Scene, open_geotiff_for_writing, open_scene

CLASS_MAP_NODATA = 255
# GDAL's block cache defaults to 5 % of the machine's memory and fills up with the scene's blocks; a small bound
# keeps memory flat as scenes grow (each block is read about once, so a larger cache buys nothing).
GDAL_CACHE_MB = 32


def tile_starts(length: int, tile: int, step: int, align: int = 1) -> list[int]:
    """Start offsets of tiles covering [0, length): every `step`, the last one flush with the end (rounded down to
    a multiple of `align`); a single tile at 0 when the scene is shorter than a tile."""
    if length <= tile:
        return [0]
    last = (length - tile) // align * align
    starts = list(range(0, last, step))
    return starts + [last]


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) weights that fade linearly over the `overlap` band at the edges, so overlapping tiles blend."""
    if overlap == 0:
        return np.ones((tile, tile), dtype=np.float32)
    centres = np.arange(tile) + 0.5
    ramp = np.minimum(1.0, np.minimum(centres, tile - centres) / overlap).astype(np.float32)
    return np.outer(ramp, ramp)


@dataclass
class TileBatch:
    row: int
    cols: list[int]
    pixel_values: torch.Tensor
    pixel_values_2: torch.Tensor | None
    valid: np.ndarray  # (B, tile, tile) bool


class TiledScene:
    """Reads tiles of one scene (or two co-registered dates) as normalised model inputs, padding at the edges."""

    def __init__(
        self,
        scene: Scene,
        processor: SpectralGPTImageProcessor,
        tile: int,
        overlap: int,
        align: int = 1,
        scene_2: Scene | None = None,
    ):
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, tile) = [0, {tile}), got {overlap}.")
        if scene_2 is not None and (scene_2.shape, scene_2.transform, scene_2.crs) != (
            scene.shape,
            scene.transform,
            scene.crs,
        ):
            raise ValueError(
                f"The two dates must share one grid: {scene.source} is {scene.shape} px at {scene.transform} in "
                f"{scene.crs}, {scene_2.source} is {scene_2.shape} px at {scene_2.transform} in {scene_2.crs}. "
                "Reproject or crop them onto the same grid first."
            )
        self.scene, self.scene_2, self.processor = scene, scene_2, processor
        self.tile, self.overlap = tile, overlap
        step = tile - overlap
        self.rows = tile_starts(scene.height, tile, step, align)
        self.cols = tile_starts(scene.width, tile, step, align)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def read(self, scene: Scene, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
        """(bands, tile, tile) data and valid mask; parts beyond the scene are mirrored in and marked invalid."""
        height, width = min(self.tile, scene.height - row), min(self.tile, scene.width - col)
        bands = scene.read(Window(col, row, width, height))
        pad = ((0, self.tile - height), (0, self.tile - width))
        data = np.pad(bands.data, ((0, 0), *pad), mode="symmetric")
        return data, np.pad(bands.valid_mask, pad, constant_values=False)

    def batches(self, batch_size: int) -> Iterator[TileBatch]:
        """Batches of tiles in row-major order; a batch never spans two rows of tiles."""
        for row in self.rows:
            for start in range(0, len(self.cols), batch_size):
                cols = self.cols[start : start + batch_size]
                first = [self.read(self.scene, row, col) for col in cols]
                valid = np.stack([mask for _, mask in first])
                pixel_values_2 = None
                if self.scene_2 is not None:
                    second = [self.read(self.scene_2, row, col) for col in cols]
                    valid &= np.stack([mask for _, mask in second])
                    pixel_values_2 = self.normalise([data for data, _ in second])
                yield TileBatch(row, cols, self.normalise([data for data, _ in first]), pixel_values_2, valid)

    def normalise(self, tiles: list[np.ndarray]) -> torch.Tensor:
        return self.processor(np.stack(tiles), return_tensors="pt")["pixel_values"]


class StripWriter:
    """Accumulates weighted tile outputs for the rows of tiles in progress and writes rows once no later tile can
    touch them. Coordinates are in output pixels (`scale` input pixels each)."""

    def __init__(self, writer, channels: int, height: int, width: int, tile: int, finish):
        self.writer, self.finish = writer, finish
        self.height, self.width, self.tile = height, width, tile
        self.top = 0
        self.sums = np.zeros((channels, tile, width), dtype=np.float32)
        self.weights = np.zeros((tile, width), dtype=np.float32)
        self.valid = np.zeros((tile, width), dtype=bool)

    def add(self, row: int, col: int, values: np.ndarray, weights: np.ndarray, valid: np.ndarray) -> None:
        """Adds (channels, tile, tile) `values` with (tile, tile) `weights` at output offset (row, col)."""
        top, height = row - self.top, min(self.tile, self.height - row)
        width = min(self.tile, self.width - col)
        weights = weights[:height, :width] * valid[:height, :width]
        self.sums[:, top : top + height, col : col + width] += values[:, :height, :width] * weights
        self.weights[top : top + height, col : col + width] += weights
        self.valid[top : top + height, col : col + width] |= valid[:height, :width]

    def flush(self, until: int) -> None:
        """Writes output rows [top, until) and slides the strip down to start at `until`."""
        count = min(until, self.height) - self.top
        if count <= 0:
            return
        weights = np.maximum(self.weights[:count], 1e-12)
        result = self.finish(self.sums[:, :count] / weights, self.valid[:count])
        self.writer.write(result, window=Window(0, self.top, self.width, count))
        for buffer in (self.sums, self.weights, self.valid):
            buffer[..., :-count, :] = buffer[..., count:, :].copy()
            buffer[..., -count:, :] = 0
        self.top += count


def class_scores(model, batch: TileBatch, interpolate: bool) -> torch.Tensor:
    """Per-pixel class probabilities (B, num_labels, tile, tile) from any SpectralGPT head."""
    inputs = {"pixel_values": batch.pixel_values}
    if batch.pixel_values_2 is not None:
        inputs["pixel_values_2"] = batch.pixel_values_2
    if interpolate:
        inputs["interpolate_pos_encoding"] = True
    logits = model(**inputs).logits.float()
    tile = batch.pixel_values.shape[-1]
    if logits.ndim == 2:  # image classification: the tile's scores over its whole footprint
        multi_label = model.config.problem_type == "multi_label_classification"
        scores = logits.sigmoid() if multi_label else logits.softmax(-1)
        return scores[:, :, None, None].expand(-1, -1, tile, tile)
    if logits.shape[-2:] != (tile, tile):
        logits = torch.nn.functional.interpolate(logits, size=(tile, tile), mode="bilinear", align_corners=False)
    return logits.softmax(1)


def patch_embeddings(model, batch: TileBatch, interpolate: bool) -> torch.Tensor:
    """Encoder tokens averaged over spectral groups: (B, hidden_size, rows, cols) per tile."""
    encoder = model.base_model
    hidden = encoder(batch.pixel_values, interpolate_pos_encoding=interpolate).last_hidden_state
    config = model.config
    rows = cols = batch.pixel_values.shape[-1] // config.patch_size
    groups = hidden.shape[1] // (rows * cols)
    return hidden.float().reshape(hidden.shape[0], groups, rows, cols, -1).mean(1).permute(0, 3, 1, 2)


def scene_band_names(config, processor: SpectralGPTImageProcessor) -> list[str]:
    """The bands to read from a scene: the model's, unless the processor builds channels from the bands it names
    (SegMunich's band-mean channels). Refuses a processor whose channels do not add up to the model's input."""
    band_names = processor.band_names if processor.band_mean_channels else config.band_names or processor.band_names
    if band_names is None:
        raise ValueError(
            "Scenes are read by band name, but neither the model's config nor its image processor names the bands; "
            "set band_names on one of them."
        )
    channels = len(band_names) + processor.band_mean_channels
    if channels != config.num_bands:
        means = f" and {processor.band_mean_channels} band-mean channels" if processor.band_mean_channels else ""
        raise ValueError(
            f"The image processor makes {channels} channels ({', '.join(band_names)}{means}) but the model takes "
            f"{config.num_bands}; use the image processor the model was trained with."
        )
    return list(band_names)


@dataclass
class OutputLayout:
    """The bands of an output file: `finish(blended, valid)` turns blended (channels, rows, cols) values and the
    valid mask into `count` bands of `dtype`."""

    count: int
    dtype: type
    nodata: float | None
    band_descriptions: list[str] | None
    finish: Callable[[np.ndarray, np.ndarray], np.ndarray]


def class_map(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, scores.argmax(0), CLASS_MAP_NODATA).astype(np.uint8)[np.newaxis]


def masked_values(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, values, np.nan).astype(np.float32)


def run_tiles(
    model,
    tiles: TiledScene,
    output: str | os.PathLike,
    layout: OutputLayout,
    *,
    scale: int,
    channels: int,
    compute: Callable,
    batch_size: int,
    progress: bool,
) -> Path:
    """Drives the tiles through `compute` (batch -> (B, channels, tile/scale, tile/scale) tensor), blends them and
    writes them through `layout`, strip by strip, into an atomically written GeoTIFF."""
    scene, tile = tiles.scene, tiles.tile
    out_tile, overlap = tile // scale, tiles.overlap // scale
    height, width = scene.height // scale, scene.width // scale
    weights = blend_weights(out_tile, overlap)
    transform = scene.transform @ rasterio.Affine.scale(scale)
    interpolate = tile != model.config.image_size
    parameter = next(model.parameters())
    with open_geotiff_for_writing(
        output,
        height=height,
        width=width,
        count=layout.count,
        dtype=layout.dtype,
        crs=scene.crs,
        transform=transform,
        nodata=layout.nodata,
        band_descriptions=layout.band_descriptions,
        tiled=True,
    ) as writer, torch.inference_mode(), tqdm(total=len(tiles), unit="tile", disable=not progress) as bar:
        strip = StripWriter(writer, channels, height, width, out_tile, layout.finish)
        for batch in tiles.batches(batch_size):
            batch.pixel_values = batch.pixel_values.to(parameter.device, parameter.dtype)
            if batch.pixel_values_2 is not None:
                batch.pixel_values_2 = batch.pixel_values_2.to(parameter.device, parameter.dtype)
            values = compute(model, batch, interpolate).cpu().numpy()
            # output-resolution validity: a patch is valid when any of its pixels is
            valid = batch.valid.reshape(len(batch.cols), out_tile, scale, out_tile, scale).any(axis=(2, 4))
            strip.flush(batch.row // scale)
            for index, col in enumerate(batch.cols):
                strip.add(batch.row // scale, col // scale, values[index], weights, valid[index])
            bar.update(len(batch.cols))
        strip.flush(height)
    return Path(output)


def predict_scene(
    model,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    input_2: str | os.PathLike | None = None,
    processor: SpectralGPTImageProcessor | None = None,
    tile: int | None = None,
    overlap: int = 32,
    batch_size: int = 8,
    progress: bool = True,
) -> Path:
    """
    Runs a classification, segmentation or change-detection model over a whole scene and writes a GeoTIFF on the
    input's 10 m grid, with its CRS and transform.

    Segmentation and change detection (`input_2`: the second date, on the same grid) give a uint8 class map
    (nodata 255 where the input has no valid pixel); classification gives one float32 band of blended class
    scores per label, from the tiles covering each pixel.

    Args:
        model: a SpectralGPT head (eval mode is set here).
        input: a stacked GeoTIFF or a folder of per-band files (see `spectralgpt_hf.raster.open_scene`).
        tile: tile side in pixels; default the model's image size. Other sizes use interpolated position tables.
        overlap: pixels shared by neighbouring tiles, blended with linear ramps.
        processor: the normalisation; default per-tile min-max, which the original segmentation and change
            detection models were trained with.
    """
    model.eval()
    tile = tile or model.config.image_size
    processor = processor or SpectralGPTImageProcessor.for_pretraining()
    labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
    band_names = scene_band_names(model.config, processor)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_scene(input, band_names) as scene, (
        open_scene(input_2, band_names) if input_2 is not None else contextlib.nullcontext()
    ) as scene_2:
        tiles = TiledScene(scene, processor, tile, overlap, scene_2=scene_2)
        if type(model).__name__.endswith("ForImageClassification"):
            layout = OutputLayout(len(labels), np.float32, np.nan, labels, masked_values)
        else:
            layout = OutputLayout(1, np.uint8, CLASS_MAP_NODATA, ["class"], class_map)
        return run_tiles(
            model,
            tiles,
            output,
            layout,
            scale=1,
            channels=len(labels),
            compute=class_scores,
            batch_size=batch_size,
            progress=progress,
        )


def embed_scene(
    model,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    processor: SpectralGPTImageProcessor | None = None,
    tile: int | None = None,
    overlap: int = 32,
    batch_size: int = 8,
    progress: bool = True,
) -> Path:
    """
    Writes the encoder's per-patch embeddings of a whole scene as a float32 GeoTIFF with `hidden_size` bands, one
    pixel per `patch_size` x `patch_size` patch (80 m for Sentinel-2 at 10 m), averaged over spectral groups and
    over overlapping tiles. Tiles are aligned to the patch grid; a remainder of under one patch at the right and
    bottom edges is left out.
    """
    model.eval()
    patch = model.config.patch_size
    tile = tile or model.config.image_size
    if tile % patch or overlap % patch:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of the patch size ({patch}).")
    processor = processor or SpectralGPTImageProcessor.for_pretraining()
    band_names = scene_band_names(model.config, processor)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_scene(input, band_names) as scene:
        tiles = TiledScene(scene, processor, tile, overlap, align=patch)
        return run_tiles(
            model,
            tiles,
            output,
            OutputLayout(model.config.hidden_size, np.float32, np.nan, None, masked_values),
            scale=patch,
            channels=model.config.hidden_size,
            compute=patch_embeddings,
            batch_size=batch_size,
            progress=progress,
        )
