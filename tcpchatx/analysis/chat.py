"""From TCP segments back to chat lines, and from lines to who received what.

Theory of operation
-------------------
1. **Reassembly.**  Each direction of a connection is a byte stream numbered by the
   relative sequence number (byte 1 is the first after the SYN).  We sort that
   direction's data segments by sequence number and lay them end to end: bytes
   already placed (retransmissions, duplicates) are skipped; a hole (bytes never
   captured) ends the line in progress, which is dropped, since we cannot know it.
   Each placed run of bytes remembers the frame that carried it.
2. **Lines.**  The stream is cut at every ``\\n``; each line goes through
   :class:`tcpchatx.protocol.LineSplitter` so it is decoded with exactly the
   server's rules.  A line knows its byte range, hence every frame that carried a
   part of it (a line split over two segments has two frames; one segment may carry
   several lines).
3. **Meaning.**  The *server* is the endpoint that answers connections (the
   responder seen most often).  Lines towards it are client lines: nicknames,
   commands and messages (:func:`~tcpchatx.protocol.parse_client_line`); lines from
   it are server lines (:func:`~tcpchatx.protocol.parse_server_line`).
4. **Fan-out.**  For each chat message a client sent, the server should send
   ``<nick> text`` to every *other* client; a ``/msg bob text`` becomes
   ``*nick* text`` to bob.  We match each to the first unmatched such line on the
   other connections sent after the message arrived, and call the time between the
   two frames the delivery's fan-out latency.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from tcpchatx import protocol as proto
from tcpchatx.protocol import InvalidUtf8, Kind, Line, LineSplitter, LineTooLong

from .packets import RST, Packets
from .tracker import Tracking

_WELCOME = re.compile(r"^Welcome, (.+?)! ")
_RENAMED = re.compile(r"^(\S+) is now known as (\S+)$")


@dataclass
class ChatLine:
    """One protocol line, where it was on the wire and what it means."""

    id: int
    conn: int
    direction: int  # 0: client -> server, 1: server -> client
    text: str | None  # None if the line was not valid (too long, bad UTF-8)
    kind: str  # protocol.Kind value, or "invalid"
    nick: str | None  # chat/private: the nick it is from; client lines: the sender's nick
    command: str | None  # for client commands: "msg", "nick", ...
    start: int  # stream offset of its first byte (relative seq)
    end: int  # stream offset just past its "\n"
    frames: list[int]  # every frame that carried part of it, in stream order
    frame: int  # the frame that completed it (carried its "\n")
    time: float  # that frame's time
    recipient: str | None = None  # server lines: the nick of the client it went to
    ticks: int = 0  # the completing frame's exact timestamp (see packets.Packets.ts_ticks)
    per_second: int = 1_000_000


@dataclass
class Delivery:
    recipient: str | None  # the recipient's nick, if known
    conn: int
    frame: int
    time: float
    latency: float  # seconds from the message's frame to this delivery's frame
    line: int  # ChatLine id of the delivered line


@dataclass
class Message:
    """A chat message (or private message) a client sent, and its deliveries."""

    id: int
    kind: str  # "chat" or "private"
    conn: int
    sender: str | None
    text: str
    to: str | None  # private messages: the nick it was addressed to
    frame: int
    time: float
    line: int  # ChatLine id of the client's line
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class Chat:
    server: tuple[str, int] | None
    lines: list[ChatLine]
    messages: list[Message]
    nick_of_conn: dict[int, str]  # the last nickname of each client connection
    gaps: int = 0  # holes in the byte streams (bytes never captured)


# --------------------------------------------------------------------------- reassembly


def reassemble(p: Packets, rows: np.ndarray, rel_seq: np.ndarray):
    """Lay one direction's segments end to end.

    Returns (stream bytes, run starts, run frames, run rows, gap offsets): run *i*
    starts at stream offset ``run_starts[i]`` and came from frame ``run_frames[i]``.
    Stream offset 0 is relative sequence number 1.
    """
    order = np.lexsort((rows, rel_seq))
    stream = bytearray()
    run_starts: list[int] = []
    run_rows: list[int] = []
    gaps: list[int] = []
    next_seq = 1
    for i in order.tolist():
        seq = int(rel_seq[i])
        row = int(rows[i])
        payload = p.payload(row)
        if seq >= 1 << 31:  # before the ISN (wrapped around): outside the stream
            continue
        end = seq + len(payload)
        if end <= next_seq:
            continue  # everything here was already placed
        if seq > next_seq:
            gaps.append(len(stream))
            next_seq = seq
        run_starts.append(len(stream))
        run_rows.append(row)
        stream += payload[next_seq - seq :]
        next_seq = end
    return bytes(stream), np.array(run_starts, dtype=np.int64), np.array(run_rows, dtype=np.int64), gaps


def split_lines(stream: bytes, gaps: list[int]):
    """Yield (start, end, event) for each complete line; ``end`` is past the ``\\n``."""
    start = 0
    gap_iter = iter(gaps + [len(stream) + 1])
    next_gap = next(gap_iter)
    while True:
        newline = stream.find(b"\n", start)
        if newline < 0:
            return
        while next_gap <= start:
            next_gap = next(gap_iter)
        if start < next_gap <= newline:  # a hole inside this line: we cannot know it
            start = newline + 1
            continue
        events = LineSplitter().feed(stream[start : newline + 1])
        yield start, newline + 1, events[0] if events else None
        start = newline + 1


# --------------------------------------------------------------------------- the chat


def find_server(tracking: Tracking) -> tuple[str, int] | None:
    """The endpoint that answered most connections."""
    counts = Counter(c.server for c in tracking.connections)
    return counts.most_common(1)[0][0] if counts else None


def analyze_chat(p: Packets, t: Tracking, server: tuple[str, int] | None = None) -> Chat:
    server = server or find_server(t)
    lines: list[ChatLine] = []
    gaps_total = 0
    data = np.flatnonzero((t.conn >= 0) & (p.payload_len > 0) & ((p.flags & RST) == 0))
    by_group = defaultdict(list)
    for row, conn, direction in zip(data.tolist(), t.conn[data].tolist(), t.direction[data].tolist(), strict=True):
        by_group[(conn, direction)].append(row)
    for conn_obj in t.connections:
        if conn_obj.server != server:
            continue
        for direction in (0, 1):
            rows = np.array(by_group.get((conn_obj.id, direction), []), dtype=np.int64)
            if not len(rows):
                continue
            stream, run_starts, run_rows, gaps = reassemble(p, rows, t.rel_seq[rows])
            gaps_total += len(gaps)
            for start, end, event in split_lines(stream, gaps):
                first = int(np.searchsorted(run_starts, start, "right")) - 1
                last = int(np.searchsorted(run_starts, end - 1, "right")) - 1
                carried = run_rows[first : last + 1]
                frames = [int(f) for f in p.frame[carried]]
                text = event.text if isinstance(event, Line) else None
                kind = "invalid" if text is None else ""
                lines.append(ChatLine(
                    id=0, conn=conn_obj.id, direction=direction, text=text, kind=kind,
                    nick=None, command=None, start=start + 1, end=end + 1, frames=frames,
                    frame=frames[-1], time=float(p.time[carried[-1]]),
                    ticks=int(p.ts_ticks[carried[-1]]), per_second=int(p.ts_tps[carried[-1]]),
                ))
                if isinstance(event, (LineTooLong, InvalidUtf8)):
                    lines[-1].text = None
    lines.sort(key=lambda line: (line.frame, line.conn, line.start))
    for i, line in enumerate(lines):
        line.id = i
    nick_of_conn = _interpret(lines)
    messages = _fan_out(lines)
    return Chat(server, lines, messages, nick_of_conn, gaps_total)


def _interpret(lines: list[ChatLine]) -> dict[int, str]:
    """Give every line its kind, and follow each connection's nickname over time."""
    nick: dict[int, str] = {}
    welcomed: set[int] = set()
    for line in lines:
        if line.text is None:
            continue
        if line.direction == 1:
            line.recipient = nick.get(line.conn)
            parsed = proto.parse_server_line(line.text)
            line.kind, line.nick = parsed.kind.value, parsed.nick
            welcome = _WELCOME.match(parsed.text) if parsed.kind is Kind.REPLY else None
            if welcome:
                nick[line.conn] = welcome.group(1)
                welcomed.add(line.conn)
            renamed = _RENAMED.match(parsed.text) if parsed.kind is Kind.NOTICE else None
            if renamed:
                for conn, current in nick.items():
                    if current == renamed.group(1):
                        nick[conn] = renamed.group(2)
        elif line.conn not in welcomed:
            line.kind = Kind.NICKNAME.value
            if not line.text.startswith("/"):
                nick[line.conn], _ = proto.check_nick(line.text)
            line.nick = nick.get(line.conn)
        else:
            parsed = proto.parse_client_line(line.text)
            line.kind, line.command, line.nick = parsed.kind.value, parsed.command, nick.get(line.conn)
    return {conn: name for conn, name in nick.items() if name}


