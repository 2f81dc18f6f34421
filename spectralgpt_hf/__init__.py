"""SpectralGPT, the spectral remote-sensing foundation model, for Hugging Face Transformers.

Importing the package registers its classes with the transformers Auto classes.
"""

from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
    AutoModelForSemanticSegmentation,
)

# The top-level AutoImageProcessor is a placeholder without Pillow; the class in its module works without it.
from transformers.models.auto.image_processing_auto import AutoImageProcessor

from .allocator import keep_freed_memory_for_reuse
from .configuration_spectralgpt import SENTINEL2_BANDS, SpectralGPTConfig
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
    upernet_from_pretrained,
)

AutoConfig.register(SpectralGPTConfig.model_type, SpectralGPTConfig, exist_ok=True)
AutoModel.register(SpectralGPTConfig, SpectralGPTModel, exist_ok=True)
AutoModelForPreTraining.register(SpectralGPTConfig, SpectralGPTForPreTraining, exist_ok=True)
AutoModelForImageClassification.register(SpectralGPTConfig, SpectralGPTForImageClassification, exist_ok=True)
AutoModelForSemanticSegmentation.register(SpectralGPTConfig, SpectralGPTForSemanticSegmentation, exist_ok=True)
AutoBackbone.register(SpectralGPTConfig, SpectralGPTBackbone, exist_ok=True)
# Both backend keys, so that transformers does not warn about falling back from one to the other.
AutoImageProcessor.register(
    SpectralGPTConfig,
    image_processor_classes={"pil": SpectralGPTImageProcessor, "torchvision": SpectralGPTImageProcessor},
    exist_ok=True,
)

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
