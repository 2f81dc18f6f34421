"""Publishing: a prepared Hub folder loads every class with remote code alone (a process where spectralgpt_hf cannot
be imported) and with the installed package, from a folder and from an offline Hub cache, with the original
outputs; the upload sends exactly that folder."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
import huggingface_hub.constants
from huggingface_hub import ModelCard
from transformers import AutoConfig, AutoModel
from transformers.models.auto.image_processing_auto import AutoImageProcessor

import spectralgpt_hf
from spectralgpt_hf import (
    SpectralGPTBackbone,
    SpectralGPTConfig,
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTImageProcessor,
    SpectralGPTModel,
)
from spectralgpt_hf.cli import main as cli_main
from spectralgpt_hf.auto import AUTO_CLASSES
from spectralgpt_hf.hub.publishing import push_to_hub, save_for_hub
from spectralgpt_hf.hub.cards import trained_model_card

from hub_loading import BACKBONE_INDICES, load_every_class
from layouts import tiny_pretrain_manifest
from testing_utils import tiny_config

REPO_ROOT = Path(spectralgpt_hf.__file__).resolve().parents[1]


def tiny_12_band_config(**overrides) -> SpectralGPTConfig:
    """The tests' tiny config with the 12 Sentinel-2 bands: 4 spectral groups of 32 px, 64 tokens."""
    return tiny_config(num_bands=12, **overrides)


HEADS = {
    "encoder": (SpectralGPTModel, {}),
    "pretraining": (SpectralGPTForPreTraining, {}),
    "classification": (SpectralGPTForImageClassification, {"num_labels": 3}),
    "segmentation": (SpectralGPTForSemanticSegmentation, {"num_labels": 5}),
    "change_detection": (SpectralGPTForChangeDetection, {"num_labels": 2}),
}
CODE_FILES = {"configuration_spectralgpt.py", "modeling_spectralgpt.py", "image_processing_spectralgpt.py"}
HUB_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} | CODE_FILES

# In a fresh process where spectralgpt_hf cannot be imported (hidden as a missing install is: the import fails), load
# every class with remote code from each set of sources, offline.
LOAD_WITHOUT_PACKAGE = """
import json, sys
spec = json.loads(sys.argv[1])
sys.modules["spectralgpt_hf"] = None
sys.path.insert(0, spec["tests"])
import torch
from hub_loading import load_every_class

data, results = torch.load(spec["inputs"]), {}
for label, (sources, hub_answers) in spec["runs"].items():
    results[label] = load_every_class(sources, data, package=False, trust_remote_code=True, hub_answers=hub_answers)
results["imported"] = [name for name, module in sys.modules.items() if name.startswith("spectralgpt_hf") and module]
torch.save(results, spec["output"])
"""


def add_to_hub_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """The layout huggingface_hub downloads to: refs/main names a commit whose snapshot holds the files."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared Hub folder per head, the same in an offline Hub cache, and the original models' outputs."""
    root = tmp_path_factory.mktemp("hub")
    generator = torch.Generator().manual_seed(0)
    data = {
        "pixel_values": torch.rand(2, 12, 32, 32, generator=generator),
        "pixel_values_2": torch.rand(2, 12, 32, 32, generator=generator),
        "noise": torch.rand(2, 64, generator=generator),
        "image": (torch.rand(12, 32, 32, generator=generator) * 3000).to(torch.int32),
    }
    processor = SpectralGPTImageProcessor.for_pretraining()
    folders, repo_ids, expected = {}, {}, {}
    for seed, (name, (model_class, overrides)) in enumerate(HEADS.items()):
        torch.manual_seed(seed)
        model = model_class(tiny_12_band_config(**overrides)).eval()
        folders[name] = save_for_hub(model, root / name, processor, trained_model_card(model, f"org/{name}"))
        repo_ids[name] = f"spectralgpt-test/tiny-{name.replace('_', '-')}"
        add_to_hub_cache(root / "hub-cache", repo_ids[name], folders[name])
        with torch.no_grad():
            if name == "encoder":
                result = model(data["pixel_values"])
                expected[name] = [result.last_hidden_state, result.pooler_output]
            elif name == "pretraining":
                result = model(data["pixel_values"], noise=data["noise"])
                expected[name] = [result.logits, result.loss]
            elif name == "change_detection":
                expected[name] = [model(data["pixel_values"], data["pixel_values_2"]).logits]
            else:
                expected[name] = [model(data["pixel_values"]).logits]
    backbone = SpectralGPTBackbone.from_pretrained(folders["pretraining"], out_indices=BACKBONE_INDICES).eval()
    with torch.no_grad():
        expected["backbone"] = list(backbone(data["pixel_values"]).feature_maps)
    expected["image_processor"] = [processor(data["image"], return_tensors="pt").pixel_values]
    expected["config"] = AutoConfig.from_pretrained(folders["encoder"]).to_dict()
    torch.save(data, root / "inputs.pt")
    return {"root": root, "folders": folders, "repo_ids": repo_ids, "data": data, "expected": expected}


