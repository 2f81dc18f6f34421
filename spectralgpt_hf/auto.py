"""The one table of SpectralGPT's Auto classes: it drives the registrations made on `import spectralgpt_hf` and the
`auto_map` written into Hub repositories, so the two never disagree."""

import transformers

# The top-level AutoImageProcessor is a placeholder without Pillow; the class in its module works without it.
from transformers.models.auto.image_processing_auto import AutoImageProcessor

from . import modeling_spectralgpt as modeling
from .configuration_spectralgpt import SpectralGPTConfig
from .image_processing_spectralgpt import SpectralGPTImageProcessor

# Auto class name -> our class. transformers has no AutoModelForChangeDetection: that entry only records, in a
# repository's auto_map, where the change-detection class is (for get_class_from_dynamic_module).
AUTO_CLASSES = {
    "AutoConfig": SpectralGPTConfig,
    "AutoModel": modeling.SpectralGPTModel,
    "AutoModelForPreTraining": modeling.SpectralGPTForPreTraining,
    "AutoModelForImageClassification": modeling.SpectralGPTForImageClassification,
    "AutoModelForSemanticSegmentation": modeling.SpectralGPTForSemanticSegmentation,
    "AutoBackbone": modeling.SpectralGPTBackbone,
    "AutoModelForChangeDetection": modeling.SpectralGPTForChangeDetection,
    "AutoImageProcessor": SpectralGPTImageProcessor,
}


def register_auto_classes() -> None:
    """Registers every class of `AUTO_CLASSES` that transformers has an Auto class for."""
    for auto_name, cls in AUTO_CLASSES.items():
        if auto_name == "AutoConfig":
            transformers.AutoConfig.register(SpectralGPTConfig.model_type, cls, exist_ok=True)
        elif auto_name == "AutoImageProcessor":
            # Both backend keys, so that transformers does not warn about falling back from one to the other.
            backends = {"pil": cls, "torchvision": cls}
            AutoImageProcessor.register(SpectralGPTConfig, image_processor_classes=backends, exist_ok=True)
        elif hasattr(transformers, auto_name):
            getattr(transformers, auto_name).register(SpectralGPTConfig, cls, exist_ok=True)
