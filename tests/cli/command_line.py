"""Helpers of the command-line tests: the real `spectralgpt-hf` in a subprocess, its error message, and tiny saved
models of every kind."""

import os
import subprocess
import sys

from testing_utils import REPO_ROOT, tiny_config

from spectralgpt_hf import (
    SpectralGPTForChangeDetection,
    SpectralGPTForImageClassification,
    SpectralGPTForPreTraining,
    SpectralGPTForSemanticSegmentation,
)

EUROSAT_TILE = str(REPO_ROOT / "tests/fixtures/data/eurosat_ms/SeaLake/SeaLake_3000.tif")  # 13 bands, no names
MODEL_CLASSES = {
    "pretraining": SpectralGPTForPreTraining,
    "classifier": SpectralGPTForImageClassification,
    "segmenter": SpectralGPTForSemanticSegmentation,
    "change": SpectralGPTForChangeDetection,
}


def run_cli(*arguments, cwd=None) -> subprocess.CompletedProcess:
    """`python -m spectralgpt_hf.cli ARGUMENTS` with this checkout's package, offline, without SPECTRALGPT_DEBUG."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("SPECTRALGPT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "spectralgpt_hf.cli", *arguments], check=False, capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)  # fmt: skip


def check(result: subprocess.CompletedProcess, command: str, code: int, *words: str) -> str:
    """Exit `code`, no traceback, and the last line the one error message, naming each of `words`; returns it."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"spectralgpt-hf {command}: error: "), result.stderr
    for word in words:
        assert word in message, message
    return message


def save_tiny_models(folder) -> dict[str, str]:
    """Tiny 12-band models of each kind, 32 px (so the default overlap must come from the model, not be 32)."""
    for name, model_class in MODEL_CLASSES.items():
        model_class(tiny_config(num_bands=12, num_labels=3)).save_pretrained(folder / name)
    return {name: str(folder / name) for name in MODEL_CLASSES}
