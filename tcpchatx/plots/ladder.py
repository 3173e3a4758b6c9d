"""The ladder (sequence) diagram: one lane per endpoint, one arrow per TCP segment.

Layout: the clients' lanes on the left (named by nickname when the chat layer knows
it), the server's lane on the right, time flowing down.  Rows are evenly spaced in
*packet order*, not true time, so a burst of segments within a microsecond stays
readable; each row's frame number and time are printed in the left margin.  Every
arrow is labelled with its flags, relative seq/ack and length above it, and below it
with the chat line it completed (or, for control segments, the step's name).  The
background bands show each packet's phase.  Server timeline events (nick set,
``/quit``, broadcast queued, ...) are placed beside the server lane at the position
their wall-clock time falls between the packets.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Patch

from ..analysis.labels import PHASES
from ..tcp_flags import ACK
from ._common import (
    EVENT_COLOUR,
    PHASE_COLOURS,
    RETRANSMISSION_COLOUR,
    SERVER_COLOUR,
    connection_colour,
    endpoint_text,
    find_connection,
    flag_words,
    shorten,
)

ROW_INCHES = 0.30  # vertical room per packet: a label above the arrow, chat text below
WIDTH_INCHES = 10.0
SERVER_GAP = 1.5  # distance from the last client lane to the server lane, in lane widths
GAP_SECONDS = 0.005  # a pause longer than this between two rows is marked in the margin
CHAT_CHARS = 44
CAPTION_CHAR_INCHES = 7 * 0.52 / 72  # the mean width of a 7 pt character  # longer chat lines are shortened (the full text is in lines_df())
EVENT_CHARS = 30  # per line of an event's label; a label takes at most two lines

#: Server timeline kinds shown by default (``sent`` and the rest would crowd the margin).
DEFAULT_EVENT_KINDS = ("accepted", "nick-set", "queued", "line-received", "left", "closing")

# Steps whose name says nothing the flags do not: no caption under their arrow.
_PLAIN_STEPS = {"ACK", "DATA"}


def _packet_rows(analysis, connections, time_window, max_packets):
    """Rows (packet indices) to draw, and how many matching rows were left out."""
    p, t = analysis.packets, analysis.tracking
    mask = t.conn >= 0
    if connections is not None:
        ids = [find_connection(analysis, c).id for c in connections]
        mask &= np.isin(t.conn, ids)
    if time_window is not None and len(p):
        start, end = time_window
        rel = p.time - p.time[0]
        mask &= (rel >= start) & (rel <= end)
    rows = np.flatnonzero(mask)
    if max_packets is not None and len(rows) > max_packets:
        return rows[:max_packets], len(rows) - max_packets
    return rows, 0


def _lanes(analysis, rows) -> list[dict]:
    """Client lanes in order of first appearance, then server lanes, for these rows."""
    t = analysis.tracking
    clients, servers = [], []
    for conn_id in dict.fromkeys(t.conn[rows].tolist()):
        conn = analysis.connections[conn_id]
        nick = analysis.chat.nick_of_conn.get(conn_id)
        if conn.client not in [lane["endpoint"] for lane in clients]:
            name = nick or "client"
            clients.append({"endpoint": conn.client, "role": "client", "nick": nick,
                            "label": f"{name}\n{endpoint_text(conn.client)}",
                            "colour": connection_colour(conn_id)})
        if conn.server not in [lane["endpoint"] for lane in servers]:
            servers.append({"endpoint": conn.server, "role": "server", "nick": None,
                            "label": f"server\n{endpoint_text(conn.server)}",
                            "colour": SERVER_COLOUR})
    return clients + servers


def _arrow_label(analysis, i: int) -> str:
    p, t = analysis.packets, analysis.tracking
    flags = int(p.flags[i])
    ack = f" ack={int(t.rel_ack[i])}" if flags & ACK else ""
    return f"{flag_words(flags)} seq={int(t.rel_seq[i])}{ack} len={int(p.payload_len[i])}"


def _caption(analysis, i: int, room: int) -> tuple[str, bool]:
    """Text under the arrow, at most ``room`` characters: the chat line(s) completed
    here, else the step's name.  Returns (text, is_chat)."""
    lines = analysis.lines_of_frame(int(analysis.packets.frame[i]))
    if lines:
        texts = [f'"{line.text}"' if line.text is not None else "(invalid line)" for line in lines]
        return shorten(" ".join(texts), min(CHAT_CHARS, room)), True
    step = analysis.step(i)
    if step is not None and step.name not in _PLAIN_STEPS:
        name = step.name
        if len(name) > room:  # "FIN+ACK (piggybacked ACK of the peer's FIN)" -> "FIN+ACK"
            name = name.split(" (")[0]
        return shorten(name, max(room, 8)), False
    return "", False


