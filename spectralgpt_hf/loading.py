"""Loading a SpectralGPT model or its image processor from wherever it is: a `save_pretrained` folder, a Hub model
id, or one of the authors' original `.pth` files (converted on the fly, without running pickled code).

Every layer that needs a model (inference, training, the Hub tools, the demo, the command line) loads it here.
Nothing here moves a model to a device: callers do.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import AutoConfig

from . import modeling_spectralgpt
from .convert_original_checkpoint import convert_original_checkpoint
from .image_processing_spectralgpt import SpectralGPTImageProcessor
from .modeling_spectralgpt import SpectralGPTPreTrainedModel

ORIGINAL_CHECKPOINT_SUFFIXES = (".pth", ".pt")


def is_original_checkpoint(source: str | os.PathLike) -> bool:
    """Whether `source` is a file of the original code (rather than a folder or a Hub id)."""
    path = Path(source)
    return path.is_file() and path.suffix.lower() in ORIGINAL_CHECKPOINT_SUFFIXES


def model_not_found(source: str | os.PathLike) -> str:
    from huggingface_hub import constants

    hub = "the Hub was not asked (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else (
        "no Hub repository of that name could be reached"
    )
    return (
        f"No model at {source}: there is no such folder, and {hub}. Give a save_pretrained folder, a Hub model id "
        "(ORG/NAME) or an original .pth file."
    )


def saved_model_class(source: str | os.PathLike) -> type[SpectralGPTPreTrainedModel]:
    """The class a saved model was trained as, from its config.json's `architectures` (default: the encoder)."""
    try:
        architectures = AutoConfig.from_pretrained(source).architectures or ["SpectralGPTModel"]
    except OSError as error:
        if Path(source).exists():
            raise
        raise FileNotFoundError(model_not_found(source)) from error
    model_class = getattr(modeling_spectralgpt, architectures[0], None)
    if not (isinstance(model_class, type) and issubclass(model_class, SpectralGPTPreTrainedModel)):
        raise ValueError(f"{source} holds a {architectures[0]}, which is not a SpectralGPT model class.")
    return model_class


def load_model(
    source: str | os.PathLike,
    model_class: type[SpectralGPTPreTrainedModel] | None = None,
    *,
    strict: bool = False,
    **from_pretrained_kwargs,
) -> SpectralGPTPreTrainedModel:
    """
    A SpectralGPT model from a folder, a Hub id or an original `.pth` file.

    Args:
        source: a `save_pretrained` folder, a Hub model id, or an original checkpoint (`SpectralGPT+.pth`, ...).
        model_class: the class to load; default the class the model was saved as (config.json's
            `architectures`), or for an original file the class of its kind. An original file of another kind
            than `model_class` is an error.
        strict: refuse a saved model that lacks weights of `model_class` (which would start random), e.g. an
            encoder-only folder loaded as a pretraining model.
        from_pretrained_kwargs: passed to `from_pretrained` (`config`, `ignore_mismatched_sizes`, `num_labels`...).
    """
    if is_original_checkpoint(source):
        if from_pretrained_kwargs:
            raise ValueError(
                f"{Path(source).name} is an original checkpoint; convert it first (`spectralgpt-hf convert`) to "
                f"load it with {sorted(from_pretrained_kwargs)}."
            )
        model = convert_original_checkpoint(source)
        if model_class is not None and not isinstance(model, model_class):
            raise ValueError(
                f"{Path(source).name} holds a {type(model).__name__}, but a {model_class.__name__} is needed here."
            )
        return model
    model_class = model_class or saved_model_class(source)
    model, loading_info = model_class.from_pretrained(source, output_loading_info=True, **from_pretrained_kwargs)
    if strict and loading_info["missing_keys"]:
        missing = sorted(loading_info["missing_keys"])
        raise ValueError(
            f"{source} lacks {len(missing)} weights of {model_class.__name__} ({', '.join(missing[:3])}, ...), which "
            f"would start random: give a saved {model_class.__name__} (or an original file of that kind)."
        )
    return model


def load_image_processor(
    source: str | os.PathLike, default: SpectralGPTImageProcessor | None = None
) -> SpectralGPTImageProcessor:
    """
    The image processor saved with a model (folder or Hub id), else `default` (per-image min-max when None: the
    normalisation of pretraining and of the original segmentation and change-detection models). An original
    checkpoint carries none: convert it with an output folder to get the one its kind needs.
    """
    default = default or SpectralGPTImageProcessor.for_pretraining()
    if is_original_checkpoint(source):
        return default
    try:
        return SpectralGPTImageProcessor.from_pretrained(source)
    except OSError:
        return default


__all__ = ["is_original_checkpoint", "load_image_processor", "load_model", "saved_model_class"]
