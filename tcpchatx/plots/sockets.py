"""The socket-state timeline: what state each socket was in, over time.

One row per socket: the client's socket and, under it, the server's accepted socket of
the same connection (a listening socket, which only the kernel's samples show, on top).

**Spans from the packets.**  Given the analysis of a capture, a connection's two rows
are coloured by :mod:`tcpchatx.analysis.endpoint_states`: the RFC 793 state of each
end, changed *exactly at the packet that caused it*.  The packets are drawn between the
two rows, as arrows from the sender to the receiver labelled with their flags and frame
number, so the figure shows the changes in TCP's own order.

**Tags from the kernel.**  The states the kernel showed in ``/proc/net/tcp``
(:mod:`tcpchatx.sockstate`) are small tags beside the bars (``FW2`` = FIN_WAIT2), each at
its time stamp, with a thin line back to the sample before it.  Reading the table takes
milliseconds and the stamp is taken when the read *ends*, so the kernel showed that
state somewhere along the line.  A tag whose state was a span somewhere along its line
confirms the packets; one whose state was not is drawn in red and listed in
``fig.tcpchatx["disagreements"]``.  Sockets no packet shows (the listener), and every
socket when no analysis is given, get hatched spans made from the samples alone, each
state drawn from when it was first *seen*.

The x axis is, by default, *event order*: every packet and every sample gets an equal
step, so a state that lasted 50 µs is as readable as one that lasted 5 s (the ladder
diagram does the same with rows); the ticks give the real times.  Pass
``scale="time"`` for a linear time axis.  Every text is horizontal and at least 8 pt, so
it stays readable when a notebook shrinks the 10-inch figure to its column.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

from ..analysis.endpoint_states import CLIENT, SERVER, SIDES, endpoint_changes, fin_copies_not_taken
from ..sockstate import GONE, STATE_MEANINGS, SocketKey, role
from ._common import SERVER_COLOUR, connection_colour, flag_words

#: Span colours: blues while opening, green when open, yellows for the side that closed
#: first (the active closer), oranges for the side that was closed on, purple TIME_WAIT.
STATE_COLOURS = {
    "LISTEN": "#e5e7eb",
    "SYN_SENT": "#bfdbfe", "SYN_RECV": "#93c5fd", "NEW_SYN_RECV": "#93c5fd",
    "ESTABLISHED": "#86efac",
    "FIN_WAIT1": "#fde68a", "FIN_WAIT2": "#facc15", "CLOSING": "#f9a8d4",
    "CLOSE_WAIT": "#fdba74", "LAST_ACK": "#fb923c",
    "TIME_WAIT": "#c4b5fd", "CLOSE": "#d1d5db", "CLOSED": "#ffffff",
}
#: Short names: the kernel's tags, and spans too narrow for the full name.
ABBREVIATIONS = {
    "LISTEN": "LSN", "SYN_SENT": "SS", "SYN_RECV": "SR", "NEW_SYN_RECV": "SR",
    "ESTABLISHED": "EST", "FIN_WAIT1": "FW1", "FIN_WAIT2": "FW2", "CLOSING": "CLG",
    "CLOSE_WAIT": "CW", "LAST_ACK": "LA", "TIME_WAIT": "TW", "CLOSE": "CL", "CLOSED": "gone",
}
#: The kernel's other names for states the packets give.
SAME_STATE = {"CLOSE": GONE, "NEW_SYN_RECV": "SYN_RECV"}
DISAGREE_COLOUR = "#dc2626"
TAG_EDGE = "#374151"

# Sizes.  The y axis is in inches, so bars and lanes keep their size in any figure.
WIDTH_INCHES = 10.0
LEFT_INCHES = 2.0
RIGHT_INCHES = 0.25
BAR = 0.34  # a socket's bar
TAG_BAND = 0.34  # beside a bar: the kernel's tags
LANE = 0.21  # one line of packet labels, between a client's bar and its server's
MAX_LANES = 3
BLOCK_SPACE = 0.3  # between one connection (or the listener) and the next
TEXT_PT = 8.0  # ticks, legends, short names in spans: no text is smaller
LABEL_PT = 8.5  # packet labels and the kernel's tags
CHAR_INCHES = 0.62 / 72  # a character's width per point of font size (DejaVu Sans, roughly)
TAIL_STEPS = 3  # events scale: room for the states still going at the end
TITLE_SPACE = 0.72  # above the rows: the title and its second line
AXIS_SPACE = 0.62  # below the rows: tick labels and the x axis label
LEGEND_LINE = 0.22  # one line of a legend
STATE_COLUMNS, MARK_COLUMNS = 5, 2  # the legends' columns: colours, then the other marks


# --------------------------------------------------------------------------- what to draw

def _normalise(transitions, ports):
    """(dict socket -> [(time, state)], ports, first read's start, stop, period) from a
    sampler, its transitions dict, its transitions_df() or None (no samples); the
    times and the period are known only from a sampler."""
    started = stopped = period = None
    if transitions is None:
        return {}, ports, started, stopped, period
    if hasattr(transitions, "transitions") and hasattr(transitions, "ports"):  # a SocketStateSampler
        ports = ports or transitions.ports
        started, stopped, period = transitions.started, transitions.stopped, transitions.period
        transitions = transitions.transitions
    elif hasattr(transitions, "iterrows"):  # its transitions_df()
        table: dict[SocketKey, list[tuple[float, str]]] = {}
        for _, r in transitions.sort_values("time", kind="stable").iterrows():
            key = SocketKey((r["local"], int(r["local_port"])), (r["remote"], int(r["remote_port"])))
            table.setdefault(key, []).append((float(r["time"]), str(r["state"])))
        transitions = table
    transitions = {SocketKey(*key): list(changes) for key, changes in transitions.items() if changes}
    return transitions, ports, started, stopped, period


def _guess_ports(sampled, analysis) -> tuple[int, ...]:
    if analysis is not None and analysis.chat.server:
        return (analysis.chat.server[1],)
    listening = [k.local[1] for k, ch in sampled.items() if any(s == "LISTEN" for _, s in ch)]
    if listening:
        return tuple(dict.fromkeys(listening))
    counts: dict[int, int] = {}
    for k in sampled:
        for port in (k.local[1], k.remote[1]):
            counts[port] = counts.get(port, 0) + 1
    return (max(counts, key=counts.get),) if counts else ()


def _row(key, kind, conn, label, colour) -> dict:
    return {"key": key, "kind": kind, "conn": conn, "label": label, "colour": colour}


def _blocks(sampled, ports, analysis) -> list[list[dict]]:
    """Rows in blocks, top to bottom: each listener; each connection of the analysis
    (its client's row, its server's row); then sampled sockets no packet shows."""
    nicks = analysis.chat.nick_of_conn if analysis is not None else {}
    first_seen = {key: changes[0][0] for key, changes in sampled.items()}
    blocks = [[_row(k, "listener", None, f"server listening :{k.local[1]}", SERVER_COLOUR)]
              for k in sampled if role(k, ports) == "listener"]
    placed = {k for k in sampled if role(k, ports) == "listener"}
    for c in (sorted(analysis.connections, key=lambda c: c.start) if analysis is not None else []):
        nick = nicks.get(c.id)
        client, server = SocketKey(c.client, c.server), SocketKey(c.server, c.client)
        blocks.append([_row(client, CLIENT, c.id, f"client {nick + ' ' if nick else ''}:{c.client[1]}",
                            connection_colour(c.id)),
                       _row(server, SERVER, c.id, f"server :{c.server[1]}→{c.client[1]}", SERVER_COLOUR)])
        placed |= {client, server}
    for key in sorted(sampled, key=first_seen.get):
        if key in placed:
            continue
        peer = SocketKey(key.remote, key.local)
        client, server = (key, peer) if role(key, ports) == "client" else (peer, key)
        block = []  # the pair, or whichever of the two was sampled (and is not drawn yet)
        if client in sampled and client not in placed:
            block.append(_row(client, CLIENT, None, f"client :{client.local[1]}", "#374151"))
        if server in sampled and server not in placed:
            block.append(_row(server, SERVER, None, f"server :{server.local[1]}→{server.remote[1]}", SERVER_COLOUR))
        blocks.append(block)
        placed |= {key, peer}
    return blocks


def _derived(analysis, rows) -> tuple[list, dict[SocketKey, list[tuple[float, str, int]]]]:
    """The endpoint changes of the connections drawn, and each row's ``[(time, state, frame)]``."""
    conns = sorted({r["conn"] for r in rows if r["conn"] is not None})
    if analysis is None or not conns:
        return [], {}
    changes = endpoint_changes(analysis, conns)
    key_of = {(r["conn"], r["kind"]): r["key"] for r in rows if r["conn"] is not None}
    timelines: dict[SocketKey, list[tuple[float, str, int]]] = {key: [] for key in key_of.values()}
    for ch in changes:
        timelines[key_of[(ch.conn, ch.side)]].append((ch.time, str(ch.state), ch.frame))
    return changes, timelines


def _spans(rows, timelines, sampled, end) -> list[dict]:
    """Each row's states as spans: from the packets where there are any, else from the
    samples.  CLOSED (no socket) gets no span."""
    spans = []
    for r in rows:
        from_packets = r["key"] in timelines
        changes = timelines[r["key"]] if from_packets else [(w, s, None) for w, s in sampled.get(r["key"], [])]
        for k, (start, state, frame) in enumerate(changes):
            stop = changes[k + 1][0] if k + 1 < len(changes) else end
            if state not in (GONE, "CLOSE") and stop >= start:
                spans.append({"socket": r["label"], "y": r["y"], "state": state, "start": start, "end": stop,
                              "frame": frame, "source": "packets" if from_packets else "samples"})
    return spans


def _states_between(timeline, since: float, until: float) -> set[str]:
    """The states a derived timeline held at some moment in ``(since, until]``."""
    held = {GONE} if not timeline or timeline[0][0] > since else set()  # before its first packet: no socket
    for k, (start, state, _) in enumerate(timeline):
        stop = timeline[k + 1][0] if k + 1 < len(timeline) else np.inf
        if start <= until and stop > since:
            held.add(state)
    return held


def _samples(sampled, timelines, started) -> list[dict]:
    """Every sample, the window its read fell in, and whether the packets agree with it.

    A sample stamped ``t`` was read after the sample before it (of any socket) was
    stamped, so the kernel showed its state somewhere in ``(previous stamp, t]``.  It
    agrees when the packets put the socket in that state somewhere in that window.
    """
    stamps = sorted({w for changes in sampled.values() for w, _ in changes})
    previous = dict(zip(stamps, [started, *stamps[:-1]]))
    out = []
    for key, changes in sampled.items():
        for wall, state in changes:
            since = previous[wall]
            agrees = None  # no packets for this socket: nothing to compare with
            if key in timelines:
                held = _states_between(timelines[key], -np.inf if since is None else since, wall)
                agrees = SAME_STATE.get(state, state) in held
            out.append({"key": key, "time": wall, "since": since, "state": state, "agrees": agrees})
    return sorted(out, key=lambda s: s["time"])


def _packets(analysis, changes) -> list[dict]:
    """The packets that changed a state, and the FIN copies a receiver ignored."""
    if not changes:
        return []
    p, t = analysis.packets, analysis.tracking
    ignored = set(fin_copies_not_taken(analysis, sorted({ch.conn for ch in changes})))
    out = []
    for i in sorted({ch.row for ch in changes} | ignored):
        direction = int(t.direction[i])
        out.append({"row": i, "time": float(p.time[i]), "frame": int(p.frame[i]), "conn": int(t.conn[i]),
                    "from": SIDES[direction], "to": SIDES[1 - direction], "taken": i not in ignored,
                    "label": f"{flag_words(int(p.flags[i]))} #{int(p.frame[i])}"})
    return out


# --------------------------------------------------------------------------- where to draw it

def _text_inches(text: str, size: float = TEXT_PT) -> float:
    return len(text) * size * CHAR_INCHES


def _x_axis(times, t0: float, end: float, scale: str):
    """``x_of(wall time)``: the event's step (events scale) or its ms since ``t0`` (time scale)."""
    if scale == "time":
        return lambda wall: (float(wall) - t0) * 1000.0
    breaks = np.unique(np.array(times, dtype=float))
    positions = np.arange(len(breaks), dtype=float)
    breaks, positions = np.r_[breaks, end], np.r_[positions, len(breaks) - 1 + TAIL_STEPS]
    return lambda wall: float(np.interp(wall, breaks, positions))


def _place_labels(packets, x_inches) -> int:
    """Give each packet's label a lane (``pk["lane"]``; None when it would touch another
    label in every lane, even as ``#frame`` alone); return the number of lanes used."""
    lane_ends: dict[int, list[float]] = {}  # per connection: where each lane's last label ends
    used = 0
    for pk in sorted(packets, key=lambda pk: pk["time"]):
        x = x_inches(pk["time"])
        ends = lane_ends.setdefault(pk["conn"], [-np.inf] * MAX_LANES)
        pk["lane"], pk["text"] = None, ""
        for text in (pk["label"], f"#{pk['frame']}"):
            free = [n for n in range(MAX_LANES) if ends[n] < x]
            width = 0.05 + _text_inches(text, LABEL_PT) + 0.1
            if free:
                pk["lane"], pk["text"] = free[0], text
                ends[free[0]] = x + width
                used = max(used, free[0] + 1)
                break
    return used


def _layout(blocks, lanes: int) -> float:
    """Each row's ``y`` (its bar's centre, inches from the top) and ``tags`` ("above" or
    "below" its bar); return the height of all the rows."""
    band = max(lanes, 1) * LANE + 0.2  # a client's bar, the packets, its server's bar
    y = 0.0
    for n, block in enumerate(blocks):
        y += BLOCK_SPACE if n else 0.0
        if len(block) == 2:  # tags outside the pair: above the client, below the server
            client, server = block
            client["y"], client["tags"] = y + TAG_BAND + BAR / 2, "above"
            server["y"], server["tags"] = client["y"] + BAR + band, "below"
            y = server["y"] + BAR / 2 + TAG_BAND
        else:
            (row,) = block
            row["y"], row["tags"] = y + BAR / 2, "below"
            y = row["y"] + BAR / 2 + TAG_BAND
    return y


def _ms(milliseconds: float) -> str:
    """Enough decimals to tell a handshake's microseconds apart, and no more."""
    size = abs(milliseconds)
    decimals = 3 if size < 1 else 2 if size < 1000 else 1 if size < 10_000 else 0
    return f"{milliseconds:.{decimals}f}"


# --------------------------------------------------------------------------- drawing

def _draw_spans(ax, spans, x_of, inches_per_x) -> None:
    """Coloured spans (hatched when from samples), each named when its name fits."""
    for span in spans:
        state, y, from_packets = span["state"], span["y"], span["source"] == "packets"
        x0, x1 = x_of(span["start"]), x_of(span["end"])
        ax.add_patch(Rectangle((x0, y - BAR / 2), x1 - x0, BAR, facecolor=STATE_COLOURS.get(state, "#f3f4f6"),
                               edgecolor="white" if from_packets else "#9ca3af", lw=1.0,
                               hatch=None if from_packets else "////", zorder=2, gid=f"span:{state}"))
        width = (x1 - x0) * inches_per_x
        for text, size in ((state, 8.5), (ABBREVIATIONS.get(state, state), TEXT_PT)):
            if _text_inches(text, size) < width - 0.06:
                ax.text((x0 + x1) / 2, y, text, ha="center", va="center", fontsize=size, color="#111827",
                        fontweight="bold" if state == "TIME_WAIT" else "normal", zorder=3,
                        bbox=None if from_packets else {"boxstyle": "square,pad=0.1", "fc": "white",
                                                         "ec": "none", "alpha": 0.8})
                break


def _draw_packets(ax, packets, rows, x_of, inches_per_x) -> None:
    """Each packet that changed a state: an arrow from the sender's bar to the receiver's,
    its label in its lane beside it; a FIN the receiver ignored is dashed."""
    y_of = {(r["conn"], r["kind"]): r["y"] for r in rows}
    for pk in packets:
        x = x_of(pk["time"])
        y_from, y_to = y_of[(pk["conn"], pk["from"])], y_of[(pk["conn"], pk["to"])]
        down = 1 if y_to > y_from else -1
        top = min(y_from, y_to) + BAR / 2
        start, stop = y_from + down * BAR / 2, y_to - down * BAR / 2
        colour = connection_colour(pk["conn"])
        if pk["taken"]:
            ax.add_patch(FancyArrowPatch((x, start), (x, stop), arrowstyle="-|>", mutation_scale=9, lw=1.1,
                                         shrinkA=0, shrinkB=0, color=colour, zorder=4, gid=f"packet:{pk['frame']}"))
        else:  # the receiver's TCP never took it: dashed, and it stops short with a cross
            stop -= down * 0.1
            ax.add_patch(FancyArrowPatch((x, start), (x, stop), arrowstyle="-", lw=1.1, linestyle=(0, (3, 2)),
                                         shrinkA=0, shrinkB=0, color=colour, zorder=4, gid=f"packet:{pk['frame']}"))
            ax.plot([x], [stop], marker="x", markersize=7, markeredgewidth=1.6, color=colour, zorder=4)
        if pk["lane"] is not None:
            ax.text(x + 0.05 / inches_per_x, top + 0.1 + LANE * (pk["lane"] + 0.5), pk["text"], ha="left",
                    va="center", fontsize=LABEL_PT, color="#111827", zorder=5, gid=f"label:{pk['frame']}",
                    bbox={"boxstyle": "square,pad=0.08", "fc": "white", "ec": "none", "alpha": 0.9})


def _draw_change_marks(ax, rows, timelines, x_of) -> None:
    """A dark line across a bar where a packet changed its state."""
    for r in rows:
        for start, _, _ in timelines.get(r["key"], []):
            ax.plot([x_of(start)] * 2, [r["y"] - BAR / 2, r["y"] + BAR / 2], color="#111827", lw=1.2, zorder=3)


def _draw_samples(ax, rows, samples, x_of, inches_per_x) -> list[dict]:
    """The kernel's samples: a tag at each stamp, a line back to where its read began
    (none for the first sample, whose read began at an unknown time)."""
    row_of = {r["key"]: r for r in rows}
    tag_end: dict[SocketKey, float] = {}
    shown = []
    for s in samples:
        r = row_of.get(s["key"])
        if r is None:
            continue
        y = r["y"] - BAR / 2 - TAG_BAND / 2 if r["tags"] == "above" else r["y"] + BAR / 2 + TAG_BAND / 2
        x = x_of(s["time"])
        if s["since"] is not None:
            x_since = x_of(s["since"])
            ax.plot([x_since, x], [y, y], color="#6b7280", lw=1.0, zorder=3, solid_capstyle="butt")
            ax.plot([x_since], [y], marker="|", markersize=7, color="#6b7280", zorder=3)
        wrong = s["agrees"] is False
        text = ABBREVIATIONS.get(s["state"], s["state"]) + ("?" if wrong else "")
        half = (_text_inches(text, LABEL_PT) + 0.12) / 2 / inches_per_x
        if x - half > tag_end.get(r["key"], -np.inf):
            ax.text(x, y, text, ha="center", va="center", fontsize=LABEL_PT, zorder=6, gid=f"sample:{s['state']}",
                    color=DISAGREE_COLOUR if wrong else "#111827", fontweight="bold" if wrong else "normal",
                    bbox={"boxstyle": "round,pad=0.2", "fc": STATE_COLOURS.get(s["state"], "#f3f4f6"),
                          "ec": DISAGREE_COLOUR if wrong else TAG_EDGE, "lw": 1.8 if wrong else 0.8})
            tag_end[r["key"]] = x + half
        else:  # no room for its name: a marker in its colour
            ax.plot([x], [y], marker="D", markersize=6, zorder=6, gid=f"sample:{s['state']}",
                    markerfacecolor=STATE_COLOURS.get(s["state"], "#f3f4f6"),
                    markeredgecolor=DISAGREE_COLOUR if wrong else TAG_EDGE)
        shown.append({"socket": r["label"], "state": s["state"], "time": s["time"], "since": s["since"],
                      "agrees": s["agrees"]})
    return shown


def _draw_row_labels(ax, rows) -> None:
    ax.set_yticks([r["y"] for r in rows])
    ax.set_yticklabels([r["label"] for r in rows], fontsize=9)
    for label, r in zip(ax.get_yticklabels(), rows):
        label.set_color(r["colour"])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _draw_ticks(ax, times, t0, x_of, inches_per_x, scale, since: str) -> None:
    """Ticks at every event; a label (ms) wherever it neither touches nor repeats the one before."""
    marks = sorted(set(times))
    ax.set_xticks([x_of(w) for w in marks])
    labels, last_end, last_text = [], -np.inf, None
    for w in marks:
        text = _ms((w - t0) * 1000)
        x_in = x_of(w) * inches_per_x
        half = _text_inches(text) / 2
        if x_in - half > last_end + 0.08 and text != last_text:
            labels.append(text)
            last_end, last_text = x_in + half, text
        else:
            labels.append("")
    ax.set_xticklabels(labels, fontsize=TEXT_PT)
    what = "x: events in order, not to scale" if scale == "events" else "x: to scale"
    ax.set_xlabel(f"ms since the first {since} ({what}; a tick at every packet and sample)", fontsize=8.5)
    ax.grid(True, axis="x", color="#eef0f3", lw=0.6)
    ax.set_axisbelow(True)


def _states_shown(spans, samples, changes) -> list[str]:
    """Every state drawn (a span or a tag), in STATE_COLOURS' order; CLOSED if a socket closed."""
    states = {d["state"] for d in spans} | {s["state"] for s in samples}
    if any(ch.state == GONE for ch in changes):
        states.add(GONE)
    order = list(STATE_COLOURS)
    return sorted(states, key=lambda s: order.index(s) if s in order else len(order))


def _legend_handles(states, spans, samples, packets) -> tuple[list, list]:
    """The states' colours, and what the other marks mean (only those drawn)."""
    colours = [Patch(facecolor=STATE_COLOURS.get(s, "#f3f4f6"), edgecolor="#9ca3af",
                     label="CLOSED (gone): no socket" if s == GONE else f"{s} ({ABBREVIATIONS.get(s, s)})")
               for s in states]
    marks = []
    if samples:
        marks.append(Line2D([], [], color="#6b7280", marker="s", markersize=8, markerfacecolor="#f3f4f6",
                            markeredgecolor=TAG_EDGE, label="kernel sample: read somewhere on its line, stamped at the tag"))
    if any(s["agrees"] is False for s in samples):
        marks.append(Line2D([], [], color="none", marker="s", markersize=8, markerfacecolor="#f3f4f6",
                            markeredgecolor=DISAGREE_COLOUR, markeredgewidth=1.8,
                            label="red, with ?: a sample the packets do not explain"))
    if any(d["source"] == "samples" for d in spans):
        marks.append(Patch(facecolor="white", edgecolor="#9ca3af", hatch="////",
                           label="hatched: from the samples alone (drawn when seen)"))
    if any(not pk["taken"] for pk in packets):
        marks.append(Line2D([0, 1], [0, 0], color="#374151", linestyle=(0, (3, 2)), marker="x", markevery=[1],
                            label="dashed, ×: a FIN the receiver ignored (it took a later copy)"))
    return colours, marks


def _draw_legends(fig, colours, marks, height) -> None:
    """The colours above, the other marks below, at the bottom of the figure."""
    if marks:
        fig.legend(handles=marks, loc="lower center", bbox_to_anchor=(0.5, 0.04 / height), ncol=MARK_COLUMNS,
                   fontsize=TEXT_PT, frameon=False, handlelength=2.2, columnspacing=2.0, borderpad=0.2)
    if colours:
        above_marks = 0.08 + -(-len(marks) // MARK_COLUMNS) * LEGEND_LINE
        fig.legend(handles=colours, loc="lower center", bbox_to_anchor=(0.5, above_marks / height),
                   ncol=min(len(colours), STATE_COLUMNS), fontsize=TEXT_PT, frameon=False, handlelength=1.6,
                   columnspacing=1.5, borderpad=0.2)


def _draw_titles(fig, height, from_packets: bool, with_samples: bool, period: float | None,
                 capture_given: bool = False) -> None:
    every = f" every {period * 1000:.1f} ms" if period else ""
    if from_packets:
        title = "Each socket's TCP state, from the packets: every change at the packet that caused it"
        subtitle = (f"Tags: the states the kernel showed in /proc/net/tcp, sampled{every}: read somewhere on "
                    "the tag's line, stamped at the tag." if with_samples else "No kernel samples given: the packets alone.")
    else:
        why = "no connection in the capture" if capture_given else "no capture given"
        title = f"Kernel socket states, sampled from /proc/net/tcp{every} ({why})"
        subtitle = "Each change is drawn when a sample first saw it: some time after the packet that caused it."
    fig.text(0.01, 1 - 0.22 / height, title, ha="left", va="center", fontsize=10.5, fontweight="bold")
    fig.text(0.01, 1 - 0.48 / height, subtitle, ha="left", va="center", fontsize=8.5, color="#374151")


# --------------------------------------------------------------------------- the figure

def socket_states(transitions=None, analysis=None, ports=None, scale: str = "events") -> Figure:
    """Socket-state timeline: each socket's states from the packets, the kernel's samples beside them.

    ``transitions``: the kernel's samples, as a :class:`~tcpchatx.sockstate.SocketStateSampler`,
    its ``transitions`` dict or its ``transitions_df()`` (or None: packets only).
    ``analysis``: the capture taken meanwhile; its packets give the spans (without it,
    the samples do).  ``ports``: the server's port(s), to tell client sockets from
    server sockets among the samples (default: from the sampler or the analysis).
    ``scale``: ``"events"`` (event order) or ``"time"`` (linear).
    """
    if scale not in ("events", "time"):
        raise ValueError(f"scale must be 'events' or 'time', not {scale!r}")
    if transitions is None and analysis is None:
        raise ValueError("socket_states needs the kernel's samples, the analysis of a capture, or both")
    sampled, ports, started, stopped, period = _normalise(transitions, ports)
    ports = tuple(ports) if ports else _guess_ports(sampled, analysis)
    blocks = _blocks(sampled, ports, analysis)
    rows = [r for block in blocks for r in block]
    changes, timelines = _derived(analysis, rows)
    samples = _samples(sampled, timelines, started)
    packets = _packets(analysis, changes)

    # The x axis: a step per event (a packet drawn, a sample's stamp), or linear time.
    packet_times = [pk["time"] for pk in packets]
    times = packet_times + [s["time"] for s in samples] + [s["since"] for s in samples if s["since"] is not None]
    times = times or [0.0]
    t0, first, last = min(packet_times or times), min(times), max(times)
    end = stopped if stopped is not None and stopped > last else last + max(0.1 * (last - first), 1e-3)
    x_of = _x_axis(times, t0, end, scale)
    x_pad = 0.6 if scale == "events" else 0.03 * max(x_of(end) - x_of(first), 1e-3)
    x_left, x_right = x_of(first) - x_pad, x_of(end) + x_pad
    plot_width = WIDTH_INCHES - LEFT_INCHES - RIGHT_INCHES
    inches_per_x = plot_width / (x_right - x_left)

    # Where everything goes, in inches from the top: title, rows, axis, legends.
    lanes = _place_labels(packets, lambda wall: (x_of(wall) - x_left) * inches_per_x)
    body = _layout(blocks, lanes)
    spans = _spans(rows, timelines, sampled, end)
    states = _states_shown(spans, samples, changes)
    colours, marks = _legend_handles(states, spans, samples, packets)
    legend_lines = -(-len(colours) // STATE_COLUMNS) + -(-len(marks) // MARK_COLUMNS)
    bottom = AXIS_SPACE + legend_lines * LEGEND_LINE + 0.15
    height = TITLE_SPACE + body + bottom
    fig = Figure(figsize=(WIDTH_INCHES, height))
    ax = fig.add_axes((LEFT_INCHES / WIDTH_INCHES, bottom / height, plot_width / WIDTH_INCHES, body / height))
    ax.set_xlim(x_left, x_right)
    ax.set_ylim(body, 0.0)

    _draw_spans(ax, spans, x_of, inches_per_x)
    _draw_change_marks(ax, rows, timelines, x_of)
    _draw_packets(ax, packets, rows, x_of, inches_per_x)
    shown = _draw_samples(ax, rows, samples, x_of, inches_per_x)
    _draw_row_labels(ax, rows)
    _draw_ticks(ax, times, t0, x_of, inches_per_x, scale, "packet" if packets else "sample")
    _draw_legends(fig, colours, marks, height)
    _draw_titles(fig, height, bool(timelines), bool(shown), period, analysis is not None)

    row_label = {(r["conn"], r["kind"]): r["label"] for r in rows}
    fig.tcpchatx = {
        "kind": "socket_states",
        "source": "packets" if timelines else "samples",
        "rows": [r["label"] for r in rows],
        "spans": [{k: v for k, v in d.items() if k != "y"} for d in spans],
        "derived": [{"socket": row_label[(ch.conn, ch.side)], "conn": ch.conn, "side": ch.side,
                     "before": str(ch.before), "state": str(ch.state), "event": str(ch.event),
                     "frame": ch.frame, "time": ch.time} for ch in changes],
        "samples": shown,
        "disagreements": [s for s in shown if s["agrees"] is False],
        "packets": [pk["frame"] for pk in packets],
        "ignored": [pk["frame"] for pk in packets if not pk["taken"]],
        "unlabelled": [pk["frame"] for pk in packets if pk["lane"] is None],
        "states": states,
        "meanings": {s: STATE_MEANINGS.get(s, "") for s in states},
        "scale": scale,
    }
    return fig
