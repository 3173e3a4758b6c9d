"""A ladder through the router: each segment crosses three lanes, client, router, server.

The lab captures every connection twice, at the client's end and at the server's
(docs/netlab.md), and :func:`tcpchatx.analysis.views.pair_views` says which packet of
one view is which of the other.  So every segment is drawn from what both ends saw:

- it leaves its sender's lane when the *sender's* view saw it leave, and reaches the
  receiver's lane when the *receiver's* view saw it arrive; it passes the router
  lane in between (the router forwards it at some time between the two);
- one that arrived within :data:`DELAYED` is drawn level; one that took longer is
  *slanted*, down to the row where it arrived: a path's delay, or a segment held at
  the router (in the ``reorder`` story it arrives after the one sent behind it, and
  the two arrows cross);
- one that the sender's view saw leave and the receiver's never saw arrive was
  *dropped*: its arrow ends at the router, with a ✕;
- every arrow is labelled with its flags, relative seq/ack and length (as the
  sender's view numbers them) and, under it, what Wireshark's Info column says of it
  (``[TCP Retransmission]``, ``[TCP Dup ACK 33#1]``: :meth:`Analysis.info`) and the
  text it carries.  Where the receiver's view says something else of the same
  segment (``[TCP Out-Of-Order]``: only the receiver can see that), it is written
  by the arrow's far end.

Time flows down.  Rows are not to scale: each segment sent takes a row, and each
arrival after a delay half a row, so that a burst stays readable and a delay still
shows; pauses longer than :data:`GAP_SECONDS` are marked and measured.  Each view's
frame numbers and times are in its own margin, client's on the left and server's on
the right, to find the packets in Wireshark.  Both clocks are one here (the captures
run on one machine); :attr:`Pairing.clock_offset` is taken off the server's anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch
from matplotlib.transforms import blended_transform_factory

from ..analysis import analyze
from ..analysis.views import ConnectionPair, Packet, Pairing, pair_views
from ..tcp_flags import ACK
from ._common import RETRANSMISSION_COLOUR, SERVER_COLOUR, connection_colour, flag_words, shorten

ROW_INCHES = 0.34  # a segment's row: its label above the arrow, its caption below
ARRIVAL_ROW = 0.5  # rows that a delayed arrival takes
DELAYED = 0.001  # seconds: an arrival later than this after the send is drawn slanted
GAP_SECONDS = 0.005  # a pause longer than this between two rows is marked
WIDTH_INCHES = 10.5
MARGIN_INCHES = 1.9  # each side: a view's frame numbers and times, and what only the receiver saw
LANE_X = {"client": 0.0, "router": 1.0, "server": 2.0}
DROP_COLOUR = RETRANSMISSION_COLOUR
TEXT_CHARS = 34
RECEIVER_COLOUR = "#b45309"  # what only the receiver's view says


@dataclass
class _Segment:
    """One segment as both views saw it, times on the client view's clock."""

    pair: ConnectionPair
    sent: Packet  # the copy in the sender's view
    arrived: Packet | None  # the copy in the receiver's view; None: dropped on the way
    sender: str  # "client" or "server": the host that sent it
    t_sent: float
    t_arrived: float | None
    y_sent: float = 0.0
    y_arrived: float = 0.0  # for a dropped one: where it ends, at the router

    @property
    def receiver(self) -> str:
        return "server" if self.sender == "client" else "client"

    @property
    def delayed(self) -> bool:
        return self.t_arrived is not None and self.t_arrived - self.t_sent > DELAYED

    @property
    def conn(self) -> int:
        """Its connection's id in the client's view (colours and nicknames come from there)."""
        return _conn_id(self.pair)

    def copy_in(self, view: str) -> Packet | None:
        return self.sent if view == self.sender else self.arrived

    def frame_in(self, view: str) -> int | None:
        copy = self.copy_in(view)
        return None if copy is None else copy.frame


def _conn_id(pair: ConnectionPair) -> int:
    return pair.packets["client"][0].conn if pair.packets["client"] else 0