@pytest.fixture(scope="module")
def loaded_without_package(prepared):
    """Every class loaded with remote code alone, from the folders and by repo id from the offline Hub cache."""
    root = prepared["root"]
    spec = {
        "tests": str(Path(__file__).parents[1]),  # where hub_loading.py is
        "inputs": str(root / "inputs.pt"),
        "output": str(root / "loaded.pt"),
        "runs": {
            "folder": ({name: str(path) for name, path in prepared["folders"].items()}, False),
            "hub": (prepared["repo_ids"], True),
        },
    }
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(root / "hub-cache"),
        "HF_MODULES_CACHE": str(root / "modules"),
        "TRANSFORMERS_VERBOSITY": "error",  # no load reports: the end of stderr then shows a failure
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    # -I: no PYTHONPATH, user site or working directory on sys.path.
    command = [sys.executable, "-I", "-c", LOAD_WITHOUT_PACKAGE, json.dumps(spec)]
    completed = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return torch.load(root / "loaded.pt", weights_only=False)


def assert_same_outputs(outputs, expected):
    for name, tensors in expected.items():
        if name == "config":
            ignored = {"_name_or_path", "auto_map"}
            assert {k: v for k, v in outputs[name].items() if k not in ignored} == {
                k: v for k, v in tensors.items() if k not in ignored
            }
        else:
            assert len(outputs[name]) == len(tensors), name
            for actual, wanted in zip(outputs[name], tensors):
                torch.testing.assert_close(actual, wanted, msg=name)


def test_folder_holds_weights_code_card_and_a_full_auto_map(prepared):
    folder = prepared["folders"]["change_detection"]
    assert {path.name for path in folder.iterdir()} == HUB_FILES
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["SpectralGPTForChangeDetection"]
    assert config["auto_map"] == {
        "AutoConfig": "configuration_spectralgpt.SpectralGPTConfig",
        "AutoModel": "modeling_spectralgpt.SpectralGPTModel",
        "AutoModelForPreTraining": "modeling_spectralgpt.SpectralGPTForPreTraining",
        "AutoModelForImageClassification": "modeling_spectralgpt.SpectralGPTForImageClassification",
        "AutoModelForSemanticSegmentation": "modeling_spectralgpt.SpectralGPTForSemanticSegmentation",
        "AutoBackbone": "modeling_spectralgpt.SpectralGPTBackbone",
        "AutoModelForChangeDetection": "modeling_spectralgpt.SpectralGPTForChangeDetection",
        "AutoImageProcessor": "image_processing_spectralgpt.SpectralGPTImageProcessor",
    }
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["auto_map"] == {"AutoImageProcessor": "image_processing_spectralgpt.SpectralGPTImageProcessor"}
    for name in CODE_FILES:  # the package's own files, unchanged
        assert (folder / name).read_text() == (REPO_ROOT / "spectralgpt_hf" / name).read_text()
    assert "change-detection" in ModelCard.load(folder / "README.md").data.tags
    with pytest.raises(FileExistsError, match="not empty"):
        save_for_hub(SpectralGPTModel(tiny_12_band_config()), folder, SpectralGPTImageProcessor(), ModelCard(""))


