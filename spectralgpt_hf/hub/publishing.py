# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Publishing SpectralGPT models on the Hugging Face Hub.

A published repository holds the weights (safetensors), `config.json` with an `auto_map` for every class,
`preprocessor_config.json` with its own `auto_map`, a model card (README.md) and this package's configuration,
modeling and image-processing files. So:

* with `spectralgpt_hf` installed, `import spectralgpt_hf` registers the classes and the Auto classes load them
  without `trust_remote_code` (transformers prefers registered classes to a repository's code, even with
  `trust_remote_code=True`);
* with only transformers installed, `trust_remote_code=True` loads the same classes from the repository's files.

transformers has no Auto class for change detection: `auto_map["AutoModelForChangeDetection"]` only records where
`SpectralGPTForChangeDetection` is, for `transformers.dynamic_module_utils.get_class_from_dynamic_module`.
"""

import copy
import json
import os
import tempfile
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi, ModelCard
from transformers.dynamic_module_utils import custom_object_save

from ..auto import AUTO_CLASSES
from ..convert_original_checkpoint import PUBLISHED_CHECKPOINTS
from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from ..loading import load_model
from ..modeling_spectralgpt import SpectralGPTPreTrainedModel
from .cards import published_model_for_checkpoint, trained_model_card


def class_reference(cls: type) -> str:
    """`module.Class` as `auto_map` names it: the code files sit at the repository's root."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def save_for_hub(
    model: SpectralGPTPreTrainedModel,
    save_directory: str | os.PathLike,
    image_processor: SpectralGPTImageProcessor,
    model_card: ModelCard,
) -> Path:
    """
    Writes everything a Hub repository of `model` holds into `save_directory`, which must be new or empty: the
    weights, `config.json` with a full `auto_map`, `preprocessor_config.json`, `model_card` as README.md and the code
    files. [`push_to_hub`] uploads such a folder.
    """
    if not isinstance(model, SpectralGPTPreTrainedModel):
        raise TypeError(f"Expected a SpectralGPT model of this package, got {type(model).__name__}.")
    if not isinstance(image_processor, SpectralGPTImageProcessor):
        raise TypeError(f"Expected a SpectralGPTImageProcessor, got {type(image_processor).__name__}.")
    save_directory = Path(save_directory)
    if save_directory.exists() and any(save_directory.iterdir()):
        raise FileExistsError(f"{save_directory} is not empty; give a new or empty folder.")
    model.save_pretrained(save_directory)
    config = copy.deepcopy(model.config)
    config.auto_map = {name: class_reference(cls) for name, cls in AUTO_CLASSES.items()}
    config.save_pretrained(save_directory)
    processor = copy.deepcopy(image_processor)
    processor.auto_map = {"AutoImageProcessor": class_reference(SpectralGPTImageProcessor)}
    processor.save_pretrained(save_directory)
    # What register_for_auto_class makes save_pretrained do, without registering the classes for good: copy each
    # object's module and the modules it imports relatively.
    for obj in (model, processor):
        custom_object_save(obj, save_directory)
    model_card.save(save_directory / "README.md")
    return save_directory


