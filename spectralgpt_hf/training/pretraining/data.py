# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The training samples of pretraining: GeoTIFF discovery, `datasets` inputs, the per-epoch batch sampler, and each
sample's normalisation, augmentation and mask noise, drawn from seeds derived from (seed, epoch, sample index) so
that they do not depend on the number of processes or data workers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from datasets.distributed import split_dataset_by_node

from ... import geo
from ...configuration_spectralgpt import SpectralGPTConfig
from ...data import RandomResizedCropAndFlip
from ...data.raster_samples import find_raster_samples
from ...data.resized_crops import resized_crop, resized_crops
from ...data.shards import ExampleDecoder, ShardedImages, is_prepared
from ...image_processing_spectralgpt import SpectralGPTImageProcessor
from .arguments import PretrainingArguments
from .checkpoints import ignore_stop_signals


def derived_seed(*values: int) -> int:
    """A 64-bit seed mixing `values` (non-negative integers); neighbouring values give unrelated seeds."""
    return int(np.random.SeedSequence(values).generate_state(1, dtype=np.uint64)[0])


def pretraining_image_processor(config: SpectralGPTConfig) -> SpectralGPTImageProcessor:
    """The per-image per-band min-max normalisation of the model's bands, saved with the final model."""
    return SpectralGPTImageProcessor.for_pretraining(band_names=config.band_names, num_bands=config.num_bands)


class SamplePreparation:
    """Turns one raw image (bands, H, W) into a training sample: per-image per-band min-max, random resized crop
    and flip (`RandomResizedCropAndFlip`'s draws), and the mask noise, all random draws coming from seeds derived
    from (seed, *key).

    The crop is computed as `spectralgpt_hf.data.resized_crops` does it: the same bicubic resize as the image
    processor's, as two small matrix products over the crop, normalised afterwards. Images may be float (NaN:
    nodata) or uint16 (0: nodata, as in prepared shards); the same pixel values give the same sample either way.
    `draw(key)` gives the random draws alone, for the batched variant (`resized_crops` on the device).
    """

    def __init__(self, config: SpectralGPTConfig, seed: int):
        self.normalization = pretraining_image_processor(config)
        self.augmentation = RandomResizedCropAndFlip(config.image_size, scale=(0.2, 1.0))
        self.image_size = config.image_size
        self.num_tokens = config.num_tokens
        self.seed = seed

    @property
    def epsilon(self) -> float:
        return self.normalization.min_max_epsilon

    def check(self, image: np.ndarray) -> None:
        if np.ndim(image) != 3 or len(image) != self.normalization.num_bands:
            raise ValueError(
                f"Training images must be arrays of shape ({self.normalization.num_bands}, height, width), bands in "
                f"the order {self.normalization.band_names}; got one of shape {np.shape(image)}."
            )

    def draw(self, height: int, width: int, key: tuple[int, ...]) -> tuple[tuple[int, int, int, int], bool, torch.Tensor]:
        """The crop box (top, left, height, width), the flip and the mask noise of the sample `key`."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, 0, *key))
        box = self.augmentation._crop_box(height, width, generator=generator)
        flip = float(torch.rand((), generator=generator)) < self.augmentation.flip_probability
        noise_generator = torch.Generator().manual_seed(derived_seed(self.seed, 1, *key))
        return box, flip, torch.rand(self.num_tokens, generator=noise_generator)

    def prepared(self, image: np.ndarray, key: tuple[int, ...]):
        """The checked image (uint16 kept, anything else as float32) and the draws of the sample `key`."""
        self.check(image)
        image = np.asarray(image)
        if image.dtype != np.uint16:
            image = image.astype(np.float32, copy=False)
        return (image, *self.draw(*image.shape[1:], key))

    def __call__(self, image: np.ndarray, key: tuple[int, ...]) -> dict[str, torch.Tensor]:
        image, box, flip, noise = self.prepared(image, key)
        pixel_values = resized_crop(image, box, flip, self.image_size, self.epsilon)
        return {"pixel_values": pixel_values, "noise": noise}


class RawSamplePreparation(SamplePreparation):
    """The batched variant's per-sample part: the raw image (uint16 or float) with its crop box, flip and noise;
    `augment_batch` then makes the pixel values of a whole batch where it lies (on the accelerator)."""

    def __call__(self, image: np.ndarray, key: tuple[int, ...]) -> dict[str, torch.Tensor]:
        image, box, flip, noise = self.prepared(image, key)
        return {"raw_pixels": torch.from_numpy(np.ascontiguousarray(image)), "crop_boxes": torch.tensor(box),
                "flips": torch.tensor(flip), "noise": noise}  # fmt: skip

    def augment_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pixel_values = resized_crops(
            batch["raw_pixels"], batch["crop_boxes"], batch["flips"], self.image_size, self.epsilon
        )
        return {"pixel_values": pixel_values, "noise": batch["noise"]}


class RasterImages:
    """Raw images of GeoTIFF samples, bands read by name in the model's band order (NaN where invalid)."""

    def __init__(self, sources: list[str], band_names: list[str], file_band_order: str | list[str] | None):
        self.sources, self.band_names, self.file_band_order = sources, band_names, file_band_order

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> np.ndarray:
        source = self.sources[index]
        # Per-band folders name their bands in file names; only stacked files may need a layer order.
        order = self.file_band_order if Path(source).is_file() else None
        return geo.read_bands(source, self.band_names, file_band_order=order).data


