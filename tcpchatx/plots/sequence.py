"""The Stevens time-sequence graph of one direction of one connection.

x is time since the connection's first packet, y the relative sequence number.  Each
data segment is a vertical bar from its first byte (seq) to just past its last
(seq + len), so a steady sender draws a staircase; a resend is a bar at a height
already covered, coloured and marked by its kind (:mod:`._resends`: a fast
retransmission after duplicate ACKs, a resend in SACK/RACK recovery, after a
timeout, a tail-loss probe...).  The step line is the *other* direction's
acknowledgement number: the bars stay above it until the peer acknowledges them.

More layers, each from the packets alone (``sack`` and ``events`` are drawn unless
switched off; ``window`` only when asked for, as the graph always did):

- the **receive window** (``window=True``): the ACK plus the window the peer
  advertised, scaled as its SYN said (RFC 7323; a SYN's own window is never scaled):
  the ceiling the sender may not cross.  When it closes, it meets the ACK line;
- **SACK blocks** (``sack=True``): bytes the peer says it holds beyond a hole, drawn
  at each ACK that carries them as a wide pale bar over those bytes;
- **expert events** (``events=True``): what Wireshark's expert analysis names (the
  Info column's ``[TCP Dup ACK]``, ``[TCP ZeroWindow]``, ``[TCP Window Full]``...),
  a mark each, on the ACK line for the peer's packets and on the bar for the
  sender's.  Zero-window probes get a mark of their own: Linux's carry no byte, so
  Wireshark calls them ``[TCP Keep-Alive]``; sent while the window is 0, they are probes.

SYN and FIN are marked where they take their one sequence number.  When there are
few, the resends and events are labelled with their frame numbers and the bars with
their chat text, placed last so that no label covers another (:class:`_Labels`); the
legend under the graph says what every mark is.  ``time_window`` draws a part of a
long connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import StrMethodFormatter

from ..analysis.labels import DIRECTIONS, ROLE_NAMES
from ..analysis.plain.expert import info_mark
from ..tcp_flags import ACK, FIN, SYN
from ._common import connection_colour, endpoint_text, find_connection, shorten
from ._resends import KINDS, resend_kinds

ACK_COLOUR = "#2ca02c"
WINDOW_COLOUR = "#6b7280"
SACK_COLOUR = "#c4b5fd"
LABEL_SEGMENTS = 30  # write the chat text beside the bars when there are at most this many
CALLOUTS = 12  # name the frames of the resends and events when there are at most this many groups

#: The expert events drawn as marks: name -> (whose packets, where on the graph, marker,
#: colour, what it means).  "peer": the ACKing side's packets, drawn on the ACK line;
#: "sender": the data sender's, drawn at the bar's top ("top") or its first byte ("seq").
#: Resends are not here: their bars are coloured by kind.  ``zero_window_keep_alive`` is
#: a ``keep_alive`` sent while the peer's window was 0: Linux's zero-window probe.
EVENT_MARKS = {
    "duplicate_ack": ("peer", "ack", "o", "#15803d", "the same ACK again: a segment is missing"),
    "window_update": ("peer", "ack", "^", "#84cc16", "the same ACK, a new window"),
    "zero_window": ("peer", "ack", "s", "#111827", "the receiver's window is 0: stop sending"),
    "zero_window_probe_ack": ("peer", "ack", "s", "#9ca3af", "the answer to a zero-window probe"),
    "keep_alive_ack": ("peer", "ack", "d", "#9ca3af", "the answer to a keep-alive or probe"),
    "ack_lost_segment": ("peer", "ack", "*", "#b91c1c", "ACKs bytes this capture never saw"),
    "window_full": ("sender", "top", "P", "#ea580c", "fills the receiver's window to its edge"),
    "out_of_order": ("sender", "top", "*", "#f59e0b", "behind a later segment, within a round trip"),
    "lost_segment": ("sender", "seq", "<", "#b91c1c", "a hole before it: the capture missed bytes"),
    "zero_window_probe": ("sender", "seq", "D", "#0e7490", "a zero-window probe: is the window open yet?"),
    "zero_window_keep_alive": ("sender", "seq", "D", "#0e7490",
                               "sent at a zero window: Linux's zero-window probe"),
    "keep_alive": ("sender", "seq", "d", "#0891b2", "one old byte, no new data: are you there?"),
}


@dataclass
class _Graph:
    """The rows of one connection to draw, and their columns, ready to plot."""

    analysis: object
    conn: object  # the Connection
    d: int  # the data sender's direction: 0 originator, 1 responder
    rows: np.ndarray
    ms: np.ndarray  # time since the connection's first packet
    seq: np.ndarray  # relative
    ack: np.ndarray  # relative
    length: np.ndarray
    flags: np.ndarray
    mine: np.ndarray  # sent by the data sender
    theirs: np.ndarray  # sent by the peer
    labels: _Labels = field(default_factory=lambda: _Labels())  # text to place once all is drawn

    @staticmethod
    def of(analysis, conn, d: int, time_window) -> _Graph:
        p, t = analysis.packets, analysis.tracking
        keep = t.conn == conn.id
        if time_window is not None and len(p):
            since_start = p.seconds(slice(None)) - float(p.seconds(0))
            keep &= (since_start >= time_window[0]) & (since_start <= time_window[1])
        rows = np.flatnonzero(keep)
        dirs = t.direction[rows].astype(int)
        return _Graph(analysis, conn, d, rows, (p.seconds(rows) - conn.start) * 1000.0,
                      t.rel_seq[rows].astype(np.int64), t.rel_ack[rows].astype(np.int64),
                      p.payload_len[rows].astype(np.int64), p.flags[rows], dirs == d, dirs == 1 - d)

    @property
    def data(self) -> np.ndarray:
        return self.mine & (self.length > 0)

    @property
    def acks(self) -> np.ndarray:
        return self.theirs & ((self.flags & ACK) != 0)

    @property
    def highest(self) -> int:
        """The highest sequence number the data or the ACKs reach (for the y range)."""
        top = int((self.seq[self.mine] + self.length[self.mine]).max(initial=1))
        return max(top, int(self.ack[self.acks].max(initial=1)), 1)


def time_sequence(analysis, connection, direction: str = "originator", window: bool = False, *,
                  sack: bool = True, events: bool = True,
                  time_window: tuple[float, float] | None = None) -> Figure:
    """Time-sequence graph of ``connection`` (id or Connection), data sent by ``direction``
    (``"originator"``: the client's data, ``"responder"``: the server's).

    ``window``, ``sack``, ``events``: draw those layers (the module docstring);
    ``time_window``: (start, end) in seconds since the capture's first packet, as
    :func:`~.ladder.ladder` takes it, to draw a part of a long connection.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    conn = find_connection(analysis, connection)
    g = _Graph.of(analysis, conn, DIRECTIONS.index(direction), time_window)

    fig = Figure(figsize=(9, 6.2), layout="constrained")
    ax = fig.subplots()
    drawn = {"kind": "time_sequence", "connection": conn.id, "direction": direction}
    drawn.update(_draw_segments(ax, g))
    drawn.update(_draw_acks(ax, g))
    if window:
        drawn.update(_draw_window(ax, g))
    if sack:
        drawn.update(_draw_sack_blocks(ax, g))
    if events:
        drawn.update(_draw_events(ax, g))
    _mark_syn_fin(ax, g)
    drawn["labels"] = _decorate(fig, ax, g)
    fig.tcpchatx = drawn
    return fig


