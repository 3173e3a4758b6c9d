"""What the kernel said, drawn: the panels that :func:`~.congestion.congestion`,
:func:`~.state.tcp_state` and :func:`~.buffers.buffers` share.

The kernel's numbers come as samples, dicts stamped with ``time.time()``, the clock
dumpcap stamps packets with: TCP_INFO of a socket (:mod:`tcpchatx.tcpinfo`) and the
router's queue (:mod:`tcpchatx.netlab.queues`).  Each panel here draws one kind of
number on a :class:`Clock`, so that every figure can put the packets beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import EngFormatter

from ._common import EVENT_COLOUR, RETRANSMISSION_COLOUR

INFINITE = 2**31 - 1  # the kernel's snd_ssthresh before any loss ("infinity")
CWND_COLOUR = "#1f77b4"
SSTHRESH_COLOUR = "#ff7f0e"
SRTT_COLOUR = "#2ca02c"
QUEUE_COLOUR = "#9467bd"
BYTES = EngFormatter(unit="B", sep=" ")  # 30000 -> "30 kB": bytes, readable


def one_socket(samples: list[dict], name: str | None = None) -> list[dict]:
    """The samples of the socket called ``name`` (default: the first name found).

    A sampler may watch several sockets (the bulk transfer names its two ends
    ``"sender"`` and ``"receiver"``); a panel draws one of them."""
    if not samples:
        return []
    name = name or samples[0].get("name")
    mine = [s for s in samples if s.get("name") == name]
    if not mine:
        names = sorted({str(s.get("name")) for s in samples})
        raise ValueError(f"no samples of a socket named {name!r}; the names are {names}")
    return mine


@dataclass(frozen=True)
class Clock:
    """Seconds since ``t0`` (seconds since 1970): the figures' shared time axis.

    With a capture, ``t0`` is its first packet, so that a sample and a packet at the
    same instant are drawn at the same x; without one, the first sample."""

    t0: float
    origin: str  # what t0 is, for the axis label

    @staticmethod
    def of(analysis=None, *sample_lists: list[dict] | None) -> Clock:
        if analysis is not None and len(analysis.packets):
            return Clock(float(analysis.packets.seconds(0)), "the capture's first packet")
        firsts = [samples[0]["time"] for samples in sample_lists if samples]
        if not firsts:
            raise ValueError("nothing to draw: no samples and no capture")
        return Clock(min(firsts), "the first sample")

    def __call__(self, samples: list[dict]) -> np.ndarray:
        """The samples' times on this clock."""
        return np.array([s["time"] for s in samples], dtype=float) - self.t0

    @property
    def label(self) -> str:
        return f"seconds since {self.origin}"


def draw_window(ax, clock: Clock, samples: list[dict]) -> dict:
    """The congestion window and, once a loss has set it, the slow-start threshold
    (in segments).  Before the first loss Linux reports ssthresh as 2**31 - 1: not a
    number to draw, so those samples are left out."""
    times = clock(samples)
    ax.plot(times, [s["snd_cwnd"] for s in samples], color=CWND_COLOUR, lw=1.4,
            label="cwnd (kernel)", gid="cwnd")
    finite = np.array([s["snd_ssthresh"] < INFINITE for s in samples], dtype=bool)
    if finite.any():
        ax.step(times[finite], [s["snd_ssthresh"] for s, f in zip(samples, finite) if f], where="post",
                color=SSTHRESH_COLOUR, lw=1.4, label="ssthresh (kernel), once set", gid="ssthresh")
    ax.set_ylabel("segments")
    return {"ssthresh_from": float(times[finite][0]) if finite.any() else None}


def draw_rtt(ax, clock: Clock, samples: list[dict]) -> None:
    """The kernel's smoothed RTT (TCP_INFO's ``rtt`` is SRTT) and the retransmission
    timeout it derived from it (RFC 6298: SRTT + 4 RTTVAR, at least 200 ms on Linux)."""
    times = clock(samples)
    ax.plot(times, [s["rtt"] * 1000 for s in samples], color=SRTT_COLOUR, lw=1.4,
            label="SRTT: smoothed RTT (kernel)", gid="srtt")
    ax.plot(times, [s["rto"] * 1000 for s in samples], color=EVENT_COLOUR, ls="--", lw=1.2,
            label="RTO (kernel)", gid="rto")
    ax.set_ylabel("ms")


def draw_router_queue(ax, clock: Clock, queue_samples: list[dict], limit: int | None = None) -> int:
    """The bytes waiting in the router's queue, a mark where it dropped packets, and
    its limit if known; returns how many it dropped.  (``dropped`` counts since the
    queue was made: the drops of this run are its increases.)"""
    times = clock(queue_samples)
    ax.fill_between(times, [s["backlog_bytes"] for s in queue_samples], step="post",
                    color=QUEUE_COLOUR, alpha=0.5, label="queued at the router", gid="router_queue")
    drops = [(t, b["dropped"] - a["dropped"]) for t, a, b in
             zip(times[1:], queue_samples, queue_samples[1:]) if b["dropped"] > a["dropped"]]
    if drops:
        ax.scatter([t for t, _ in drops], [0] * len(drops), marker="x", color=RETRANSMISSION_COLOUR,
                   zorder=4, label="the router dropped packets (tail drop)", gid="router_drops")
    if limit:
        ax.axhline(limit, color="#6b7280", lw=0.9, ls=":", label=f"the queue's limit ({limit:,} bytes)")
    ax.yaxis.set_major_formatter(BYTES)
    ax.set_ylabel("bytes")
    return sum(n for _, n in drops)


def shade_congestion_states(ax, clock: Clock, samples: list[dict]) -> list[str]:
    """Shade the spans where the kernel's congestion state (``ca_state``) was not Open:
    Disorder (duplicate ACKs or SACKs seen), CWR (window reduced), Recovery (fast
    recovery after a loss), Loss (after a timeout).  Returns the states shaded."""
    times = clock(samples)
    states = [s.get("ca_state_name", "Open") for s in samples]
    shown: list[str] = []
    start = 0
    for k in range(1, len(states) + 1):
        if k == len(states) or states[k] != states[start]:
            state = states[start]
            if state in STATE_COLOURS:
                end = times[k] if k < len(times) else times[-1]
                ax.axvspan(times[start], end, color=STATE_COLOURS[state], alpha=0.8, lw=0, zorder=0,
                           label=None if state in shown else f"kernel in {state}")
                shown.append(state)
            start = k
    return list(dict.fromkeys(shown))


#: The congestion states worth shading (linux/tcp.h ``enum tcp_ca_state``; Open is not).
STATE_COLOURS = {"Disorder": "#fde68a", "CWR": "#c7d2fe", "Recovery": "#fecaca", "Loss": "#d1d5db"}
