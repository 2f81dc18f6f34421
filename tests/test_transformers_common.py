"""transformers' own common model tests (ModelTesterMixin, ConfigTester) run against SpectralGPT.

The mixins ship only in the transformers source distribution, not in the wheel: `python
tests/fetch_transformers_tests.py` (part of the README's setup and of `.ci/run`) unpacks the sdist of the installed
version into .cache/, or TRANSFORMERS_TESTS_DIR may point at its `tests/` folder; without either this module is
skipped, except under CI=true, where its collection fails (see tests/README.md for the common tests that skip).
The mixins are copied into a scratch package with stubs for the three helpers the sdist does not ship (export,
generation and config-kwargs test utilities).
"""

import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import pytest
import transformers

DEFAULT_TESTS_DIR = Path(__file__).resolve().parents[1] / ".cache" / f"transformers-{transformers.__version__}" / "tests"
TESTS_DIR = os.environ.get("TRANSFORMERS_TESTS_DIR", str(DEFAULT_TESTS_DIR))
if not TESTS_DIR or not (Path(TESTS_DIR) / "test_modeling_common.py").is_file():
    MESSAGE = f"transformers' common tests not found at {TESTS_DIR}: run `python tests/fetch_transformers_tests.py`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):  # as conftest.missing() does for fixtures
        pytest.fail(f"{MESSAGE} (CI=true: they must be present)", pytrace=False)
    pytest.skip(MESSAGE, allow_module_level=True)

import torch  # noqa: E402

STUBS = {
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    "utils/test_configuration_utils.py": (
        "config_common_kwargs = {'return_dict': False, 'output_hidden_states': True, 'dtype': 'float16',\n"
        "    'chunk_size_feed_forward': 5, 'architectures': ['BertModel'], 'id2label': {0: 'label'},\n"
        "    'label2id': {'label': '0'}, 'problem_type': 'regression'}\n"
    ),
}


def build_mixin_package() -> None:
    root = Path(tempfile.mkdtemp(prefix="transformers-common-"))
    package = root / "transformers_common_tests"
    for name in ("test_modeling_common.py", "test_configuration_common.py", "test_backbone_common.py"):
        package.mkdir(exist_ok=True)
        shutil.copy(Path(TESTS_DIR) / name, package / name)
    for relative, text in STUBS.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    for folder in [package, *(path for path in package.iterdir() if path.is_dir())]:
        (folder / "__init__.py").touch()
    sys.path.insert(0, str(root))


build_mixin_package()

from transformers_common_tests.test_backbone_common import BackboneTesterMixin  # noqa: E402
from transformers_common_tests.test_configuration_common import ConfigTester  # noqa: E402
from transformers_common_tests.test_modeling_common import ModelTesterMixin, floats_tensor  # noqa: E402

from testing_utils import tiny_config  # noqa: E402
from spectralgpt_hf import (  # noqa: E402
    SpectralGPTBackbone,
    SpectralGPTConfig,
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
    SpectralGPTModel,
)


class SpectralGPTModelTester:
    def __init__(self, parent, batch_size=2, image_size=16, patch_size=4, num_bands=6, mask_ratio=0.75, num_labels=3):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_bands = num_bands
        self.hidden_size = 32
        self.num_hidden_layers = 2
        self.num_attention_heads = 4
        self.mask_ratio = mask_ratio
        self.num_labels = num_labels
        self.is_training = True
        self.out_indices = [1, 2]
        self.out_features = ["stage1", "stage2"]
        self.num_tokens = (num_bands // 3) * (image_size // patch_size) ** 2
        self.seq_length = self.num_tokens

    def get_config(self):
        return tiny_config(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_bands=self.num_bands,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            mask_ratio=self.mask_ratio,
            num_labels=self.num_labels,
            out_indices=self.out_indices,
        )

    def prepare_config_and_inputs_for_common(self):
        pixel_values = floats_tensor([self.batch_size, self.num_bands, self.image_size, self.image_size])
        return self.get_config(), {"pixel_values": pixel_values}


class SpectralGPTModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (SpectralGPTModel,)
    test_resize_embeddings = False
    test_torch_exportable = False

    def setUp(self):
        # the base model has no loss: upstream's training tests skip base models by their (static) class name
        self.model_tester = SpectralGPTModelTester(self)
        self.model_tester.is_training = False
        self.config_tester = ConfigTester(self, config_class=SpectralGPTConfig, has_text_modality=False)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), torch.nn.Module)


