"""Capture completeness: dumpcap at the server's peak load, and the scapy backend's ceiling.

Both need capture rights on the loopback interface (root here; docs/capture.md).

1. **dumpcap at peak load.**  Our server (a subprocess, as in :mod:`benchmarks.fanout`)
   takes the peak load flat out, 100 clients, 10 senders, while
   :class:`tcpchatx.capture.LiveCapture` records it with dumpcap.  Nothing is lost
   when dumpcap reports 0 dropped, :func:`tcpchatx.analysis.analyze` finds no hole
   in any byte stream, and its chat layer finds exactly the messages the load
   generator sent and the deliveries its receivers counted (a receiver the server
   cut off for reading too slowly counts only what reached it, and so does the
   capture).  Figure: deliveries in the capture over deliveries counted, target 1x
   (with 0 drops and 0 gaps).
2. **The scapy backend's ceiling.**  dumpcap and scapy record the same traffic at
   once, at rising fixed rates; the ceiling is the highest packet rate at which
   scapy recorded every packet dumpcap did.  Measured and stated (docs/capture.md),
   no target: scapy parses every packet in Python, in the capturing process.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tcpchatx.analysis import analyze
from tcpchatx.capture import LiveCapture

from .common import Result
from .fanout import OURS, Server
from .loadgen import Load, Report, raise_fd_limit, run_load

PEAK = Load(clients=100, senders=10, messages=1000)
QUICK_PEAK = Load(clients=30, senders=5, messages=200)
# Messages per second over all senders; ~12 packets each in a room of 10.
SCAPY_RATES = (500, 2000, 8000, 16000, 32000)
QUICK_SCAPY_RATES = (1000, 4000, 16000)


def run(quick: bool = False) -> list[Result]:
    raise_fd_limit()
    server = Server(OURS)
    try:
        with tempfile.TemporaryDirectory(prefix="tcpchatx-bench-capture-") as tmp:
            rows = [_dumpcap_at_peak(server.port, QUICK_PEAK if quick else PEAK, Path(tmp))]
            rows.append(_scapy_ceiling(server.port, QUICK_SCAPY_RATES if quick else SCAPY_RATES,
                                       2.0 if quick else 3.0, Path(tmp)))
            return rows
    finally:
        server.stop()


def _captured(port: int, load: Load, path: Path, backends: tuple[str, ...]):
    """Run ``load`` while every backend named records it; (report, capture results)."""
    captures = [LiveCapture(port, path.with_suffix(f".{name}.pcapng"), backend=name).start()
                for name in backends]
    try:
        report = run_load("127.0.0.1", port, load)
    finally:
        results = [capture.stop() for capture in captures]
    return report, results


def chat_counts(path: Path) -> tuple[int, int, int, int]:
    """(packets, gaps, messages, deliveries) as the analysis finds them in a capture."""
    a = analyze(path)
    messages = [m for m in a.messages if m.kind == "chat"]
    return len(a.packets), a.chat.gaps, len(messages), sum(len(m.deliveries) for m in messages)


def _dumpcap_at_peak(port: int, load: Load, tmp: Path) -> Result:
    report, (result,) = _captured(port, load, tmp / "peak", ("dumpcap",))
    packets, gaps, messages, deliveries = chat_counts(result.path)
    counted = report.deliveries - report.duplicated
    print(f"    dumpcap at peak: {report.summary()}", flush=True)
    print(f"    capture: {packets:,} packets, {result.dropped} dropped, {gaps} gaps, "
          f"{messages:,} messages, {deliveries:,} deliveries", flush=True)
    # The capture is judged against what went over the wire.  A receiver the server
    # cut off for reading too slowly (its queue limit, working as designed) never got
    # the rest of its lines, so neither its count nor the capture has them.
    complete = result.dropped == 0 and gaps == 0 and messages == report.sent
    rate = packets / report.seconds if report.seconds else 0.0
    cut_off = (f"; {report.disconnected} slow receivers cut off by the server's queue limit"
               if report.disconnected else "")
    return Result(
        f"dumpcap at peak load ({load.clients} clients, {load.senders}x{load.messages} flat out, "
        f"{rate:,.0f} pkts/s)",
        f"{result.dropped} dropped, {gaps} stream gaps, {messages:,}/{report.sent:,} messages, "
        f"{deliveries:,}/{counted:,} deliveries found in the capture{cut_off}",
        deliveries / counted if complete and counted else 0.0, 1.0)


def _scapy_ceiling(port: int, rates: tuple[int, ...], seconds: float, tmp: Path) -> Result:
    ceiling, rows = 0.0, []
    for rate in rates:
        load = Load(clients=10, senders=2, rate=rate, messages=max(1, round(rate * seconds / 2)))
        report, (truth, scapy) = _captured(port, load, tmp / f"rate{rate}", ("dumpcap", "scapy"))
        pps = truth.packets / _duration(report, seconds)
        kept = scapy.packets / truth.packets if truth.packets else 0.0
        rows.append(f"{pps:,.0f} pkts/s: scapy kept {scapy.packets:,}/{truth.packets:,} ({kept:.1%})")
        print(f"    scapy vs dumpcap at {rate} msg/s: {rows[-1]}", flush=True)
        if scapy.packets >= truth.packets and truth.dropped == 0:
            ceiling = max(ceiling, pps)
        else:
            break  # above the ceiling: faster steps only lose more
    else:
        rows.append("no loss at any rate tried: the ceiling is higher")
    return Result("scapy backend: highest packet rate recorded completely (measured, no target)",
                  "; ".join(rows), ceiling / 1000, 0.0, unit="k pkts/s")


def _duration(report: Report, planned: float) -> float:
    return max(report.seconds, planned, 1e-3)
