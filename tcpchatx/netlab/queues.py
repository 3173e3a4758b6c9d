"""The router's queue, sampled: how many bytes wait at the bottleneck, and how many
the router dropped.

``tc -s qdisc show dev DEV`` prints a queueing discipline's counters; read every few
milliseconds on a thread of its own and stamped with ``time.time()`` (the capture's
clock), they show the queue filling while TCP's window grows, and emptying after a
loss.  (One ``tc`` run takes about a millisecond; a netlink socket would be lighter.)
"""

from __future__ import annotations

import re
import subprocess
import time

from ..sampling import Periodic

_COUNTERS = re.compile(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)")
_BACKLOG = re.compile(r"backlog (\d+)b (\d+)p")


def queue_counters(device: str) -> dict[str, int]:
    """The root qdisc's counters on *device*: bytes and packets sent, dropped, and the
    backlog (bytes and packets waiting now)."""
    text = subprocess.run(["tc", "-s", "qdisc", "show", "dev", device], capture_output=True,
                          text=True, check=True).stdout
    sent, packets, dropped, overlimits = map(int, _COUNTERS.search(text).groups())
    backlog_bytes, backlog_packets = map(int, _BACKLOG.search(text).groups())
    return {"sent_bytes": sent, "sent_packets": packets, "dropped": dropped, "overlimits": overlimits,
            "backlog_bytes": backlog_bytes, "backlog_packets": backlog_packets}


class QueueSampler(Periodic):
    """Reads :func:`queue_counters` of *device* every ``interval`` seconds until stopped."""

    def __init__(self, device: str, interval: float = 0.01) -> None:
        super().__init__(interval)
        self.device = device

    def sample_once(self) -> None:
        self.samples.append({"time": time.time(), **queue_counters(self.device)})
