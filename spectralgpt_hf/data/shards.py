# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Prepared shards: images decoded once from GeoTIFFs (or the dataset loaders) into Arrow or Parquet files that
training reads without GeoTIFF decoding.

A prepared folder holds `shard-00000.arrow` (or `.parquet`), ... and `index.json`. One row per sample:

* `bands`: the raw pixels (C, H, W), C-ordered bytes of `dtype` ("uint16": integer digital numbers, 0 = nodata,
  which is Sentinel-2's nodata value; "float16": NaN = nodata), bands in the order `band_names`;
* `height`, `width`: int32;
* `source`: where the sample came from (file or folder);
* `crs` (text, e.g. "EPSG:32633") and `transform` (the 6 affine coefficients a, b, c, d, e, f), when known;
* `labels`: the loader's labels, when there are some (EuroSAT's class id, BigEarthNet's multi-hot vector).

`index.json` holds `band_names`, `dtype`, `file_format`, `num_samples` and each shard's file and sample count.
Arrow files (the default) are read memory-mapped, so that any sample is read without reading its neighbours;
Parquet suits object stores and `datasets` streaming. Both load with `datasets.load_dataset("arrow" | "parquet")`.

`prepare` writes the shards in parallel worker processes. Each shard is written to a temporary name and renamed
when complete, so that an interrupted run leaves only whole shards, and a rerun into the same folder keeps them
and writes the rest.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import geo
from ..configuration_spectralgpt import SENTINEL2_BANDS
from .raster_samples import find_raster_samples

INDEX = "index.json"
PLAN = "plan.json"  # the settings of a prepare in progress, checked when it is resumed
PARTIAL_SUFFIX = ".partial"
DTYPES = ("uint16", "float16")
FILE_FORMATS = ("arrow", "parquet")
ROWS_PER_BATCH = 16  # record batches / row groups: the unit a streaming reader fetches
UINT16_NODATA = 0


# --- What is prepared ---------------------------------------------------------------------------------------------


class RasterRecords:
    """The samples of GeoTIFF files, per-band folders or globs (`find_raster_samples`'s), bands read by name."""

    def __init__(self, sources: Sequence[str], band_names: Sequence[str], file_band_order=None):
        self.sources, self.band_names, self.file_band_order = list(sources), list(band_names), file_band_order

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        source = self.sources[index]
        order = self.file_band_order if Path(source).is_file() else None
        bands = geo.read_bands(source, self.band_names, file_band_order=order)
        return {"source": source, "bands": bands.data, "crs": bands.crs, "transform": bands.transform}


class LoaderRecords(RasterRecords):
    """The samples of a dataset loader (`load_eurosat`, `load_bigearthnet`) with their labels: its stored
    `source` and `labels` columns, bands read in the loader's file band order."""

    def __init__(self, dataset, band_names: Sequence[str], file_band_order=None):
        stored = dataset.with_format(None)
        super().__init__(stored["source"], band_names, file_band_order)
        self.labels = stored["labels"]

    def __getitem__(self, index: int) -> dict:
        return {**super().__getitem__(index), "labels": self.labels[index]}


def source_records(
    rasters: Sequence[str] = (), loader: str | None = None, root: str | None = None, split: str | None = None,
    file_band_order: str | None = None, band_names: Sequence[str] = SENTINEL2_BANDS,
) -> RasterRecords:
    """The records of GeoTIFF locations (`find_raster_samples`: files, folders, globs; stacked files without band
    descriptions need `file_band_order`, a key of geo.DATASET_BAND_ORDERS or comma-separated names), or of the
    dataset loader `loader` over `root`."""
    if bool(rasters) == (loader is not None):
        raise ValueError("Give exactly one of rasters and a dataset loader.")
    if loader is not None:
        if root is None:
            raise ValueError(f"The {loader} loader needs the dataset's root folder.")
        return loader_records(loader, root, split, band_names)
    order = file_band_order
    if order is not None and order.lower() not in geo.DATASET_BAND_ORDERS:
        order = [name.strip() for name in order.split(",")]
    return RasterRecords(find_raster_samples(list(rasters)), band_names, order)


def loader_records(name: str, root: str, split: str | None, band_names: Sequence[str]) -> LoaderRecords:
    """The records of the dataset loader `name` ("eurosat" or "bigearthnet") over `root`."""
    from . import EUROSAT_BANDS, load_bigearthnet, load_eurosat

    if name == "eurosat":
        return LoaderRecords(load_eurosat(root, split), band_names, EUROSAT_BANDS)
    if name == "bigearthnet":
        return LoaderRecords(load_bigearthnet(root, split), band_names)
    raise ValueError(
        f"prepare reads the loaders 'eurosat' and 'bigearthnet', not {name!r} (SegMunich's label rasters and OSCD's "
        "date pairs are not prepared yet)."
    )


# --- Writing ------------------------------------------------------------------------------------------------------


def encode_bands(bands: np.ndarray, dtype: str, source: str) -> bytes:
    """The bytes of `bands` as `dtype`. In uint16, NaN becomes 0 and values are rounded to whole numbers: digital
    numbers are whole already, except where geo resampled a coarser band to the finest grid (a change of at most
    0.5, far below the sensor's noise); values outside 0..65535 are refused."""
    bands = np.asarray(bands)
    if dtype == "float16":
        if np.nanmax(np.abs(bands), initial=0) > np.finfo(np.float16).max:
            raise ValueError(f"{source} has values beyond float16's range; prepare it as uint16.")
        return np.ascontiguousarray(bands, dtype=np.float16).tobytes()
    finite = np.isfinite(bands)
    values = bands[finite]
    if values.size and (values.min() < 0 or values.max() >= 65535.5):
        raise ValueError(f"{source} has values outside 0..65535; prepare it as float16.")
    return np.rint(np.where(finite, bands, UINT16_NODATA)).astype(np.uint16).tobytes()


def shard_table(records, indices: range, dtype: str) -> pa.Table:
    columns = {"source": [], "bands": [], "height": [], "width": [], "crs": [], "transform": []}
    labels = []
    for index in indices:
        record = records[index]
        bands = record["bands"]
        columns["source"].append(str(record["source"]))
        columns["bands"].append(encode_bands(bands, dtype, record["source"]))
        columns["height"].append(bands.shape[1])
        columns["width"].append(bands.shape[2])
        crs, transform = record.get("crs"), record.get("transform")
        columns["crs"].append(None if crs is None else crs.to_string())
        columns["transform"].append(None if transform is None else list(transform)[:6])
        if "labels" in record:
            labels.append(np.asarray(record["labels"]).tolist())
    table = pa.table({
        "source": pa.array(columns["source"], pa.string()),
        "bands": pa.array(columns["bands"], pa.binary()),
        "height": pa.array(columns["height"], pa.int32()),
        "width": pa.array(columns["width"], pa.int32()),
        "crs": pa.array(columns["crs"], pa.string()),
        "transform": pa.array(columns["transform"], pa.list_(pa.float64())),
    })  # fmt: skip
    return table.append_column("labels", pa.array(labels)) if labels else table


def write_atomically(table: pa.Table, path: Path, file_format: str) -> None:
    """Writes `table` to a temporary name beside `path`, then renames it: `path` exists only once complete."""
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        if file_format == "parquet":
            pq.write_table(table, partial, row_group_size=ROWS_PER_BATCH, compression="zstd")
        else:
            with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table, max_chunksize=ROWS_PER_BATCH)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def shard_name(number: int, file_format: str) -> str:
    return f"shard-{number:05d}.{file_format}"


