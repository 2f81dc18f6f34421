# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""PyTorch SpectralGPT: a ViT over 3D spatial-spectral tokens of multispectral images (Hong et al., TPAMI 2024)."""

import math
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.backbone_utils import BackboneMixin, filter_output_hidden_states
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BackboneOutput,
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    SemanticSegmenterOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_spectralgpt import SpectralGPTConfig


@dataclass
class SpectralGPTForPreTrainingOutput(ModelOutput):
    """
    Output of [`SpectralGPTForPreTraining`].

    Args:
        loss: masked-token reconstruction MSE plus the spectral-sum term of the original SpectralGPT.
        logits: `(batch_size, num_tokens, spectral_patch_size * patch_size**2)` predicted pixels of every token,
            tokens in the original order; [`SpectralGPTForPreTraining.unpatchify`] turns them into an image.
        mask: `(batch_size, num_tokens)`, 1 for removed tokens, 0 for visible ones.
        ids_restore: `(batch_size, num_tokens)` indices that undo the random shuffle of the tokens.
        hidden_states, attentions: of the encoder, when requested.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.LongTensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SpectralGPTChangeDetectionOutput(ModelOutput):
    """
    Output of [`SpectralGPTForChangeDetection`].

    Args:
        loss: class-weighted cross-entropy, when labels are given.
        logits: `(batch_size, num_labels, height, width)` scores of no change / change.
        hidden_states, attentions: of the encoder on the first date (`pixel_values`), when requested.
        hidden_states_2, attentions_2: of the encoder on the second date (`pixel_values_2`), when requested.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    hidden_states_2: tuple[torch.FloatTensor, ...] | None = None
    attentions_2: tuple[torch.FloatTensor, ...] | None = None


def token_grid(config: SpectralGPTConfig, pixel_values: torch.Tensor) -> tuple[int, int, int]:
    """(spectral groups, patch rows, patch columns) of the token grid of `pixel_values` (B, bands, H, W)."""
    _, num_bands, height, width = pixel_values.shape
    return num_bands // config.spectral_patch_size, height // config.patch_size, width // config.patch_size


class SpectralGPTPatchEmbeddings(nn.Module):
    """Conv3d tokenizer: bands become the depth axis of a one-channel volume, cut into 3D tokens."""

    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        self.spectral_patch_size = config.spectral_patch_size
        self.patch_size = config.patch_size
        kernel = (config.spectral_patch_size, config.patch_size, config.patch_size)
        self.projection = nn.Conv3d(1, config.hidden_size, kernel_size=kernel, stride=kernel)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have shape (batch_size, num_bands, height, width), got {tuple(pixel_values.shape)}."
            )
        _, num_bands, height, width = pixel_values.shape
        if num_bands % self.spectral_patch_size or height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"pixel_values of {num_bands} bands x {height} x {width} px cannot be cut into tokens of "
                f"{self.spectral_patch_size} bands x {self.patch_size} x {self.patch_size} px: the band count must be"
                f" a multiple of {self.spectral_patch_size} and the height and width multiples of {self.patch_size}."
            )
        embeddings = self.projection(pixel_values.unsqueeze(1))  # (B, D, groups, rows, cols)
        # Token index = group * rows * cols + row * cols + col, as in the original. Contiguous, because elementwise
        # ops keep their input's layout: a permuted residual stream would make every LayerNorm copy it.
        return embeddings.flatten(3).permute(0, 2, 3, 1).flatten(1, 2).contiguous()


def position_grid_mismatch(trained_grid: tuple[int, int, int], grid: tuple[int, int, int]) -> ValueError:
    """The error for an input whose token grid is not the one the position tables were trained for."""
    return ValueError(
        f"The input gives {grid[0]} spectral groups x {grid[1]} x {grid[2]} patches but the position tables "
        f"were trained for {trained_grid[0]} x {trained_grid[1]} x {trained_grid[2]}. Pass "
        "`interpolate_pos_encoding=True` to resize them, or resize the input to the model's image_size "
        "and band count."
    )


