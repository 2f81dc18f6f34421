"""Pretrain SpectralGPT: the `spectralgpt-hf pretrain` command as a script, for launchers that take a file.

    accelerate launch --config_file examples/accelerate/multi_gpu.yaml examples/pretrain.py \
        --rasters "data/tiles/**/*.tif" --output_dir runs/stage1 --image_size 96 --mixed_precision bf16

`python examples/pretrain.py --help` lists the options (see spectralgpt_hf/training/pretraining/).
"""

import sys

from spectralgpt_hf.training.pretraining import main

if __name__ == "__main__":
    sys.exit(main())
