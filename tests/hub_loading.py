"""Loads every SpectralGPT class through transformers' Auto API, as a user of a published repository would, and runs
it on fixed inputs. Imports neither spectralgpt_hf nor the test packages unless `package` is set, so that
tests/hub/test_publishing.py can also run it in a process where spectralgpt_hf cannot be imported."""

import types
from unittest import mock

import torch
import transformers.models.auto.auto_factory as auto_factory
from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
    AutoModelForSemanticSegmentation,
)
from transformers.dynamic_module_utils import get_class_from_dynamic_module
from transformers.models.auto.image_processing_auto import AutoImageProcessor

BACKBONE_INDICES = [1, 2]


def load_every_class(
    sources: dict[str, str], data: dict[str, torch.Tensor], *, package: bool, trust_remote_code: bool, hub_answers: bool
) -> tuple[dict[str, str], dict[str, list]]:
    """
    Args:
        sources: a folder or Hub repo id per head ("encoder", "pretraining", "classification", "segmentation",
            "change_detection"); the config, backbone and image processor come from these too.
        data: `pixel_values`, `pixel_values_2`, `noise` and `image` (for the image processor).
        package: spectralgpt_hf is installed (change detection, which has no Auto class, then comes from it).
        trust_remote_code: passed to every Auto class.
        hub_answers: answer AutoBackbone.from_pretrained's question whether the repository exists, as the Hub would
            for a published repository (it asks even offline); otherwise load the backbone by its class.

    Returns:
        The class (module.name) of every loaded object, and the outputs of every model and of the image processor.
    """
    remote = {"trust_remote_code": True} if trust_remote_code else {}
    pixels, pixels_2 = data["pixel_values"], data["pixel_values_2"]
    classes, outputs = {}, {}

    def load(name, loader, *args, **kwargs):
        loaded = loader(*args, **kwargs)
        classes[name] = f"{type(loaded).__module__}.{type(loaded).__name__}"
        return loaded

    outputs["config"] = load("config", AutoConfig.from_pretrained, sources["encoder"], **remote).to_dict()
    with torch.no_grad():
        encoder = load("encoder", AutoModel.from_pretrained, sources["encoder"], **remote)(pixels)
        outputs["encoder"] = [encoder.last_hidden_state, encoder.pooler_output]
        pretraining = load("pretraining", AutoModelForPreTraining.from_pretrained, sources["pretraining"], **remote)
        result = pretraining(pixels, noise=data["noise"])
        outputs["pretraining"] = [result.logits, result.loss]
        for name, auto_class in (
            ("classification", AutoModelForImageClassification),
            ("segmentation", AutoModelForSemanticSegmentation),
        ):
            outputs[name] = [load(name, auto_class.from_pretrained, sources[name], **remote)(pixels).logits]

        if hub_answers:
            hub = types.SimpleNamespace(repo_exists=lambda repo_id: True)
            with mock.patch.object(auto_factory, "hf_api", lambda: hub):
                backbone = load(
                    "backbone",
                    AutoBackbone.from_pretrained,
                    sources["pretraining"],
                    out_indices=BACKBONE_INDICES,
                    **remote,
                )
        else:
            config = AutoConfig.from_pretrained(sources["pretraining"], out_indices=BACKBONE_INDICES, **remote)
            backbone_class = type(AutoBackbone.from_config(config, **remote))
            backbone = load(
                "backbone", backbone_class.from_pretrained, sources["pretraining"], out_indices=BACKBONE_INDICES
            )
        outputs["backbone"] = list(backbone(pixels).feature_maps)

        if package:
            from spectralgpt_hf import SpectralGPTForChangeDetection as change_class
        else:
            config = AutoConfig.from_pretrained(sources["change_detection"], trust_remote_code=True)
            change_class = get_class_from_dynamic_module(
                config.auto_map["AutoModelForChangeDetection"], sources["change_detection"]
            )
        change_detection = load("change_detection", change_class.from_pretrained, sources["change_detection"])
        outputs["change_detection"] = [change_detection(pixels, pixels_2).logits]

    processor = load("image_processor", AutoImageProcessor.from_pretrained, sources["encoder"], **remote)
    outputs["image_processor"] = [processor(data["image"], return_tensors="pt").pixel_values]
    return classes, outputs
