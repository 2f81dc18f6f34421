"""Fetches transformers' common test mixins (shipped only in its source distribution) for tests/test_transformers_common.py.

Downloads the sdist of the installed transformers version from the package index into .cache/ and unpacks its
tests/ folder there; the test module finds it without further settings. Safe to run again.
"""

import subprocess
import sys
import tarfile
from pathlib import Path

import transformers

CACHE = Path(__file__).resolve().parents[1] / ".cache"


def main() -> int:
    version = transformers.__version__
    target = CACHE / f"transformers-{version}" / "tests"
    if (target / "test_modeling_common.py").is_file():
        print(f"transformers {version} tests already at {target}")
        return 0
    CACHE.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"transformers=={version}", "-d", str(CACHE)],
        check=True,
    )
    with tarfile.open(CACHE / f"transformers-{version}.tar.gz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(f"transformers-{version}/tests/")]
        archive.extractall(CACHE, members=members, filter="data")
    print(f"transformers {version} tests unpacked at {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