# --------------------------------------------------------------------------- layers


def _draw_segments(ax, g: _Graph) -> dict:
    """One vertical bar per data segment; a resend's bar in its kind's colour, with its
    kind's marker beside the top."""
    data = g.data
    rows, x, low, high = g.rows[data], g.ms[data], g.seq[data], g.seq[data] + g.length[data]
    kinds = resend_kinds(g.analysis, rows)
    colour = connection_colour(g.conn.id)
    bar_colours = [KINDS[kinds[i]][0] if i in kinds else colour for i in rows.tolist()]
    ax.vlines(x, low, high, colors=bar_colours, lw=2.2, zorder=3, gid="data",
              label=f"data segment (seq .. seq+len): {len(rows)}")
    ax.scatter(np.r_[x, x], np.r_[low, high], marker="_", s=40, c=bar_colours + bar_colours, zorder=3,
               linewidths=1.2)
    frames = {kind: [] for kind in KINDS}
    for k, i in enumerate(rows.tolist()):
        if i in kinds:
            frames[kinds[i]].append(int(g.analysis.packets.frame[i]))
            kind_colour, marker, _, _ = KINDS[kinds[i]]
            ax.plot([x[k]], [high[k]], ls="", marker=marker, ms=6, color=kind_colour, mec="white", mew=0.6,
                    zorder=5, gid=f"resend:{kinds[i]}")
            g.labels.keep_clear(x[k], low[k], high[k])
    for kind, found in frames.items():
        if found:
            kind_colour, marker, short, meaning = KINDS[kind]
            ax.add_line(Line2D([], [], color=kind_colour, lw=2.2, marker=marker, ms=6,
                               label=f"{short} ({meaning}): {len(found)}"))
    if len(kinds) <= CALLOUTS:
        for k, i in enumerate(rows.tolist()):
            if i in kinds:
                text = g.analysis.info(i) or KINDS[kinds[i]][2]
                g.labels.add(x[k], high[k], f"frame {int(g.analysis.packets.frame[i])}: {text}",
                             KINDS[kinds[i]][0], callout="above")
    if len(rows) <= LABEL_SEGMENTS:
        for i, top, at in zip(rows.tolist(), high.tolist(), x.tolist()):
            lines = g.analysis.lines_of_frame(int(g.analysis.packets.frame[i]))
            text = shorten(" ".join(line.text or "(invalid)" for line in lines), 28)
            if text:
                g.labels.add(at, top, text, colour, italic=True)
    return {"bars": len(rows), "retransmissions": len(kinds),
            "frames": [int(f) for f in g.analysis.packets.frame[rows]],
            "resends": {kind: found for kind, found in frames.items() if found}}


