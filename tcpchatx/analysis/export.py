"""The analysis as plain JSON-ready data (format: docs/analysis-json.md)."""

from __future__ import annotations

from dataclasses import asdict

from .labels import CLOSE_KINDS, PHASES, ZEEK_CONN_STATES
from .tables import flag_string

FORMAT_VERSION = 1


def to_json(a, notes: bool = True) -> dict:
    """``{"format", "capture", "server", "connections", "packets", "lines", "messages"}``.

    Every value is a str, int, float, bool, None, list or dict, so
    ``json.dumps(to_json(a))`` works.  ``notes=False`` leaves out the sentences.
    """
    p, t = a.packets, a.tracking
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
        "packets": packets,
        "lines": [asdict(line) for line in a.lines],
        "messages": [asdict(m) for m in a.messages],
    }
