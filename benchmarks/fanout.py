"""Server fan-out under load: TCPChatX's server against the seed's, same load, same run.

Both servers run as subprocesses on loopback; the load comes from
:mod:`benchmarks.loadgen` (worker processes, stamped messages, no coordinated
omission at a fixed rate).  The reference is :mod:`benchmarks.seed_server`, the seed
project's server as it really is: one thread per client relaying each ``recv(2048)``
chunk to every client, the sender included, with no lock and one ``send`` each.  It
is fast because it never frames lines (many messages ride in one send) and wrong for
the same reason.  Its threads spin forever once a client leaves, so every run gets
a fresh seed server, stopped as soon as the run is counted.

Ours runs as a student starts it, ``tcpchatx server --no-flood-control`` (every
event on its console), and again with ``--quiet``.

Figures (full size; ``--quick`` shrinks every load):

1. **Peak fan-out**: 100 clients, 10 of them sending 10,000 messages each flat out
   (9.9 million deliveries, a burst of about a second).  The seed, ours and ours
   ``--quiet`` take turns, three runs each; the best run of each counts.
   Deliveries/s over the seed's: target 1.5x.  Each run's line says which side was
   busier (the server's CPU time against the load generator's, in cores): a figure
   the generator could not keep up with says so.  Beside it, what a delivery costs
   the server: deliveries per second of its CPU time, which the generator cannot cap.
2. **p99 latency at the same fixed rate**: both servers, the senders at a rate that
   gives half of the seed's peak deliveries/s, 3 s; the seed's p99 over ours,
   target 1x (ours lower).  Best of two, taking turns.
   Beside each p99, how late the load generator itself wrote its messages (p99):
   at this rate a 2-core machine's generator falls tens to hundreds of ms behind.
3. **p99 at 5,000 messages/s**, a rate the generator keeps up with (late by a few ms):
   the servers' own tails, and what a delivery costs each when nothing batches.
   Seed over ours, target 1x.
4. **p99 flat out**, the median of the peak runs', seed over ours, target 1x.  Flat
   out, a message is stamped when its sender's socket takes it: a server that reads
   slowly makes senders wait before the stamp, a server that reads at once makes
   them wait after it, so this figure favours the slow reader.  Figures 2 and 3 are the fair ones.
5. **p99 at half our peak load**: the same clients, senders at a fixed rate that
   gives half of our peak deliveries/s, for 3 s; 50 ms over our p99, target 1x.
   Best of two runs, alternating with the next figure's.  Beside it, how many of the
   machine's cores the server and the generator used: on two cores they share them.
6. **One client that never reads** changes nobody's p99: the half-load run again
   with one extra client that stops reading (tiny receive buffer, kernel buffers
   filled first, see :func:`benchmarks.loadgen._prefill`).  Criterion:
   p99 with it at most max(1.5 x, +10 ms) the p99 without it; the figure is that
   allowance over the measured p99, target 1x.
7. **1,000 clients held**: 1,000 connect and choose a nickname, and one message
   reaches the other 999; the figure is the smaller of welcomed/1000 and
   delivered/999, target 1x.
8. **Nothing lost**: every delivery of every run against ours arrived once.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

from .common import Result, taking_turns
from .loadgen import Load, Report, raise_fd_limit, run_load

BANNER_PORT = re.compile(r":(\d+)\. Connect with")
OURS = [sys.executable, "-m", "tcpchatx", "server", "--no-flood-control",
        "--host", "127.0.0.1", "--port", "0", "--max-clients", "2000"]
SEED = [sys.executable, "-m", "benchmarks.seed_server", "--host", "127.0.0.1", "--port", "0"]

P99_BUDGET_MS = 50.0
EASY_RATE = 5_000  # messages/s: 0.5M deliveries/s to 99 clients, which a 2-core machine's generator keeps up with
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
        return run_load("127.0.0.1", self.port, load, server_pid=self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()


def _machine_share(report: Report) -> str:
    """How busy the machine was: on two cores the server and the load generator share
    them, and a p99 measured on a saturated machine is mostly queueing."""
    cores = report.cores
    if cores is None:
        return "machine share unknown"
    server, generator = cores
    return (f"server {server:.2f} + generator {generator:.2f} cores = "
            f"{server + generator:.2f} of this machine's {os.cpu_count()}")


def _kdps(report: Report) -> str:
    return f"{report.deliveries_per_s / 1000:,.0f}k/s"


def _half_of(report: Report, peak: Load, seconds: float) -> Load:
    """The peak's clients at a fixed rate for ``seconds``: the messages/s that make half
    the deliveries/s ``report`` measured."""
    rate = 0.5 * report.deliveries_per_s / (peak.clients - 1)
    return Load(clients=peak.clients, senders=peak.senders, rate=rate,
                messages=max(1, round(rate * seconds / peak.senders)))


def _per_cpu(reports: list[Report]) -> float:
    """Deliveries per second of the server's CPU time (user + system), the median run's."""
    return statistics.median(r.deliveries / r.server_cpu_s for r in reports if r.server_cpu_s)


def _median_p99(reports: list[Report]) -> float:
    return statistics.median(r.p99_ms for r in reports)


def _p99_and_lag(report: Report) -> str:
    """"21.4 ms (generator late 1.7 ms)": a p99 beside how late the load generator itself
    wrote its messages at p99 (that lateness is in the latency too: the stamp is the due time)."""
    return f"{report.p99_ms:.1f} ms (generator late {report.send_lag_p99_ms:.1f} ms)"


def _p99s(reports: list[Report]) -> str:
    return ", ".join(f"{r.p99_ms:.0f}" for r in reports)


def run(quick: bool = False) -> list[Result]:
    raise_fd_limit()  # the servers we start inherit it
    if quick:
        peak = Load(clients=30, senders=5, messages=500)
        peak_repeats, steady_repeats, seconds, crowd = 1, 1, 1.0, 200
    else:
        # A burst of 9.9 million deliveries lasts about a second: long enough to time,
        # and one busy moment on a 2-core machine still swings it: best of 3 each.
        peak = Load(clients=100, senders=10, messages=10_000)
        peak_repeats, steady_repeats, seconds, crowd = 3, 2, 3.0, 1000
    ours, quiet = Server(OURS), Server([*OURS, "--quiet"])
    try:
        return _measure(ours, quiet, peak, peak_repeats, steady_repeats, seconds, crowd)
    finally:
        ours.stop()
        quiet.stop()


def _seed_run(load: Load) -> Report:
    """One run against a fresh seed server (its threads spin once a client leaves)."""
    seed = Server(SEED)
    try:
        return seed.load(replace(load, dialect="seed"))
    finally:
        seed.stop()


def _best(reports: list[Report], everyone: int) -> Report:
    """The fastest run in which every client got in (a run where some did not ran a
    different load and may not count as the best)."""
    return max([r for r in reports if r.welcomed == everyone] or reports, key=lambda r: r.deliveries_per_s)


def _measure(ours: Server, quiet: Server, peak: Load, peak_repeats: int, steady_repeats: int,
             seconds: float, crowd: int) -> list[Result]:
    # Taking turns, so that a busy moment on the machine hits all three.
    theirs, mine, mine_quiet = taking_turns(peak_repeats, lambda: _seed_run(peak), lambda: ours.load(peak),
                                            lambda: quiet.load(peak))
    ref = _best(theirs, peak.clients)
    best = _best([r for r in mine if r.complete] or mine, peak.clients)
    best_quiet = _best([r for r in mine_quiet if r.complete] or mine_quiet, peak.clients)
    shape = (f"{peak.clients} clients, {peak.senders}x{peak.messages:,} msgs flat out, "
             f"best of {len(mine)}")
    seed_says = f"seed {_kdps(ref)} ({ref.lost:,} lost/garbled; busier: {ref.bottleneck})"
    rows = [
        Result(f"fan-out peak deliveries/s ({shape})",
               f"{seed_says}; ours {_kdps(best)} (busier: {best.bottleneck})",
               best.deliveries_per_s / ref.deliveries_per_s, 1.5),
        Result("fan-out peak deliveries/s, ours --quiet, same runs",
               f"seed {_kdps(ref)}; ours --quiet {_kdps(best_quiet)} (busier: {best_quiet.bottleneck})",
               best_quiet.deliveries_per_s / ref.deliveries_per_s, 1.5),
        # When the load generator is the busier side, the rate above is partly its own;
        # what each delivery costs the server is not.
        Result("fan-out deliveries per server CPU-second, same runs (median of each's)",
               f"seed {_per_cpu(theirs) / 1e6:.1f}M; ours {_per_cpu(mine) / 1e6:.1f}M; "
               f"ours --quiet {_per_cpu(mine_quiet) / 1e6:.1f}M",
               _per_cpu(mine) / _per_cpu(theirs), 1.5),
    ]

    # The same fixed rate for both: half the seed's peak, which both can carry.
    shared = _half_of(ref, peak, seconds)
    same_rate = shared.rate
    theirs_fixed, mine_fixed = taking_turns(steady_repeats, lambda: _seed_run(shared), lambda: ours.load(shared))
    seed_best, our_best = (min(reports, key=lambda r: r.p99_ms) for reports in (theirs_fixed, mine_fixed))
    rows += [
        Result(f"fan-out p99 at the same fixed rate ({same_rate:,.0f} msg/s, half the seed's peak, "
               f"{seconds:g} s, best of {len(mine_fixed)})",
               f"seed p99 {_p99_and_lag(seed_best)}; ours {_p99_and_lag(our_best)}",
               seed_best.p99_ms / our_best.p99_ms, 1.0),
        # Flat out, the p99 is a median over the runs: one burst's p99 swings a lot.
        Result(f"fan-out p99 flat out, the peak runs (median of {len(mine)}; favours the slower reader)",
               f"seed p99 {_median_p99(theirs):.0f} ms ({_p99s(theirs)}); "
               f"ours {_median_p99(mine):.0f} ms ({_p99s(mine)})",
               _median_p99(theirs) / _median_p99(mine), 1.0),
    ]

    # A rate the load generator keeps up with (its own lateness a few ms at p99), so
    # that the p99 is the servers' and not the generator's: on a 2-core machine the
    # rates above leave the generator tens to hundreds of ms behind its schedule.
    easy = replace(shared, rate=EASY_RATE, messages=max(1, round(EASY_RATE * seconds / peak.senders)))
    theirs_easy, mine_easy = taking_turns(steady_repeats, lambda: _seed_run(easy), lambda: ours.load(easy))
    seed_easy, our_easy = (min(reports, key=lambda r: r.p99_ms) for reports in (theirs_easy, mine_easy))
    rows.append(Result(
        f"fan-out p99 at {EASY_RATE:,} msg/s, a rate the load generator keeps up with (best of {len(mine_easy)})",
        f"seed p99 {_p99_and_lag(seed_easy)}; ours {_p99_and_lag(our_easy)}; per server CPU-second: "
        f"seed {_per_cpu(theirs_easy) / 1e6:.2f}M, ours {_per_cpu(mine_easy) / 1e6:.2f}M",
        seed_easy.p99_ms / our_easy.p99_ms, 1.0))

    # Half our peak, at a fixed rate.
    steady = _half_of(best, peak, seconds)
    rate = steady.rate
    calms, stalls = taking_turns(steady_repeats, lambda: ours.load(steady),
                                 lambda: ours.load(replace(steady, stalled=1)))
    calm = min([r for r in calms if r.complete] or calms, key=lambda r: r.p99_ms)
    stalled = min([r for r in stalls if r.complete] or stalls, key=lambda r: r.p99_ms)
    rows.append(Result(
        f"fan-out p99 at half our peak ({rate:,.0f} msg/s for {seconds:g} s, best of {len(calms)})",
        f"budget {P99_BUDGET_MS:g} ms; ours p99 {calm.p99_ms:.1f} ms at {_kdps(calm)}; {_machine_share(calm)}",
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

    runs = [*mine, *mine_quiet, *mine_fixed, *mine_easy, *calms, *stalls, many]
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
    for name, reports in (("seed", theirs), ("ours", mine), ("ours --quiet", mine_quiet),
                          ("seed, fixed rate", theirs_fixed), ("ours, fixed rate", mine_fixed),
                          ("seed, 5,000 msg/s", theirs_easy), ("ours, 5,000 msg/s", mine_easy),
                          ("ours, half our peak", calms), ("ours, one never reading", stalls),
                          ("ours, many clients", [many])):
        for report in reports:
            print(f"    {name}: {report.summary()}", flush=True)
    return rows