class SpectralGPTSeparablePositionEmbeddings(nn.Module):
    """
    The pretrained models' learned position tables (`position_embedding_type="separable"`): one over spatial
    positions and one over spectral groups, summed per token.

    With `interpolate=True` the spatial table is resized bicubically to another token grid and the spectral table
    linearly to another number of groups. The original code has neither; both are additions of this port.
    """

    def __init__(self, config: SpectralGPTConfig, hidden_size: int):
        super().__init__()
        self.grid_size = config.num_patches_per_side
        self.num_groups = config.num_spectral_groups
        self.spatial = nn.Parameter(torch.zeros(1, self.grid_size**2, hidden_size))
        self.spectral = nn.Parameter(torch.zeros(1, self.num_groups, hidden_size))

    def forward(self, num_groups: int, rows: int, cols: int, interpolate: bool = False) -> torch.Tensor:
        trained_grid = (self.num_groups, self.grid_size, self.grid_size)
        if (num_groups, rows, cols) == trained_grid:
            return self.combine(self.spatial, self.spectral, rows, cols)
        if not interpolate:
            raise position_grid_mismatch(trained_grid, (num_groups, rows, cols))
        spectral = nn.functional.interpolate(
            self.spectral.transpose(1, 2), size=num_groups, mode="linear", align_corners=False
        ).transpose(1, 2)
        return self.combine(self.resize_spatial(self.spatial, rows, cols), spectral, rows, cols)

    @staticmethod
    def combine(spatial: torch.Tensor, spectral: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Token t * rows * cols + s gets spatial[s] + spectral[t]."""
        return spatial.repeat(1, spectral.shape[1], 1) + spectral.repeat_interleave(rows * cols, dim=1)

    def resize_spatial(self, table: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Bicubic resize of a (1, grid*grid, D) spatial table to (1, rows*cols, D)."""
        if (rows, cols) == (self.grid_size, self.grid_size):
            return table
        dim = table.shape[-1]
        grid = table.reshape(1, self.grid_size, self.grid_size, dim).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid.float(), size=(rows, cols), mode="bicubic", align_corners=False)
        return grid.to(table.dtype).permute(0, 2, 3, 1).reshape(1, rows * cols, dim)


class SpectralGPTJointPositionEmbeddings(nn.Module):
    """
    The original classification fine-tuning model's learned position table (`position_embedding_type="joint"`): one
    vector per token. It covers exactly the trained token grid and cannot be resized.
    """

    def __init__(self, config: SpectralGPTConfig, hidden_size: int):
        super().__init__()
        self.trained_grid = (config.num_spectral_groups, config.num_patches_per_side, config.num_patches_per_side)
        self.joint = nn.Parameter(torch.zeros(1, config.num_tokens, hidden_size))

    def forward(self, num_groups: int, rows: int, cols: int, interpolate: bool = False) -> torch.Tensor:
        if (num_groups, rows, cols) == self.trained_grid:
            return self.joint
        if not interpolate:
            raise position_grid_mismatch(self.trained_grid, (num_groups, rows, cols))
        groups, grid_rows, grid_cols = self.trained_grid
        raise ValueError(
            f"A joint position table (position_embedding_type='joint') covers exactly {groups} spectral "
            f"groups x {grid_rows} x {grid_cols} patches and cannot be resized to {num_groups} x {rows}"
            f" x {cols}. Resize the input to the model's image_size and band count."
        )


# position_embedding_type -> the class of its tables
POSITION_EMBEDDINGS = {
    "separable": SpectralGPTSeparablePositionEmbeddings,
    "joint": SpectralGPTJointPositionEmbeddings,
}


class SpectralGPTEmbeddings(nn.Module):
    """Tokenizer plus position tables."""

    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = SpectralGPTPatchEmbeddings(config)
        self.position_embeddings = POSITION_EMBEDDINGS[config.position_embedding_type](config, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        embeddings = self.patch_embeddings(pixel_values)
        return embeddings + self.position_embeddings(
            *token_grid(self.config, pixel_values), interpolate=interpolate_pos_encoding
        )


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
):
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class SpectralGPTAttention(nn.Module):
    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = self.o_proj(attn_output.reshape(*input_shape, -1))
        return attn_output, attn_weights