@dataclass
class ShardTask:
    records: object
    indices: range
    path: Path
    dtype: str
    file_format: str

    def __call__(self) -> int:
        write_atomically(shard_table(self.records, self.indices, self.dtype), self.path, self.file_format)
        return len(self.indices)


def _run(task: ShardTask) -> int:
    return task()


@dataclass
class PrepareReport:
    output_dir: Path
    num_samples: int
    samples_written: int
    shards_written: int
    shards_kept: int


def prepare(
    records,
    output_dir: str | os.PathLike,
    band_names: Sequence[str],
    *,
    dtype: str = "uint16",
    file_format: str = "arrow",
    samples_per_shard: int = 256,
    num_workers: int = 1,
) -> PrepareReport:
    """
    Writes `records` (a sequence of dicts with `source`, `bands` (C, H, W) in the order `band_names`, and
    optionally `crs`, `transform`, `labels`; `RasterRecords` or `loader_records`) as shards of
    `samples_per_shard` samples in `output_dir`, then its `index.json`.

    Shards already in `output_dir` from an interrupted run of the same settings are kept; a run of other settings
    is refused. 256 samples of 12 x 128 x 128 uint16 make shards of about 100 MB, a size streaming reads well.
    """
    if dtype not in DTYPES or file_format not in FILE_FORMATS:
        raise ValueError(f"dtype must be one of {DTYPES} and file_format one of {FILE_FORMATS}.")
    if samples_per_shard < 1 or len(records) == 0:
        raise ValueError("prepare needs samples and samples_per_shard >= 1.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plan = {"num_samples": len(records), "samples_per_shard": samples_per_shard, "band_names": list(band_names),
            "dtype": dtype, "file_format": file_format}  # fmt: skip
    check_plan(output_dir, plan)
    for stale in output_dir.glob(f"*{PARTIAL_SUFFIX}"):  # left by a killed writer
        stale.unlink()
    starts = range(0, len(records), samples_per_shard)
    shards = [(output_dir / shard_name(number, file_format), range(start, min(start + samples_per_shard, len(records))))
              for number, start in enumerate(starts)]  # fmt: skip
    tasks = [ShardTask(records, indices, path, dtype, file_format) for path, indices in shards if not path.exists()]
    if num_workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(min(num_workers, len(tasks))) as pool:
            list(pool.map(_run, tasks))
    else:
        for task in tasks:
            task()
    write_index(output_dir, plan, shards)
    written = sum(len(task.indices) for task in tasks)
    return PrepareReport(output_dir, len(records), written, len(tasks), len(shards) - len(tasks))


