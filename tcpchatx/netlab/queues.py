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
import threading
import time
from dataclasses import dataclass, field

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


@dataclass
class QueueSampler:
    """Reads :func:`queue_counters` of *device* every ``interval`` seconds until stopped."""

    device: str
    interval: float = 0.01
    samples: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append({"time": time.time(), **queue_counters(self.device)})
            if self._stop.wait(self.interval):
                self.samples.append({"time": time.time(), **queue_counters(self.device)})
                return

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
