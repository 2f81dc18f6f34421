# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Prepared shards: images decoded once from GeoTIFFs (or the dataset loaders) into Arrow or Parquet files that
training reads without GeoTIFF decoding.

A prepared folder holds `shard-00000.arrow` (or `.parquet`), ... and `index.json`. One row per sample:

* `bands`: the raw pixels (C, H, W), C-ordered bytes of `dtype` ("uint16": integer digital numbers, 0 = nodata,
  which is Sentinel-2's nodata value; "float16": NaN = nodata), bands in the order `band_names`;
* `height`, `width`: int32;
* `source`: where the sample came from (file or folder);
* `crs` (text, e.g. "EPSG:32633") and `transform` (the 6 affine coefficients a, b, c, d, e, f), when known;
* `labels`: the loader's image-level labels, when there are some (EuroSAT's class id, BigEarthNet's multi-hot
  vector);
* `label_mask`: a per-pixel label (H, W), C-ordered bytes of `label_mask_dtype` ("uint8"): SegMunich's class ids,
  OSCD's change map (1 = change);
* `bands_2`: the second date (C, H, W), as `bands`: OSCD's date pairs;
* further columns a loader keeps (OSCD: `city`).

`index.json` holds `band_names`, `dtype`, `file_format`, `num_samples`, each shard's file and sample count, and
for a loader its name, the settings its samples depend on (`loader_options`, e.g. OSCD's patch size and stride)
and what fine-tuning needs beyond the rows (`change_pixels`: OSCD's changed and total pixels per whole city).
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
LABEL_MASK_DTYPE = "uint8"


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
        return raster_record(source, geo.read_bands(source, self.band_names, file_band_order=order))


def raster_record(source: str, bands, **columns) -> dict:
    """A record of `bands` (a geo.RasterBands) read from `source`, with further `columns`."""
    return {"source": source, "bands": bands.data, "crs": bands.crs, "transform": bands.transform, **columns}


class LoaderRecords:
    """The samples of a dataset loader: each stored row of its `dataset` read by `read_row` (the loader's reading
    of the raw bands and labels), bands in the order `band_names`; `index_fields` go into the index."""

    def __init__(self, dataset, read_row, band_names: Sequence[str], index_fields: dict | None = None):
        self.rows, self.read_row, self.band_names = dataset.with_format(None).to_list(), read_row, list(band_names)
        self.index_fields = index_fields or {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.read_row(self.rows[index])


def read_classification_row(row: dict, file_band_order) -> dict:
    bands = geo.read_bands(row["source"], SENTINEL2_BANDS, file_band_order=file_band_order)
    return raster_record(row["source"], bands, labels=row["labels"])


def read_segmunich_row(row: dict) -> dict:
    from .segmunich import read_segmunich_example

    bands, labels = read_segmunich_example(row)
    return raster_record(row["image_path"], bands, label_mask=labels)


def read_oscd_row(row: dict, patch_size: int) -> dict:
    from .oscd import read_oscd_patch

    first, second, change_map = read_oscd_patch(row, patch_size)
    return raster_record(row["source_1"], first, bands_2=second.data, label_mask=change_map, city=row["city"])


def source_records(
    rasters: Sequence[str] = (), loader: str | None = None, root: str | None = None, split: str | None = None,
    file_band_order: str | None = None, band_names: Sequence[str] = SENTINEL2_BANDS,
) -> RasterRecords | LoaderRecords:
    """The records of GeoTIFF locations (`find_raster_samples`: files, folders, globs; stacked files without band
    descriptions need `file_band_order`, a key of geo.DATASET_BAND_ORDERS or comma-separated names), read as
    `band_names`, or of the dataset loader `loader` over `root` (`loader_records`)."""
    if bool(rasters) == (loader is not None):
        raise ValueError("Give exactly one of rasters and a dataset loader.")
    if loader is not None:
        if root is None:
            raise ValueError(f"The {loader} loader needs the dataset's root folder.")
        return loader_records(loader, root, split)
    order = file_band_order
    if order is not None and order.lower() not in geo.DATASET_BAND_ORDERS:
        order = [name.strip() for name in order.split(",")]
    return RasterRecords(find_raster_samples(list(rasters)), band_names, order)


LOADERS = ("eurosat", "bigearthnet", "segmunich", "oscd")


def loader_records(name: str, root: str, split: str | None = None, **loader_options) -> LoaderRecords:
    """The records of the dataset loader `name` (one of `LOADERS`) over `root`, its `split` (None: every file of
    EuroSAT or BigEarthNet), with the loader's `loader_options` (OSCD: `patch_size`, `stride`).

    The bands are those the loader reads: SpectralGPT's 12 (EuroSAT's B10 dropped), or SegMunich's 10
    (`SEGMUNICH_BANDS`; its image processor appends the band-mean channels when the shards are read)."""
    from . import EUROSAT_BANDS, SEGMUNICH_BANDS, load_bigearthnet, load_eurosat, load_oscd, load_segmunich
    from .oscd import OSCD_PATCH_SIZE, OSCD_STRIDE, oscd_change_pixels

    if name not in LOADERS:
        raise ValueError(f"prepare reads the loaders {', '.join(LOADERS)}, not {name!r}.")
    if name in ("segmunich", "oscd") and split is None:
        raise ValueError(f"The {name} loader needs a split (train or test): prepare each split into its own folder.")
    if name in ("eurosat", "bigearthnet"):
        load, order = (load_eurosat, EUROSAT_BANDS) if name == "eurosat" else (load_bigearthnet, None)
        read_row = functools.partial(read_classification_row, file_band_order=order)
        return LoaderRecords(load(root, split, **loader_options), read_row, SENTINEL2_BANDS, {"loader": name})
    if name == "segmunich":
        dataset = load_segmunich(root, split, **loader_options)
        return LoaderRecords(dataset, read_segmunich_row, SEGMUNICH_BANDS, {"loader": name})
    options = {"patch_size": OSCD_PATCH_SIZE, "stride": OSCD_STRIDE, **loader_options}
    dataset = load_oscd(root, split, **options)
    fields = {"loader": name, "loader_options": options, "change_pixels": oscd_change_pixels(dataset)}
    return LoaderRecords(dataset, functools.partial(read_oscd_row, patch_size=options["patch_size"]),
                         SENTINEL2_BANDS, fields)  # fmt: skip


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


def encode_label_mask(mask: np.ndarray, shape: tuple[int, ...], source: str) -> bytes:
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"The label mask of {source} is {mask.shape} but its bands are {shape}; they must match.")
    if mask.size and (mask.min() < 0 or mask.max() > np.iinfo(LABEL_MASK_DTYPE).max):
        raise ValueError(f"The label mask of {source} holds ids outside 0..255, which uint8 label masks cannot hold.")
    return mask.astype(LABEL_MASK_DTYPE).tobytes()


def encode_record(record: dict, dtype: str) -> dict:
    """The row of `record`: pixels as bytes, georeferencing as text and numbers, other columns as they are."""
    bands, source = record["bands"], str(record["source"])
    crs, transform = record.get("crs"), record.get("transform")
    row = {"source": source, "bands": encode_bands(bands, dtype, source), "height": bands.shape[1],
           "width": bands.shape[2], "crs": None if crs is None else crs.to_string(),
           "transform": None if transform is None else list(transform)[:6]}  # fmt: skip
    if "bands_2" in record:
        if record["bands_2"].shape != bands.shape:
            raise ValueError(f"The second date of {source} is {record['bands_2'].shape}, its first {bands.shape}.")
        row["bands_2"] = encode_bands(record["bands_2"], dtype, source)
    if "label_mask" in record:
        row["label_mask"] = encode_label_mask(record["label_mask"], bands.shape[1:], source)
    if "labels" in record:
        row["labels"] = np.asarray(record["labels"]).tolist()
    return {**{name: value for name, value in record.items() if name not in row}, **row}


PIXEL_COLUMNS = ("bands", "bands_2", "label_mask")
COLUMN_TYPES = {"source": pa.string(), "bands": pa.binary(), "bands_2": pa.binary(), "label_mask": pa.binary(),
                "height": pa.int32(), "width": pa.int32(), "crs": pa.string(),
                "transform": pa.list_(pa.float64())}  # fmt: skip


def shard_table(records, indices: range, dtype: str) -> pa.Table:
    rows = [encode_record(records[index], dtype) for index in indices]
    return pa.table({name: pa.array([row[name] for row in rows], COLUMN_TYPES.get(name)) for name in rows[0]})


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
    optionally `crs`, `transform`, `labels`, `label_mask`, `bands_2` and further columns; `RasterRecords` or
    `loader_records`, whose `index_fields` go into the index) as shards of `samples_per_shard` samples in
    `output_dir`, then its `index.json`.

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
            "dtype": dtype, "file_format": file_format, **getattr(records, "index_fields", {})}  # fmt: skip
    plan = json.loads(json.dumps(plan))  # as a resumed run reads it back (tuples become lists)
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
    columns = read_schema(shards[0][0], plan["file_format"]).names
    index = {
        "format": "spectralgpt-shards", "version": 1, **plan,
        "nodata": UINT16_NODATA if plan["dtype"] == "uint16" else None,
        "has_labels": "labels" in columns or "label_mask" in columns,
        **({"label_mask_dtype": LABEL_MASK_DTYPE} if "label_mask" in columns else {}),
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

    def _table(self, shard: int) -> pa.Table:
        if shard not in self._tables:
            path = self.files[shard]
            if self.index["file_format"] == "parquet":
                self._tables[shard] = pq.read_table(path, memory_map=True)
            else:
                self._tables[shard] = pa.ipc.open_file(pa.memory_map(path)).read_all()
        return self._tables[shard]

    def _row(self, index: int) -> tuple[pa.Table, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"Sample {index} of a prepared folder of {len(self)}.")
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self._table(shard), index - int(self.starts[shard])

    @property
    def column_names(self) -> list[str]:
        return self._table(0).column_names

    def column(self, name: str) -> list:
        """Column `name` of every sample (a plain column, not pixels)."""
        return [value for shard in range(len(self.files)) for value in self._table(shard)[name].to_pylist()]

    def _pixels(self, table: pa.Table, row: int, column: str = "bands") -> np.ndarray:
        height, width = table["height"][row].as_py(), table["width"][row].as_py()
        data = table[column][row].as_buffer()
        if column == "label_mask":
            return np.frombuffer(data, dtype=self.index["label_mask_dtype"]).reshape(height, width)
        return decode_bands(data, height, width, len(self.band_names), self.index["dtype"])

    def __getitem__(self, index: int) -> np.ndarray:
        return self._pixels(*self._row(index))

    def _float_bands(self, table: pa.Table, row: int, column: str) -> np.ndarray:
        bands = self._pixels(table, row, column).astype(np.float32)
        if self.index["dtype"] == "uint16":
            bands[bands == UINT16_NODATA] = np.nan
        return bands

    def example(self, index: int) -> dict:
        """Sample `index`'s row: `bands` (and `bands_2`) as float32 (NaN where nodata), `label_mask` (H, W) as
        stored, and its other columns."""
        table, row = self._row(index)
        example = {name: table[name][row].as_py() for name in table.column_names if name not in PIXEL_COLUMNS}
        bands = [name for name in ("bands", "bands_2") if name in table.column_names]
        pixels = {name: self._float_bands(table, row, name) for name in bands}
        if "label_mask" in table.column_names:
            pixels["label_mask"] = self._pixels(table, row, "label_mask")
        return {**example, **pixels, "band_names": self.band_names}


class ExampleDecoder:
    """Decodes the `bands` of streamed rows (`datasets.load_dataset(file_format, data_files=images.files,
    streaming=True)`) of a prepared folder."""

    def __init__(self, index: dict):
        self.num_bands, self.dtype = len(index["band_names"]), index["dtype"]

    def __call__(self, example: dict) -> np.ndarray:
        return decode_bands(example["bands"], example["height"], example["width"], self.num_bands, self.dtype)


# --- Fine-tuning from prepared folders ----------------------------------------------------------------------------


def _decode_prepared(example: dict, images: ShardedImages, processor, augmentation) -> dict:
    """A prepared row as its loader decodes it: `pixel_values` (and `pixel_values_2`) normalised by `processor`;
    image-level `labels` augmented with the image (`augmentation(pixel_values)`), per-pixel ones with the images
    (`augmentation(pixel_values, [pixel_values_2,] labels)`), as the loaders do."""
    import torch

    from .lazy import normalize

    row = images.example(example["index"])
    inputs = {"pixel_values": normalize(processor, row["bands"])}
    if "bands_2" in row:
        inputs["pixel_values_2"] = normalize(processor, row["bands_2"])
    if "label_mask" not in row:
        if augmentation is not None:
            inputs["pixel_values"] = augmentation(inputs["pixel_values"])
        return {**inputs, "labels": torch.as_tensor(example["labels"])}
    inputs["labels"] = torch.from_numpy(row["label_mask"].astype(np.int64))
    return inputs if augmentation is None else dict(zip(inputs, augmentation(*inputs.values())))


def load_prepared(root: str | os.PathLike, split: str | None = None, *, preset, image_processor=None,
                  augmentation=None, **loader_options):  # fmt: skip
    """A prepared folder with labels (`prepare` of a loader's split into `root/<split>`, or `root` for
    split=None) as the loader returns it: a lazily decoded dataset with `pixel_values` (and OSCD's
    `pixel_values_2`) normalised by `image_processor` (default: the loader's `preset`, as the loader chooses it)
    and `labels`. `loader_options` (OSCD's `patch_size`, `stride`) must be those the folder was prepared with."""
    from datasets import Dataset

    from .lazy import DecodeExamples, recipe_processor

    folder = Path(root) if split is None else Path(root) / split
    images = ShardedImages(folder)
    index = images.index
    if not index["has_labels"]:
        raise ValueError(f"{folder} holds no labels: prepare it from a dataset loader (--loader) for fine-tuning.")
    prepared_options = index.get("loader_options", {})
    differing = {name: value for name, value in loader_options.items() if prepared_options.get(name) != value}
    if differing:
        raise ValueError(
            f"{folder} was prepared with {prepared_options}, not {differing}: train with the prepared settings, or "
            "prepare the split again with these."
        )
    columns = {"index": list(range(len(images)))}
    if "label_mask" not in images.column_names:
        columns["labels"] = images.column("labels")
    if "change_pixels" in index:  # OSCD: the class weights come from the cities' whole change maps
        columns["city"] = images.column("city")
        columns["city_changed_pixels"] = [index["change_pixels"][city][0] for city in columns["city"]]
        columns["city_pixels"] = [index["change_pixels"][city][1] for city in columns["city"]]
    dataset = Dataset.from_dict(columns)
    processor = recipe_processor(image_processor, preset, augmentation)
    decode = functools.partial(_decode_prepared, images=images, processor=processor, augmentation=augmentation)
    dataset.set_transform(DecodeExamples(decode))
    return dataset