@pytest.mark.parametrize("source", ["folder", "hub"])
def test_every_class_loads_with_remote_code_alone(prepared, loaded_without_package, source):
    """From a folder, and by repo id from an offline Hub cache, in a process without spectralgpt_hf."""
    classes, outputs = loaded_without_package[source]
    assert loaded_without_package["imported"] == []
    assert all(path.startswith("transformers_modules.") for path in classes.values()), classes
    assert classes["backbone"].endswith(".modeling_spectralgpt.SpectralGPTBackbone")
    assert classes["image_processor"].endswith(".image_processing_spectralgpt.SpectralGPTImageProcessor")
    assert_same_outputs(outputs, prepared["expected"])


def test_installed_package_loads_by_repo_id_offline_and_wins_over_remote_code(prepared, monkeypatch):
    # What HF_HUB_OFFLINE=1 and HF_HUB_CACHE set before the import give.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(prepared["root"] / "hub-cache"))
    repo_ids = prepared["repo_ids"]
    classes, outputs = load_every_class(
        repo_ids, prepared["data"], package=True, trust_remote_code=False, hub_answers=True
    )
    assert all(path.startswith("spectralgpt_hf.") for path in classes.values()), classes
    assert_same_outputs(outputs, prepared["expected"])
    # The registered classes win even where trust_remote_code=True allows the repository's code.
    assert type(AutoConfig.from_pretrained(repo_ids["encoder"], trust_remote_code=True)) is SpectralGPTConfig
    assert type(AutoModel.from_pretrained(repo_ids["encoder"], trust_remote_code=True)) is SpectralGPTModel
    processor = AutoImageProcessor.from_pretrained(repo_ids["encoder"], trust_remote_code=True)
    assert type(processor) is SpectralGPTImageProcessor


class FakeHub:
    """Stands in for HfApi: records the repository and the files of the folder at upload time."""

    def __init__(self):
        self.created, self.uploads = [], []

    def __call__(self, token=None):
        self.token = token
        return self

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.created.append((repo_id, private, exist_ok))

    def upload_folder(self, repo_id, folder_path, commit_message):
        folder = Path(folder_path)
        files = {path.name: path.read_bytes() for path in folder.iterdir()}
        self.uploads.append({"repo_id": repo_id, "folder": folder, "files": files, "message": commit_message})
        return mock.Mock(commit_url=f"https://huggingface.co/{repo_id}/commit/0")

    def upload(self, name):
        return self.uploads[-1]["files"][name]

    def card(self, tmp_path):
        (tmp_path / "uploaded.md").write_bytes(self.upload("README.md"))
        return ModelCard.load(tmp_path / "uploaded.md")


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    with mock.patch("spectralgpt_hf.hub.publishing.HfApi", hub):
        yield hub


def test_push_to_hub_uploads_the_prepared_folder_and_nothing_else(fake_hub, tmp_path):
    torch.manual_seed(0)
    model = SpectralGPTForSemanticSegmentation(tiny_12_band_config(num_labels=5))
    commit = push_to_hub(
        model, "org/tiny-seg", image_processor=SpectralGPTImageProcessor.for_segmunich(), private=True, token="t"
    )
    assert commit.commit_url == "https://huggingface.co/org/tiny-seg/commit/0"
    assert fake_hub.created == [("org/tiny-seg", True, True)] and fake_hub.token == "t"
    upload = fake_hub.uploads[0]
    assert upload["repo_id"] == "org/tiny-seg"
    assert set(upload["files"]) == HUB_FILES
    assert not upload["folder"].exists()  # the temporary folder is gone
    assert set(json.loads(fake_hub.upload("config.json"))["auto_map"]) == set(AUTO_CLASSES)
    assert json.loads(fake_hub.upload("preprocessor_config.json"))["min_max_epsilon"] == 1e-9
    card = fake_hub.card(tmp_path)
    assert "semantic-segmentation" in card.data.tags and card.data.license == "other"
    with pytest.raises(ValueError, match="image_processor"):
        push_to_hub(model, "org/tiny-seg")


