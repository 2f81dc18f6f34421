# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Masked-autoencoder pretraining of SpectralGPT with Accelerate, following the original recipe: AdamW (0.9, 0.95)
with weight decay 0.05 except on norms, biases, position tables and the mask token, lr = base_learning_rate x global
batch / 256, per-step linear warm-up then half-cosine to 0, 90 % masking, per-image per-band min-max normalisation,
random resized crop (scale 0.2-1, bicubic) and horizontal flip.

Run it as `spectralgpt-hf pretrain ...`, `python -m spectralgpt_hf.training.pretraining ...` or under a launcher:

    accelerate launch --num_processes 8 -m spectralgpt_hf.training.pretraining --rasters "tiles/**/*.tif" \\
        --output_dir run

Reproducibility: each sample's crop, flip and mask noise are drawn from generators seeded by (seed, epoch, sample
index) and the epoch's sample order by (seed, epoch), so results do not depend on the number of processes or data
workers: 1 process x 4 samples and 2 processes x 2 samples give the same step. `--resume` continues a run exactly.

Outputs in `output_dir`: `checkpoints/step-XXXXXX` (Accelerate states, each also a `from_pretrained` folder for
non-sharded runs), `logs/` (trackers) and, at the end, `model/` (`save_pretrained` model and image processor).
Every folder is written under a temporary name and renamed when complete.

The modules: `arguments` (the options), `data` (samples, batch sampler, per-sample seeds), `model` (new or
continued), `checkpoints` (saving, resuming, stopping on a signal), `loop` (`pretrain`) and `command` (`main`).
"""

from .arguments import PretrainingArguments, parse_arguments
from .command import main, run
from .data import PretrainingSamples, find_raster_samples
from .loop import pretrain
from .model import continue_at_image_size

__all__ = [
    "PretrainingArguments",
    "PretrainingSamples",
    "continue_at_image_size",
    "find_raster_samples",
    "main",
    "parse_arguments",
    "pretrain",
    "run",
]