class _ServerClients:
    """Names for the server's client numbers (its own ids, not the analysis's connection
    ids), learnt from the timeline: ``accepted`` gives the address, ``nick-set`` the nick."""

    def __init__(self, events) -> None:
        self.peer: dict[int, tuple[str, int]] = {}
        self.nick: dict[int, str] = {}
        for event in events:
            client, kind = _field(event, "client"), _field(event, "kind")
            if kind == "accepted" and _field(event, "peer"):
                self.peer[client] = tuple(_field(event, "peer"))[:2]
            elif kind == "nick-set" and _field(event, "nick"):
                self.nick.setdefault(client, _field(event, "nick"))

    def name(self, client) -> str:
        if client in self.nick:
            return self.nick[client]
        if client in self.peer:
            return f":{self.peer[client][1]}"
        return f"client {client}"

    def concerns(self, event, endpoints: set) -> bool:
        """Is the event about one of ``endpoints`` (or about the whole server)?"""
        involved = [_field(event, "client"), *(_field(event, "recipients") or ())]
        involved = [c for c in involved if c is not None]
        if not involved:
            return True
        # A client whose address we never learnt might be shown: keep its events.
        return any(c not in self.peer or self.peer[c] in endpoints for c in involved)


def _event_label(event, clients: _ServerClients) -> str | None:
    """A short text for one server timeline event, or None to leave it out."""
    kind, detail = _field(event, "kind"), _field(event, "detail") or ""
    client = _field(event, "client")
    who = clients.name(client)
    if kind == "accepted":
        peer = clients.peer.get(client)
        return f"accept() {endpoint_text(peer) if peer else who}"
    if kind == "nick-set":
        peer = clients.peer.get(client)
        return f"nick set: {_field(event, 'nick')}" + (f" (:{peer[1]})" if peer else "")
    if kind == "queued":
        recipients = _field(event, "recipients") or ()
        if len(recipients) < 2 and not detail.startswith("chat:"):
            return None  # replies and notices to one client: not a broadcast
        return _two_lines(f"broadcast to {len(recipients)}: {detail.split(': ', 1)[-1]}")
    if kind == "line-received":
        return f"{who} sent {detail}" if detail.startswith("/") else None
    if kind == "left":
        return f"{who} left ({detail})"
    if kind == "closing":
        return f"server closes {who}: {detail}"
    return _two_lines(f"{kind} {who} {detail}".strip())


def _two_lines(label: str) -> str:
    """A label in at most two lines of EVENT_CHARS, broken between words (shortened with
    "…" only beyond that), so that the margin beside the server lane holds it whole."""
    lines = textwrap.wrap(label, EVENT_CHARS, break_long_words=False, break_on_hyphens=False)
    if len(lines) <= 2:
        return "\n".join(lines)
    return lines[0] + "\n" + shorten(" ".join(lines[1:]), EVENT_CHARS)


def _field(event, name):
    return event.get(name) if isinstance(event, dict) else getattr(event, name, None)


def _phase_bands(ax, phases: Sequence[str]) -> list[str]:
    """Shade runs of equal phase; return the phases shown, in order of appearance."""
    seen: list[str] = []
    start = 0
    for row in range(1, len(phases) + 1):
        if row == len(phases) or phases[row] != phases[start]:
            phase = phases[start]
            ax.axhspan(start - 0.5, row - 0.5, color=PHASE_COLOURS.get(phase, "white"),
                       zorder=0, linewidth=0)
            if phase not in seen:
                seen.append(phase)
            start = row
    return seen


