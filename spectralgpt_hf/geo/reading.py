# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Read Sentinel-2 rasters by band name.

Two layouts are read:

* a stacked multi-band GeoTIFF (EuroSAT-MS, pre-stacked BigEarthNet, your own stacks). The band of each layer
  comes from the file's band descriptions ("B02", "B8A", ...) or, when it has none, from `file_band_order`: a
  list of names or a key of `DATASET_BAND_ORDERS`;
* a folder of single-band GeoTIFFs (BigEarthNet, Major-TOM, SSL4EO-S12). The band comes from the file name:
  `B02.tif`, `B2.tif`, `<anything>_B02.tif`, `<anything>_B8A.tif`. Other files (`cloud_mask.tif`,
  `thumbnail.png`, `metadata.json`) are ignored.

Bands are always matched by name, never by position. Bands that are present but not requested (such as B10) are
left out. The 20 m and 60 m bands of a folder are resampled onto the grid of its finest band (10 m), using their
georeferencing, so the result has the CRS and transform of that grid.

Besides these, a scene can be a Sentinel-2 SAFE product (`.SAFE` folder or `.SAFE.zip`), a STAC Item JSON, or a
URL or GDAL virtual path of a stacked file (see `sources.describe_source`). Folders are searched recursively and
JPEG 2000 files and resolution suffixes (`x_B02_10m.jp2`) are understood.

Values are returned on one scale, reflectance x 10000 without offset (the scale of the model statistics): the
offset and quantification value the product states (SAFE metadata, STAC raster:bands / processing baseline) are
applied; a source without such metadata is taken as already on that scale. `radiometric_correction=False` returns
the stored values.

Invalid pixels (the file's nodata value or `nodata`, NaN, a pixel of the 10 m grid that a coarser band's footprint
does not cover, or a pixel that `mask` masks) are NaN in `RasterBands.data` and False in `RasterBands.valid_mask`.
`SpectralGPTImageProcessor` leaves NaN out of min-max statistics and turns it into 0 after normalisation.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..configuration_spectralgpt import SENTINEL2_BANDS
from .bands import ALL_SENTINEL2_BANDS, DATASET_BAND_ORDERS, canonical_band_list
from .masks import MaskSpec, parse_mask
from .sources import QUANTIFICATION_SCALE, describe_source, is_remote


def _resampling_method(name: str) -> Resampling:
    try:
        return Resampling[name]
    except KeyError:
        choices = ", ".join(method.name for method in Resampling)
        raise ValueError(f"Unknown resampling {name!r}; use one of: {choices}.") from None


@dataclass(frozen=True)
class RasterBands:
    """Bands read from a raster, on the finest grid of the source.

    Attributes:
        data: float32 array (C, H, W), bands in the order of `band_names`. Invalid pixels and missing bands are NaN.
        band_names: canonical band names, in the requested order.
        crs: coordinate reference system of the grid.
        transform: affine transform of the returned window (not of the whole scene).
        valid_mask: bool array (H, W); False where any band that was read is nodata, NaN or not covered.
            Missing bands (see `missing_bands`) do not count.
        missing_bands: requested bands the source lacks; they are all-NaN in `data` (only with `fill_missing=True`).
    """

    data: np.ndarray
    band_names: tuple[str, ...]
    crs: rasterio.crs.CRS | None
    transform: rasterio.Affine
    valid_mask: np.ndarray
    missing_bands: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _BandLayer:
    """Where one requested band is read from: layer `index` of `reader`, with its nodata value, and the linear map
    (value + offset) x gain onto the model's scale."""

    output_position: int
    reader: rasterio.io.DatasetReader | WarpedVRT
    index: int
    nodata: float | None
    band: str = ""
    offset: float = 0.0
    gain: float = 1.0


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _NearestOnGrid:
    """A mask raster on the scene's grid by nearest neighbour, for one in the same CRS with another pixel size:
    each scene pixel takes the mask pixel under its centre, exactly (the warper's approximation can shift class
    boundaries by a pixel)."""

    def __init__(self, dataset, transform: rasterio.Affine):
        self.dataset, self.transform, self.name = dataset, transform, dataset.name

    def read(self, index, window: Window) -> np.ndarray:
        # the window's corners in the mask's pixels (same CRS, rectilinear grids)
        left, top = ~self.dataset.transform @ (self.transform @ (window.col_off, window.row_off))
        right, bottom = ~self.dataset.transform @ (
            self.transform @ (window.col_off + window.width, window.row_off + window.height)
        )
        source_window = Window(left, top, right - left, bottom - top)
        shape = (self.dataset.count, int(window.height), int(window.width))
        return self.dataset.read(window=source_window, out_shape=shape, resampling=Resampling.nearest)


