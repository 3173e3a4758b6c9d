"""Process-wide memory tuning for a process that exists to analyse one big capture.

``tcpchatx annotate`` and the benchmarks call these at their entry points; a library
call never does (``analyze()`` in a notebook's kernel, which may host the chat server
too, leaves the process as it found it).  What they do, and why:

- **Keep freed memory for reuse** (:func:`keep_freed_memory_for_reuse`).  numpy
  allocates each big array with ``malloc``.  Until glibc raises its thresholds by
  itself, it gives every big array fresh pages and returns them when the array is
  freed, so the next array of the analysis pays a page fault per page again.  Set
  from the start, the thresholds let each phase reuse what the one before freed.
- **Give free memory back where that lowers the peak** (:func:`release_freed_memory`,
  glibc's ``malloc_trim``): after the analysis, and between the JSON writer's lists.
  Not between the analysis's phases: the next one would only take the same pages
  back as fresh ones.
- **Fault the heap's first pages in early** (:func:`warm_up_heap_beside`): a fresh
  process's arrays all land on fresh pages, and the command's first moments
  (importing numpy) keep only one core busy, so a thread takes those faults then.
- **Pause the cycle collector** (:func:`cyclic_gc_paused`): the analysis makes no
  reference cycles, but hundreds of thousands of strings in lists, which the
  collector would walk over and over.

Elsewhere than glibc (macOS, Windows, musl) the malloc parts do nothing.  What each
of these saved, measured, is in ``docs/benchmarks.md`` ("What made the analysis fast").
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    """Give the heap's free pages back to the OS (glibc only)."""
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
    process, so only an entry point calls this.  At most one heap ("arena"): by
    default glibc gives each thread that allocates its own, whose free memory is kept
    apart from the main one, which raises the peak of
    :mod:`tcpchatx.analysis.workers`' threads.  Arenas that threads made before this call (a notebook's in-process server,
    say) stay, and the workers may share one of them instead.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, TOP_KEPT)
        libc.mallopt(M_ARENA_MAX, 1)


WARM_UP_BLOCK = 16 << 20  # under MMAP_THRESHOLD_MAX: the blocks come from the heap
WARM_UP_MAX = 96 << 20  # under TOP_KEPT, so freed they stay for the analysis


def warm_up_heap_beside(nbytes: int, until: threading.Event) -> threading.Thread | None:
    """Fault in about ``nbytes`` of the heap on another thread, until ``until`` is set;
    return that thread.

    A fresh page costs a page fault at its first touch, and a fresh process's
    arrays all land on fresh pages.  The first moments of a ``tcpchatx annotate``
    (Python importing numpy) keep one core busy; started before that, this thread
    takes the heap's first faults on the other core.  It allocates blocks from the
    heap, touches each and frees it, and the analysis then reuses those pages.  At
    most :data:`WARM_UP_MAX`; only with glibc.  Set ``until`` when the analysis
    starts: the blocks not yet touched are then freed untouched, so that a slow
    warm-up neither takes the analysis's second core nor leaves warm pages beside
    its peak.
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


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector for the block, and restore it afterwards.

    The analysis makes no reference cycles, but hundreds of thousands of strings in
    lists, which the collector would walk over and over while they are built.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def tuned_for_analysis() -> Iterator[None]:
    """The process set up for one big analysis: freed memory kept for reuse, the cycle
    collector paused for the block, and the free heap handed back at its end.

    For entry points only (``tcpchatx annotate``, the benchmarks): the malloc
    settings stay for the rest of the process.
    """
    keep_freed_memory_for_reuse()
    with cyclic_gc_paused():
        yield
    release_freed_memory()
