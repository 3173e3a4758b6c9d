"""The Stevens time-sequence graph of one direction of one connection.

x is time since the connection's first packet, y the relative sequence number.  Each
data segment is a vertical bar from its first byte (seq) to just past its last
(seq + len), so a steady sender draws a staircase; a retransmission is a red bar at
a height already covered.  The step line is the *other* direction's acknowledgement
number: the bars stay above it until the peer acknowledges them.  The optional
window line (ack + advertised window) is the ceiling the sender may not cross.
SYN and FIN are marked where they take their one sequence number.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..analysis.labels import DIRECTIONS, ROLE_NAMES
from ..tcp_flags import ACK, FIN, SYN
from ._common import (
    RETRANSMISSION_COLOUR,
    connection_colour,
    endpoint_text,
    find_connection,
    shorten,
)

ACK_COLOUR = "#2ca02c"
WINDOW_COLOUR = "#9ca3af"
LABEL_SEGMENTS = 30  # write the chat text beside the bars when there are at most this many


def _window_scale(analysis, rows: np.ndarray, direction: np.ndarray) -> tuple[int, int]:
    """Each side's window scale shift, if both SYNs offered one (RFC 7323), else (0, 0)."""
    p = analysis.packets
    shifts: list[int | None] = [None, None]
    for i, d in zip(rows.tolist(), direction.tolist()):
        if p.flags[i] & SYN and shifts[d] is None:
            shifts[d] = int(p.tcp_options(i).get("wscale", -1))
    if any(s is None or s < 0 for s in shifts):
        return 0, 0
    return shifts[0], shifts[1]  # type: ignore[return-value]


def _label_bars(ax, analysis, rows, xs, tops, colour) -> None:
    """Write each bar's chat text beside its top, skipping labels that would overlap."""
    x_span = max(float(xs.max() - xs.min()), 1e-9) if len(xs) else 1.0
    y_span = max(float(tops.max()), 1.0) if len(tops) else 1.0
    kept: list[tuple[float, float, float]] = []  # (x, y, width) in axes-ish fractions
    for i, x, top in zip(rows.tolist(), xs.tolist(), tops.tolist()):
        lines = analysis.lines_of_frame(int(analysis.packets.frame[i]))
        text = shorten(" ".join(line.text or "(invalid)" for line in lines), 28)
        if not text:
            continue
        fx, fy, width = (x - xs.min()) / x_span, top / y_span, 0.0075 * len(text)
        if any(fx < kx + kw and kx < fx + width and abs(fy - ky) < 0.05 for kx, ky, kw in kept):
            continue
        kept.append((fx, fy, width))
        ax.annotate(text, (x, top), xytext=(4, 2), textcoords="offset points",
                    fontsize=7, color=colour, style="italic", va="bottom")


def time_sequence(analysis, connection, direction: str = "originator", window: bool = False) -> Figure:
    """Time-sequence graph of ``connection`` (id or Connection), data sent by ``direction``
    (``"originator"``: the client's data, ``"responder"``: the server's)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    conn = find_connection(analysis, connection)
    p, t = analysis.packets, analysis.tracking
    d = DIRECTIONS.index(direction)
    rows = np.flatnonzero(t.conn == conn.id)
    dirs = t.direction[rows].astype(int)
    t0 = conn.start
    ms = (p.time[rows] - t0) * 1000.0
    seq, ack, length = t.rel_seq[rows], t.rel_ack[rows], p.payload_len[rows].astype(np.int64)
    flags = p.flags[rows]
    mine, theirs = dirs == d, dirs == 1 - d

    fig = Figure(figsize=(10, 5.2))
    ax = fig.subplots()
    colour = connection_colour(conn.id)

    # Data segments: one vertical bar each.
    data = mine & (length > 0)
    steps = [analysis.step(i) for i in rows[data].tolist()]
    again = np.array([s is not None and "retransmission" in s.name for s in steps], dtype=bool)
    bar_colours = [RETRANSMISSION_COLOUR if r else colour for r in again]
    ax.vlines(ms[data], seq[data], seq[data] + length[data], colors=bar_colours, lw=2.2,
              zorder=3, label=f"data segment (seq .. seq+len), {int(data.sum())}")
    ax.scatter(np.r_[ms[data], ms[data]], np.r_[seq[data], seq[data] + length[data]], marker="_",
               s=40, c=bar_colours + bar_colours, zorder=3, linewidths=1.2)
    if int(data.sum()) <= LABEL_SEGMENTS:
        _label_bars(ax, analysis, rows[data], ms[data], seq[data] + length[data], colour)

    # The peer's acknowledgements: what it had received, over time.
    acks = theirs & ((flags & ACK) != 0)
    if acks.any():
        ax.step(ms[acks], ack[acks], where="post", color=ACK_COLOUR, lw=1.3, zorder=2,
                label=f"{ROLE_NAMES[DIRECTIONS[1 - d]]}'s ACK number")
        if window:
            shift = _window_scale(analysis, rows, dirs)[1 - d]
            edge = ack[acks] + (p.window[rows][acks].astype(np.int64) << shift)
            ax.step(ms[acks], edge, where="post", color=WINDOW_COLOUR, lw=1.0,
                    ls="--", zorder=1, label="ACK + advertised window")
            top = max(int((seq[mine] + length[mine]).max(initial=1)), int(ack[acks].max()), 1)
            if edge.max() > 3 * top:  # a chat is tiny next to a loopback window: keep the data readable
                ax.set_ylim(-0.06 * top, 1.15 * top)
                ax.annotate(f"window edge: up to {int(edge.max()):,} (above the chart)",
                            (0.99, 0.98), xycoords="axes fraction", ha="right", va="top",
                            fontsize=8, color="#6b7280")

    # SYN and FIN: each takes one sequence number.
    for bit, name, marker in ((SYN, "SYN", "o"), (FIN, "FIN", "s")):
        hit = mine & ((flags & bit) != 0)
        if hit.any():
            ax.scatter(ms[hit], seq[hit], marker=marker, s=36, facecolors="white",
                       edgecolors=colour, linewidths=1.5, zorder=4, label=name)
            for x, y in zip(ms[hit], seq[hit]):
                ax.annotate(name, (x, y), xytext=(5, -9), textcoords="offset points", fontsize=7.5,
                            fontweight="bold", color=colour)

    if again.any():
        ax.plot([], [], color=RETRANSMISSION_COLOUR, lw=2.2, label="retransmission")
    sender = conn.client if d == 0 else conn.server
    nick = analysis.chat.nick_of_conn.get(conn.id)
    who = f"{ROLE_NAMES[direction]} {endpoint_text(sender)}" + (f" ({nick})" if nick and d == 0 else "")
    ax.set_title(f"Time-sequence graph, connection {conn.id}: data sent by the {who}",
                 fontsize=10, loc="left", fontweight="bold")
    ax.set_xlabel("time since the connection's first packet (ms)")
    ax.set_ylabel("relative sequence number (bytes)")
    ax.grid(True, color="#e5e7eb", lw=0.6)
    ax.set_axisbelow(True)
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        handles = [Line2D([], [], color="none")]
        labels = ["nothing sent in this direction"]
    ax.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)
    ax.margins(x=0.04, y=0.06)
    fig.tight_layout()

    fig.tcpchatx = {
        "kind": "time_sequence",
        "connection": conn.id,
        "direction": direction,
        "bars": int(data.sum()),
        "retransmissions": int(again.sum()),
        "acks": int(acks.sum()),
        "frames": [int(f) for f in p.frame[rows[data]]],
    }
    return fig
