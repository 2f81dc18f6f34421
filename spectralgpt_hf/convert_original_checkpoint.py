# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Conversion of the published SpectralGPT checkpoints (`.pth` files of the original code) to this package.

The files are read with `torch.load(weights_only=True)`, allowing only `argparse.Namespace` besides tensors and
containers, so loading never runs arbitrary pickled code. The model configuration is inferred from the tensors,
every key is mapped explicitly, and any key left over, missing or of the wrong shape is an error.

Kinds of file: "pretrain" (`SpectralGPT.pth`, `SpectralGPT+.pth`), "classifier" (a checkpoint of the original
classification fine-tuning), "segmentation" (`model_3con_loss_51_0.pth`, SegMunich) and "change_detection"
(`spectralGPT+_54_28.pth`, OSCD).
"""

import argparse
import math
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .configuration_spectralgpt import SENTINEL2_BANDS, VARIANTS, SpectralGPTConfig
from .utils.atomic import atomic_folder
from .image_processing_spectralgpt import SpectralGPTImageProcessor
from .modeling_spectralgpt import (
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTPreTrainedModel,
)

# Original key -> key in this package, per kind of file. Applied in order; the first match wins.
ENCODER_RENAMES = [
    (r"^pos_embed_spatial$", "spectralgpt.embeddings.position_embeddings.spatial"),
    (r"^pos_embed_temporal$", "spectralgpt.embeddings.position_embeddings.spectral"),
    (r"^patch_embed\.proj\.", "spectralgpt.embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.", r"spectralgpt.layers.\1."),
]
FINAL_NORM_RENAMES = [(r"^norm\.", "spectralgpt.layernorm.")]
DECODER_RENAMES = [
    (r"^mask_token$", "decoder.mask_token"),
    (r"^decoder_embed\.", "decoder.decoder_embed."),
    (r"^decoder_pos_embed_spatial$", "decoder.position_embeddings.spatial"),
    (r"^decoder_pos_embed_temporal$", "decoder.position_embeddings.spectral"),
    (r"^decoder_blocks\.(\d+)\.", r"decoder.layers.\1."),
    (r"^decoder_norm\.", "decoder.layernorm."),
    (r"^decoder_pred\.", "decoder.prediction."),
]
CLASSIFIER_RENAMES = [
    (r"^pos_embed$", "spectralgpt.embeddings.position_embeddings.joint"),
    (r"^head\.", "classifier."),
]
# The original neck and decoder blocks are nn.Sequential: conv, GroupNorm, GELU, [ConvTranspose2d,] Dropout.
CONV_BLOCK_PARTS = {"0": "conv", "1": "norm", "3": "upsample"}


def conv_block_part(index: str) -> str:
    """Unknown indices stay numbers, so that the key is reported as one the model does not have."""
    return CONV_BLOCK_PARTS.get(index, index)


DENSE_HEAD_RENAMES = [
    (r"^fc\.0\.", "spectral_fusion."),
    (r"^conv(\d+)\.(\d+)\.", lambda m: f"neck.levels.{m[1]}.{conv_block_part(m[2])}."),
    (r"^decoder\.PPMHead\.psp_modules\.(\d+)\.1\.", r"decode_head.pyramid_pooling.projections.\1."),
    (
        r"^decoder\.PPMHead\.final\.(\d+)\.",
        lambda m: f"decode_head.pyramid_pooling.bottleneck.{conv_block_part(m[1])}.",
    ),
    (r"^decoder\.conv_x1\.", "decode_head.pooling_projection."),
    # Conv_fuse{k} (lateral) and Conv_fuse{k}_ (output) work on neck level 3 - k: Conv_fuse1 on the 2x map.
    (
        r"^decoder\.Conv_fuse(\d)(_?)\.(\d+)\.",
        lambda m: f"decode_head.{'output' if m[2] else 'lateral'}_blocks.{3 - int(m[1])}.{conv_block_part(m[3])}.",
    ),
    (r"^decoder\.fuse_all\.(\d+)\.", lambda m: f"decode_head.fusion.{conv_block_part(m[1])}."),
    (r"^cls_seg\.0\.", "decode_head.classifier."),
]
# Inside a transformer block.
BLOCK_RENAMES = [
    (r"\.norm1\.", ".layernorm_before."),
    (r"\.norm2\.", ".layernorm_after."),
    (r"\.attn\.(q|k|v)\.", r".attention.\1_proj."),
    (r"\.attn\.proj\.", ".attention.o_proj."),
]
KEY_RENAMES = {
    "pretrain": ENCODER_RENAMES + FINAL_NORM_RENAMES + DECODER_RENAMES,
    "classifier": ENCODER_RENAMES + FINAL_NORM_RENAMES + CLASSIFIER_RENAMES,
    "segmentation": ENCODER_RENAMES + DENSE_HEAD_RENAMES,
    "change_detection": ENCODER_RENAMES + DENSE_HEAD_RENAMES,
}
# Tensors the original model holds but never uses, left out on purpose: the dense models read the last block
# before the final LayerNorm (their `norm` is the pretrained one, untouched by fine-tuning).
UNUSED_KEYS = {"segmentation": r"^norm\.", "change_detection": r"^norm\."}
MODEL_CLASSES = {
    "pretrain": SpectralGPTForPreTraining,
    "classifier": SpectralGPTForImageClassification,
    "segmentation": SpectralGPTForSemanticSegmentation,
    "change_detection": SpectralGPTForChangeDetection,
}
DENSE_KINDS = {"segmentation", "change_detection"}
# The image processor saved beside a converted model of a kind whose inputs are not the 12 Sentinel-2 bands that
# SpectralGPTImageProcessor takes by default: SegMunich's 12 channels are its 10 bands and their mean twice.
KIND_IMAGE_PROCESSORS = {"segmentation": SpectralGPTImageProcessor.for_segmunich}


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One of the authors' published files: what it converts to and the preprocessing it was trained with."""

    kind: str
    image_processor: Callable[[], SpectralGPTImageProcessor]

    @property
    def model_class(self) -> type[SpectralGPTPreTrainedModel]:
        return MODEL_CLASSES[self.kind]


