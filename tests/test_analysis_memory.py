"""How the analysis treats the process it runs in: the C heap and Python's cycle collector.

analyze() changes neither; the command tunes both around it (tcpchatx.memory)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tcpchatx.analysis import analyze
from tcpchatx.memory import WARM_UP_BLOCK, _glibc, tuned_for_analysis, warm_up_heap_beside

CHAT = Path(__file__).resolve().parents[1] / "captures" / "chat.pcapng"

# Page faults of three 16 MB arrays made, filled and freed one after the other.
FAULTS_OF_THREE_ARRAYS = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from tcpchatx.memory import keep_freed_memory_for_reuse
    if sys.argv[1] == "keep":
        keep_freed_memory_for_reuse()
    faults = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(16 << 20, dtype=np.uint8)
        del block
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps(faults))
""")


def in_a_fresh_process(script: str, mode: str):
    """What ``script`` prints (JSON), run with ``mode`` by a new Python: a heap of its own."""
    out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1], timeout=60)
    return json.loads(out.stdout)


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only (Linux); elsewhere it does nothing")
def test_freed_arrays_are_reused_from_the_first_one():
    """A fresh process: glibc gives the second array fresh pages; after the call, it reuses the first's."""
    default = in_a_fresh_process(FAULTS_OF_THREE_ARRAYS, "default")
    kept = in_a_fresh_process(FAULTS_OF_THREE_ARRAYS, "keep")
    assert default[1] > default[0] // 2, default  # the second array faulted its pages in again
    assert kept[0] > 100 and kept[1] < kept[0] // 10 and kept[2] < kept[0] // 10, kept


# Page faults of 16 MB of bytes made in a fresh process (from the heap, and not
# numpy's, which asks for huge pages), with the heap's first pages warmed up first
# (and waited for), or not, or with a warm-up told to stop before it began.
FAULTS_AFTER_WARM_UP = textwrap.dedent("""
    import json, resource, sys, threading
    from tcpchatx.memory import keep_freed_memory_for_reuse, warm_up_heap_beside
    keep_freed_memory_for_reuse()
    if sys.argv[1] != "cold":
        analysing = threading.Event()
        if sys.argv[1] == "stopped":
            analysing.set()  # before the thread starts: it touches nothing
        warm_up_heap_beside(64 << 20, until=analysing).join()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = b"x" * (16 << 20)
    print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
""")


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only (Linux); elsewhere it does nothing")
def test_a_warmed_up_heap_gives_the_next_arrays_pages_already_faulted_in_until_told_to_stop():
    pages = (16 << 20) // 4096
    cold, warm, stopped = (in_a_fresh_process(FAULTS_AFTER_WARM_UP, mode) for mode in ("cold", "warm", "stopped"))
    assert cold > pages // 2, cold  # fresh pages: a fault each
    assert warm < pages // 20, warm
    assert stopped > pages // 2, stopped


def test_warming_up_needs_at_least_one_block():
    assert warm_up_heap_beside(WARM_UP_BLOCK - 1, until=threading.Event()) is None  # a small capture


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only (Linux); elsewhere it does nothing")
def test_analyze_leaves_the_heap_settings_of_its_process_as_they_were():
    """A notebook's kernel: after analyze(), glibc still hands big arrays' pages back."""
    after_analysis = f"from tcpchatx.analysis import analyze\nanalyze({str(CHAT)!r})\n"
    default = in_a_fresh_process(after_analysis + FAULTS_OF_THREE_ARRAYS, "default")
    assert default[1] > default[0] // 2, default  # not kept for reuse: faulted in again


def count_collections(work) -> int:
    """How many times Python's cycle collector ran during ``work()``."""
    collections = []
    gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "start" else None)
    try:
        work()
    finally:
        gc.callbacks.pop()
    return len(collections)


def test_analyze_leaves_the_cycle_collector_on():
    seen = set()  # the collector's state at every Python call inside analyze()
    sys.setprofile(lambda frame, event, arg: seen.add(gc.isenabled()) if event == "call" else None)
    try:
        analyze(CHAT)
    finally:
        sys.setprofile(None)
    assert seen == {True}


def test_the_command_pauses_the_collector_for_the_analysis_and_restores_it():
    def tuned():
        with tuned_for_analysis():
            assert not gc.isenabled()
            analyze(CHAT)

    assert count_collections(tuned) <= 1  # at most the one the allocations trigger once it is back
    assert gc.isenabled()
    gc.disable()
    try:
        with tuned_for_analysis():
            pass
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()
