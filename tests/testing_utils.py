"""Plain helpers the tests import by name (pytest fixtures live in conftest.py): the repository root and the one
tiny model configuration of the tests."""

from pathlib import Path

from spectralgpt_hf import SpectralGPTConfig

REPO_ROOT = Path(__file__).resolve().parents[1]

# The tiny model of the tests, every head included, far under transformers' 1M-parameter limit: 6 bands of 3 = 2
# spectral groups; 32 px of 8 = a 4 x 4 token grid; neck maps of 32, 16, 8 and 4 px.
TINY_CONFIG = dict(
    image_size=32,
    patch_size=8,
    num_bands=6,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    decoder_hidden_size=16,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=20,
    neck_intermediate_sizes=[8, 8, 16, 16],
    neck_hidden_sizes=[4, 8, 16, 16],
    neck_norm_groups=4,
    decode_head_hidden_size=8,
    decode_head_norm_groups=4,
)


def tiny_config(**overrides) -> SpectralGPTConfig:
    """`TINY_CONFIG` with `overrides` (any SpectralGPTConfig field). Use: `from testing_utils import tiny_config`."""
    return SpectralGPTConfig(**{**TINY_CONFIG, **overrides})