def ladder_through_router(client_view, server_view, frames: tuple[int, int] | None = None,
                          max_segments: int | None = 80, pairing: Pairing | None = None) -> Figure:
    """The ladder described in the module docstring, of the two views of the same
    connections: each an :class:`~tcpchatx.analysis.Analysis` or a capture's path.

    ``frames``: (first, last) frame numbers of the *client's* view to draw (a segment
    the client's view never saw is drawn if it was sent between those two frames);
    ``max_segments``: draw at most this many (None: all); ``pairing``: the two views
    already paired by :func:`~tcpchatx.analysis.views.pair_views`, to save reading
    them again.
    """
    analyses = {"client": _analysis(client_view), "server": _analysis(server_view)}
    pairing = pairing or pair_views(analyses["client"].path, analyses["server"].path)
    segments, unseen = _segments(pairing)
    segments = _in_range(segments, frames, analyses["client"])
    hidden = 0
    if max_segments is not None and len(segments) > max_segments:
        segments, hidden = segments[:max_segments], len(segments) - max_segments
    pauses = _place(segments, _typical_transit(segments))

    rows = max((max(s.y_sent, s.y_arrived) for s in segments), default=0.0) + 1
    height = 1.5 + rows * ROW_INCHES + 0.5
    fig = Figure(figsize=(WIDTH_INCHES, height))
    ax = fig.subplots()
    margin = MARGIN_INCHES / WIDTH_INCHES
    fig.subplots_adjust(left=margin, right=1 - margin, top=1 - 1.0 / height, bottom=0.55 / height)
    ax.set_xlim(-0.45, 2.45)  # the lanes' headers stay clear of the margins' headers
    ax.set_ylim(rows - 0.4, -0.8)  # time flows down
    ax.axis("off")
    _draw_lanes(ax, pairing, analyses["client"], rows)
    _draw_pauses(ax, pauses)
    _margin_headers(ax)
    starts = {view: float(a.packets.seconds(0)) for view, a in analyses.items()}  # each capture's time 0
    drawn = [_draw_segment(ax, s, analyses, starts) for s in segments]
    _legend(ax, segments, analyses["client"], any(d["retransmission"] for d in drawn))
    title = f"{len(segments)} segments through the router"
    if hidden:
        title += f" ({hidden} more not shown)"
    if unseen:
        title += f"; {unseen} seen arriving but not leaving (not drawn)"
    fig.suptitle(f"Ladder through the router: {title}", x=0.01, y=1 - 0.12 / height, ha="left",
                 fontsize=10, fontweight="bold")
    fig.tcpchatx = {
        "kind": "ladder_through_router",
        "arrows": len(drawn),
        "segments": drawn,
        "dropped": [d for d in drawn if d["to"] == "router"],
        "delayed": [d for d in drawn if d["delayed"]],
        "hidden": hidden,
        "unseen_leaving": unseen,
        "clock_offset": pairing.clock_offset,
        "lanes": list(LANE_X),
    }
    return fig


# --------------------------------------------------------------------------- which segments


def _analysis(view):
    """An Analysis, from an Analysis or a capture's path."""
    return view if hasattr(view, "packets") else analyze(os.fspath(view))


def _segments(pairing: Pairing) -> tuple[list[_Segment], int]:
    """Every segment a view saw leave its host, in the order they left; and how many
    packets a receiver's view has that its sender's view never saw leave."""
    offset = pairing.clock_offset or 0.0

    def on_client_clock(packet: Packet) -> float:
        return packet.time - offset if packet.view == "server" else packet.time

    segments, unseen = [], 0
    for pair in pairing.connections:
        for view in ("client", "server"):
            for packet in pair.packets[view]:
                twin = pair.twin_of(packet)
                if pair.sender_view(packet) != view:
                    unseen += twin is None
                    continue
                segments.append(_Segment(pair, packet, twin, view, on_client_clock(packet),
                                         None if twin is None else on_client_clock(twin)))
    segments.sort(key=lambda s: s.t_sent)
    return segments, unseen


def _in_range(segments: list[_Segment], frames, client) -> list[_Segment]:
    """The segments of client-view frames ``frames`` (first, last), and those the
    client's view never saw that were sent meanwhile."""
    if frames is None:
        return segments
    first, last = max(frames[0], 1), min(frames[1], len(client.packets))
    if first > last:
        return []
    times = client.packets.seconds(np.array([first - 1, last - 1]))
    keep = []
    for s in segments:
        copy = s.copy_in("client")
        if copy is not None and first <= copy.frame <= last:
            keep.append(s)
        elif copy is None and times[0] <= s.t_sent <= times[1]:
            keep.append(s)
    return keep


# --------------------------------------------------------------------------- where they go


def _typical_transit(segments: list[_Segment]) -> dict[str, float]:
    """Each sender's median time to the other end: where a dropped segment would have
    passed the router (half-way)."""
    transit = {}
    for side in ("client", "server"):
        times = [s.t_arrived - s.t_sent for s in segments
                 if s.sender == side and s.t_arrived is not None]
        transit[side] = float(np.median(times)) if times else 0.0
    return transit


