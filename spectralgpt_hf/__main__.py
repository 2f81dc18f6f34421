"""`python -m spectralgpt_hf` runs the command line (also under `accelerate launch -m spectralgpt_hf ...`)."""

import sys

from .cli import main

sys.exit(main())
