"""`python -m spectralgpt_hf.cli` runs the command line (also under `accelerate launch -m spectralgpt_hf.cli ...`)."""

import sys

from . import main

sys.exit(main())
