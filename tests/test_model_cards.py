"""Model cards: the committed cards match their generator, their metadata round-trips through huggingface_hub's
ModelCard and has what the Hub needs, and their code examples compile."""

import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from spectralgpt_hf import (
    SENTINEL2_BANDS,
    SpectralGPTConfig,
    SpectralGPTForImageClassification,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
)
from spectralgpt_hf.hub.cards import (
    DEFAULT_NAMESPACE,
    PUBLISHED_MODELS,
    TAGS,
    published_model_for_checkpoint,
    trained_model_card,
    write_published_cards,
)

CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"
SECTIONS = ["Inputs", "How to use", "Fine-tuning", "Reported results", "Known limits", "License", "Citation"]
PIPELINE_TAGS = {"image-feature-extraction", "image-classification", "image-segmentation"}


def assert_hub_metadata(metadata: dict) -> None:
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] in PIPELINE_TAGS
    assert set(TAGS) <= set(metadata["tags"])
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
    assert metadata["datasets"]
    assert metadata.get("base_model") == (f"{DEFAULT_NAMESPACE}/spectralgpt-plus" if published.base else None)

    text = loaded.text
    positions = [text.index(f"\n## {section}\n") for section in SECTIONS]
    assert positions == sorted(positions)
    assert published.checkpoint in text and published.record in text
    assert "10.1109/TPAMI.2024.3362475" in text and "2311.07113" in text
    if name != "spectralgpt-plus-segmunich":  # SegMunich's channels are not the 12 Sentinel-2 bands
        assert " ".join(f"`{band}`" for band in SENTINEL2_BANDS) in text
    for block in python_blocks(text):
        compile(block, name, "exec")
    assert f'"{repo_id}"' in python_blocks(text)[0]


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
    assert (loaded.data.pipeline_tag, loaded.data.base_model) == ("image-classification", "org/spectralgpt-plus")
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