class SpectralGPTMLP(nn.Module):
    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class SpectralGPTDropPath(nn.Module):
    """Stochastic depth: drops the residual branch of whole samples while training."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        keep = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * keep / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class SpectralGPTLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block."""

    def __init__(self, config: SpectralGPTConfig, drop_path_rate: float = 0.0):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = SpectralGPTAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = SpectralGPTMLP(config)
        self.drop_path = SpectralGPTDropPath(drop_path_rate)

    def forward(self, hidden_states: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> torch.Tensor:
        attention_output, _ = self.attention(self.layernorm_before(hidden_states), **kwargs)
        hidden_states = hidden_states + self.drop_path(attention_output)
        return hidden_states + self.drop_path(self.mlp(self.layernorm_after(hidden_states)))


def drop_path_rates(config: SpectralGPTConfig) -> list[float]:
    """Stochastic depth growing linearly from 0 at the first block to `drop_path_rate` at the last."""
    if config.num_hidden_layers == 1:
        return [float(config.drop_path_rate)]
    step = config.drop_path_rate / (config.num_hidden_layers - 1)
    return [step * index for index in range(config.num_hidden_layers)]


class SpectralGPTDecoder(nn.Module):
    """Masked-autoencoder decoder: fills removed tokens with a learned mask token and predicts every token's pixels."""

    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        self.config = config
        decoder_config = deepcopy(config)
        decoder_config.hidden_size = config.decoder_hidden_size
        decoder_config.num_hidden_layers = config.decoder_num_hidden_layers
        decoder_config.num_attention_heads = config.decoder_num_attention_heads
        decoder_config.intermediate_size = config.decoder_intermediate_size
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        position_embeddings_class = POSITION_EMBEDDINGS[config.position_embedding_type]
        self.position_embeddings = position_embeddings_class(config, config.decoder_hidden_size)
        self.layers = nn.ModuleList([SpectralGPTLayer(decoder_config) for _ in range(config.decoder_num_hidden_layers)])
        self.layernorm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.prediction = nn.Linear(
            config.decoder_hidden_size, config.spectral_patch_size * config.patch_size**2, bias=True
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        ids_restore: torch.LongTensor,
        grid: tuple[int, int, int],
        interpolate_pos_encoding: bool = False,
    ) -> torch.Tensor:
        hidden_states = self.decoder_embed(hidden_states)
        batch_size, num_visible, dim = hidden_states.shape
        mask_tokens = self.mask_token.expand(batch_size, ids_restore.shape[1] - num_visible, dim)
        hidden_states = torch.cat([hidden_states, mask_tokens], dim=1)
        hidden_states = torch.gather(hidden_states, dim=1, index=ids_restore.unsqueeze(-1).expand(-1, -1, dim))
        hidden_states = hidden_states + self.position_embeddings(*grid, interpolate=interpolate_pos_encoding)
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return self.prediction(self.layernorm(hidden_states))


def resize_aligned(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True, as everywhere in the original segmentation head."""
    if features.shape[-2:] == tuple(size):
        return features
    return nn.functional.interpolate(features, size=size, mode="bilinear", align_corners=True)


class SpectralGPTSpectralFusion(nn.Module):
    """Learned weighted sum (with bias) over the spectral groups: (B, groups * rows * cols, D) -> (B, D, rows, cols)."""

    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, config.num_spectral_groups))
        self.bias = nn.Parameter(torch.empty(1))

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        groups, rows, cols = grid
        if groups != self.weight.shape[1]:
            raise ValueError(
                f"The input has {groups} spectral groups but the spectral fusion was built for {self.weight.shape[1]}"
                " (num_bands / spectral_patch_size); give the model the band count it was built for."
            )
        batch_size, _, dim = tokens.shape
        tokens = tokens.reshape(batch_size, groups, rows, cols, dim).permute(0, 4, 2, 3, 1)
        return nn.functional.linear(tokens, self.weight, self.bias).squeeze(-1)


class SpectralGPTConvBlock(nn.Module):
    """1x1 convolution, GroupNorm and GELU, then an optional transposed convolution that upsamples, then dropout."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_groups: int,
        dropout_prob: float,
        upsampling_factor: int = 1,
        out_channels: int | None = None,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, hidden_channels, kernel_size=1)
        self.norm = nn.GroupNorm(num_groups, hidden_channels)
        self.activation = nn.GELU()
        self.upsample = (
            nn.ConvTranspose2d(hidden_channels, out_channels, kernel_size=upsampling_factor, stride=upsampling_factor)
            if upsampling_factor > 1
            else nn.Identity()
        )
        self.dropout = nn.Dropout(dropout_prob)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.upsample(self.activation(self.norm(self.conv(features)))))


class SpectralGPTNeck(nn.Module):
    """
    One feature map in, `len(config.neck_hidden_sizes)` maps out, finest first: level i is upsampled
    2**(levels - 1 - i) times (x8, x4, x2, x1 for the original four levels).
    """

    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        num_levels = len(config.neck_hidden_sizes)
        self.levels = nn.ModuleList(
            SpectralGPTConvBlock(
                config.hidden_size,
                intermediate_size,
                config.neck_norm_groups,
                config.neck_dropout_prob,
                upsampling_factor=2 ** (num_levels - 1 - index),
                out_channels=hidden_size,
            )
            for index, (intermediate_size, hidden_size) in enumerate(
                zip(config.neck_intermediate_sizes, config.neck_hidden_sizes)
            )
        )

    def forward(self, feature_map: torch.Tensor) -> list[torch.Tensor]:
        return [level(feature_map) for level in self.levels]


