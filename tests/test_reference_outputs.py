"""Converted original checkpoints reproduce the outputs of the original SpectralGPT code (tests/fixtures/reference:
one image per case; with SPECTRALGPT_SHARED, the full batches of its reference/ folder)."""

import pytest
import torch
from safetensors.torch import load_file

from transformers import AutoModelForImageClassification, AutoModelForSemanticSegmentation

from spectralgpt_hf import (
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTModel,
    convert_original_checkpoint,
)

TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}


def load_case(reference_dir, case):
    """A case's recorded inputs and outputs. The shrunk fixtures store the 128 px input images, common to several
    cases, once in cases/pixel_values_128.safetensors; a full case file holds its own."""
    expected = load_file(reference_dir / "cases" / f"{case}.safetensors")
    if "pixel_values" not in expected:
        expected["pixel_values"] = load_file(reference_dir / "cases" / "pixel_values_128.safetensors")["pixel_values"]
    return expected


def convert_case(reference_dir, make_weights, case, kind, tmp_path):
    manifest = make_weights.load_manifest(reference_dir / "manifests" / f"{case}.json")
    state_dict = make_weights.make_state_dict(manifest, seed=1)
    original = tmp_path / "original.pth"
    make_weights.write_original_checkpoint(kind, state_dict, original, args={"model": case, "mask_ratio": 0.9})
    output_dir = tmp_path / "converted"
    convert_original_checkpoint(original, output_dir)
    return output_dir, load_case(reference_dir, case)


@pytest.mark.parametrize("case", ["pretrain_base_128", "pretrain_base_96"])
def test_pretraining_checkpoint_reproduces_original(reference_dir, make_weights, case, tmp_path):
    output_dir, expected = convert_case(reference_dir, make_weights, case, "pretrain", tmp_path)
    model = SpectralGPTForPreTraining.from_pretrained(output_dir).eval()

    with torch.no_grad():
        outputs = model(expected["pixel_values"], noise=expected["noise"], mask_ratio=float(expected["mask_ratio"]))
    torch.testing.assert_close(outputs.mask, expected["mask"])
    torch.testing.assert_close(outputs.logits, expected["pred"], **TOLERANCE)
    torch.testing.assert_close(outputs.loss, expected["loss"], **TOLERANCE)

    encoder = SpectralGPTModel.from_pretrained(output_dir).eval()
    with torch.no_grad():
        hidden = encoder(expected["pixel_values"]).last_hidden_state
    torch.testing.assert_close(hidden, expected["encoder_last_hidden_state"], **TOLERANCE)


@pytest.mark.parametrize(
    "case, kind, auto_class, model_class",
    [
        ("classifier_base_128_nc10", "classifier", AutoModelForImageClassification, SpectralGPTForImageClassification),
        (
            "segmentation_base_128_nc13", "segmentation", AutoModelForSemanticSegmentation,
            SpectralGPTForSemanticSegmentation,
        ),
    ],
)  # fmt: skip
def test_downstream_checkpoint_reproduces_original(
    reference_dir, make_weights, tmp_path, case, kind, auto_class, model_class
):
    output_dir, expected = convert_case(reference_dir, make_weights, case, kind, tmp_path)
    model = auto_class.from_pretrained(output_dir).eval()
    assert isinstance(model, model_class)
    with torch.no_grad():
        logits = model(expected["pixel_values"]).logits
    torch.testing.assert_close(logits, expected["logits"], **TOLERANCE)


def test_change_detection_checkpoint_reproduces_original(reference_dir, make_weights, tmp_path):
    output_dir, expected = convert_case(
        reference_dir, make_weights, "change_detection_base_128", "change_detection", tmp_path
    )
    model = SpectralGPTForChangeDetection.from_pretrained(output_dir).eval()
    with torch.no_grad():
        logits = model(expected["pixel_values"], expected["pixel_values_2"]).logits
    torch.testing.assert_close(logits.log_softmax(dim=1), expected["log_probs"], **TOLERANCE)
