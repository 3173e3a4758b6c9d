"""The socket-state timeline: what state the kernel kept each socket in, over time.

One row per socket (the client's socket and, under it, the server's accepted socket
of the same connection; the listening socket on top), one coloured span per state
with its name written in it.  Given the analysis of a capture taken at the same time,
the packets that move the states (SYN, SYN-ACK, the handshake ACK, FIN, ACK of FIN,
RST) are drawn between the two rows of their connection as small arrows from the
sending socket to the receiving one, so each state change sits beside its packet.

The x axis is, by default, *event order*: every transition and every such packet gets
an equal step, so a state that lasted 50 µs is as readable as one that lasted 5 s (the
ladder diagram does the same with rows).  The ticks give the real times.  Pass
``scale="time"`` for a linear time axis.  Transitions come from sampling
(:mod:`tcpchatx.sockstate`), so they are seen up to one sampling interval after the
packet that caused them.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

from ..analysis.states import SegmentKind
from ..sockstate import GONE, STATE_MEANINGS, SocketKey, role
from ._common import SERVER_COLOUR, connection_colour, endpoint_text, flag_words

#: Span colours: blues while opening, green when open, yellows for the side that closed
#: first (the active closer), oranges for the side that was closed on, purple TIME_WAIT.
STATE_COLOURS = {
    "LISTEN": "#e5e7eb",
    "SYN_SENT": "#bfdbfe", "SYN_RECV": "#93c5fd", "NEW_SYN_RECV": "#93c5fd",
    "ESTABLISHED": "#86efac",
    "FIN_WAIT1": "#fde68a", "FIN_WAIT2": "#facc15", "CLOSING": "#f9a8d4",
    "CLOSE_WAIT": "#fdba74", "LAST_ACK": "#fb923c",
    "TIME_WAIT": "#c4b5fd", "CLOSE": "#d1d5db",
}
#: Short names for spans too narrow for the full one.
ABBREVIATIONS = {
    "LISTEN": "LSN", "SYN_SENT": "SS", "SYN_RECV": "SR", "NEW_SYN_RECV": "SR",
    "ESTABLISHED": "EST", "FIN_WAIT1": "FW1", "FIN_WAIT2": "FW2", "CLOSING": "CLG",
    "CLOSE_WAIT": "CW", "LAST_ACK": "LA", "TIME_WAIT": "TW", "CLOSE": "CL",
}
#: Segment kinds that change a socket's state (drawn when an analysis is given).
MOVING_KINDS = {SegmentKind.SYN, SegmentKind.SYN_ACK, SegmentKind.FIN, SegmentKind.FIN_ACK, SegmentKind.FIN_AGAIN,
                SegmentKind.ACK_OF_FIN, SegmentKind.RST, SegmentKind.RST_ACK}

WIDTH_INCHES = 10.0
LEFT_INCHES = 2.0
TAIL_STEPS = 3  # events scale: room for the states still going when sampling stopped
PAIR_GAP = 1.5  # rows: client at y, its server socket at y + PAIR_GAP
BAR_HEIGHT = 0.62


def _normalise(transitions, ports):
    """(dict socket -> [(time, state)], ports, end time, sampling period) from a sampler,
    its transitions dict or its transitions_df()."""
    end = period = None
    if hasattr(transitions, "transitions") and hasattr(transitions, "ports"):  # a SocketStateSampler
        ports = ports or transitions.ports
        end, period = transitions.stopped, transitions.period
        transitions = transitions.transitions
    elif hasattr(transitions, "iterrows"):  # its transitions_df()
        table: dict[SocketKey, list[tuple[float, str]]] = {}
        for _, r in transitions.sort_values("time", kind="stable").iterrows():
            key = SocketKey((r["local"], int(r["local_port"])), (r["remote"], int(r["remote_port"])))
            table.setdefault(key, []).append((float(r["time"]), str(r["state"])))
        transitions = table
    transitions = {SocketKey(*key): list(changes) for key, changes in transitions.items() if changes}
    return transitions, ports, end, period


def _guess_ports(transitions, analysis) -> tuple[int, ...]:
    if analysis is not None and analysis.chat.server:
        return (analysis.chat.server[1],)
    listening = [k.local[1] for k, ch in transitions.items() if any(s == "LISTEN" for _, s in ch)]
    if listening:
        return tuple(dict.fromkeys(listening))
    counts: dict[int, int] = {}
    for k in transitions:
        for port in (k.local[1], k.remote[1]):
            counts[port] = counts.get(port, 0) + 1
    return (max(counts, key=counts.get),) if counts else ()


def _rows(transitions, ports, analysis) -> list[dict]:
    """Rows top to bottom: listeners, then each connection's client and server socket."""
    conn_of = {}
    if analysis is not None:
        for c in analysis.connections:
            conn_of[SocketKey(c.client, c.server)] = (c.id, "client")
            conn_of[SocketKey(c.server, c.client)] = (c.id, "server")
    first_seen = {key: changes[0][0] for key, changes in transitions.items()}
    listeners = [k for k in transitions if role(k, ports) == "listener"]
    clients = sorted((k for k in transitions if role(k, ports) == "client"), key=first_seen.get)
    servers = [k for k in transitions if role(k, ports) == "server"]
    ordered: list[tuple[SocketKey, str]] = [(k, "listener") for k in listeners]
    for k in clients:
        ordered.append((k, "client"))
        peer = SocketKey(k.remote, k.local)
        if peer in transitions:
            ordered.append((peer, "server"))
    placed = {k for k, _ in ordered}
    ordered += [(k, "server") for k in sorted(servers, key=first_seen.get) if k not in placed]

    rows, y = [], 0.0
    for n, (key, kind) in enumerate(ordered):
        conn_id = conn_of.get(key, (None, None))[0]
        nick = analysis.chat.nick_of_conn.get(conn_id) if analysis is not None and conn_id is not None else None
        if kind == "listener":
            label, colour = f"server listening :{key.local[1]}", SERVER_COLOUR
        elif kind == "client":
            label = f"client {nick + ' ' if nick else ''}:{key.local[1]}"
            colour = connection_colour(conn_id) if conn_id is not None else "#374151"
        else:
            label = f"server :{key.local[1]}→{key.remote[1]}"
            colour = SERVER_COLOUR
        if n:  # a server socket sits close under its client; a new pair starts further down
            paired = kind == "server" and ordered[n - 1][0] == SocketKey(key.remote, key.local)
            y += PAIR_GAP if paired else PAIR_GAP + 0.9
        rows.append({"key": key, "kind": kind, "label": label, "colour": colour, "y": y,
                     "conn": conn_id, "endpoint": endpoint_text(key.local)})
    return rows


