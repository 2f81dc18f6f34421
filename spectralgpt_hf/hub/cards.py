# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Hugging Face Hub model cards: the four published SpectralGPT models, and models trained with this package.

Cards are `huggingface_hub.ModelCard`s: a `ModelCardData` YAML header and a Markdown body. The committed copies in
`model_cards/` are rendered for the `DEFAULT_NAMESPACE` repositories; regenerate them after editing this module:

    python -m spectralgpt_hf.model_cards model_cards/

Licence: the code this package uploads is Apache-2.0, but the weights are converted from the authors' files, for
which the authors state no terms that we could find (their repository licenses its code under GPL-3.0). The cards
therefore declare `license: other`, link the Zenodo record the weights come from, and explain this in the text.
"""

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from ..configuration_spectralgpt import SpectralGPTConfig
from ..image_processing_spectralgpt import SpectralGPTImageProcessor
from ..modeling_spectralgpt import SpectralGPTPreTrainedModel

# The Hub namespace the cards in model_cards/ are rendered for.
DEFAULT_NAMESPACE = "spectralgpt-hf"
TAGS = ["remote-sensing", "multispectral", "sentinel-2", "spectralgpt"]
LICENSE_NAME = "spectralgpt-weights-terms-not-stated"
PRETRAINED_RECORD = "https://zenodo.org/records/8412455"
DOWNSTREAM_RECORD = "https://zenodo.org/records/8412377"
ORIGINAL_REPOSITORY = "https://github.com/danfenghong/IEEE_TPAMI_SpectralGPT"
PAPER = (
    "[Hong et al., IEEE TPAMI 46(8), 2024](https://doi.org/10.1109/TPAMI.2024.3362475) "
    "([arXiv 2311.07113](https://arxiv.org/abs/2311.07113))"
)

BIBTEX = """\
@article{hong2024spectralgpt,
  title         = {{SpectralGPT}: Spectral Remote Sensing Foundation Model},
  author        = {Hong, Danfeng and Zhang, Bing and Li, Xuyang and Li, Yuxuan and Li, Chenyu and Yao, Jing and
                   Yokoya, Naoto and Li, Hao and Ghamisi, Pedram and Jia, Xiuping and Plaza, Antonio and
                   Gamba, Paolo and Benediktsson, Jon Atli and Chanussot, Jocelyn},
  journal       = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume        = {46},
  number        = {8},
  year          = {2024},
  doi           = {10.1109/TPAMI.2024.3362475},
  eprint        = {2311.07113},
  archiveprefix = {arXiv}
}"""

# The paper's results. Its tables could not be read where these cards were written: the figures given come from
# third-party listings of the paper (source in the row) and are marked as unchecked; the others are left out.
WIZWAND = "benchmark listing of the paper, [wizwand.com](https://www.wizwand.com/paper/68fa722a1e209131cea54e6a)"
STDL = (
    "news item of the Swiss Territorial Data Lab, 16.02.2024, [stdl.ch](https://stdl.ch/de/Innovation-news-de/"
    "16.02.24---SpectralGPT%253A-Next-Generation-Foundation-Model-for-Hyperspectral-Imaging.htm)"
)
# (dataset, metric, reported value or None, source or None) per task.
RESULTS = {
    "eurosat": [
        ("EuroSAT (single-label, 10 classes)", "overall accuracy", "99.21", WIZWAND),
        ("EuroSAT (single-label, 10 classes)", "accuracy", "99.15", STDL),
    ],
    "bigearthnet": [("BigEarthNet-S2 (multi-label, 19 classes)", "mAP", None, None)],
    "segmunich": [("SegMunich (13 classes)", "mIoU", None, None)],
    "oscd": [
        (
            "OSCD (change detection)",
            "F1 of the change class",
            "54.29",
            f"{WIZWAND}; users of the original code report 34-47 ([issue #14]({ORIGINAL_REPOSITORY}/issues/14))",
        ),
    ],
}

CLASS_TASKS = {
    "SpectralGPTModel": "image-feature-extraction",
    "SpectralGPTForPreTraining": "image-feature-extraction",
    "SpectralGPTBackbone": "image-feature-extraction",
    "SpectralGPTForImageClassification": "image-classification",
    "SpectralGPTForSemanticSegmentation": "image-segmentation",
    "SpectralGPTForChangeDetection": "image-segmentation",
}

COMMON_LIMITS = [
    "Input bands must come in the order above: tokens group three consecutive bands, so another order changes what "
    "the model sees. Map bands by name (e.g. `spectralgpt_hf.raster.read_bands`), not by position.",
    "The position tables are trained for one image size. `interpolate_pos_encoding=True` resizes them to other sizes "
    "and band counts; this is an addition of the port that the authors did not evaluate.",
]


def band_list(band_names: list[str]) -> str:
    return " ".join(f"`{band}`" for band in band_names)


def results_table(keys: list[str]) -> str:
    rows = [
        f"| {dataset} | {metric} | {value or 'not confirmed here'} | {source or 'see the paper'} |"
        for key in keys
        for dataset, metric, value, source in RESULTS[key]
    ]
    return "\n".join(
        [
            "Results of the paper's fine-tuned models, not re-measured with this port (which reproduces the "
            "original code's outputs within 1e-4 given the same weights). We could not check the figures below "
            "against the paper's tables, nor whether each refers to SpectralGPT or SpectralGPT+; figures we found no "
            f"source for are left to the paper, {PAPER}.",
            "",
            "| dataset | metric | reported | source |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    )


def license_section(weights: str, record: str) -> str:
    return f"""## License

