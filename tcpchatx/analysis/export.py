"""The analysis as plain JSON-ready data (format: docs/analysis-json.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from json.encoder import encode_basestring_ascii as _escape  # what json.dumps uses
from string import Formatter
from typing import TextIO

import numpy as np

from .chat import LINE_KIND_NAMES, MESSAGE_KINDS
from .expert import EVENT_BIT, NO_FRAME, Expert
from .labels import (
    CLOSE_KINDS,
    DIRECTIONS,
    FLAG_STRINGS,
    OFFLOAD_NOTE,
    PHASES,
    ROLE_NAMES,
    UNTRACKED_NOTE,
    ZEEK_CONN_STATES,
    flag_string,
)
from .packets import exact_ratio, unique_codes
from .plain.expert import EVENTS
from .skipped import report as skipped_report
from .states import STEPS, SegmentKind, State

FORMAT_VERSION = 1


def to_json(a, notes: bool = True) -> dict:
    """``{"format", "capture", "server", "connections", "packets", "lines", "messages"}``.

    Every value is a str, int, float, bool, None, list or dict, so
    ``json.dumps(to_json(a))`` works.  ``notes=False`` leaves out the sentences.
    """
    data = to_json_header(a)
    data["packets"] = _packet_dicts(a, notes)
    data["lines"] = [asdict(line) for line in a.lines]
    data["messages"] = [asdict(m) for m in a.messages]
    return data


def to_json_header(a) -> dict:
    """Everything of :func:`to_json` but the per-packet, per-line and per-message lists."""
    p = a.packets
    connections = []
    for c in a.connections:
        connections.append({
            "conn": c.id,
            "client": {"address": c.client[0], "port": c.client[1]},
            "server": {"address": c.server[0], "port": c.server[1]},
            "nick": a.chat.nick_of_conn.get(c.id),
            "isn": {"client": c.isn[0], "server": c.isn[1]},
            "packets": {"client": c.packets[0], "server": c.packets[1]},
            "bytes": {"client": c.payload_bytes[0], "server": c.payload_bytes[1]},
            "first_frame": c.first_frame, "last_frame": c.last_frame,
            "start": c.start, "duration": c.duration,
            "conn_state": c.conn_state, "conn_state_meaning": ZEEK_CONN_STATES[c.conn_state],
            "history": c.history,
            "zeek_connections": [
                {"frames": [z.first, z.last], "packets": z.packets, "conn_state": z.conn_state,
                 "history": z.history, "ended_by": z.ended_by} for z in c.zeek_connections],
            "close_kind": c.close_kind, "close_kind_meaning": CLOSE_KINDS[c.close_kind],
            "active_closer": c.active_closer,
            "final_state": c.final_state,
            "handshake_frames": c.handshake_frames,
        })
    return {
        "format": {"name": "tcpchatx-analysis", "version": FORMAT_VERSION, "phases": PHASES},
        "capture": {"path": a.path, "frames": len(p), "kind": p.index.kind,
                    "not_tcp": skipped_report(p.skipped), "length_from_frame": len(p.length_from_frame),
                    "bad_checksums": None if a.checksums is None else int((a.checksums == 0).sum())},
        "server": None if a.chat.server is None else
        {"address": a.chat.server[0], "port": a.chat.server[1]},
        "connections": connections,
    }


def _packet_dicts(a, notes: bool) -> list[dict]:
    p, t = a.packets, a.tracking
    _ = a.lines  # build every line once: lines_of_frame then slices that list
    packets = []
    for i in range(len(p)):
        step = a.step(i)
        row = {
            "frame": int(p.frame[i]),
            "time": float(p.seconds(i)),
            "ts_ticks": int(p.ts_ticks[i]),
            "ts_per_second": int(p.ts_tps[i]),
            "tcp": bool(p.is_tcp[i]),
            "phase": str(a.phase[i]),
        }
        if p.is_tcp[i]:
            row |= {
                "src": p.addresses[p.src[i]], "sport": int(p.sport[i]),
                "dst": p.addresses[p.dst[i]], "dport": int(p.dport[i]),
                "flags": flag_string(int(p.flags[i])),
                "seq": int(t.rel_seq[i]), "ack": int(t.rel_ack[i]), "len": int(p.payload_len[i]),
                "conn": int(t.conn[i]), "direction": a.direction(i),
                "step": step.name if step else None,
            }
            if notes:
                row["note"] = a.step_note(i)
        row |= expert_keys(a.expert, i)
        if i in a.offloaded:
            row["length_from_frame"] = OFFLOAD_NOTE
        if p.is_tcp[i]:
            lines = a.lines_of_frame(int(p.frame[i]))
            if lines:
                row["lines"] = [line.id for line in lines]
        packets.append(row)
    return packets


def expert_keys(x: Expert, i: int) -> dict:
    """Row ``i``'s findings of Wireshark's expert analysis, under Wireshark's names
    (``tcp.analysis.<name>``); every packet has these keys."""
    acked, dup = x.acks_frame[i] != NO_FRAME, x.duplicate_ack(i)
    return {
        "analysis": x.names(i),
        "acks_frame": int(x.acks_frame[i]) if acked else None,
        "ack_rtt": float(x.ack_rtt([i])[0]) if acked else None,
        "bytes_in_flight": int(x.bytes_in_flight[i]) if x.bytes_in_flight[i] >= 0 else None,
        "duplicate_ack": {"of_frame": dup[0], "number": dup[1]} if dup else None,
    }


# --------------------------------------------------------------------------- streaming
#
# How write_json is fast
# ----------------------
# Every packet makes a row of JSON.  Formatting them one at a time (a dict, or a
# ``%`` per row) runs Python code for each row.  Here a chunk of rows is
# formatted by ONE ``%`` operation (:func:`_format_rows`):
#
# * the text of the rows - keys, and the strings that repeat: addresses, flags,
#   steps, note sentences, chat texts, nicks - comes from tables of ready-made JSON
#   (each distinct string escaped once), picked for every row at once by numpy
#   indexing, and joined into one %-template;
# * the numbers are numpy columns, stacked and flattened row by row into the
#   template's arguments.
#
# Python does per-row work only for rare rows (a frame completing several lines, a
# float whose repr has no shortcut) and for timestamps of clocks finer than a
# microsecond (their ticks are beyond exact floats); ``%`` writes the digits in C.


def write_json(a, fp: TextIO, notes: bool = True, after_each_list: Callable[[], None] | None = None) -> None:
    """Write ``to_json(a, notes)`` as JSON text to ``fp``, without building it first.

    ``json.loads`` of the output equals ``to_json(a, notes)``.  The layout differs
    from ``json.dump(..., indent=1)``: each packet, line and message is one line of
    compact JSON, so each packet is a line one can ``grep``.  Rows
    are written a chunk at a time, so memory stays bounded.  ``after_each_list`` is
    called once the packets and once the lines are written: the command passes
    :func:`tcpchatx.memory.release_freed_memory` there, as each list's chunks have
    their own sizes.
    """
    data = to_json_header(a)
    fp.write("{\n")
    for key in ("format", "capture", "server"):
        fp.write(f" {json.dumps(key)}: {json.dumps(data[key])},\n")
    fp.write(' "connections": [')
    _write_list(fp, ["".join(ROW + json.dumps(c, separators=(",", ":")) for c in data["connections"])])
    fp.write('],\n "packets": [')
    _write_list(fp, _packet_chunks(a, notes))
    if after_each_list:
        after_each_list()
    fp.write('],\n "lines": [')
    _write_list(fp, _line_chunks(a))
    if after_each_list:
        after_each_list()
    fp.write('],\n "messages": [')
    _write_list(fp, _message_chunks(a))
    fp.write("]\n}\n")


ROW = ",\n  "  # what comes before each row of a list (the list's first comma is dropped)
CHUNK = 1 << 13  # rows formatted at a time: a few MB of text


def _write_list(fp: TextIO, chunks: Iterable[str]) -> None:
    """Write the rows of a list (each chunk is rows, each starting with ``ROW``)."""
    first = True
    for text in chunks:
        if text:
            fp.write(text[1:] if first else text)
            first = False
    if not first:
        fp.write("\n ")


def _format_rows(parts: list, numbers: list[np.ndarray], used: np.ndarray) -> str:
    """Rows of text and numbers, formatted with one ``%``.

    ``parts`` are the pieces of text of every row, in order: a str (the same in every
    row) or an object array (one str per row).  Joined row after row they are one
    %-template, with a ``%d`` (or ``%03d``...) for each number a row shows; so a
    literal "%" in a part must be written "%%" (see :func:`_piece`).  ``numbers`` are
    integer columns, in the order of the placeholders; ``used[i, j]`` says whether
    row ``i`` shows number ``j``.
    """
    merged: list = []  # neighbouring constant parts as one
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    cells = np.empty((len(numbers[0]), len(merged)), dtype=object)
    for j, part in enumerate(merged):
        cells[:, j] = part
    template = "".join(cells.ravel().tolist()).encode("ascii")  # JSON text here is ASCII
    values = np.column_stack([np.asarray(x, dtype=np.int64) for x in numbers])  # never floats
    values = values[used]  # row by row
    # bytes % copies the text between placeholders with memcpy; str % reads it
    # character by character: twice as slow in all.
    return (template % tuple(values.tolist())).decode("ascii")


def _piece(text: str | None) -> str:
    """``text`` as a JSON string (``null`` for None) that can go into a %-template."""
    return "null" if text is None else _escape(text).replace("%", "%%")


def _pieces(texts: list) -> np.ndarray:
    """:func:`_piece` of each text, plus ``null`` at the end: index -1 (no text) picks it."""
    return np.array([_piece(x) for x in texts] + ["null"], dtype=object)


def _as_text(values: np.ndarray) -> np.ndarray:
    """Integers as parts of the rows' text rather than numbers to format.

    For columns of few distinct values (ticks per second, a direction): each distinct
    one is written once, which is cheaper than a ``%d`` in every row.
    """
    distinct, inverse = unique_codes(values)
    return np.array([str(x) for x in distinct.tolist()], dtype=object)[inverse]


# --------------------------------------------------------------------------- floats


DECIMAL_PLACES = {10**k: k for k in range(10)}  # ticks per second -> digits after the point
SHORTEST = 6  # up to 10**6 ticks per second, the exact decimal is also what repr writes


def _seconds(values: np.ndarray, ticks: np.ndarray, per_second: np.ndarray):
    """Each float as JSON text that reads back as the same float: ``(part, digits, fast)``.

    ``repr`` writes the shortest decimal that reads back as the same float, and it is
    slow: a Python float and a call for each value, and a search for the digits.
    When a float is ``ticks / per_second`` rounded once, with ``per_second = 10**k``,
    the exact decimal of that fraction (the ticks with a point k digits from the
    right) reads back as the same float, since reading rounds it the same way.  We check "rounded once" for each value against
    :func:`.packets.exact_ratio`.

    For k <= 6 (microsecond captures) and floats below 2**33, that decimal is also
    repr's: every other decimal with at most k digits after the point is at least
    10**-k away, more than the gap between two floats there (at most 2**-20), so it
    reads back as another float.  From 1e-4 to 1e16 ``repr`` writes no exponent, and
    drops trailing zeros but keeps one digit after the point.  So microsecond
    captures are written exactly as ``json.dumps`` would.  For nanosecond clocks the
    exact decimal may have more digits than repr (``1795529633.229972811`` where repr
    writes ``1795529633.2299728``): the same float, and the capture's own timestamp.

    Such a *fast* float is written as the part ``"1700000000.%03d"`` (the whole seconds
    repeat from row to row: each distinct part is made once) and the number
    ``digits`` after the point.  Any other float's part is its ``repr`` (and its
    ``digits`` are not used).
    """
    places = np.full(len(values), -1, dtype=np.int64)
    for tps, k in DECIMAL_PLACES.items():
        places[per_second == tps] = k
    coarse = (places >= 0) & (places <= SHORTEST)
    fine = places > SHORTEST
    exact = exact_ratio(ticks, np.where(coarse | fine, per_second, 1))
    in_repr_range = ((values >= 1e-4) & (values < 2.0**33)) | (values == 0)
    fast = (coarse & in_repr_range | fine) & (values == exact) & ~np.signbit(values)
    whole, digits = np.divmod(np.where(fast, ticks, 0), np.where(fast, per_second, 1))
    places = np.maximum(places, 1)
    for _ in range(max(DECIMAL_PLACES.values())):  # drop trailing zeros (keep one digit)
        zero = (places > 1) & (digits % 10 == 0)
        digits = np.where(zero, digits // 10, digits)
        places -= zero
    part = np.empty(len(values), dtype=object)
    keys, inverse = unique_codes((whole * 16 + places)[fast])  # places <= 9: close together
    part[fast] = np.array([f"{key >> 4}.%0{key & 15}d" for key in keys.tolist()], dtype=object)[inverse]
    slow = np.flatnonzero(~fast)
    if len(slow):  # each distinct float's repr once (a 12 µs RTT comes back again and again)
        distinct, inverse = unique_codes(values[slow].view(np.int64))  # bits: -0.0 is not 0.0
        part[slow] = np.array([repr(x) for x in distinct.view(np.float64).tolist()], dtype=object)[inverse]
    return part, digits, fast


# --------------------------------------------------------------------------- packets


def _packet_chunks(a, notes: bool) -> Iterator[str]:
    """The packets' rows, ``CHUNK`` at a time."""
    rows = _PacketRows(a, notes)
    n = len(a.packets)
    for lo in range(0, n, CHUNK):
        yield _format_rows(*rows.parts(lo, min(n, lo + CHUNK)))


