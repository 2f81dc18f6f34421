"""Fine-tune SpectralGPT for change detection on OSCD (two Sentinel-2 dates, change / no change) with the original
recipe.

    python examples/run_change_detection.py --data_dir "data/Onera Satellite Change Detection dataset - Images" \
        --model_name_or_path converted/spectralgpt-plus --output_dir runs/oscd --do_train --do_eval

or `python examples/run_change_detection.py args.json` with the same options as keys; `--help` lists them all.
`--do_train` and `--do_eval` are opt-in: `--do_eval` alone only evaluates, e.g. the converted published OSCD model.
Rerunning a training into an output folder with a checkpoint resumes from it (`--overwrite_output_dir` starts
again).

Defaults are the original recipe's (any option overrides them):

* AdamW, learning rate 1e-4, weight decay 1e-5 (none on norms and biases), no layer-wise decay;
* 300 epochs; the learning rate is multiplied by 0.95 after every epoch (ExponentialLR; `--epoch_lr_decay 1
  --lr_scheduler_type cosine` for another schedule);
* batch 32 per device; stochastic depth 0.5, no dropout in the neck and pyramid pooling (the OSCD model);
* patches of the model's image size (128 px for SpectralGPT+) every 63 px over each city, for training and
  evaluation; training patches are flipped along the width and turned by a random multiple of 90 degrees;
  per-patch per-band min-max (the image processor saved with the model);
* a cross-entropy weighted by `[fp_modifier * 2p, 2(1 - p)]` (no change, change), p the fraction of changed
  pixels in the training cities' change maps. The original's FP_MODIFIER 10 multiplies the *no-change* weight,
  trading recall of changes for fewer false positives; `--fp_modifier 1` gives plain inverse-frequency weights;
* trains on "train", evaluates every epoch on "test": precision, recall and F1 of the change class, plus IoUs,
  over every pixel of every evaluation patch. Patches overlap, as in the original; `--eval_stride` equal to the
  patch size counts each pixel once (the border strips a patch does not fit are then left out).
"""

from dataclasses import dataclass, field

from spectralgpt_hf import (
    SpectralGPTForChangeDetection,
    SpectralGPTImageProcessor,
    keep_freed_memory_for_reuse,
)
from spectralgpt_hf.data import OSCD_ID2LABEL, RandomFlipsAndRotations, load_oscd
from spectralgpt_hf.loading import load_model
from spectralgpt_hf.training.metrics import ChangeDetectionMetrics, argmax_logits
from spectralgpt_hf.training.recipes import (
    DataArguments,
    load_config,
    load_splits,
    oscd_class_weights,
    parse_arguments,
    resume_or_refuse_output_dir,
    train_and_evaluate,
)

RECIPE = {
    "learning_rate": 1e-4,
    "weight_decay": 1e-5,
    "per_device_train_batch_size": 32,
    "num_train_epochs": 300,
    "lr_scheduler_type": "constant",
    "epoch_lr_decay": 0.95,
}
# The OSCD model: its neck and pyramid pooling have no dropout.
MODEL_SETTINGS = {
    "id2label": OSCD_ID2LABEL, "drop_path_rate": 0.5, "neck_dropout_prob": 0.0, "pyramid_pooling_dropout_prob": 0.0,
}  # fmt: skip


@dataclass
class ChangeDetectionDataArguments(DataArguments):
    stride: int = field(default=63, metadata={"help": "Step between the patches of a city, in pixels."})
    eval_stride: int | None = field(default=None, metadata={"help": "The evaluation patches' step; default: stride."})
    fp_modifier: float = field(
        default=10.0,
        metadata={"help": "Loss weights [fp_modifier * 2p, 2(1 - p)] (no change, change); 1 for plain inverse-"
                  "frequency weights."},
    )  # fmt: skip


def main(args: list[str] | None = None) -> dict[str, float]:
    keep_freed_memory_for_reuse()
    model_args, data_args, training_args = parse_arguments(args, ChangeDetectionDataArguments, RECIPE)
    resume_or_refuse_output_dir(training_args)
    config = load_config(model_args, **MODEL_SETTINGS)
    image_processor = SpectralGPTImageProcessor.for_oscd()
    common = {"patch_size": config.image_size, "image_processor": image_processor}
    train, evaluation = load_splits(
        data_args,
        load_oscd,
        {**common, "stride": data_args.stride, "augmentation": RandomFlipsAndRotations(vertical_flip_probability=0.0)},
        {**common, "stride": data_args.eval_stride or data_args.stride},
    )
    config.change_detection_class_weights = oscd_class_weights(train, data_args.fp_modifier)
    model = load_model(
        model_args.model_name_or_path, SpectralGPTForChangeDetection, config=config,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
    )
    metrics = ChangeDetectionMetrics(config.semantic_loss_ignore_index)
    return train_and_evaluate(model, training_args, train, evaluation, image_processor, metrics, argmax_logits)


if __name__ == "__main__":
    main()
