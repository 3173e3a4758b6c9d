"""The steps in order: the server's streams, their lines, and what the lines say.

Mirrors :func:`tcpchatx.analysis.plain.chat.analyze_chat_line_by_line` (the version to read first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tcpchatx.tcp_flags import RST

from ..capture_file import take
from ..packets import Packets
from ..sorting import stable_argsort
from ..tracker import Flows
from ..workers import in_order
from .fanout import fan_out
from .lines import decode_all, find_lines, joined_lines, line_ids
from .model import INVALID, NICKNAME, NONE, Chat, Ids
from .nicks import follow_nicks, nick_at
from .parsing import kinds_of_texts
from .reassembly import Streams, reassemble_all
from .recognise import looks_like_server


def find_server(p: Packets, t: Flows) -> tuple[str, int] | None:
    """The endpoint that answered most connections (the first of them on a tie), among
    those whose server speaks TCPChatX (:mod:`.recognise`): the first endpoint, in that
    order, one of whose connections began, on the server's side, with a segment that
    looks like a TCPChatX server's.  None if none did.  A chat server's first connection
    settles it, so a chat capture reads one segment here (a page of the file, not one
    per connection: the analysis's peak memory is what it was)."""
    endpoint = t.server_address.astype(np.int64) << 16 | t.server_port  # each connection's server
    if not len(endpoint):
        return None
    keys, first_conn, answered = np.unique(endpoint, return_index=True, return_counts=True)
    conns, rows = first_server_segments(p, t)
    segments_of = {}  # endpoint -> the rows of its connections' first server segments, in order
    for key, row in zip(endpoint[conns].tolist(), rows.tolist(), strict=True):
        segments_of.setdefault(key, []).append(row)
    for k in np.lexsort((first_conn, -answered)).tolist():  # most connections first, ties: first seen
        if any(looks_like_server(p.payload(row)) for row in segments_of.get(int(keys[k]), [])):
            return p.addresses[int(keys[k]) >> 16], int(keys[k]) & 0xFFFF
    return None


def first_server_segments(p: Packets, t: Flows) -> tuple[np.ndarray, np.ndarray]:
    """The connections whose server sent data, and the row of the first segment it sent
    in each (not a RST), in connection order."""
    rows = np.flatnonzero(p.payload_len > 0)  # the few columns below are read for these rows only
    rows = rows[(t.direction[rows] == 1) & (t.conn[rows] >= 0) & ((p.flags[rows] & RST) == 0)]
    conns, first = np.unique(t.conn[rows], return_index=True)
    return conns, rows[first]


def _connections_to(p: Packets, t: Flows, server: tuple[str, int]) -> np.ndarray:
    """The ids of the connections whose responder is ``server``."""
    address_ids = [k for k, address in enumerate(p.addresses) if address == server[0]]
    return np.flatnonzero(np.isin(t.server_address, address_ids) & (t.server_port == server[1]))


def analyze_chat(p: Packets, t: Flows, server: tuple[str, int] | None = None) -> Chat:
    """The chat on ``server`` (by default, :func:`find_server`): its lines and messages."""
    server, streams = reassemble_chat(p, t, server)
    lines = find_chat_lines(p, streams, server)
    del streams  # only the distinct lines' bytes are needed from here on
    return read_chat_lines(p, lines)


def reassemble_chat(p: Packets, t: Flows, server: tuple[str, int] | None = None
                    ) -> tuple[tuple[str, int] | None, Streams]:
    """The server (``server``, or :func:`find_server`'s), and its connections' streams."""
    server = server or find_server(p, t)
    server_conns = _connections_to(p, t, server) if server else np.zeros(0, np.int64)
    data = np.flatnonzero((t.conn >= 0) & (p.payload_len > 0) & ((p.flags & RST) == 0))
    data = data[np.isin(t.conn[data], server_conns)]
    group = t.conn[data].astype(np.int64) * 2 + t.direction[data]
    return server, reassemble_all(p, data, group, t.rel_seq[data])


@dataclass
class FoundLines:
    """The chat's lines as :func:`find_chat_lines` finds them: where they are, and the
    bytes of each distinct line (by ``text_of_line``), not yet read."""

    server: tuple[str, int] | None
    conn: np.ndarray
    direction: np.ndarray
    first: np.ndarray  # first and last run of each line's bytes
    last: np.ndarray
    done: np.ndarray  # the row that carried each line's newline
    line_start: np.ndarray  # relative sequence numbers
    line_end: np.ndarray
    text_of_line: np.ndarray  # raw text id (index into distinct)
    distinct: memoryview  # each distinct line, newline included, end to end
    run_frames: np.ndarray
    gaps: int


def find_chat_lines(p: Packets, streams: Streams, server: tuple[str, int] | None) -> FoundLines:
    """The streams cut into lines, and the distinct lines found by their bytes (numpy,
    and two threads: :mod:`.workers`)."""
    stream, start, end = find_lines(streams)
    first = np.searchsorted(streams.run_starts, start, "right") - 1
    last = np.searchsorted(streams.run_starts, end - 1, "right") - 1
    done = streams.run_rows[last]  # the row that carried each line's newline
    g = streams.group[stream]
    local = start - streams.begin[stream]  # offset inside its own stream
    # By completing frame; a frame's lines are in stream order, as find_lines gave them
    # (one frame carries bytes of one stream only).
    order = stable_argsort(p.frame[done])
    del stream
    start, end, local, g = (x[order] for x in (start, end, local, g))
    first, last, done = (x[order].astype(np.int32) for x in (first, last, done))
    conn = (g >> 1).astype(np.int32)
    direction = (g & 1).astype(np.int8)
    line_start, line_end = local + 1, local + (end - start) + 1  # relative seq numbers
    del order, g, local

    # ---- each distinct text, once (same lines found by a hash: line_ids)
    text_of_line, firsts = line_ids(streams.data, start, end)
    distinct = joined_lines(streams.data, start[firsts], end[firsts])
    del start, end, firsts
    return FoundLines(server, conn, direction, first, last, done, line_start, line_end,
                      text_of_line, distinct, p.frame[streams.run_rows], len(streams.gaps))


def read_chat_lines(p: Packets, found: FoundLines) -> Chat:
    """What each line says (decoded, parsed: Python's work, one text at a time), who
    sent it to whom, and each message's deliveries.

    ``found`` is used up: its bytes and line ids are let go of as soon as they are
    read (they would otherwise be held through the fan-out, the peak of memory).
    """
    f = found
    server, conn, direction, first, last, done = f.server, f.conn, f.direction, f.first, f.last, f.done
    text_of_line, distinct = f.text_of_line, f.distinct
    f.done = f.text_of_line = f.distinct = None
    texts = decode_all(distinct)
    del distinct
    if None in texts:  # some lines are invalid (not UTF-8, too long): renumber the valid ones
        valid = [text is not None for text in texts]
        text_id = np.full(len(texts), NONE, dtype=np.int32)  # raw id -> valid text id
        text_id[valid] = np.arange(sum(valid))
        texts = [text for text in texts if text is not None]
        line_text = text_id[text_of_line]
        del text_id
    else:  # the usual case: the raw ids are the valid ids
        line_text = text_of_line
    del text_of_line
    valid = line_text >= 0

    nicks, commands = Ids(), Ids()
    kinds = kinds_of_texts(texts, line_text, direction, nicks, commands)
    n = len(line_text)
    line_kind = np.full(n, INVALID, dtype=np.uint8)
    server_line = valid & (direction == 1)
    client_line = valid & (direction == 0)
    st = line_text[server_line]
    line_kind[server_line] = kinds.server_kind[st]
    line_nick = np.full(n, NONE, dtype=np.int32)
    line_nick[server_line] = kinds.server_nick[st]
    line_command = np.full(n, NONE, dtype=np.int16)

    # ---- nicknames over time
    n_conn = int(conn.max()) + 1 if len(conn) else 0
    ids = np.arange(n)
    welcome = server_line & (kinds.welcome[line_text] >= 0)
    first_welcome = np.full(n_conn + 1, n, dtype=np.int64)
    np.minimum.at(first_welcome, conn[welcome], ids[welcome])
    before_welcome = client_line & (ids < first_welcome[conn])
    rename = server_line & (kinds.rename_from[line_text] >= 0)
    sets_nick = before_welcome & ~kinds.slash[line_text]
    changes, nick_of_conn = follow_nicks(
        np.flatnonzero(welcome | rename | sets_nick).tolist(), line_text, conn, direction,
        kinds, texts, nicks)
    # A server line goes to the nick its connection had *before* it; a client line
    # is from the nick its connection had *after* it (its own first line sets it).
    # (Two binary searches over hundreds of thousands of lines: both at once.)
    line_recipient = np.full(n, NONE, dtype=np.int32)
    asked = ((conn[server_line], ids[server_line], n, False), (conn[client_line], ids[client_line], n, True))
    line_recipient[server_line], line_nick[client_line] = in_order(lambda ask: nick_at(changes, *ask), asked)
    del asked
    line_kind[before_welcome] = NICKNAME
    after_welcome = client_line & ~before_welcome
    ct = line_text[after_welcome]
    line_kind[after_welcome] = kinds.client_kind[ct]
    line_command[after_welcome] = kinds.client_command[ct]

    tps = take(p.ts_tps, done)  # one resolution for all packets: no memory per line
    chat = Chat(
        server=server, nick_of_conn=nick_of_conn, gaps=f.gaps,
        texts=texts, nicks=nicks.names, commands=commands.names,
        run_frames=f.run_frames,
        line_conn=conn, line_direction=direction, line_text=line_text, line_kind=line_kind,
        line_nick=line_nick, line_command=line_command, line_recipient=line_recipient,
        line_start=f.line_start, line_end=f.line_end,
        line_first_run=first, line_last_run=last,
        line_frame=p.frame[done],
        line_time=p.seconds(done), line_ticks=p.ts_ticks[done],
        line_per_second=tps,
        msg_line=np.zeros(0, np.int64), msg_kind=np.zeros(0, np.int8), msg_payload=np.zeros(0, np.int32),
        msg_text_id=np.zeros(0, np.int32), payloads=[], addressee_of_text=[],
        delivery_start=np.zeros(1, np.int64), delivery_line=np.zeros(0, np.int64),
        delivery_latency=np.zeros(0, np.float64),
    )
    del ids, done, st, ct, welcome, rename, sets_nick, before_welcome
    fan_out(chat, kinds, after_welcome)
    return chat
