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