def ladder(
    analysis,
    connections: Iterable | None = None,
    time_window: tuple[float, float] | None = None,
    max_packets: int | None = 60,
    events: Iterable | None = None,
    event_kinds: Iterable[str] = DEFAULT_EVENT_KINDS,
) -> Figure:
    """A ladder diagram of the capture's TCP segments.

    ``connections``: ids (or Connection objects) to show, default all.
    ``time_window``: (start, end) in seconds since the capture's first packet.
    ``max_packets``: draw at most this many segments (None: all of them).
    ``events``: the server's ``timeline_events()`` (or their ``as_dict()``s), shown
    beside the server lane; ``event_kinds`` picks which kinds.
    """
    p, t = analysis.packets, analysis.tracking
    rows, hidden = _packet_rows(analysis, connections, time_window, max_packets)
    n = len(rows)
    lanes = _lanes(analysis, rows)
    # The server lane stands a little apart: the labels of the nearest client's arrows
    # then fit between the two lanes.
    lane_x, x = {}, 0.0
    for k, lane in enumerate(lanes):
        if k and lane["role"] == "server" and lanes[k - 1]["role"] == "client":
            x += SERVER_GAP - 1.0
        lane_x[lane["endpoint"]] = x
        x += 1.0
    server_x = max((lane_x[lane["endpoint"]] for lane in lanes if lane["role"] == "server"),
                   default=0.0)

    # Which events fall inside the rows shown, and where (y between the packets).
    times = p.time[rows] if n else np.zeros(0)
    kinds = set(event_kinds)
    placed: list[tuple[float, str]] = []
    if events is not None and n:
        events = list(events)
        clients = _ServerClients(events)
        endpoints = {lane["endpoint"] for lane in lanes}
        for event in events:
            wall = _field(event, "wall")
            if _field(event, "kind") not in kinds or not clients.concerns(event, endpoints):
                continue
            label = _event_label(event, clients)
            if label is None or wall is None or not times[0] <= wall <= times[-1]:
                continue
            placed.append((float(np.interp(wall, times, np.arange(n))), label))
        placed.sort()
    event_room = 2.0 if placed else 0.35  # lane widths to the right of the server lane

    height = 1.3 + max(n, 3) * ROW_INCHES + 0.6
    fig = Figure(figsize=(WIDTH_INCHES, height))
    ax = fig.subplots()
    fig.subplots_adjust(left=1.45 / WIDTH_INCHES, right=1 - 0.15 / WIDTH_INCHES,
                        top=1 - 0.95 / height, bottom=0.55 / height)
    ax.set_xlim(-0.45, server_x + event_room)
    inches_per_x = (WIDTH_INCHES - 1.6) / (server_x + event_room + 0.45)
    ax.set_ylim(max(n, 1) - 0.5, -0.6)  # inverted: time flows down
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_xticks([])

    phases_shown = _phase_bands(ax, analysis.phase[rows].tolist())

    # Lanes: a vertical line and a header each.
    for lane in lanes:
        x = lane_x[lane["endpoint"]]
        ax.plot([x, x], [-0.5, max(n, 1) - 0.5], color="#9ca3af", lw=1.2, zorder=1)
        ax.annotate(lane["label"], (x, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 6), textcoords="offset points", ha="center", va="bottom",
                    fontsize=9, fontweight="bold", color=lane["colour"], annotation_clip=False, gid="lane",
                    bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": lane["colour"]})

    # One arrow per segment.
    t0 = float(p.time[0]) if len(p) else 0.0
    for row, i in enumerate(rows.tolist()):
        conn = int(t.conn[i])
        src = (p.addresses[p.src[i]], int(p.sport[i]))
        dst = (p.addresses[p.dst[i]], int(p.dport[i]))
        x0, x1 = lane_x[src], lane_x[dst]
        step = analysis.step(i)
        retransmission = step is not None and "retransmission" in step.name
        colour = RETRANSMISSION_COLOUR if retransmission else connection_colour(conn)
        is_data = int(p.payload_len[i]) > 0
        ax.add_patch(FancyArrowPatch(
            (x0, row), (x1, row), arrowstyle="-|>", mutation_scale=11, shrinkA=1, shrinkB=1,
            lw=2.0 if is_data else 1.1, color=colour, zorder=3,
            linestyle="--" if analysis.phase[i] == "reset" else "-", gid=f"frame:{int(p.frame[i])}",
        ))
        middle = (x0 + x1) / 2
        ax.text(middle, row - 0.07, _arrow_label(analysis, i), ha="center", va="bottom",
                fontsize=7, family="monospace", color="#111827", zorder=4,
                bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.75})
        caption, is_chat = _caption(analysis, i, int(abs(x1 - x0) * inches_per_x / CAPTION_CHAR_INCHES))
        if caption:
            ax.text(middle, row + 0.07, caption, ha="center", va="top", fontsize=7,
                    style="italic" if is_chat else "normal",
                    color=colour if is_chat else "#4b5563", zorder=4,
                    bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.75})

    # Pauses: a dotted line and the length of the pause, so the even rows do not hide them.
    for row in range(1, n):
        pause = float(times[row] - times[row - 1])
        if pause > GAP_SECONDS:
            ax.axhline(row - 0.5, color="#6b7280", lw=0.7, ls=(0, (1, 2)), zorder=1)
            ax.annotate(f"+{pause * 1000:.1f} ms", (0, row - 0.5), xycoords=("axes fraction", "data"),
                        xytext=(-4, 0), textcoords="offset points", ha="right", va="center",
                        fontsize=6, color="#6b7280", annotation_clip=False)

    # Frame and time in the left margin.
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{int(p.frame[i]):>4}  {float(p.time[i]) - t0:9.6f}" for i in rows],
                       family="monospace", fontsize=7)
    ax.tick_params(axis="y", length=0)
    ax.annotate("frame  time (s)", (0, 1), xycoords="axes fraction", xytext=(-4, 6),
                textcoords="offset points", ha="right", va="bottom", fontsize=7.5,
                family="monospace", fontweight="bold", annotation_clip=False)

    # Server events beside the server lane; pushed apart so they never overlap.
    event_ys = []
    last, last_lines = -np.inf, 1
    for y, label in placed:
        lines = label.count("\n") + 1
        y_text = max(y, last + 0.4 * (last_lines + lines))  # room for both labels' lines
        last, last_lines = y_text, lines
        event_ys.append(y_text)
        ax.plot([server_x], [y], marker="D", ms=4, color=EVENT_COLOUR, zorder=5)
        ax.plot([server_x, server_x + 0.1], [y, y_text], color=EVENT_COLOUR, lw=0.6, zorder=5)
        ax.text(server_x + 0.12, y_text, label, ha="left", va="center", fontsize=7, linespacing=1.1,
                color=EVENT_COLOUR, zorder=5)
    if placed and event_ys[-1] > n - 0.5:
        ax.set_ylim(event_ys[-1] + 0.6, -0.6)

    if n == 0:
        ax.text(0.5, 0.5, "no TCP segments match (check connections= and time_window=)",
                ha="center", va="center", transform=ax.transAxes, color="#6b7280")

    # Legend (phases) and what was left out, under the diagram.
    handles = [Patch(facecolor=PHASE_COLOURS[ph], edgecolor="#9ca3af", label=ph)
               for ph in phases_shown if ph in PHASE_COLOURS]
    if placed:
        handles.append(ax.plot([], [], marker="D", ls="", ms=4, color=EVENT_COLOUR,
                               label="server event")[0])
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                  fontsize=7.5, frameon=False, borderaxespad=0.2)
    title = f"{n} TCP segments" + (f" ({hidden} more not shown)" if hidden else "")
    fig.suptitle(f"Ladder diagram: {title}", x=0.01, y=1 - 0.12 / height, ha="left",
                 fontsize=10, fontweight="bold")

    fig.tcpchatx = {
        "kind": "ladder",
        "arrows": n,
        "frames": [int(f) for f in p.frame[rows]],
        "lanes": [lane["label"].replace("\n", " ") for lane in lanes],
        "endpoints": [lane["endpoint"] for lane in lanes],
        "hidden": hidden,
        "events": [label.replace("\n", " ") for _, label in placed],  # the words, not the layout
        "phases": phases_shown,
        "phase_meanings": {ph: PHASES[ph] for ph in phases_shown},
    }
    return fig