- The code files of this repository (`configuration_spectralgpt.py`, `modeling_spectralgpt.py`,
  `image_processing_spectralgpt.py`) come from `spectralgpt_hf`, an Apache-2.0 re-implementation written from a
  specification of the original code, not copied from it.
- {weights} The authors' [repository]({ORIGINAL_REPOSITORY}) licenses its code under GPL-3.0 (several of its files
  also carry the headers of Meta's MAE code, which is CC-BY-NC-4.0). We found no statement of terms for the weights
  and could not check the licence field of the [Zenodo record]({record}); hence `license: other`. Check that record,
  and ask the authors before commercial use. This is not legal advice."""


def citation_section() -> str:
    return f"## Citation\n\n```bibtex\n{BIBTEX}\n```"


def remote_code_note(repo_id: str, model_class: str) -> str:
    if model_class == "SpectralGPTForChangeDetection":
        loading = f"""

```python
from transformers import AutoConfig
from transformers.dynamic_module_utils import get_class_from_dynamic_module
from transformers.models.auto.image_processing_auto import AutoImageProcessor

processor = AutoImageProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
config = AutoConfig.from_pretrained("{repo_id}", trust_remote_code=True)
# transformers has no Auto class for change detection; auto_map records where the class is
model_class = get_class_from_dynamic_module(config.auto_map["AutoModelForChangeDetection"], "{repo_id}")
model = model_class.from_pretrained("{repo_id}")
```"""
    else:
        loading = (
            " pass `trust_remote_code=True` to every `from_pretrained` call above and leave out "
            "`import spectralgpt_hf`."
        )
    return f"""Without `spectralgpt_hf`, with only `transformers` installed, the code files of this repository are run
instead (read them first):{loading}

