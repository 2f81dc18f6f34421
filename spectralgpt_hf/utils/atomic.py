"""Writing folders so that a crash or interruption never leaves a half-written one behind."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def replace_folder(staging: Path, destination: Path) -> None:
    """Moves a complete `staging` folder to `destination`; an existing `destination` stays whole until then."""
    if destination.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.replace(destination, previous / destination.name)
        os.replace(staging, destination)
        shutil.rmtree(previous)
    else:
        os.replace(staging, destination)


@contextlib.contextmanager
def atomic_folder(destination: str | os.PathLike) -> Iterator[Path]:
    """A staging folder beside `destination` to write into; it replaces `destination` when the block completes and
    is removed if the block fails."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
        replace_folder(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
