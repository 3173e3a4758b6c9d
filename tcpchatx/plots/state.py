"""TCP's inner state over time: what the sender's kernel thought, beside what the wire showed.

Two panels share the capture's clock (seconds since its first packet; without a
capture, since the first sample):

1. **windows, in segments.**  The congestion window (``snd_cwnd``) and, once a loss
   has set it, the slow-start threshold (``snd_ssthresh``: Linux reports 2**31 - 1,
   "infinity", before the first loss, so those samples are not drawn), from the
   kernel's TCP_INFO samples; and the *bytes in flight* after each data segment, as
   Wireshark counts them in the capture (``analysis.expert.bytes_in_flight``), divided
   by the sender's MSS so that they share the axis: a sender keeps about a cwnd in
   flight.  The background is shaded while the kernel's congestion state was not
   Open (Disorder, Recovery, Loss), and every retransmission of the capture is a mark
   along the top, shaped by its kind (:mod:`._resends`: fast, recovery, timeout...).
2. **times, in ms.**  The RTT each ACK measured in the capture (Wireshark's
   ``ack_rtt``: from a segment leaving to the ACK that covers it coming back), the
   kernel's smoothed RTT (TCP_INFO's ``rtt`` is SRTT) and its retransmission timeout.

The kernel's numbers are samples, a few milliseconds apart (:class:`tcpchatx.tcpinfo.
Sampler`); the capture's are exact, one per packet.  :func:`~.congestion.congestion`
is the short version with the router's queue; the panels are :mod:`._kernel`'s.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from ..analysis.labels import DIRECTIONS
from ._common import RETRANSMISSION_COLOUR, find_connection
from ._kernel import Clock, draw_rtt, draw_window, one_socket, shade_congestion_states
from ._resends import KINDS, resend_kinds

IN_FLIGHT_COLOUR = "#6b7280"
ACK_RTT_COLOUR = "#17becf"


def tcp_state(tcp_samples: list[dict], analysis=None, *, name: str | None = None, connection=None,
              direction: str | None = None) -> Figure:
    """The figure described in the module docstring.

    ``tcp_samples``: TCP_INFO samples of the sender (the socket called ``name``, or the
    first name found); ``analysis``: the sender's capture, for the bytes in flight,
    each ACK's RTT and the retransmissions, of ``connection`` (id or Connection) sent
    by ``direction`` (``"originator"`` or ``"responder"``); by default the connection
    and direction that sent as many bytes as the kernel counted for the socket.
    """
    samples = one_socket(tcp_samples, name)
    if not samples:
        raise ValueError("no TCP_INFO samples to draw")
    clock = Clock.of(analysis, samples)
    fig = Figure(figsize=(9, 6.4))
    window, times = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    drawn = {"kind": "tcp_state", "name": samples[0]["name"], "samples": len(samples), "clock": clock.origin,
             **draw_window(window, clock, samples)}
    drawn["states"] = shade_congestion_states(window, clock, samples)
    draw_rtt(times, clock, samples)

    if analysis is not None:
        rows, peer_rows = _rows(analysis, samples, connection, direction)
        mss = int(np.median([s["snd_mss"] for s in samples]))
        drawn.update(_draw_in_flight(window, analysis, rows, clock, mss))
        drawn.update(_draw_ack_rtt(times, analysis, peer_rows, clock))
        drawn["retransmissions"] = _mark_resends(window, analysis, rows, clock)
    else:
        drawn["retransmissions"] = {"kernel": _mark_kernel_resends(window, clock, samples)}

    window.set_title(f"TCP's inner state: {drawn['name']}'s kernel (TCP_INFO) beside "
                     + ("its capture" if analysis is not None else "nothing else (no capture given)"),
                     fontsize=10, loc="left", fontweight="bold")
    window.set_ylim(bottom=0)
    times.set_ylim(bottom=0)
    for ax in (window, times):
        ax.grid(True, color="#e5e7eb", lw=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False)
    times.set_xlabel(clock.label)
    fig.tight_layout()
    fig.tcpchatx = drawn
    return fig


def _rows(analysis, samples: list[dict], connection, direction) -> tuple[np.ndarray, np.ndarray]:
    """The rows the sampled socket sent (``direction`` of ``connection``), and its peer's.

    Not given, they are the ones that sent as many bytes as the kernel says this socket
    did (TCP_INFO's ``bytes_sent`` and the capture both count resent bytes too)."""
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    t = analysis.tracking
    sent = max(s.get("bytes_sent", 0) for s in samples)
    conns = [find_connection(analysis, connection)] if connection is not None else analysis.connections
    sides = [DIRECTIONS.index(direction)] if direction is not None else [0, 1]
    conn, d = min(((c, d) for c in conns for d in sides),
                  key=lambda pick: abs(pick[0].payload_bytes[pick[1]] - sent))
    ours = t.conn == conn.id
    return np.flatnonzero(ours & (t.direction == d)), np.flatnonzero(ours & (t.direction == 1 - d))


def _draw_in_flight(ax, analysis, rows, clock: Clock, mss: int) -> dict:
    """Wireshark's bytes in flight after each data segment, in segments of ``mss``."""
    in_flight = analysis.expert.bytes_in_flight[rows]
    known = rows[in_flight >= 0]
    x = analysis.packets.seconds(known) - clock.t0
    segments = analysis.expert.bytes_in_flight[known] / mss
    ax.plot(x, segments, ls="", marker=".", ms=2.5, color=IN_FLIGHT_COLOUR, gid="in_flight",
            label=f"in flight (capture), ÷ {mss} B MSS")
    return {"in_flight": len(known), "in_flight_unit": f"segments (bytes in flight / {mss})"}


def _draw_ack_rtt(ax, analysis, peer_rows, clock: Clock) -> dict:
    """Each ACK's RTT as the capture measured it: a dot per ACK that covered a segment."""
    rtt = analysis.expert.ack_rtt(peer_rows)
    measured = ~np.isnan(rtt)
    x = analysis.packets.seconds(peer_rows[measured]) - clock.t0
    ax.plot(x, rtt[measured] * 1000, ls="", marker=".", ms=3, color=ACK_RTT_COLOUR, zorder=1,
            gid="ack_rtt", label="RTT of each ACK (capture)")
    return {"ack_rtts": int(measured.sum())}


def _mark_resends(ax, analysis, rows, clock: Clock) -> dict[str, list[int]]:
    """A mark along the top of ``ax`` per retransmission of the capture, by kind;
    returns the frames of each kind."""
    top = blended_transform_factory(ax.transData, ax.transAxes)
    frames: dict[str, list[int]] = {}
    for row, kind in resend_kinds(analysis, rows).items():
        frames.setdefault(kind, []).append(int(analysis.packets.frame[row]))
        colour, marker, _, _ = KINDS[kind]
        ax.plot([float(analysis.packets.seconds(row)) - clock.t0], [0.97], transform=top, ls="",
                marker=marker, ms=5, color=colour, clip_on=False, gid=f"resend:{kind}")
    for kind in frames:
        colour, marker, short, _ = KINDS[kind]
        ax.add_line(Line2D([], [], ls="", marker=marker, ms=5, color=colour,
                           label=f"{short} (capture): {len(frames[kind])}"))
    return frames


def _mark_kernel_resends(ax, clock: Clock, samples: list[dict]) -> list[float]:
    """Without a capture: a mark where the kernel's count of retransmissions grew."""
    top = blended_transform_factory(ax.transData, ax.transAxes)
    x = clock(samples)
    grew = [float(x[k]) for k in range(1, len(samples))
            if samples[k]["total_retrans"] > samples[k - 1]["total_retrans"]]
    if grew:
        ax.plot(grew, [0.97] * len(grew), transform=top, ls="", marker="v", ms=5, clip_on=False,
                color=RETRANSMISSION_COLOUR, label="retransmitted (kernel's total_retrans grew)")
    return grew