# The authors' published files, by file name.
PUBLISHED_CHECKPOINTS = {
    "SpectralGPT.pth": PublishedCheckpoint("pretrain", SpectralGPTImageProcessor.for_pretraining),
    "SpectralGPT+.pth": PublishedCheckpoint("pretrain", SpectralGPTImageProcessor.for_pretraining),
    "model_3con_loss_51_0.pth": PublishedCheckpoint("segmentation", KIND_IMAGE_PROCESSORS["segmentation"]),
    "spectralGPT+_54_28.pth": PublishedCheckpoint("change_detection", SpectralGPTImageProcessor.for_oscd),
}
# Heads per width of the paper's models: attention heads are not recorded in the tensors.
HEADS_BY_HIDDEN_SIZE = {variant["hidden_size"]: variant["num_attention_heads"] for variant in VARIANTS.values()}


class CheckpointConversionError(ValueError):
    """The file is not a SpectralGPT checkpoint this converter knows, or its tensors do not fit the model."""


def load_original_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict, frozenset[str]]:
    """
    Reads an original `.pth` file safely. Returns the state_dict, the training arguments as a dict, and the file's
    top-level keys when it wraps the state_dict under 'model' (empty for a bare state_dict).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointConversionError(
            f"{path} holds objects other than tensors and training arguments, so it is not loaded (loading it would "
            f"run arbitrary pickled code). It is not a published SpectralGPT checkpoint. Details: {error}"
        ) from error
    # a damaged or foreign file fails inside the reader (a zip without torch's records, a pickle stream that
    # refers to objects it never stored: KeyError, IndexError); loading stays weights-only either way
    except (RuntimeError, EOFError, LookupError, ValueError) as error:
        raise CheckpointConversionError(
            f"{path} is not a readable PyTorch checkpoint (damaged, or not written by torch.save): "
            f"{type(error).__name__}: {error}. Download the original file again."
        ) from error

    args, container_keys = {}, frozenset()
    if isinstance(content, dict) and isinstance(content.get("model"), dict):
        args = vars(content["args"]) if isinstance(content.get("args"), argparse.Namespace) else {}
        container_keys = frozenset(content)
        content = content["model"]
    if not isinstance(content, dict) or not content or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise CheckpointConversionError(
            f"{path} is not a SpectralGPT checkpoint: expected a state_dict of tensors, or a dict with one under "
            "'model'."
        )
    # Weights saved from DataParallel carry a "module." prefix.
    if all(key.startswith("module.") for key in content):
        content = {key[len("module.") :]: value for key, value in content.items()}
    return content, args, container_keys


def detect_kind(state_dict: dict[str, torch.Tensor], container_keys: frozenset[str] = frozenset()) -> str:
    """
    Which published model a state_dict comes from. `container_keys`: the file's top-level keys when it wraps the
    state_dict (see `load_original_checkpoint`).
    """
    if "patch_embed.proj.weight" not in state_dict or "blocks.0.attn.q.weight" not in state_dict:
        raise CheckpointConversionError(
            "Not a SpectralGPT checkpoint: it has no 'patch_embed.proj.weight' / 'blocks.0.attn.q.weight' tensors. "
            f"First keys: {sorted(state_dict)[:8]}"
        )
    if "decoder_pred.weight" in state_dict:
        return "pretrain"
    if "head.weight" in state_dict:
        return "classifier"
    if "cls_seg.0.weight" in state_dict:
        # Both dense models have the same tensors. The SegMunich script saves {'model', 'optimizer',
        # 'lr_scheduler', ...}; the OSCD script saves the bare state_dict of a model that always has 2 classes.
        if "lr_scheduler" in container_keys or state_dict["cls_seg.0.weight"].shape[0] != 2:
            return "segmentation"
        return "change_detection"
    raise CheckpointConversionError(
        "Unrecognised SpectralGPT checkpoint: no decoder_pred (pretraining), head (classification) or cls_seg "
        "(segmentation, change detection) tensors. "
        f"Keys outside the encoder: {sorted(k for k in state_dict if not k.startswith('blocks.'))[:20]}"
    )


def count_blocks(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    """1 + the largest i of the keys `{prefix}{i}.*` (`prefix` is a regular expression)."""
    indices = {int(m.group(1)) for key in state_dict if (m := re.match(rf"^{prefix}(\d+)\.", key))}
    return max(indices) + 1 if indices else 0


def shape_of(state_dict: dict[str, torch.Tensor], key: str) -> torch.Size:
    if key not in state_dict:
        raise CheckpointConversionError(f"The checkpoint lacks {key}, which tells the model's configuration.")
    return state_dict[key].shape


def config_from_state_dict(state_dict: dict[str, torch.Tensor], kind: str, args: dict, overrides: dict) -> dict:
    """
    Infers the model configuration from tensor shapes, the training arguments where tensors are silent, and
    `overrides` where neither tells (attention heads of other widths, the band count of a joint position table).
    """
    hidden_size, _, spectral_patch_size, patch_size, _ = shape_of(state_dict, "patch_embed.proj.weight")
    num_heads = overrides.get("num_attention_heads", HEADS_BY_HIDDEN_SIZE.get(hidden_size))
    if num_heads is None:
        raise CheckpointConversionError(
            f"Hidden size {hidden_size} is none of the paper's models ({sorted(HEADS_BY_HIDDEN_SIZE)}), so the number"
            " of attention heads is unknown; pass it in config_overrides={'num_attention_heads': ...}."
        )
    if kind == "classifier":
        # One joint table over all tokens does not tell the band count; the published models take 12 bands.
        num_bands = overrides.get("num_bands", len(SENTINEL2_BANDS))
        num_tokens, groups = shape_of(state_dict, "pos_embed")[1], num_bands // spectral_patch_size
        if groups == 0 or num_tokens % groups:
            raise CheckpointConversionError(
                f"pos_embed has {num_tokens} tokens, not a multiple of the {groups} spectral groups of {num_bands} "
                "bands; pass the model's band count in config_overrides={'num_bands': ...}."
            )
        num_spatial = num_tokens // groups
    else:
        num_spatial = shape_of(state_dict, "pos_embed_spatial")[1]
        num_bands = shape_of(state_dict, "pos_embed_temporal")[1] * spectral_patch_size
    grid = math.isqrt(num_spatial)
    if grid * grid != num_spatial:
        raise CheckpointConversionError(
            f"The position table has {num_spatial} spatial positions ({num_bands} bands), not a square grid."
        )
    config = {
        "hidden_size": hidden_size,
        "num_hidden_layers": count_blocks(state_dict, r"blocks\."),
        "num_attention_heads": num_heads,
        "intermediate_size": shape_of(state_dict, "blocks.0.mlp.fc1.weight")[0],
        "qkv_bias": "blocks.0.attn.q.bias" in state_dict,
        "patch_size": patch_size,
        "spectral_patch_size": spectral_patch_size,
        "image_size": grid * patch_size,
        "num_bands": num_bands,
    }
    if kind == "pretrain":
        config.update(
            decoder_hidden_size=shape_of(state_dict, "decoder_embed.weight")[0],
            decoder_num_hidden_layers=count_blocks(state_dict, r"decoder_blocks\."),
            decoder_intermediate_size=shape_of(state_dict, "decoder_blocks.0.mlp.fc1.weight")[0],
        )
        if isinstance(args.get("mask_ratio"), float):
            config["mask_ratio"] = args["mask_ratio"]
    elif kind == "classifier":
        drop_path = args.get("drop_path")
        config.update(
            position_embedding_type="joint",
            pool_excludes_first_token=True,
            num_labels=shape_of(state_dict, "head.weight")[0],
            # The fine-tuning recipes' stochastic depth (0.2) unless the file's arguments say otherwise.
            drop_path_rate=drop_path if isinstance(drop_path, float) else 0.2,
        )
    else:
        num_levels = max(count_blocks(state_dict, "conv"), 1)
        # The coarsest neck level has no transposed convolution.
        upsampling = [f"conv{level}.3.weight" for level in range(num_levels - 1)]
        config.update(
            num_labels=shape_of(state_dict, "cls_seg.0.weight")[0],
            drop_path_rate=0.5,  # the class default of both original models
            neck_intermediate_sizes=[shape_of(state_dict, f"conv{level}.0.weight")[0] for level in range(num_levels)],
            neck_hidden_sizes=[shape_of(state_dict, key)[1] for key in upsampling]
            + [shape_of(state_dict, f"conv{num_levels - 1}.0.weight")[0]],
            decode_head_hidden_size=shape_of(state_dict, "decoder.conv_x1.weight")[0],
        )
        if kind == "change_detection":
            config.update(neck_dropout_prob=0.0, pyramid_pooling_dropout_prob=0.0)
            if config["num_labels"] == 2:
                config["id2label"] = {0: "no change", 1: "change"}
    return config


def rename_key(key: str, renames: list[tuple[str, str]]) -> str | None:
    for pattern, replacement in renames:
        if re.search(pattern, key):
            new_key = re.sub(pattern, replacement, key)
            for block_pattern, block_replacement in BLOCK_RENAMES:
                new_key = re.sub(block_pattern, block_replacement, new_key)
            return new_key
    return None


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], kind: str, model: SpectralGPTPreTrainedModel
) -> dict[str, torch.Tensor]:
    """Maps every original key onto `model`'s keys; anything unmapped, missing or mis-shaped is an error."""
    converted, original_keys, unmapped = {}, {}, []
    for key, tensor in state_dict.items():
        if kind in UNUSED_KEYS and re.search(UNUSED_KEYS[kind], key):
            continue
        new_key = rename_key(key, KEY_RENAMES[kind])
        if new_key is None:
            unmapped.append(key)
        else:
            converted[new_key], original_keys[new_key] = tensor, key
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(f"{original_keys[key]} (as {key})" for key in set(converted) - set(expected))
    mismatched = [
        f"{key}: checkpoint {tuple(converted[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(converted) & set(expected))
        if converted[key].shape != expected[key].shape
    ]
    problems = [
        f"{title} ({len(keys)}): {', '.join(keys)}"
        for title, keys in (
            ("original keys with no mapping", unmapped),
            ("keys the model needs but the checkpoint lacks", missing),
            ("mapped keys the model does not have", unexpected),
            ("keys of the wrong shape", mismatched),
        )
        if keys
    ]
    if problems:
        raise CheckpointConversionError(f"Cannot convert this {kind} checkpoint:\n" + "\n".join(problems))
    return converted