def check_plan(output_dir: Path, plan: dict) -> None:
    path = output_dir / PLAN
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != plan:
            raise ValueError(
                f"{output_dir} holds shards of another prepare ({previous}); prepare into a new folder, or remove it."
            )
    else:
        path.write_text(json.dumps(plan, indent=1))


def write_index(output_dir: Path, plan: dict, shards: list[tuple[Path, range]]) -> None:
    index = {
        "format": "spectralgpt-shards", "version": 1, **plan,
        "nodata": UINT16_NODATA if plan["dtype"] == "uint16" else None,
        "has_labels": "labels" in read_schema(shards[0][0], plan["file_format"]).names,
        "shards": [{"file": path.name, "num_samples": len(indices)} for path, indices in shards],
    }  # fmt: skip
    partial = output_dir / (INDEX + PARTIAL_SUFFIX)
    partial.write_text(json.dumps(index, indent=1))
    os.replace(partial, output_dir / INDEX)


def read_schema(path: Path, file_format: str) -> pa.Schema:
    if file_format == "parquet":
        return pq.read_schema(path)
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).schema


# --- Reading ------------------------------------------------------------------------------------------------------


def is_prepared(path: str | os.PathLike) -> bool:
    return (Path(path) / INDEX).is_file()


def decode_bands(data, height: int, width: int, num_bands: int, dtype: str) -> np.ndarray:
    """The (C, H, W) array of a row's `bands` (bytes or a pyarrow buffer), without copying."""
    return np.frombuffer(data, dtype=dtype).reshape(num_bands, height, width)


