"""Publishing on the Hugging Face Hub: repository folders with weights, processor, code and a model card."""

__all__ = ["push_converted_checkpoint", "push_to_hub", "save_for_hub"]


def __getattr__(name: str):
    # Imported on first use, so that `python -m spectralgpt_hf.hub.cards` does not import the cards module twice.
    if name in __all__:
        from . import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