def test_publish_uploads_a_training_output_folder(fake_hub, tmp_path):
    """A Trainer output: the model, its image processor and metrics, plus training files that stay behind."""
    torch.manual_seed(0)
    config = tiny_12_band_config(num_labels=2, id2label={0: "water", 1: "land"})
    SpectralGPTForImageClassification(config).save_pretrained(tmp_path / "run")
    SpectralGPTImageProcessor.for_eurosat().save_pretrained(tmp_path / "run")
    (tmp_path / "run" / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.75, "eval_runtime": 3.2}))
    (tmp_path / "run" / "training_args.bin").write_bytes(b"pickle")
    (tmp_path / "run" / "checkpoint-10").mkdir()

    assert cli_main(["publish", str(tmp_path / "run"), "org/tiny-eurosat", "--base-model", "org/base"]) == 0
    assert fake_hub.created == [("org/tiny-eurosat", None, True)]
    assert set(fake_hub.uploads[0]["files"]) == HUB_FILES
    assert json.loads(fake_hub.upload("preprocessor_config.json"))["normalization"] == "mean_std"
    card = fake_hub.card(tmp_path)
    assert card.data.base_model == "org/base" and "scene-classification" in card.data.tags
    assert "| eval_accuracy | 0.75 |" in card.text and "eval_runtime" not in card.text
    assert "| 1 | land |" in card.text

    # A folder's own README.md is the card.
    ModelCard("---\nlicense: mit\n---\n# Mine\n").save(tmp_path / "run" / "README.md")
    cli_main(["publish", str(tmp_path / "run"), "org/tiny-eurosat", "--private"])
    assert fake_hub.created[-1] == ("org/tiny-eurosat", True, True)
    assert fake_hub.card(tmp_path).text.strip() == "# Mine"


def test_publish_refuses_a_folder_without_image_processor(fake_hub, tmp_path, capsys):
    SpectralGPTModel(tiny_12_band_config()).save_pretrained(tmp_path / "run")
    assert cli_main(["publish", str(tmp_path / "run"), "org/x"]) == 1
    assert "No image processor to upload" in capsys.readouterr().err
    assert fake_hub.uploads == []


def test_convert_pushes_a_published_file_with_its_card(fake_hub, make_weights, tmp_path, capsys):
    state_dict = make_weights.make_state_dict(tiny_pretrain_manifest(), seed=0)
    path = tmp_path / "SpectralGPT+.pth"
    make_weights.write_original_checkpoint("pretrain", state_dict, path, args={"mask_ratio": 0.9})
    assert cli_main(["convert", str(path), str(tmp_path / "out"), "--push-to-hub", "org/spectralgpt-plus"]) == 0
    assert "https://huggingface.co/org/spectralgpt-plus/commit/0" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()  # the local conversion is still written
    assert json.loads(fake_hub.upload("config.json"))["architectures"] == ["SpectralGPTForPreTraining"]
    assert json.loads(fake_hub.upload("preprocessor_config.json"))["normalization"] == "min_max"
    card = fake_hub.card(tmp_path)
    assert "# SpectralGPT+ (pretrained, 128 px)" in card.text
    assert card.data.license_link == "https://zenodo.org/records/8412455"

    other = tmp_path / "my-run.pth"
    shutil.copy(path, other)
    assert cli_main(["convert", str(other), str(tmp_path / "out2"), "--push-to-hub", "org/x"]) == 1
    assert "none of the published files" in capsys.readouterr().err
    assert len(fake_hub.uploads) == 1

