import os
import subprocess
import sys

import pytest

from spectralgpt_hf.utils.allocator import keep_freed_memory_for_reuse

# Resident memory (MB) after each of six rounds of allocating, writing and freeing a 256 MB tensor, in a fresh
# process.
PROBE = """
import os, sys
import torch
from spectralgpt_hf.utils.allocator import keep_freed_memory_for_reuse

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

print(keep_freed_memory_for_reuse() if sys.argv[1] == "tuned" else "default")
before = resident_mb()
for _ in range(6):
    block = torch.ones(64 * 2**20)
    del block
    print(resident_mb() - before)
"""


def probe(mode: str, **environment: str) -> tuple[str, list[float]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
        env={**os.environ, **environment},
    )  # fmt: skip
    applied, *rows = result.stdout.split()
    return applied, [float(row) for row in rows]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_large_blocks_are_kept_and_reused_only_when_tuned():
    applied, kept = probe("default")
    assert applied == "default"
    assert max(kept) < 64, kept  # glibc's default unmaps a large block as soon as it is freed

    applied, kept = probe("tuned")
    assert applied == "True"
    assert min(kept) > 200, kept  # kept after the free
    # reused, not growing: at most a second block (an aligned request does not fit the exact freed one)
    assert max(kept) < 600 and kept[-3:] == [kept[-1]] * 3, kept


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_environment_variables_in_the_readme_tune_the_allocator_the_same_way():
    applied, kept = probe("default", MALLOC_MMAP_THRESHOLD_="1073741824", MALLOC_TRIM_THRESHOLD_="2147483647")
    assert applied == "default"
    assert min(kept) > 200 and max(kept) < 600, kept


def test_opting_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv("SPECTRALGPT_KEEP_DEFAULT_MALLOC", "1")
    assert keep_freed_memory_for_reuse() is False
