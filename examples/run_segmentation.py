"""Fine-tune SpectralGPT for semantic segmentation on SegMunich (TUM_128, 13 classes) with the original recipe, or
on your own image/mask pairs.

    python examples/run_segmentation.py --data_dir data/TUM_128 \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/segmunich --do_train --do_eval
    # your GeoTIFFs: data/mine/<split>/images/<name>.tif, data/mine/<split>/masks/<name>.tif (class ids),
    # data/mine/classes.txt (one class name per line)
    python examples/run_segmentation.py --dataset folder --data_dir data/mine \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/mine --do_train --do_eval

or `python examples/run_segmentation.py args.json` with the same options as keys; `--help` lists them all.

Defaults are the original recipe's (any option overrides them):

* AdamW, learning rate 1e-4, weight decay 1e-5 (none on norms and biases), no layer-wise decay;
* 250 epochs, linear warm-up over the first 15 (warmup_steps 15/250 of the steps), then polynomial decay with
  power 0.9 to 0;
* batch 32 per device; stochastic depth 0.5, dropout 0.5 in the neck and decoder (the SegMunich model);
* training tiles: random horizontal and vertical flips and quarter turns; per-tile per-band min-max (the
  image processor saved with the model expects the 12 channels of `load_segmunich`: the 10 bands, then their
  per-pixel mean twice);
* trains on "train", evaluates every epoch on "test", as the original: mean IoU, overall accuracy and the IoU of
  each class over the whole split.

Your own data (`spectralgpt_hf.data.custom`): the 12 Sentinel-2 bands read by name (the files' band descriptions,
or `--file_band_order`), per-image per-band min-max as in pretraining, the same flips and turns.

`--do_train` and `--do_eval` are opt-in; rerunning into an output folder with a checkpoint resumes from it
(`--overwrite_output_dir` starts again).

The tiles (128 px) must match the model's image size: start from SpectralGPT+ (128 px), not the 96 px SpectralGPT.
"""

import functools
from dataclasses import dataclass, field
from typing import Literal

from spectralgpt_hf import (
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
    keep_freed_memory_for_reuse,
)
from spectralgpt_hf.data import (
    SEGMUNICH_ID2LABEL,
    RandomFlipsAndRotations,
    load_image_mask_pairs,
    load_segmunich,
    read_class_names,
)
from spectralgpt_hf.loading import load_model
from spectralgpt_hf.training.metrics import SegmentationMetrics, argmax_logits
from spectralgpt_hf.training.recipes import (
    DataArguments,
    band_order,
    load_config,
    load_splits,
    parse_arguments,
    resume_or_refuse_output_dir,
    train_and_evaluate,
)

RECIPE = {
    "learning_rate": 1e-4,
    "weight_decay": 1e-5,
    "per_device_train_batch_size": 32,
    "num_train_epochs": 250,
    "lr_scheduler_type": "polynomial",
    "lr_scheduler_kwargs": {"power": 0.9, "lr_end": 0.0},
    "warmup_steps": 15 / 250,
}


@dataclass
class SegmentationDataArguments(DataArguments):
    dataset: Literal["segmunich", "folder"] = field(
        default="segmunich",
        metadata={"help": "SegMunich (TUM_128), or 'folder': your image/mask pairs under data_dir/<split>/images/ "
                  "and data_dir/<split>/masks/, with data_dir/classes.txt."},
    )  # fmt: skip
    file_band_order: str | None = field(
        default=None,
        metadata={"help": "--dataset folder: the band order of images without band descriptions, comma-separated "
                  "names (B02,B03,...) or a key of spectralgpt_hf.geo.DATASET_BAND_ORDERS (e.g. spectralgpt)."},
    )  # fmt: skip


def dataset_choice(data_args: SegmentationDataArguments):
    """The loader, the classes and the image processor of the chosen dataset."""
    if data_args.dataset == "segmunich":
        return load_segmunich, SEGMUNICH_ID2LABEL, SpectralGPTImageProcessor.for_segmunich()
    load = functools.partial(load_image_mask_pairs, file_band_order=band_order(data_args.file_band_order))
    return load, dict(enumerate(read_class_names(data_args.data_dir))), SpectralGPTImageProcessor.for_pretraining()


def main(args: list[str] | None = None) -> dict[str, float]:
    keep_freed_memory_for_reuse()
    model_args, data_args, training_args = parse_arguments(args, SegmentationDataArguments, RECIPE)
    resume_or_refuse_output_dir(training_args)
    load, id2label, image_processor = dataset_choice(data_args)
    config = load_config(model_args, id2label=id2label, drop_path_rate=0.5)
    train, evaluation = load_splits(
        data_args,
        load,
        {"image_processor": image_processor, "augmentation": RandomFlipsAndRotations()},
        {"image_processor": image_processor},
    )
    tile_size = evaluation[0]["pixel_values"].shape[-1]
    if tile_size != config.image_size:
        raise ValueError(
            f"The {data_args.dataset} tiles are {tile_size} px but the model at {model_args.model_name_or_path} takes "
            f"{config.image_size} px; start from a checkpoint trained at {tile_size} px (SpectralGPT+ for 128 px)."
        )
    model = load_model(
        model_args.model_name_or_path, SpectralGPTForSemanticSegmentation, config=config,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
    )
    label_names = [config.id2label[index].replace(" ", "_") for index in range(config.num_labels)]
    metrics = SegmentationMetrics(config.num_labels, config.semantic_loss_ignore_index, label_names)
    return train_and_evaluate(model, training_args, train, evaluation, image_processor, metrics, argmax_logits)


if __name__ == "__main__":
    main()
