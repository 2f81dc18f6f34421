"""Writing files and folders so that a crash or interruption never leaves a half-written one behind: everything is
written under a temporary name beside its destination and renamed over it once complete."""

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


@contextlib.contextmanager
def atomic_file(destination: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `destination` to write one file to; it is renamed over `destination` when the block
    completes and removed (with any GDAL side-car file) if the block fails. An existing `destination` stays whole
    until then."""
    destination = Path(destination)
    if not destination.parent.is_dir():
        raise FileNotFoundError(f"The output folder {destination.parent} does not exist; create it first.")
    handle, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".aux.xml").unlink(missing_ok=True)
