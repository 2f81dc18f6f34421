"""User mistakes end in one `spectralgpt-hf CMD: error:` line, no traceback: exit 2 for usage, 1 for failed runs."""

import os
import subprocess
import sys

import pytest
from testing_utils import REPO_ROOT


def run_cli(*arguments, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("SPECTRALGPT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "spectralgpt_hf", *arguments], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)  # fmt: skip


def check(result, command, code, *words):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"spectralgpt-hf {command}: error: ")
    for word in words:
        assert word in result.stderr


def test_missing_model_says_no_folder_and_no_hub_repository(tmp_path):
    result = run_cli("predict", "--model", "./no-such-folder", "--input", "x.tif", "--output", "o.tif", cwd=tmp_path)
    check(result, "predict", 1, "no such folder", "HF_HUB_OFFLINE")


def test_png_output_is_refused(tmp_path):
    check(run_cli("predict", "--model", "m", "--input", "x.tif", "--output", "o.png", cwd=tmp_path), "predict", 2,
          "GeoTIFF")  # fmt: skip


def test_cuda_on_a_cpu_build_is_a_usage_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli("embed", "--model", "m", "--input", "x.tif", "--output", "o.tif", "--device", "cuda")
    check(result, "embed", 2, "--device cpu")


def test_unreadable_checkpoint(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "junk.pth", "w") as archive:
        archive.writestr("junk/data.pkl", os.urandom(64))
    check(run_cli("convert", str(tmp_path / "junk.pth"), str(tmp_path / "out")), "convert", 1, "junk.pth")


def test_corrupt_geotiff(tmp_path):
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + os.urandom(200))
    from spectralgpt_hf import SpectralGPTForSemanticSegmentation
    from testing_utils import tiny_config

    SpectralGPTForSemanticSegmentation(tiny_config(num_labels=3)).save_pretrained(tmp_path / "model")
    result = run_cli("predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "corrupt.tif"),
                     "--output", str(tmp_path / "o.tif"), "--quiet")  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr and "error:" in result.stderr
