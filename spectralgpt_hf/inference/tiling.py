"""Tiling a scene for a model: overlapping tiles read as normalised inputs, their outputs blended with linear ramps
and written strip by strip, so memory stays bounded by the tile batch and one strip of tile rows whatever the
scene size."""

import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from tqdm.auto import tqdm

from ..geo import Scene
from ..geo.writing import open_output
from ..image_processing_spectralgpt import SpectralGPTImageProcessor


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
    """Tiles at (rows[i], cols[i]) of the scene, in pixels of its grid; a batch may span several rows of tiles."""

    rows: list[int]
    cols: list[int]
    pixel_values: torch.Tensor
    pixel_values_2: torch.Tensor | None
    valid: np.ndarray  # (B, tile, tile) bool


READERS = ("strip", "tile")
MINIMUM_GDAL_CACHE = 64 * 2**20


class TiledScene:
    """Reads tiles of one scene (or two co-registered dates) as normalised model inputs, padding at the edges.

    The "strip" reader (default) reads each row of tiles once, as one window of the scene's full width, and cuts
    its tiles from memory; the "tile" reader reads every tile as its own window. Both give the same tiles; a
    strip costs one read per band (and one resampling of each coarser band) instead of one per tile.
    """

    def __init__(
        self,
        scene: Scene,
        processor: SpectralGPTImageProcessor,
        tile: int,
        overlap: int,
        align: int = 1,
        scene_2: Scene | None = None,
        reader: str = "strip",
    ):
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, tile) = [0, {tile}), got {overlap}.")
        if reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}, got {reader!r}.")
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
        self.tile, self.overlap, self.reader = tile, overlap, reader
        step = tile - overlap
        self.rows = tile_starts(scene.height, tile, step, align)
        self.cols = tile_starts(scene.width, tile, step, align)

    def block_cache_bytes(self) -> int:
        """GDAL block cache that decodes each block of the input files once (see `Scene.block_cache_bytes`)."""
        scenes = [self.scene] if self.scene_2 is None else [self.scene, self.scene_2]
        return sum(scene.block_cache_bytes(self.tile) for scene in scenes)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def read(self, scene: Scene, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
        """(bands, tile, tile) data and valid mask of one tile, read as its own window."""
        height, width = min(self.tile, scene.height - row), min(self.tile, scene.width - col)
        bands = scene.read(Window(col, row, width, height))
        return self.padded(bands.data, bands.valid_mask)

    def read_strip(self, scene: Scene, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(bands, rows, scene width) data and valid mask of the row of tiles starting at `row`."""
        bands = scene.read(Window(0, row, scene.width, min(self.tile, scene.height - row)))
        return bands.data, bands.valid_mask

    def cut(self, strip: tuple[np.ndarray, np.ndarray], col: int) -> tuple[np.ndarray, np.ndarray]:
        data, valid = strip
        return self.padded(data[:, :, col : col + self.tile], valid[:, col : col + self.tile])

    def padded(self, data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A tile cut short by the scene's edge, mirrored out to full size and marked invalid beyond the edge."""
        pad = ((0, self.tile - data.shape[1]), (0, self.tile - data.shape[2]))
        if pad == ((0, 0), (0, 0)):
            return data, valid
        return np.pad(data, ((0, 0), *pad), mode="symmetric"), np.pad(valid, pad, constant_values=False)

    def tiles(self, scene: Scene) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(row, col, data, valid) of every tile of `scene`, in row-major order."""
        for row in self.rows:
            if self.reader == "tile":
                for col in self.cols:
                    yield row, col, *self.read(scene, row, col)
            else:
                strip = self.read_strip(scene, row)
                for col in self.cols:
                    yield row, col, *self.cut(strip, col)

    def batches(self, batch_size: int) -> Iterator[TileBatch]:
        """Batches of `batch_size` tiles in row-major order (the last one may be smaller), filled across rows."""
        first = self.tiles(self.scene)
        second = self.tiles(self.scene_2) if self.scene_2 is not None else None
        while True:
            chunk = list(itertools.islice(first, batch_size))
            if not chunk:
                return
            rows, cols = [row for row, *_ in chunk], [col for _, col, *_ in chunk]
            valid = np.stack([mask for *_, mask in chunk])
            pixel_values_2 = None
            if second is not None:
                chunk_2 = list(itertools.islice(second, batch_size))
                valid &= np.stack([mask for *_, mask in chunk_2])
                pixel_values_2 = self.normalise([data for *_, data, _ in chunk_2])
            yield TileBatch(rows, cols, self.normalise([data for *_, data, _ in chunk]), pixel_values_2, valid)

    def normalise(self, tiles: list[np.ndarray]) -> torch.Tensor:
        """(B, bands, tile, tile) float32 pixel values of the tiles, as the image processor returns them."""
        processor = self.processor
        reshaped = processor.do_rescale or processor.do_resize or processor.do_center_crop
        if reshaped or processor.band_mean_channels or processor.normalization not in ("min_max", "mean_std"):
            return processor(np.stack(tiles), return_tensors="pt")["pixel_values"]
        # The processor's own arithmetic (float64, NaN left out of min-max and zeroed after) in numpy, which costs
        # a fifteenth of the processor's per-image torch path and gives the same values bit for bit.
        batch = np.stack(tiles).astype(np.float64)
        if processor.normalization == "min_max":
            finite = np.isfinite(batch)
            whole = finite.all()
            low = (batch if whole else np.where(finite, batch, np.inf)).min(axis=(2, 3), keepdims=True)
            high = (batch if whole else np.where(finite, batch, -np.inf)).max(axis=(2, 3), keepdims=True)
            batch -= low
            batch /= high - low + processor.min_max_epsilon
        else:
            batch -= np.asarray(processor.image_mean, dtype=np.float64)[:, None, None]
            batch /= np.asarray(processor.image_std, dtype=np.float64)[:, None, None]
        batch[~np.isfinite(batch)] = 0.0
        return torch.from_numpy(batch.astype(np.float32))


def prefetched(items: Iterable, depth: int) -> Iterator:
    """The items of `items`, produced `depth` ahead in a background thread, so that reading and normalising the
    next batches overlaps the model's compute. Errors in the thread are raised here, at the item they stopped."""
    if depth <= 0:
        yield from items
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((end, None))
        except BaseException as error:  # passed on to the consumer
            ready.put((end, error))

    thread = threading.Thread(target=produce, name="tile-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then let it finish
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)
        thread.join()


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


@dataclass
class OutputLayout:
    """The bands of an output file: `finish(blended, valid)` turns blended (channels, rows, cols) values and the
    valid mask into `count` bands of `dtype`. `options` go to `geo.writing.open_output` (format, float16, class
    names)."""

    count: int
    dtype: type
    nodata: float | None
    band_descriptions: list[str] | None
    finish: Callable[[np.ndarray, np.ndarray], np.ndarray]
    options: dict = field(default_factory=dict)


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
    prefetch: int = 2,
) -> Path:
    """Drives the tiles through `compute` (batch -> (B, channels, tile/scale, tile/scale) tensor), blends them and
    writes them through `layout`, strip by strip, into an atomically written GeoTIFF. `prefetch` batches are read
    ahead in a background thread (0: read in this thread)."""
    scene, tile = tiles.scene, tiles.tile
    out_tile, overlap = tile // scale, tiles.overlap // scale
    height, width = scene.height // scale, scene.width // scale
    weights = blend_weights(out_tile, overlap)
    transform = scene.transform @ rasterio.Affine.scale(scale)
    interpolate = tile != model.config.image_size
    parameter = next(model.parameters())
    # GDAL's block cache is one per process, and `GDAL_CACHEMAX` as rasterio sets it is in bytes; sized so that
    # strips never evict the blocks the next strip reads, and the output's strips in progress stay cached too.
    output_strips = 2 * layout.count * width * np.dtype(layout.dtype).itemsize * out_tile
    cache = max(MINIMUM_GDAL_CACHE, tiles.block_cache_bytes() + output_strips)
    with rasterio.Env(GDAL_CACHEMAX=cache), open_output(
        output,
        height=height,
        width=width,
        count=layout.count,
        dtype=layout.dtype,
        crs=scene.crs,
        transform=transform,
        nodata=layout.nodata,
        band_descriptions=layout.band_descriptions,
        **layout.options,
    ) as writer, torch.inference_mode(), tqdm(total=len(tiles), unit="tile", disable=not progress) as bar:
        strip = StripWriter(writer, channels, height, width, out_tile, layout.finish)
        for batch in prefetched(tiles.batches(batch_size), prefetch):
            batch.pixel_values = batch.pixel_values.to(parameter.device, parameter.dtype)
            if batch.pixel_values_2 is not None:
                batch.pixel_values_2 = batch.pixel_values_2.to(parameter.device, parameter.dtype)
            values = compute(model, batch, interpolate).cpu().numpy()
            # output-resolution validity: a patch is valid when any of its pixels is
            valid = batch.valid.reshape(len(batch.cols), out_tile, scale, out_tile, scale).any(axis=(2, 4))
            for index, (row, col) in enumerate(zip(batch.rows, batch.cols)):
                strip.flush(row // scale)  # no later tile reaches above its row
                strip.add(row // scale, col // scale, values[index], weights, valid[index])
            bar.update(len(batch.cols))
        strip.flush(height)
    return Path(output)
