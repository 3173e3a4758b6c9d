"""The object-per-line chat layer, kept as a readable reference for the columnar one.

This is ``tcpchatx.analysis.chat`` as it was before it became columnar (one
Python object per line, a loop over lines).  ``test_analysis_columnar_chat``
checks that both give identical lines, messages and deliveries.

From TCP segments back to chat lines, and from lines to who received what.

Theory of operation
-------------------
1. **Reassembly.**  Each direction of a connection is a byte stream numbered by the
   relative sequence number (byte 1 is the first after the SYN).  We sort that
   direction's data segments by sequence number and lay them end to end: bytes
   already placed (retransmissions, duplicates) are skipped; a hole (bytes never
   captured) ends the line in progress, which is dropped, since we cannot know it.
   Each placed run of bytes remembers the frame that carried it.  All directions
   are reassembled at once with numpy (:func:`reassemble_all`), into one ``bytes``.
2. **Lines.**  The streams are cut at every ``\\n`` (found with numpy); each line is
   decoded with the server's rules (:func:`decode_line`: the same as
   :class:`tcpchatx.protocol.LineSplitter`, which a test checks).  A line knows its
   byte range, hence every frame that carried a part of it (a line split over two
   segments has two frames; one segment may carry several lines).
3. **Meaning.**  The *server* is the endpoint that answers connections (the
   responder seen most often).  Lines towards it are client lines: nicknames,
   commands and messages (:func:`~tcpchatx.protocol.parse_client_line`); lines from
   it are server lines (:func:`~tcpchatx.protocol.parse_server_line`).
4. **Fan-out.**  For each chat message a client sent, the server should send
   ``<nick> text`` to every *other* client; a ``/msg bob text`` becomes
   ``*nick* text`` to bob.  We match each to the first unmatched such line on the
   other connections sent after the message arrived, and call the time between the
   two frames the delivery's fan-out latency.

Steps 3 and 4 are a loop over lines (a chat line is a Python object); parsing is
memoised, because a broadcast repeats the same line to every client.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from tcpchatx import protocol as proto
from tcpchatx.analysis.chat import (  # the same records and unchanged helpers; the rest is the old code
    ChatLine,
    Delivery,
    Message,
    Streams,
    decode_line,
    find_lines,
)
from tcpchatx.analysis.packets import Packets
from tcpchatx.analysis.tracker import Tracking
from tcpchatx.protocol import Kind
from tcpchatx.tcp_flags import RST

_WELCOME = re.compile(r"^Welcome, (.+?)! ")
_RENAMED = re.compile(r"^(\S+) is now known as (\S+)$")
# Kind values as plain strings (an Enum's .value is slow in a loop over every line).
CHAT, PRIVATE, MESSAGE, COMMAND = Kind.CHAT.value, Kind.PRIVATE.value, Kind.MESSAGE.value, Kind.COMMAND.value


@dataclass
class Chat:
    server: tuple[str, int] | None
    lines: list[ChatLine]
    messages: list[Message]
    nick_of_conn: dict[int, str]  # the last nickname of each client connection
    gaps: int = 0  # holes in the byte streams (bytes never captured)


# --------------------------------------------------------------------------- reassembly




def reassemble_all(p: Packets, rows: np.ndarray, group: np.ndarray, rel_seq: np.ndarray) -> Streams:
    """Lay each group's segments end to end, all groups at once.

    Within a group, segments are taken in (sequence number, frame) order.  The next
    byte we expect is the furthest end placed so far (starting at relative seq 1),
    so a segment is placed iff it ends beyond it; it fills a hole iff it starts
    beyond it; and only its bytes beyond it are new.  A running maximum per group
    gives that for every segment at once.  Segments before the ISN (wrapped around,
    relative seq >= 2**31) are outside the stream.
    """
    order = np.lexsort((rows, rel_seq, group))
    g, seq, rows = group[order], rel_seq[order].astype(np.int64), rows[order]
    inside = seq < 1 << 31
    g, seq, rows = g[inside], seq[inside], rows[inside]
    caplen = p.payload_caplen[rows].astype(np.int64)
    end = seq + caplen
    first = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, bool)
    shift = g.astype(np.int64) << 34  # keeps each group's running maximum apart
    furthest = np.maximum.accumulate(shift + np.maximum(end, 1)) - shift
    expected = np.r_[1, furthest[:-1]]
    expected[first] = 1
    placed = end > expected
    hole = placed & (seq > expected)
    skip = np.maximum(expected - seq, 0)
    g, rows, seq, caplen, skip, hole = g[placed], rows[placed], seq[placed], caplen[placed], skip[placed], hole[placed]
    size = caplen - skip
    src = p.payload_offsets(rows) + skip
    starts = np.r_[0, np.cumsum(size)[:-1]] if len(size) else np.zeros(0, np.int64)
    buf = p.buffer
    data = b"".join([buf[a : a + n] for a, n in zip(src.tolist(), size.tolist(), strict=True)])
    groups, first_run = np.unique(g, return_index=True)
    begin = np.r_[starts[first_run], len(data)] if len(g) else np.zeros(1, np.int64)
    return Streams(data, groups, begin.astype(np.int64), starts, rows, starts[hole])






# --------------------------------------------------------------------------- the chat




def find_server(t: Tracking) -> tuple[str, int] | None:
    """The endpoint that answered most connections, from the connections' summaries."""
    counts = Counter(c.server for c in t.connections)
    return counts.most_common(1)[0][0] if counts else None


