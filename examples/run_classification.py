"""Fine-tune SpectralGPT for scene classification with the original recipe: EuroSAT-MS (10 classes, single-label)
or BigEarthNet-S2 v2 (19 classes, multi-label); or on your own labelled images, single-label.

    python examples/run_classification.py --dataset eurosat --data_dir data/EuroSAT_MS \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/eurosat --do_train --do_eval
    python examples/run_classification.py --dataset bigearthnet --data_dir data/reBEN \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/bigearthnet --do_train --do_eval
    # your GeoTIFFs, a folder per class: data/mine/train/<class>/*.tif, data/mine/test/<class>/*.tif
    python examples/run_classification.py --dataset folder --data_dir data/mine \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/mine --do_train --do_eval
    # a `datasets` dataset with (12, H, W) arrays and class ids: a Hub id, a save_to_disk folder, Parquet files
    python examples/run_classification.py --dataset_name USER/DATASET --image_column image --label_column label \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/hub --do_train --do_eval

`--do_train` and `--do_eval` are opt-in; rerunning into an output folder with a checkpoint resumes from it
(`--overwrite_output_dir` starts again).

or `python examples/run_classification.py args.json` with the same options as keys. `--help` lists them all
(`spectralgpt_hf.training.recipes` and transformers' TrainingArguments).

Defaults are the original recipe's (any option overrides them):

* AdamW, weight decay 0.05 (none on norms, biases and position tables), layer-wise lr decay 0.75;
* learning rate: base_learning_rate 2e-4 x total batch / 256, with 16 per device x 8 accumulation steps (on the
  original's 2 devices: 256, so 2e-4); `--learning_rate` sets it directly;
* 150 epochs, linear warm-up over the first 20 (warmup_steps 20/150 of the steps), then cosine decay to 0;
* stochastic depth 0.2; EuroSAT: mixup 0.8 / cutmix 1.0 (switch 0.5, one draw per batch) with label smoothing 0.1
  in the mixed targets (`--mixup_alpha 0 --cutmix_alpha 0` for plain label smoothing); BigEarthNet: none of these;
* training images: RandomResizedCrop to the model's image size (scale 0.2-1, bicubic) + horizontal flip;
  evaluation: resize to image_size / 0.875 (146 for 128 px), centre crop (the image processor saved with the
  model);
* splits: EuroSAT "train" / "val" (torchgeo's split files), BigEarthNet "train" / "validation" (reBEN), your
  own data "train" / "test" (`--train_split`, `--eval_split`);
* your own data (`spectralgpt_hf.data.custom`): per-image per-band min-max as in pretraining, the same crops and
  flips, no mixup; bands read by name from the files' band descriptions, or `--file_band_order`;
* evaluated every epoch over the whole evaluation split: accuracy (EuroSAT), micro and macro mAP (BigEarthNet).

The head pools the pretrained separable position tables over every token; `--config_overrides
position_embedding_type=joint,pool_excludes_first_token=true` gives the original model (a zero-initialised joint
table, token 0 left out of the mean). No AMP by default: add --bf16 or --fp16 on a GPU.
"""

import functools
from dataclasses import dataclass, field
from typing import Literal

from spectralgpt_hf import (
    SpectralGPTForImageClassification,
    SpectralGPTImageProcessor,
    keep_freed_memory_for_reuse,
)
from spectralgpt_hf.data import (
    BIGEARTHNET_ID2LABEL,
    EUROSAT_ID2LABEL,
    RandomResizedCropAndFlip,
    load_bigearthnet,
    load_class_folders,
    load_dataset_with_images,
    load_eurosat,
)
from spectralgpt_hf.loading import load_model
from spectralgpt_hf.training.metrics import ClassificationMetrics, MultiLabelMetrics
from spectralgpt_hf.training.recipes import (
    HUB_DATASET,
    DataArguments,
    band_order,
    load_config,
    load_splits,
    parse_arguments,
    resume_or_refuse_output_dir,
    train_and_evaluate,
)

