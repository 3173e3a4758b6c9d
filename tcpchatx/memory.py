"""How the analysis uses the C heap: memory freed by one phase kept for the next,
handed back to the operating system where that lowers the peak, and the first
pages faulted in early, beside the imports.

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
comes as fresh pages, zeroed one fault at a time (2-7 us each on the lab's VM).  Until glibc
has raised its thresholds, it returns every big array's pages when it is freed;
analysing a million packets took 140,000 faults.  :func:`keep_freed_memory_for_reuse`
sets the thresholds to where glibc would raise them by itself (blocks up to 32 MB
from the heap): 75,000 faults (52,000-58,000 without the five releases above), and
the releases above still hand memory back with :func:`release_freed_memory`.

A fresh process still takes those faults, and a command takes them on one core
while the other waits.  :func:`warm_up_heap_beside` has a thread take the heap's
first ones while the command imports numpy (one core busy); the analysis then
reuses those pages (see there).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # the highest glibc raises it to by itself (64-bit)
TOP_KEPT = 128 << 20  # free memory kept at the heap's top (glibc would keep 64 MB)


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
    """Serve arrays up to 32 MB from the heap, and keep up to 128 MB free there (glibc only).

    32 MB is where glibc's own dynamic threshold goes once a 32 MB block has been
    freed, set from the start; it would keep 64 MB free, but then the free pages
    of :func:`warm_up_heap_beside` would go back to the OS before they are used
    (the analysis's peak is the same with either).  The setting stays for the
    process.  At most one heap ("arena"): by default glibc gives each thread that
    allocates its own, whose free memory is kept apart from the main one (+30 MB
    peak for a million packets with :mod:`tcpchatx.analysis.workers`' threads).
    Arenas that threads made before this call (a notebook's in-process server,
    say) stay, and the workers may share one of them instead.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, TOP_KEPT)
        libc.mallopt(M_ARENA_MAX, 1)


WARM_UP_BLOCK = 16 << 20  # under MMAP_THRESHOLD_MAX: the blocks come from the heap
WARM_UP_MAX = 96 << 20  # under TOP_KEPT, so freed they stay; a million packets reuse ~70 of them


def warm_up_heap_beside(nbytes: int, until: threading.Event) -> threading.Thread | None:
    """Fault in about ``nbytes`` of the heap on another thread, until ``until`` is set;
    return that thread.

    A fresh page costs a page fault at its first touch (2-7 us on the lab's VM), and
    a fresh process's arrays all land on fresh pages: a million packets' analysis
    takes ~50,000 faults, ~22,000 of them while reading the file.  The first ~0.1 s
    of a ``tcpchatx annotate`` (Python importing numpy) keep one core busy; started
    before that, this thread takes the heap's first faults on the other core.  It
    allocates blocks from the heap, touches each and frees it, and the analysis
    then reuses those pages: ~17,000 fewer faults on its path, ~0.03 s (median of
    21 alternating runs; more when faults are slow).  At most :data:`WARM_UP_MAX`;
    only with glibc.  Set ``until`` when the analysis starts: the blocks not yet
    touched are then freed untouched, so that a slow warm-up neither takes the
    analysis's second core nor leaves warm pages beside its peak.
    """
    libc = _glibc()
    blocks = min(nbytes, WARM_UP_MAX) // WARM_UP_BLOCK
    if libc is None or blocks == 0:
        return None
    keep_freed_memory_for_reuse()  # first: else glibc would map each block apart
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    thread = threading.Thread(target=_fault_in, args=(libc, blocks, until), name="tcpchatx-heap-warm-up",
                              daemon=True)
    thread.start()
    return thread


def _fault_in(libc, blocks: int, until: threading.Event) -> None:
    """Allocate ``blocks`` heap blocks, then touch and free each (ctypes lets go of
    the GIL) until ``until`` is set; free the rest untouched."""
    taken = [libc.malloc(WARM_UP_BLOCK) for _ in range(blocks)]
    for block in taken:
        if block and not until.is_set():
            ctypes.memset(block, 0, WARM_UP_BLOCK)
        libc.free(block)  # free(NULL) does nothing