class SpectralGPTPyramidPooling(nn.Module):
    """
    Pyramid pooling on the coarsest map: adaptive max pooling to each of `config.pool_scales`, a 1x1 convolution,
    upsampling back; the pooled maps and the input are concatenated and fused.
    """

    def __init__(self, config: SpectralGPTConfig, in_channels: int):
        super().__init__()
        hidden_size = config.decode_head_hidden_size
        self.pool_scales = config.pool_scales
        self.projections = nn.ModuleList(nn.Conv2d(in_channels, hidden_size, kernel_size=1) for _ in self.pool_scales)
        self.bottleneck = SpectralGPTConvBlock(
            in_channels + len(self.pool_scales) * hidden_size,
            hidden_size,
            config.decode_head_norm_groups,
            config.pyramid_pooling_dropout_prob,
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        size = features.shape[-2:]
        pooled = [
            resize_aligned(projection(nn.functional.adaptive_max_pool2d(features, scale)), size)
            for scale, projection in zip(self.pool_scales, self.projections)
        ]
        return self.bottleneck(torch.cat([*pooled, features], dim=1))


class SpectralGPTDecodeHead(nn.Module):
    """
    The original segmentation and change-detection decoder: pyramid pooling on the coarsest neck map, a top-down
    path adding each finer map (lateral block) and refining the sum (output block), all levels upsampled to the
    finest, concatenated and fused, then a 3x3 convolution to one score per class.
    """

    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        hidden_size, groups = config.decode_head_hidden_size, config.decode_head_norm_groups
        dropout = config.decode_head_dropout_prob
        *finer_sizes, coarsest_size = config.neck_hidden_sizes
        self.pyramid_pooling = SpectralGPTPyramidPooling(config, coarsest_size)
        self.pooling_projection = nn.Conv2d(hidden_size, hidden_size, kernel_size=1)
        self.lateral_blocks = nn.ModuleList(
            SpectralGPTConvBlock(size, hidden_size, groups, dropout) for size in finer_sizes
        )
        self.output_blocks = nn.ModuleList(
            SpectralGPTConvBlock(hidden_size, hidden_size, groups, dropout) for _ in finer_sizes
        )
        self.fusion = SpectralGPTConvBlock(hidden_size * len(config.neck_hidden_sizes), hidden_size, groups, dropout)
        self.classifier = nn.Conv2d(hidden_size, config.num_labels, kernel_size=3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        level_outputs = [self.pyramid_pooling(features[-1])]
        # A 1x1 convolution commutes with the aligned bilinear upsampling: it runs at the coarse size.
        hidden_states = self.pooling_projection(level_outputs[0])
        for level in reversed(range(len(features) - 1)):
            hidden_states = resize_aligned(hidden_states, features[level].shape[-2:])
            hidden_states = self.output_blocks[level](hidden_states + self.lateral_blocks[level](features[level]))
            level_outputs.append(hidden_states)
        finest_size = features[0].shape[-2:]
        fused = self.fusion(torch.cat([resize_aligned(output, finest_size) for output in level_outputs], dim=1))
        return self.classifier(fused)


def resize_to_input(logits: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
    """The decoder's finest level is at pixel resolution for 8-pixel patches; other patch sizes are resized."""
    if logits.shape[-2:] == pixel_values.shape[-2:]:
        return logits
    return nn.functional.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)


def resample(feature_map: torch.Tensor, scale: float) -> torch.Tensor:
    """Parameter-free resampling by a power of two: bilinear upsampling, or max pooling to go down."""
    if scale > 1:
        return nn.functional.interpolate(feature_map, scale_factor=scale, mode="bilinear", align_corners=False)
    if scale < 1:
        return nn.functional.max_pool2d(feature_map, kernel_size=round(1 / scale))
    return feature_map


class SpectralGPTPreTrainedModel(PreTrainedModel):
    config: SpectralGPTConfig
    base_model_prefix = "spectralgpt"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["SpectralGPTEmbeddings", "SpectralGPTLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {"hidden_states": SpectralGPTLayer, "attentions": SpectralGPTAttention}
    _input_embed_layer = "patch_embeddings"

    def _init_weights(self, module):
        """
        As the original: Xavier-uniform linears and tokenizer, N(0, 0.02) position tables and mask token. The
        convolutions of the dense-prediction heads get transformers' default N(0, initializer_range).
        """
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv3d):
            # The tokenizer: Xavier on the (hidden, bands * patch * patch) view, as for the equivalent linear layer;
            # PyTorch's default uniform bias.
            fan_out, fan_in = module.weight.shape[0], math.prod(module.weight.shape[1:])
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            init.uniform_(module.weight, -bound, bound)
            init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5)
        elif isinstance(module, SpectralGPTSeparablePositionEmbeddings):
            init.trunc_normal_(module.spatial, std=self.config.initializer_range)
            init.trunc_normal_(module.spectral, std=self.config.initializer_range)
        elif isinstance(module, SpectralGPTJointPositionEmbeddings):
            init.zeros_(module.joint)  # as the original classification model
        elif isinstance(module, SpectralGPTDecoder):
            init.normal_(module.mask_token, std=self.config.initializer_range)
        elif isinstance(module, SpectralGPTSpectralFusion):
            # Starts as the mean over spectral groups.
            init.constant_(module.weight, 1.0 / module.weight.shape[1])
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)


