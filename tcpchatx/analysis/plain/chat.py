"""The chat layer one line at a time: the version to read first.

It gives exactly what the fast chat layer (:mod:`tcpchatx.analysis.chat`) gives, the
same :class:`~tcpchatx.analysis.chat.Chat`, and a test holds the two to that on every
capture.  The fast one works on numpy columns, a whole capture at a time; this one
says it the slow and obvious way, one Python object per line, in four steps:

1. **Reassembly** (:func:`reassemble`).  Each direction of a connection to the
   server is a byte stream, numbered by the relative sequence number (byte 1 is
   the first after the SYN).  We take that direction's data segments in sequence
   order and lay them end to end: bytes already placed (retransmissions,
   duplicates) are skipped, and where bytes were never captured (lost, or cut off
   by the snap length) we note a *hole*.  Each run of bytes we place remembers the
   frame that carried it.
2. **Lines** (:func:`cut_into_lines`).  Each stream is cut at every ``\\n``, and
   each line decoded as the server decodes it (:class:`~tcpchatx.protocol.LineSplitter`).
   A line that lost bytes to a hole (one after its first byte) is dropped: we
   cannot know it.  A line knows every frame that carried a part of it.  Lines are
   put in the order their last byte arrived.
3. **Meaning** (:func:`interpret`).  Lines towards the server are client lines
   (a nickname, then messages and commands), lines from it are server lines (chat,
   private, action, notice, reply, error); the server's welcome and rename notices
   tell us each connection's nickname as it changes.
4. **Fan-out** (:func:`fan_out`).  For each chat message a client sent, the
   server should send ``<nick> text`` to every *other* client; a ``/msg bob text``
   becomes ``*nick* text`` to bob, and a ``/me waves`` becomes ``* nick waves`` to
   every other client.  We match each to the first unused such line on each other connection,
   sent after the message arrived.

Every line is parsed by the protocol's own parsers (:mod:`tcpchatx.protocol`):
the wire format has one owner.  At the bottom, :func:`chat_from_objects` writes the
objects into the columns the fast layer keeps, which every output reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tcpchatx import protocol as proto
from tcpchatx.protocol import Kind
from tcpchatx.tcp_flags import RST

from ..chat.model import LINE_KIND_CODE, MESSAGE_KINDS, Chat, ChatLine, Delivery, Ids, Message
from ..chat.recognise import looks_like_server
from ..packets import Packets
from ..tracker import Flows


def analyze_chat_line_by_line(p: Packets, t: Flows, server: tuple[str, int] | None = None) -> Chat:
    """The chat on ``server`` (by default, :func:`find_server`): its lines and messages.

    The same as :func:`tcpchatx.analysis.chat.analyze_chat`, one line at a time.
    """
    server = server or find_server(p, t)
    streams = reassemble(p, t, server) if server else []
    lines, runs_of_line = cut_into_lines(p, streams)
    nick_of_conn = interpret(lines)
    messages = fan_out(lines)
    return chat_from_objects(p, server, streams, lines, runs_of_line, nick_of_conn, messages)


def find_server(p: Packets, t: Flows) -> tuple[str, int] | None:
    """The endpoint that answered most connections (the first of them on a tie), among
    those whose server speaks TCPChatX: whose connections include one that began, on the
    server's side, with a segment that passes the Wireshark dissector's own test
    (:func:`~tcpchatx.analysis.chat.recognise.looks_like_server`).  None if no
    endpoint's does: then nothing is read as chat."""
    answered: dict[tuple[str, int], list[int]] = {}  # endpoint -> its connections, in order
    for conn in range(len(t.server_port)):
        server = (p.addresses[int(t.server_address[conn])], int(t.server_port[conn]))
        answered.setdefault(server, []).append(conn)
    first_from_server: dict[int, bytes] = {}
    for row in range(len(p)):
        conn = int(t.conn[row])
        if conn >= 0 and t.direction[row] == 1 and p.payload_len[row] > 0 and not p.flags[row] & RST:
            first_from_server.setdefault(conn, p.payload(row))
    by_count = sorted(answered, key=lambda server: -len(answered[server]))  # stable: ties keep their order
    for server in by_count:
        if any(looks_like_server(first_from_server[conn]) for conn in answered[server] if conn in first_from_server):
            return server
    return None


# --------------------------------------------------------------------------- 1. reassembly