class _UpsampledOnGrid:
    """A coarser band on the scene's grid, for one in the same CRS whose pixels are a whole number `factor` of the
    grid's and share its origin (Sentinel-2's 20 m and 60 m bands): each window reads only the source pixels under
    it (plus one for the kernel) and resamples them with vectorised arithmetic, several times faster than GDAL's
    warper. Values are the warper's, bit for bit: "nearest" takes the source pixel under each centre; "bilinear"
    interpolates linearly between source pixel centres, clamped at the edges, over the valid neighbours only. A
    pixel whose centre falls on an invalid source pixel, or outside the source, is NaN."""

    METHODS = (Resampling.nearest, Resampling.bilinear)

    def __init__(self, dataset, factor: int, resampling: Resampling, nodata: float | None):
        self.dataset, self.factor, self.resampling, self.nodata = dataset, factor, resampling, nodata
        self.name = dataset.name

    @classmethod
    def for_grid(cls, dataset, crs, transform: rasterio.Affine, resampling: Resampling, nodata):
        """The reader of `dataset` on the grid (crs, transform), or None where this fast path does not apply."""
        source = dataset.transform
        factor = round(source.a / transform.a) if transform.a else 0
        aligned = (source.b, source.d, transform.b, transform.d) == (0, 0, 0, 0) and factor >= 1
        aligned = aligned and (source.a, source.e) == (transform.a * factor, transform.e * factor)
        aligned = aligned and (source.c, source.f) == (transform.c, transform.f)
        if dataset.crs != crs or resampling not in cls.METHODS or not aligned or dataset.count != 1:
            return None
        return cls(dataset, factor, resampling, nodata)

    def source_span(self, start: int, stop: int, size: int) -> tuple:
        """For grid pixels [start, stop) along one axis: the neighbouring source pixels (first, second, clamped to
        the source), the weight of the second, the source pixel under each centre, and the source range to read."""
        centres = (np.arange(start, stop, dtype=np.float64) + 0.5) / self.factor - 0.5
        first = np.floor(centres)
        weight = centres - first
        first = first.astype(np.int64)
        under = np.arange(start, stop) // self.factor
        if self.resampling == Resampling.nearest:
            first, weight = under, np.zeros(len(under))
        low = max(0, min(int(first[0]), size - 1))
        high = max(low + 1, min(int(first[-1]) + 2, size))
        second = np.clip(first + 1, 0, size - 1) - low
        return np.clip(first, 0, size - 1) - low, second, weight, under, low, high

    def read(self, indexes, window: Window) -> np.ndarray:
        """Band 1 in `window`, shaped (1, rows, cols) as rasterio's `read` of a list of bands (`indexes` is [1])."""
        rows, cols = window.toranges()
        row_first, row_second, row_weight, row_under, top, bottom = self.source_span(*rows, self.dataset.height)
        col_first, col_second, col_weight, col_under, left, right = self.source_span(*cols, self.dataset.width)
        spans = row_first, row_second, row_weight, col_first, col_second, col_weight
        # float64, as the warper computes, so that the values are its own bit for bit
        source = self.dataset.read(1, window=Window(left, top, right - left, bottom - top)).astype(np.float64)
        valid = np.isfinite(source)
        if self.nodata is not None:
            valid &= source != self.nodata
        inside_rows, inside_cols = row_under < self.dataset.height, col_under < self.dataset.width
        if valid.all():
            values = self.interpolate(source, *spans)
            if inside_rows.all() and inside_cols.all():
                return values[np.newaxis]
        else:  # weighted by the valid neighbours only
            values = self.interpolate(np.where(valid, source, 0.0), *spans)
            weights = self.interpolate(valid.astype(np.float64), *spans)
            with np.errstate(divide="ignore", invalid="ignore"):
                values /= weights
            values[weights < 1e-5] = np.nan
        centre_valid = np.zeros(values.shape, dtype=bool)
        centre_valid[np.ix_(inside_rows, inside_cols)] = valid[
            np.ix_(row_under[inside_rows] - top, col_under[inside_cols] - left)
        ]
        values[~centre_valid] = np.nan
        return values[np.newaxis]

    @staticmethod
    def interpolate(source, row_first, row_second, row_weight, col_first, col_second, col_weight) -> np.ndarray:
        """Separable linear interpolation: first between source rows, then between source columns."""
        along_rows = source[row_first] * (1 - row_weight)[:, None] + source[row_second] * row_weight[:, None]
        return along_rows[:, col_first] * (1 - col_weight) + along_rows[:, col_second] * col_weight