def _draw_acks(ax, g: _Graph) -> dict:
    """The peer's acknowledgement number over time: what it had received in order."""
    acks = g.acks
    if acks.any():
        ax.step(g.ms[acks], g.ack[acks], where="post", color=ACK_COLOUR, lw=1.3, zorder=2, gid="ack",
                label=f"{ROLE_NAMES[DIRECTIONS[1 - g.d]]}'s ACK number")
    return {"acks": int(acks.sum())}


def _draw_window(ax, g: _Graph) -> dict:
    """ACK + the advertised window, scaled: how far the sender may send."""
    acks = g.acks
    if not acks.any():
        return {"window_edge": []}
    p = g.analysis.packets
    shift = _window_scale(g.analysis, g.conn.id, g.d)
    syn = (g.flags[acks] & SYN) != 0  # a SYN's window is never scaled (RFC 7323, 2.2)
    window = p.window[g.rows[acks]].astype(np.int64) << np.where(syn, 0, shift)
    edge = g.ack[acks] + window
    ax.step(g.ms[acks], edge, where="post", color=WINDOW_COLOUR, lw=1.1, ls="--", zorder=2.5, gid="window",
            label="ACK + receive window (scaled): the most the sender may send")
    top = g.highest
    if edge.max() > 3 * top:  # a chat is tiny next to a big window: keep the data readable
        ax.set_ylim(-0.06 * top, 1.15 * top)
        ax.annotate(f"window edge: up to {int(edge.max()):,} (above the chart)", (0.99, 0.98),
                    xycoords="axes fraction", ha="right", va="top", fontsize=8, color=WINDOW_COLOUR)
    return {"window_edge": [int(e) for e in edge], "window_scale": shift}


def _draw_sack_blocks(ax, g: _Graph) -> dict:
    """Each SACK block of the peer's ACKs, at the ACK's time, over the bytes it covers."""
    p, t = g.analysis.packets, g.analysis.tracking
    base = int(t.isn[g.conn.id, g.d])  # the sender's ISN: its relative 0
    blocks = []
    for k in np.flatnonzero(g.theirs & (p.options_len[g.rows] > 12)).tolist():  # more than timestamps
        for left, right in p.tcp_options(int(g.rows[k])).get("sack", ()):
            blocks.append((k, (left - base) & 0xFFFFFFFF, (right - base) & 0xFFFFFFFF))
    for k, lo, hi in blocks:
        g.labels.keep_clear(g.ms[k], lo, hi)
    if blocks:
        ax.vlines([g.ms[k] for k, _, _ in blocks], [lo for _, lo, _ in blocks], [hi for _, _, hi in blocks],
                  colors=SACK_COLOUR, lw=6, alpha=0.8, zorder=1.5, gid="sack",
                  label=f"SACK block: bytes the receiver holds beyond a hole: {len(blocks)}")
    return {"sack_blocks": [(int(p.frame[g.rows[k]]), lo, hi) for k, lo, hi in blocks]}


