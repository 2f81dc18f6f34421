# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Hugging Face Hub model cards: the four published SpectralGPT models, and models trained with this package.

Cards are `huggingface_hub.ModelCard`s rendered with `ModelCard.from_template` from one Jinja template,
`templates/model_card.md`, which holds all the prose; this module holds the per-model facts it is filled with. The
committed copies in `model_cards/` are rendered for the `DEFAULT_NAMESPACE` repositories; regenerate them after
editing the template or the facts:

    python -m spectralgpt_hf.hub.cards model_cards/

Hub metadata: `pipeline_tag: other`, so that the Hub shows neither a widget nor a `pipeline(...)` snippet
(transformers' pipelines read images through Pillow; these models take 12-band arrays), with the task as a plain tag;
`datasets:` holds only Hub dataset ids (the other datasets are named in the text); `base_model` names the model a
published one continues or was fine-tuned from.

Licence: the code this package uploads is Apache-2.0, but the weights are converted from the authors' files, for
which the authors state no terms that we could find (their repository licenses its code under GPL-3.0). The cards
therefore declare `license: other`, link the Zenodo record the weights come from, and explain this in the text.
"""

import argparse
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from huggingface_hub import ModelCard, ModelCardData

from ..configuration_spectralgpt import SENTINEL2_BANDS, SpectralGPTConfig
from ..convert_original_checkpoint import PUBLISHED_CHECKPOINTS
from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from ..modeling_spectralgpt import SpectralGPTPreTrainedModel

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
PUBLISHED_MODELS_FILE = TEMPLATE.with_name("published_models.toml")
# The Hub namespace the cards in model_cards/ are rendered for.
DEFAULT_NAMESPACE = "spectralgpt-hf"
TAGS = ["remote-sensing", "multispectral", "sentinel-2", "spectralgpt"]
LICENSE_NAME = "spectralgpt-weights-terms-not-stated"
# Whether the DEFAULT_NAMESPACE repositories exist on the Hub; until they do, the cards say the names are placeholders.
DEFAULT_NAMESPACE_PUBLISHED = False
# No widget and no pipeline snippet: see the module docstring.
PIPELINE_TAG = "other"
PRETRAINED_RECORD = "https://zenodo.org/records/8412455"
DOWNSTREAM_RECORD = "https://zenodo.org/records/8412377"
RECORDS = {"pretrained": PRETRAINED_RECORD, "downstream": DOWNSTREAM_RECORD}
ORIGINAL_REPOSITORY = "https://github.com/danfenghong/IEEE_TPAMI_SpectralGPT"

# The task of each class, as a tag (not a pipeline_tag).
CLASS_TASKS = {
    "SpectralGPTModel": "feature-extraction",
    "SpectralGPTForPreTraining": "feature-extraction",
    "SpectralGPTBackbone": "feature-extraction",
    "SpectralGPTForImageClassification": "scene-classification",
    "SpectralGPTForSemanticSegmentation": "semantic-segmentation",
    "SpectralGPTForChangeDetection": "change-detection",
}


class Result(NamedTuple):
    """What the paper reports for one model fine-tuned on one task: one number, or None where it is not confirmed."""

    dataset: str
    metric: str
    value: str | None  # None: not confirmed here
    note: str = ""


# The paper's results, one per task and model. Its tables could not be read where these cards were written, so
# every figure is None ("not confirmed") until someone checks it against the tables of arXiv 2311.07113.
TASK_RESULTS = {
    "eurosat": Result("EuroSAT (single-label, 10 classes)", "overall accuracy", None),
    "bigearthnet": Result("BigEarthNet-S2 (multi-label, 19 classes)", "mAP", None),
    "segmunich": Result("SegMunich (13 classes)", "mIoU", None),
    "oscd": Result(
        "OSCD (change detection)", "F1 of the change class", None,
        "the published file is named `spectralGPT+_54_28.pth`; users of the original code report 34-47 "
        f"([issue #14]({ORIGINAL_REPOSITORY}/issues/14))",
    ),
}  # fmt: skip


def render_card(
    metadata: ModelCardData, repo_id: str, model_class: str, config: SpectralGPTConfig, band_mean_channels: int, **facts
) -> ModelCard:
    """
    Fills `templates/model_card.md`. `band_mean_channels`: the channels the image processor appends to the bands it
    takes (SegMunich's: 2). `facts`: the other template variables; a published model's card has `checkpoint`.
    """
    return ModelCard.from_template(
        metadata,
        template_path=str(TEMPLATE),
        repo_id=repo_id,
        model_class=model_class,
        image_size=config.image_size,
        num_bands=config.num_bands - band_mean_channels,
        band_mean_channels=band_mean_channels,
        num_tokens=config.num_tokens,
        hidden_size=config.hidden_size,
        sentinel2_bands=SENTINEL2_BANDS,
        original_repository=ORIGINAL_REPOSITORY,
        pretrained_record=PRETRAINED_RECORD,
        downstream_record=DOWNSTREAM_RECORD,
        placeholder_namespace=placeholder_namespace(repo_id),
        **facts,
    )


def placeholder_namespace(repo_id: str) -> str | None:
    """The namespace of `repo_id` when it is DEFAULT_NAMESPACE and that is not on the Hub yet, else None."""
    namespace = repo_id.split("/")[0]
    return namespace if namespace == DEFAULT_NAMESPACE and not DEFAULT_NAMESPACE_PUBLISHED else None


def card_metadata(model_class: str, record: str, **fields) -> ModelCardData:
    return ModelCardData(
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=[*TAGS, CLASS_TASKS[model_class]],
        license="other",
        license_name=LICENSE_NAME,
        license_link=record,
        **fields,
    )


@dataclass(frozen=True)
class PublishedModel:
    """
    The card-only facts of one of the authors' published models; what its file converts to and the preprocessing
    it expects are in `convert_original_checkpoint.PUBLISHED_CHECKPOINTS`.
    """

    name: str  # card file name and default repository name
    title: str
    checkpoint: str  # the authors' file
    record: str  # the Zenodo record holding it
    config: SpectralGPTConfig  # sizes that matter to the card (the converter infers the real one)
    summary: str  # after the lead paragraph the template gives every pretrained model
    limits: tuple[str, ...]  # after the template's limits of every pretrained model, before those of every model
    results_of: str  # the model the paper's results below are of
    results: tuple[str, ...]  # keys of TASK_RESULTS
    datasets: tuple[str, ...] = ()  # Hub dataset ids only; the text names the others
    preprocessing: str = ""  # for inputs that are the 12 Sentinel-2 bands
    inputs: str = ""  # for other inputs, instead
    base: str | None = None  # name of the published model it continues or was fine-tuned from
    classes: str | None = None  # the dataset whose class names are listed under Inputs

    @property
    def kind(self) -> str:
        return PUBLISHED_CHECKPOINTS[self.checkpoint].kind

    @property
    def model_class(self) -> str:
        return PUBLISHED_CHECKPOINTS[self.checkpoint].model_class.__name__

    @property
    def image_processor(self) -> Callable[[], SpectralGPTImageProcessor]:
        """Builds the image processor reproducing the model's preprocessing."""
        return PUBLISHED_CHECKPOINTS[self.checkpoint].image_processor

    def card(self, repo_id: str, base_model: str | None = None) -> ModelCard:
        """The card for `repo_id`. `base_model` defaults to the base model's name in the same namespace."""
        if base_model is None and self.base is not None:
            base_model = f"{repo_id.split('/')[0]}/{self.base}"
        metadata = card_metadata(
            self.model_class, self.record, datasets=list(self.datasets) or None, base_model=base_model
        )
        return render_card(
            metadata,
            repo_id,
            self.model_class,
            self.config,
            self.image_processor().band_mean_channels,
            name=self.name,
            title=self.title,
            checkpoint=self.checkpoint,
            record=self.record,
            kind=self.kind,
            summary=self.summary,
            preprocessing=self.preprocessing,
            inputs=self.inputs,
            classes=dataset_classes(self.classes) if self.classes else None,
            limits=self.limits,
            results_of=self.results_of,
            results=[TASK_RESULTS[key] for key in self.results],
        )


def dataset_classes(dataset: str) -> Sequence[str]:
    """The class names of a dataset of `spectralgpt_hf.data`, by its name (e.g. "segmunich")."""
    from .. import data  # slow to import; only the SegMunich card needs it

    return getattr(data, f"{dataset.upper()}_CLASSES")


def read_published_models(path: Path = PUBLISHED_MODELS_FILE) -> dict[str, PublishedModel]:
    """The published models' card facts, from the TOML file next to the template (see its header)."""
    with open(path, "rb") as file:
        entries = tomllib.load(file)
    return {
        name: PublishedModel(
            **{
                **fields,
                "name": name,
                "record": RECORDS[fields["record"]],
                "config": SpectralGPTConfig(**fields["config"]),
                "datasets": tuple(fields.get("datasets", ())),
                "limits": tuple(fields["limits"]),
                "results": tuple(fields["results"]),
            }
        )
        for name, fields in entries.items()
    }


PUBLISHED_MODELS = read_published_models()


def published_model_for_checkpoint(path: str | Path) -> PublishedModel | None:
    """The published model an original file is, by its file name (None for any other file)."""
    return next((model for model in PUBLISHED_MODELS.values() if model.checkpoint == Path(path).name), None)


def trained_model_card(
    model: SpectralGPTPreTrainedModel,
    repo_id: str,
    base_model: str | None = None,
    metrics: dict[str, float] | None = None,
    image_processor: SpectralGPTImageProcessor | None = None,
) -> ModelCard:
    """
    A card for a model trained with this package (e.g. by `examples/run_*.py`).

    Args:
        model: the model the card describes.
        repo_id: the repository the card is for.
        base_model: the Hub repository it was fine-tuned from, when known.
        metrics: evaluation results to list, e.g. the `eval_results.json` that `Trainer` writes.
        image_processor: the model's image processor, when it builds channels of its own (SegMunich's band means).
    """
    model_class = type(model).__name__
    if model_class not in CLASS_TASKS:
        raise ValueError(f"{model_class} is not a SpectralGPT model class; expected one of {sorted(CLASS_TASKS)}.")
    config = model.config
    band_mean_channels = image_processor.band_mean_channels if image_processor is not None else 0
    labels = sorted(config.id2label.items()) if config.id2label else []
    return render_card(
        card_metadata(model_class, PRETRAINED_RECORD, base_model=base_model),
        repo_id,
        model_class,
        config,
        band_mean_channels,
        title=repo_id.split("/")[-1],
        num_channels=config.num_bands,
        band_names=image_processor.band_names if band_mean_channels else config.band_names,
        labels=labels if any(name != f"LABEL_{index}" for index, name in labels) else [],
        metrics=sorted((metrics or {}).items()),
    )


def write_published_cards(output_dir: str | Path, namespace: str = DEFAULT_NAMESPACE) -> list[Path]:
    """Writes `<name>.md` for every published model, rendered for `<namespace>/<name>`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in PUBLISHED_MODELS.items():
        path = output_dir / f"{name}.md"
        model.card(f"{namespace}/{name}").save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the model cards of the published SpectralGPT models.")
    parser.add_argument("output_dir", help="folder to write <name>.md into, e.g. model_cards/")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="Hub namespace the cards are rendered for")
    args = parser.parse_args(argv)
    for path in write_published_cards(args.output_dir, args.namespace):
        print(f"Wrote {path}")


if __name__ == "__main__":
    main()