def _fan_out(lines: list[ChatLine]) -> list[Message]:
    """Match each client message with the lines the server sent because of it."""
    # Outbound chat/private lines, per (kind, from-nick, text), in time order.
    outbound: dict[tuple[str, str | None, str], list[ChatLine]] = defaultdict(list)
    for line in lines:
        if line.direction == 1 and line.kind in (Kind.CHAT.value, Kind.PRIVATE.value):
            text = proto.parse_server_line(line.text).text
            outbound[(line.kind, line.nick, text)].append(line)
    used: set[int] = set()
    nick_at: dict[int, str | None] = {}
    messages: list[Message] = []
    for line in lines:
        if line.direction != 0 or line.text is None:
            continue
        nick_at[line.conn] = line.nick
        parsed = proto.parse_client_line(line.text)
        if line.kind == Kind.MESSAGE.value and parsed.text.strip():
            kind, to, text = "chat", None, proto.sanitize(parsed.text)[0]
            wanted = (Kind.CHAT.value, line.nick, text)
        elif line.kind == Kind.COMMAND.value and parsed.command == "msg":
            to, _, text = parsed.text.partition(" ")
            kind, text = "private", proto.sanitize(text.strip())[0]
            if not to or not text:
                continue
            wanted = (Kind.PRIVATE.value, line.nick, text)
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
