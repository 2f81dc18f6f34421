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

Invalid pixels (the file's nodata value, NaN, or a pixel of the 10 m grid that a coarser band's footprint does not
cover) are NaN in `RasterBands.data` and False in `RasterBands.valid_mask`. `SpectralGPTImageProcessor` turns NaN
into 0 after normalisation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..configuration_spectralgpt import SENTINEL2_BANDS
from .bands import (
    ALL_SENTINEL2_BANDS,
    DATASET_BAND_ORDERS,
    band_name_from_filename,
    canonical_band_list,
)


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
    """Where one requested band is read from: layer `index` of `reader`, with the reader's nodata value."""

    output_position: int
    reader: rasterio.io.DatasetReader | WarpedVRT
    index: int
    nodata: float | None


class Scene:
    """An open raster source (stacked file or per-band folder), read by window on its finest grid.

    Files stay open until `close()` (or the end of a `with` block), so reading many windows is cheap.
    Create it with `open_scene`. Attributes: `band_names` (requested), `available_bands` (in the source),
    `missing_bands`, and the grid: `crs`, `transform`, `height`, `width`.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        band_names: Sequence[str] = SENTINEL2_BANDS,
        *,
        file_band_order: Sequence[str] | str | None = None,
        fill_missing: bool = False,
        resampling: str = "bilinear",
    ):
        self.source = Path(source)
        self.band_names = canonical_band_list(band_names, "band_names")
        self._resampling = _resampling_method(resampling)
        self._files = contextlib.ExitStack()
        try:
            if self.source.is_dir():
                if file_band_order is not None:
                    raise ValueError(
                        f"file_band_order applies to stacked files only; {self.source} is a folder, whose band "
                        "names come from its file names. Leave file_band_order out."
                    )
                layers = self._open_folder()
            elif self.source.is_file():
                layers = self._open_stacked_file(file_band_order)
            else:
                raise FileNotFoundError(f"No raster file or folder at {self.source}.")
            self.missing_bands = tuple(name for name in self.band_names if name not in self.available_bands)
            self._check_missing(fill_missing)
            self._layers = [
                _BandLayer(position, *layers[name]) for position, name in enumerate(self.band_names) if name in layers
            ]
        except BaseException:
            self._files.close()
            raise

    def _open(self, path: Path) -> rasterio.io.DatasetReader:
        return self._files.enter_context(rasterio.open(path))

    def _set_grid(self, dataset) -> None:
        self.crs, self.transform = dataset.crs, dataset.transform
        self.height, self.width = dataset.height, dataset.width

    # The openers set the grid and `available_bands`, and return {requested band: (reader, index, nodata)}.
    def _open_stacked_file(self, file_band_order) -> dict[str, tuple]:
        dataset = self._open(self.source)
        self._set_grid(dataset)
        self.available_bands = self._stacked_layer_names(dataset, file_band_order)
        return {
            name: (dataset, index, dataset.nodatavals[index - 1])
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

    def _open_folder(self) -> dict[str, tuple]:
        band_files: dict[str, list[Path]] = {}
        for path in sorted(self.source.iterdir()):
            name = band_name_from_filename(path)
            if name is not None and path.is_file():
                band_files.setdefault(name, []).append(path)
        if not band_files:
            raise ValueError(
                f"No band files found in {self.source}: expected single-band GeoTIFFs named like B02.tif, B2.tif "
                "or <prefix>_B02.tif."
            )
        ambiguous = {name: paths for name, paths in band_files.items() if len(paths) > 1}
        if ambiguous:
            listing = "; ".join(f"{name}: {', '.join(p.name for p in paths)}" for name, paths in ambiguous.items())
            raise ValueError(f"Several files in {self.source} hold the same band ({listing}). Keep one per band.")

        datasets = {name: self._open(paths[0]) for name, paths in band_files.items()}
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

    def _on_reference_grid(self, dataset) -> tuple:
        if (dataset.crs, dataset.transform, dataset.shape) == (self.crs, self.transform, (self.height, self.width)):
            return dataset, 1, dataset.nodata
        # A warped view onto the finest grid: reading a window of it reads only the matching source pixels (plus
        # the resampling kernel's margin), and marks pixels the band does not cover as NaN.
        warped = WarpedVRT(
            dataset,
            crs=self.crs,
            transform=self.transform,
            width=self.width,
            height=self.height,
            resampling=self._resampling,
            dtype="float32",
            nodata=float("nan"),
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
        for layer in self._layers:
            values = layer.reader.read(layer.index, window=window)
            layer_invalid = ~np.isfinite(values)
            if layer.nodata is not None:
                layer_invalid |= values == layer.nodata
            data[layer.output_position] = values
            data[layer.output_position][layer_invalid] = np.nan
            invalid |= layer_invalid
        return RasterBands(
            data=data,
            band_names=self.band_names,
            crs=self.crs,
            transform=self.transform @ rasterio.Affine.translation(window.col_off, window.row_off),
            valid_mask=~invalid,
            missing_bands=self.missing_bands,
        )

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_scene(
    source: str | os.PathLike,
    band_names: Sequence[str] = SENTINEL2_BANDS,
    *,
    file_band_order: Sequence[str] | str | None = None,
    fill_missing: bool = False,
    resampling: str = "bilinear",
) -> Scene:
    """Open a stacked GeoTIFF or a per-band folder for repeated windowed reads; use it as a context manager.

    Args:
        source: a stacked multi-band GeoTIFF, or a folder of single-band GeoTIFFs named by band.
        band_names: the bands to return, in this order (any spelling `canonical_band_name` accepts).
        file_band_order: for a stacked file without band descriptions: its band names in file order, or a key
            of `DATASET_BAND_ORDERS` such as "eurosat_ms".
        fill_missing: return requested bands the source lacks as NaN (listed in `missing_bands`) instead of
            raising.
        resampling: how coarser bands are resampled onto the finest grid; a `rasterio.enums.Resampling` name.
    """
    return Scene(
        source, band_names, file_band_order=file_band_order, fill_missing=fill_missing, resampling=resampling
    )


def read_bands(
    source: str | os.PathLike,
    band_names: Sequence[str] = SENTINEL2_BANDS,
    *,
    window: Window | None = None,
    file_band_order: Sequence[str] | str | None = None,
    fill_missing: bool = False,
    resampling: str = "bilinear",
) -> RasterBands:
    """Read the requested bands of a stacked GeoTIFF or per-band folder, optionally only a window.

    See `open_scene` for the arguments; `window` is in pixels of the finest (10 m) grid. To read many windows
    of one scene, use `open_scene` once and call `Scene.read(window)`.
    """
    with open_scene(
        source, band_names, file_band_order=file_band_order, fill_missing=fill_missing, resampling=resampling
    ) as scene:
        return scene.read(window)
