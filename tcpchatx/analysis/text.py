"""Plain-text views of an analysis: a summary per connection, and a ladder diagram.

The ladder puts each client on a lane at the left and the server on the right;
each packet is an arrow between its two lanes, labelled with its flags, relative
seq/ack, length, step and the chat text it completed, and followed by what
Wireshark's expert analysis marks it with, as its Info column does::

    frame  time      10.0.0.1:40000                              10.0.0.2:25000
        1  0.000000  |---- S  seq=0 ack=0 len=0 (SYN) ------------------>|
        2  0.000100  |<--- SA seq=0 ack=1 len=0 (SYN-ACK) ---------------|
        9  0.004100  |<--- A seq=1 ack=101 len=0 (ACK) ------------------|  [TCP Dup ACK 5#1]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from .labels import CLOSE_KINDS, ZEEK_CONN_STATES, flag_string
from .plain.expert import info_mark
from .skipped import sentence as skipped_sentence
from .zeek_sessions import ENDINGS as ZEEK_ENDINGS

SUMMARY_ITEMS = 50  # connections and messages listed one by one; the rest are counted
MAX_LANES = 24  # endpoints a ladder draws side by side (58 characters each)


def format_summary(a, max_items: int | None = SUMMARY_ITEMS) -> str:
    """One paragraph per connection: who, how it went, Zeek labels, bytes; then the messages.

    A summary is for reading: with more than ``max_items`` connections (or messages)
    it lists the first ``max_items`` and counts the rest (close shapes, deliveries,
    fan-out latency) instead of printing pages no one reads for a big capture.
    ``max_items=None`` lists everything; ``--json`` always has everything.
    """
    out = [f"{a.path}: {len(a.packets)} frames, {len(a.connections)} TCP connection(s)"]
    if a.packets.skipped:
        skipped = sum(a.packets.skipped.values())
        out.append(f"not read as TCP: {skipped:,} frame(s): {skipped_sentence(a.packets.skipped)}")
    if len(a.packets.length_from_frame):
        out.append(f"{len(a.packets.length_from_frame):,} segment(s) with IP length 0 (captured before "
                   "segmentation offload): their length is the frame's, as Wireshark reads it")
    if a.checksums is not None:
        bad = int((a.checksums == 0).sum())
        out.append(f"TCP checksums: {bad:,} wrong of {int((a.checksums >= 0).sum()):,} checked" + (
            " (Zeek writes c/C for them and reads nothing else of them; on a capture made on the "
            "sending host they are the network card's to fill in, and Zeek is run with -C)" if bad else ""))
    if a.chat.server:
        out.append(f"chat server: {a.chat.server[0]}:{a.chat.server[1]}")
        read = [c.id for c in a.connections if c.server == a.chat.server]
        out.append(f"read as chat: {len(read)} of {len(a.connections)} connection(s): {_ranges(read)}")
    elif a.connections:
        out.append("read as chat: none (no server's first segment is a TCPChatX server's)")
    out.append(expert_summary(a))
    connections = a.connections if max_items is None else a.connections[:max_items]
    for c in connections:
        nick = a.chat.nick_of_conn.get(c.id)
        who = f" ({nick})" if nick else ""
        out.append("")
        out.append(f"connection {c.id}: client {c.client[0]}:{c.client[1]}{who} -> "
                   f"server {c.server[0]}:{c.server[1]}")
        out.append(f"  frames {c.first_frame}-{c.last_frame}, {c.duration:.6f} s; "
                   f"packets client/server {c.packets[0]}/{c.packets[1]}, "
                   f"payload bytes {c.payload_bytes[0]}/{c.payload_bytes[1]}")
        isn = ", ".join(f"{side} ISN {v}" for side, v in zip(("client", "server"), c.isn, strict=True)
                        if v is not None) or "no SYN captured"
        out.append(f"  {isn}")
        closer = f", closed first by the {c.active_closer}" if c.active_closer else ""
        out.append(f"  close: {c.close_kind}{closer} - {CLOSE_KINDS[c.close_kind]}")
        out.append(f"  Zeek: conn_state {c.conn_state} ({ZEEK_CONN_STATES[c.conn_state]}) "
                   f"history {c.history}")
        if c.zeek_connections:
            out.append(f"  Zeek logs this stream as {len(c.zeek_connections)} connections:")
            for z in c.zeek_connections:
                ended = f", ended: {ZEEK_ENDINGS[z.ended_by]}" if z.ended_by else ""
                out.append(f"    frames {z.first}-{z.last}: {z.conn_state} {z.history}{ended}")
    if len(connections) < len(a.connections):
        out += ["", f"... and {len(a.connections) - len(connections)} more connection(s). All "
                f"{len(a.connections)}: close {_tally(c.close_kind for c in a.connections)}; "
                f"Zeek conn_state {_tally(c.conn_state for c in a.connections)}"]
    chat = a.chat
    shown = chat.n_messages
    if chat.n_messages:
        out.append("")
        out.append(f"{chat.n_messages} message(s):")
        shown = chat.n_messages if max_items is None else min(max_items, chat.n_messages)
        messages = chat.each_message() if shown == chat.n_messages else chat.build_messages(0, shown)
        for m in messages:
            lat = ", ".join(f"{d.recipient or d.conn} +{d.latency * 1000:.3f} ms"
                            for d in m.deliveries) or "not delivered"
            target = f" to {m.to}" if m.to else ""
            out.append(f"  frame {m.frame} {m.sender}{target}: {m.text!r} -> {lat}")
        if shown < chat.n_messages:
            latency_ms = chat.delivery_latency * 1000
            spread = (f"; fan-out latency p50 {percentile(latency_ms, 50):.3f} ms, "
                      f"p99 {percentile(latency_ms, 99):.3f} ms" if len(latency_ms) else "")
            out.append(f"  ... and {chat.n_messages - shown} more. All {chat.n_messages}: "
                       f"{len(chat.delivery_line)} deliveries{spread}")
    if max_items is not None and (len(connections) < len(a.connections) or shown < chat.n_messages):
        out += ["", "(tcpchatx annotate --all lists every one; --json gives everything as JSON)"]
    return "\n".join(out)


def expert_summary(a, width: int = 100) -> str:
    """How many packets Wireshark's expert analysis marks, mark by mark, as its Info
    column marks them: ``3 [TCP Retransmission], 12 [TCP Dup ACK]``.  Long lists go
    on over indented lines, never breaking a mark."""
    line, lines = "TCP expert analysis (as in Wireshark):", []
    marks = [f"{n} {info_mark(name)}" for name, n in a.expert.info_counts().items()] or ["no packet marked"]
    for k, mark in enumerate(marks):
        mark += "," if k < len(marks) - 1 else ""
        if len(line) + 1 + len(mark) > width and line.strip():
            lines.append(line)
            line = " "
        line += " " + mark
    return "\n".join([*lines, line])


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` with its default (linear) method, bit for bit, but
    without the ``numpy.ma`` import that ``np.percentile`` triggers: a module the
    summary has no other use for, imported on every command.
    The arithmetic is numpy's own, in its order."""
    position = (len(values) - 1) * (q / 100)
    below = int(position)
    above = min(below + 1, len(values) - 1)
    low, high = np.partition(values, [below, above])[[below, above]]
    t = position - below
    return float(high - (high - low) * (1 - t) if t >= 0.5 else low + (high - low) * t)


