"""Shared test fixtures: where the reference outputs of the original code and the real Sentinel-2 samples live, and
small copies of the downstream datasets' layouts.

By default both come from the repository itself: tests/fixtures/reference (shrunk reference outputs),
tests/fixtures/data (EuroSAT-MS, BigEarthNet and a crop of the Major-TOM scene) and the package's embedded
SSL4EO-S12 pair (spectralgpt_hf.samples). `SPECTRALGPT_SHARED=/path/to/shared` points them at a full shared folder
instead (its `reference/` and `data/`, as in the project's ../shared), for benchmarks or a look at the full data.
A missing fixture skips the tests that need it, except under `CI=true`, where it fails them.
"""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from spectralgpt_hf.samples import SSL4EO_LOCATION, sample_root

import layouts
from testing_utils import REPO_ROOT

FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
SHARED_DIR = Path(os.environ["SPECTRALGPT_SHARED"]) if os.environ.get("SPECTRALGPT_SHARED") else None
REFERENCE_DIR = SHARED_DIR / "reference" if SHARED_DIR else FIXTURES_DIR / "reference"
DATA_DIR = SHARED_DIR / "data" if SHARED_DIR else FIXTURES_DIR / "data"
DATA_FOLDERS = ("eurosat_ms", "bigearthnet_s2", "major_tom_s2l2a", "ssl4eo_s12_l2a")


def missing(message: str):
    """A fixture that is not there: a failure in CI, a skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI=true: fixtures must be present)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "cases").is_dir() or not (REFERENCE_DIR / "make_weights.py").is_file():
        missing(f"reference outputs not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def make_weights(reference_dir):
    """The reference folder's own module that rebuilds the weights the reference outputs were made with."""
    spec = importlib.util.spec_from_file_location("make_weights", reference_dir / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A folder with the four sample datasets side by side, in their own layouts (see tests/fixtures/README.md)."""
    if SHARED_DIR:
        folders = {name: DATA_DIR / name for name in DATA_FOLDERS}
    else:
        folders = {name: FIXTURES_DIR / "data" / name for name in DATA_FOLDERS[:3]}
        folders["ssl4eo_s12_l2a"] = sample_root() / SSL4EO_LOCATION.split("/")[0]
    absent = [str(path) for path in folders.values() if not path.is_dir()]
    if absent:
        missing(f"real Sentinel-2 samples not found: {', '.join(absent)}")
    if SHARED_DIR:
        return DATA_DIR
    root = tmp_path_factory.mktemp("data")
    for name, path in folders.items():
        try:
            (root / name).symlink_to(path, target_is_directory=True)
        except OSError:  # no symlinks on this file system: a copy (a few MB)
            shutil.copytree(path, root / name)
    return root


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
