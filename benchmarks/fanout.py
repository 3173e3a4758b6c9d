"""Server fan-out under load: TCPChatX's server against the seed's, same load, same run.

Both servers run as subprocesses on loopback; the load comes from
:mod:`benchmarks.loadgen` (worker processes, stamped messages, no coordinated
omission).  The reference is :mod:`benchmarks.seed_server`, the seed project's design:
one thread per client relaying each ``recv()`` chunk with one ``send`` per recipient,
fast because it never frames lines (many messages ride in one send).

Figures (full size; ``--quick`` shrinks every load):

1. **Peak fan-out**: 100 clients, 10 of them sending 200 messages each flat out
   (198,000 deliveries).  Ours and the seed alternate, five runs each; the best
   run of each counts.  Deliveries/s over the seed's: target 1.5x.
2. **Peak p99 latency** in those same runs: the median of each server's five
   p99s, the seed's over ours, target 1x (ours lower).
3. **Nothing lost**: every delivery of every run against ours arrived once.
4. **p99 at half the peak load**: the same clients, senders at a fixed rate that
   gives half of our peak deliveries/s, for 3 s; 50 ms over our p99, target 1x.
   Best of two runs, alternating with the next figure's.
5. **One client that never reads** changes nobody's p99: the half-load run again
   with one extra client that stops reading (tiny receive buffer, kernel buffers
   filled first, see :func:`benchmarks.loadgen._prefill`).  Criterion:
   p99 with it at most max(1.5 x, +10 ms) the p99 without it; the figure is that
   allowance over the measured p99, target 1x.
6. **1,000 clients held**: 1,000 connect and choose a nickname, and one message
   reaches the other 999; the figure is the smaller of welcomed/1000 and
   delivered/999, target 1x.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

from .common import Result
from .loadgen import Load, Report, raise_fd_limit, run_load

BANNER_PORT = re.compile(r":(\d+)\. Connect with")
OURS = [sys.executable, "-m", "tcpchatx", "server", "--no-flood-control", "--quiet",
        "--host", "127.0.0.1", "--port", "0", "--max-clients", "2000"]
SEED = [sys.executable, "-m", "benchmarks.seed_server", "--host", "127.0.0.1", "--port", "0"]

P99_BUDGET_MS = 50.0
STALL_FACTOR, STALL_SLACK_MS = 1.5, 10.0


class Server:
    """A server subprocess; the port comes from its banner line ("...:PORT. Connect with").

    Its output goes to a file, not a pipe: ``tcpchatx server`` prints every join and
    leave, and a pipe nobody reads would fill up and stop the server mid-benchmark.
    """

    def __init__(self, command: list[str], timeout: float = 30.0) -> None:
        self.output = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT,
                                        text=True)
        deadline = time.monotonic() + timeout
        while True:
            self.output.seek(0)
            match = BANNER_PORT.search(self.output.read())
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{' '.join(command)} did not say its port")
            time.sleep(0.05)

    def load(self, load: Load) -> Report:
        return run_load("127.0.0.1", self.port, load)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()


def _kdps(report: Report) -> str:
    return f"{report.deliveries_per_s / 1000:,.0f}k/s"


def _median_p99(reports: list[Report]) -> float:
    return statistics.median(r.p99_ms for r in reports)


def _p99s(reports: list[Report]) -> str:
    return ", ".join(f"{r.p99_ms:.0f}" for r in reports)


def run(quick: bool = False) -> list[Result]:
    raise_fd_limit()  # the servers we start inherit it
    if quick:
        peak = Load(clients=30, senders=5, messages=100)
        peak_repeats, steady_repeats, seconds, crowd = 1, 1, 1.0, 200
    else:
        # A peak run lasts well under a second, so one busy moment on a 2-core
        # machine swings its rate by 1.5x: best of 5 each.  Steady runs last 3 s.
        peak = Load(clients=100, senders=10, messages=200)
        peak_repeats, steady_repeats, seconds, crowd = 5, 2, 3.0, 1000
    ours, seed = Server(OURS), Server(SEED)
    try:
        return _measure(ours, seed, peak, peak_repeats, steady_repeats, seconds, crowd)
    finally:
        ours.stop()
        seed.stop()


def _measure(ours: Server, seed: Server, peak: Load, peak_repeats: int, steady_repeats: int,
             seconds: float, crowd: int) -> list[Result]:
    mine: list[Report] = []
    theirs: list[Report] = []
    for _ in range(peak_repeats):  # alternate, so a busy moment on the machine hits both
        mine.append(ours.load(peak))
        theirs.append(seed.load(replace(peak, dialect="seed")))
    # A run where someone was not welcomed (or, for ours, lost something) ran a
    # different load: it may not be the "best"; the last row counts it as a failure.
    best = max([r for r in mine if r.complete] or mine, key=lambda r: r.deliveries_per_s)
    ref = max([r for r in theirs if r.welcomed == peak.clients] or theirs,
              key=lambda r: r.deliveries_per_s)
    shape = f"{peak.clients} clients, {peak.senders}x{peak.messages} msgs flat out, best of {len(mine)}"
    rows = [
        Result(f"fan-out peak deliveries/s ({shape})",
               f"seed {_kdps(ref)} ({ref.lost} lost/garbled); ours {_kdps(best)}",
               best.deliveries_per_s / ref.deliveries_per_s, 1.5),
        # p99 is compared as the median over the runs: the p99 of whichever run
        # happened to be fastest is one draw, and a burst's p99 swings 4x run to run.
        Result(f"fan-out peak p99 latency, same runs (median of {len(mine)})",
               f"seed p99 {_median_p99(theirs):.0f} ms ({_p99s(theirs)}); "
               f"ours {_median_p99(mine):.0f} ms ({_p99s(mine)})",
               _median_p99(theirs) / _median_p99(mine), 1.0),
    ]

    # Half the peak, at a fixed rate: messages/s that make half our best deliveries/s.
    rate = 0.5 * best.deliveries_per_s / (peak.clients - 1)
    steady = Load(clients=peak.clients, senders=peak.senders, rate=rate,
                  messages=max(1, round(rate * seconds / peak.senders)))
    calms: list[Report] = []
    stalls: list[Report] = []
    for _ in range(steady_repeats):  # alternate: noise on the machine hits both
        calms.append(ours.load(steady))
        stalls.append(ours.load(replace(steady, stalled=1)))
    calm = min([r for r in calms if r.complete] or calms, key=lambda r: r.p99_ms)
    stalled = min([r for r in stalls if r.complete] or stalls, key=lambda r: r.p99_ms)
    rows.append(Result(
        f"fan-out p99 at half peak ({rate:,.0f} msg/s for {seconds:g} s, best of {len(calms)})",
        f"budget {P99_BUDGET_MS:g} ms; ours p99 {calm.p99_ms:.1f} ms at {_kdps(calm)}",
        P99_BUDGET_MS / calm.p99_ms, 1.0))
    allowed = max(STALL_FACTOR * calm.p99_ms, calm.p99_ms + STALL_SLACK_MS)
    rows.append(Result(
        f"fan-out p99 with one client never reading (best of {len(stalls)})",
        f"p99 {stalled.p99_ms:.1f} ms vs {calm.p99_ms:.1f} without (allowed {allowed:.1f}); "
        f"stalled one dropped in {sum(r.stalled_dropped for r in stalls)}/{len(stalls)} runs",
        allowed / stalled.p99_ms, 1.0))

    # Many clients: everyone welcomed, one broadcast reaches all the others.
    t0 = time.perf_counter()
    many = ours.load(Load(clients=crowd, senders=1, messages=1, connect_timeout=120))
    took = time.perf_counter() - t0
    delivered = many.deliveries - many.duplicated
    rows.append(Result(
        f"fan-out {crowd:,} concurrent clients held",
        f"{many.welcomed} welcomed, 1 msg reached {delivered}/{crowd - 1} ({took:.0f} s)",
        min(many.welcomed / crowd, delivered / (crowd - 1)), 1.0))

    runs = [*mine, *calms, *stalls, many]
    expected = sum(r.expected for r in runs)
    arrived = sum(r.expected - r.lost for r in runs)
    everyone = sum(r.load.clients + r.load.stalled for r in runs)
    welcomed = sum(r.welcomed for r in runs)
    rows.append(Result(
        "fan-out: everyone welcomed, every delivery arrived once (ours, all runs)",
        f"{everyone - welcomed} not welcomed, {sum(r.lost for r in runs)} lost, "
        f"{sum(r.duplicated for r in runs)} duplicated, "
        f"{sum(r.disconnected for r in runs)} receivers cut off, of {expected:,}",
        0.0 if any(r.duplicated for r in runs) else min(arrived / expected, welcomed / everyone),
        1.0))
    for report in [*mine, *theirs, *calms, *stalls, many]:
        print("   ", report.summary(), flush=True)
    return rows