def load_model_folder(
    model_dir: str | os.PathLike, repo_id: str, base_model: str | None = None
) -> tuple[SpectralGPTPreTrainedModel, SpectralGPTImageProcessor | None, ModelCard]:
    """The model, image processor (None when not saved) and card to publish from a folder (see [`push_to_hub`])."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} holds no config.json: give a save_pretrained / Trainer output folder.")
    model = load_model(model_dir)
    image_processor = None
    if (model_dir / "preprocessor_config.json").is_file():
        image_processor = SpectralGPTImageProcessor.from_pretrained(model_dir)
    if (model_dir / "README.md").is_file():
        return model, image_processor, ModelCard.load(model_dir / "README.md")
    metrics = None
    if (model_dir / "eval_results.json").is_file():
        results = json.loads((model_dir / "eval_results.json").read_text())
        metrics = {
            name: value
            for name, value in results.items()
            if isinstance(value, (int, float)) and not name.endswith(("_runtime", "_per_second"))
        }
    return model, image_processor, trained_model_card(model, repo_id, base_model, metrics, image_processor)


def push_to_hub(
    model_or_dir: SpectralGPTPreTrainedModel | str | os.PathLike,
    repo_id: str,
    *,
    image_processor: SpectralGPTImageProcessor | None = None,
    model_card: ModelCard | None = None,
    base_model: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """
    Uploads a SpectralGPT model to the Hub repository `repo_id` (created when missing) with everything
    [`save_for_hub`] writes. The folder is prepared in a temporary directory and uploaded only once complete.

    Args:
        model_or_dir: a SpectralGPT model, or a folder one was saved in (`save_pretrained`, `Trainer.save_model`,
            the output of `examples/run_*.py`). From a folder, the class comes from config.json's `architectures`,
            the image processor from its preprocessor_config.json, and the card from its README.md when there is
            one; only these are uploaded (training state and checkpoints stay behind).
        image_processor: the preprocessing the model expects; default: the folder's preprocessor_config.json.
            Required: it is uploaded with the model.
        model_card: default: the folder's README.md, else a card from [`trained_model_card`] (listing the folder's
            `eval_results.json`, when present).
        base_model: the Hub repository the model was fine-tuned from, for the generated card.
        private: create the repository private (None: the Hub's default).
        token: Hub token; default: the logged-in one (`hf auth login`, `HF_TOKEN`).
        commit_message: default "Upload <model class> with spectralgpt_hf".

    Returns:
        The `CommitInfo` of the upload.
    """
    if isinstance(model_or_dir, (str, os.PathLike)):
        model, folder_processor, folder_card = load_model_folder(model_or_dir, repo_id, base_model)
        image_processor, model_card = image_processor or folder_processor, model_card or folder_card
    else:
        model = model_or_dir
        model_card = model_card or trained_model_card(model, repo_id, base_model, image_processor=image_processor)
    if image_processor is None:
        raise ValueError(
            "No image processor to upload with the model, so users could not preprocess as in training: pass "
            "image_processor, or save the one the model was trained with in its folder "
            "(image_processor.save_pretrained(folder), as the examples/run_*.py scripts do: preprocessor_config.json)."
        )
    with tempfile.TemporaryDirectory(prefix="spectralgpt-hub-") as folder:
        save_for_hub(model, folder, image_processor, model_card)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload {type(model).__name__} with spectralgpt_hf",
        )


def push_converted_checkpoint(
    model: SpectralGPTPreTrainedModel,
    checkpoint: str | os.PathLike,
    repo_id: str,
    *,
    base_model: str | None = None,
    private: bool | None = None,
    token: str | None = None,
) -> CommitInfo:
    """
    Uploads a model converted from one of the authors' published files (`checkpoint`, recognised by its name) with
    that model's card and the image processor reproducing its preprocessing. `base_model` defaults to the base
    model's name in `repo_id`'s namespace (e.g. `<namespace>/spectralgpt-plus` for the SegMunich model).
    """
    name = Path(checkpoint).name
    if name not in PUBLISHED_CHECKPOINTS:
        raise ValueError(
            f"{name} is none of the published files ({', '.join(PUBLISHED_CHECKPOINTS)}), so its card and "
            "preprocessing are unknown. Save the image processor it expects beside the converted folder and run "
            "`spectralgpt-hf publish`."
        )
    published = PUBLISHED_CHECKPOINTS[name]
    if type(model) is not published.model_class:
        raise ValueError(
            f"{name} should convert to {published.model_class.__name__}, got {type(model).__name__}: the file is "
            "not the published one. Upload it with `spectralgpt-hf publish` and a card of its own."
        )
    return push_to_hub(
        model,
        repo_id,
        image_processor=published.image_processor(),
        model_card=published_model_for_checkpoint(name).card(repo_id, base_model),
        private=private,
        token=token,
    )


__all__ = ["push_converted_checkpoint", "push_to_hub", "save_for_hub"]
