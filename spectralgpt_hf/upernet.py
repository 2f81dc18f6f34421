# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""transformers' UperNet on a pretrained SpectralGPT encoder. Kept out of modeling_spectralgpt.py, which ships to
the Hub as remote code and holds only the SpectralGPT models."""

import os

from transformers import UperNetConfig, UperNetForSemanticSegmentation

from .modeling_spectralgpt import SpectralGPTBackbone


def upernet_from_pretrained(
    checkpoint_dir: str | os.PathLike,
    num_labels: int,
    out_indices: list[int] | tuple[int, ...] = (4, 6, 8, 12),
    backbone_kwargs: dict | None = None,
    **upernet_kwargs,
) -> UperNetForSemanticSegmentation:
    """
    A transformers UperNet whose backbone is a pretrained SpectralGPT encoder (UperNet itself only builds randomly
    initialised backbones). The decoder is new.

    Args:
        checkpoint_dir: a `save_pretrained` folder of any SpectralGPT model with the encoder (pretraining,
            classification, segmentation, ...).
        num_labels: classes of the segmentation.
        out_indices: encoder blocks whose outputs feed UperNet; the default taps blocks 4, 6, 8 and 12 of the base
            model (3, 5, 7, 11 counting from 0), as other SpectralGPT benchmarks do.
        backbone_kwargs: configuration overrides for the backbone, e.g. `{"drop_path_rate": 0.1}`.
        upernet_kwargs: [`transformers.UperNetConfig`] fields, e.g. `hidden_size=512`, `use_auxiliary_head=False`.

    Raises:
        ValueError: the folder lacks some encoder weight.
    """
    backbone, loading_info = SpectralGPTBackbone.from_pretrained(
        checkpoint_dir, out_indices=list(out_indices), output_loading_info=True, **(backbone_kwargs or {})
    )
    if loading_info["missing_keys"]:
        raise ValueError(
            f"{checkpoint_dir} lacks encoder weights {sorted(loading_info['missing_keys'])}; give a folder of a "
            "SpectralGPT model that holds the encoder (e.g. a converted SpectralGPT+.pth)."
        )
    config = UperNetConfig(backbone_config=backbone.config, num_labels=num_labels, **upernet_kwargs)
    model = UperNetForSemanticSegmentation(config)
    model.backbone.load_state_dict(backbone.state_dict())
    return model

__all__ = ["upernet_from_pretrained"]
