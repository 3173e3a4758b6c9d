"""The lab network: the relay's speed, the chat's reliability over a bad path, and how
long each story takes.  Needs unprivileged user namespaces (Linux); run as anyone.

1. **The relay's rate.**  A bulk transfer (50 MB; 10 MB quick) from the client to the
   server with nothing in the way, captured at both ends, once through the relay
   and once through the router's kernel.  Figure: frames the relay forwarded per
   second, target 50,000; beside it the kernel's rate on the same transfer, and the
   relay's own CPU time (about two thirds of it in the kernel: each send() also
   runs the receiving host's TCP, in the relay's time).  The relay has one core to
   itself only on a quiet machine: run this benchmark alone.
2. **dumpcap keeps up.**  The same transfer: packets in each view over the frames the
   relay forwarded that way and back, with dumpcap's own drop count; target 1x, 0 drops.
3. **Reliability.**  50 clients x 100 lines over 2% loss and 100 ms each way, and over
   10% loss and 200 ms, flood control on (:mod:`tcpchatx.netlab.reliability`; 10 x 10
   quick).  Figure: lines delivered over lines expected, target 1x, and no client with
   a problem (missing, twice, out of order, cut off, told to slow down); beside it, the
   lines flood control held when a stall bunched them.
4. **Each story's time** (:mod:`tcpchatx.netlab.stories`), in fresh namespaces, with
   its captures.  Figure: 10 s over its time, target 1x (under 10 s).  ``backoff``
   waits out a broken path (1.7 s of resends, doubling) and ``bottleneck`` runs three
   transfers: their times are printed like the others.
"""

from __future__ import annotations

import tempfile
import time

from tcpchatx.netlab import run_in_lab
from tcpchatx.scenarios.lab import LAB_STORIES

from .common import Result

BULK = "tcpchatx.netlab.selftest:bulk_through_bottleneck"


def run(quick: bool = False) -> list[Result]:
    size = 10_000_000 if quick else 50_000_000
    with tempfile.TemporaryDirectory(prefix="tcpchatx-bench-netlab-") as tmp:
        relayed = run_in_lab(BULK, {"out_dir": tmp, "rate": None, "size": size, "script": {}}, timeout=600)
        kernel = run_in_lab(BULK, {"out_dir": tmp, "rate": None, "size": size}, timeout=600)
        rows = _relay_rows(relayed, kernel, size)
        scale = (10, 10) if quick else (50, 100)
        rows.append(_reliability(*scale, loss=0.02, delay_ms=100))
        rows.append(_reliability(*scale, loss=0.10, delay_ms=200))  # stalls bunch lines: flood control holds them
        for name, story in LAB_STORIES.items():
            started = time.monotonic()
            run_in_lab(f"tcpchatx.netlab.stories:{story.function}", {"out_dir": tmp}, timeout=600)
            seconds = time.monotonic() - started
            rows.append(Result(f"story {name}: {seconds:.1f} s, namespaces and captures included",
                               "10 s", 10 / seconds, 1.0))
    return rows


def _frames(outcome: dict) -> int:
    return sum(counts["forwarded"] for counts in outcome["relay"]["counts"].values())


def _relay_rows(relayed: dict, kernel: dict, size: int) -> list[Result]:
    frames = _frames(relayed)
    per_second = frames / relayed["seconds"]
    kernel_rate = frames / kernel["seconds"]  # about as many frames: the same transfer
    captured = relayed["captured"]
    worst = min(side["packets"] for side in captured.values()) / frames
    drops = sum(side["dropped"] or 0 for side in captured.values())
    cpu = relayed["relay"]["cpu_seconds"]
    return [
        Result(f"relay: {size // 1_000_000} MB bulk, {frames:,} frames in {relayed['seconds']:.2f} s "
               f"= {per_second:,.0f} frames/s (relay CPU: {cpu['user']:.2f} s user, {cpu['system']:.2f} s system)",
               f"50,000 frames/s; the kernel forwarding the same: ~{kernel_rate:,.0f} frames/s "
               f"({per_second / kernel_rate:.2f}x of it)", per_second / 50_000, 1.0),
        Result(f"dumpcap on both views: fewest packets / frames relayed, {drops} dropped",
               f"client view {captured['client']['packets']:,}, server view {captured['server']['packets']:,}, "
               f"relayed {frames:,}", worst if drops == 0 else 0.0, 1.0),
    ]


def _reliability(clients: int, messages: int, loss: float, delay_ms: float) -> Result:
    outcome = run_in_lab("tcpchatx.netlab.reliability:chat_over_a_bad_network",
                         {"clients": clients, "messages": messages, "loss": loss, "delay_ms": delay_ms,
                          "deadline_s": 240.0}, timeout=600)
    lost = sum(counts["lost"] for counts in outcome["relay_counts"].values())
    problems = len(outcome["problems"])
    ratio = outcome["delivered"] / outcome["expected"] if not problems else 0.0
    return Result(f"chat over {loss:.0%} loss, {delay_ms:g} ms each way: {clients} clients x {messages} lines, "
                  f"{outcome['delivered']:,} of {outcome['expected']:,} delivered in {outcome['seconds']:.1f} s, "
                  f"{problems} client(s) with problems (missing, twice, out of order, cut off, warned); "
                  f"{outcome['held_lines']} line(s) held by flood control",
                  f"every line once, in order ({lost} frames lost on the way)", ratio, 1.0)
