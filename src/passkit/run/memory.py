"""The Arrow allocator of long-lived passkit processes: one that hands freed memory back to the system.

pyarrow's default pool on Linux wheels is mimalloc, which keeps freed segments for reuse: a driver that reads
many batches one after the other (select, the download scan, the filter's global pass) then stays at the
high-water mark of every phase, and that mark grows with the batch count. jemalloc (the system allocator where a
wheel has no jemalloc) returns freed pages, so resident memory follows what the process really holds. The pool is
chosen through ``ARROW_DEFAULT_MEMORY_POOL`` before pyarrow loads (it covers Arrow's C++ internals too, and the
worker processes inherit it); a user's own setting of that variable wins.
"""

from __future__ import annotations

import os
import sys

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def use_returning_memory_pool() -> str:
    """Select a returning allocator for this process and its children; returns the backend asked for."""
    wanted = os.environ.setdefault(POOL_ENV, "jemalloc" if sys.platform == "linux" else "system")
    import pyarrow as pa

    if pa.default_memory_pool().backend_name == wanted:
        return wanted
    # pyarrow was loaded before (or lacks the backend): switch what can still be switched
    try:
        pool = pa.jemalloc_memory_pool() if wanted == "jemalloc" else pa.system_memory_pool()
    except NotImplementedError:
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)
    return pool.backend_name
