"""What every benchmark module shares: a result row, and timing a command.

A benchmark module has ``run(quick: bool) -> list[Result]``; :mod:`benchmarks.run`
collects the rows of every module into one table.  A figure is always a *ratio*
against a reference measured in the same run on the same machine and input, so
the table means the same on a laptop and on a loaded CI runner.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


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
    peak_rss_mib: float  # ru_maxrss, which Linux counts in KiB
    returncode: int


# A tiny launcher between us and the measured command.  Linux gives a child the
# peak RSS of the process it was forked from: started straight from this process
# (which may hold a big analysis by then), a command would inherit our peak.
# The launcher is a bare interpreter (~10 MB); it runs the command, waits for it
# and writes its wall time, exit code and peak RSS to the pipe it was given.
_LAUNCHER = """
import os, sys, time
report_fd, cmd = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(report_fd)
    try:
        os.execvp(cmd[0], cmd)
    except OSError:
        os._exit(127)  # as a shell reports a command it cannot run
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
os.write(report_fd, f"{seconds} {os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}".encode())
"""


def time_command(cmd: list[str], stdout=subprocess.DEVNULL) -> Timing:
    """Wall time and peak resident memory (MiB) of one command, as its launcher saw them.

    A command that cannot be started raises, as ``subprocess`` would: a time for it
    would be a bogus figure.
    """
    if shutil.which(cmd[0]) is None:
        raise FileNotFoundError(f"no such command: {cmd[0]}")
    read, write = os.pipe()
    launcher = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(write), *cmd],
                                stdout=stdout, stderr=subprocess.DEVNULL, pass_fds=(write,))
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read().split()
    launcher.wait()
    if len(report) != 3:
        raise RuntimeError(f"could not run {cmd[0]} (launcher exit code {launcher.returncode})")
    seconds, returncode, max_rss_kib = report
    if int(returncode) == 127:
        raise RuntimeError(f"could not start {cmd[0]}")
    return Timing(float(seconds), int(max_rss_kib) / 1024, int(returncode))  # ru_maxrss: KiB on Linux


def taking_turns(rounds: int, *measures) -> list[list]:
    """Each of ``measures`` run ``rounds`` times, taking turns (a, b, a, b, ...), so a
    slow minute on a shared machine falls on all of them; what each returned, in run order."""
    runs: list[list] = [[] for _ in measures]
    for _ in range(rounds):
        for timings, measure in zip(runs, measures, strict=True):
            timings.append(measure())
    return runs


def fastest(timings: list[Timing]) -> Timing:
    """The fastest run (the others were slowed by something else)."""
    return min(timings, key=lambda t: t.seconds)


def compile_bytecode() -> bool:
    """Write tcpchatx's bytecode (``__pycache__``) before anything is timed.

    ``pip install`` compiles an installed package's modules, and an editable install
    writes them on its first import - unless ``PYTHONDONTWRITEBYTECODE`` is set, as
    on many CI images and on this lab's VM.  Then every ``tcpchatx`` command compiles
    its modules from source again (~0.1 s of a million-packet annotate), a cost no
    student's copy pays.  Returns False if the folder is read-only (nothing written).
    """
    import tcpchatx

    return bool(compileall.compile_dir(Path(tcpchatx.__file__).parent, quiet=1))
