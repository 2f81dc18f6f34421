# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Pretraining as a command: `python -m spectralgpt_hf.training.pretraining`, `examples/pretrain.py` and, through
`run`, `spectralgpt-hf pretrain`."""

from __future__ import annotations

import logging
import sys

from ...utils.allocator import keep_freed_memory_for_reuse
from .arguments import PretrainingArguments, parse_arguments
from .loop import pretrain


def run(args: PretrainingArguments) -> int:
    """`pretrain` with INFO logging; the exit status of the command line: 0 when done, 1 when stopped early."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return 0 if pretrain(args) is not None else 1


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory_for_reuse()
    try:
        return run(parse_arguments(argv))
    except (FileNotFoundError, ValueError) as error:
        print(f"spectralgpt-hf pretrain: error: {error}", file=sys.stderr)
        return 1