class _PacketRows:
    """The ready-made JSON of packet rows, and how to pick it for a range of rows.

    A TCP row is made of these parts (``%d`` where a number goes)::

        ,\\n  {"frame":%d,"time":   1700000000.%06d   ,"ts_ticks":%d,"ts_per_second":   1000000
        ,"tcp":true,"phase":"data"   ,"src":"10.0.0.1","sport":40000,"dst":...,"dport":25000
        ,"flags":"AP"   ,"seq":%d,"ack":%d,"len":%d,"conn":%d,"direction":"originator",
        "step":"DATA","note":"Client sends %d bytes (relative seq %d..%d)."
        ,"analysis":[],"acks_frame":%d,"ack_rtt":   0.%06d   ,"bytes_in_flight":%d
        ,"duplicate_ack":null   }

    Whether the frame is TCP, its phase, the words of its step and note depend on
    the row's *body*: 0 not TCP, 1 a TCP frame no connection claimed, and
    ``2 + 2 * step + direction``; the note's numbers (``{len}``, ``{seq}``...) are
    numbers of the row like the others.  A non-TCP row goes from its phase straight
    to the expert analysis's keys (:meth:`_expert`).
    """

    NOTE_NUMBERS = ("isn", "len", "seq", "seq_end", "ack", "port")  # rows of note_values in parts()

    def __init__(self, a, notes: bool):
        self.a = a
        self.flags = np.array([',"flags":' + _piece(s) for s in FLAG_STRINGS] + [""], dtype=object)
        self.port = np.array([c.server[1] for c in a.connections] + [0], dtype=np.int64)
        self._endpoint_table()
        heads, middles, note_numbers = [], [], []
        for body in range(2 + 2 * len(STEPS)):
            if body < 2:
                phase, direction, step = "other", "null", "null"
                note, numbers = _piece(UNTRACKED_NOTE), []
            else:
                step_id, d = divmod(body - 2, 2)
                phase, step = STEPS[step_id].phase, _piece(STEPS[step_id].name)
                direction = _piece(DIRECTIONS[d])
                note, numbers = _note_template(step_id, d)
            heads.append(',"tcp":' + ("true" if body else "false") + ',"phase":' + _piece(phase))
            middle = ',"seq":%d,"ack":%d,"len":%d,"conn":%d,"direction":' + direction + ',"step":' + step
            middles.append("" if body == 0 else middle + (',"note":' + note if notes else ""))
            note_numbers.append([self.NOTE_NUMBERS.index(x) for x in numbers] if notes else [])
        self.heads = np.array(heads, dtype=object)
        self.middles = np.array(middles, dtype=object)
        width = max(map(len, note_numbers))  # -1: no number there
        self.note_numbers = np.array([x + [-1] * (width - len(x)) for x in note_numbers], dtype=np.int64)
        self.line_ends = np.array(["}", ',"lines":[%d]}'], dtype=object)
        self.offloaded_piece = ',"length_from_frame":' + _piece(OFFLOAD_NOTE)  # by number of lines (0, 1)
        self.acks = np.array([',"acks_frame":null,"ack_rtt":null', ',"acks_frame":%d,"ack_rtt":'], dtype=object)
        self.tails = np.array([',"bytes_in_flight":null,"duplicate_ack":null',  # by 2 * in flight + duplicate
                               ',"bytes_in_flight":null,"duplicate_ack":{"of_frame":%d,"number":%d}',
                               ',"bytes_in_flight":%d,"duplicate_ack":null',
                               ',"bytes_in_flight":%d,"duplicate_ack":{"of_frame":%d,"number":%d}'], dtype=object)

    def _endpoint_table(self) -> None:
        """',"src":...,"dport":N' of each (connection, direction), and those four values.

        Every packet of a connection has its endpoints; each chunk checks it, row by row.
        """
        address_id = {x: i for i, x in enumerate(self.a.packets.addresses)}
        pieces, values = [], []
        for c in self.a.connections:
            for (src, sport), (dst, dport) in ((c.client, c.server), (c.server, c.client)):
                pieces.append(_endpoints_piece(src, sport, dst, dport))
                values.append((address_id.get(src, -1), sport, address_id.get(dst, -1), dport))
        self.endpoints = np.array(pieces + [""], dtype=object)
        self.endpoint_values = np.array(values + [(-1, -1, -1, -1)], dtype=np.int64).reshape(-1, 4)

    def parts(self, lo: int, hi: int) -> tuple[list, list, np.ndarray]:
        """The arguments of :func:`_format_rows` for rows ``lo`` to ``hi - 1``."""
        p, t = self.a.packets, self.a.tracking
        r, k = slice(lo, hi), hi - lo
        tcp, step, conn = p.is_tcp[r], t.step[r].astype(np.int64), t.conn[r]
        tracked = tcp & (step >= 0)
        body = np.where(tracked, 2 + 2 * step + t.direction[r], tcp.astype(np.int64))
        time, time_digits, fast = _seconds(p.seconds(r), p.ts_ticks[r], p.ts_tps[r])
        seq, ack, length = t.rel_seq[r], t.rel_ack[r], p.payload_len[r]
        which = self.note_numbers[body]  # (rows, width): the NOTE_NUMBERS the note shows
        notes = []
        if which.shape[1]:  # width 0: written without notes
            port = self.port[np.where(tracked, conn, -1)]
            note_values = np.stack([p.seq[r], length, seq, seq + np.maximum(length, 1) - 1, ack, port])
            notes = [note_values[np.maximum(w, 0), np.arange(k)] for w in which.T]
        first_line, line_end = self._lines(p.frame[r], tcp)
        for i in self._offloaded_in(lo, hi):  # rare: a capture made on the sending host
            line_end[i - lo] = self.offloaded_piece + line_end[i - lo]
        flags = np.where(tcp, p.flags[r] & 0x1FF, len(FLAG_STRINGS))  # the last entry is ""
        expert_parts, expert_numbers, expert_used = self._expert(r)
        parts = [ROW + '{"frame":%d,"time":', time,
                 ',"ts_ticks":%d,"ts_per_second":', _as_text(p.ts_tps[r]), self.heads[body],
                 self._endpoints(r, tcp, tracked), self.flags[flags], self.middles[body], *expert_parts, line_end]
        numbers = [p.frame[r], time_digits, p.ts_ticks[r], seq, ack, length, conn, *notes, *expert_numbers,
                   first_line]
        always = np.ones(k, bool)
        used = np.column_stack([always, fast, always, np.repeat(tcp[:, None], 4, axis=1),
                                which >= 0, expert_used, first_line >= 0])
        return parts, numbers, used

    def _expert(self, r: slice) -> tuple[list, list, np.ndarray]:
        """The expert analysis's keys of rows ``r`` (:func:`expert_keys`): three parts,
        the numbers (acks_frame, ack_rtt's digits, bytes_in_flight, duplicate_ack's
        of_frame and number) and which rows show them.

        The first part is the findings' list, picked by their bits (a capture has few
        distinct sets of findings), joined with the start of ``acks_frame``; the second
        ``ack_rtt``'s float (:func:`_seconds`); the third the last two keys."""
        x, p = self.a.expert, self.a.packets
        events, acks_frame = x.events[r], x.acks_frame[r]
        kinds, kind = unique_codes(events)
        analysis = [',"analysis":[' + ",".join(f'"{name}"' for name in EVENTS if bits & EVENT_BIT[name]) + "]"
                    for bits in kinds.tolist()]
        acked = acks_frame != NO_FRAME
        heads = np.array([text + ack for text in analysis for ack in self.acks], dtype=object)
        rtt, rtt_digits = np.full(len(events), "", dtype=object), np.zeros(len(events), np.int64)
        rtt_fast = np.zeros(len(events), bool)
        shown = np.flatnonzero(acked)
        if len(shown):  # the RTT is a number of ticks: written as the frames' times are
            rows, earlier = r.start + shown, acks_frame[shown].astype(np.int64) - 1  # frame -> row
            per_second = p.ts_tps[rows]
            same_clock = per_second == p.ts_tps[earlier]
            rtt[shown], rtt_digits[shown], rtt_fast[shown] = _seconds(
                x.ack_rtt(rows), p.ts_ticks[rows] - p.ts_ticks[earlier], np.where(same_clock, per_second, 0))
        in_flight = x.bytes_in_flight[r]
        dup, of_frame, number = x.duplicate_acks.of(np.arange(r.start, r.stop))
        parts = [heads[kind * 2 + acked], rtt, self.tails[(in_flight >= 0) * 2 + dup]]
        numbers = [acks_frame, rtt_digits, in_flight, of_frame, number]
        used = np.column_stack([acked, rtt_fast, in_flight >= 0, dup, dup])
        return parts, numbers, used

    def _endpoints(self, r: slice, tcp: np.ndarray, tracked: np.ndarray) -> np.ndarray:
        """Each TCP row's endpoints: its connection's, checked; or written for that row."""
        p, t = self.a.packets, self.a.tracking
        code = np.where(tracked, t.conn[r].astype(np.int64) * 2 + t.direction[r], -1)
        values = np.column_stack([p.src[r], p.sport[r], p.dst[r], p.dport[r]])
        same = (self.endpoint_values[code] == values).all(axis=1)
        pieces = self.endpoints[np.where(tracked & same, code, -1)]
        for i in np.flatnonzero(tcp & ~(tracked & same)).tolist():
            j = r.start + i
            pieces[i] = _endpoints_piece(p.addresses[p.src[j]], int(p.sport[j]), p.addresses[p.dst[j]],
                                         int(p.dport[j]))
        return pieces

    def _offloaded_in(self, lo: int, hi: int) -> list[int]:
        rows = self.a.packets.length_from_frame
        return rows[(rows >= lo) & (rows < hi)].tolist()

    def _lines(self, frames: np.ndarray, tcp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first line each frame completed (-1: none), and the row's end: ``,"lines":[...]}``."""
        line_frame = self.a.chat.line_frame  # sorted: the lines of a frame are a range
        first = np.searchsorted(line_frame, frames, "left")
        count = np.where(tcp, np.searchsorted(line_frame, frames, "right") - first, 0)
        end = self.line_ends[np.minimum(count, 1)]
        for i in np.flatnonzero(count > 1).tolist():  # the others are text
            end[i] = ',"lines":[%d,' + ",".join(map(str, range(first[i] + 1, first[i] + count[i]))) + "]}"
        return np.where(count > 0, first, -1), end


def _endpoints_piece(src: str, sport: int, dst: str, dport: int) -> str:
    return f',"src":{_piece(src)},"sport":{sport},"dst":{_piece(dst)},"dport":{dport}'


def _note_template(step_id: int, d: int) -> tuple[str, list[str]]:
    """The note of a step sent in direction ``d``, as a JSON string with ``%d`` for its
    numbers, and the names of those numbers in order.

    The words (Sender, peer, state) are the same for every packet of that step and
    direction, so they are filled in here, once.
    """
    state = State(step_id // len(SegmentKind)).name  # STEPS is numbered state-major
    sender, peer = ROLE_NAMES[DIRECTIONS[d]], ROLE_NAMES[DIRECTIONS[1 - d]]
    words = {"Sender": sender.capitalize(), "sender": sender, "peer": peer, "state": state}
    text, numbers = "", []
    for literal, name, spec, conversion in Formatter().parse(STEPS[step_id].note):
        text += literal.replace("%", "%%")
        if name is None:
            continue
        assert not spec and conversion is None, "notes use plain {name} fields"
        if name in words:
            text += words[name].replace("%", "%%")
        else:
            text += "%d"
            numbers.append(name)
    return _escape(text), numbers


# --------------------------------------------------------------------------- lines


def _line_chunks(a) -> Iterator[str]:
    """One JSON object per line, straight from the chat's columns (no ChatLine objects)."""
    chat = a.chat
    texts, nicks, commands = _pieces(chat.texts), _pieces(chat.nicks), _pieces(chat.commands)
    kinds = _pieces(LINE_KIND_NAMES)
    for lo in range(0, chat.n_lines, CHUNK):
        r = slice(lo, min(chat.n_lines, lo + CHUNK))
        first, last = chat.line_first_run[r], chat.line_last_run[r]
        frames = np.full(len(first), "%d", dtype=object)  # the first frame is a number
        for i in np.flatnonzero(first != last).tolist():  # the others are text
            frames[i] = "%d," + ",".join(map(str, chat.run_frames[first[i] + 1 : last[i] + 1].tolist()))
        time, time_digits, fast = _seconds(chat.line_time[r], chat.line_ticks[r], chat.line_per_second[r])
        parts = [ROW + '{"id":%d,"conn":%d,"direction":', _as_text(chat.line_direction[r]),
                 ',"text":', texts[chat.line_text[r]], ',"kind":', kinds[chat.line_kind[r]],
                 ',"nick":', nicks[chat.line_nick[r]], ',"command":', commands[chat.line_command[r]],
                 ',"start":%d,"end":%d,"frames":[', frames, '],"frame":%d,"time":', time,
                 ',"recipient":', nicks[chat.line_recipient[r]],
                 ',"ticks":%d,"per_second":', _as_text(chat.line_per_second[r]), "}"]
        numbers = [np.arange(r.start, r.stop), chat.line_conn[r], chat.line_start[r], chat.line_end[r],
                   chat.run_frames[first], chat.line_frame[r],
                   time_digits, chat.line_ticks[r]]
        used = np.ones((len(first), len(numbers)), bool)
        used[:, 6] = fast
        yield _format_rows(parts, numbers, used)


# --------------------------------------------------------------------------- messages


def _message_chunks(a) -> Iterator[str]:
    """One JSON object per message, with its deliveries, from the chat's columns.

    A message has any number of deliveries, so its row is made of two strings: the
    message's own fields, and its deliveries.  Each is formatted for the whole chunk
    at once and cut apart at ``\\n`` (JSON never has a raw newline inside a string).
    """
    chat = a.chat
    nicks = _pieces(chat.nicks)
    kinds = _pieces(list(MESSAGE_KINDS))
    for lo in range(0, chat.n_messages, CHUNK):
        hi = min(chat.n_messages, lo + CHUNK)
        line = chat.msg_line[lo:hi]
        time, time_digits, fast = _seconds(chat.line_time[line], chat.line_ticks[line],
                                           chat.line_per_second[line])
        parts = ['{"id":%d,"kind":', kinds[chat.msg_kind[lo:hi].astype(np.int64)],
                 ',"conn":%d,"sender":', nicks[chat.line_nick[line]],
                 ',"text":', _pieces(chat.msg_text[lo:hi])[:-1], ',"to":', _pieces(chat.msg_to[lo:hi])[:-1],
                 ',"frame":%d,"time":', time, ',"line":%d,"deliveries":[\n']
        numbers = [np.arange(lo, hi), chat.line_conn[line], chat.line_frame[line], time_digits, line]
        used = np.ones((hi - lo, len(numbers)), bool)
        used[:, 3] = fast
        rows = np.empty((hi - lo, 4), dtype=object)
        rows[:, 0] = ROW
        rows[:, 1] = _format_rows(parts, numbers, used).split("\n")[:-1]
        rows[:, 2] = _deliveries(chat, lo, hi, nicks)
        rows[:, 3] = "]}"
        yield "".join(rows.ravel().tolist())


def _deliveries(chat, lo: int, hi: int, nicks: np.ndarray) -> np.ndarray:
    """The deliveries of messages ``lo`` to ``hi - 1``, as one string per message."""
    start = chat.delivery_start[lo : hi + 1]
    out = np.full(hi - lo, "", dtype=object)
    if start[-1] == start[0]:
        return out
    d = slice(int(start[0]), int(start[-1]))
    line = chat.delivery_line[d]
    sent = chat.msg_line[np.repeat(np.arange(lo, hi), np.diff(start))]  # the message's line
    per_second = chat.line_per_second[line]
    time, time_digits, time_fast = _seconds(chat.line_time[line], chat.line_ticks[line], per_second)
    latency, latency_digits, latency_fast = _seconds(
        chat.delivery_latency[d], chat.line_ticks[line] - chat.line_ticks[sent], per_second)
    is_last = np.zeros(len(line), dtype=np.int64)  # of its message's deliveries
    is_last[start[1:][start[1:] > start[:-1]] - start[0] - 1] = 1
    parts = ['{"recipient":', nicks[chat.line_recipient[line]], ',"conn":%d,"frame":%d,"time":', time,
             ',"latency":', latency, ',"line":%d}', np.array([",", "\n"], dtype=object)[is_last]]
    numbers = [chat.line_conn[line], chat.line_frame[line], time_digits, latency_digits, line]
    used = np.ones((len(line), len(numbers)), bool)
    used[:, 2] = time_fast
    used[:, 3] = latency_fast
    out[start[1:] > start[:-1]] = _format_rows(parts, numbers, used).split("\n")[:-1]
    return out
