"""Fine-tuning every head with transformers' Trainer on tiny configurations: the loss goes down, checkpoints reload,
whole-set metrics come out of compute_metrics, and gradient accumulation does not change the loss or gradients."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from spectralgpt_hf import (
    SpectralGPTConfig,
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
)
from spectralgpt_hf.training.metrics import (
    ChangeDetectionMetrics,
    ClassificationMetrics,
    MultiLabelMetrics,
    SegmentationMetrics,
    argmax_logits,
)
from spectralgpt_hf.training.optimization import layer_decay_optimizer

TINY = dict(
    image_size=16, patch_size=4, num_bands=6, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
    decoder_intermediate_size=20, neck_intermediate_sizes=[8, 8, 16, 16], neck_hidden_sizes=[4, 8, 16, 16],
    neck_norm_groups=4, decode_head_hidden_size=8, decode_head_norm_groups=4,
)  # fmt: skip
NO_DROPOUT = dict(neck_dropout_prob=0.0, pyramid_pooling_dropout_prob=0.0, decode_head_dropout_prob=0.0)


def images(count, seed):
    return np.random.default_rng(seed).random((count, 6, 16, 16), dtype=np.float32)


def classification_data(count=8, seed=0):
    """Class 1 images are brighter in band 0."""
    pixels = images(count, seed)
    labels = np.arange(count) % 2
    pixels[labels == 1, 0] += 1.0
    return {"pixel_values": pixels, "labels": labels}


def multi_label_data(count=8, seed=0):
    pixels = images(count, seed)
    labels = np.stack([np.arange(count) % 2, (np.arange(count) // 2) % 2, np.ones(count)], 1).astype(np.float32)
    pixels[:, 0] += labels[:, 0, None, None]
    pixels[:, 3] += labels[:, 1, None, None]
    return {"pixel_values": pixels, "labels": labels}


def segmentation_data(count=8, seed=0):
    """Labels: 1 where band 2 is bright, else 0."""
    pixels = images(count, seed)
    labels = (pixels[:, 2] > 0.5).astype(np.int64)
    pixels[:, 2] += labels
    return {"pixel_values": pixels, "labels": labels}


def change_data(count=8, seed=0):
    before, after = images(count, seed), images(count, seed)
    labels = np.zeros((count, 16, 16), dtype=np.int64)
    labels[:, 4:12, 4:12] = 1
    after[:, :, 4:12, 4:12] += 1.0
    return {"pixel_values": before, "pixel_values_2": after, "labels": labels}


HEADS = {
    "single_label": (SpectralGPTForImageClassification, dict(num_labels=2), classification_data, ClassificationMetrics, None),
    "multi_label": (
        SpectralGPTForImageClassification, dict(num_labels=3, problem_type="multi_label_classification"),
        multi_label_data, MultiLabelMetrics, None,
    ),
    "segmentation": (
        SpectralGPTForSemanticSegmentation, dict(num_labels=2), segmentation_data,
        lambda: SegmentationMetrics(num_labels=2), argmax_logits,
    ),
    "change_detection": (
        SpectralGPTForChangeDetection, dict(num_labels=2, change_detection_class_weights=[0.4, 1.6]), change_data,
        ChangeDetectionMetrics, argmax_logits,
    ),
}  # fmt: skip


def trainer_for(head, output_dir, config_overrides=None, **args):
    model_class, config_kwargs, make_data, make_metrics, preprocess = HEADS[head]
    torch.manual_seed(0)
    model = model_class(SpectralGPTConfig(**TINY, **config_kwargs, **(config_overrides or {})))
    defaults = dict(
        output_dir=str(output_dir), per_device_train_batch_size=4, per_device_eval_batch_size=4, learning_rate=3e-3,
        num_train_epochs=6, save_strategy="no", logging_steps=1, report_to=[], use_cpu=True, seed=0,
        dataloader_num_workers=0,
    )  # fmt: skip
    training_args = TrainingArguments(**{**defaults, **args})
    data = Dataset.from_dict(make_data()).with_format("torch")
    return Trainer(
        model=model, args=training_args, train_dataset=data, eval_dataset=data,
        compute_metrics=make_metrics(), preprocess_logits_for_metrics=preprocess,
    )  # fmt: skip


@pytest.mark.parametrize("head", list(HEADS))
def test_training_lowers_the_loss_and_the_checkpoint_reloads(head, tmp_path):
    # without the heads' 0.5 dropouts, a few steps suffice
    trainer = trainer_for(
        head, tmp_path, config_overrides=NO_DROPOUT, save_strategy="epoch", save_total_limit=1, num_train_epochs=10
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < 0.95 * before["eval_loss"], (before, after)
    expected_metrics = {
        "single_label": ["eval_accuracy"],
        "multi_label": ["eval_micro_mAP", "eval_macro_mAP"],
        "segmentation": ["eval_mean_iou", "eval_overall_accuracy"],
        "change_detection": ["eval_f1", "eval_precision", "eval_recall"],
    }[head]
    assert all(np.isfinite(after[name]) for name in expected_metrics), after
    # The toy data are separable: the main metric improves, to near perfect where 20 steps suffice (the tiny
    # segmentation model only starts to learn: 0.32 -> 0.46 mean IoU).
    name, threshold = {
        "single_label": ("eval_accuracy", 1.0), "multi_label": ("eval_macro_mAP", 0.9),
        "segmentation": ("eval_mean_iou", 0.4), "change_detection": ("eval_f1", 0.95),
    }[head]  # fmt: skip
    assert after[name] > before[name] and after[name] >= threshold, (before, after)

    checkpoint = next(tmp_path.glob("checkpoint-*"))
    reloaded = type(trainer.model).from_pretrained(checkpoint).eval()
    trainer.model.eval()
    batch = {key: value[:2] for key, value in trainer.eval_dataset[:2].items() if key != "labels"}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, trainer.model(**batch).logits)


SGD_STEP = dict(max_steps=1, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant")


def assert_accumulation_gives_the_same_step(make_trainer):
    """One step over the same 4 samples as one batch of 4 or two accumulated batches of 2, with plain SGD: the
    logged loss and the updated weights (= weights - lr x gradient) must agree."""
    results = []
    for batch_size, accumulation in ((4, 1), (2, 2)):
        trainer = make_trainer(f"ga{accumulation}", per_device_train_batch_size=batch_size,
                               gradient_accumulation_steps=accumulation, **SGD_STEP)  # fmt: skip
        trainer.train_dataset = trainer.train_dataset.select(range(4))
        output = trainer.train()
        results.append((output.training_loss, {k: v.detach().clone() for k, v in trainer.model.named_parameters()}))
    (loss_one, weights_one), (loss_two, weights_two) = results
    assert loss_two == pytest.approx(loss_one, rel=1e-4)
    for name in weights_one:
        torch.testing.assert_close(weights_two[name], weights_one[name], atol=1e-5, rtol=1e-4, msg=name)
    return weights_one


@pytest.mark.parametrize("head", list(HEADS))
def test_gradient_accumulation_gives_the_same_loss_and_update(head, tmp_path):
    assert_accumulation_gives_the_same_step(
        lambda name, **args: trainer_for(head, tmp_path / name, config_overrides=NO_DROPOUT, **args)
    )


def test_pretraining_gradient_accumulation_gives_the_same_loss_and_update(tmp_path):
    """The pretraining loss is a mean over the batch's own tokens, which Trainer divides by the accumulation steps.
    A `noise` column gives every sample the same mask in either batching."""
    config = SpectralGPTConfig(**TINY)
    num_tokens = config.num_spectral_groups * (config.image_size // config.patch_size) ** 2
    noise = np.random.default_rng(1).random((4, num_tokens), dtype=np.float32)
    data = Dataset.from_dict({"pixel_values": images(4, 0), "noise": noise}).with_format("torch")

    def make_trainer(name, **args):
        torch.manual_seed(0)
        training_args = TrainingArguments(output_dir=str(tmp_path / name), save_strategy="no", report_to=[],
                                          use_cpu=True, seed=0, dataloader_num_workers=0, **args)  # fmt: skip
        return Trainer(model=SpectralGPTForPreTraining(config), args=training_args, train_dataset=data)

    updated = assert_accumulation_gives_the_same_step(make_trainer)
    torch.manual_seed(0)
    initial = dict(SpectralGPTForPreTraining(config).named_parameters())
    assert not torch.equal(updated["decoder.prediction.weight"], initial["decoder.prediction.weight"])


def test_pretraining_reports_an_evaluation_loss(tmp_path):
    """With no labels, Trainer learns from `return_loss=True` in the signature that the model returns a loss."""
    torch.manual_seed(0)
    model = SpectralGPTForPreTraining(SpectralGPTConfig(**TINY))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to=[], use_cpu=True)
    data = Dataset.from_dict({"pixel_values": images(4, 0)}).with_format("torch")
    metrics = Trainer(model=model, args=args, eval_dataset=data).evaluate()
    assert np.isfinite(metrics["eval_loss"])


def test_layer_decay_in_one_call(tmp_path):
    trainer = trainer_for("single_label", tmp_path, max_steps=2)
    model, args = trainer.model, trainer.args
    trainer = Trainer(
        model=model, args=args, train_dataset=trainer.train_dataset,
        optimizer_cls_and_kwargs=layer_decay_optimizer(model, args, layer_decay=0.75),
    )  # fmt: skip
    trainer.train()
    rates = sorted({group["initial_lr"] for group in trainer.optimizer.param_groups})
    assert rates == pytest.approx([3e-3 * 0.75**k for k in (3, 2, 1, 0)])
