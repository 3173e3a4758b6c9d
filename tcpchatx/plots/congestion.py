"""A sender at a bottleneck, over time: its congestion window, its RTT, the router's queue.

Three panels share one time axis (seconds since the capture's first packet when the
capture is given, else since the first sample):

1. the sender's congestion window and slow-start threshold, in segments, from its
   TCP_INFO samples (:class:`tcpchatx.tcpinfo.Sampler`); the threshold is drawn only
   once a loss has set it (before, the kernel keeps it "infinite");
2. the smoothed RTT the kernel measured, and the retransmission timeout it derived;
3. the bytes waiting in the router's queue (:class:`tcpchatx.netlab.queues.QueueSampler`),
   with a mark wherever the router dropped packets.

Given the sender's capture analysis, the retransmissions the capture shows are marked
on the first panel too: a loss, then the window collapsing, is the picture to look for.
:func:`~.state.tcp_state` draws more of the sender's state (bytes in flight, each ACK's
RTT, the kind of each resend); :func:`~.buffers.buffers` every queue on the path.
The panels are :mod:`._kernel`'s.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from ._common import RETRANSMISSION_COLOUR
from ._kernel import INFINITE, Clock, draw_router_queue, draw_rtt, draw_window, one_socket

__all__ = ["INFINITE", "congestion"]


def congestion(tcp_samples: list[dict], queue_samples: list[dict] | None = None, expert=None,
               analysis=None, name: str | None = None) -> Figure:
    """The figure described in the module docstring.

    ``tcp_samples``: TCP_INFO samples (of the socket called ``name``, or the first
    name found); ``queue_samples``: the router's queue; ``analysis`` and ``expert``
    (:func:`tcpchatx.analysis.expert.analyse` of it): to mark the retransmissions.
    """
    if not tcp_samples:
        raise ValueError("no TCP_INFO samples to draw")
    mine = one_socket(tcp_samples, name)
    name = mine[0]["name"]
    clock = Clock.of(analysis if expert is not None else None, mine)
    panels = 3 if queue_samples else 2
    fig = Figure(figsize=(10, 2.4 * panels + 0.6))
    axes = fig.subplots(panels, 1, sharex=True)
    drawn = {"kind": "congestion", "samples": len(mine), "retransmissions": 0, "drops": 0}

    window = axes[0]
    draw_window(window, clock, mine)
    if analysis is not None and expert is not None:
        p = analysis.packets
        retransmitted = [float(p.seconds(i)) - clock.t0 for i in range(len(p))
                         if "retransmission" in expert.names(i)]
        for t in retransmitted:
            window.axvline(t, color=RETRANSMISSION_COLOUR, alpha=0.25, linewidth=0.8)
        drawn["retransmissions"] = len(retransmitted)
    window.set_title(f"{name}: congestion window" + (" (red: retransmissions in the capture)"
                                                      if drawn["retransmissions"] else ""))
    window.legend(loc="upper left", fontsize=8)

    draw_rtt(axes[1], clock, mine)
    axes[1].legend(loc="upper left", fontsize=8)

    if queue_samples:
        drawn["drops"] = draw_router_queue(axes[2], clock, queue_samples)
        axes[2].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel(clock.label)
    fig.tight_layout()
    fig.tcpchatx = drawn
    return fig