@dataclass
class Run:
    """Bytes placed in a stream from one segment: where they start, and their packet."""

    offset: int  # in the stream's data
    row: int  # the packet's row (its frame is p.frame[row])


@dataclass
class Stream:
    """One direction of one connection, its bytes laid end to end."""

    conn: int
    direction: int  # 0: client -> server, 1: server -> client
    data: bytearray = field(default_factory=bytearray)
    runs: list[Run] = field(default_factory=list)
    holes: list[int] = field(default_factory=list)  # offsets in data with bytes missing just before


def reassemble(p: Packets, t: Flows, server: tuple[str, int]) -> list[Stream]:
    """1. Every stream of the connections to ``server``, by connection then direction."""
    to_server = {conn for conn in range(len(t.server_port))
                 if (p.addresses[int(t.server_address[conn])], int(t.server_port[conn])) == server}
    segments: dict[tuple[int, int], list[tuple[int, int]]] = {}  # stream -> [(rel seq, row)]
    for row in range(len(p)):
        conn = int(t.conn[row])
        if conn not in to_server or p.payload_len[row] <= 0 or p.flags[row] & RST:
            continue  # not the chat's, no data, or a reset (whose bytes no one reads)
        segments.setdefault((conn, int(t.direction[row])), []).append((int(t.rel_seq[row]), row))
    return [lay_end_to_end(p, conn, direction, segments[conn, direction])
            for conn, direction in sorted(segments)]


def lay_end_to_end(p: Packets, conn: int, direction: int, segments: list[tuple[int, int]]) -> Stream:
    """One stream's segments ``(relative seq, row)``, in sequence order (then frame
    order), each placed where its bytes go."""
    stream = Stream(conn, direction)
    expected = 1  # the next byte we need: just past the furthest one placed so far
    for seq, row in sorted(segments):
        if seq >= 1 << 31:
            continue  # before the ISN (the relative number wrapped around): outside the stream
        payload = p.payload(row)  # the bytes captured: a snap length may have cut some
        end = seq + len(payload)
        if end <= expected:
            continue  # nothing new: a retransmission, or a duplicate
        if seq > expected:
            stream.holes.append(len(stream.data))  # bytes expected..seq-1 were never captured
        stream.runs.append(Run(len(stream.data), row))
        stream.data += payload[max(expected - seq, 0) :]  # only the bytes not placed yet
        expected = end
    return stream


# --------------------------------------------------------------------------- 2. lines


def cut_into_lines(p: Packets, streams: list[Stream]) -> tuple[list[ChatLine], list[tuple[int, int]]]:
    """2. Every complete line of every stream, in the order of the frame that completed it.

    Also returns which runs carried each line, the first and the last, numbered
    across all streams in order (:func:`chat_from_objects` keeps those numbers).
    """
    found: list[tuple[ChatLine, tuple[int, int]]] = []
    runs_before = 0  # runs of the streams before this one
    for stream in streams:
        run = 0  # the run that placed the byte we are at (runs start in offset order)
        start = 0
        while (newline := stream.data.find(b"\n", start)) >= 0:
            end = newline + 1
            # A hole after the line's first byte, up to its newline: the line lost
            # bytes, so we drop it.  (A hole right at its first byte takes nothing
            # from the bytes we have: they make a line.)
            if any(start < hole <= newline for hole in stream.holes):
                start = end
                continue
            while run + 1 < len(stream.runs) and stream.runs[run + 1].offset <= start:
                run += 1
            first = run
            while run + 1 < len(stream.runs) and stream.runs[run + 1].offset <= newline:
                run += 1
            frames = [int(p.frame[r.row]) for r in stream.runs[first : run + 1]]
            done = stream.runs[run].row  # the packet that carried the newline
            text = decode(bytes(stream.data[start:end]))
            line = ChatLine(
                id=-1, conn=stream.conn, direction=stream.direction, text=text,
                kind="invalid" if text is None else "", nick=None, command=None,
                start=start + 1, end=end + 1,  # relative seq numbers, if no bytes were lost before
                frames=frames, frame=frames[-1], time=float(p.time[done]),
                ticks=int(p.ts_ticks[done]), per_second=int(p.ts_tps[done]),
            )
            found.append((line, (runs_before + first, runs_before + run)))
            start = end
        runs_before += len(stream.runs)
    found.sort(key=lambda pair: pair[0].frame)  # stable: a frame's lines stay in stream order
    for i, (line, _) in enumerate(found):
        line.id = i
    return [line for line, _ in found], [runs for _, runs in found]


