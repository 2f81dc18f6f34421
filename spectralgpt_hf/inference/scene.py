"""Whole-scene inference: run a SpectralGPT model over a Sentinel-2 scene far larger than its input in overlapping
tiles, blend the overlaps, and write georeferenced GeoTIFFs on the scene's own grid.

Memory stays bounded by the tile batch and one strip of tile rows, whatever the scene size: tiles are processed
row by row and every finished strip is written out at once. Outputs are written atomically (a failed or
interrupted run leaves no partial file).
"""

import contextlib
import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..configuration_spectralgpt import SENTINEL2_BANDS
from ..geo import Scene, open_scene
from ..image_processing_spectralgpt import (
    BIGEARTHNET_MEAN,
    BIGEARTHNET_STD,
    SpectralGPTImageProcessor,
)
from .tiling import OutputLayout, TileBatch, TiledScene, run_tiles

CLASS_MAP_NODATA = 255


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


def scene_tiling(config, tile: int | None = None, overlap: int | None = None, *,
                 aligned: bool = False) -> tuple[int, int]:  # fmt: skip
    """
    The tile and overlap to run a model of `config` with, checked before anything is read: the tile (default the
    model's image size) a multiple of the patch size, the overlap (default a quarter of the tile, in whole
    patches) in [0, tile), and a multiple of the patch size too when `aligned` (embeddings).
    """
    patch = config.patch_size
    tile = config.image_size if tile is None else tile
    if tile < patch or tile % patch:
        raise ValueError(
            f"tile ({tile}) must be a multiple of the model's patch size ({patch} px), e.g. {config.image_size}."
        )
    overlap = tile // 4 // patch * patch if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap ({overlap}) must be in [0, tile) = [0, {tile}).")
    if aligned and overlap % patch:
        raise ValueError(f"overlap ({overlap}) must be a multiple of the model's patch size ({patch} px) here.")
    return tile, overlap


def class_map(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, scores.argmax(0), CLASS_MAP_NODATA).astype(np.uint8)[np.newaxis]


def masked_values(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, values, np.nan).astype(np.float32)


def fixed_statistics(processor: SpectralGPTImageProcessor, band_names: list[str]) -> SpectralGPTImageProcessor:
    """The processor with mean/std normalisation on fixed statistics (its own, else the BigEarthNet preset's for
    these bands) instead of a per-tile stretch, so that all tiles of a scene share one normalisation."""
    if processor.normalization in ("mean_std", "sentinel_normalize"):
        return processor
    if processor.band_mean_channels:
        raise ValueError("Fixed statistics are not defined for processors with band-mean channels (SegMunich).")
    preset = dict(zip(SENTINEL2_BANDS, zip(BIGEARTHNET_MEAN, BIGEARTHNET_STD)))
    unknown = [name for name in band_names if name not in preset]
    if unknown:
        raise ValueError(f"No fixed statistics for the bands {', '.join(unknown)}; give the processor image_mean/std.")
    fixed = copy.deepcopy(processor)
    fixed.normalization = "mean_std"
    fixed.image_mean = [preset[name][0] for name in band_names]
    fixed.image_std = [preset[name][1] for name in band_names]
    return fixed


def scene_normalisation(model, processor, normalization) -> tuple[SpectralGPTImageProcessor, list[str]]:
    """The normalisation of a scene run and the bands it reads: the processor (default per-tile min-max), with
    `normalization="fixed"` on fixed mean/std statistics (see `fixed_statistics`)."""
    if normalization not in ("processor", "fixed"):
        raise ValueError(f"normalization must be 'processor' or 'fixed', got {normalization!r}.")
    processor = processor or SpectralGPTImageProcessor.for_pretraining()
    band_names = scene_band_names(model.config, processor)
    processor = fixed_statistics(processor, band_names) if normalization == "fixed" else processor
    return processor, band_names


@dataclass(frozen=True)
class SceneOptions:
    """
    How `predict_scene` and `embed_scene` read, tile and write a scene: their keyword arguments.

    Args:
        processor: the normalisation; default per-tile min-max, which the original segmentation and change
            detection models were trained with.
        tile: tile side in pixels; default the model's image size. Other sizes use interpolated position tables.
        overlap: pixels shared by neighbouring tiles, blended with linear ramps; default a quarter of the tile in
            whole patches (32 for 128 px). See `scene_tiling`.
        batch_size: tiles per forward pass (batches are filled across rows of tiles).
        progress: a progress bar over the tiles.
        nodata, mask, radiometric_correction, file_band_order, fill_missing, resampling: how the input (both
            dates) is read (see `spectralgpt_hf.geo.open_scene`): masked and nodata pixels are left out of the
            normalisation and written as nodata.
        normalization: "processor" (the processor's own) or "fixed" (mean/std statistics, see `fixed_statistics`).
        output_format: "cog" (Cloud-Optimized GeoTIFF) or "gtiff"; output_dtype "float16" halves float outputs
            (class scores, embeddings).
        reader: "strip" (each row of tiles read once, tiles cut from memory) or "tile" (one read per tile); both
            give the same tiles.
        prefetch: batches read ahead in a background thread while the model runs (0: none); the output is the
            same, byte for byte.
    """

    processor: SpectralGPTImageProcessor | None = None
    tile: int | None = None
    overlap: int | None = None
    batch_size: int = 8
    progress: bool = True
    nodata: float | None = None
    mask: object = None
    radiometric_correction: bool = True
    file_band_order: object = None
    fill_missing: bool = False
    resampling: str = "bilinear"
    normalization: str = "processor"
    output_format: str = "cog"
    output_dtype: str | None = None
    reader: str = "strip"
    prefetch: int = 2

    def open(self, source: str | os.PathLike, band_names: list[str]) -> Scene:
        names = ("nodata", "mask", "radiometric_correction", "file_band_order", "fill_missing", "resampling")
        return open_scene(source, band_names, **{name: getattr(self, name) for name in names})

    def run(self, model, tiles: TiledScene, output, layout: OutputLayout, **how) -> Path:
        """`run_tiles` with these options' batch size, progress and prefetching."""
        return run_tiles(model, tiles, output, layout, batch_size=self.batch_size, progress=self.progress,
                         prefetch=self.prefetch, **how)  # fmt: skip