def _spans(changes, end) -> list[tuple[float, float, str]]:
    spans = []
    for k, (start, state) in enumerate(changes):
        stop = changes[k + 1][0] if k + 1 < len(changes) else end
        if state != GONE and stop > start:
            spans.append((start, stop, state))
    return spans


def _moving_packets(analysis, rows) -> list[dict]:
    """Packets that move a socket's state, for the connections that have rows."""
    if analysis is None:
        return []
    p, t = analysis.packets, analysis.tracking
    by_conn: dict[int, dict[str, float]] = {}
    for r in rows:
        if r["conn"] is not None:
            by_conn.setdefault(r["conn"], {})[r["kind"]] = r["y"]
    out = []
    for i in np.flatnonzero(np.isin(t.conn, list(by_conn))).tolist():
        step = analysis.step(i)
        kind = int(t.kind[i])
        if kind not in MOVING_KINDS and not (step is not None and step.name == "ACK (handshake)"):
            continue
        ys = by_conn[int(t.conn[i])]
        if "client" not in ys or "server" not in ys:
            continue
        sender = "client" if int(t.direction[i]) == 0 else "server"
        receiver = "server" if sender == "client" else "client"
        out.append({"time": float(p.time[i]), "frame": int(p.frame[i]), "flags": flag_words(int(p.flags[i])),
                    "y_from": ys[sender], "y_to": ys[receiver], "conn": int(t.conn[i])})
    return out


