# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The options of pretraining, one `--name` flag each, and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from ...configuration_spectralgpt import VARIANTS

MIXED_PRECISION_CHOICES = ["no", "fp16", "bf16"]


@dataclass
class PretrainingArguments:
    """
    Options of `pretrain`; on the command line each field is a `--name` flag.

    Most are the `TrainingArguments` options of the same name (`output_dir`, `learning_rate`, `weight_decay`,
    `adam_beta1`, `adam_beta2`, `num_train_epochs`, `max_steps`, `warmup_steps`, `gradient_accumulation_steps`,
    `max_grad_norm`, `gradient_checkpointing`, `dataloader_num_workers`, `seed`, `save_steps`, `save_total_limit`,
    `logging_steps`, `report_to`, `run_name`), with the original recipe's defaults. The others map to them as
    follows:

    * `per_device_batch_size`: `per_device_train_batch_size`;
    * `base_learning_rate`: as in the fine-tuning recipes' `RecipeTrainingArguments`, the learning rate at a global
      batch of 256 (`spectralgpt_hf.training.optimization.scaled_learning_rate`), used when `learning_rate` is None;
    * `warmup_epochs`: the warm-up in epochs, where `TrainingArguments` takes a share of the steps (`warmup_ratio`);
    * `mixed_precision`: `fp16` / `bf16` as one option (Accelerate's);
    * `resume`: `resume_from_checkpoint`, with "latest" (the flag alone) for the newest checkpoint of `output_dir`;
    * `init_from`: `model_name_or_path` of the fine-tuning recipes, for a pretraining model.

    The cosine schedule and AdamW are fixed (`lr_scheduler_type="cosine"`, `optim="adamw_torch"`).
    """

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
            "help": "A folder written by `spectralgpt-hf prepare` (the fastest input: no GeoTIFF decoding), or a "
            "`datasets` dataset: a save_to_disk folder (Arrow), Parquet file(s) (a file, a glob or a folder of "
            "*.parquet) or a dataset id for datasets.load_dataset."
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
    dataloader_prefetch_factor: int = field(default=4, metadata={"help": "Batches each worker loads ahead."})
    dataloader_persistent_workers: bool = field(
        default=True, metadata={"help": "Keep the workers between epochs (indexed data; streams restart them)."}
    )
    dataloader_pin_memory: bool = field(default=True, metadata={"help": "Pin batches bound for a CUDA device."})
    augment_on_device: bool = field(
        default=False,
        metadata={"help": "Send each batch's raw images (uint16 from prepared shards) to the device once and make the "
                  "crops, flips and normalisation there, as batched matrix products; the same samples as on the "
                  "CPU (up to float rounding). Needs images of one size per batch."},
    )  # fmt: skip

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
    torch_compile: bool = field(default=False, metadata={"help": "Compile the model with torch.compile."})
    torch_compile_backend: str = field(default="inductor", metadata={"help": "torch.compile backend."})
    adamw_implementation: str = field(
        default="auto",
        metadata={"help": "AdamW kernels: fused, foreach, for_loop, or auto (fused where the device has it, else "
                  "foreach).", "choices": ["auto", "fused", "foreach", "for_loop"]},
    )  # fmt: skip

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
                    "save_total_limit", "logging_steps", "shuffle_buffer_size", "dataloader_prefetch_factor")  # fmt: skip
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


def parse_arguments(argv: list[str] | None = None) -> PretrainingArguments:
    (args,) = HfArgumentParser(PretrainingArguments).parse_args_into_dataclasses(argv)
    return args
