"""The benchmarks' command timer reports the command's own peak memory, not its parent's."""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.common import time_command


def test_a_command_does_not_inherit_the_benchmarks_peak_memory():
    ballast = np.ones(40_000_000)  # 320 MB resident in this process
    small = time_command([sys.executable, "-S", "-c", "pass"])
    assert small.returncode == 0
    assert small.peak_rss_mib < 100, "the measured child inherited the parent's RSS"
    del ballast


def test_a_command_that_grows_is_measured_and_its_exit_code_kept():
    grown = time_command([sys.executable, "-S", "-c", "x = b'x' * (200 * 2**20)"])
    assert grown.returncode == 0 and 200 <= grown.peak_rss_mib < 300
    assert time_command(["sh", "-c", "exit 3"]).returncode == 3
    assert grown.seconds > 0


def test_a_command_that_cannot_be_started_raises(tmp_path):
    """It used to come back as a 6 ms run with exit status 1: a bogus figure."""
    import pytest

    with pytest.raises(FileNotFoundError, match="no-such-command"):
        time_command(["no-such-command-xyz"])
    not_a_program = tmp_path / "garbage"
    not_a_program.write_bytes(b"\x00\x01\x02")
    not_a_program.chmod(0o755)  # executable, but exec() cannot run it
    with pytest.raises(RuntimeError, match="could not start"):
        time_command([str(not_a_program)])


def test_the_package_bytecode_is_written_before_timing():
    """The CLI is timed as an installed copy runs: from bytecode, not recompiled from
    source (which PYTHONDONTWRITEBYTECODE, set on many CI images, would otherwise cause)."""
    import importlib.util
    import os
    from pathlib import Path

    import tcpchatx.cli
    from benchmarks.common import compile_bytecode

    cached = Path(importlib.util.cache_from_source(tcpchatx.cli.__file__))
    cached.unlink(missing_ok=True)
    assert compile_bytecode()
    assert cached.is_file() and cached.stat().st_size > 0
    assert os.path.getmtime(cached) >= os.path.getmtime(tcpchatx.cli.__file__)


def test_contenders_take_turns_and_the_fastest_run_counts():
    """Both sides of a ratio are timed in the same minutes (a, b, a, b, ...), so a slow
    spell on a shared machine cannot fall on one side only."""
    from benchmarks.common import Timing, fastest, taking_turns

    order, seconds = [], iter([3.0, 9.0, 1.0, 8.0, 2.0, 7.0])

    def measure(name):
        def run():
            order.append(name)
            return Timing(next(seconds), 0.0, 0)
        return run

    a_runs, b_runs = taking_turns(3, measure("a"), measure("b"))
    assert order == ["a", "b"] * 3
    assert [t.seconds for t in a_runs] == [3.0, 1.0, 2.0] and [t.seconds for t in b_runs] == [9.0, 8.0, 7.0]
    assert fastest(a_runs).seconds == 1.0 and fastest(b_runs).seconds == 7.0