class ColumnImages:
    """Raw images of one column of a map-style `datasets.Dataset`."""

    def __init__(self, dataset: datasets.Dataset, column: str):
        self.dataset = dataset.with_format("numpy", columns=[column])
        self.column = column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.dataset[index][self.column]


class PretrainingSamples(torch.utils.data.Dataset):
    """Map-style training samples, indexed by (epoch, index) keys."""

    def __init__(self, images: RasterImages | ColumnImages | ShardedImages, prepare: SamplePreparation):
        self.images, self.prepare = images, prepare

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return self.prepare(self.images[key[1]], key)


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields the global batch of each forward pass as (epoch, index) keys: a permutation of the samples seeded by
    (seed, epoch), cut into `batch_size` pieces, and only whole optimiser steps (`gradient_accumulation_steps`
    batches); the rest of the epoch is dropped. Accelerate (`split_batches=True`) hands each process its slice of
    every batch.

    The epoch is an attribute, not a `set_epoch` method, because Accelerate's data loaders call `set_epoch` with
    their own iteration counter, which restarts when batches are skipped on resume.
    """

    def __init__(self, num_samples: int, batch_size: int, gradient_accumulation_steps: int, seed: int):
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.gradient_accumulation_steps = gradient_accumulation_steps
        step_size = batch_size * gradient_accumulation_steps
        self.num_batches = num_samples // step_size * gradient_accumulation_steps
        self.drop_last = True
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        order = torch.randperm(self.num_samples, generator=generator)
        for start in range(0, self.num_batches * self.batch_size, self.batch_size):
            yield [(self.epoch, index) for index in order[start : start + self.batch_size].tolist()]


class StreamingPretrainingSamples(torch.utils.data.IterableDataset):
    """Training samples of this process's part of a streamed dataset. A sample's randomness comes from (epoch,
    process, data worker, position in that worker's stream): a resumed run replays it exactly, but unlike indexed
    data it depends on the process and worker counts, which decide how the stream is split anyway."""

    def __init__(
        self, stream: datasets.IterableDataset, column: str, prepare: SamplePreparation, process_index: int,
        decode=None,
    ):  # fmt: skip
        self.stream, self.column, self.prepare, self.process_index = stream, column, prepare, process_index
        self.decode = decode or (lambda example: example[column])  # prepared shards: ExampleDecoder
        self.epoch = 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = torch.utils.data.get_worker_info()
        worker_index = 0 if worker is None else worker.id
        self.stream.set_epoch(self.epoch)  # reshuffles shards and buffer with seed + epoch
        for position, example in enumerate(self.stream):
            yield self.prepare(self.decode(example), (self.epoch, self.process_index, worker_index, position))


def load_image_dataset(args: PretrainingArguments) -> datasets.Dataset | datasets.IterableDataset:
    path = Path(args.dataset)
    if is_prepared(path):  # streamed; indexed prepared folders are read by ShardedImages
        shards = ShardedImages(path)
        return datasets.load_dataset(shards.index["file_format"], data_files=shards.files, split="train",
                                     streaming=True)  # fmt: skip
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        dataset = datasets.load_from_disk(str(path))
        if isinstance(dataset, datasets.DatasetDict):
            if args.dataset_split not in dataset:
                raise ValueError(f"{path} has the splits {list(dataset)}, not {args.dataset_split!r}; pick one with "
                                 "--dataset_split.")  # fmt: skip
            dataset = dataset[args.dataset_split]
        # Contiguous shards, so that processes and data workers can each take whole ones.
        return dataset.to_iterable_dataset(num_shards=min(len(dataset), 64)) if args.streaming else dataset
    if args.dataset.endswith(".parquet") or (path.is_dir() and any(path.glob("*.parquet"))):
        data_files = str(path / "*.parquet") if path.is_dir() else args.dataset
        return datasets.load_dataset("parquet", data_files=data_files, split="train", streaming=args.streaming)
    if path.exists():
        raise ValueError(
            f"{path} is neither a save_to_disk folder (state.json / dataset_dict.json) nor Parquet data. For GeoTIFFs "
            "use --rasters."
        )
    return datasets.load_dataset(args.dataset, split=args.dataset_split, streaming=args.streaming)


@dataclass
class TrainingData:
    dataloader: torch.utils.data.DataLoader
    samples: PretrainingSamples | StreamingPretrainingSamples
    batch_sampler: EpochBatchSampler | None  # None for a stream
    num_samples: int | None  # None for a stream
    prepare: SamplePreparation

    def on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch the model takes, from a batch on the device: with `--augment_on_device`, crops made there."""
        return self.prepare.augment_batch(batch) if isinstance(self.prepare, RawSamplePreparation) else batch

    @property
    def is_streaming(self) -> bool:
        return self.batch_sampler is None

    @property
    def steps_per_epoch(self) -> int | None:
        """Optimiser steps of an epoch; None for a stream, whose length is unknown."""
        if self.is_streaming:
            return None
        return len(self.batch_sampler) // self.batch_sampler.gradient_accumulation_steps

    def start_epoch(self, epoch: int) -> None:
        (self.samples if self.is_streaming else self.batch_sampler).epoch = epoch


def build_training_data(
    args: PretrainingArguments, config: SpectralGPTConfig, accelerator: Accelerator
) -> TrainingData:
    """The samples and data loader of `--rasters` or `--dataset`, indexed or (`--streaming`) streamed."""
    prepare = (RawSamplePreparation if args.augment_on_device else SamplePreparation)(config, args.seed)
    if args.streaming:
        return streamed_data(args, prepare, accelerator)
    if args.rasters:
        images = raster_images(args, config)
    elif is_prepared(args.dataset):
        images = prepared_images(args, config)
    else:
        images = column_images(args, accelerator)
    return indexed_data(images, prepare, args, accelerator.num_processes)


def loader_options(args: PretrainingArguments, persistent: bool = True) -> dict:
    """Worker processes, pinned memory where batches go to a CUDA device, prefetching, and (indexed data only:
    a stream's epoch is set on its dataset, which persistent workers would not see) workers kept across epochs."""
    workers = args.dataloader_num_workers
    options = {"num_workers": workers, "pin_memory": args.dataloader_pin_memory and torch.cuda.is_available(),
               "worker_init_fn": ignore_stop_signals}  # fmt: skip
    if workers > 0:
        options.update(prefetch_factor=args.dataloader_prefetch_factor,
                       persistent_workers=persistent and args.dataloader_persistent_workers)  # fmt: skip
    return options


def raster_images(args: PretrainingArguments, config: SpectralGPTConfig) -> RasterImages:
    if config.band_names is None:
        raise ValueError("Reading GeoTIFFs by band name needs the model config's band_names.")
    order = args.file_band_order
    if order is not None and order.lower() not in geo.DATASET_BAND_ORDERS:
        order = [name.strip() for name in order.split(",")]
    return RasterImages(find_raster_samples(args.rasters), config.band_names, order)


def prepared_images(args: PretrainingArguments, config: SpectralGPTConfig) -> ShardedImages:
    images = ShardedImages(args.dataset)
    if config.band_names is not None and list(images.band_names) != list(config.band_names):
        raise ValueError(f"{args.dataset} holds the bands {images.band_names}, but the model takes "
                         f"{list(config.band_names)}; prepare it with the model's band order.")  # fmt: skip
    return images


def column_images(args: PretrainingArguments, accelerator: Accelerator) -> ColumnImages:
    with accelerator.main_process_first():
        dataset = load_image_dataset(args)
    if args.image_column not in dataset.column_names:
        raise ValueError(f"{args.dataset} has no column {args.image_column!r}; its columns are "
                         f"{dataset.column_names}. Name the image column with --image_column.")  # fmt: skip
    return ColumnImages(dataset, args.image_column)


def indexed_data(
    images: RasterImages | ColumnImages | ShardedImages, prepare: SamplePreparation, args: PretrainingArguments, num_processes: int
) -> TrainingData:
    batch_size = args.per_device_batch_size * num_processes
    batch_sampler = EpochBatchSampler(len(images), batch_size, args.gradient_accumulation_steps, args.seed)
    if len(batch_sampler) == 0:
        raise ValueError(
            f"{len(images)} samples are fewer than one optimiser step takes ({batch_size} per forward pass x "
            f"{args.gradient_accumulation_steps} accumulation steps); lower --per_device_batch_size or "
            "--gradient_accumulation_steps, or add data."
        )
    samples = PretrainingSamples(images, prepare)
    dataloader = torch.utils.data.DataLoader(samples, batch_sampler=batch_sampler, **loader_options(args))
    return TrainingData(dataloader, samples, batch_sampler, num_samples=len(images), prepare=prepare)


def streamed_data(args: PretrainingArguments, prepare: SamplePreparation, accelerator: Accelerator) -> TrainingData:
    with accelerator.main_process_first():
        dataset = load_image_dataset(args)
    if is_prepared(args.dataset):
        decode = ExampleDecoder(ShardedImages(args.dataset).index)
        stream = dataset.select_columns(["bands", "height", "width"])
    else:
        stream, decode = dataset.select_columns([args.image_column]).with_format("numpy"), None
    stream = stream.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer_size)
    stream = split_dataset_by_node(stream, accelerator.process_index, accelerator.num_processes)
    samples = StreamingPretrainingSamples(stream, args.image_column, prepare, accelerator.process_index, decode)
    options = loader_options(args, persistent=False)
    dataloader = torch.utils.data.DataLoader(samples, batch_size=args.per_device_batch_size, **options)
    return TrainingData(dataloader, samples, batch_sampler=None, num_samples=None, prepare=prepare)