`AutoImageProcessor` is imported from its module because transformers' top-level name needs Pillow, which the
processor does not use. `AutoBackbone.from_pretrained("{repo_id}", out_indices=[...])` works with either route, but
transformers 5.24 asks the Hub whether the repository exists first, so it needs the network;
`spectralgpt_hf.upernet_from_pretrained` builds a UperNet on this encoder."""


# Whole-scene commands by class.
SCENE_COMMANDS = {
    "SpectralGPTForPreTraining": "spectralgpt-hf embed --model {repo_id} --input SCENE_DIR --output embeddings.tif",
    "SpectralGPTModel": "spectralgpt-hf embed --model {repo_id} --input SCENE_DIR --output embeddings.tif",
    "SpectralGPTForImageClassification": "spectralgpt-hf predict --model {repo_id} --input SCENE_DIR "
    "--output scores.tif",
    "SpectralGPTForSemanticSegmentation": "spectralgpt-hf predict --model {repo_id} --input SCENE_DIR "
    "--output classes.tif",
    "SpectralGPTForChangeDetection": "spectralgpt-hf predict --model {repo_id} --input DATE_1.tif --input2 DATE_2.tif "
    "--output change.tif",
}


def how_to_use(repo_id: str, model_class: str, config: SpectralGPTConfig, band_mean_channels: int = 0) -> str:
    """`band_mean_channels`: the channels the image processor appends to the bands it takes (SegMunich's: 2)."""
    parts = [usage_example(repo_id, model_class, config, band_mean_channels), remote_code_note(repo_id, model_class)]
    if model_class in SCENE_COMMANDS:
        command = SCENE_COMMANDS[model_class].format(repo_id=repo_id)
        scenes = "Whole Sentinel-2 scenes (tiled, GeoTIFF in and out, with `spectralgpt_hf`):"
        parts.append(f"{scenes}\n\n```bash\n{command}\n```")
    return "## How to use\n\n" + "\n\n".join(parts)


def usage_example(repo_id: str, model_class: str, config: SpectralGPTConfig, band_mean_channels: int = 0) -> str:
    num_bands, size = config.num_bands - band_mean_channels, config.image_size
    if model_class == "SpectralGPTForChangeDetection":
        return f"""```python
import spectralgpt_hf
from transformers.models.auto.image_processing_auto import AutoImageProcessor

processor = AutoImageProcessor.from_pretrained("{repo_id}")
model = spectralgpt_hf.SpectralGPTForChangeDetection.from_pretrained("{repo_id}")
# date_1, date_2: ({num_bands}, {size}, {size}) arrays of the same place, channels as under Inputs
first = processor(date_1, return_tensors="pt").pixel_values
second = processor(date_2, return_tensors="pt").pixel_values
change = model(first, second).logits.argmax(1)  # 1 where the scene changed
```"""
    if model_class == "SpectralGPTForSemanticSegmentation":
        auto_class = "AutoModelForSemanticSegmentation"
        result = f"classes = model(**inputs).logits.argmax(1)  # (1, {size}, {size})"
    elif model_class == "SpectralGPTForImageClassification":
        auto_class, result = "AutoModelForImageClassification", "scores = model(**inputs).logits  # one per class"
    else:
        # AutoModel gives the encoder of any SpectralGPT checkpoint (a pretraining one's decoder is left out).
        auto_class = "AutoModel"
        result = (
            f"features = model(**inputs).last_hidden_state  # (1, {config.num_tokens}, {config.hidden_size}): one "
            "vector per 3D token"
        )
    return f"""```python
import spectralgpt_hf  # registers the SpectralGPT classes with the transformers Auto classes
from transformers import {auto_class}
from transformers.models.auto.image_processing_auto import AutoImageProcessor

processor = AutoImageProcessor.from_pretrained("{repo_id}")
model = {auto_class}.from_pretrained("{repo_id}")
inputs = processor(image, return_tensors="pt")  # image: a ({num_bands}, {size}, {size}) array, channels as under Inputs
{result}
```"""


# Recipe commands of the spectralgpt_hf repository, by the class of the model the card is for.
RECIPE_COMMANDS = {
    "SpectralGPTForPreTraining": "python examples/run_classification.py --dataset eurosat --data_dir data/EuroSAT_MS "
    "--model_name_or_path {repo_id} --output_dir runs/eurosat",
    "SpectralGPTForSemanticSegmentation": "python examples/run_segmentation.py --data_dir data/TUM_128 "
    "--model_name_or_path {repo_id} --output_dir runs/segmunich",
    "SpectralGPTForChangeDetection": "python examples/run_change_detection.py --data_dir \"data/Onera Satellite "
    "Change Detection dataset - Images\" --model_name_or_path {repo_id} --output_dir runs/oscd --do_train false",
}


def fine_tuning_section(repo_id: str, model_class: str) -> str:
    command = RECIPE_COMMANDS[model_class].format(repo_id=repo_id)
    return f"""## Fine-tuning

`examples/run_classification.py` (EuroSAT, BigEarthNet), `examples/run_segmentation.py` (SegMunich) and
`examples/run_change_detection.py` (OSCD) of the `spectralgpt_hf` repository train with the authors' recipes and
`Trainer` (`--help` lists the options; `--do_train false` only evaluates), e.g.

```bash
{command}
spectralgpt-hf publish runs/<run> <namespace>/<name>  # uploads with a card, the code files and auto_map
```"""


def card_from_parts(metadata: ModelCardData, sections: list[str]) -> ModelCard:
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")


@dataclass(frozen=True)
class PublishedModel:
    """One of the authors' published checkpoints, as converted by this package."""

    name: str  # card file name and default repository name
    title: str
    checkpoint: str  # the authors' file
    record: str  # the Zenodo record holding it
    model_class: str
    config: SpectralGPTConfig  # sizes that matter to the card (the converter infers the real one)
    datasets: tuple[str, ...]
    base: str | None  # name of the published model it was fine-tuned from
    image_processor: Callable[[], SpectralGPTImageProcessor]  # reproduces its preprocessing
    summary: str
    describe_inputs: Callable[[], str]
    limits: tuple[str, ...]
    results: tuple[str, ...]

    def card(self, repo_id: str, base_model: str | None = None) -> ModelCard:
        """The card for `repo_id`. `base_model` defaults to the base model's name in the same namespace."""
        if base_model is None and self.base is not None:
            base_model = f"{repo_id.split('/')[0]}/{self.base}"
        metadata = ModelCardData(
            library_name="transformers",
            pipeline_tag=CLASS_TASKS[self.model_class],
            tags=TAGS,
            datasets=list(self.datasets),
            base_model=base_model,
            license="other",
            license_name=LICENSE_NAME,
            license_link=self.record,
        )
        sections = [
            f"# {self.title}",
            self.summary,
            f"Converted from `{self.checkpoint}` ([Zenodo]({self.record})) by `spectralgpt_hf`, a port of "
            f"SpectralGPT, {PAPER}, to Hugging Face Transformers. Class: `{self.model_class}`.",
            "## Inputs\n\n" + self.describe_inputs(),
            how_to_use(repo_id, self.model_class, self.config, self.image_processor().band_mean_channels)
            + f"\n\nTo convert the original file yourself: `spectralgpt-hf convert {self.checkpoint} converted/"
            f"{self.name}`.",
            fine_tuning_section(repo_id, self.model_class),
            "## Reported results\n\n" + results_table(list(self.results)),
            "## Known limits\n\n" + "\n".join(f"- {limit}" for limit in (*self.limits, *COMMON_LIMITS)),
            license_section(
                f"The weights are the authors' `{self.checkpoint}`, converted to safetensors without changing a value.",
                self.record,
            ),
            citation_section(),
        ]
        return card_from_parts(metadata, sections)


def sentinel2_inputs(size: int, preprocessing: str) -> str:
    bands = band_list(SpectralGPTConfig().band_names)
    return (
        f"`pixel_values` of shape (batch, 12, {size}, {size}): 12 Sentinel-2 bands, in this order: {bands} (B10, "
        f"cirrus, is not used). {preprocessing} The image processor of this repository (`preprocessor_config.json`, "
        "`SpectralGPTImageProcessor`) does it; it takes numpy arrays or tensors, (C, H, W) by default."
    )


def segmunich_inputs() -> str:
    from ..data import SEGMUNICH_CLASSES  # the dataset module is slow to import; only this card needs it

    classes = ", ".join(f"{index} {name}" for index, name in enumerate(SEGMUNICH_CLASSES))
    return (
        "`pixel_values` of shape (batch, 12, 128, 128): the 10 bands of a SegMunich (TUM_128) tile in file order, "
        "then their per-pixel mean twice, each channel normalised per image by its minimum and maximum "
        "((x - min) / (max - min + 1e-9)). The image processor of this repository (`preprocessor_config.json`) "
        "takes the 10 bands (10, H, W) and does both; whole-scene `spectralgpt-hf predict` reads the 10 bands from a "
        "Sentinel-2 scene by name and uses it.\n\n"
        f"Classes (after the authors' remapping of the label codes): {classes}."
    )


PRETRAINING_LIMITS = (
    "This is the masked-autoencoder checkpoint (`SpectralGPTForPreTraining`, encoder and decoder). `AutoModel` loads "
    "the encoder alone; `SpectralGPTForPreTraining` reproduces the released training code, whose loss is the masked "
    "reconstruction error plus a spectral-sum term over all tokens (the paper's spectral-to-spectral loss is not in "
    "the released code).",
    "The authors' classification fine-tuning discards the pretrained position tables (it learns a joint table from "
    "zero) and leaves token 0 out of the mean pooling. The classification head of this port keeps the pretrained "
    "tables by default; `position_embedding_type=\"joint\"` and `pool_excludes_first_token=True` reproduce the "
    "original.",
    "The authors' BigEarthNet score is a per-batch micro average precision averaged over batches, not a "
    "dataset-level mAP.",
)

PUBLISHED_MODELS = {
    model.name: model
    for model in (
        PublishedModel(
            name="spectralgpt",
            title="SpectralGPT (pretrained, 96 px)",
            checkpoint="SpectralGPT.pth",
            record=PRETRAINED_RECORD,
            model_class="SpectralGPTForPreTraining",
            config=SpectralGPTConfig(image_size=96),
            datasets=("fMoW-Sentinel",),
            base=None,
            image_processor=SpectralGPTImageProcessor.for_pretraining,
            summary="SpectralGPT is a spectral remote-sensing foundation model: a ViT-Base encoder over 3D tokens of "
            "3 consecutive bands x 8 x 8 pixels of 12-band Sentinel-2 images, pretrained as a masked autoencoder "
            "(90 % of the tokens removed). This is the first pretraining stage: 200 epochs on fMoW-Sentinel at "
            "96 x 96 px (4 spectral groups x 12 x 12 = 576 tokens). SpectralGPT+ continues it at 128 px.",
            describe_inputs=partial(
                sentinel2_inputs,
                96,
                "Pretraining normalised each image and band to [0, 1] by its own minimum and maximum "
                "((x - min) / (max - min + 1e-10)).",
            ),
            limits=(
                *PRETRAINING_LIMITS,
                "The authors' segmentation and change-detection code expects 128 px models: start those from "
                "SpectralGPT+.",
            ),
            results=("eurosat", "bigearthnet", "segmunich", "oscd"),
        ),
        PublishedModel(
            name="spectralgpt-plus",
            title="SpectralGPT+ (pretrained, 128 px)",
            checkpoint="SpectralGPT+.pth",
            record=PRETRAINED_RECORD,
            model_class="SpectralGPTForPreTraining",
            config=SpectralGPTConfig(),
            datasets=("fMoW-Sentinel", "BigEarthNet-S2"),
            base=None,
            image_processor=SpectralGPTImageProcessor.for_pretraining,
            summary="SpectralGPT is a spectral remote-sensing foundation model: a ViT-Base encoder over 3D tokens of "
            "3 consecutive bands x 8 x 8 pixels of 12-band Sentinel-2 images, pretrained as a masked autoencoder "
            "(90 % of the tokens removed). SpectralGPT+ is the second pretraining stage: SpectralGPT (fMoW-Sentinel, "
            "96 px) continued on BigEarthNet-S2 at 128 x 128 px (4 spectral groups x 16 x 16 = 1024 tokens), the "
            "model the authors' downstream tasks start from.",
            describe_inputs=partial(
                sentinel2_inputs,
                128,
                "Pretraining normalised each image and band to [0, 1] by its own minimum and maximum "
                "((x - min) / (max - min + eps)).",
            ),
            limits=(
                *PRETRAINING_LIMITS,
                "The second stage re-initialised the spatial position tables instead of resizing the 96 px ones. "
                "The authors' README gives 100 epochs for it in the text and 200 in its command.",
            ),
            results=("eurosat", "bigearthnet", "segmunich", "oscd"),
        ),
        PublishedModel(
            name="spectralgpt-plus-segmunich",
            title="SpectralGPT+ for semantic segmentation (SegMunich)",
            checkpoint="model_3con_loss_51_0.pth",
            record=DOWNSTREAM_RECORD,
            model_class="SpectralGPTForSemanticSegmentation",
            config=SpectralGPTConfig(num_labels=13),
            datasets=("Moonboy12138/SegMunich",),
            base="spectralgpt-plus",
            image_processor=SpectralGPTImageProcessor.for_segmunich,
            summary="The authors' land-use / land-cover segmentation model for SegMunich (Sentinel-2 tiles of Munich "
            "and its surroundings, 128 x 128 px, 13 classes), fine-tuned from SpectralGPT+: the encoder's last block, "
            "a learned fusion of the spectral groups, a four-level neck and a pyramid-pooling + FPN decoder. "
            "`logits` are (batch, 13, 128, 128) class scores at input resolution.",
            describe_inputs=segmunich_inputs,
            limits=(
                "The 12 input channels are not the 12 Sentinel-2 bands of the other models: they are the 10 bands of "
                "the SegMunich tiles, then their per-pixel mean twice. Which Sentinel-2 bands the 10 are is not stated "
                "by the authors' code; a third-party loader reads them as B01-B07, B8A, B11, B12 (unverified).",
                "Class names come from a third-party predictor (unverified); the authors' own SegMunich prediction "
                "script does not run (it imports a name that does not exist).",
                "Whole-scene `spectralgpt-hf predict` reads the 10 bands from a scene by those names, so its results "
                "are only as right as that band order.",
            ),
            results=("segmunich",),
        ),
        PublishedModel(
            name="spectralgpt-plus-oscd",
            title="SpectralGPT+ for change detection (OSCD)",
            checkpoint="spectralGPT+_54_28.pth",
            record=DOWNSTREAM_RECORD,
            model_class="SpectralGPTForChangeDetection",
            config=SpectralGPTConfig(num_labels=2),
            datasets=("OSCD",),
            base="spectralgpt-plus",
            image_processor=SpectralGPTImageProcessor.for_oscd,
            summary="The authors' bi-temporal change-detection model for the Onera Satellite Change Detection dataset "
            "(OSCD), fine-tuned from SpectralGPT+ (as the file name says): both dates go through the shared encoder "
            "and the spectral fusion, and the difference of the two feature maps (first minus second) feeds a neck "
            "and decoder like those of the SegMunich model. `logits` are (batch, 2, 128, 128) scores of no change / "
            "change; their `log_softmax` is the original model's output.",
            describe_inputs=partial(
                sentinel2_inputs,
                128,
                "Both dates (`pixel_values`, `pixel_values_2`) must show the same place on the same pixel grid. The "
                "authors normalised each 128 px patch and band by its own minimum and maximum, without an epsilon "
                "(a constant band gave NaN); the processor adds 1e-12.",
            ),
            limits=(
                "The authors' F1 counts the pixels of overlapping test patches (stride 63) several times and leaves "
                "out the last incomplete test batch, so it is not a per-pixel score of the test cities; "
                "`examples/run_change_detection.py --eval_stride 128` counts each pixel once.",
                "The training loss weighted the *no-change* class by a false-positive modifier of 10, trading recall "
                "of changes for fewer false alarms.",
                "The original band reader resamples the 20 m and 60 m bands by zooming and cropping, which may have "
                "misaligned them (inferred from the code, not verified); several users of the original code could "
                "not reproduce the reported F1.",
            ),
            results=("oscd",),
        ),
    )
}


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
    metadata = ModelCardData(
        library_name="transformers",
        pipeline_tag=CLASS_TASKS[model_class],
        tags=TAGS,
        base_model=base_model,
        license="other",
        license_name=LICENSE_NAME,
        license_link=PRETRAINED_RECORD,
    )
    size = config.image_size
    band_means = image_processor.band_mean_channels if image_processor is not None else 0
    if band_means:
        bands = (
            f"the bands {band_list(image_processor.band_names)}, then their per-pixel mean {band_means} times (the "
            "image processor appends these)"
        )
    elif config.band_names:
        bands = f"bands in this order: {band_list(config.band_names)}"
    else:
        bands = "channels as in the training data"
    sections = [
        f"# {repo_id.split('/')[-1]}",
        f"A `{model_class}` trained with `spectralgpt_hf`, a port of SpectralGPT, {PAPER}, to Hugging "
        "Face Transformers" + (f", from [{base_model}](https://huggingface.co/{base_model})." if base_model else "."),
        f"## Inputs\n\n`pixel_values` of shape (batch, {config.num_bands}, {size}, {size}), {bands}. The image "
        "processor of this repository (`preprocessor_config.json`) holds the preprocessing the model was trained "
        "with.",
        how_to_use(repo_id, model_class, config, band_means),
    ]
    if config.id2label and any(name != f"LABEL_{index}" for index, name in config.id2label.items()):
        labels = "\n".join(f"| {index} | {name} |" for index, name in sorted(config.id2label.items()))
        sections.append(f"## Labels\n\n| id | label |\n| --- | --- |\n{labels}")
    if metrics:
        rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in sorted(metrics.items()))
        table = f"| metric | value |\n| --- | --- |\n{rows}"
        sections.append(f"## Evaluation\n\nAs recorded by the training run:\n\n{table}")
    sections += [
        "## Known limits\n\n" + "\n".join(f"- {limit}" for limit in COMMON_LIMITS),
        license_section(
            "If this model was fine-tuned from the authors' SpectralGPT weights, their terms carry over.",
            PRETRAINED_RECORD,
        ),
        citation_section(),
    ]
    return card_from_parts(metadata, sections)


def write_published_cards(output_dir: str | Path, namespace: str = DEFAULT_NAMESPACE) -> list[Path]:
    """Writes `<name>.md` for every published model, rendered for `<namespace>/<name>`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PUBLISHED_MODELS:
        path = output_dir / f"{name}.md"
        PUBLISHED_MODELS[name].card(f"{namespace}/{name}").save(path)
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
