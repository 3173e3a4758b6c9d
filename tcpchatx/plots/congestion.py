"""A sender at a bottleneck, over time: its congestion window, its RTT, the router's queue.

Three panels share one time axis (seconds since the first sample):

1. the sender's congestion window and slow-start threshold, in segments, from its
   TCP_INFO samples (:class:`tcpchatx.tcpinfo.Sampler`); the threshold is drawn only
   once a loss has set it (before, the kernel keeps it "infinite");
2. the smoothed RTT the kernel measured, and the retransmission timeout it derived;
3. the bytes waiting in the router's queue (:class:`tcpchatx.netlab.queues.QueueSampler`),
   with a mark wherever the router dropped packets.

Given the sender's capture analysis, the retransmissions the capture shows are marked
on the first panel too: a loss, then the window collapsing, is the picture to look for.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from ._common import EVENT_COLOUR, RETRANSMISSION_COLOUR

INFINITE = 2**31 - 1  # the kernel's snd_ssthresh before any loss


def congestion(tcp_samples: list[dict], queue_samples: list[dict] | None = None, expert=None,
               analysis=None, name: str | None = None) -> Figure:
    """The figure described in the module docstring.

    ``tcp_samples``: TCP_INFO samples (of the socket called ``name``, or the first
    name found); ``queue_samples``: the router's queue; ``analysis`` and ``expert``
    (:func:`tcpchatx.analysis.expert.analyse` of it): to mark the retransmissions.
    """
    if not tcp_samples:
        raise ValueError("no TCP_INFO samples to draw")
    name = name or tcp_samples[0]["name"]
    mine = [s for s in tcp_samples if s["name"] == name]
    t0 = mine[0]["time"]
    times = [s["time"] - t0 for s in mine]
    panels = 3 if queue_samples else 2
    fig = Figure(figsize=(10, 2.4 * panels + 0.6))
    axes = fig.subplots(panels, 1, sharex=True)
    drawn = {"kind": "congestion", "samples": len(mine), "retransmissions": 0, "drops": 0}

    window = axes[0]
    window.plot(times, [s["snd_cwnd"] for s in mine], color="#1f77b4", label="cwnd (segments)")
    set_at = [(t, s["snd_ssthresh"]) for t, s in zip(times, mine, strict=True) if s["snd_ssthresh"] < INFINITE]
    if set_at:
        window.step([t for t, _ in set_at], [v for _, v in set_at], where="post", color="#ff7f0e",
                    label="ssthresh (segments)")
    if analysis is not None and expert is not None:
        retransmitted = [float(analysis.packets.seconds(i)) - t0 for i in range(len(analysis.packets))
                         if "retransmission" in expert.names(i)]
        for t in retransmitted:
            window.axvline(t, color=RETRANSMISSION_COLOUR, alpha=0.25, linewidth=0.8)
        drawn["retransmissions"] = len(retransmitted)
    window.set_ylabel("segments")
    window.set_title(f"{name}: congestion window" + (" (red: retransmissions in the capture)"
                                                      if drawn["retransmissions"] else ""))
    window.legend(loc="upper left", fontsize=8)

    rtt = axes[1]
    rtt.plot(times, [s["rtt"] * 1000 for s in mine], color="#2ca02c", label="smoothed RTT")
    rtt.plot(times, [s["rto"] * 1000 for s in mine], color=EVENT_COLOUR, linestyle="--", label="RTO")
    rtt.set_ylabel("ms")
    rtt.legend(loc="upper left", fontsize=8)

    if queue_samples:
        queue = axes[2]
        q_times = [s["time"] - t0 for s in queue_samples]
        queue.fill_between(q_times, [s["backlog_bytes"] / 1000 for s in queue_samples], step="post",
                           color="#9467bd", alpha=0.5, label="queued at the router")
        drops = [(t, b["dropped"] - a["dropped"]) for t, a, b in
                 zip(q_times[1:], queue_samples, queue_samples[1:], strict=False) if b["dropped"] > a["dropped"]]
        if drops:
            queue.scatter([t for t, _ in drops], [0] * len(drops), marker="x", color=RETRANSMISSION_COLOUR,
                          label="router dropped")
        drawn["drops"] = sum(n for _, n in drops)
        queue.set_ylabel("KB")
        queue.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.tcpchatx = drawn
    return fig
