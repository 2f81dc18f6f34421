"""Model cards: the committed cards match their generator, their metadata round-trips through huggingface_hub's
ModelCard and has what the Hub needs, and their code examples compile."""

import re
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

import spectralgpt_hf.hub

from spectralgpt_hf import (
    SENTINEL2_BANDS,
    SpectralGPTConfig,
    SpectralGPTForImageClassification,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
)
from spectralgpt_hf.convert_original_checkpoint import KIND_IMAGE_PROCESSORS, MODEL_CLASSES, PUBLISHED_CHECKPOINTS
from spectralgpt_hf.hub.cards import (
    DEFAULT_NAMESPACE,
    PUBLISHED_MODELS,
    TAGS,
    TEMPLATE,
    published_model_for_checkpoint,
    trained_model_card,
    write_published_cards,
)

CARDS_DIR = Path(__file__).resolve().parents[2] / "model_cards"
SECTIONS = ["Inputs", "How to use", "Fine-tuning", "Reported results", "Known limits", "License", "Citation"]
# Tags the Hub renders a `pipeline(...)` snippet or a widget for, which cannot load 12-band arrays.
PIPELINE_TASKS = {"image-feature-extraction", "image-classification", "image-segmentation", "object-detection"}
TASK_TAGS = {
    "SpectralGPTForPreTraining": "feature-extraction",
    "SpectralGPTForImageClassification": "scene-classification",
    "SpectralGPTForSemanticSegmentation": "semantic-segmentation",
    "SpectralGPTForChangeDetection": "change-detection",
}
# Dataset names that are not Hub dataset ids (they are named in the text instead).
NOT_HUB_IDS = {"fMoW-Sentinel", "BigEarthNet-S2", "OSCD", "EuroSAT"}


def assert_hub_metadata(metadata: dict) -> None:
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "other" and not PIPELINE_TASKS & set(metadata["tags"])
    assert set(TAGS) <= set(metadata["tags"])
    assert all("/" in dataset for dataset in metadata.get("datasets", [])), metadata.get("datasets")
    # The weights' terms are not stated: `other`, with a name and a link to where the weights come from.
    assert metadata["license"] == "other"
    assert re.fullmatch(r"[a-z0-9-]+", metadata["license_name"])
    assert metadata["license_link"].startswith("https://zenodo.org/records/")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_committed_cards_are_generated_from_the_module(tmp_path):
    written = write_published_cards(tmp_path)
    assert sorted(path.name for path in CARDS_DIR.glob("*.md")) == sorted(path.name for path in written)
    for path in written:
        assert (CARDS_DIR / path.name).read_text() == path.read_text(), (
            f"model_cards/{path.name} is stale: run `python -m spectralgpt_hf.hub.cards model_cards/`"
        )


@pytest.mark.parametrize("name", list(PUBLISHED_MODELS))
def test_published_card_round_trips_and_is_complete(name, tmp_path):
    published = PUBLISHED_MODELS[name]
    repo_id = f"{DEFAULT_NAMESPACE}/{name}"
    card = published.card(repo_id)
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    metadata = loaded.data.to_dict()
    assert metadata == card.data.to_dict()
    assert_hub_metadata(metadata)
    assert TASK_TAGS[published.model_class] in metadata["tags"]
    assert not NOT_HUB_IDS & set(metadata.get("datasets", []))
    assert metadata.get("base_model") == (f"{DEFAULT_NAMESPACE}/{published.base}" if published.base else None)

    text = loaded.text
    positions = [text.index(f"\n## {section}\n") for section in SECTIONS]
    assert positions == sorted(positions)
    assert published.checkpoint in text and published.record in text
    assert "https://zenodo.org/records/8412455" in text and "https://zenodo.org/records/8412377" in text
    # how to install the package, that the placeholder repositories are not on the Hub yet, and no pipeline snippet
    assert "is not on PyPI" in text and "pip install -e ." in text
    assert f"The `{DEFAULT_NAMESPACE}/*` Hub repositories named on this card are not published yet" in text
    assert "pipeline(" not in "".join(python_blocks(text))
    assert "10.1109/TPAMI.2024.3362475" in text and "2311.07113" in text
    if name != "spectralgpt-plus-segmunich":  # SegMunich's channels are not the 12 Sentinel-2 bands
        assert " ".join(f"`{band}`" for band in SENTINEL2_BANDS) in text
    for block in python_blocks(text):
        compile(block, name, "exec")
    assert f'"{repo_id}"' in python_blocks(text)[0]


def test_base_models_chain_from_spectralgpt():
    bases = {name: model.base for name, model in PUBLISHED_MODELS.items()}
    assert bases == {
        "spectralgpt": None,
        "spectralgpt-plus": "spectralgpt",
        "spectralgpt-plus-segmunich": "spectralgpt-plus",
        "spectralgpt-plus-oscd": "spectralgpt-plus",
    }


