"""Under CI=true, absent data or transformers' test files fail the run instead of skipping whole modules."""

import os
import subprocess
import sys

import pytest

from testing_utils import REPO_ROOT


def run_pytest(*paths: str, **environment) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'tests'}"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci, fails", [("true", True), ("", False)])
def test_missing_transformers_tests_fail_under_ci(ci, fails):
    result = run_pytest("tests/test_transformers_common.py", CI=ci, TRANSFORMERS_TESTS_DIR="/nonexistent")
    # 5: nothing collected, all skipped
    assert (result.returncode not in (0, 5)) == fails, result.stdout[-2000:]
    assert ("CI=true: they must be present" in result.stdout) == fails
    if not fails:
        assert "1 skipped" in result.stdout


def test_missing_shared_data_fails_under_ci():
    # The reference outputs (reference_dir fixture) and the Sentinel-2 samples (data_dir fixture), in one run.
    tests = ["tests/test_reference_outputs.py::test_change_detection_checkpoint_reproduces_original",
             "tests/training/test_pretraining.py::test_finds_stacked_files_and_band_folders"]  # fmt: skip
    result = run_pytest(*tests, CI="true", SPECTRALGPT_SHARED="/nonexistent")
    assert result.returncode != 0 and "2 errors" in result.stdout, result.stdout[-2000:]
    for message in ("reference outputs not found", "real Sentinel-2 samples not found"):
        assert message in result.stdout, result.stdout[-2000:]
    assert result.stdout.count("CI=true: fixtures must be present") >= 2
