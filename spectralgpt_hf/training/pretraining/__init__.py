# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Masked-autoencoder pretraining of SpectralGPT with Accelerate, following the original recipe (spec sections 5,
10.3, 10.4 and 11): AdamW (0.9, 0.95) with weight decay 0.05 except on norms, biases, position tables and the mask
token, lr = base_learning_rate x global batch / 256, per-step linear warm-up then half-cosine to 0, 90 % masking,
per-image per-band min-max normalisation, random resized crop (scale 0.2-1, bicubic) and horizontal flip.

Run it as `spectralgpt-hf pretrain ...`, `python -m spectralgpt_hf.pretraining ...` or under a launcher:

    accelerate launch --num_processes 8 -m spectralgpt_hf.pretraining --rasters "tiles/**/*.tif" --output_dir run

Reproducibility: each sample's crop, flip and mask noise are drawn from generators seeded by (seed, epoch, sample
index) and the epoch's sample order by (seed, epoch), so results do not depend on the number of processes or data
workers: 1 process x 4 samples and 2 processes x 2 samples give the same step. `--resume` continues a run exactly.

Outputs in `output_dir`: `checkpoints/step-XXXXXX` (Accelerate states, each also a `from_pretrained` folder for
non-sharded runs), `logs/` (trackers) and, at the end, `model/` (`save_pretrained` model and image processor).
Every folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import glob
import itertools
import logging
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.logging import get_logger
from accelerate.utils import (
    ProjectConfiguration,
    is_tensorboard_available,
    send_to_device,
    set_seed,
)
from datasets.distributed import split_dataset_by_node
from tqdm.auto import tqdm
from transformers import HfArgumentParser, get_cosine_schedule_with_warmup

from ... import geo
from ...configuration_spectralgpt import VARIANTS, SpectralGPTConfig
from ...data import RandomResizedCropAndFlip
from ...image_processing_spectralgpt import SpectralGPTImageProcessor
from ...loading import load_model
from ...modeling_spectralgpt import SpectralGPTForPreTraining
from ...utils.allocator import keep_freed_memory_for_reuse
from ...utils.atomic import atomic_folder, replace_folder
from ..optimization import uses_weight_decay

logger = get_logger(__name__)

CHECKPOINT_NAME = re.compile(r"step-(\d+)")
MIXED_PRECISION_CHOICES = ["no", "fp16", "bf16"]


