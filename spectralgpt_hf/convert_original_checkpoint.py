# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Conversion of the published SpectralGPT checkpoints (`.pth` files of the original code) to this package.

The files are read with `torch.load(weights_only=True)`, allowing only `argparse.Namespace` besides tensors and
containers, so loading never runs arbitrary pickled code. The model configuration is inferred from the tensors,
every key is mapped explicitly, and any key left over, missing or of the wrong shape is an error.
"""

import argparse
import math
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import torch

from .configuration_spectralgpt import VARIANTS, SpectralGPTConfig
from .modeling_spectralgpt import SpectralGPTForPreTraining, SpectralGPTPreTrainedModel

# Original key -> key in this package, per kind of file. Applied in order; the first match wins.
ENCODER_RENAMES = [
    (r"^pos_embed_spatial$", "spectralgpt.embeddings.position_embeddings.spatial"),
    (r"^pos_embed_temporal$", "spectralgpt.embeddings.position_embeddings.spectral"),
    (r"^patch_embed\.proj\.", "spectralgpt.embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.", r"spectralgpt.layers.\1."),
    (r"^norm\.", "spectralgpt.layernorm."),
]
DECODER_RENAMES = [
    (r"^mask_token$", "decoder.mask_token"),
    (r"^decoder_embed\.", "decoder.decoder_embed."),
    (r"^decoder_pos_embed_spatial$", "decoder.position_embeddings.spatial"),
    (r"^decoder_pos_embed_temporal$", "decoder.position_embeddings.spectral"),
    (r"^decoder_blocks\.(\d+)\.", r"decoder.layers.\1."),
    (r"^decoder_norm\.", "decoder.layernorm."),
    (r"^decoder_pred\.", "decoder.prediction."),
]
# Inside a transformer block.
BLOCK_RENAMES = [
    (r"\.norm1\.", ".layernorm_before."),
    (r"\.norm2\.", ".layernorm_after."),
    (r"\.attn\.(q|k|v)\.", r".attention.\1_proj."),
    (r"\.attn\.proj\.", ".attention.o_proj."),
]
KEY_RENAMES = {"pretrain": ENCODER_RENAMES + DECODER_RENAMES}
MODEL_CLASSES = {"pretrain": SpectralGPTForPreTraining}
# Heads per width of the paper's models: attention heads are not recorded in the tensors.
HEADS_BY_HIDDEN_SIZE = {variant["hidden_size"]: variant["num_attention_heads"] for variant in VARIANTS.values()}


class CheckpointConversionError(ValueError):
    """The file is not a SpectralGPT checkpoint this converter knows, or its tensors do not fit the model."""


def load_original_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Reads an original `.pth` file safely; returns (state_dict, training arguments as a dict)."""
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
    except (RuntimeError, EOFError) as error:
        raise CheckpointConversionError(f"{path} is not a readable PyTorch checkpoint: {error}") from error

    args = {}
    if isinstance(content, dict) and isinstance(content.get("model"), dict):
        args = vars(content["args"]) if isinstance(content.get("args"), argparse.Namespace) else {}
        content = content["model"]
    if not isinstance(content, dict) or not content or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise CheckpointConversionError(
            f"{path} is not a SpectralGPT checkpoint: expected a state_dict of tensors, or a dict with one under "
            "'model'."
        )
    # Weights saved from DataParallel carry a "module." prefix.
    if all(key.startswith("module.") for key in content):
        content = {key[len("module.") :]: value for key, value in content.items()}
    return content, args


def detect_kind(state_dict: dict[str, torch.Tensor]) -> str:
    """Which published model a state_dict comes from."""
    if "patch_embed.proj.weight" not in state_dict or "blocks.0.attn.q.weight" not in state_dict:
        raise CheckpointConversionError(
            "Not a SpectralGPT checkpoint: it has no 'patch_embed.proj.weight' / 'blocks.0.attn.q.weight' tensors. "
            f"First keys: {sorted(state_dict)[:8]}"
        )
    if "decoder_pred.weight" in state_dict:
        return "pretrain"
    raise CheckpointConversionError(
        "Unrecognised SpectralGPT checkpoint: no decoder_pred (pretraining) tensors. "
        f"Keys outside the encoder: {sorted(k for k in state_dict if not k.startswith('blocks.'))[:20]}"
    )