class SpectralGPTForPreTrainingTest(ModelTesterMixin, unittest.TestCase):
    """The pretraining model's encoder sees only the visible tokens."""

    all_model_classes = (SpectralGPTForPreTraining,)
    test_resize_embeddings = False
    test_torch_exportable = False

    def setUp(self):
        self.model_tester = SpectralGPTModelTester(self)
        tester = self.model_tester
        tester.seq_length = int(tester.num_tokens * (1 - tester.mask_ratio))

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        # fixed noise: the same tokens are masked in every call a test compares
        generator = torch.Generator().manual_seed(2)
        batch_size = inputs_dict["pixel_values"].shape[0]
        inputs_dict["noise"] = torch.rand(batch_size, self.model_tester.num_tokens, generator=generator)
        return inputs_dict

    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        self.assertIsInstance(SpectralGPTForPreTraining(config).get_input_embeddings(), torch.nn.Module)


class SpectralGPTHeadsTest(ModelTesterMixin, unittest.TestCase):
    """Classification and segmentation. Upstream adds labels only for its own classes (by static name tables)."""

    all_model_classes = (SpectralGPTForImageClassification, SpectralGPTForSemanticSegmentation)
    test_resize_embeddings = False
    test_torch_exportable = False

    def setUp(self):
        self.model_tester = SpectralGPTModelTester(self)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            tester = self.model_tester
            # fixed labels, as upstream: tests compare two calls
            if model_class is SpectralGPTForImageClassification:
                inputs_dict["labels"] = torch.zeros(tester.batch_size, dtype=torch.long)
            else:
                inputs_dict["labels"] = torch.zeros(tester.batch_size, tester.image_size, tester.image_size).long()
        return inputs_dict

    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            self.assertIsInstance(model_class(config).get_input_embeddings(), torch.nn.Module)


class SpectralGPTForChangeDetectionTest(ModelTesterMixin, unittest.TestCase):
    """Two dates in; the outputs carry a second set of hidden states and attentions for the second date."""

    all_model_classes = (SpectralGPTForChangeDetection,)
    additional_model_inputs = ["pixel_values_2"]
    test_resize_embeddings = False
    test_torch_exportable = False

    def setUp(self):
        self.model_tester = SpectralGPTModelTester(self, num_labels=2)
        self.model_tester.prepare_config_and_inputs_for_common = self.prepare_two_dates

    def prepare_two_dates(self):
        config, inputs = SpectralGPTModelTester.prepare_config_and_inputs_for_common(self.model_tester)
        inputs["pixel_values_2"] = floats_tensor(list(inputs["pixel_values"].shape))
        return config, inputs

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            tester = self.model_tester
            inputs_dict["labels"] = torch.zeros(tester.batch_size, tester.image_size, tester.image_size).long()
        return inputs_dict

    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        self.assertIsInstance(SpectralGPTForChangeDetection(config).get_input_embeddings(), torch.nn.Module)

    def test_attention_outputs(self):
        """Upstream's version counts every output field; here each date's attentions and hidden states are checked
        in shape as upstream does, and by value against the encoder run on that date alone."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config._attn_implementation = "eager"
        model = SpectralGPTForChangeDetection(config).eval()
        with torch.no_grad():
            outputs = model(**inputs, output_attentions=True, output_hidden_states=True)
            dates = [model.spectralgpt(inputs[name], output_attentions=True, output_hidden_states=True)
                     for name in ("pixel_values", "pixel_values_2")]  # fmt: skip
        tester = self.model_tester
        expected = (tester.batch_size, tester.num_attention_heads, tester.num_tokens, tester.num_tokens)
        pairs = [(outputs.attentions, outputs.hidden_states), (outputs.attentions_2, outputs.hidden_states_2)]
        for (attentions, hidden_states), alone in zip(pairs, dates):
            self.assertEqual(len(attentions), tester.num_hidden_layers)
            self.assertEqual(len(hidden_states), tester.num_hidden_layers + 1)
            for attention, attention_alone in zip(attentions, alone.attentions, strict=True):
                self.assertEqual(tuple(attention.shape), expected)
                torch.testing.assert_close(attention, attention_alone)
            for hidden, hidden_alone in zip(hidden_states, alone.hidden_states, strict=True):
                torch.testing.assert_close(hidden, hidden_alone)
        # The dates differ, so their attentions do: the second is not a copy of the first.
        self.assertFalse(torch.allclose(outputs.attentions[-1], outputs.attentions_2[-1]))


class SpectralGPTBackboneTest(BackboneTesterMixin, unittest.TestCase):
    all_model_classes = (SpectralGPTBackbone,)
    config_class = SpectralGPTConfig
    has_attentions = False

    def setUp(self):
        self.model_tester = SpectralGPTModelTester(self)
