# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""The model to pretrain: a new one of a variant, or one continued from a pretraining model, possibly at another
image size (progressive training)."""

from __future__ import annotations

from ...configuration_spectralgpt import SpectralGPTConfig
from ...loading import load_model
from ...modeling_spectralgpt import SpectralGPTForPreTraining
from .arguments import PretrainingArguments


def continue_at_image_size(
    source: SpectralGPTForPreTraining, image_size: int, reinitialize_position_embeddings: bool = False
) -> SpectralGPTForPreTraining:
    """
    A copy of `source` for `image_size` (progressive training): the spatial position tables of the encoder and the
    decoder are resized bicubically to the new token grid, or, with `reinitialize_position_embeddings`, drawn
    afresh (trunc-normal, std `initializer_range`) as stage 2 of the original did. Every other weight is copied.
    """
    config = SpectralGPTConfig.from_dict({**source.config.to_dict(), "image_size": image_size})
    model = SpectralGPTForPreTraining(config)
    state_dict = source.state_dict()
    grid = config.num_patches_per_side
    for name in ("spectralgpt.embeddings.position_embeddings", "decoder.position_embeddings"):
        source_tables, new_tables = source.get_submodule(name), model.get_submodule(name)
        if reinitialize_position_embeddings:
            state_dict[f"{name}.spatial"] = new_tables.spatial.detach()
        else:
            state_dict[f"{name}.spatial"] = source_tables.resize_spatial(source_tables.spatial.detach(), grid, grid)
    model.load_state_dict(state_dict)
    return model


def build_model(args: PretrainingArguments) -> SpectralGPTForPreTraining:
    if args.init_from is not None:
        source = load_model(args.init_from, SpectralGPTForPreTraining, strict=True)
        model = continue_at_image_size(
            source, args.image_size or source.config.image_size, args.reinitialize_position_embeddings
        )
    else:
        model = SpectralGPTForPreTraining(new_model_config(args))
    model.config.mask_ratio = args.mask_ratio
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model.train()


def new_model_config(args: PretrainingArguments) -> SpectralGPTConfig:
    """The configuration of `--variant` with `--image_size` and `--config_overrides`."""
    config_fields = {} if args.image_size is None else {"image_size": args.image_size}
    if args.config_overrides:
        # Parses each value as its field's type and rejects unknown fields; the config is then built anew so
        # that fields derived from others (the backbone's stage names) follow.
        draft = SpectralGPTConfig.from_variant(args.variant)
        draft.update_from_string(args.config_overrides)
        names = [item.split("=", 1)[0].strip() for item in args.config_overrides.split(",")]
        config_fields.update({name: getattr(draft, name) for name in names})
    return SpectralGPTConfig.from_variant(args.variant, **config_fields)
