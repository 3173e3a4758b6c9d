"""Running code in the client's or the server's network namespace, from one process.

A socket belongs to the network namespace of the thread that created it, and keeps
it.  So the lab creates the chat server's listening socket while its thread is in
the server namespace, and each client's socket while in the client namespace; once
made, any thread may use them.  ``setns(2)`` moves the calling thread only (Python
3.11 has no ``os.setns``: ctypes calls the C library's).  A process started meanwhile
(dumpcap) starts in the thread's namespace.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

from .topology import NETNS_DIR

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the ``with`` block's code in network namespace *namespace* (this thread only)."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"{NETNS_DIR}/{namespace}", os.O_RDONLY)
    try:
        _setns(there)
        try:
            yield
        finally:
            _setns(here)
    finally:
        os.close(here)
        os.close(there)