class SpectralGPTModel(SpectralGPTPreTrainedModel):
    """
    The SpectralGPT encoder. `last_hidden_state` holds one vector per 3D token (after the final LayerNorm), in the
    original token order: index = spectral_group * rows * cols + row * cols + col. `pooler_output` is the final
    LayerNorm of the mean of the last block's tokens (all of them, or all but token 0 with
    `config.pool_excludes_first_token`), the pooling the classification head uses.

    With `add_final_layernorm=False` (the segmentation, change-detection and backbone models, which read the blocks'
    outputs as they are) there is no final LayerNorm: `last_hidden_state` is the last block's output and
    `pooler_output` is None.
    """

    # Loading the encoder out of a pretraining checkpoint is the documented use: its masked-autoencoder decoder
    # (blocks, mask token, position tables) is left out without a load report.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def __init__(self, config: SpectralGPTConfig, add_final_layernorm: bool = True):
        super().__init__(config)
        self.config = config
        self.embeddings = SpectralGPTEmbeddings(config)
        self.layers = nn.ModuleList([SpectralGPTLayer(config, rate) for rate in drop_path_rates(config)])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if add_final_layernorm else None
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        visible_token_indices: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""
        Args:
            pixel_values: `(batch_size, num_bands, height, width)`, bands in `config.band_names` order.
            interpolate_pos_encoding: resize the position tables to another image size or band count (a multiple
                of `spectral_patch_size`). Not in the original SpectralGPT.
            visible_token_indices: `(batch_size, num_visible)`; when given only these tokens enter the encoder, in
                this order (used by masked pretraining).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required: a (batch_size, num_bands, height, width) tensor.")
        pixel_values = pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)
        hidden_states = self.embeddings(pixel_values, interpolate_pos_encoding=bool(interpolate_pos_encoding))
        if visible_token_indices is not None:
            index = visible_token_indices.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])
            hidden_states = torch.gather(hidden_states, dim=1, index=index)

        for layer in self.layers:
            hidden_states = layer(hidden_states, **kwargs)

        if self.layernorm is None:
            return BaseModelOutputWithPooling(last_hidden_state=hidden_states)
        # The original classification model leaves out token 0, a leftover of MAE's CLS-token code.
        pooled_tokens = hidden_states[:, 1:] if self.config.pool_excludes_first_token else hidden_states
        return BaseModelOutputWithPooling(
            last_hidden_state=self.layernorm(hidden_states),
            pooler_output=self.layernorm(pooled_tokens.mean(dim=1)),
        )


