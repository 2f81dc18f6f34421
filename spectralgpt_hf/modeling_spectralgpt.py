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
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
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
        # Token index = group * rows * cols + row * cols + col, as in the original.
        return embeddings.flatten(3).permute(0, 2, 3, 1).flatten(1, 2)


class SpectralGPTPositionEmbeddings(nn.Module):
    """
    Learned position tables: one over spatial positions and one over spectral groups, summed per token.

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
        spatial, spectral = self.spatial, self.spectral
        if (rows, cols) != (self.grid_size, self.grid_size) or num_groups != self.num_groups:
            if not interpolate:
                raise ValueError(
                    f"The input gives {num_groups} spectral groups x {rows} x {cols} patches but the position tables "
                    f"were trained for {self.num_groups} x {self.grid_size} x {self.grid_size}. Pass "
                    "`interpolate_pos_encoding=True` to resize them, or resize the input to the model's image_size "
                    "and band count."
                )
            spatial = self.resize_spatial(spatial, rows, cols)
            spectral = nn.functional.interpolate(
                spectral.transpose(1, 2), size=num_groups, mode="linear", align_corners=False
            ).transpose(1, 2)
        return spatial.repeat(1, num_groups, 1) + spectral.repeat_interleave(rows * cols, dim=1)

    def resize_spatial(self, table: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Bicubic resize of a (1, grid*grid, D) spatial table to (1, rows*cols, D)."""
        if (rows, cols) == (self.grid_size, self.grid_size):
            return table
        dim = table.shape[-1]
        grid = table.reshape(1, self.grid_size, self.grid_size, dim).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid.float(), size=(rows, cols), mode="bicubic", align_corners=False)
        return grid.to(table.dtype).permute(0, 2, 3, 1).reshape(1, rows * cols, dim)


class SpectralGPTEmbeddings(nn.Module):
    """Tokenizer plus position tables."""

    def __init__(self, config: SpectralGPTConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = SpectralGPTPatchEmbeddings(config)
        self.position_embeddings = SpectralGPTPositionEmbeddings(config, config.hidden_size)

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
    _can_record_outputs = {"hidden_states": SpectralGPTLayer, "attentions": SpectralGPTAttention}
    _input_embed_layer = "patch_embeddings"

    def _init_weights(self, module):
        """As the original: Xavier-uniform linears and tokenizer, N(0, 0.02) position tables and mask token."""
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
        elif isinstance(module, SpectralGPTPositionEmbeddings):
            init.trunc_normal_(module.spatial, std=self.config.initializer_range)
            init.trunc_normal_(module.spectral, std=self.config.initializer_range)
        elif isinstance(module, SpectralGPTDecoder):
            init.normal_(module.mask_token, std=self.config.initializer_range)
        else:
            super()._init_weights(module)


def drop_path_rates(config: SpectralGPTConfig) -> list[float]:
    """Stochastic depth growing linearly from 0 at the first block to `drop_path_rate` at the last."""
    if config.num_hidden_layers == 1:
        return [float(config.drop_path_rate)]
    step = config.drop_path_rate / (config.num_hidden_layers - 1)
    return [step * index for index in range(config.num_hidden_layers)]


class SpectralGPTModel(SpectralGPTPreTrainedModel):
    """
    The SpectralGPT encoder. `last_hidden_state` holds one vector per 3D token (after the final LayerNorm), in the
    original token order: index = spectral_group * rows * cols + row * cols + col. `pooler_output` is the final
    LayerNorm of the mean of the last block's tokens, the pooling the classification head uses.
    """

    def __init__(self, config: SpectralGPTConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = SpectralGPTEmbeddings(config)
        self.layers = nn.ModuleList([SpectralGPTLayer(config, rate) for rate in drop_path_rates(config)])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
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

        return BaseModelOutputWithPooling(
            last_hidden_state=self.layernorm(hidden_states),
            pooler_output=self.layernorm(hidden_states.mean(dim=1)),
        )


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
        self.position_embeddings = SpectralGPTPositionEmbeddings(config, config.decoder_hidden_size)
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


__all__ = ["SpectralGPTModel", "SpectralGPTForPreTraining", "SpectralGPTPreTrainedModel"]
