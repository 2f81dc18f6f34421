# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""What the fine-tuning scripts of `examples/` share: their arguments, the recipes' training options that
`TrainingArguments` lacks, and one train / evaluate / save sequence with `Trainer`.

`RecipeTrainingArguments` adds these options of the original recipes to `TrainingArguments`:

* `base_learning_rate`: when `learning_rate` is None (the classification recipes' default), it becomes
  `base_learning_rate * total batch / 256` (the original's `--blr`; the total batch counts devices and gradient
  accumulation; `spectralgpt_hf.training.optimization.scaled_learning_rate`, as in pretraining);
* `layer_decay`: layer-wise learning-rate decay (`spectralgpt_hf.training.optimization`);
* `epoch_lr_decay`: the learning rate is multiplied by this factor after every epoch (the OSCD recipe's
  `ExponentialLR`), with `lr_scheduler_type="constant"`;
* `mixup_alpha`, `cutmix_alpha`, `mixup_switch_probability`: batch mixing of single-label training batches
  (`spectralgpt_hf.training.mixup.MixupCutmix`, the EuroSAT recipe's), with `label_smoothing_factor` folded into
  the mixed targets.

`RecipeTrainer` is a `Trainer` that applies all but the first.

As in transformers' examples, `do_train` and `do_eval` are opt-in, and a training run into an `output_dir` that
holds a checkpoint resumes from the latest one (`get_last_checkpoint`); one into a non-empty folder without a
checkpoint is refused unless `overwrite_output_dir` (an option transformers 5 no longer has). `--help` lists the
script's own options (model, data, then the recipe's) before those of `TrainingArguments`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from argparse import ArgumentParser
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from torch.optim.lr_scheduler import LambdaLR
from transformers import HfArgumentParser, Trainer, TrainingArguments
from transformers.hf_argparser import string_to_bool
from transformers.trainer_utils import SchedulerType, get_last_checkpoint

from .. import data
from ..data import shards
from ..configuration_spectralgpt import SpectralGPTConfig
from ..modeling_spectralgpt import SpectralGPTPreTrainedModel
from .mixup import MixupCutmix
from .optimization import layer_decay_optimizer, scaled_learning_rate

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    _argument_group_name = "model"

    model_name_or_path: str = field(
        metadata={
            "help": "A converted checkpoint folder (`spectralgpt-hf convert`): a pretraining checkpoint gets a new "
            "head; a fine-tuned one of the same task goes on training."
        }
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Scalar config fields set after the recipe's, e.g. 'drop_path_rate=0.1' or, for the original "
            "classification model, 'position_embedding_type=joint,pool_excludes_first_token=true'."
        },
    )
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Start a new head when the checkpoint's head has another number of classes."}
    )