def count_blocks(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(m.group(1)) for key in state_dict if (m := re.match(rf"^{prefix}\.(\d+)\.", key))}
    return max(indices) + 1 if indices else 0


def config_from_state_dict(state_dict: dict[str, torch.Tensor], kind: str, args: dict) -> SpectralGPTConfig:
    """Infers the model configuration from tensor shapes (and the training arguments where tensors are silent)."""
    hidden_size, _, spectral_patch_size, patch_size, _ = state_dict["patch_embed.proj.weight"].shape
    if hidden_size not in HEADS_BY_HIDDEN_SIZE:
        raise CheckpointConversionError(
            f"Hidden size {hidden_size} is none of the paper's models ({sorted(HEADS_BY_HIDDEN_SIZE)}), so the number"
            " of attention heads is unknown; pass it in config_overrides={'num_attention_heads': ...}."
        )
    num_spatial = state_dict["pos_embed_spatial"].shape[1]
    grid = math.isqrt(num_spatial)
    if grid * grid != num_spatial:
        raise CheckpointConversionError(f"pos_embed_spatial has {num_spatial} positions, not a square grid.")
    config = {
        "hidden_size": hidden_size,
        "num_hidden_layers": count_blocks(state_dict, "blocks"),
        "num_attention_heads": HEADS_BY_HIDDEN_SIZE[hidden_size],
        "intermediate_size": state_dict["blocks.0.mlp.fc1.weight"].shape[0],
        "qkv_bias": "blocks.0.attn.q.bias" in state_dict,
        "patch_size": patch_size,
        "spectral_patch_size": spectral_patch_size,
        "image_size": grid * patch_size,
        "num_bands": state_dict["pos_embed_temporal"].shape[1] * spectral_patch_size,
    }
    if kind == "pretrain":
        config.update(
            decoder_hidden_size=state_dict["decoder_embed.weight"].shape[0],
            decoder_num_hidden_layers=count_blocks(state_dict, "decoder_blocks"),
            decoder_intermediate_size=state_dict["decoder_blocks.0.mlp.fc1.weight"].shape[0],
        )
        if isinstance(args.get("mask_ratio"), float):
            config["mask_ratio"] = args["mask_ratio"]
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


def save_atomically(model: SpectralGPTPreTrainedModel, output_dir: str | os.PathLike) -> None:
    """`save_pretrained` into a temporary folder beside `output_dir`, then swap it in: never a half-written folder."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        model.save_pretrained(staging)
        if output_dir.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old.", dir=output_dir.parent))
            os.replace(output_dir, previous / output_dir.name)
            os.replace(staging, output_dir)
            shutil.rmtree(previous)
        else:
            os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def convert_original_checkpoint(
    path: str | os.PathLike, output_dir: str | os.PathLike | None = None, config_overrides: dict | None = None
) -> SpectralGPTPreTrainedModel:
    """
    Converts an original SpectralGPT `.pth` file into a model of this package.

    Args:
        path: the published file (`SpectralGPT.pth`, `SpectralGPT+.pth`).
        output_dir: when given, the model is written there with `save_pretrained` (safetensors + config.json).
        config_overrides: configuration fields the tensors cannot tell, e.g. `num_attention_heads` for a width
            none of the paper's models has.

    Returns:
        The converted model, in eval mode.
    """
    state_dict, args = load_original_checkpoint(path)
    kind = detect_kind(state_dict)
    config = SpectralGPTConfig(**{**config_from_state_dict(state_dict, kind, args), **(config_overrides or {})})
    model = MODEL_CLASSES[kind](config)
    model.load_state_dict(convert_state_dict(state_dict, kind, model), strict=True)
    model.eval()
    if output_dir is not None:
        save_atomically(model, output_dir)
    return model