def test_change_detection_is_not_tagged_segmentation():
    tags = PUBLISHED_MODELS["spectralgpt-plus-oscd"].card(f"{DEFAULT_NAMESPACE}/oscd").data.tags
    assert "change-detection" in tags and not any("segmentation" in tag for tag in tags)


def reported_rows(text: str) -> list[list[str]]:
    section = text.split("\n## Reported results\n")[1].split("\n## ")[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # without the header and its rule


@pytest.mark.parametrize("name", list(PUBLISHED_MODELS))
def test_reported_results_cite_the_paper_one_number_per_task(name):
    published = PUBLISHED_MODELS[name]
    text = published.card(f"{DEFAULT_NAMESPACE}/{name}").text
    section = text.split("\n## Reported results\n")[1].split("\n## ")[0]
    assert "arxiv.org/abs/2311.07113" in section and f"| {published.results_of}, reported in the paper |" in section
    for banned in ("wizwand", "stdl.ch"):  # an aggregator and a news item are not sources
        assert banned not in text
    rows = reported_rows(text)
    datasets = [row[0] for row in rows]
    assert len(datasets) == len(set(datasets)) == len(published.results)
    for row in rows:
        assert row[2] == "not confirmed" or re.fullmatch(r"\d+(\.\d+)?", row[2]), row


def test_the_96_px_card_does_not_repeat_the_results_of_spectralgpt_plus():
    card = PUBLISHED_MODELS["spectralgpt"].card(f"{DEFAULT_NAMESPACE}/spectralgpt")
    assert "SpectralGPT, reported in the paper" in card.text and "SpectralGPT+, reported" not in card.text
    assert not {"SegMunich (13 classes)", "OSCD (change detection)"} & {row[0] for row in reported_rows(card.text)}


def test_cards_for_another_namespace_do_not_call_it_a_placeholder():
    card = PUBLISHED_MODELS["spectralgpt-plus"].card("someone/spectralgpt-plus")
    assert "placeholder" not in card.text and card.data.base_model == "someone/spectralgpt"


def test_downstream_cards_follow_the_namespace_they_are_pushed_to():
    card = PUBLISHED_MODELS["spectralgpt-plus-oscd"].card("someone/oscd")
    assert card.data.base_model == "someone/spectralgpt-plus"
    assert PUBLISHED_MODELS["spectralgpt-plus-oscd"].card("someone/oscd", "x/y").data.base_model == "x/y"
    assert 'config.auto_map["AutoModelForChangeDetection"]' in card.text


def test_published_files_are_recognised_by_name_with_their_preprocessing():
    assert published_model_for_checkpoint("/data/SpectralGPT+.pth").name == "spectralgpt-plus"
    assert published_model_for_checkpoint("weights/model_3con_loss_51_0.pth").name == "spectralgpt-plus-segmunich"
    assert published_model_for_checkpoint("my_checkpoint.pth") is None
    segmunich = PUBLISHED_MODELS["spectralgpt-plus-segmunich"].image_processor()
    assert (segmunich.min_max_epsilon, segmunich.band_names, segmunich.band_mean_channels) == (
        1e-9, ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"], 2
    )
    assert PUBLISHED_MODELS["spectralgpt-plus-oscd"].image_processor().min_max_epsilon == 1e-12


def test_trained_model_card_lists_labels_and_metrics(tmp_path):
    config = SpectralGPTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=8, num_labels=2,
        id2label={0: "water", 1: "land"},
    )  # fmt: skip
    card = trained_model_card(
        SpectralGPTForImageClassification(config), "me/eurosat", "org/spectralgpt-plus", {"eval_accuracy": 0.98765}
    )
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert_hub_metadata(loaded.data.to_dict())
    assert (loaded.data.pipeline_tag, loaded.data.base_model) == ("other", "org/spectralgpt-plus")
    assert "scene-classification" in loaded.data.tags and "placeholder" not in loaded.text
    assert "| 1 | land |" in loaded.text and "| eval_accuracy | 0.9877 |" in loaded.text
    assert "AutoModelForImageClassification" in python_blocks(loaded.text)[0]
    for block in python_blocks(loaded.text):
        compile(block, "card", "exec")

    with pytest.raises(ValueError, match="not a SpectralGPT model class"):
        trained_model_card(object(), "me/x")


def test_trained_card_of_a_segmunich_model_describes_its_band_mean_channels():
    config = SpectralGPTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=8)
    model = SpectralGPTForSemanticSegmentation(config)
    text = trained_model_card(model, "me/seg", image_processor=SpectralGPTImageProcessor.for_segmunich()).text
    assert "the bands `B01` `B02` `B03` `B04` `B05` `B06` `B07` `B8A` `B11` `B12`, then their per-pixel mean 2" in text
    assert "image: a (10, 128, 128) array" in text and "spectralgpt-hf predict --model me/seg" in text
    assert "image: a (12, 128, 128) array" in trained_model_card(model, "me/seg").text