def _tally(values) -> str:
    """How often each value occurs, most common first: ``four-way 6000, reset 12``."""
    return ", ".join(f"{value} {count}" for value, count in Counter(values).most_common())


def format_ladder(a, max_packets: int | None = None, width: int = 56) -> str:
    """A ladder diagram of the tracked packets (at most ``max_packets`` arrows), as one string."""
    return "\n".join(ladder_rows(a, max_packets, width))


def ladder_rows(a, max_packets: int | None = None, width: int = 56) -> Iterator[str]:
    """The ladder's rows one by one, so a long ladder is printed without being held.

    Only the endpoints of the packets shown get a lane, so the first rows of a
    capture with thousands of clients stay readable (and quick to draw).  More
    than :data:`MAX_LANES` lanes is no longer a picture (a row 6,000 lanes wide is
    350 kB): the ladder is then one line that says so, and how to draw fewer.
    """
    p, t = a.packets, a.tracking
    tracked = np.flatnonzero(t.conn >= 0)
    shown_rows = tracked if max_packets is None else tracked[:max_packets]
    shown_conns = set(t.conn[shown_rows].tolist())
    server = a.chat.server
    lanes = list(dict.fromkeys(  # each endpoint once, in order; the server last
        end for c in a.connections if c.id in shown_conns for end in (c.client, c.server)
        if end != server))
    if server:
        lanes.append(server)
    if not lanes:
        yield "(no TCP packets)"
        return
    if len(lanes) > MAX_LANES:
        yield (f"(no ladder: the {len(shown_rows)} packets to draw go between {len(lanes)} "
               f"endpoints, and a ladder is readable up to {MAX_LANES}; draw fewer packets "
               f"with --max-packets, or read every packet with --json)")
        return
    names = [f"{addr}:{port}" for addr, port in lanes]
    lane_of = {end: k for k, end in enumerate(lanes)}
    for c in a.connections:
        nick = a.chat.nick_of_conn.get(c.id)
        if nick and c.client in lane_of:
            names[lane_of[c.client]] += f" ({nick})"
    gap = width + 2
    column = [i * gap for i in range(len(lanes))]
    header = "frame  time        " + "".join(n.ljust(gap) for n in names)
    yield header.rstrip()
    t0 = float(p.seconds(0)) if len(p) else 0.0
    for i in shown_rows.tolist():
        src = (p.addresses[p.src[i]], int(p.sport[i]))
        dst = (p.addresses[p.dst[i]], int(p.dport[i]))
        a_col, b_col = column[lane_of[src]], column[lane_of[dst]]
        step = a.step(i)
        label = (f" {flag_string(int(p.flags[i]))} seq={t.rel_seq[i]} ack={t.rel_ack[i]} "
                 f"len={p.payload_len[i]} ({step.name}) ")
        left, right = min(a_col, b_col), max(a_col, b_col)
        span = right - left - 1
        body = label[: max(span - 4, 0)].center(max(span - 2, 0), "-")
        arrow = ("-" + body + ">") if a_col < b_col else ("<" + body + "-")
        line = [" "] * (column[-1] + 1)
        for col in column:
            line[col] = "|"
        line[left + 1 : right] = list(arrow[:span].ljust(span, "-"))
        prefix = f"{int(p.frame[i]):5d}  {float(p.seconds(i)) - t0:10.6f}  "
        marks = a.info(i)
        yield prefix + "".join(line) + (f"  {marks}" if marks else "")
        for chat_line in a.lines_of_frame(int(p.frame[i])):
            text = chat_line.text if chat_line.text is not None else "(invalid line)"
            yield " " * len(prefix) + " " * (left + 2) + f'"{text}"'
    if len(shown_rows) < len(tracked):
        yield f"... {len(tracked) - len(shown_rows)} more packets"


def _ranges(ids: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0-2, 5"``."""
    spans: list[list[int]] = []
    for k in ids:
        if spans and k == spans[-1][1] + 1:
            spans[-1][1] = k
        else:
            spans.append([k, k])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
