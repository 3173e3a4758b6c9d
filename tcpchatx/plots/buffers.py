"""Where the bytes wait on their way: the sender's send queue, the router's queue, the
receiver's receive queue, over time, in bytes.

A byte the application writes waits three times before the peer reads it; each panel
is one of these waits, top to bottom as the byte travels:

1. **the sender's send queue** (``send_queue``: the ``SIOCOUTQ`` ioctl), split in two
   with TCP_INFO's ``notsent_bytes``: bytes written but not yet sent (TCP may not send
   them: the congestion or the receive window is full), and bytes sent but not yet
   acknowledged (in flight, kept for a resend);
2. **the router's queue** (``backlog_bytes``, :class:`tcpchatx.netlab.queues.
   QueueSampler`): packets waiting for the slow link, with a mark where it dropped
   some because it was full (a tail drop), and its limit if given;
3. **the receiver's receive queue** (``receive_queue``: ``SIOCINQ``): bytes that
   arrived in order and that the application has not read yet.  (Bytes that arrived
   after a hole wait in the kernel's out-of-order queue, which no ioctl shows.)

A sender that fills the path keeps its own queue long and the router's full; a reader
that is too slow shows up in the third panel (and, once its window closes, in the
first).  Samples come from :class:`tcpchatx.tcpinfo.Sampler`, on the capture's clock.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ._kernel import BYTES, Clock, draw_router_queue, one_socket

SENT_COLOUR = "#1f77b4"
NOT_SENT_COLOUR = "#aec7e8"
RECEIVE_COLOUR = "#2ca02c"
MISSING_COLOUR = "#6b7280"
HEADROOM = 1.5  # the y axis goes this far above the highest value: the legend sits there


def buffers(sender_samples: list[dict], queue_samples: list[dict] | None = None,
            receiver_samples: list[dict] | None = None, *, analysis=None, queue_limit: int | None = None,
            sender: str | None = None, receiver: str | None = None) -> Figure:
    """The figure described in the module docstring.

    ``sender_samples``, ``receiver_samples``: TCP_INFO samples of the sending and the
    receiving socket (those named ``sender`` / ``receiver``, or the first name found in
    each list); either may be None or empty, and the panel says it was not sampled.
    ``queue_samples``: the router's queue; ``queue_limit``: its size in bytes, drawn as
    a line.  ``analysis``: a capture of the transfer, whose first packet is time 0.
    """
    sent = one_socket(sender_samples or [], sender)
    received = one_socket(receiver_samples or [], receiver)
    clock = Clock.of(analysis, sent, queue_samples, received)
    fig = Figure(figsize=(9, 6.6))
    send_ax, router_ax, receive_ax = fig.subplots(3, 1, sharex=True)
    drawn = {"kind": "buffers", "clock": clock.origin, "sender_max_bytes": None, "router_max_bytes": None,
             "receiver_max_bytes": None, "drops": 0}

    if sent:
        drawn["sender_max_bytes"] = _draw_send_queue(send_ax, clock, sent)
    else:
        _not_sampled(send_ax, "the sender's send queue was not sampled")
    send_ax.set_title("1. the sender's send queue: written by the application, not yet acknowledged",
                      fontsize=9, loc="left")

    if queue_samples:
        drawn["drops"] = draw_router_queue(router_ax, clock, queue_samples, queue_limit)
        drawn["router_max_bytes"] = max(s["backlog_bytes"] for s in queue_samples)
    else:
        _not_sampled(router_ax, "the router's queue was not sampled")
    router_ax.set_title("2. the router's queue: waiting for the slow link", fontsize=9, loc="left")

    if received:
        drawn["receiver_max_bytes"] = _draw_receive_queue(receive_ax, clock, received)
    else:
        _not_sampled(receive_ax, "the receiver's receive queue was not sampled (no receiver samples)")
    receive_ax.set_title("3. the receiver's receive queue: arrived, not yet read by the application",
                         fontsize=9, loc="left")

    router_top = drawn["router_max_bytes"]
    if router_top is not None:
        router_top = max(router_top, queue_limit or 0)
    tops = (drawn["sender_max_bytes"], router_top, drawn["receiver_max_bytes"])
    for ax, top in zip((send_ax, router_ax, receive_ax), tops):
        if top is not None:
            ax.yaxis.set_major_formatter(BYTES)
            ax.set_ylabel("bytes")
            ax.set_ylim(0, HEADROOM * top if top else 1000)  # room above the data for the legend (1 kB if none)
        ax.grid(True, color="#e5e7eb", lw=0.6)
        ax.set_axisbelow(True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7.5, framealpha=0.9)
    receive_ax.set_xlabel(clock.label)
    fig.suptitle("Where the bytes wait: sender → router → receiver", x=0.01, ha="left",
                 fontsize=10, fontweight="bold")
    fig.tight_layout()
    fig.tcpchatx = drawn
    return fig


def _draw_send_queue(ax, clock: Clock, samples: list[dict]) -> int:
    """The send queue as two layers: in flight (below) and not yet sent (above)."""
    times = clock(samples)
    total = np.array([s["send_queue"] for s in samples], dtype=float)
    not_sent = np.array([s.get("notsent_bytes", 0) for s in samples], dtype=float)
    in_flight = np.clip(total - not_sent, 0, None)
    ax.fill_between(times, 0, in_flight, step="post", color=SENT_COLOUR, alpha=0.75, lw=0,
                    label="sent, not yet acknowledged (in flight)", gid="send_queue_in_flight")
    ax.fill_between(times, in_flight, total, step="post", color=NOT_SENT_COLOUR, alpha=0.9, lw=0,
                    label="written, not yet sent (notsent_bytes)", gid="send_queue_not_sent")
    return int(total.max())


def _draw_receive_queue(ax, clock: Clock, samples: list[dict]) -> int:
    times = clock(samples)
    waiting = [s["receive_queue"] for s in samples]
    ax.fill_between(times, waiting, step="post", color=RECEIVE_COLOUR, alpha=0.6, lw=0,
                    label="arrived in order, not yet read", gid="receive_queue")
    return int(max(waiting))


def _not_sampled(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=MISSING_COLOUR,
            fontsize=9, style="italic")
    ax.set_yticks([])
