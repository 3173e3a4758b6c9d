"""Hand memory freed by one phase of the analysis back to the operating system.

numpy allocates each big array with ``malloc``.  On Linux, glibc's malloc gives
the first big arrays their own pages (returned on free), but after the first such
free it raises its threshold and serves later arrays from its heap, where freed
memory stays for reuse.  The analysis makes many temporaries of many sizes, so
without help the heap only grows: after analysing a million packets the process
held 336 MB, of which 80 MB were free heap.  glibc's ``malloc_trim(0)`` returns
the free pages (Dask does the same for its workers); we call it after the
analysis and between the JSON writer's lists.  Not between the analysis's
phases: the next step would only take the same pages back as fresh ones.  Five
such releases cost 22,000 page faults; four lowered no peak, and the one in the
chat phase (once the streams' bytes are freed) lowered it by 3-11 MB, for 6,000
faults and 30-70 ms of a million packets' 1 s.
Elsewhere (macOS, Windows, musl) there is no such function and nothing to do.

The opposite cost is page faults: memory the OS gets back and hands out again
comes as fresh pages, zeroed one fault at a time (1-2 us each here).  Until glibc
has raised its thresholds, it returns every big array's pages when it is freed;
analysing a million packets took 140,000 faults.  :func:`keep_freed_memory_for_reuse`
sets the thresholds to where glibc would raise them by itself (blocks up to 32 MB
from the heap, which keeps up to 64 MB free at its top): 75,000 faults (52,000-58,000
without the five releases above), and the releases above still hand memory back
with :func:`release_freed_memory`.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # the highest glibc raises it to by itself (64-bit)


@cache
def _glibc():
    """The C library if it is glibc (it has ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    return libc if hasattr(libc, "malloc_trim") else None  # musl has no malloc_trim


def release_freed_memory() -> None:
    """Give the heap's free pages back to the OS (glibc only; a few ms)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@cache
def keep_freed_memory_for_reuse() -> None:
    """Serve arrays up to 32 MB from the heap, and keep up to 64 MB free there (glibc only).

    These are the values glibc's own dynamic thresholds reach once a 32 MB block
    has been freed, set from the start; the setting stays for the process.  At
    most one heap ("arena"): by default glibc gives each thread that allocates
    its own, whose free memory is kept apart from the main one (+30 MB peak for
    a million packets with :mod:`.workers`' threads).  Arenas that threads made
    before this call (a notebook's in-process server, say) stay, and the
    workers may share one of them instead.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_MAX)
        libc.mallopt(M_ARENA_MAX, 1)
