"""Keep freed activation memory in the process while scoring batches on a CPU (glibc's malloc).

glibc serves a request above its mmap threshold with fresh pages from the kernel, and hands the
top of its heap back to the kernel once more than the trim threshold lies free there. Both start
at 128 KiB and adapt upwards, to at most 32 and 64 MiB, as large blocks are freed. A transformer's
forward pass allocates and frees tens of MB of activations in every layer, with block sizes that
change from batch to batch, so layer after layer faulted them in again page by page, a cost in
minor page faults and kernel time that showed in masked pseudo-log-likelihood's wall time on a CPU.
With the mmap threshold at 32 MiB from the start and the trim threshold at 256 MiB most of those
faults (the rest are mostly the packed weights' first touch) and of that kernel time go away
(measured figures: docs/benchmarks.md, *Freed activations stay in the process*).

The mmap threshold stays at glibc's own ceiling. A larger one would bring blocks above 32 MiB under
glibc 2.36's aligned-block fragmentation, which blocks up to 32 MiB are under already: a freed
64-byte-aligned block (PyTorch's alignment) is not reused for the next request of its size when a
small block was allocated after it, so such a loop grows the process by a block per pass. The trim
threshold only bounds how much free memory the heap top keeps. Scorers therefore allocate what they
keep across such a loop before it (`head.normalised`: the per-slice maxima and sums, kept as small
blocks after each 2 MB slice of logits, grew some Gemma CrowS-Pairs runs by a block per slice within one
batch; docs/benchmarks.md, peak memory).

glibc cannot report the values it had, and setting either switches its adaptation off for the rest
of the process, so leaving the outermost scope hands the free heap top back (`malloc_trim`) and sets
the thresholds to glibc's adaptive ceilings. Elsewhere (musl, macOS, Windows), and where the user
tunes glibc's malloc through the environment, it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
SCOPE_THRESHOLDS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 256 << 20}
AFTER_THRESHOLDS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 64 << 20}  # glibc's adaptive ceilings

# environment variables through which a user tunes glibc's malloc; where one is set, it is left to them
USER_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_lock = threading.Lock()
_depth = 0


def glibc():
    """The process's C library through ctypes when it is glibc and the user has not tuned its
    malloc (MALLOC_*_ variables, glibc.malloc tunables), else None.

    Returns:
        A ``ctypes.CDLL`` with ``mallopt`` and ``malloc_trim``, or None (another C library, a tuned
        malloc, or no way to tell).
    """
    if any(name in os.environ for name in USER_TUNING) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (AttributeError, ValueError, OSError):
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _set(libc, thresholds: dict[int, int]) -> None:
    for parameter, value in thresholds.items():
        libc.mallopt(parameter, value)


@contextmanager
def retained_heap() -> Iterator[bool]:
    """Within the scope up to 256 MiB of freed memory at the heap top stays in the process for the
    next batch; yields whether the thresholds could be set (glibc only). Scopes nest, also across
    threads: the outermost sets and restores.

    Yields:
        True when glibc's thresholds were set for the scope (or an enclosing scope holds them), False
        where nothing was changed (see ``glibc``).
    """
    global _depth
    libc = glibc()
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            _set(libc, SCOPE_THRESHOLDS)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(libc, AFTER_THRESHOLDS)
                libc.malloc_trim(0)