def convert_original_checkpoint(
    path: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    config_overrides: dict | None = None,
    kind: str | None = None,
) -> SpectralGPTPreTrainedModel:
    """
    Converts an original SpectralGPT `.pth` file into a model of this package: [`SpectralGPTForPreTraining`],
    [`SpectralGPTForImageClassification`] (set up as the original: joint position table, token 0 left out of the
    pooling), [`SpectralGPTForSemanticSegmentation`] or [`SpectralGPTForChangeDetection`].

    Args:
        path: the published file (`SpectralGPT.pth`, `SpectralGPT+.pth`, `model_3con_loss_51_0.pth`,
            `spectralGPT+_54_28.pth`) or a checkpoint of the original classification fine-tuning.
        output_dir: when given, the model is written there with `save_pretrained` (safetensors + config.json;
            a segmentation model also gets SegMunich's image processor, preprocessor_config.json).
        config_overrides: configuration fields the tensors cannot tell, e.g. `num_attention_heads` for a width
            none of the paper's models has, `num_bands` for a classifier not trained on 12 bands, or GroupNorm
            group counts.
        kind: "pretrain", "classifier", "segmentation" or "change_detection"; detected from the file when omitted.
            The two dense models have the same tensors: a file is taken for segmentation when it has SegMunich's
            layout ('model' and 'lr_scheduler' entries) or other than 2 classes, for change detection otherwise;
            pass `kind` to decide for a file that says neither.

    Returns:
        The converted model, in eval mode.
    """
    state_dict, args, container_keys = load_original_checkpoint(path)
    detected = detect_kind(state_dict, container_keys)
    if kind is None:
        kind = detected
    elif kind not in MODEL_CLASSES:
        raise ValueError(f"kind must be one of {sorted(MODEL_CLASSES)}, got {kind!r}.")
    elif kind != detected and not {kind, detected} <= DENSE_KINDS:
        raise CheckpointConversionError(f"{path} cannot be converted as {kind!r}: it holds a {detected} model.")
    overrides = config_overrides or {}
    config = SpectralGPTConfig(**{**config_from_state_dict(state_dict, kind, args, overrides), **overrides})
    # Built without memory and filled with the checkpoint's tensors: no random initialisation to throw away.
    with torch.device("meta"):
        model = MODEL_CLASSES[kind](config)
    model.load_state_dict(convert_state_dict(state_dict, kind, model), strict=True, assign=True)
    model.eval()
    if output_dir is not None:
        with atomic_folder(output_dir) as staging:
            model.save_pretrained(staging)
            if kind in KIND_IMAGE_PROCESSORS:
                # The processor builds the model's channels, for whole-scene inference among others.
                KIND_IMAGE_PROCESSORS[kind]().save_pretrained(staging)
    return model
