"""Fine-tune SpectralGPT for semantic segmentation on SegMunich (TUM_128, 13 classes) with the original recipe.

    python examples/run_segmentation.py --data_dir data/TUM_128 \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/segmunich

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

The tiles (128 px) must match the model's image size: start from SpectralGPT+ (128 px), not the 96 px SpectralGPT.
"""

from spectralgpt_hf import (
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
    keep_freed_memory_for_reuse,
)
from spectralgpt_hf.data import SEGMUNICH_ID2LABEL, RandomFlipsAndRotations, load_segmunich
from spectralgpt_hf.loading import load_model
from spectralgpt_hf.training.metrics import SegmentationMetrics, argmax_logits
from spectralgpt_hf.training.recipes import (
    DataArguments,
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


def main(args: list[str] | None = None) -> dict[str, float]:
    keep_freed_memory_for_reuse()
    model_args, data_args, training_args = parse_arguments(args, DataArguments, RECIPE)
    resume_or_refuse_output_dir(training_args)
    config = load_config(model_args, id2label=SEGMUNICH_ID2LABEL, drop_path_rate=0.5)
    image_processor = SpectralGPTImageProcessor.for_segmunich()
    train, evaluation = load_splits(
        data_args,
        load_segmunich,
        {"image_processor": image_processor, "augmentation": RandomFlipsAndRotations()},
        {"image_processor": image_processor},
    )
    tile_size = evaluation[0]["pixel_values"].shape[-1]
    if tile_size != config.image_size:
        raise ValueError(
            f"The SegMunich tiles are {tile_size} px but the model at {model_args.model_name_or_path} takes "
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
