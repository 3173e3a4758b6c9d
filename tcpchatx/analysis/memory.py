"""Hand memory freed by one phase of the analysis back to the operating system.

numpy allocates each big array with ``malloc``.  On Linux, glibc's malloc gives
the first big arrays their own pages (returned on free), but after the first such
free it raises its threshold and serves later arrays from its heap, where freed
memory stays for reuse.  The analysis makes many temporaries of many sizes, so
without help the heap only grows: after analysing a million packets the process
held 336 MB, of which 80 MB were free heap.  glibc's ``malloc_trim(0)`` returns
the free pages (Dask does the same for its workers); we call it between phases.
Elsewhere (macOS, Windows, musl) there is no such function and nothing to do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


@cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl has no malloc_trim)
        return None


def release_freed_memory() -> None:
    """Give the heap's free pages back to the OS (glibc only; a few ms)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
