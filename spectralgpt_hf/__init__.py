"""SpectralGPT, the spectral remote-sensing foundation model, for Hugging Face Transformers.

Importing the package registers its classes with the transformers Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

from .configuration_spectralgpt import SENTINEL2_BANDS, SpectralGPTConfig
from .convert_original_checkpoint import CheckpointConversionError, convert_original_checkpoint
from .modeling_spectralgpt import SpectralGPTForPreTraining, SpectralGPTModel, SpectralGPTPreTrainedModel

AutoConfig.register(SpectralGPTConfig.model_type, SpectralGPTConfig, exist_ok=True)
AutoModel.register(SpectralGPTConfig, SpectralGPTModel, exist_ok=True)
AutoModelForPreTraining.register(SpectralGPTConfig, SpectralGPTForPreTraining, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "SENTINEL2_BANDS",
    "CheckpointConversionError",
    "SpectralGPTConfig",
    "SpectralGPTForPreTraining",
    "SpectralGPTModel",
    "SpectralGPTPreTrainedModel",
    "convert_original_checkpoint",
]
