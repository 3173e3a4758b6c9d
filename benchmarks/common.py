"""What every benchmark module shares: a result row, and timing a command.

A benchmark module has ``run(quick: bool) -> list[Result]``; :mod:`benchmarks.run`
collects the rows of every module into one table.  A figure is always a *ratio*
against a reference measured in the same run on the same machine and input, so
the table means the same on a laptop and on a loaded CI runner.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass
class Result:
    figure: str  # what we measured, e.g. "annotate pcap: summary vs tshark"
    reference: str  # what we compared it with, and the raw numbers
    ratio: float  # how many times better than the reference (higher is better)
    target: float  # the ratio we must reach
    unit: str = "x"

    @property
    def passed(self) -> bool:
        return self.ratio >= self.target


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float
    returncode: int


def time_command(cmd: list[str], stdout=subprocess.DEVNULL) -> Timing:
    """Wall time and peak resident memory of one command (``wait4`` reports it)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Timing(seconds, usage.ru_maxrss / 1024, proc.returncode)  # ru_maxrss is in KiB on Linux


def best_of(repeat: int, measure) -> Timing:
    """The fastest of ``repeat`` runs (the others were slowed by something else)."""
    return min((measure() for _ in range(repeat)), key=lambda t: t.seconds)
