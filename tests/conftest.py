"""Shared test fixtures: where the read-only reference outputs and real Sentinel-2 samples live, and the one tiny
model configuration of the tests (`tiny_config`)."""

import importlib.util
import os
from pathlib import Path

import pytest

from spectralgpt_hf import SpectralGPTConfig

import layouts

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SPECTRALGPT_SHARED", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = SHARED_DIR / "reference"
DATA_DIR = Path(os.environ.get("SPECTRALGPT_TEST_DATA", SHARED_DIR / "data"))

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
    """`TINY_CONFIG` with `overrides` (any SpectralGPTConfig field). Use: `from conftest import tiny_config`."""
    return SpectralGPTConfig(**{**TINY_CONFIG, **overrides})


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "cases").is_dir():
        pytest.skip(f"reference outputs not found at {REFERENCE_DIR} (set SPECTRALGPT_SHARED)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def make_weights(reference_dir):
    """The reference folder's own module that rebuilds the weights the reference outputs were made with."""
    spec = importlib.util.spec_from_file_location("make_weights", reference_dir / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real Sentinel-2 samples not found at {DATA_DIR} (set SPECTRALGPT_TEST_DATA)")
    return DATA_DIR


# Small copies of the real folder layouts of the four downstream datasets (tests/layouts.py), built once.


@pytest.fixture(scope="session")
def eurosat_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("eurosat")
    layouts.write_eurosat(data_dir, root)
    (root / "eurosat-train.txt").write_text("AnnualCrop_1.jpg\nSeaLake_3000.jpg\n")
    return root


@pytest.fixture(scope="session")
def bigearthnet_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("bigearthnet")
    patch = layouts.write_bigearthnet(data_dir, root)
    return root, patch


@pytest.fixture(scope="session")
def segmunich_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("segmunich")
    layouts.write_segmunich(data_dir, root)
    return root


@pytest.fixture(scope="session")
def oscd_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("oscd")
    layouts.write_oscd(data_dir, root)
    return root