def socket_states(transitions, analysis=None, ports=None, scale: str = "events") -> Figure:
    """Socket-state timeline.

    ``transitions``: a :class:`~tcpchatx.sockstate.SocketStateSampler`, its
    ``transitions`` dict or its ``transitions_df()``.  ``analysis``: the capture taken at
    the same time (names the clients, adds the packets).  ``ports``: the server's
    port(s), to tell client sockets from server sockets (default: from the sampler or
    the analysis).  ``scale``: ``"events"`` (event order) or ``"time"`` (linear).
    """
    if scale not in ("events", "time"):
        raise ValueError(f"scale must be 'events' or 'time', not {scale!r}")
    transitions, ports, end, period = _normalise(transitions, ports)
    ports = tuple(ports) if ports else _guess_ports(transitions, analysis)
    rows = _rows(transitions, ports, analysis)
    packets = _moving_packets(analysis, rows)

    times = [w for changes in transitions.values() for w, _ in changes] + [pk["time"] for pk in packets]
    t0 = min(times, default=0.0)
    last = max(times, default=t0)
    if end is None or end <= last:  # no stop time known: give the last states some room
        end = last + max(0.1 * (last - t0), 1e-3)
    if scale == "events":
        # Every event one step; the last states (still going when sampling stopped) 3 steps.
        breaks = np.unique(np.array(times, dtype=float))
        positions = np.arange(len(breaks), dtype=float)
        breaks, positions = np.r_[breaks, end], np.r_[positions, len(breaks) - 1 + TAIL_STEPS]

        def x_of(wall):
            return np.interp(wall, breaks, positions)
    else:
        def x_of(wall):
            return (np.asarray(wall, dtype=float) - t0) * 1000.0
    x_end = float(x_of(end))
    x_pad = 0.6 if scale == "events" else 0.02 * max(x_end, 1e-3)

    y_max = rows[-1]["y"] if rows else 0.0
    height = 1.6 + 0.55 * (y_max + 1)
    fig = Figure(figsize=(WIDTH_INCHES, height))
    ax = fig.subplots()
    fig.subplots_adjust(left=LEFT_INCHES / WIDTH_INCHES, right=1 - 0.2 / WIDTH_INCHES,
                        top=1 - 0.55 / height, bottom=1.05 / height)
    ax.set_xlim(-x_pad, x_end + x_pad)
    ax.set_ylim(y_max + 0.6, -0.6)
    inches_per_x = (WIDTH_INCHES - LEFT_INCHES - 0.2) / (x_end + 2 * x_pad)

    drawn = []
    for r in rows:
        for start, stop, state in _spans(transitions[r["key"]], end):
            x0, x1 = float(x_of(start)), float(x_of(stop))
            rect = Rectangle((x0, r["y"] - BAR_HEIGHT / 2), x1 - x0, BAR_HEIGHT,
                             facecolor=STATE_COLOURS.get(state, "#f3f4f6"), edgecolor="white",
                             lw=1.0, zorder=2, gid=f"span:{state}")
            ax.add_patch(rect)
            width_in = (x1 - x0) * inches_per_x
            for text, size in ((state, 7.5), (ABBREVIATIONS.get(state, state), 7)):
                if len(text) * size * 0.62 / 72 < width_in - 0.04:
                    ax.text((x0 + x1) / 2, r["y"], text, ha="center", va="center", fontsize=size,
                            fontweight="bold" if state == "TIME_WAIT" else "normal",
                            color="#111827", zorder=3, clip_on=True)
                    break
            drawn.append({"socket": r["label"], "state": state, "start": start, "end": stop})

    # Packets between the two rows of their connection: sender -> receiver.  A label is
    # left out when it would overlap the previous one of the same connection.
    label_end: dict[int, float] = {}
    for pk in sorted(packets, key=lambda pk: pk["time"]):
        x = float(x_of(pk["time"]))
        down = pk["y_to"] > pk["y_from"]
        y_from = pk["y_from"] + (BAR_HEIGHT / 2 if down else -BAR_HEIGHT / 2)
        y_to = pk["y_to"] + (-BAR_HEIGHT / 2 if down else BAR_HEIGHT / 2)
        ax.add_patch(FancyArrowPatch((x, y_from), (x, y_to), arrowstyle="-|>", mutation_scale=7,
                                     lw=0.9, color=connection_colour(pk["conn"]), zorder=4,
                                     shrinkA=0, shrinkB=0, gid=f"packet:{pk['frame']}"))
        label = f" {pk['flags']} #{pk['frame']}"
        x_in = x * inches_per_x
        if x_in > label_end.get(pk["conn"], -np.inf):
            rotated = scale == "events"
            ax.text(x, (y_from + y_to) / 2, label, ha="left", va="center", fontsize=5.5,
                    color="#374151", zorder=4, rotation=90 if rotated else 0)
            label_end[pk["conn"]] = x_in + (0.1 if rotated else len(label) * 5.5 * 0.6 / 72)
        for y in (pk["y_from"], pk["y_to"]):  # a thin mark across both bars, too
            ax.plot([x, x], [y - BAR_HEIGHT / 2, y + BAR_HEIGHT / 2], color="#111827",
                    lw=0.6, alpha=0.5, zorder=3)

    ax.set_yticks([r["y"] for r in rows])
    ax.set_yticklabels([r["label"] for r in rows], fontsize=8.5)
    for label, r in zip(ax.get_yticklabels(), rows):
        label.set_color(r["colour"])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)

    if scale == "events":
        marks = sorted({float(w) for ch in transitions.values() for w, _ in ch})
        ax.set_xticks([float(x_of(w)) for w in marks])
        ax.set_xticklabels([f"{(w - t0) * 1000:.1f}" for w in marks], fontsize=6, rotation=90)
        ax.set_xlabel("ms since the first event, at each state change seen (x: events in order, not to scale)",
                      fontsize=8)
    else:
        ax.set_xlabel("ms since the first event", fontsize=8)
    ax.grid(True, axis="x", color="#e5e7eb", lw=0.5)
    ax.set_axisbelow(True)

    states_shown = list(dict.fromkeys(d["state"] for d in drawn))
    order = list(STATE_COLOURS)
    states_shown.sort(key=lambda s: order.index(s) if s in order else len(order))
    fig.legend(handles=[Patch(facecolor=STATE_COLOURS.get(s, "#f3f4f6"), label=s) for s in states_shown],
               loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(states_shown), 7) or 1,
               fontsize=7.5, frameon=False)
    every = f" every {period * 1000:.1f} ms" if period else ""
    fig.suptitle(f"Kernel socket states (sampled from /proc/net/tcp{every}; a change is drawn "
                 "when it was seen)", x=0.01, y=1 - 0.12 / height,
                 ha="left", fontsize=10, fontweight="bold")

    fig.tcpchatx = {
        "kind": "socket_states",
        "rows": [r["label"] for r in rows],
        "spans": drawn,
        "packets": [pk["frame"] for pk in packets],
        "states": states_shown,
        "meanings": {s: STATE_MEANINGS.get(s, "") for s in states_shown},
        "scale": scale,
    }
    return fig