def _draw_events(ax, g: _Graph) -> dict:
    """A mark for each expert event (EVENT_MARKS), where it happens on the graph."""
    where = {"ack": g.ack, "top": g.seq + g.length, "seq": g.seq}
    found: dict[str, list[int]] = {}
    placed = []  # (name, k, y)
    for k, name in _events(g):
        side, at, marker, colour, _ = EVENT_MARKS[name]
        ax.plot([g.ms[k]], [where[at][k]], ls="", marker=marker, ms=5, color=colour, mec="white",
                mew=0.5, zorder=6, gid=f"event:{name}")
        found.setdefault(name, []).append(int(g.analysis.packets.frame[g.rows[k]]))
        placed.append((name, k, int(where[at][k])))
    groups = _groups(g, placed)
    if len(groups) <= CALLOUTS:
        for name, x, y, frames in groups:
            mark = info_mark("keep_alive" if name == "zero_window_keep_alive" else name)
            g.labels.add(x, y, f"{mark} {_frames_text(frames)}", EVENT_MARKS[name][3],
                         callout="above" if EVENT_MARKS[name][0] == "sender" else "below")
    for name, frames in found.items():
        _, _, marker, colour, meaning = EVENT_MARKS[name]
        mark = info_mark("keep_alive" if name == "zero_window_keep_alive" else name)
        ax.add_line(Line2D([], [], ls="", marker=marker, ms=5, color=colour,
                           label=f"{mark} {meaning}: {len(frames)}"))
    probes = found.get("zero_window_probe", []) + found.get("zero_window_keep_alive", [])
    return {"events": found, "probes": sorted(probes)}


def _events(g: _Graph):
    """(index into g's rows, EVENT_MARKS name) for every mark to draw, in packet order.
    A keep-alive sent while the peer's last window was 0 is a zero-window probe."""
    p = g.analysis.packets
    peer_window = None
    for k, row in enumerate(g.rows.tolist()):
        side = "sender" if g.mine[k] else "peer"
        for name in g.analysis.events(row):
            if name == "keep_alive" and side == "sender" and peer_window == 0:
                name = "zero_window_keep_alive"
            if name in EVENT_MARKS and EVENT_MARKS[name][0] == side:
                yield k, name
        if g.theirs[k]:
            peer_window = int(p.window[row])


def _groups(g: _Graph, placed) -> list[tuple[str, float, int, list[int]]]:
    """Marks of the same event at the same height, close in time (within 1% of the
    graph's width), as one group: (name, x, y, frames).  Three duplicate ACKs sent
    within a millisecond are one spot on the graph, and get one callout."""
    span = float(g.ms.max() - g.ms.min()) if len(g.ms) else 1.0
    groups: list[tuple[str, float, int, list[int]]] = []
    for name, k, y in placed:
        x, frame = float(g.ms[k]), int(g.analysis.packets.frame[g.rows[k]])
        same = [grp for grp in groups if grp[0] == name and grp[2] == y and abs(grp[1] - x) <= 0.01 * span]
        if same:
            same[0][3].append(frame)
        else:
            groups.append((name, x, y, [frame]))
    return groups


def _frames_text(frames: list[int]) -> str:
    return f"frame {frames[0]}" if len(frames) == 1 else "frames " + ", ".join(map(str, frames))


def _mark_syn_fin(ax, g: _Graph) -> None:
    """SYN and FIN: each takes one sequence number."""
    colour = connection_colour(g.conn.id)
    for bit, name, marker in ((SYN, "SYN", "o"), (FIN, "FIN", "s")):
        hit = g.mine & ((g.flags & bit) != 0)
        if hit.any():
            ax.scatter(g.ms[hit], g.seq[hit], marker=marker, s=36, facecolors="white",
                       edgecolors=colour, linewidths=1.5, zorder=4, label=name)
            for x, y in zip(g.ms[hit], g.seq[hit]):
                ax.annotate(name, (x, y), xytext=(5, -9), textcoords="offset points", fontsize=7.5,
                            fontweight="bold", color=colour)


def _decorate(fig, ax, g: _Graph) -> list[str]:
    """Title, axes, the legend under the graph (it says what each mark is), and last
    the labels beside the marks; returns the labels' texts."""
    conn, analysis = g.conn, g.analysis
    sender = conn.client if g.d == 0 else conn.server
    nick = analysis.chat.nick_of_conn.get(conn.id)
    who = f"{ROLE_NAMES[DIRECTIONS[g.d]]} {endpoint_text(sender)}"
    if nick:
        who += f" ({nick})" if g.d == 0 else f" to {nick}"
    ax.set_title(f"Time-sequence graph, connection {conn.id}: data sent by the {who}",
                 fontsize=10, loc="left", fontweight="bold")
    ax.set_xlabel("time since the connection's first packet (ms)")
    ax.set_ylabel("relative sequence number (bytes)")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # 600,000, not 0.6 and "1e6"
    ax.grid(True, color="#e5e7eb", lw=0.6)
    ax.set_axisbelow(True)
    ax.margins(x=0.04, y=0.06)
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        handles, labels = [Line2D([], [], color="none")], ["nothing sent in this direction"]
    fig.legend(handles, labels, loc="outside lower center", ncol=1 if len(handles) > 8 else 2,
               fontsize=7.5, frameon=False)
    return g.labels.place(fig, ax)