def analyze_chat(p: Packets, t: Tracking, server: tuple[str, int] | None = None) -> Chat:
    server = server or find_server(t)
    server_conns = np.array([c.id for c in t.connections if c.server == server], dtype=np.int64)
    data = np.flatnonzero((t.conn >= 0) & (p.payload_len > 0) & ((p.flags & RST) == 0))
    data = data[np.isin(t.conn[data], server_conns)]
    group = t.conn[data].astype(np.int64) * 2 + t.direction[data]
    streams = reassemble_all(p, data, group, t.rel_seq[data])
    stream, start, end = find_lines(streams)
    first = np.searchsorted(streams.run_starts, start, "right") - 1
    last = np.searchsorted(streams.run_starts, end - 1, "right") - 1
    done = streams.run_rows[last]  # the row that carried each line's newline
    g = streams.group[stream]
    local = start - streams.begin[stream]  # offset inside its own stream
    order = np.lexsort((local, g >> 1, p.frame[done]))
    raw = streams.data
    run_frames = p.frame[streams.run_rows].tolist()
    done = done[order]
    lines: list[ChatLine] = []
    for i, (st, en, lo, gr, first_run, last_run, time, ticks, per_second) in enumerate(zip(
        start[order].tolist(), end[order].tolist(), local[order].tolist(), g[order].tolist(),
        first[order].tolist(), last[order].tolist(), p.time[done].tolist(),
        p.ts_ticks[done].tolist(), p.ts_tps[done].tolist(), strict=True,
    )):
        text = decode_line(raw[st : en - 1])
        frames = run_frames[first_run : last_run + 1]
        lines.append(ChatLine(
            id=i, conn=gr >> 1, direction=gr & 1, text=text,
            kind="invalid" if text is None else "", nick=None, command=None,
            start=lo + 1, end=lo + en - st + 1, frames=frames, frame=frames[-1],
            time=time, ticks=ticks, per_second=per_second,
        ))
    nick_of_conn = _interpret(lines)
    messages = _fan_out(lines)
    return Chat(server, lines, messages, nick_of_conn, len(streams.gaps))