def _place(segments: list[_Segment], transit: dict[str, float]) -> list[tuple[float, float]]:
    """Give every send a row and every delayed arrival half a row, in time order (the
    y of each end); return the pauses, (y between two rows, seconds)."""
    events = [(s.t_sent, 0, k) for k, s in enumerate(segments)]
    events += [(s.t_arrived, 1, k) for k, s in enumerate(segments) if s.delayed]
    events.sort()
    y, times, ys, pauses = -1.0, [], [], []
    for n, (t, arrival, k) in enumerate(events):
        step = ARRIVAL_ROW if arrival else 1.0
        if n and t - times[-1] > GAP_SECONDS:
            pauses.append((y + step / 2, t - times[-1]))
        y += step
        times.append(t)
        ys.append(y)
        if arrival:
            segments[k].y_arrived = y
        else:
            segments[k].y_sent = segments[k].y_arrived = y
    for s in segments:
        if s.t_arrived is None and transit[s.sender] / 2 > DELAYED:  # dropped, on a delayed path
            s.y_arrived = float(np.interp(s.t_sent + transit[s.sender] / 2, times, ys))
    return pauses


# --------------------------------------------------------------------------- drawing


def _draw_lanes(ax, pairing: Pairing, client, rows: float) -> None:
    """Three vertical lines and their headers: the client host (its connections'
    nicknames), the router, the server."""
    clients = {}  # address -> "alice :50896", ...
    for pair in pairing.connections:
        nick = client.chat.nick_of_conn.get(_conn_id(pair)) or "port"
        clients.setdefault(pair.client[0], []).append(f"{nick} :{pair.client[1]}")
    servers = sorted({f"{pair.server[0]}:{pair.server[1]}" for pair in pairing.connections})
    connections = shorten(", ".join(sum(clients.values(), [])), 40)
    headers = {
        "client": "client " + ", ".join(clients) + "\n" + connections,
        "router": "router\n(forwards, delays, drops)",
        "server": "server\n" + ", ".join(servers),
    }
    for lane, x in LANE_X.items():
        ax.plot([x, x], [-0.5, rows - 0.5], color="#9ca3af", lw=2.0 if lane == "router" else 1.2, zorder=1)
        ax.annotate(headers[lane], (x, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 6),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8.5, fontweight="bold",
                    color=SERVER_COLOUR, annotation_clip=False, gid=f"lane:{lane}",
                    bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#9ca3af"})


def _margin_headers(ax) -> None:
    """What the numbers in each margin are."""
    for x, ha, text in ((-0.01, "right", "client's view\nframe   time (ms)"),
                        (1.01, "left", "server's view\ntime (ms)  frame")):
        ax.annotate(text, (x, 1.0), xycoords="axes fraction", xytext=(0, 6), textcoords="offset points",
                    ha=ha, va="bottom", fontsize=7, family="monospace", fontweight="bold",
                    annotation_clip=False)


def _draw_pauses(ax, pauses: list[tuple[float, float]]) -> None:
    """A dotted line across, and how long nothing happened, left of the client's lane
    (where no arrow goes)."""
    for y, seconds in pauses:
        ax.axhline(y, color="#d1d5db", lw=0.7, ls=(0, (1, 2)), zorder=0)
        ax.text(LANE_X["client"] - 0.04, y, f"+{seconds * 1000:.1f} ms", ha="right", va="center",
                fontsize=6, color="#6b7280", zorder=2,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"})


def _draw_segment(ax, s: _Segment, analyses, starts: dict[str, float]) -> dict:
    """One segment: its arrow, its labels, its frame numbers in the margins; returns
    what was drawn."""
    sent_by = analyses[s.sender]
    row = s.sent.frame - 1  # rows count from 0, frames from 1
    info = sent_by.info(row)
    received_info = analyses[s.receiver].info(s.arrived.frame - 1) if s.arrived else ""
    resent = "retransmission" in sent_by.events(row)
    colour = RETRANSMISSION_COLOUR if resent else connection_colour(s.conn)
    text = _payload_text(sent_by, row)
    _draw_arrow(ax, s, colour)
    _write_labels(ax, s, info, text, colour if info else "#4b5563")
    only_there = received_info if received_info != info else ""  # what only the receiver could see
    _margin_labels(ax, s, starts, only_there)
    transit = None if s.t_arrived is None else (s.t_arrived - s.t_sent) * 1000
    return {
        "from": s.sender, "to": "router" if s.arrived is None else s.receiver,
        "conn": s.conn, "nick": analyses["client"].chat.nick_of_conn.get(s.conn),
        "client_frame": s.frame_in("client"), "server_frame": s.frame_in("server"),
        "delayed": s.delayed, "transit_ms": transit, "y_sent": s.y_sent, "y_arrived": s.y_arrived,
        "info": info, "receiver_info": received_info, "label": _label(s.sent), "text": text,
        "retransmission": resent,
    }


def _draw_arrow(ax, s: _Segment, colour: str) -> None:
    """Sender's lane to receiver's lane; a dropped one stops at the router, with a ✕."""
    x0 = LANE_X[s.sender]
    x1 = LANE_X["router"] if s.arrived is None else LANE_X[s.receiver]
    ax.add_patch(FancyArrowPatch(
        (x0, s.y_sent), (x1, s.y_arrived), arrowstyle="-" if s.arrived is None else "-|>",
        mutation_scale=11, shrinkA=1, shrinkB=1, lw=2.0 if s.sent.length else 1.1, color=colour,
        zorder=3, gid=f"{s.sender}:{s.sent.frame}",
    ))
    if s.arrived is None:
        ax.plot([x1], [s.y_arrived], marker="X", ms=11, color=DROP_COLOUR, mec="white", mew=0.8,
                zorder=5, gid=f"dropped:{s.sender}:{s.sent.frame}")


def _write_labels(ax, s: _Segment, info: str, text: str, caption_colour: str) -> None:
    """Flags, seq, ack, len above the arrow where it leaves the sender (each send has a
    row of its own there, so labels never meet); the Info column and the text below."""
    leftwards = s.sender == "server"
    x = LANE_X[s.sender] + (-0.05 if leftwards else 0.05)
    ha = "right" if leftwards else "left"
    box = {"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.8}
    ax.text(x, s.y_sent - 0.07, _label(s.sent), ha=ha, va="bottom", fontsize=6.5, family="monospace",
            color="#111827", zorder=4, bbox=box)
    quoted = f'"{shorten(text, TEXT_CHARS)}"' if text else ""
    caption = " ".join(part for part in (info, quoted) if part)
    if caption:
        ax.text(x, s.y_sent + 0.07, caption, ha=ha, va="top", fontsize=6.5, color=caption_colour,
                style="normal" if info else "italic", zorder=4, bbox=box)


def _label(packet: Packet) -> str:
    ack = f" ack={packet.rel_ack}" if packet.flags & ACK else ""
    return f"{flag_words(packet.flags)} seq={packet.rel_seq}{ack} len={packet.length}"


def _payload_text(analysis, row: int) -> str:
    """What a segment carries, as text (a chat line: the lab's traffic is text)."""
    payload = analysis.packets.payload(row)
    return payload.decode("utf-8", "replace").strip().replace("\n", " ⏎ ") if payload else ""


def _margin_labels(ax, s: _Segment, starts: dict[str, float], receiver_info: str) -> None:
    """Each view's frame number and time (ms since that capture's first packet) in its
    margin, the client's on the left and the server's on the right, as in each view's
    packet list; and, by the receiver's frame, what its Info column says that the
    sender's does not (``[TCP Out-Of-Order]``: only the receiver can see that)."""
    margin = blended_transform_factory(ax.transAxes, ax.transData)
    for view in ("client", "server"):
        copy = s.copy_in(view)
        if copy is None:
            continue
        y = s.y_sent if view == s.sender else s.y_arrived
        ms = (copy.time - starts[view]) * 1000
        left = view == "client"
        x, ha = (-0.01, "right") if left else (1.01, "left")
        numbers = f"{copy.frame:>4} {ms:9.1f}" if left else f"{ms:9.1f} {copy.frame:<4}"
        ax.text(x, y, numbers, transform=margin, ha=ha, va="center", fontsize=6.5, family="monospace",
                color="#374151", clip_on=False)
        if receiver_info and view == s.receiver:  # beyond the numbers
            ax.annotate(receiver_info, (x, y), xycoords=margin, xytext=(-62 if left else 62, 0),
                        textcoords="offset points", ha=ha, va="center", fontsize=6.5, color=RECEIVER_COLOUR,
                        annotation_clip=False, gid=f"receiver_info:{view}:{copy.frame}")


def _legend(ax, segments: list[_Segment], client, resends: bool) -> None:
    """A colour per connection (named by nickname), and the marks."""
    handles, pairs = [], []
    for s in segments:
        if s.pair.packets["client"] and not any(s.pair is other for other in pairs):
            pairs.append(s.pair)
    for pair in pairs:
        name = client.chat.nick_of_conn.get(_conn_id(pair)) or "connection"
        handles.append(Line2D([], [], color=connection_colour(_conn_id(pair)), lw=2,
                              label=f"{name} :{pair.client[1]}"))
    if any(s.delayed for s in segments):
        handles.append(Line2D([], [], color="#6b7280", lw=2,
                              label="slanted: it took a while (delay, or held)"))
    if any(s.arrived is None for s in segments):
        handles.append(Line2D([], [], color=DROP_COLOUR, marker="X", ls="", ms=9,
                              label="dropped at the router"))
    if resends:
        handles.append(Line2D([], [], color=RETRANSMISSION_COLOUR, lw=2, label="retransmission"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
              fontsize=7.5, frameon=False, borderaxespad=0.2)