class Scene:
    """An open raster source (stacked file, per-band folder, SAFE product, STAC Item), read by window on its finest
    grid.

    Files stay open until `close()` (or the end of a `with` block), so reading many windows is cheap.
    Create it with `open_scene`. Attributes: `band_names` (requested), `available_bands` (in the source),
    `missing_bands`, `scene_id`, `files` (the `SourceFiles`), and the grid: `crs`, `transform`, `height`, `width`.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        band_names: Sequence[str] = SENTINEL2_BANDS,
        *,
        file_band_order: Sequence[str] | str | None = None,
        fill_missing: bool = False,
        resampling: str = "bilinear",
        nodata: float | None = None,
        mask: str | os.PathLike | Sequence[int] | MaskSpec | None = None,
        radiometric_correction: bool = True,
    ):
        self.source = os.fspath(source) if is_remote(source) else Path(source)
        self.band_names = canonical_band_list(band_names, "band_names")
        self._resampling = _resampling_method(resampling)
        self._nodata, self._radiometric_correction = nodata, radiometric_correction
        self._mask_spec = parse_mask(mask)
        self._files = contextlib.ExitStack()
        try:
            self.files = describe_source(source)
            self.scene_id = self.files.scene_id
            if self.files.stacked is not None:
                layers = self._open_stacked_file(file_band_order)
            else:
                if file_band_order is not None:
                    raise ValueError(
                        f"file_band_order applies to stacked files only; {self.source} is a folder, whose band "
                        "names come from its file names. Leave file_band_order out."
                    )
                layers = self._open_band_files()
            self.missing_bands = tuple(name for name in self.band_names if name not in self.available_bands)
            self._check_missing(fill_missing)
            self._layers = [
                self._band_layer(position, name, *layers[name])
                for position, name in enumerate(self.band_names)
                if name in layers
            ]
            self._layers_by_reader: dict[object, list[_BandLayer]] = {}
            for layer in self._layers:
                self._layers_by_reader.setdefault(layer.reader, []).append(layer)
            self._mask = self._open_mask()
        except BaseException:
            self._files.close()
            raise

    def _open(self, path: str, what: str) -> rasterio.io.DatasetReader:
        try:
            return self._files.enter_context(rasterio.open(path))
        except RasterioIOError as error:
            if not is_remote(path) and not Path(path).exists():
                raise FileNotFoundError(f"The file of {what} does not exist: {path}.") from None
            raise ValueError(f"Cannot open {path} ({what}): {_first_line(error)}") from None

    def _band_layer(self, position: int, name: str, reader, index: int, nodata) -> _BandLayer:
        offset, gain = 0.0, 1.0
        if self._radiometric_correction:
            offset = self.files.offsets.get(name, 0.0)
            gain = QUANTIFICATION_SCALE / self.files.quantification
        return _BandLayer(position, reader, index, nodata, name, offset, gain)

    def _source_nodata(self, dataset, index: int = 1) -> float | None:
        """`nodata` if given, else the file's, else the product's (0 for SAFE products)."""
        if self._nodata is not None:
            return self._nodata
        file_nodata = dataset.nodatavals[index - 1]
        return self.files.nodata if file_nodata is None else file_nodata

    def _set_grid(self, dataset) -> None:
        self.crs, self.transform = dataset.crs, dataset.transform
        self.height, self.width = dataset.height, dataset.width

    # The openers set the grid and `available_bands`, and return {requested band: (reader, index, nodata)}.
    def _open_stacked_file(self, file_band_order) -> dict[str, tuple]:
        dataset = self._open(self.files.stacked, "the scene")
        self._set_grid(dataset)
        self.available_bands = self._stacked_layer_names(dataset, file_band_order)
        return {
            name: (dataset, index, self._source_nodata(dataset, index))
            for index, name in enumerate(self.available_bands, start=1)
            if name in self.band_names
        }

    def _stacked_layer_names(self, dataset, file_band_order) -> tuple[str, ...]:
        described = None
        if all(dataset.descriptions):
            with contextlib.suppress(ValueError):
                described = canonical_band_list(dataset.descriptions, "the band descriptions")
        if file_band_order is None:
            if described is None:
                raise ValueError(
                    f"{self.source} has {dataset.count} bands without Sentinel-2 band descriptions "
                    f"(descriptions: {list(dataset.descriptions)}), so its band order is unknown. Pass "
                    "file_band_order: a list of band names in file order, or one of the dataset keys "
                    f"{sorted(DATASET_BAND_ORDERS)}."
                )
            return described
        if isinstance(file_band_order, str):
            if file_band_order.lower() not in DATASET_BAND_ORDERS:
                raise ValueError(
                    f"Unknown dataset key {file_band_order!r} for file_band_order; known keys: "
                    f"{sorted(DATASET_BAND_ORDERS)}. Or pass the band names in file order as a list."
                )
            order = DATASET_BAND_ORDERS[file_band_order.lower()]
        else:
            order = canonical_band_list(file_band_order, "file_band_order")
        if len(order) != dataset.count:
            raise ValueError(
                f"file_band_order names {len(order)} bands ({', '.join(order)}) but {self.source} has "
                f"{dataset.count} bands; give one name per band, in file order."
            )
        if described is not None and described != order:
            raise ValueError(
                f"The band descriptions of {self.source} say {', '.join(described)} but file_band_order says "
                f"{', '.join(order)}. Leave file_band_order out to trust the file, or fix its descriptions."
            )
        return order

    def _open_band_files(self) -> dict[str, tuple]:
        wanted_missing = {name: path for name, path in self.files.missing_files.items() if name in self.band_names}
        if wanted_missing:
            name, path = next(iter(wanted_missing.items()))
            raise FileNotFoundError(f"The file of band {name} is missing from {self.source}: {path}.")
        datasets = {name: self._open(path, f"band {name}") for name, path in self.files.band_files.items()}
        for name, dataset in datasets.items():
            if dataset.count != 1:
                raise ValueError(
                    f"{dataset.name} is named as band {name} but has {dataset.count} bands; per-band folders need "
                    "single-band files. Read a stacked file by its own path instead."
                )
        # The finest grid is the one with the most pixels (all bands of a product share one footprint).
        reference = max(datasets.values(), key=lambda dataset: dataset.width * dataset.height)
        self._set_grid(reference)
        self.available_bands = tuple(name for name in ALL_SENTINEL2_BANDS if name in datasets)
        return {
            name: self._on_reference_grid(dataset)
            for name, dataset in datasets.items()
            if name in self.band_names
        }

    def _open_mask(self) -> tuple[object, MaskSpec] | None:
        spec = self._mask_spec
        if spec is None:
            return None
        if spec.path is None and self.files.scl is None:
            raise ValueError(
                f"Masking by SCL classes needs a scene classification, and {self.source} has none (SAFE L2A "
                "products, STAC Items with an scl asset and folders with an SCL file have one). Pass a cloud-mask "
                "file instead."
            )
        path = spec.path or self.files.scl
        dataset = self._open(path, "the mask" if spec.path else "the scene classification (SCL)")
        if dataset.crs == self.crs and dataset.transform.is_rectilinear:
            return _NearestOnGrid(dataset, self.transform), spec
        return self._on_reference_grid(dataset, Resampling.nearest, keep_dtype=True)[0], spec

    def _on_reference_grid(self, dataset, resampling: Resampling | None = None, keep_dtype: bool = False) -> tuple:
        nodata = self._source_nodata(dataset)
        if (dataset.crs, dataset.transform, dataset.shape) == (self.crs, self.transform, (self.height, self.width)):
            return dataset, 1, nodata
        if not keep_dtype:
            upsampled = _UpsampledOnGrid.for_grid(
                dataset, self.crs, self.transform, resampling or self._resampling, nodata
            )
            if upsampled is not None:
                return upsampled, 1, None
        # A warped view onto the finest grid: reading a window of it reads only the matching source pixels (plus
        # the resampling kernel's margin), and marks pixels the band does not cover as NaN (masks: as 0).
        options = {} if keep_dtype else {"dtype": "float32", "nodata": float("nan"), "src_nodata": nodata}
        warped = WarpedVRT(
            dataset,
            crs=self.crs,
            transform=self.transform,
            width=self.width,
            height=self.height,
            resampling=resampling or self._resampling,
            **options,
        )
        return self._files.enter_context(warped), 1, None

    def _check_missing(self, fill_missing: bool) -> None:
        if not self.missing_bands:
            return
        found = ", ".join(self.available_bands)
        if len(self.missing_bands) == len(self.band_names):
            requested = ", ".join(self.band_names)
            raise ValueError(f"None of the requested bands {requested} is in {self.source}; found: {found}.")
        if not fill_missing:
            raise ValueError(
                f"{self.source} lacks the requested bands {', '.join(self.missing_bands)} (found: {found}). "
                "Provide them, request fewer bands, or pass fill_missing=True to get them as NaN "
                "(0 after the image processor's normalisation)."
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def block_cache_bytes(self, rows: int) -> int:
        """Bytes of GDAL block cache that keep each block a read of `rows` grid rows decodes until the reads that
        follow have moved past it (the block rows it spans and one more, in every file), so that reading a scene
        strip by strip decodes each block once."""
        readers = [*self._layers_by_reader, *([self._mask[0]] if self._mask else [])]
        datasets = {getattr(reader, "dataset", reader) for reader in readers}
        datasets |= {dataset.src_dataset for dataset in datasets if isinstance(dataset, WarpedVRT)}
        total = 0
        for dataset in datasets:
            block_rows = dataset.block_shapes[0][0]
            source_rows = math.ceil(rows * abs(self.transform.e / dataset.transform.e)) + 2
            spanned = (math.ceil(source_rows / block_rows) + 1) * block_rows
            total += spanned * dataset.width * dataset.count * np.dtype(dataset.dtypes[0]).itemsize
        return total

    def _checked_window(self, window: Window | None) -> Window:
        if window is None:
            return Window(0, 0, self.width, self.height)
        if not isinstance(window, Window):
            raise TypeError(f"window must be a rasterio.windows.Window, got {type(window).__name__}.")
        values = (window.col_off, window.row_off, window.width, window.height)
        if not all(float(value).is_integer() for value in values):
            raise ValueError(
                f"{window} has fractional offsets or sizes; windows are whole pixels of the finest grid. "
                "Use window.round_offsets().round_lengths()."
            )
        col_off, row_off, width, height = (int(value) for value in values)
        inside = 0 <= col_off and 0 <= row_off and col_off + width <= self.width and row_off + height <= self.height
        if width < 1 or height < 1 or not inside:
            raise ValueError(
                f"{window} is empty or extends beyond the {self.height} x {self.width} (rows x columns) grid "
                f"of {self.source}."
            )
        return Window(col_off, row_off, width, height)

    def read(self, window: Window | None = None) -> RasterBands:
        """Read `window` (pixels of the finest grid; default: the whole scene) of every requested band."""
        window = self._checked_window(window)
        data = np.full((len(self.band_names), window.height, window.width), np.nan, dtype=np.float32)
        invalid = np.zeros((window.height, window.width), dtype=bool)
        for reader, layers in self._layers_by_reader.items():
            # one read per file: the layers of a pixel-interleaved stack share blocks, decoded once for all
            names = ", ".join(layer.band for layer in layers)
            stack = self._read_layer(reader, [layer.index for layer in layers], window, f"bands {names}")
            for layer, values in zip(layers, stack):
                self._add_layer(data, invalid, layer, values)
        if self._mask is not None:
            reader, spec = self._mask
            masked = spec.masked(self._read_layer(reader, None, window, "the mask"))
            data[:, masked] = np.nan
            invalid |= masked
        return RasterBands(
            data=data,
            band_names=self.band_names,
            crs=self.crs,
            transform=self.transform @ rasterio.Affine.translation(window.col_off, window.row_off),
            valid_mask=~invalid,
            missing_bands=self.missing_bands,
        )

    @staticmethod
    def _add_layer(data: np.ndarray, invalid: np.ndarray, layer: _BandLayer, values: np.ndarray) -> None:
        layer_invalid = ~np.isfinite(values)
        if layer.nodata is not None:
            layer_invalid |= values == layer.nodata
        if (layer.offset, layer.gain) == (0.0, 1.0):
            data[layer.output_position] = values
        else:
            data[layer.output_position] = (values.astype(np.float32) + layer.offset) * layer.gain
        data[layer.output_position][layer_invalid] = np.nan
        invalid |= layer_invalid

    def _read_layer(self, reader, index, window: Window, what: str) -> np.ndarray:
        try:
            return reader.read(index, window=window)
        except RasterioIOError as error:
            raise ValueError(f"Cannot read {what} from {reader.name}: {_first_line(error)}") from None

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_scene(source: str | os.PathLike, band_names: Sequence[str] = SENTINEL2_BANDS, **options) -> Scene:
    """Open a stacked GeoTIFF or a per-band folder for repeated windowed reads; use it as a context manager.

    Args (the keyword-only `options` are those of `Scene`, which this returns):
        source: a stacked multi-band GeoTIFF, or a folder of single-band GeoTIFFs named by band.
        band_names: the bands to return, in this order (any spelling `canonical_band_name` accepts).
        file_band_order: for a stacked file without band descriptions: its band names in file order, or a key
            of `DATASET_BAND_ORDERS` such as "eurosat_ms".
        fill_missing: return requested bands the source lacks as NaN (listed in `missing_bands`) instead of
            raising.
        resampling: how coarser bands are resampled onto the finest grid; a `rasterio.enums.Resampling` name.
        nodata: the stored value of invalid pixels, for files that lack (or misstate) a nodata tag; SAFE products
            default to 0.
        mask: pixels to leave out: "scl" (SCL classes `masks.SCL_INVALID`), "scl:3,8,9" or a list of SCL classes,
            or the path of a cloud-mask raster (masked where not 0).
        radiometric_correction: apply the product's offset and quantification value so that values are
            reflectance x 10000 (what the published checkpoints expect); False returns the stored values.
    """
    return Scene(source, band_names, **options)


def read_bands(
    source: str | os.PathLike,
    band_names: Sequence[str] = SENTINEL2_BANDS,
    *,
    window: Window | None = None,
    file_band_order: Sequence[str] | str | None = None,
    fill_missing: bool = False,
    resampling: str = "bilinear",
    **options,
) -> RasterBands:
    """Read the requested bands of a stacked GeoTIFF or per-band folder, optionally only a window.

    See `open_scene` for the arguments (`options`: nodata, mask, radiometric_correction); `window` is in pixels of
    the finest (10 m) grid. To read many windows of one scene, use `open_scene` once and call `Scene.read(window)`.
    """
    with open_scene(
        source, band_names, file_band_order=file_band_order, fill_missing=fill_missing, resampling=resampling,
        **options,
    ) as scene:  # fmt: skip
        return scene.read(window)