# Paragraphs written once in the template: the lead of the pretrained cards, and those of every card.
PRETRAINED_LEAD = "SpectralGPT is a spectral remote-sensing foundation model: a ViT-Base encoder over 3D tokens"
PRETRAINED_LIMIT = "The authors' BigEarthNet score is a per-batch micro average precision averaged over batches"
EVERY_CARD = ["This is not legal advice.", "@article{hong2024spectralgpt,", "Map bands by name", "Without `spectralgpt_hf`"]


def front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.DOTALL)
    assert match, "the card does not start with a YAML block"
    return yaml.safe_load(match[1])


def test_template_ships_as_package_data_and_holds_the_shared_paragraphs_once():
    tomllib = pytest.importorskip("tomllib")
    package_data = tomllib.loads((CARDS_DIR.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    template = TEMPLATE.relative_to(Path(spectralgpt_hf.hub.__file__).parent)
    assert any(template.match(pattern) for pattern in package_data["spectralgpt_hf.hub"])
    source = TEMPLATE.read_text()
    for paragraph in (PRETRAINED_LEAD, PRETRAINED_LIMIT, *EVERY_CARD):
        assert source.count(paragraph) == 1, paragraph


@pytest.mark.parametrize("name", list(PUBLISHED_MODELS))
def test_published_card_has_the_shared_paragraphs_and_no_template_left(name):
    text = PUBLISHED_MODELS[name].card(f"{DEFAULT_NAMESPACE}/{name}").text
    pretrained = PUBLISHED_MODELS[name].kind == "pretrain"
    assert text.count(PRETRAINED_LEAD) == text.count(PRETRAINED_LIMIT) == int(pretrained)
    for paragraph in EVERY_CARD:
        assert paragraph in text, paragraph
    assert not re.search(r"\{%|%\}|\{#|\{\{ ", text)  # the BibTeX's {{SpectralGPT}} is the only double brace
    assert "\n\n\n" not in text


@pytest.mark.parametrize("name", list(PUBLISHED_MODELS))
def test_published_card_renders_valid_yaml_metadata(name):
    published = PUBLISHED_MODELS[name]
    card = published.card(f"{DEFAULT_NAMESPACE}/{name}")
    metadata = front_matter(str(card))
    assert metadata == card.data.to_dict()
    assert metadata.get("datasets", []) == list(published.datasets) and metadata["license_link"] == published.record
    assert_hub_metadata(metadata)


def test_trained_card_renders_valid_yaml_metadata_and_the_shared_paragraphs():
    config = SpectralGPTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=8)
    card = trained_model_card(SpectralGPTForSemanticSegmentation(config), "me/seg", "org/base")
    metadata = front_matter(str(card))
    assert metadata == card.data.to_dict() and metadata["base_model"] == "org/base"
    assert_hub_metadata(metadata)
    for paragraph in EVERY_CARD:
        assert paragraph in card.text, paragraph
    assert PRETRAINED_LEAD not in card.text and "## Fine-tuning" not in card.text


def test_readme_and_pyproject_link_the_original_files_and_the_paper():
    tomllib = pytest.importorskip("tomllib")
    urls = tomllib.loads((CARDS_DIR.parent / "pyproject.toml").read_text())["project"]["urls"]
    assert {"https://zenodo.org/records/8412455", "https://zenodo.org/records/8412377"} <= set(urls.values())
    assert "https://arxiv.org/abs/2311.07113" in urls.values()
    # The authors' repository is not this package's.
    assert not {"Homepage", "Repository", "Source"} & set(urls)
    readme = (CARDS_DIR.parent / "README.md").read_text()
    assert "https://zenodo.org/records/8412455" in readme and "https://zenodo.org/records/8412377" in readme
    assert f"`{DEFAULT_NAMESPACE}/*` repositories those cards name are **not published yet**" in readme


def test_cards_and_converter_read_one_registry_of_published_files():
    assert {model.checkpoint for model in PUBLISHED_MODELS.values()} == set(PUBLISHED_CHECKPOINTS)
    for name, published in PUBLISHED_MODELS.items():
        checkpoint = PUBLISHED_CHECKPOINTS[published.checkpoint]
        assert published.model_class == MODEL_CLASSES[checkpoint.kind].__name__ == checkpoint.model_class.__name__
        assert published.image_processor is checkpoint.image_processor
    # The converter saves SegMunich's processor beside any segmentation model: the same one the card's model has.
    assert PUBLISHED_CHECKPOINTS["model_3con_loss_51_0.pth"].image_processor is KIND_IMAGE_PROCESSORS["segmentation"]
