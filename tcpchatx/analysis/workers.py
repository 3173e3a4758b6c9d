"""Chunks of one loop, worked on by two threads at once.

numpy lets go of Python's GIL while it compares, gathers, sorts and sums big
arrays, so two threads that each take a chunk of the same loop really do run at
the same time, on two cores.  The analysis's long loops over chunks (finding the
records, decoding headers, copying streams, hashing lines) use :func:`in_order`;
:func:`beside` runs one job (numpy's) while this thread does other work.

Two threads, not one per core: each chunk in flight holds its own temporaries,
and the analysis must stay under 300 MB for a million packets.  Set
``TCPCHATX_THREADS=1`` to work in one thread (the same results, in the same order).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import TypeVar

MAX_THREADS = 2

T = TypeVar("T")
R = TypeVar("R")


def thread_count() -> int:
    """``TCPCHATX_THREADS`` if set (at least 1), else 2 or the number of CPUs if fewer."""
    setting = os.environ.get("TCPCHATX_THREADS", "").strip()
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            raise ValueError(f"TCPCHATX_THREADS must be a whole number, not {setting!r}") from None
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="tcpchatx-analysis")


if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's threads:
    os.register_at_fork(after_in_child=_pool.cache_clear)  # it starts a pool of its own


def in_order(work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``map(work, items)``, worked on by :func:`thread_count` threads.

    Results come back in the order of ``items``, so the caller can do the steps
    that must go in order (numbering addresses, releasing the file's pages) as
    each one arrives.  At most one chunk per thread waits beyond the one being
    handed back, which bounds the memory held.  An exception in ``work`` is
    raised here, from the chunk that raised it; chunks not yet started are then
    cancelled (as when the caller stops early), as one thread would never start them.
    """
    threads = thread_count()
    if threads == 1:
        yield from map(work, items)
        return
    pool = _pool(threads)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def for_each(work: Callable[[T], None], items: Iterable[T]) -> None:
    """``work(item)`` for every item, as :func:`in_order` runs it; returns when all are done."""
    for _ in in_order(work, items):
        pass


@contextmanager
def beside(job: Callable[..., T], *args, first: bool = False) -> Iterator[Future]:
    """Run ``job(*args)`` on a second thread while the ``with`` block runs here.

    For numpy work (which lets go of the GIL for its big steps) beside other work.
    Yields the job's future; on leaving the block, waits for it (its exception, if
    any, is raised; Ctrl-C waits for it too).  With ``first``, or with one thread
    (:func:`thread_count`), the job runs first, here.
    """
    if first or thread_count() == 1:
        done: Future = Future()
        done.set_result(job(*args))
        yield done
        return
    future = _pool(thread_count()).submit(job, *args)
    try:
        yield future
    finally:
        future.exception()  # wait, even if the block failed: no job left running
    future.result()
