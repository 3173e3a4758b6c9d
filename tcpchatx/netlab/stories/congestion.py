"""Congestion: a bulk transfer through a slow link with a small buffer (``bottleneck``)."""

from __future__ import annotations

from pathlib import Path

from ..impair import bottleneck as limit_rate
from ..play import bulk_transfer, views
from ..relay import Relay
from ..topology import SERVER
from .common import StoryError, confirmed

NO_THRESHOLD = 2**31 - 1  # TCP_INFO's ssthresh before the first loss (Linux's "infinity")


def bottleneck(out_dir: str, rate: str = "4mbit", buffer_bytes: int = 30_000, size: int = 600_000,
               delay_ms: float = 10, algorithms: tuple[str, ...] = ("cubic", "reno", "bbr"), router_view: bool = False) -> dict:
    """``size`` bytes from the client to the server through a link of ``rate`` whose
    router queues at most ``buffer_bytes`` (then drops: a tail drop), ``delay_ms``
    each way, once per congestion control algorithm.

    Slow start doubles the congestion window each round trip until the queue
    overflows; the router drops the segments that do not fit, the sender sees
    duplicate ACKs and SACKs, resends, and sets its slow-start threshold (ssthresh)
    to what it learned.  cubic (Linux's default) and reno then grow the window again
    until the next overflow; bbr estimates the link's rate and round trip instead,
    and keeps the queue short.  Each run returns its TCP_INFO samples and the
    router's queue, for :func:`tcpchatx.plots.congestion`.
    """
    limit_rate(towards=SERVER, rate=rate, buffer_bytes=buffer_bytes)
    each_way = {"delay_ms": delay_ms}
    runs = {}
    for algorithm in algorithms:
        paths = views(out_dir, f"bottleneck-{algorithm}", router_view)
        with Relay({"to_server": each_way, "to_client": each_way}) as relay:
            run = bulk_transfer(paths, size, congestion=algorithm)
        if run["received"] != [size]:
            raise StoryError(f"{algorithm}: the server received {run['received']} of {size} bytes")
        samples = [sample for sample in run["tcp_info"] if sample["name"] == "sender"]
        run.update(relay=relay.final, algorithm=algorithm,
                   goodput_mbit_s=size * 8 / run["seconds"] / 1e6,
                   max_cwnd=max(s["snd_cwnd"] for s in samples),
                   retransmitted=max(s["total_retrans"] for s in samples),
                   last_ssthresh=samples[-1]["snd_ssthresh"])
        runs[algorithm] = run
    first = runs[algorithms[0]]

    def check() -> None:
        if first["dropped"] == 0 or first["last_ssthresh"] >= NO_THRESHOLD:
            raise StoryError(f"{algorithms[0]} never overflowed the router's queue: no loss, no threshold to study")

    confirmed({f"{name}-{side}": Path(path) for name, run in runs.items() for side, path in run["views"].items()},
              check)
    return runs
