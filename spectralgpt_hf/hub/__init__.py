"""Publishing on the Hugging Face Hub: repository folders with weights, processor, code and a model card."""

from .publishing import push_converted_checkpoint, push_to_hub, save_for_hub

__all__ = ["push_converted_checkpoint", "push_to_hub", "save_for_hub"]
