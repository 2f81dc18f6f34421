"""Process-wide tuning of the C allocator for CPU work.

glibc hands every allocation above its mmap threshold (at most 32 MB by default) to the kernel as a fresh mapping and
unmaps it when freed. A base encoder at batch 8 allocates many such tensors per block (a 8192 x 3072 fp32 MLP
activation is 100 MB), so each one is page-faulted in afresh: on a 2-core CPU that made elementwise ops 3 to 7 times
slower and cost the encoder about 10 % of its speed (benchmarks/RESULTS.md). Serving large blocks from the heap and
keeping freed memory for reuse, as PyTorch's own caching allocators do on GPUs, removes that cost; the price is that
the process keeps its peak memory instead of returning it to the system between batches.

The command line, the pretraining entry point and the example scripts call `keep_freed_memory_for_reuse()` at start;
code of your own can call it too (once, early), or set `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` in the
environment before Python starts. Set `SPECTRALGPT_KEEP_DEFAULT_MALLOC=1` to leave the allocator alone.
"""

import ctypes
import ctypes.util
import os
import sys

# mallopt() parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Largest block served from the heap; beyond it glibc maps memory directly, as by default.
MMAP_THRESHOLD_BYTES = 1 << 30
# Free memory at the top of the heap kept rather than returned to the system (mallopt takes an int).
TRIM_THRESHOLD_BYTES = 2**31 - 1


def keep_freed_memory_for_reuse() -> bool:
    """Make glibc serve blocks up to 1 GiB from the heap and keep freed memory for reuse. Returns whether it was
    applied: False on other C libraries (macOS, Windows, musl), where this does nothing, or when
    `SPECTRALGPT_KEEP_DEFAULT_MALLOC=1` is set."""
    if os.environ.get("SPECTRALGPT_KEEP_DEFAULT_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return bool(applied)