RECIPE = {
    "learning_rate": None,
    "base_learning_rate": 2e-4,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 8,
    "weight_decay": 0.05,
    "layer_decay": 0.75,
    "num_train_epochs": 150,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 20 / 150,
}
DATASET_RECIPES = {
    "eurosat": {"eval_split": "val", "label_smoothing_factor": 0.1, "mixup_alpha": 0.8, "cutmix_alpha": 1.0},
    "bigearthnet": {"eval_split": "validation"},
}
# Your own data: loaded in `data_loader`; the classes come from the data.
# loader, image processor preset, classes, problem type, metrics
DATASETS = {
    "eurosat": (
        load_eurosat, SpectralGPTImageProcessor.for_eurosat, EUROSAT_ID2LABEL, "single_label_classification",
        ClassificationMetrics,
    ),
    "bigearthnet": (
        load_bigearthnet, SpectralGPTImageProcessor.for_bigearthnet, BIGEARTHNET_ID2LABEL,
        "multi_label_classification", MultiLabelMetrics,
    ),
    "folder": (load_class_folders, SpectralGPTImageProcessor.for_pretraining, None, "single_label_classification",
               ClassificationMetrics),
    HUB_DATASET: (load_dataset_with_images, SpectralGPTImageProcessor.for_pretraining, None,
                  "single_label_classification", ClassificationMetrics),
}  # fmt: skip


@dataclass
class ClassificationDataArguments(DataArguments):
    dataset: Literal["eurosat", "bigearthnet", "folder", "hub"] = field(
        default="eurosat",
        metadata={"help": "EuroSAT-MS (single-label), BigEarthNet-S2 v2 (multi-label), 'folder': your GeoTIFFs in a "
                  "folder per class under data_dir/<split>/, or 'hub': the datasets dataset of --dataset_name."},
    )  # fmt: skip
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A datasets dataset with an image column of (12, H, W) arrays (bands B01..B08, B8A, B09, "
                  "B11, B12) and a label column of class ids: a Hub id, a save_to_disk folder or a folder of "
                  "<split>.parquet files. Implies --dataset hub."},
    )  # fmt: skip
    image_column: str = field(default="image", metadata={"help": "--dataset_name's column of images."})
    label_column: str = field(default="label", metadata={"help": "--dataset_name's column of class ids."})
    file_band_order: str | None = field(
        default=None,
        metadata={"help": "--dataset folder: the band order of GeoTIFFs without band descriptions, comma-separated "
                  "names (B02,B03,...) or a key of spectralgpt_hf.geo.DATASET_BAND_ORDERS (e.g. spectralgpt)."},
    )  # fmt: skip

    def __post_init__(self):
        super().__post_init__()
        if (self.dataset == HUB_DATASET) != (self.dataset_name is not None):
            raise ValueError("--dataset hub reads the dataset of --dataset_name: give both, or neither.")


def data_loader(data_args: ClassificationDataArguments):
    """`load(data_dir, split, **options)` of the chosen dataset."""
    load = DATASETS[data_args.dataset][0]
    if data_args.dataset == "folder":
        return functools.partial(load_class_folders, file_band_order=band_order(data_args.file_band_order))
    if data_args.dataset == HUB_DATASET:
        columns = {"image_column": data_args.image_column, "label_column": data_args.label_column}
        return lambda _, split, **options: load_dataset_with_images(data_args.dataset_name, split, **columns, **options)
    return load


def class_names(load, data_args: ClassificationDataArguments) -> dict[int, str]:
    """The classes of your own data, from its training split."""
    labels = load(data_args.data_dir, data_args.train_split).features["labels"]
    if not hasattr(labels, "names"):
        raise ValueError(
            f"The label column of {data_args.dataset_name} holds {labels}, not a datasets.ClassLabel: cast it with "
            "dataset.cast_column(label_column, ClassLabel(names=[...])) so that the classes have names."
        )
    return dict(enumerate(labels.names))


def main(args: list[str] | None = None) -> dict[str, float]:
    keep_freed_memory_for_reuse()
    model_args, data_args, training_args = parse_arguments(args, ClassificationDataArguments, RECIPE, DATASET_RECIPES)
    resume_or_refuse_output_dir(training_args)
    _, preset, id2label, problem_type, metrics = DATASETS[data_args.dataset]
    load = data_loader(data_args)
    id2label = id2label or class_names(load, data_args)
    config = load_config(model_args, id2label=id2label, problem_type=problem_type, drop_path_rate=0.2)
    size = config.image_size
    # The original evaluation transform: Resize(int(size / (224 / 256))), then CenterCrop(size).
    resize = int(size / (224 / 256))
    image_processor = preset(size={"height": resize, "width": resize}, crop_size={"height": size, "width": size})
    train, evaluation = load_splits(
        data_args,
        load,
        # the loader normalises training images with the preset, without its resize and crop
        {"augmentation": RandomResizedCropAndFlip(size)},
        {"image_processor": image_processor},
    )
    model = load_model(
        model_args.model_name_or_path, SpectralGPTForImageClassification, config=config,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
    )
    return train_and_evaluate(model, training_args, train, evaluation, image_processor, metrics())


if __name__ == "__main__":
    main()