@dataclass
class PretrainingArguments:
    """Options of `pretrain`; on the command line each field is a `--name` flag."""

    output_dir: str = field(metadata={"help": "Folder for checkpoints/, logs/ and the final model/."})

    # Data: exactly one of `rasters` and `dataset`.
    rasters: list[str] = field(
        default_factory=list,
        metadata={
            "help": "GeoTIFF samples: stacked multi-band files, per-band folders (B02.tif, ...), folders to search "
            "for either, or glob patterns of these (quote them; ** searches subfolders). One sample per stacked file "
            "or per-band folder; bands are read by name."
        },
    )
    file_band_order: str | None = field(
        default=None,
        metadata={"help": "Layer order of stacked files without band descriptions: a key of "
                  "geo.DATASET_BAND_ORDERS (e.g. eurosat_ms) or comma-separated band names."},
    )  # fmt: skip
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "A `datasets` dataset: a save_to_disk folder (Arrow), Parquet file(s) (a file, a glob or a "
            "folder of *.parquet) or a dataset id for datasets.load_dataset."
        },
    )
    image_column: str = field(
        default="image", metadata={"help": "Column of `dataset` holding (bands, height, width) arrays."}
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a saved DatasetDict or a dataset id."})
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream `dataset` (an IterableDataset split across processes) instead of indexing it; "
                  "for archives larger than memory. Needs --max_steps and --warmup_steps."},
    )  # fmt: skip
    shuffle_buffer_size: int = field(default=10_000, metadata={"help": "Shuffle buffer of a streamed dataset."})
    dataloader_num_workers: int = field(default=4, metadata={"help": "Data-loading worker processes per process."})

    # Model.
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Continue from a pretraining model: a save_pretrained folder (e.g. a converted SpectralGPT.pth or "
            "a checkpoint of this script) or an original .pth file. With --image_size it continues at another size "
            "(progressive training): spatial position tables are resized bicubically, or re-initialised with "
            "--reinitialize_position_embeddings; everything else is carried over; the optimiser starts afresh."
        },
    )
    variant: str = field(default="base", metadata={"help": f"Model size without --init_from: {', '.join(VARIANTS)}."})
    image_size: int | None = field(
        default=None,
        metadata={"help": "Training image size (default: the model's; 128 for a new model, 96 in stage 1 of the "
                  "original)."},
    )  # fmt: skip
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "SpectralGPTConfig fields for a new model, e.g. 'hidden_size=384,num_hidden_layers=6'."},
    )
    reinitialize_position_embeddings: bool = field(
        default=False,
        metadata={"help": "With --init_from at another image size: new trunc-normal (std initializer_range) spatial "
                  "tables, as stage 2 of the original, instead of resizing them."},
    )  # fmt: skip
    mask_ratio: float = field(default=0.9, metadata={"help": "Share of tokens removed."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute activations to save memory."})

    # Optimisation.
    per_device_batch_size: int = field(default=16, metadata={"help": "Samples per process and forward pass."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Forward passes per optimiser step."})
    base_learning_rate: float = field(
        default=2e-4,
        metadata={"help": "lr = base_learning_rate x global batch / 256, global batch = per_device_batch_size x "
                  "processes x gradient_accumulation_steps (original: 2e-4 in stage 1, 1e-4 in stage 2)."},
    )  # fmt: skip
    learning_rate: float | None = field(default=None, metadata={"help": "Absolute peak lr; overrides the above."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (not on norms, biases, "
                                                                "position tables, mask token)."})  # fmt: skip
    adam_beta1: float = field(default=0.9)
    adam_beta2: float = field(default=0.95)
    num_train_epochs: int = field(default=200, metadata={"help": "Epochs, unless --max_steps is set."})
    max_steps: int = field(default=-1, metadata={"help": "Optimiser steps of the whole run; > 0 overrides epochs."})
    warmup_epochs: float = field(default=20, metadata={"help": "Linear warm-up length in epochs."})
    warmup_steps: int | None = field(default=None, metadata={"help": "Warm-up length in steps; overrides epochs."})
    max_grad_norm: float | None = field(
        default=None, metadata={"help": "Clip the gradient norm to this (none in the original)."}
    )
    mixed_precision: str | None = field(
        default=None,
        metadata={"help": "no, fp16 (the original) or bf16; default: the accelerate config's.",
                  "choices": MIXED_PRECISION_CHOICES},
    )  # fmt: skip
    seed: int = field(default=0, metadata={"help": "Seed of the initial weights, sample order and augmentation."})

    # Checkpoints and logging.
    save_steps: int = field(default=1000, metadata={"help": "Checkpoint every this many optimiser steps."})
    save_total_limit: int = field(default=3, metadata={"help": "Checkpoints kept (the newest)."})
    resume: str | None = field(
        default=None,
        metadata={"help": "Continue from the latest checkpoint of output_dir (flag alone) or from a checkpoint "
                  "folder.", "nargs": "?", "const": "latest"},
    )  # fmt: skip
    logging_steps: int = field(default=10, metadata={"help": "Log loss, lr and images/s every this many steps."})
    report_to: str = field(
        default="tensorboard",
        metadata={"help": "Comma-separated Accelerate trackers (tensorboard, wandb, ...), 'all' or 'none'."},
    )
    run_name: str = field(default="spectralgpt-pretraining", metadata={"help": "Tracker run name."})

    def __post_init__(self):
        if bool(self.rasters) == bool(self.dataset):
            raise ValueError("Give the training data with exactly one of --rasters (GeoTIFFs) and --dataset.")
        if self.streaming and not self.dataset:
            raise ValueError("--streaming applies to --dataset; raster samples are always indexed.")
        if self.streaming and (self.max_steps <= 0 or self.warmup_steps is None):
            raise ValueError(
                "A streamed dataset has no known length: give the run's length with --max_steps and the warm-up "
                "with --warmup_steps."
            )
        if self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}.")
        positive = ("per_device_batch_size", "gradient_accumulation_steps", "num_train_epochs", "save_steps",
                    "save_total_limit", "logging_steps", "shuffle_buffer_size")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"--mask_ratio must be in (0, 1), got {self.mask_ratio}.")
        if self.init_from is None and self.reinitialize_position_embeddings:
            raise ValueError("--reinitialize_position_embeddings applies to a model continued with --init_from.")
        if self.init_from is not None and self.config_overrides:
            raise ValueError(
                "--config_overrides shapes a new model; a model continued with --init_from keeps its architecture "
                "(only --image_size may change)."
            )
        if self.variant not in VARIANTS:
            raise ValueError(f"Unknown --variant {self.variant!r}; choose one of {', '.join(VARIANTS)}.")


# --- Per-sample randomness ---------------------------------------------------------------------------------------


def derived_seed(*values: int) -> int:
    """A 64-bit seed mixing `values` (non-negative integers); neighbouring values give unrelated seeds."""
    return int(np.random.SeedSequence(values).generate_state(1, dtype=np.uint64)[0])


class SamplePreparation:
    """Turns one raw image (bands, H, W) into a training sample: per-image per-band min-max, random resized crop
    and flip, and the mask noise, all random draws coming from seeds derived from (seed, *key)."""

    def __init__(self, config: SpectralGPTConfig, seed: int):
        self.normalization = SpectralGPTImageProcessor.for_pretraining(
            band_names=config.band_names, num_bands=config.num_bands
        )
        self.augmentation = RandomResizedCropAndFlip(config.image_size, scale=(0.2, 1.0))
        self.num_tokens = config.num_tokens
        self.seed = seed

    def __call__(self, image: np.ndarray, key: tuple[int, ...]) -> dict[str, torch.Tensor]:
        if np.ndim(image) != 3 or len(image) != self.normalization.num_bands:
            raise ValueError(
                f"Training images must be arrays of shape ({self.normalization.num_bands}, height, width), bands in "
                f"the order {self.normalization.band_names}; got one of shape {np.shape(image)}."
            )
        pixel_values = self.normalization(image, return_tensors="pt")["pixel_values"][0]
        # The augmentation draws from torch's global generator (seed=None); it is forked so that only this sample's
        # seed decides the draws, and the caller's random state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derived_seed(self.seed, 0, *key))
            pixel_values = self.augmentation(pixel_values)
        generator = torch.Generator().manual_seed(derived_seed(self.seed, 1, *key))
        return {"pixel_values": pixel_values, "noise": torch.rand(self.num_tokens, generator=generator)}


# --- Data ----------------------------------------------------------------------------------------------------------


def is_raster(path: Path) -> bool:
    return path.suffix.lower() in geo.RASTER_SUFFIXES and path.is_file()


def find_raster_samples(locations: list[str]) -> list[str]:
    """The samples of `--rasters`, in a fixed order: every GeoTIFF in the given files, folders (searched with their
    subfolders) and glob patterns, where a folder holding band-named files (B02.tif, x_B8A.tif) is one per-band
    sample, its other files (cloud masks, ...) ignored, and any other GeoTIFF is a stacked sample."""
    files = []
    for location in locations:
        is_pattern = re.search(r"[*?[]", location) is not None
        matches = sorted(map(Path, glob.glob(location, recursive=True))) if is_pattern else [Path(location)]
        if not matches:
            raise FileNotFoundError(f"No file or folder matches the pattern {location!r}.")
        for path in matches:
            if path.is_dir():
                files.extend(child for child in sorted(path.rglob("*")) if is_raster(child))
            elif is_raster(path):
                files.append(path)
            elif not path.exists():
                raise FileNotFoundError(f"No GeoTIFF or folder at {path}.")
            elif not is_pattern:
                raise ValueError(f"{path} is not a GeoTIFF (.tif, .tiff) or a folder of them.")
    is_band_folder = {}
    samples = {}
    for path in files:
        folder = path.parent
        if folder not in is_band_folder:
            is_band_folder[folder] = any(geo.band_name_from_filename(child) for child in folder.iterdir())
        samples[folder if is_band_folder[folder] else path] = None
    if not samples:
        raise ValueError(f"No GeoTIFF in {locations}: expected stacked .tif files or folders of band files (B02.tif).")
    return [str(path) for path in samples]


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

    def __init__(self, images: RasterImages | ColumnImages, prepare: SamplePreparation):
        self.images, self.prepare = images, prepare

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return self.prepare(self.images[key[1]], key)


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields the global batch of each forward pass as (epoch, index) keys: a permutation of the samples seeded by
    (seed, epoch), cut into `batch_size` pieces, and only whole optimiser steps (`batches_per_step` batches); the
    rest of the epoch is dropped. Accelerate (`split_batches=True`) hands each process its slice of every batch.

    The epoch is an attribute, not a `set_epoch` method, because Accelerate's data loaders call `set_epoch` with
    their own iteration counter, which restarts when batches are skipped on resume.
    """

    def __init__(self, num_samples: int, batch_size: int, batches_per_step: int, seed: int):
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.num_batches = num_samples // (batch_size * batches_per_step) * batches_per_step
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

    def __init__(self, stream: datasets.IterableDataset, column: str, prepare: SamplePreparation, process_index: int):
        self.stream, self.column, self.prepare, self.process_index = stream, column, prepare, process_index
        self.epoch = 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = torch.utils.data.get_worker_info()
        worker_index = 0 if worker is None else worker.id
        self.stream.set_epoch(self.epoch)  # reshuffles shards and buffer with seed + epoch
        for position, example in enumerate(self.stream):
            yield self.prepare(example[self.column], (self.epoch, self.process_index, worker_index, position))


def load_image_dataset(args: PretrainingArguments) -> datasets.Dataset | datasets.IterableDataset:
    path = Path(args.dataset)
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


def ignore_stop_signals(worker_id: int) -> None:
    """Data workers leave SIGINT / SIGTERM to the training process (see `StopRequest`), which stops them itself:
    a worker killed by them would make the data loader abort training before the last checkpoint."""
    for signum in StopRequest.signals:
        signal.signal(signum, signal.SIG_IGN)


@dataclass
class TrainingData:
    dataloader: torch.utils.data.DataLoader
    samples: PretrainingSamples | StreamingPretrainingSamples
    batch_sampler: EpochBatchSampler | None  # None for a stream
    num_samples: int | None  # None for a stream

    @property
    def is_streaming(self) -> bool:
        return self.batch_sampler is None

    def start_epoch(self, epoch: int) -> None:
        (self.samples if self.is_streaming else self.batch_sampler).epoch = epoch


def build_training_data(
    args: PretrainingArguments, config: SpectralGPTConfig, accelerator: Accelerator
) -> TrainingData:
    prepare = SamplePreparation(config, args.seed)
    loader_options = {
        "num_workers": args.dataloader_num_workers,
        "pin_memory": torch.cuda.is_available(),
        "worker_init_fn": ignore_stop_signals,
    }
    if args.rasters:
        if config.band_names is None:
            raise ValueError("Reading GeoTIFFs by band name needs the model config's band_names.")
        order = args.file_band_order
        if order is not None and order.lower() not in geo.DATASET_BAND_ORDERS:
            order = [name.strip() for name in order.split(",")]
        images = RasterImages(find_raster_samples(args.rasters), config.band_names, order)
    else:
        with accelerator.main_process_first():
            dataset = load_image_dataset(args)
        if args.streaming:
            stream = dataset.select_columns([args.image_column]).with_format("numpy")
            stream = stream.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer_size)
            stream = split_dataset_by_node(stream, accelerator.process_index, accelerator.num_processes)
            samples = StreamingPretrainingSamples(stream, args.image_column, prepare, accelerator.process_index)
            dataloader = torch.utils.data.DataLoader(samples, batch_size=args.per_device_batch_size, **loader_options)
            return TrainingData(dataloader, samples, batch_sampler=None, num_samples=None)
        if args.image_column not in dataset.column_names:
            raise ValueError(f"{args.dataset} has no column {args.image_column!r}; its columns are "
                             f"{dataset.column_names}. Name the image column with --image_column.")  # fmt: skip
        images = ColumnImages(dataset, args.image_column)
    batch_size = args.per_device_batch_size * accelerator.num_processes
    batch_sampler = EpochBatchSampler(len(images), batch_size, args.gradient_accumulation_steps, args.seed)
    if len(batch_sampler) == 0:
        raise ValueError(
            f"{len(images)} samples are fewer than one optimiser step takes ({batch_size} per forward pass x "
            f"{args.gradient_accumulation_steps} accumulation steps); lower --per_device_batch_size or "
            "--gradient_accumulation_steps, or add data."
        )
    samples = PretrainingSamples(images, prepare)
    dataloader = torch.utils.data.DataLoader(samples, batch_sampler=batch_sampler, **loader_options)
    return TrainingData(dataloader, samples, batch_sampler, num_samples=len(images))


# --- Model ---------------------------------------------------------------------------------------------------------


def continue_at_image_size(
    source: SpectralGPTForPreTraining, image_size: int, reinitialize_position_embeddings: bool = False
) -> SpectralGPTForPreTraining:
    """
    A copy of `source` for `image_size` (progressive training): the spatial position tables of the encoder and the
    decoder are resized bicubically to the new token grid, or, with `reinitialize_position_embeddings`, drawn
    afresh (trunc-normal, std `initializer_range`) as stage 2 of the original did. Every other weight is copied.
    """
    config = SpectralGPTConfig.from_dict({**source.config.to_dict(), "image_size": image_size})
    model = SpectralGPTForPreTraining(config)
    state_dict = source.state_dict()
    grid = config.num_patches_per_side
    for name in ("spectralgpt.embeddings.position_embeddings", "decoder.position_embeddings"):
        source_tables, new_tables = source.get_submodule(name), model.get_submodule(name)
        if reinitialize_position_embeddings:
            state_dict[f"{name}.spatial"] = new_tables.spatial.detach()
        else:
            state_dict[f"{name}.spatial"] = source_tables.resize_spatial(source_tables.spatial.detach(), grid, grid)
    model.load_state_dict(state_dict)
    return model


def build_model(args: PretrainingArguments) -> SpectralGPTForPreTraining:
    if args.init_from is not None:
        source = load_model(args.init_from, SpectralGPTForPreTraining, strict=True)
        model = continue_at_image_size(
            source, args.image_size or source.config.image_size, args.reinitialize_position_embeddings
        )
    else:
        config_fields = {} if args.image_size is None else {"image_size": args.image_size}
        if args.config_overrides:
            # Parses each value as its field's type and rejects unknown fields; the config is then built anew so
            # that fields derived from others (the backbone's stage names) follow.
            draft = SpectralGPTConfig.from_variant(args.variant)
            draft.update_from_string(args.config_overrides)
            names = [item.split("=", 1)[0].strip() for item in args.config_overrides.split(",")]
            config_fields.update({name: getattr(draft, name) for name in names})
        model = SpectralGPTForPreTraining(SpectralGPTConfig.from_variant(args.variant, **config_fields))
    model.config.mask_ratio = args.mask_ratio
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model.train()


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decayed, not_decayed = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decayed if uses_weight_decay(name, parameter) else not_decayed).append(parameter)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": not_decayed, "weight_decay": 0.0}]


# --- Checkpoints ---------------------------------------------------------------------------------------------------


@dataclass
class TrainingProgress:
    """Where the run is, saved in every checkpoint. `settings` are what a resumed run must share with the original:
    loading a checkpoint whose settings differ is refused."""

    step: int = 0
    epoch: int = 0
    steps_in_epoch: int = 0
    settings: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        differences = [
            f"{name} was {state['settings'].get(name)}, now {value}"
            for name, value in self.settings.items()
            if state["settings"].get(name) != value
        ]
        if differences:
            raise ValueError(
                "The checkpoint comes from a run with other settings (" + "; ".join(differences) + "). Resume with "
                "the original data, batch config_fields, process count x batch size, schedule and seed, or start a new "
                "run with --init_from."
            )
        self.step, self.epoch, self.steps_in_epoch = state["step"], state["epoch"], state["steps_in_epoch"]


def checkpoint_step(path: Path) -> int:
    return int(CHECKPOINT_NAME.fullmatch(path.name)[1])


def list_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are not listed)."""
    if not checkpoints_dir.is_dir():
        return []
    found = [path for path in checkpoints_dir.iterdir() if path.is_dir() and CHECKPOINT_NAME.fullmatch(path.name)]
    return sorted(found, key=checkpoint_step)


def save_checkpoint(accelerator: Accelerator, model, checkpoints_dir: Path, step: int, keep: int) -> Path:
    """`accelerator.save_state` into a temporary folder renamed `step-XXXXXX` once every process has written;
    the oldest checkpoints beyond `keep` are then removed."""
    destination = checkpoints_dir / f"step-{step:06d}"
    staging = checkpoints_dir / f".{destination.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # left by a save that was interrupted
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        # Beside the weights, the config makes a non-sharded checkpoint a from_pretrained folder (e.g. for
        # --init_from).
        accelerator.unwrap_model(model).config.save_pretrained(staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_folder(staging, destination)
        # Checkpoints of later steps (left when resuming from an older one) are neither counted nor removed.
        earlier = [path for path in list_checkpoints(checkpoints_dir) if checkpoint_step(path) < step]
        for old in earlier[: max(0, len(earlier) - keep + 1)]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return destination


def resolve_resume(resume: str, checkpoints_dir: Path) -> Path:
    if resume == "latest":
        found = list_checkpoints(checkpoints_dir)
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint in {checkpoints_dir} to continue from.")
        return found[-1]
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume: no checkpoint folder at {path}.")
    return path


def save_final_model(accelerator: Accelerator, model, config: SpectralGPTConfig, destination: Path) -> None:
    """The model (`save_pretrained`) and its image processor, written under a temporary name and then renamed."""
    state_dict = accelerator.get_state_dict(model)  # gathers sharded (FSDP, DeepSpeed ZeRO-3) weights
    if accelerator.is_main_process:
        with atomic_folder(destination) as staging:
            accelerator.unwrap_model(model).save_pretrained(staging, state_dict=state_dict)
            SpectralGPTImageProcessor.for_pretraining(
                band_names=config.band_names, num_bands=config.num_bands
            ).save_pretrained(staging)
    accelerator.wait_for_everyone()


class StopRequest:
    """SIGINT / SIGTERM (Ctrl-C, a cluster's pre-emption notice) ask training to stop after the current optimiser
    step, with a checkpoint. A second signal of the same kind acts as it would without this."""

    signals = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous_handlers = {}

    def handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signum, self.previous_handlers[signum])

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self.previous_handlers = {signum: signal.signal(signum, self.handle) for signum in self.signals}
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)


def on_any_process(accelerator: Accelerator, condition: bool) -> bool:
    if accelerator.num_processes == 1:
        return condition
    flags = accelerator.gather(torch.tensor([int(condition)], device=accelerator.device))
    return bool(flags.any())


def optimizer_step_groups(batches, size: int, accelerator: Accelerator, check_all_processes: bool):
    """Groups of `size` batches, one per optimiser step; stops at the first group that is incomplete on any
    process (streams may end at different points on different processes)."""
    iterator = iter(batches)
    while True:
        group = list(itertools.islice(iterator, size))
        incomplete = len(group) < size
        if check_all_processes:
            incomplete = on_any_process(accelerator, incomplete)
        if incomplete:
            return
        yield group


# --- Training ------------------------------------------------------------------------------------------------------


def tracker_names(report_to: str) -> list[str] | str | None:
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    if names in ([], ["none"]):
        return None
    if names == ["all"]:
        return "all"
    if "tensorboard" in names and not is_tensorboard_available():
        raise ValueError(
            "--report_to tensorboard needs the tensorboardX (or tensorboard) package: pip install tensorboardX, or "
            "pass --report_to none."
        )
    return names


def pretrain(args: PretrainingArguments) -> Path | None:
    """
    Pretrains (or continues pretraining) a SpectralGPT masked autoencoder; see the module docstring.

    Returns:
        The folder of the final model (`output_dir/model`), or None when a signal stopped the run early (after
        saving a checkpoint to continue from with `--resume`).
    """
    output_dir = Path(args.output_dir)
    checkpoints_dir = output_dir / "checkpoints"
    if args.resume is None and list_checkpoints(checkpoints_dir):
        raise ValueError(
            f"{output_dir} already holds checkpoints of a run: pass --resume to continue it, or choose another "
            "--output_dir."
        )
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=tracker_names(args.report_to),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    set_seed(args.seed)
    model = build_model(args)
    config = model.config
    data = build_training_data(args, config, accelerator)

    processes, accumulation = accelerator.num_processes, args.gradient_accumulation_steps
    global_batch_size = args.per_device_batch_size * processes * accumulation
    learning_rate = args.learning_rate
    if learning_rate is None:
        learning_rate = args.base_learning_rate * global_batch_size / 256
    steps_per_epoch = None if data.is_streaming else len(data.batch_sampler) // accumulation
    total_steps = args.max_steps if args.max_steps > 0 else args.num_train_epochs * steps_per_epoch
    warmup_steps = args.warmup_steps
    if warmup_steps is None:
        warmup_steps = round(args.warmup_epochs * steps_per_epoch)
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"The warm-up ({warmup_steps} steps) must be shorter than the run ({total_steps} steps); lower "
            "--warmup_epochs or --warmup_steps, or train longer."
        )

    optimizer = torch.optim.AdamW(
        parameter_groups(model, args.weight_decay), lr=learning_rate, betas=(args.adam_beta1, args.adam_beta2)
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    deepspeed_plugin = accelerator.state.deepspeed_plugin
    if deepspeed_plugin is not None:
        # DeepSpeed reads the micro-batch from a prepared loader's batch_size, which a batch sampler leaves unset.
        deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = args.per_device_batch_size
    if data.is_streaming:  # already split by split_dataset_by_node: Accelerate must not shard it again
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        dataloader = data.dataloader
    else:
        model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, data.dataloader, scheduler)
    if accelerator.gradient_accumulation_steps != accumulation:
        raise ValueError(
            f"The Accelerate (or DeepSpeed) config accumulates {accelerator.gradient_accumulation_steps} steps but "
            f"--gradient_accumulation_steps is {accumulation}; set the same value in both, or leave it out of the "
            "config."
        )

    progress = TrainingProgress(
        settings={
            "num_samples": data.num_samples, "global_batch_size": global_batch_size,
            "gradient_accumulation_steps": accumulation, "total_steps": total_steps, "warmup_steps": warmup_steps,
            "learning_rate": learning_rate, "seed": args.seed, "image_size": config.image_size,
        }
    )  # fmt: skip
    accelerator.register_for_checkpointing(progress)
    if args.resume is not None:
        resume_from = resolve_resume(args.resume, checkpoints_dir)
        accelerator.load_state(str(resume_from))
        logger.info(f"Resumed from {resume_from} at step {progress.step} (epoch {progress.epoch}).")

    logger.info(
        f"Pretraining {config.image_size} px, {data.num_samples or 'streamed'} samples, {processes} processes "
        f"x {args.per_device_batch_size} x {accumulation} accumulation = {global_batch_size} per step, lr "
        f"{learning_rate:.3g}, {total_steps} steps ({steps_per_epoch or 'unknown'} per epoch), warm-up "
        f"{warmup_steps}."
    )
    model.train()
    accelerator.init_trackers(
        args.run_name,
        config={name: value if isinstance(value, (int, float, str, bool)) else str(value)
                for name, value in asdict(args).items()},
    )  # fmt: skip
    bar = tqdm(total=total_steps, initial=progress.step, disable=not accelerator.is_main_process, desc="steps")
    window_loss = torch.zeros((), device=accelerator.device)
    window_batches, window_start, last_saved = 0, time.perf_counter(), None
    try:
        with StopRequest() as stop:
            while progress.step < total_steps and not stop.requested:
                data.start_epoch(progress.epoch)
                batches = dataloader
                if progress.steps_in_epoch:
                    batches = accelerator.skip_first_batches(dataloader, progress.steps_in_epoch * accumulation)
                for group in optimizer_step_groups(batches, accumulation, accelerator, data.is_streaming):
                    for batch in group:
                        batch = send_to_device(batch, accelerator.device)
                        with accelerator.accumulate(model):
                            loss = model(**batch, mask_ratio=args.mask_ratio).loss
                            accelerator.backward(loss)
                            if accelerator.sync_gradients and args.max_grad_norm is not None:
                                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                            optimizer.step()
                            scheduler.step()
                            optimizer.zero_grad()
                        window_loss += loss.detach().float()
                        window_batches += 1
                    progress.step += 1
                    progress.steps_in_epoch += 1
                    bar.update()
                    finished = progress.step >= total_steps
                    if progress.step % args.logging_steps == 0 or finished:
                        mean_loss = (accelerator.reduce(window_loss, "mean") / window_batches).item()
                        values = {
                            "loss": mean_loss,
                            "learning_rate": scheduler.get_last_lr()[0],
                            "images_per_second": window_batches * args.per_device_batch_size * processes
                            / (time.perf_counter() - window_start),
                            "epoch": progress.epoch,
                        }
                        accelerator.log(values, step=progress.step)
                        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{values['learning_rate']:.3g}")
                        window_loss.zero_()
                        window_batches, window_start = 0, time.perf_counter()
                    stop.requested = on_any_process(accelerator, stop.requested)
                    if progress.step % args.save_steps == 0 or stop.requested:
                        last_saved = save_checkpoint(
                            accelerator, model, checkpoints_dir, progress.step, args.save_total_limit
                        )
                    if finished or stop.requested:
                        break
                else:
                    if progress.steps_in_epoch == 0:
                        raise ValueError(
                            f"Epoch {progress.epoch} gave no complete optimiser step on some process: the streamed "
                            "dataset is too small for the batch size, process count and accumulation steps."
                        )
                    progress.epoch += 1
                    progress.steps_in_epoch = 0
        if stop.requested:
            logger.warning(
                f"Stopped by a signal at step {progress.step}; saved {last_saved}. Continue with --resume."
            )
            return None
        destination = output_dir / "model"
        save_final_model(accelerator, model, config, destination)
        logger.info(f"Wrote the pretrained model to {destination}")
        return destination
    finally:
        bar.close()
        accelerator.end_training()  # closes the trackers and the process group


def parse_arguments(argv: list[str] | None = None) -> PretrainingArguments:
    (args,) = HfArgumentParser(PretrainingArguments).parse_args_into_dataclasses(argv)
    return args


def run(args: PretrainingArguments) -> int:
    """`pretrain` with INFO logging; the exit status of the command line: 0 when done, 1 when stopped early."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return 0 if pretrain(args) is not None else 1


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory_for_reuse()
    try:
        return run(parse_arguments(argv))
    except (FileNotFoundError, ValueError) as error:
        print(f"spectralgpt-hf pretrain: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