# --------------------------------------------------------------------------- helpers


def _window_scale(analysis, conn_id: int, d: int) -> int:
    """The shift of the peer's (the ACKing side's) windows: its SYN's window-scale
    option if both SYNs offered one (RFC 7323), else 0.  (From the whole connection:
    a time window may leave its SYNs out.)"""
    p, t = analysis.packets, analysis.tracking
    offered = []
    for side in (d, 1 - d):
        syns = np.flatnonzero((t.conn == conn_id) & (t.direction == side) & ((p.flags & SYN) != 0))
        offered.append(p.tcp_options(int(syns[0])).get("wscale") if len(syns) else None)
    if None in offered:
        return 0
    return int(offered[1])


@dataclass
class _Label:
    x: float  # the mark it belongs to, in data coordinates
    y: float
    text: str
    colour: str
    callout: str | None  # "above" or "below" the mark, with a line to it; None: a bar's chat text
    italic: bool


class _Labels:
    """Text beside marks, placed once everything is drawn, where it covers no other
    label and stays inside the graph: first the callouts (the frames of resends and
    events), then the bars' chat text.  A label with no room left is left out: the
    legend still counts its mark."""

    FONT = 7  # points
    CHAR = 0.55  # a character's mean width, in font sizes
    ABOVE = (6, 18, 30, 42)  # offsets (points) of a callout's baseline from its mark
    BELOW = (-16, -28, -40)

    def __init__(self) -> None:
        self.wanted: list[_Label] = []
        self.marks: list[tuple[float, float, float]] = []  # (x, low, high): bars no label may cover

    def keep_clear(self, x, low, high) -> None:
        """A bar (resend, SACK block) that labels must not cover."""
        self.marks.append((float(x), float(low), float(high)))

    def add(self, x, y, text: str, colour: str, callout: str | None = None, italic: bool = False) -> None:
        self.wanted.append(_Label(float(x), float(y), text, colour, callout, italic))

    def place(self, fig, ax) -> list[str]:
        """Draw the labels that fit; return their texts."""
        if not self.wanted:
            return []
        fig.draw_without_rendering()  # settle the layout: where each mark lands, in pixels
        px_per_pt = fig.dpi / 72
        taken = []
        for x, low, high in self.marks:
            (x0, y0), (_, y1) = ax.transData.transform([(x, low), (x, high)])
            taken.append((x0 - 4, y0 - 4, x0 + 4, y1 + 4))
        shown = []
        for label in sorted(self.wanted, key=lambda w: w.callout is None):
            mark_x, mark_y = ax.transData.transform((label.x, label.y))
            width = len(label.text) * self.FONT * self.CHAR * px_per_pt
            height = self.FONT * 1.3 * px_per_pt
            for dx, dy in self._spots(label, width / px_per_pt):
                box = (mark_x + dx * px_per_pt, mark_y + dy * px_per_pt)
                box = (box[0] - 2, box[1] - 2, box[0] + width + 2, box[1] + height + 2)
                if self._inside(box, ax.bbox) and not any(_overlap(box, other) for other in taken):
                    taken.append(box)
                    self._draw(ax, label, dx, dy)
                    shown.append(label.text)
                    break
        return shown

    def _spots(self, label: _Label, width_pt: float) -> list[tuple[float, float]]:
        """Where the label's lower-left corner may go, offset from its mark (points):
        right of it first, then left."""
        if label.callout is None:
            return [(4, 2), (4, -10), (-4 - width_pt, 2)]
        heights = self.ABOVE + self.BELOW if label.callout == "above" else self.BELOW + self.ABOVE
        return [(8, dy) for dy in heights] + [(-8 - width_pt, dy) for dy in heights]

    @staticmethod
    def _inside(box, bbox) -> bool:
        return box[0] >= bbox.x0 and box[2] <= bbox.x1 and box[1] >= bbox.y0 and box[3] <= bbox.y1

    def _draw(self, ax, label: _Label, dx: float, dy: float) -> None:
        line = {"arrowstyle": "-", "color": label.colour, "lw": 0.6} if label.callout else None
        ax.annotate(label.text, (label.x, label.y), xytext=(dx, dy), textcoords="offset points",
                    ha="left", va="bottom", fontsize=self.FONT, color=label.colour, zorder=7,
                    style="italic" if label.italic else "normal", arrowprops=line,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