class ShardedImages:
    """A prepared folder, indexed: `images[i]` is sample i's bands (C, H, W) as stored (uint16 or float16, read
    from memory-mapped Arrow files without copying), `images.example(i)` the whole row. Workers of a DataLoader
    each open the files themselves."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not is_prepared(self.folder):
            raise FileNotFoundError(f"{self.folder} is not a prepared folder (no {INDEX}); make one with prepare.")
        self.index = json.loads((self.folder / INDEX).read_text())
        self.band_names = self.index["band_names"]
        counts = [shard["num_samples"] for shard in self.index["shards"]]
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self._tables: dict[int, pa.Table] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tables": {}}

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def files(self) -> list[str]:
        return [str(self.folder / shard["file"]) for shard in self.index["shards"]]

    def _row(self, index: int) -> tuple[pa.Table, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"Sample {index} of a prepared folder of {len(self)}.")
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        if shard not in self._tables:
            path = self.files[shard]
            if self.index["file_format"] == "parquet":
                self._tables[shard] = pq.read_table(path, memory_map=True)
            else:
                self._tables[shard] = pa.ipc.open_file(pa.memory_map(path)).read_all()
        return self._tables[shard], index - int(self.starts[shard])

    def __getitem__(self, index: int) -> np.ndarray:
        table, row = self._row(index)
        height, width = table["height"][row].as_py(), table["width"][row].as_py()
        data = table["bands"][row].as_buffer()
        return decode_bands(data, height, width, len(self.band_names), self.index["dtype"])

    def example(self, index: int) -> dict:
        """Sample `index`'s row: `bands` as float32 (NaN where nodata), and its other columns."""
        table, row = self._row(index)
        example = {name: table[name][row].as_py() for name in table.column_names if name != "bands"}
        bands = self[index].astype(np.float32)
        if self.index["dtype"] == "uint16":
            bands[bands == UINT16_NODATA] = np.nan
        return {**example, "bands": bands, "band_names": self.band_names}


class ExampleDecoder:
    """Decodes the `bands` of streamed rows (`datasets.load_dataset(file_format, data_files=images.files,
    streaming=True)`) of a prepared folder."""

    def __init__(self, index: dict):
        self.num_bands, self.dtype = len(index["band_names"]), index["dtype"]

    def __call__(self, example: dict) -> np.ndarray:
        return decode_bands(example["bands"], example["height"], example["width"], self.num_bands, self.dtype)


# --- Fine-tuning from prepared folders ----------------------------------------------------------------------------


def _decode_prepared(example: dict, images: ShardedImages, processor, augmentation) -> dict:
    import torch

    from .lazy import normalize

    pixel_values = normalize(processor, images.example(example["index"])["bands"])
    if augmentation is not None:
        pixel_values = augmentation(pixel_values)
    return {"pixel_values": pixel_values, "labels": torch.as_tensor(example["labels"])}


def load_prepared(root: str | os.PathLike, split: str | None = None, *, preset, image_processor=None,
                  augmentation=None):  # fmt: skip
    """A prepared folder with labels (`prepare` of a loader's split into `root/<split>`, or `root` for
    split=None) as the loaders return it: a lazily decoded dataset with `pixel_values` normalised by
    `image_processor` (default: the loader's `preset`, as the loader chooses it) and `labels`."""
    from datasets import Dataset

    from .lazy import DecodeExamples, recipe_processor

    folder = Path(root) if split is None else Path(root) / split
    images = ShardedImages(folder)
    if not images.index["has_labels"]:
        raise ValueError(f"{folder} holds no labels: prepare it from a dataset loader (--loader) for fine-tuning.")
    labels = [images.example(index)["labels"] for index in range(len(images))]
    dataset = Dataset.from_dict({"index": list(range(len(images))), "labels": labels})
    processor = recipe_processor(image_processor, preset, augmentation)
    decode = functools.partial(_decode_prepared, images=images, processor=processor, augmentation=augmentation)
    dataset.set_transform(DecodeExamples(decode))
    return dataset
