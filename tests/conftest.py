"""Shared test fixtures: where the read-only reference outputs and real Sentinel-2 samples live."""

import importlib.util
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SPECTRALGPT_SHARED", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = SHARED_DIR / "reference"
DATA_DIR = Path(os.environ.get("SPECTRALGPT_TEST_DATA", SHARED_DIR / "data"))


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
