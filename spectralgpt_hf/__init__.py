"""SpectralGPT, the spectral remote-sensing foundation model, for Hugging Face Transformers.

Importing the package registers its classes with the transformers Auto classes.
"""

from .auto import register_auto_classes
from .configuration_spectralgpt import SENTINEL2_BANDS, SpectralGPTConfig
from .utils.allocator import keep_freed_memory_for_reuse
from .convert_original_checkpoint import CheckpointConversionError, convert_original_checkpoint
from .image_processing_spectralgpt import SpectralGPTImageProcessor
from .modeling_spectralgpt import (
    SpectralGPTBackbone,
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTModel,
    SpectralGPTPreTrainedModel,
)
from .upernet import upernet_from_pretrained

register_auto_classes()

__version__ = "0.1.0"

__all__ = [
    "SENTINEL2_BANDS",
    "CheckpointConversionError",
    "SpectralGPTBackbone",
    "SpectralGPTConfig",
    "SpectralGPTForChangeDetection",
    "SpectralGPTForImageClassification",
    "SpectralGPTForPreTraining",
    "SpectralGPTForSemanticSegmentation",
    "SpectralGPTImageProcessor",
    "SpectralGPTModel",
    "SpectralGPTPreTrainedModel",
    "convert_original_checkpoint",
    "keep_freed_memory_for_reuse",
    "upernet_from_pretrained",
]
