# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Finding a dataset's folders and files, and error messages that say what was found instead."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path


def find_folder(root: Path, candidates: Sequence[str], is_match: Callable[[Path], bool], what: str) -> Path:
    """The first folder `root / candidate` that `is_match`; else a FileNotFoundError naming `what` was expected
    and what `root` holds."""
    for candidate in candidates:
        folder = root / candidate
        if folder.is_dir() and is_match(folder):
            return folder
    places = ", ".join(str(root / candidate) for candidate in candidates)
    raise FileNotFoundError(f"Expected {what} in one of: {places}. Found in {root}: {listing(root)}.")


def listing(folder: Path, limit: int = 10) -> str:
    """The first `limit` names in `folder` (folders with a trailing /), for error messages."""
    if not folder.is_dir():
        return "nothing (the folder does not exist)"
    names = sorted(path.name + ("/" if path.is_dir() else "") for path in folder.iterdir())
    if not names:
        return "nothing (the folder is empty)"
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def natural_order(path: Path) -> list:
    """Sort key that puts AnnualCrop_2 before AnnualCrop_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_split_file(path: Path) -> list[str]:
    """The non-empty lines of a split file, stripped."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