def _interpret(lines: list[ChatLine]) -> dict[int, str]:
    """Give every line its kind, and follow each connection's nickname over time."""
    nick: dict[int, str | None] = {}
    holders: dict[str | None, set[int]] = defaultdict(set)  # nick -> connections using it
    welcomed: set[int] = set()
    parse_server = _memo(proto.parse_server_line)  # broadcasts repeat the same line
    parse_client = _memo(proto.parse_client_line)

    def set_nick(conn: int, name: str | None) -> None:
        if conn in nick:
            holders[nick[conn]].discard(conn)
        nick[conn] = name
        holders[name].add(conn)

    for line in lines:
        if line.text is None:
            continue
        if line.direction == 1:
            line.recipient = nick.get(line.conn)
            parsed = parse_server(line.text)
            line.kind, line.nick = parsed.kind.value, parsed.nick
            welcome = _WELCOME.match(parsed.text) if parsed.kind is Kind.REPLY else None
            if welcome:
                set_nick(line.conn, welcome.group(1))
                welcomed.add(line.conn)
            renamed = _RENAMED.match(parsed.text) if parsed.kind is Kind.NOTICE else None
            if renamed:
                for conn in sorted(holders.get(renamed.group(1), ())):
                    set_nick(conn, renamed.group(2))
        elif line.conn not in welcomed:
            line.kind = Kind.NICKNAME.value
            if not line.text.startswith("/"):
                set_nick(line.conn, proto.check_nick(line.text)[0])
            line.nick = nick.get(line.conn)
        else:
            parsed = parse_client(line.text)
            line.kind, line.command, line.nick = parsed.kind.value, parsed.command, nick.get(line.conn)
    return {conn: name for conn, name in nick.items() if name}


def _memo(function):
    """``function`` with its answers remembered (it must be pure)."""
    return functools.lru_cache(maxsize=1 << 16)(function)


def _fan_out(lines: list[ChatLine]) -> list[Message]:
    """Match each client message with the lines the server sent because of it."""
    parse_server = _memo(proto.parse_server_line)
    parse_client = _memo(proto.parse_client_line)
    sanitize = _memo(proto.sanitize)
    # Outbound chat/private lines, per (kind, from-nick, text), in time order.
    outbound: dict[tuple[str, str | None, str], list[ChatLine]] = defaultdict(list)
    for line in lines:
        if line.direction == 1 and (line.kind == CHAT or line.kind == PRIVATE):
            text = parse_server(line.text).text
            outbound[(line.kind, line.nick, text)].append(line)
    used: set[int] = set()
    messages: list[Message] = []
    for line in lines:
        if line.direction != 0 or line.text is None:
            continue
        if line.kind == MESSAGE:
            parsed = parse_client(line.text)
            if not parsed.text.strip():
                continue
            kind, to, text = "chat", None, sanitize(parsed.text)[0]
            wanted = (CHAT, line.nick, text)
        elif line.kind == COMMAND and line.command == "msg":
            to, _, text = parse_client(line.text).text.partition(" ")
            kind, text = "private", sanitize(text.strip())[0]
            if not to or not text:
                continue
            wanted = (PRIVATE, line.nick, text)
        else:
            continue
        message = Message(len(messages), kind, line.conn, line.nick, text, to, line.frame,
                          line.time, line.id)
        seen_conns: set[int] = set()
        for out in outbound.get(wanted, []):
            if out.id in used or out.conn == line.conn or out.conn in seen_conns:
                continue
            if out.time < line.time or (out.time == line.time and out.frame < line.frame):
                continue
            if kind == "private" and not _same_nick(out.recipient, to):
                continue
            used.add(out.id)
            seen_conns.add(out.conn)
            message.deliveries.append(Delivery(
                recipient=out.recipient, conn=out.conn, frame=out.frame, time=out.time,
                latency=_seconds_between(line, out), line=out.id,
            ))
            if kind == "private":
                break
        messages.append(message)
    return messages


def _same_nick(a: str | None, b: str | None) -> bool:
    """Unknown nicks match anything; known ones compare as the server does."""
    return a is None or b is None or proto.nick_key(a) == proto.nick_key(b)


def _seconds_between(earlier: ChatLine, later: ChatLine) -> float:
    """Exact when both timestamps have the same resolution (no float rounding)."""
    if earlier.per_second == later.per_second:
        return (later.ticks - earlier.ticks) / later.per_second
    return later.time - earlier.time
