"""`python -m spectralgpt_hf.training.pretraining ...`, also under `accelerate launch -m`."""

import sys

from .command import main

sys.exit(main())
