# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""SpectralGPT model configuration."""

import math
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers.backbone_utils import BackboneConfigMixin
from transformers.configuration_utils import PreTrainedConfig

# SpectralGPT's band order: Sentinel-2 without the cirrus band B10.
SENTINEL2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]

# Encoder sizes of the paper's models (Hong et al., TPAMI 2024): 86M / 303M / 630M parameters.
VARIANTS = {
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    "huge": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16, "intermediate_size": 5120},
}


@strict
class SpectralGPTConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""
    Configuration of a SpectralGPT model. The defaults give SpectralGPT+ (base, 128 px, 12 Sentinel-2 bands);
    `SpectralGPTConfig.from_variant("large", image_size=96)` gives the other sizes of the paper.

    Tokens are 3D: `spectral_patch_size` consecutive bands x `patch_size` x `patch_size` pixels, so a 12-band
    128 x 128 image gives 4 spectral groups x 16 x 16 = 1024 tokens, ordered group-major then row-major.

    Args:
        image_size: side of the square input the position tables are trained for.
        patch_size: spatial side of a token in pixels.
        num_bands: number of input bands; a multiple of `spectral_patch_size`.
        spectral_patch_size: consecutive bands per token.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: encoder sizes.
        hidden_act: activation of the MLPs.
        layer_norm_eps: epsilon of every LayerNorm.
        qkv_bias: bias on the query, key and value projections.
        attention_probs_dropout_prob: dropout on attention weights (0 in every published model).
        drop_path_rate: stochastic depth at the last encoder block, increasing linearly from 0 at the first.
        initializer_range: std of the position tables and the mask token at initialisation.
        decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads, decoder_intermediate_size:
            sizes of the masked-autoencoder decoder (pretraining only).
        mask_ratio: share of tokens removed during pretraining.
        norm_pix_loss: normalise each target token by its mean and variance in the reconstruction term.
        band_names: name of each input band, in input order.
        position_embedding_type: "separable" (the pretrained models, and the default): a spatial table plus a
            spectral table, summed per token. "joint": one table over all tokens, zero at initialisation, as in the
            original classification fine-tuning model (which discards the pretrained tables); it cannot be resized.
        pool_excludes_first_token: leave token 0 out of the mean that gives `pooler_output` (and the classifier's
            input). The original classification model does so, a leftover of MAE's CLS-token code; there is no CLS
            token here, so the default keeps every token.
        neck_intermediate_sizes: width of the 1x1 convolution of each level of the segmentation / change-detection
            neck, finest level first. Level i is upsampled by 2**(levels - 1 - i): x8, x4, x2, x1 for 4 levels.
        neck_hidden_sizes: channels of each neck level's output (after its transposed convolution). The coarsest
            level has no transposed convolution, so its two sizes must be equal.
        neck_norm_groups: GroupNorm groups in the neck.
        neck_dropout_prob: dropout at the end of each neck level (0.5 in the original segmentation model, 0 in the
            change-detection one).
        decode_head_hidden_size: channels of the pyramid pooling and FPN decoder.
        decode_head_norm_groups: GroupNorm groups in the decoder.
        pool_scales: output sizes of the adaptive max pooling of the pyramid pooling module.
        pyramid_pooling_dropout_prob: dropout after the pyramid pooling module's fusion (0.5 in segmentation, 0 in
            change detection).
        decode_head_dropout_prob: dropout after each FPN lateral, output and final fusion convolution (0.5 in both
            original models).
        semantic_loss_ignore_index: label value the segmentation and change-detection losses ignore.
        change_detection_class_weights: weight of each class in the change-detection loss, or None for an
            unweighted loss. The original OSCD training used `[FP_MODIFIER * 2 * p, 2 * (1 - p)]` (no change,
            change), with p the fraction of changed pixels in the training set and FP_MODIFIER = 10.
        backbone_feature_scales: resampling factor of each map [`SpectralGPTBackbone`] returns, one per
            `out_indices` entry, each a power of two (>1: bilinear upsampling, <1: max pooling). None gives
            [4, 2, 1, 0.5] for four maps and 1 for every map otherwise.
        out_features, out_indices: encoder blocks the backbone returns (`stage{i}` is the output of block i).
    """

    model_type = "spectralgpt"

    image_size: int = 128
    patch_size: int = 8
    num_bands: int = 12
    spectral_patch_size: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.0
    initializer_range: float = 0.02
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 4
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    mask_ratio: float | int = 0.9
    norm_pix_loss: bool = False
    band_names: list[str] | None = None
    position_embedding_type: Literal["separable", "joint"] = "separable"
    pool_excludes_first_token: bool = False
    neck_intermediate_sizes: list[int] | tuple[int, ...] = (512, 512, 1024, 2048)
    neck_hidden_sizes: list[int] | tuple[int, ...] = (256, 512, 1024, 2048)
    neck_norm_groups: int = 32
    neck_dropout_prob: float | int = 0.5
    decode_head_hidden_size: int = 256
    decode_head_norm_groups: int = 16
    pool_scales: list[int] | tuple[int, ...] = (1, 2, 3, 6)
    pyramid_pooling_dropout_prob: float | int = 0.5
    decode_head_dropout_prob: float | int = 0.5
    semantic_loss_ignore_index: int = 255
    change_detection_class_weights: list[float | int] | None = None
    backbone_feature_scales: list[float | int] | None = None
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    def __post_init__(self, **kwargs):
        if self.band_names is None:
            self.band_names = list(SENTINEL2_BANDS) if self.num_bands == len(SENTINEL2_BANDS) else None
        # Lists, not the tuple defaults, so that a saved and reloaded config compares equal.
        for name in ("neck_intermediate_sizes", "neck_hidden_sizes", "pool_scales"):
            setattr(self, name, list(getattr(self, name)))
        self.stage_names = ["stem"] + [f"stage{index}" for index in range(1, self.num_hidden_layers + 1)]
        self.set_output_features_output_indices(
            out_indices=kwargs.pop("out_indices", None), out_features=kwargs.pop("out_features", None)
        )
        super().__post_init__(**kwargs)

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> "SpectralGPTConfig":
        """The configuration of a model size of the paper ("base", "large" or "huge"); kwargs override fields."""
        if variant not in VARIANTS:
            raise ValueError(f"Unknown SpectralGPT variant {variant!r}; choose one of {sorted(VARIANTS)}.")
        return cls(**{**VARIANTS[variant], **kwargs})

    @property
    def num_spectral_groups(self) -> int:
        return self.num_bands // self.spectral_patch_size

    @property
    def num_patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.num_spectral_groups * self.num_patches_per_side**2

    def validate_architecture(self):
        """Runs at construction: refuses sizes the tokenizer or attention cannot split evenly."""
        for name in ("image_size", "patch_size", "num_bands", "spectral_patch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        if self.num_bands % self.spectral_patch_size != 0:
            raise ValueError(
                f"num_bands ({self.num_bands}) must be divisible by spectral_patch_size ({self.spectral_patch_size}):"
                " each token covers that many consecutive bands. Drop or add bands, or change spectral_patch_size."
            )
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"image_size ({self.image_size}) must be divisible by patch_size ({self.patch_size}). "
                f"Use e.g. image_size={self.image_size // self.patch_size * self.patch_size}."
            )
        for prefix in ("", "decoder_"):
            hidden, heads = getattr(self, f"{prefix}hidden_size"), getattr(self, f"{prefix}num_attention_heads")
            if hidden % heads != 0:
                raise ValueError(
                    f"{prefix}hidden_size ({hidden}) must be divisible by {prefix}num_attention_heads ({heads})."
                )
        if self.band_names is not None and len(self.band_names) != self.num_bands:
            raise ValueError(
                f"band_names lists {len(self.band_names)} bands but num_bands is {self.num_bands}; "
                "give one name per input band, in input order."
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}.")
        if self.backbone_feature_scales is not None:
            for scale in self.backbone_feature_scales:
                if scale <= 0 or not math.log2(scale).is_integer():
                    raise ValueError(
                        f"backbone_feature_scales must be powers of two (e.g. [4, 2, 1, 0.5]), got "
                        f"{self.backbone_feature_scales}."
                    )

    def validate_dense_prediction_head(self):
        """Runs at construction: sizes of the segmentation / change-detection neck and decoder."""
        intermediate, hidden = self.neck_intermediate_sizes, self.neck_hidden_sizes
        if len(intermediate) != len(hidden) or len(hidden) < 2:
            raise ValueError(
                f"neck_intermediate_sizes {intermediate} and neck_hidden_sizes {hidden} must list the same number "
                "of levels (at least 2), finest first."
            )
        if intermediate[-1] != hidden[-1]:
            raise ValueError(
                f"The coarsest neck level has no transposed convolution, so neck_intermediate_sizes[-1] "
                f"({intermediate[-1]}) must equal neck_hidden_sizes[-1] ({hidden[-1]})."
            )
        if any(size % self.neck_norm_groups for size in intermediate):
            raise ValueError(
                f"neck_intermediate_sizes {intermediate} must be divisible by neck_norm_groups "
                f"({self.neck_norm_groups}) for GroupNorm."
            )
        if self.decode_head_hidden_size % self.decode_head_norm_groups:
            raise ValueError(
                f"decode_head_hidden_size ({self.decode_head_hidden_size}) must be divisible by "
                f"decode_head_norm_groups ({self.decode_head_norm_groups}) for GroupNorm."
            )
        weights = self.change_detection_class_weights
        if weights is not None and (len(weights) != self.num_labels or any(weight < 0 for weight in weights)):
            raise ValueError(
                f"change_detection_class_weights must give one non-negative weight per class ({self.num_labels}: "
                f"num_labels), got {weights}."
            )


__all__ = ["SpectralGPTConfig", "SENTINEL2_BANDS", "VARIANTS"]
