import pytest
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoConfig

from spectralgpt_hf import SENTINEL2_BANDS, SpectralGPTConfig


def test_defaults_are_spectralgpt_plus():
    config = SpectralGPTConfig()
    assert (config.image_size, config.patch_size, config.num_bands, config.spectral_patch_size) == (128, 8, 12, 3)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers) == (512, 4)
    assert (config.decoder_num_attention_heads, config.decoder_intermediate_size) == (16, 2048)
    assert config.mask_ratio == 0.9 and config.norm_pix_loss is False and config.layer_norm_eps == 1e-6
    assert config.band_names == SENTINEL2_BANDS
    assert config.num_tokens == 4 * 16 * 16


@pytest.mark.parametrize(
    "variant, sizes",
    [("base", (768, 12, 12, 3072)), ("large", (1024, 24, 16, 4096)), ("huge", (1280, 32, 16, 5120))],
)
def test_variants(variant, sizes):
    config = SpectralGPTConfig.from_variant(variant, image_size=96)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == sizes
    assert config.image_size == 96


def test_unknown_variant():
    with pytest.raises(ValueError, match="Unknown SpectralGPT variant 'giant'"):
        SpectralGPTConfig.from_variant("giant")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_bands": 10, "band_names": None}, r"num_bands \(10\) must be divisible by spectral_patch_size \(3\)"),
        ({"image_size": 100}, r"image_size \(100\) must be divisible by patch_size \(8\)"),
        ({"num_attention_heads": 7}, r"hidden_size \(768\) must be divisible by num_attention_heads \(7\)"),
        ({"decoder_num_attention_heads": 5}, r"decoder_hidden_size \(512\) must be divisible"),
        ({"band_names": ["B02", "B03", "B04"]}, r"band_names lists 3 bands but num_bands is 12"),
        ({"mask_ratio": 1.0}, r"mask_ratio must be in \[0, 1\)"),
    ],
)
def test_invalid_combinations_raise_at_construction(kwargs, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        SpectralGPTConfig(**kwargs)


def test_band_names_follow_band_count():
    assert SpectralGPTConfig(num_bands=6).band_names is None
    names = ["B02", "B03", "B04", "B08", "B11", "B12"]
    assert SpectralGPTConfig(num_bands=6, band_names=names).band_names == names


def test_save_load_through_auto_config(tmp_path):
    config = SpectralGPTConfig(image_size=96, hidden_size=64, num_attention_heads=4, mask_ratio=0.75)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, SpectralGPTConfig)
    ignore = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in ignore} == {
        k: v for k, v in config.to_dict().items() if k not in ignore
    }
