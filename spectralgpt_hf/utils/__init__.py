"""Process-level helpers shared by every layer: atomic writing and the allocator setting for CPU speed."""

from .allocator import keep_freed_memory_for_reuse
from .atomic import atomic_folder

__all__ = ["atomic_folder", "keep_freed_memory_for_reuse"]
