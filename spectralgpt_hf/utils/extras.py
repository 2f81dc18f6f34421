"""The optional dependencies: a module that needs an extra imports it under `requires_extra`, so that a missing one
fails with the pip command that installs it."""

import contextlib
from collections.abc import Iterator

# extra of pyproject.toml -> the packages it adds
EXTRAS = {"geo": "rasterio, pystac, pyarrow", "train": "accelerate, datasets, pyarrow, tensorboardX"}


@contextlib.contextmanager
def requires_extra(extra: str) -> Iterator[None]:
    """
    Wrap the imports of an extra's packages:

        with requires_extra("geo"):
            import rasterio
    """
    if extra not in EXTRAS:
        raise ValueError(f"Unknown extra {extra!r}; the extras are {sorted(EXTRAS)}.")
    try:
        yield
    except ImportError as error:
        raise ImportError(
            f"{error.name or error} is missing: this part of spectralgpt-hf needs the {extra!r} extra "
            f"({EXTRAS[extra]}). Install it with: pip install 'spectralgpt-hf[{extra}]'"
        ) from error


__all__ = ["EXTRAS", "requires_extra"]
