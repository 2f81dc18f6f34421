"""The package's layers: every module imports only from its own layer or the layers below it, the remote-code files
only from each other, and nothing imports the command line."""

import ast
from pathlib import Path

import pytest

import spectralgpt_hf

PACKAGE = Path(spectralgpt_hf.__file__).parent

# Bottom to top; a module may import from its own layer and every layer before it.
LAYERS = [
    ("utils",),
    ("configuration_spectralgpt", "modeling_spectralgpt", "image_processing_spectralgpt"),
    ("__init__", "convert_original_checkpoint", "auto", "loading", "upernet", "samples"),
    ("geo",),
    ("data",),
    ("training",),
    ("inference",),
    ("hub",),
    ("demo",),
    ("cli",),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
REMOTE_CODE = {"configuration_spectralgpt", "modeling_spectralgpt", "image_processing_spectralgpt"}


def top_name(path: Path) -> str:
    """The package's top-level entry a file belongs to: `geo` for geo/reading.py, `loading` for loading.py."""
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def imported_entries(path: Path, source: str | None = None) -> set[str]:
    """The package's top-level entries that the module at `path` imports, at module level or inside functions."""
    package_parts = path.relative_to(PACKAGE).parts[:-1]
    entries = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [])
                names = target[:1] or [alias.name for alias in node.names]
                entries.update(names)
            elif node.module and node.module.split(".")[0] == "spectralgpt_hf":
                parts = node.module.split(".")[1:]
                entries.update(parts[:1] or [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "spectralgpt_hf" and len(parts) > 1:
                    entries.add(parts[1])
    return entries


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_entry_has_a_layer():
    entries = {top_name(path) for path in MODULES}
    assert entries <= set(RANK), f"give these a layer in LAYERS: {sorted(entries - set(RANK))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_modules_import_only_their_layer_and_below(path):
    own = top_name(path)
    above = {entry for entry in imported_entries(path) if entry in RANK and RANK[entry] > RANK[own]}
    assert not above, f"{path.relative_to(PACKAGE)} ({own}) imports from layers above it: {sorted(above)}"


@pytest.mark.parametrize("name", sorted(REMOTE_CODE))
def test_remote_code_files_import_only_each_other(name):
    imported = imported_entries(PACKAGE / f"{name}.py")
    assert imported <= REMOTE_CODE, f"{name}.py ships as Hub remote code but imports {sorted(imported - REMOTE_CODE)}"


def test_the_layer_check_sees_relative_and_absolute_imports():
    source = "from ..cli import main\nimport spectralgpt_hf.inference.scene\nfrom . import bands\n"
    assert imported_entries(PACKAGE / "geo" / "reading.py", source) == {"cli", "inference", "geo"}
    assert imported_entries(PACKAGE / "loading.py", "from . import modeling_spectralgpt\n") == {"modeling_spectralgpt"}