def decode(raw: bytes) -> str | None:
    """A line (ending in ``\\n``) as the server's LineSplitter reads it; None if it
    refuses it (too long, not UTF-8)."""
    [event] = proto.LineSplitter().feed(raw)  # one newline: exactly one event
    return event.text if isinstance(event, proto.Line) else None


# --------------------------------------------------------------------------- 3. meaning


def interpret(lines: list[ChatLine]) -> dict[int, str]:
    """3. Give every line its kind, and follow each connection's nickname over time.

    A server line goes to the nick its connection has when it is sent; a client
    line is from the nick its connection has once it is read (its first line, a
    nickname, sets it).  Returns each client connection's last nickname.
    """
    nick: dict[int, str | None] = {}  # conn -> its nickname (None: an invalid one)
    holders: dict[str | None, set[int]] = {}  # nickname -> the connections using it
    welcomed: set[int] = set()

    def set_nick(conn: int, name: str | None) -> None:
        if conn in nick:
            holders[nick[conn]].discard(conn)
        nick[conn] = name
        holders.setdefault(name, set()).add(conn)

    for line in lines:
        if line.text is None:
            continue  # invalid: kind "invalid", no nick
        if line.direction == 1:
            line.recipient = nick.get(line.conn)
            parsed = proto.parse_server_line(line.text)
            line.kind, line.nick = parsed.kind.value, parsed.nick
            welcome = proto.welcome_nick(line.text)  # "--- Welcome, NICK! ..."
            if welcome is not None:
                set_nick(line.conn, welcome)
                welcomed.add(line.conn)
            # "*** OLD is now known as NEW" (or the same words without the sigil:
            # a line of unknown shape is shown as a notice too).
            renamed = proto.RENAMED_PATTERN.fullmatch(parsed.text) if parsed.kind is Kind.NOTICE else None
            if renamed:
                old, new = renamed.groups()
                for conn in sorted(holders.get(old, ())):
                    set_nick(conn, new)
        elif line.conn not in welcomed:
            line.kind = Kind.NICKNAME.value  # before its welcome, a client names itself
            if not line.text.startswith("/"):
                set_nick(line.conn, proto.check_nick(line.text)[0])
            line.nick = nick.get(line.conn)
        else:
            parsed = proto.parse_client_line(line.text)
            line.kind, line.command, line.nick = parsed.kind.value, parsed.command, nick.get(line.conn)
    return {conn: name for conn, name in nick.items() if name}


# --------------------------------------------------------------------------- 4. fan-out


def fan_out(lines: list[ChatLine]) -> list[Message]:
    """4. Each client message, matched with the lines the server sent because of it."""
    # The server's chat, private and action lines, by (kind, from-nick, text), in line
    # order.  A message's kind is the kind of the lines that relay it (MESSAGE_KINDS).
    relayed: dict[tuple[str, str | None, str], list[ChatLine]] = {}
    for line in lines:
        if line.direction == 1 and line.kind in MESSAGE_KINDS:
            text = proto.parse_server_line(line.text).text
            relayed.setdefault((line.kind, line.nick, text), []).append(line)
    used: set[int] = set()  # lines already matched to a message
    messages: list[Message] = []
    for line in lines:
        message = _message(line, len(messages))
        if message is None:
            continue
        private = message.kind == Kind.PRIVATE.value
        wanted = (message.kind, line.nick, message.text)
        reached: set[int] = set()  # connections this message reached already
        for out in relayed.get(wanted, []):
            if out.id in used or out.conn == line.conn or out.conn in reached:
                continue
            if (out.time, out.frame) < (line.time, line.frame):
                continue  # sent before the message arrived: another message's
            if private and not _same_nick(out.recipient, message.to):
                continue
            used.add(out.id)
            reached.add(out.conn)
            message.deliveries.append(Delivery(
                recipient=out.recipient, conn=out.conn, frame=out.frame, time=out.time,
                latency=_seconds_between(line, out), line=out.id,
            ))
            if private:
                break  # a private message has one recipient
        messages.append(message)
    return messages