@dataclass
class DataArguments:
    _argument_group_name = "data"

    data_dir: str | None = field(
        default=None, metadata={"help": "The dataset's folder, in the layout spectralgpt_hf.data reads."}
    )
    train_split: str = field(default="train", metadata={"help": "The split to train on."})
    eval_split: str = field(default="test", metadata={"help": "The split to evaluate on."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N training samples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only the first N evaluation samples."})

    def __post_init__(self):
        if self.data_dir is None and getattr(self, "dataset_name", None) is None:
            raise ValueError("Give --data_dir, the dataset's folder.")


@dataclass
class RecipeOptions:
    """The recipes' options that `TrainingArguments` lacks. A base class of `RecipeTrainingArguments`, so that
    its fields come first in `--help`."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into a non-empty output_dir that holds no checkpoint, and do not resume from the "
                  "latest checkpoint-* in it (without it, a training run resumes from that checkpoint)."},
    )  # fmt: skip
    base_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Used when learning_rate is None: learning_rate = base_learning_rate * total batch / 256."},
    )
    layer_decay: float | None = field(
        default=None,
        metadata={"help": "Layer-wise learning-rate decay: each encoder block learns at layer_decay times the rate of "
                  "the block above it, the head at learning_rate."},
    )  # fmt: skip
    epoch_lr_decay: float = field(
        default=1.0,
        metadata={"help": "Multiply the learning rate by this factor after every epoch (needs lr_scheduler_type "
                  "'constant'); 1: off."},
    )  # fmt: skip

    mixup_alpha: float = field(
        default=0.0,
        metadata={"help": "Mix single-label training batches with mixup, lam ~ Beta(alpha, alpha); 0: off."},
    )
    cutmix_alpha: float = field(
        default=0.0,
        metadata={"help": "Mix single-label training batches with cutmix, lam ~ Beta(alpha, alpha); 0: off."},
    )
    mixup_switch_probability: float = field(
        default=0.5, metadata={"help": "With both alphas > 0: the chance that a batch gets cutmix rather than mixup."}
    )


@dataclass
class RecipeTrainingArguments(TrainingArguments, RecipeOptions):
    _argument_group_name = "training: the recipe's options, then transformers' TrainingArguments"

    def __post_init__(self):
        super().__post_init__()
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha and cutmix_alpha must be >= 0, got {self.mixup_alpha}, {self.cutmix_alpha}.")
        if not 0 < self.epoch_lr_decay <= 1:
            raise ValueError(f"epoch_lr_decay must be in (0, 1], got {self.epoch_lr_decay}.")
        if self.epoch_lr_decay != 1 and self.lr_scheduler_type != SchedulerType.CONSTANT:
            raise ValueError(
                f"epoch_lr_decay={self.epoch_lr_decay} sets the schedule, so lr_scheduler_type must be 'constant', got "
                f"{self.lr_scheduler_type.value!r}. Pass --epoch_lr_decay 1 to use {self.lr_scheduler_type.value!r}."
            )
        if self.learning_rate is None:
            if self.base_learning_rate is None:
                raise ValueError("Give learning_rate, or base_learning_rate to scale it with the total batch size.")
            self.learning_rate = scaled_learning_rate(
                self.base_learning_rate, self.train_batch_size, self.gradient_accumulation_steps, self.world_size
            )


# The `--dataset` of a `datasets` dataset named by `--dataset_name` (a Hub id, a save_to_disk folder, data files).
HUB_DATASET = "hub"

# Defaults of every recipe script, before the recipe's own.
SCRIPT_DEFAULTS = {
    "do_train": False,
    "do_eval": False,
    "remove_unused_columns": False,  # the lazily decoded datasets need their stored path columns
    "eval_strategy": "no",  # "epoch" with --do_eval (EVAL_DEFAULTS)
    "save_strategy": "epoch",
    "save_total_limit": 1,  # the latest checkpoint, to resume from
}
# With --do_eval: the original evaluated after every epoch. (TrainingArguments turns do_eval on for any
# eval_strategy but "no", so this cannot be a default of every run.)
EVAL_DEFAULTS = {"eval_strategy": "epoch"}


def parse_arguments(
    args: Sequence[str] | None,
    data_arguments: type[DataArguments],
    defaults: dict,
    dataset_defaults: dict[str, dict] | None = None,
) -> tuple[ModelArguments, DataArguments, RecipeTrainingArguments]:
    """The arguments of a recipe script, from the command line or from one `.json` file, with `SCRIPT_DEFAULTS` and
    the recipe's `defaults` (field name -> value) in place of the dataclasses' own. `dataset_defaults` (dataset name
    -> defaults) adds the settings of the dataset chosen with the data argument `dataset`."""
    args = sys.argv[1:] if args is None else list(args)
    from_file = json.loads(Path(args[0]).read_text()) if len(args) == 1 and args[0].endswith(".json") else None
    defaults = {**SCRIPT_DEFAULTS, **defaults}
    # The options that choose defaults, read before the full parser.
    pre_parser = ArgumentParser(add_help=False, allow_abbrev=False)
    pre_parser.add_argument("--do_eval", "--do-eval", type=string_to_bool, nargs="?", const=True, default=False)
    pre_parser.add_argument("--dataset", default=None)
    pre_parser.add_argument("--dataset_name", "--dataset-name", default=None)
    chosen = vars(pre_parser.parse_known_args(args)[0]) if from_file is None else from_file
    if string_to_bool(chosen.get("do_eval", False)):
        defaults.update(EVAL_DEFAULTS)
    if chosen.get("dataset") is None and chosen.get("dataset_name"):
        defaults["dataset"] = HUB_DATASET  # --dataset_name alone means a `datasets` dataset
    if dataset_defaults is not None:
        dataset = chosen.get("dataset") or defaults.get("dataset", data_arguments.dataset)
        # An unknown name gets no defaults here and is refused by the full parser below.
        defaults.update(dataset_defaults.get(dataset, {}))
    parser = HfArgumentParser((ModelArguments, data_arguments, RecipeTrainingArguments))
    if from_file is not None:
        return parser.parse_dict({**defaults, **from_file})
    parser.set_defaults(**defaults)
    return parser.parse_args_into_dataclasses(args)


def band_order(value: str | None) -> list[str] | str | None:
    """A `--file_band_order` value: comma-separated band names as a list, or a key of
    `spectralgpt_hf.geo.DATASET_BAND_ORDERS` as it is."""
    return value.split(",") if value and "," in value else value


def resume_or_refuse_output_dir(training_args: RecipeTrainingArguments) -> None:
    """transformers' convention for rerunning a training into the same `output_dir`: resume from its latest
    checkpoint (sets `resume_from_checkpoint`), refuse a non-empty folder that holds none, unless
    `overwrite_output_dir`. Call it before loading data, so that a refused run fails at once."""
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train or training_args.overwrite_output_dir or not output_dir.is_dir():
        return
    last_checkpoint = get_last_checkpoint(str(output_dir))
    if last_checkpoint is None and any(output_dir.iterdir()):
        raise ValueError(
            f"Output directory {output_dir} is not empty and holds no checkpoint-* to resume from. Pass "
            "--overwrite_output_dir to train into it anyway, or choose another --output_dir."
        )
    if last_checkpoint is not None and training_args.resume_from_checkpoint is None:
        logger.warning(
            f"Resuming from {last_checkpoint}, the latest checkpoint in {output_dir}. Pass --overwrite_output_dir "
            "to start from scratch."
        )
        training_args.resume_from_checkpoint = last_checkpoint


def load_config(model_args: ModelArguments, **recipe_settings) -> SpectralGPTConfig:
    """The checkpoint's configuration with the recipe's settings (labels, stochastic depth, dropouts), then the
    user's `config_overrides`."""
    config = SpectralGPTConfig.from_pretrained(model_args.model_name_or_path, **recipe_settings)
    if "id2label" in recipe_settings:
        config.label2id = {name: index for index, name in config.id2label.items()}
    if model_args.config_overrides:
        config.update_from_string(model_args.config_overrides)
    return config


# The loaders whose splits `prepare` writes, and the image-processor presets they normalise with.
PREPARED_PRESETS = {data.load_eurosat: data.EUROSAT_PRESET, data.load_bigearthnet: data.BIGEARTHNET_PRESET,
                    data.load_segmunich: data.SEGMUNICH_PRESET, data.load_oscd: data.OSCD_PRESET}


def load_splits(
    data_args: DataArguments, load: Callable[..., Dataset], train_options: dict, eval_options: dict
) -> tuple[Dataset, Dataset]:
    """The training and evaluation splits, `load(data_dir, split, **options)`, cut to max_train/eval_samples.
    Where `data_dir/<split>` is a folder `spectralgpt-hf prepare --loader ... --split <split>` wrote, the split is
    read from its shards instead, normalised with the same preset (EuroSAT, BigEarthNet, SegMunich, OSCD)."""

    def first(dataset: Dataset, count: int | None) -> Dataset:
        return dataset if count is None else dataset.select(range(min(count, len(dataset))))

    def load_split(split: str, options: dict) -> Dataset:
        if data_args.data_dir and shards.is_prepared(Path(data_args.data_dir) / split) and load in PREPARED_PRESETS:
            return shards.load_prepared(data_args.data_dir, split, preset=PREPARED_PRESETS[load], **options)
        return load(data_args.data_dir, split, **options)

    train = load_split(data_args.train_split, train_options)
    evaluation = load_split(data_args.eval_split, eval_options)
    return first(train, data_args.max_train_samples), first(evaluation, data_args.max_eval_samples)


def oscd_class_weights(dataset: Dataset, fp_modifier: float = 10.0) -> list[float]:
    """The original OSCD loss weights `[fp_modifier * 2p, 2(1 - p)]` (no change, change), with p the fraction of
    changed pixels over the whole change maps of the cities in `dataset` (a `load_oscd` dataset or a prepared split's).

    With `fp_modifier=1` these are inverse class frequencies (normalised so that they sum to 2); the original's 10
    multiplies the weight of the *no-change* class, which trades recall of changes for fewer false positives."""
    counts = data.oscd_change_pixels(dataset).values()
    changed, total = sum(changed for changed, _ in counts), sum(total for _, total in counts)
    if changed == 0:
        raise ValueError("The training change maps hold no changed pixel, so the class weights are undefined.")
    fraction = changed / total
    return [fp_modifier * 2 * fraction, 2 * (1 - fraction)]


class RecipeTrainer(Trainer):
    """`Trainer` with the layer-wise learning-rate decay, the per-epoch exponential decay and the batch mixing of
    `RecipeTrainingArguments` (`layer_decay`, `epoch_lr_decay`, `mixup_alpha` / `cutmix_alpha`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_mixing = None
        if self.args.mixup_alpha > 0 or self.args.cutmix_alpha > 0:
            config = self.model.config
            if config.problem_type != "single_label_classification":
                raise ValueError(
                    "mixup_alpha and cutmix_alpha mix the class ids of single-label classification, but the model's "
                    f"problem_type is {config.problem_type!r}. Set both to 0 for this model."
                )
            self.batch_mixing = MixupCutmix(
                config.num_labels, self.args.mixup_alpha, self.args.cutmix_alpha, self.args.mixup_switch_probability,
                label_smoothing=self.args.label_smoothing_factor,
            )  # fmt: skip
            # The smoothing is in the mixed targets; evaluation then uses the plain cross-entropy, as the original.
            self.label_smoother = None

    def training_step(self, model, inputs, num_items_in_batch=None):
        # Mixed here rather than in the collator, which also serves evaluation, and after Trainer has counted the
        # batch's labels (num_items_in_batch), one per image.
        if self.batch_mixing is not None:
            pixel_values, labels = self.batch_mixing(inputs["pixel_values"], inputs["labels"])
            inputs = {**inputs, "pixel_values": pixel_values, "labels": labels}
        return super().training_step(model, inputs, num_items_in_batch)

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.optimizer_cls_and_kwargs is None and self.args.layer_decay is not None:
            self.optimizer_cls_and_kwargs = layer_decay_optimizer(model or self.model, self.args, self.args.layer_decay)
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.args.epoch_lr_decay == 1:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            # Trainer's count of optimizer steps per epoch.
            steps_per_epoch = math.ceil(len(self.get_train_dataloader()) / self.args.gradient_accumulation_steps)
            decay = self.args.epoch_lr_decay
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda step: decay ** (step // steps_per_epoch))
            # As Trainer does for its own schedulers, so that another train() call builds a fresh one.
            self._created_lr_scheduler = True
        return self.lr_scheduler


def train_and_evaluate(
    model: SpectralGPTPreTrainedModel,
    training_args: RecipeTrainingArguments,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    image_processor,
    compute_metrics: Callable,
    preprocess_logits_for_metrics: Callable | None = None,
) -> dict[str, float]:
    """Trains (`do_train`), saves the model with `image_processor` beside it and the training metrics, then
    evaluates (`do_eval`) over the whole evaluation set and saves those metrics. Returns the evaluation metrics."""
    trainer = RecipeTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=image_processor,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()  # with the processing class: from_pretrained loads both from output_dir
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    if not (training_args.do_train or training_args.do_eval):
        logger.warning("Nothing to do: pass --do_train to train and --do_eval to evaluate.")
    metrics = {}
    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return metrics


__all__ = [
    "DataArguments",
    "ModelArguments",
    "EVAL_DEFAULTS",
    "HUB_DATASET",
    "RecipeOptions",
    "RecipeTrainer",
    "RecipeTrainingArguments",
    "SCRIPT_DEFAULTS",
    "band_order",
    "load_config",
    "load_splits",
    "oscd_class_weights",
    "parse_arguments",
    "resume_or_refuse_output_dir",
    "train_and_evaluate",
]
