"""Loading the encoder out of a pretraining checkpoint, the documented use of `AutoModel`, prints no load report;
a head that is really missing still does."""

from transformers import AutoModel
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from spectralgpt_hf import (
    SpectralGPTConfig,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTModel,
)

TINY = dict(
    image_size=16, num_bands=6, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
    decoder_hidden_size=8, decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=8,
)  # fmt: skip
LOAD_REPORT_LOGGER = logging.get_logger("transformers.modeling_utils")  # the logger of the load report


def test_encoder_loads_out_of_a_pretraining_checkpoint_quietly(tmp_path):
    SpectralGPTForPreTraining(SpectralGPTConfig(**TINY)).save_pretrained(tmp_path)
    with CaptureLogger(LOAD_REPORT_LOGGER) as captured:
        model = AutoModel.from_pretrained(tmp_path)
    assert type(model) is SpectralGPTModel
    assert "UNEXPECTED" not in captured.out and "decoder." not in captured.out, captured.out


def test_a_new_head_is_still_reported_without_the_decoder(tmp_path):
    SpectralGPTForPreTraining(SpectralGPTConfig(**TINY)).save_pretrained(tmp_path)
    with CaptureLogger(LOAD_REPORT_LOGGER) as captured:
        SpectralGPTForImageClassification.from_pretrained(tmp_path)
    assert "classifier.weight" in captured.out and "MISSING" in captured.out
    assert "decoder." not in captured.out