def predict_scene(
    model, input: str | os.PathLike, output: str | os.PathLike, *, input_2: str | os.PathLike | None = None, **options
) -> Path:
    """
    Runs a classification, segmentation or change-detection model over a whole scene and writes a GeoTIFF on the
    input's 10 m grid, with its CRS and transform.

    Segmentation and change detection (`input_2`: the second date, on the same grid) give a uint8 class map
    (nodata 255 where the input has no valid pixel); classification gives one float32 band of blended class
    scores per label, from the tiles covering each pixel. Class maps carry a colour table and the class names
    (`id2label`) in their `class_names` tag.

    Args:
        model: a SpectralGPT head (eval mode is set here).
        input: a stacked GeoTIFF or a folder of per-band files (see `spectralgpt_hf.geo.open_scene`).
        options: `SceneOptions` fields (tile, overlap, batch_size, processor, normalization, nodata, mask,
            output_format, output_dtype, reader, prefetch, ...).
    """
    options = SceneOptions(**options)
    model.eval()
    tile, overlap = scene_tiling(model.config, options.tile, options.overlap)
    labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
    processor, band_names = scene_normalisation(model, options.processor, options.normalization)
    with options.open(input, band_names) as scene, (
        options.open(input_2, band_names) if input_2 is not None else contextlib.nullcontext()
    ) as scene_2:
        tiles = TiledScene(scene, processor, tile, overlap, scene_2=scene_2, reader=options.reader)
        written = {"output_format": options.output_format, "tags": {"scene_id": scene.scene_id}}
        if type(model).__name__.endswith("ForImageClassification"):
            written["output_dtype"] = options.output_dtype
            layout = OutputLayout(len(labels), np.float32, np.nan, labels, masked_values, written)
        else:
            written["class_names"] = labels
            layout = OutputLayout(1, np.uint8, CLASS_MAP_NODATA, ["class"], class_map, written)
        return options.run(model, tiles, output, layout, scale=1, channels=len(labels), compute=class_scores)


def embed_scene(
    model, input: str | os.PathLike, output: str | os.PathLike, *, geoparquet: str | os.PathLike | None = None,
    **options,
) -> Path:  # fmt: skip
    """
    Writes the encoder's per-patch embeddings of a whole scene as a float32 GeoTIFF with `hidden_size` bands, one
    pixel per `patch_size` x `patch_size` patch (80 m for Sentinel-2 at 10 m), averaged over spectral groups and
    over overlapping tiles. Tiles are aligned to the patch grid; a remainder of under one patch at the right and
    bottom edges is left out. Patches without a valid pixel are NaN.

    `options` are the `SceneOptions` fields, as for `predict_scene`; `output_dtype="float16"` halves the file.
    `geoparquet`: also write the embeddings as GeoParquet (one row per valid patch, see
    `spectralgpt_hf.geo.geoparquet`).
    """
    options = SceneOptions(**options)
    model.eval()
    patch = model.config.patch_size
    tile, overlap = scene_tiling(model.config, options.tile, options.overlap, aligned=True)
    processor, band_names = scene_normalisation(model, options.processor, options.normalization)
    with options.open(input, band_names) as scene:
        tiles = TiledScene(scene, processor, tile, overlap, align=patch, reader=options.reader)
        written = {"output_format": options.output_format, "output_dtype": options.output_dtype,
                   "tags": {"scene_id": scene.scene_id}}  # fmt: skip
        layout = OutputLayout(model.config.hidden_size, np.float32, np.nan, None, masked_values, written)
        output = options.run(model, tiles, output, layout, scale=patch, channels=model.config.hidden_size,
                             compute=patch_embeddings)  # fmt: skip
    if geoparquet is not None:
        from ..geo.geoparquet import write_embeddings_geoparquet

        write_embeddings_geoparquet(output, geoparquet, scene_id=scene.scene_id)
    return output