def _message(line: ChatLine, number: int) -> Message | None:
    """The message a client line sends (chat, ``/msg NICK text`` or ``/me text``), as
    the server will relay it (sanitised), or None."""
    if line.direction != 0 or line.kind not in (Kind.MESSAGE.value, Kind.COMMAND.value):
        return None
    parsed = proto.parse_client_line(line.text)
    if parsed.kind is Kind.MESSAGE:
        if not parsed.text.strip():
            return None  # the server relays no blank line
        kind, to, text = "chat", None, proto.sanitize(parsed.text)[0]
    elif parsed.command == "msg":
        to, _, text = parsed.text.partition(" ")
        kind, text = "private", proto.sanitize(text.strip())[0]
        if not to or not text:
            return None  # the server answers with its usage line
    elif parsed.command == "me":
        kind, to, text = "action", None, proto.sanitize(parsed.text)[0].strip()
        if not text:
            return None  # the server answers with its usage line
    else:
        return None
    return Message(number, kind, line.conn, line.nick, text, to, line.frame, line.time, line.id)


def _same_nick(a: str | None, b: str | None) -> bool:
    """Unknown nicks match anything; known ones compare as the server compares them."""
    return a is None or b is None or proto.nick_key(a) == proto.nick_key(b)


def _seconds_between(earlier: ChatLine, later: ChatLine) -> float:
    """Exact when both timestamps have the same resolution (no float rounding)."""
    if earlier.per_second == later.per_second:
        return (later.ticks - earlier.ticks) / later.per_second
    return later.time - earlier.time


# --------------------------------------------------------------------------- the columns


def chat_from_objects(p: Packets, server: tuple[str, int] | None, streams: list[Stream],
                      lines: list[ChatLine], runs_of_line: list[tuple[int, int]],
                      nick_of_conn: dict[int, str], messages: list[Message]) -> Chat:
    """The lines and messages written into :class:`Chat`'s columns, the form the
    fast layer keeps them in and every output reads; the objects are kept too.

    Strings become ids into tables (``texts``, ``nicks``, ...), -1 for None.
    """
    texts, nicks, commands, payloads = Ids(), Ids(), Ids(), Ids()
    line_text = [texts.get_id(line.text) for line in lines]
    addressee_of_text: list[str | None] = [None] * len(texts.names)
    for m in messages:
        addressee_of_text[line_text[m.line]] = m.to
    delivery_start = [0]
    for m in messages:
        delivery_start.append(delivery_start[-1] + len(m.deliveries))

    return Chat(
        server=server, nick_of_conn=nick_of_conn, gaps=sum(len(s.holes) for s in streams),
        texts=texts.names, nicks=nicks.names, commands=commands.names,
        run_frames=np.array([p.frame[run.row] for s in streams for run in s.runs], p.frame.dtype),
        line_conn=np.array([line.conn for line in lines], np.int32),
        line_direction=np.array([line.direction for line in lines], np.int8),
        line_text=np.array(line_text, np.int32),
        line_kind=np.array([LINE_KIND_CODE[line.kind] for line in lines], np.uint8),
        line_nick=np.array([nicks.get_id(line.nick) for line in lines], np.int32),
        line_command=np.array([commands.get_id(line.command) for line in lines], np.int16),
        line_recipient=np.array([nicks.get_id(line.recipient) for line in lines], np.int32),
        line_start=np.array([line.start for line in lines], np.int64),
        line_end=np.array([line.end for line in lines], np.int64),
        line_first_run=np.array([first for first, _ in runs_of_line], np.int32),
        line_last_run=np.array([last for _, last in runs_of_line], np.int32),
        line_frame=np.array([line.frame for line in lines], p.frame.dtype),
        line_time=np.array([line.time for line in lines], np.float64),
        line_ticks=np.array([line.ticks for line in lines], p.ts_ticks.dtype),
        line_per_second=np.array([line.per_second for line in lines], p.ts_tps.dtype),
        msg_line=np.array([m.line for m in messages], np.int64),
        msg_kind=np.array([MESSAGE_KINDS.index(m.kind) for m in messages], np.int8),
        msg_payload=np.array([payloads[m.text] for m in messages], np.int32),
        msg_text_id=np.array([line_text[m.line] for m in messages], np.int32),
        payloads=payloads.names, addressee_of_text=addressee_of_text,
        delivery_start=np.array(delivery_start, np.int64),
        delivery_line=np.array([d.line for m in messages for d in m.deliveries], np.int64),
        delivery_latency=np.array([d.latency for m in messages for d in m.deliveries], np.float64),
        _lines=lines, _messages=messages,
    )
