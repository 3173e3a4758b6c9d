"""The analysis as plain JSON-ready data (format: docs/analysis-json.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from json.encoder import encode_basestring_ascii as _escape  # what json.dumps uses
from typing import TextIO

import numpy as np

from .chat import KIND_NAMES
from .labels import (
    CLOSE_KINDS,
    DIRECTIONS,
    FLAG_STRINGS,
    PHASES,
    ROLE_NAMES,
    ZEEK_CONN_STATES,
    flag_string,
)
from .states import STEPS, Kind, State

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
            "close_kind": c.close_kind, "close_kind_meaning": CLOSE_KINDS[c.close_kind],
            "active_closer": c.active_closer,
            "final_state": c.final_state,
            "handshake_frames": c.handshake_frames,
        })
    return {
        "format": {"name": "tcpchatx-analysis", "version": FORMAT_VERSION, "phases": PHASES},
        "capture": {"path": a.path, "frames": len(p), "kind": p.index.kind},
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
            "time": float(p.time[i]),
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
                row["note"] = a.note(i)
            lines = a.lines_of_frame(int(p.frame[i]))
            if lines:
                row["lines"] = [line.id for line in lines]
        packets.append(row)
    return packets


# --------------------------------------------------------------------------- streaming


def write_json(a, fp: TextIO, notes: bool = True) -> None:
    """Write ``to_json(a, notes)`` as JSON text to ``fp``, without building it first.

    ``json.loads`` of the output equals ``to_json(a, notes)``.  The layout differs
    from ``json.dump(..., indent=1)``: each packet, line and message is one line of
    compact JSON, so a million packets is a million lines one can ``grep``.  Rows
    are formatted from per-column lists (strings that repeat - addresses, flags,
    steps - are escaped once), in chunks, so memory stays bounded.
    """
    data = to_json_header(a)
    fp.write("{\n")
    for key in ("format", "capture", "server"):
        fp.write(f" {json.dumps(key)}: {json.dumps(data[key])},\n")
    fp.write(' "connections": [')
    _write_rows(fp, (json.dumps(c, separators=(",", ":")) for c in data["connections"]))
    fp.write('],\n "packets": [')
    _write_rows(fp, _packet_rows(a, notes))
    fp.write('],\n "lines": [')
    _write_rows(fp, _line_rows(a))
    fp.write('],\n "messages": [')
    _write_rows(fp, _message_rows(a))
    fp.write("]\n}\n")


def _write_rows(fp: TextIO, rows: Iterable[str], chunk: int = 1 << 14) -> None:
    batch: list[str] = []
    sep = "\n  "
    first = True
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            fp.write(("" if first else ",") + sep + ("," + sep).join(batch))
            first = False
            batch.clear()
    if batch:
        fp.write(("" if first else ",") + sep + ("," + sep).join(batch))
    if not first or batch:
        fp.write("\n ")


def _string(value) -> str:
    return "null" if value is None else _escape(value)


def _packet_rows(a, notes: bool) -> Iterator[str]:
    p, t = a.packets, a.tracking
    address = [_escape(x) for x in p.addresses]
    flags = [_escape(FLAG_STRINGS[v]) for v in range(512)]
    step_name = [_escape(s.name) for s in STEPS]
    direction = [_escape(d) for d in DIRECTIONS]
    phase_of_step = [_escape(s.phase) for s in STEPS] + [_escape("other")]
    line_frame = a.chat.line_frame  # sorted: line ids of a frame are a range
    note_of = _note_maker(a) if notes else None
    head = '{"frame":%d,"time":%r,"ts_ticks":%d,"ts_per_second":%d,"tcp":%s,"phase":%s'
    tcp_part = (',"src":%s,"sport":%d,"dst":%s,"dport":%d,"flags":%s,"seq":%d,"ack":%d,'
                '"len":%d,"conn":%d,"direction":%s,"step":%s')
    n = len(p)
    step_chunk = 1 << 16
    for lo in range(0, n, step_chunk):
        hi = min(n, lo + step_chunk)
        first_line = np.searchsorted(line_frame, p.frame[lo:hi], "left").tolist()
        end_line = np.searchsorted(line_frame, p.frame[lo:hi], "right").tolist()
        cols = zip(first_line, end_line,
            p.frame[lo:hi].tolist(), p.time[lo:hi].tolist(), p.ts_ticks[lo:hi].tolist(),
            p.ts_tps[lo:hi].tolist(), p.is_tcp[lo:hi].tolist(), t.step[lo:hi].tolist(),
            p.src[lo:hi].tolist(), p.sport[lo:hi].tolist(), p.dst[lo:hi].tolist(),
            p.dport[lo:hi].tolist(), (p.flags[lo:hi] & 0x1FF).tolist(), t.rel_seq[lo:hi].tolist(),
            t.rel_ack[lo:hi].tolist(), p.payload_len[lo:hi].tolist(), t.conn[lo:hi].tolist(),
            t.direction[lo:hi].tolist(), p.seq[lo:hi].tolist(), strict=True,
        )
        for (l_lo, l_hi, frame, time, ticks, tps, tcp, step, src, sport, dst, dport, fl, seq, ack, length,
             conn, d, raw_seq) in cols:
            row = head % (frame, time, ticks, tps, "true" if tcp else "false", phase_of_step[step])
            if tcp:
                row += tcp_part % (address[src], sport, address[dst], dport, flags[fl], seq, ack,
                                   length, conn, direction[d] if d >= 0 else "null",
                                   step_name[step] if step >= 0 else "null")
                if note_of is not None:
                    row += ',"note":' + _escape(note_of(step, d, raw_seq, length, seq, ack, conn))
                if l_hi > l_lo:
                    row += ',"lines":[' + ",".join(map(str, range(l_lo, l_hi))) + "]"
            yield row + "}"


def _note_maker(a):
    """``a.note(i)`` from row ``i``'s values: each step's template is filled once per
    direction with the words (Sender, peer, state); only numbers are filled per packet."""
    numbers = {k: "{" + k + "}" for k in ("isn", "len", "seq", "seq_end", "ack", "port")}
    prefilled = []
    for step_id, step in enumerate(STEPS):
        state = State(step_id // len(Kind)).name  # STEPS is numbered state-major
        per_direction = []
        for d in (0, 1):
            sender, peer = ROLE_NAMES[DIRECTIONS[d]], ROLE_NAMES[DIRECTIONS[1 - d]]
            per_direction.append(step.note.format(Sender=sender.capitalize(), sender=sender,
                                                  peer=peer, state=state, **numbers))
        prefilled.append(per_direction)
    port = [c.server[1] for c in a.connections]

    def note(step: int, d: int, isn: int, length: int, seq: int, ack: int, conn: int) -> str:
        return prefilled[step][d].format(isn=isn, len=length, seq=seq, seq_end=seq + max(length, 1) - 1,
                                         ack=ack, port=port[conn])

    return note


def _line_rows(a, chunk: int = 1 << 16) -> Iterator[str]:
    """One JSON object per line, straight from the chat's columns (no ChatLine objects).

    Each distinct text, nick and command is escaped once, not once per line.
    """
    chat = a.chat
    template = ('{"id":%d,"conn":%d,"direction":%d,"text":%s,"kind":%s,"nick":%s,"command":%s,'
                '"start":%d,"end":%d,"frames":[%s],"frame":%d,"time":%r,"recipient":%s,'
                '"ticks":%d,"per_second":%d}')
    texts = [_escape(x) for x in chat.texts] + ["null"]  # id -1 picks "null"
    nicks = [_escape(x) for x in chat.nicks] + ["null"]
    commands = [_escape(x) for x in chat.commands] + ["null"]
    kinds = [_escape(x) for x in KIND_NAMES]
    run_frames = chat.run_frames.tolist()
    for lo in range(0, chat.n_lines, chunk):
        hi = min(chat.n_lines, lo + chunk)
        cols = zip(range(lo, hi), *(c[lo:hi].tolist() for c in (
            chat.line_conn, chat.line_direction, chat.line_text, chat.line_kind, chat.line_nick,
            chat.line_command, chat.line_start, chat.line_end, chat.line_first_run, chat.line_last_run,
            chat.line_frame, chat.line_time, chat.line_recipient, chat.line_ticks, chat.line_per_second)),
            strict=True)
        for (i, conn, d, text, kind, nick, command, start, end, first, last, frame, time, recipient,
             ticks, per_second) in cols:
            frames = str(frame) if first == last else ",".join(map(str, run_frames[first : last + 1]))
            yield template % (i, conn, d, texts[text], kinds[kind], nicks[nick], commands[command],
                              start, end, frames, frame, time, nicks[recipient], ticks, per_second)


def _message_rows(a) -> Iterator[str]:
    """One JSON object per message, as ``json.dumps(asdict(message))`` would write it."""
    delivery = '{"recipient":%s,"conn":%d,"frame":%d,"time":%r,"latency":%r,"line":%d}'
    template = ('{"id":%d,"kind":%s,"conn":%d,"sender":%s,"text":%s,"to":%s,"frame":%d,'
                '"time":%r,"line":%d,"deliveries":[%s]}')
    kinds = {"chat": _escape("chat"), "private": _escape("private")}
    for m in a.chat.each_message():
        deliveries = ",".join(delivery % (_string(d.recipient), d.conn, d.frame, d.time, d.latency,
                                          d.line) for d in m.deliveries)
        yield template % (m.id, kinds[m.kind], m.conn, _string(m.sender), _escape(m.text),
                          _string(m.to), m.frame, m.time, m.line, deliveries)