class SpectralGPTForPreTraining(SpectralGPTPreTrainedModel):
    """
    SpectralGPT as pretrained: random masking over all 3D tokens, the encoder on the visible ones, a decoder that
    predicts every token, and the original loss (masked-token MSE plus a spectral-sum term over all positions).
    """

    # The loss is a mean over the batch's own tokens: Trainer must divide it by the accumulation steps itself.
    accepts_loss_kwargs = False

    def __init__(self, config: SpectralGPTConfig):
        super().__init__(config)
        self.spectralgpt = SpectralGPTModel(config)
        self.decoder = SpectralGPTDecoder(config)
        self.post_init()

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, bands, H, W) -> (B, num_tokens, spectral_patch_size * patch_size**2), features ordered (band, row, col)."""
        batch_size = pixel_values.shape[0]
        groups, rows, cols = token_grid(self.config, pixel_values)
        size, patch = self.config.spectral_patch_size, self.config.patch_size
        patches = pixel_values.reshape(batch_size, groups, size, rows, patch, cols, patch)
        patches = patches.permute(0, 1, 3, 5, 2, 4, 6)
        return patches.reshape(batch_size, groups * rows * cols, size * patch * patch)

    def unpatchify(
        self, patches: torch.Tensor, image_size: tuple[int, int] | None = None, num_bands: int | None = None
    ) -> torch.Tensor:
        """Inverse of `patchify`; `image_size` (height, width) and `num_bands` default to the config's."""
        height, width = image_size or (self.config.image_size, self.config.image_size)
        num_bands = num_bands or self.config.num_bands
        size, patch = self.config.spectral_patch_size, self.config.patch_size
        groups, rows, cols = num_bands // size, height // patch, width // patch
        if patches.shape[1:] != (groups * rows * cols, size * patch * patch):
            raise ValueError(
                f"Expected patches of shape (batch, {groups * rows * cols}, {size * patch * patch}) for "
                f"{num_bands} bands x {height} x {width} px, got {tuple(patches.shape)}."
            )
        image = patches.reshape(patches.shape[0], groups, rows, cols, size, patch, patch)
        image = image.permute(0, 1, 4, 2, 5, 3, 6)
        return image.reshape(patches.shape[0], num_bands, height, width)

    def random_masking(
        self, batch_size: int, num_tokens: int, mask_ratio: float, noise: torch.Tensor | None, device: torch.device
    ) -> tuple[torch.LongTensor, torch.Tensor, torch.LongTensor]:
        """Keeps the `int(num_tokens * (1 - mask_ratio))` tokens of lowest noise; returns (kept ids, mask, restore)."""
        if noise is None:
            noise = torch.rand(batch_size, num_tokens, device=device)
        elif noise.shape != (batch_size, num_tokens):
            raise ValueError(f"noise must have shape ({batch_size}, {num_tokens}), got {tuple(noise.shape)}.")
        num_visible = int(num_tokens * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise.to(device), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones(batch_size, num_tokens, device=device)
        mask[:, :num_visible] = 0
        return ids_shuffle[:, :num_visible], torch.gather(mask, dim=1, index=ids_restore), ids_restore

    def forward_loss(self, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """loss1 (MSE over removed tokens) + loss3 (MSE of the sums over spectral groups, at every position)."""
        target = self.patchify(pixel_values).to(logits.dtype)
        pixel_target = target
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            pixel_target = (target - mean) / (var + 1.0e-6) ** 0.5
        masked_loss = ((logits - pixel_target) ** 2).mean(dim=-1)
        masked_loss = (masked_loss * mask).sum() / mask.sum()

        groups = token_grid(self.config, pixel_values)[0]
        batch_size, num_tokens, features = logits.shape
        spectral_sum = lambda tokens: tokens.reshape(batch_size, groups, num_tokens // groups, features).sum(dim=1)
        spectral_sum_loss = ((spectral_sum(logits) - spectral_sum(target)) ** 2).mean()
        return masked_loss + spectral_sum_loss

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        interpolate_pos_encoding: bool | None = None,
        return_loss: bool = True,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SpectralGPTForPreTrainingOutput:
        r"""
        Args:
            pixel_values: `(batch_size, num_bands, height, width)`, normalised as in pretraining.
            noise: `(batch_size, num_tokens)` uniform draws deciding the mask (tokens sorted by ascending noise,
                the first `int(num_tokens * (1 - mask_ratio))` kept); drawn with `torch.rand` when omitted.
            mask_ratio: overrides `config.mask_ratio` for this call.
            interpolate_pos_encoding: resize the position tables to the input (see [`SpectralGPTModel`]).
            return_loss: compute the loss (Trainer relies on this argument to report an evaluation loss).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required: a (batch_size, num_bands, height, width) tensor.")
        mask_ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        grid = token_grid(self.config, pixel_values)
        visible, mask, ids_restore = self.random_masking(
            pixel_values.shape[0], math.prod(grid), mask_ratio, noise, pixel_values.device
        )
        outputs = self.spectralgpt(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            visible_token_indices=visible,
            **kwargs,
        )
        logits = self.decoder(
            outputs.last_hidden_state, ids_restore, grid, interpolate_pos_encoding=bool(interpolate_pos_encoding)
        )
        loss = self.forward_loss(pixel_values, logits, mask) if return_loss else None
        return SpectralGPTForPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=mask,
            ids_restore=ids_restore,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class SpectralGPTForImageClassification(SpectralGPTPreTrainedModel):
    """
    SpectralGPT with a linear classifier on `pooler_output`. `config.problem_type` picks the loss:
    "single_label_classification" (cross-entropy on class indices), "multi_label_classification" (BCE on multi-hot
    float labels) or "regression"; when unset it is inferred from the labels on the first call.

    The defaults keep the pretrained separable position tables and pool over every token. The original fine-tuning
    model is `position_embedding_type="joint"` and `pool_excludes_first_token=True` (what the converter sets for its
    checkpoints).
    """

    def __init__(self, config: SpectralGPTConfig):
        super().__init__(config)
        self.spectralgpt = SpectralGPTModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        if module is self.classifier:
            # As the original fine-tuning does for a new head.
            init.trunc_normal_(module.weight, std=2e-5)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    @property
    def accepts_loss_kwargs(self) -> bool:
        """Whether Trainer may pass `num_items_in_batch`: only the single-label cross-entropy divides by it."""
        return self.config.problem_type == "single_label_classification"

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ImageClassifierOutput:
        r"""
        Args:
            pixel_values: `(batch_size, num_bands, height, width)`.
            labels: `(batch_size,)` class indices, or `(batch_size, num_labels)` floats: multi-hot for multi-label,
                class probabilities for single-label (as `spectralgpt_hf.training.mixup.MixupCutmix` makes them; the loss is
                then the soft-target cross-entropy).
            interpolate_pos_encoding: resize separable position tables to the input (see [`SpectralGPTModel`]).
        """
        outputs = self.spectralgpt(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        soft_targets = labels is not None and labels.is_floating_point() and labels.ndim == 2
        if soft_targets and self.config.problem_type == "single_label_classification":
            loss = fixed_cross_entropy(logits, labels.to(logits.dtype), **kwargs)
        elif labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class SpectralGPTDensePredictionModel(SpectralGPTPreTrainedModel):
    """
    What the segmentation and change-detection models share: the encoder without its final LayerNorm (they read the
    last block's output as it is), the spectral fusion, the neck and the decoder.
    """

    # Their losses average over the batch's own labelled pixels; Trainer's item count would include ignored ones.
    accepts_loss_kwargs = False

    def __init__(self, config: SpectralGPTConfig):
        super().__init__(config)
        self.spectralgpt = SpectralGPTModel(config, add_final_layernorm=False)
        self.spectral_fusion = SpectralGPTSpectralFusion(config)
        self.neck = SpectralGPTNeck(config)
        self.decode_head = SpectralGPTDecodeHead(config)
        self.post_init()

    def decode(self, feature_map: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class scores at the input's resolution from a fused (batch_size, hidden_size, rows, cols) map."""
        return resize_to_input(self.decode_head(self.neck(feature_map)), pixel_values)


class SpectralGPTForSemanticSegmentation(SpectralGPTDensePredictionModel):
    """
    The original SegMunich segmentation model: the encoder's last block (no final LayerNorm), a learned fusion of
    the spectral groups into one (hidden_size, rows, cols) map, a four-level neck and a pyramid pooling + FPN
    decoder. `logits` are `(batch_size, num_labels, height, width)` scores at input resolution.
    """

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SemanticSegmenterOutput:
        r"""
        Args:
            pixel_values: `(batch_size, num_bands, height, width)`.
            labels: `(batch_size, height, width)` class indices; `config.semantic_loss_ignore_index` marks pixels
                without a label.
            interpolate_pos_encoding: resize the position tables to the input (see [`SpectralGPTModel`]).
        """
        outputs = self.spectralgpt(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        feature_map = self.spectral_fusion(outputs.last_hidden_state, token_grid(self.config, pixel_values))
        logits = self.decode(feature_map, pixel_values)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, ignore_index=self.config.semantic_loss_ignore_index)
        return SemanticSegmenterOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class SpectralGPTForChangeDetection(SpectralGPTDensePredictionModel):
    """
    The original OSCD change-detection model: both dates go through the shared encoder (last block, no final
    LayerNorm) and the spectral fusion; the difference of the two maps (first minus second) feeds the same neck and
    decoder as [`SpectralGPTForSemanticSegmentation`]. The original has no dropout in the neck and after the pyramid
    pooling: `neck_dropout_prob=0` and `pyramid_pooling_dropout_prob=0` (the converter sets both).

    `logits` are `(batch_size, num_labels, height, width)` scores (class 0 no change, 1 change); the original's
    output is their `log_softmax` over classes. The loss is the cross-entropy (NLL of that log_softmax) weighted by
    `config.change_detection_class_weights`.
    """

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        pixel_values_2: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SpectralGPTChangeDetectionOutput:
        r"""
        Args:
            pixel_values: `(batch_size, num_bands, height, width)`, the first date.
            pixel_values_2: the second date, the same shape and bands in the same order.
            labels: `(batch_size, height, width)`, 1 where the scene changed, 0 elsewhere;
                `config.semantic_loss_ignore_index` marks pixels without a label.
            interpolate_pos_encoding: resize the position tables to the input (see [`SpectralGPTModel`]).
        """
        if pixel_values is None or pixel_values_2 is None:
            raise ValueError(
                "Change detection needs both dates: pixel_values and pixel_values_2, each a "
                "(batch_size, num_bands, height, width) tensor."
            )
        if pixel_values.shape != pixel_values_2.shape:
            raise ValueError(
                f"The two dates must have the same shape (batch_size, num_bands, height, width), got pixel_values "
                f"{tuple(pixel_values.shape)} and pixel_values_2 {tuple(pixel_values_2.shape)}. Give both dates the "
                "same bands in the same order, on the same pixel grid."
            )
        outputs = self.spectralgpt(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        outputs_2 = self.spectralgpt(pixel_values_2, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        grid = token_grid(self.config, pixel_values)
        feature_map = self.spectral_fusion(outputs.last_hidden_state, grid)
        feature_map_2 = self.spectral_fusion(outputs_2.last_hidden_state, grid)
        logits = self.decode(feature_map - feature_map_2, pixel_values)
        loss = None
        if labels is not None:
            weights = self.config.change_detection_class_weights
            loss = nn.functional.cross_entropy(
                logits,
                labels,
                weight=None if weights is None else logits.new_tensor(weights),
                ignore_index=self.config.semantic_loss_ignore_index,
            )
        return SpectralGPTChangeDetectionOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            hidden_states_2=outputs_2.hidden_states,
            attentions_2=outputs_2.attentions,
        )


class SpectralGPTBackbone(BackboneMixin, SpectralGPTPreTrainedModel):
    """
    The encoder as a backbone of 4D feature maps, e.g. for [`transformers.UperNetForSemanticSegmentation`]. Stage
    `stage{i}` is the output of block i (`stem`: the embeddings), with no final LayerNorm. The spectral groups are
    concatenated along the channels (channel `group * hidden_size + d`), so every map has
    `hidden_size * num_spectral_groups` channels; each map is then resampled by its `config.backbone_feature_scales`
    entry (default for four maps: x4, x2, x1, x0.5, a pyramid). The resampling has no parameters: every weight of the
    backbone comes from a SpectralGPT checkpoint.
    """

    def __init__(self, config: SpectralGPTConfig):
        super().__init__(config)
        self.spectralgpt = SpectralGPTModel(config, add_final_layernorm=False)
        self.num_features = [config.hidden_size * config.num_spectral_groups] * len(config.stage_names)
        scales = config.backbone_feature_scales
        if scales is None:
            scales = [4, 2, 1, 0.5] if len(self.out_indices) == 4 else [1] * len(self.out_indices)
        if len(scales) != len(self.out_indices):
            raise ValueError(
                f"backbone_feature_scales {scales} must give one scale per out_indices entry {self.out_indices}."
            )
        self.feature_scales = scales
        self.post_init()

    @can_return_tuple
    @filter_output_hidden_states
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BackboneOutput:
        r"""
        Args:
            pixel_values: `(batch_size, num_bands, height, width)` with `config.num_bands` bands (the channel count of
                the maps depends on it).
            interpolate_pos_encoding: resize the position tables to another image size (see [`SpectralGPTModel`]).
        """
        if pixel_values is not None and pixel_values.shape[1] != self.config.num_bands:
            raise ValueError(
                f"The backbone takes {self.config.num_bands} bands (its maps have hidden_size x spectral groups "
                f"channels), got {pixel_values.shape[1]}."
            )
        outputs = self.spectralgpt(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        groups, rows, cols = token_grid(self.config, pixel_values)
        feature_maps = []
        for index, scale in zip(self.out_indices, self.feature_scales):
            tokens = outputs.hidden_states[index]
            batch_size, _, dim = tokens.shape
            feature_map = tokens.reshape(batch_size, groups, rows, cols, dim).permute(0, 1, 4, 2, 3)
            feature_maps.append(resample(feature_map.reshape(batch_size, groups * dim, rows, cols), scale))
        return BackboneOutput(
            feature_maps=tuple(feature_maps), hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "SpectralGPTBackbone",
    "SpectralGPTForChangeDetection",
    "SpectralGPTForImageClassification",
    "SpectralGPTForPreTraining",
    "SpectralGPTForSemanticSegmentation",
    "SpectralGPTModel",
    "SpectralGPTPreTrainedModel",
]
