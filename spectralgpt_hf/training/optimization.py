"""Optimiser settings of the original SpectralGPT recipes: the learning rate scaled with the global batch,
layer-wise learning-rate decay for fine-tuning, and no weight decay on norms, biases, position tables and the mask
token.

With `Trainer`, layer-wise decay is one argument:

    trainer = Trainer(model, args, ..., optimizer_cls_and_kwargs=layer_decay_optimizer(model, args, layer_decay=0.75))

The learning-rate scheduler Trainer builds from `args` then scales every group's own learning rate.
"""

import re

import torch
from transformers import Trainer, TrainingArguments

# Parameters of the encoder's tokenizer and position tables sit below the first block; `layers.i` is block i.
EMBEDDINGS = re.compile(r"(^|\.)spectralgpt\.embeddings\.")
BLOCK = re.compile(r"(^|\.)spectralgpt\.layers\.(\d+)\.")
# The global batch at which `base_learning_rate` is the learning rate.
REFERENCE_BATCH_SIZE = 256


def global_batch_size(batch_size: int, gradient_accumulation_steps: int, world_size: int) -> int:
    """Samples per optimiser step: `batch_size` per process and forward pass, over every process and accumulated
    forward pass."""
    return batch_size * gradient_accumulation_steps * world_size


def scaled_learning_rate(
    base_learning_rate: float, batch_size: int, gradient_accumulation_steps: int = 1, world_size: int = 1
) -> float:
    """The original recipes' learning rate (their `--blr`): `base_learning_rate x global batch / 256`."""
    global_batch = global_batch_size(batch_size, gradient_accumulation_steps, world_size)
    return base_learning_rate * global_batch / REFERENCE_BATCH_SIZE


def adamw_kernel_options(device: torch.device | str, implementation: str = "auto") -> dict:
    """`torch.optim.AdamW` keyword arguments choosing its kernels: "fused" (one kernel over all parameters),
    "foreach" (batched per-op kernels), "for_loop" (one parameter at a time), or "auto": fused on the devices
    that have it (CUDA, XPU, MPS and, on the CPU, since torch 2.4), else foreach."""
    if implementation == "auto":
        implementation = "fused" if fused_adamw_available(torch.device(device)) else "foreach"
    if implementation not in ("fused", "foreach", "for_loop"):
        raise ValueError(f"Unknown AdamW implementation {implementation!r}: choose auto, fused, foreach or for_loop.")
    if implementation == "fused":
        return {"fused": True}
    return {"foreach": implementation == "foreach"}


def fused_adamw_available(device: torch.device) -> bool:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return device.type == "cuda"
    return device.type in _get_fused_kernels_supported_devices()


def uses_weight_decay(name: str, parameter: torch.nn.Parameter) -> bool:
    """Norm scales, biases, position tables and the mask token are not decayed."""
    return parameter.ndim > 1 and "position_embeddings" not in name and not name.endswith("mask_token")


def weight_decay_parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups of the trainable parameters: those decayed by `weight_decay`, and the rest
    (`uses_weight_decay`)."""
    decayed, not_decayed = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decayed if uses_weight_decay(name, parameter) else not_decayed).append(parameter)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": not_decayed, "weight_decay": 0.0}]


def layer_index(name: str, num_hidden_layers: int) -> int:
    """0 for the tokenizer and position tables, i + 1 for block i, num_hidden_layers + 1 for everything after."""
    if EMBEDDINGS.search(name):
        return 0
    if match := BLOCK.search(name):
        return int(match.group(2)) + 1
    return num_hidden_layers + 1


def layer_decay_parameter_groups(
    model: torch.nn.Module, learning_rate: float, weight_decay: float, layer_decay: float = 0.75
) -> list[dict]:
    """
    Parameter groups with learning rate `learning_rate * layer_decay ** (num_hidden_layers + 1 - layer_index)`, as the
    original fine-tuning (which used 0.75): the head trains at the full rate, the tokenizer at the smallest.

    Deviation from the original: there, the spatial and spectral position tables fell into the top group because of
    their names; here every position table is grouped with the tokenizer, as the joint table of the original was.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}.")
    num_hidden_layers = model.config.num_hidden_layers
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        index = layer_index(name, num_hidden_layers)
        decays = uses_weight_decay(name, parameter)
        group = groups.setdefault(
            (index, decays),
            {
                "params": [],
                "lr": learning_rate * layer_decay ** (num_hidden_layers + 1 - index),
                "weight_decay": weight_decay if decays else 0.0,
            },
        )
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


def layer_decay_optimizer(
    model: torch.nn.Module, args: TrainingArguments, layer_decay: float = 0.75
) -> tuple[type, dict]:
    """`(optimizer class, kwargs)` for `Trainer(optimizer_cls_and_kwargs=...)`: the optimiser `args` asks for, over
    layer-wise decayed parameter groups built from `args.learning_rate` and `args.weight_decay`."""
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    groups = layer_decay_parameter_groups(model, args.learning_rate, args.weight_decay, layer_decay)
    return optimizer_cls, {**optimizer_kwargs, "params": groups}
