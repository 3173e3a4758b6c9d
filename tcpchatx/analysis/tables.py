"""pandas tables of an :class:`~.run.Analysis`: packets, connections, lines, messages.

Column names are the same as the JSON keys (docs/analysis-json.md); a nested key
becomes two columns (``duplicate_ack.of_frame`` is ``duplicate_ack_of_frame``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .expert import EVENT_BIT, NO_FRAME
from .labels import DIRECTIONS, FLAG_STRINGS, flag_string  # noqa: F401 (flag_string: re-exported)
from .plain.expert import EVENTS
from .states import STEPS


def packets_df(a, notes: bool = True) -> pd.DataFrame:
    """One row per frame.  ``notes=False`` skips the per-packet sentences (faster).

    The expert analysis's columns: ``analysis`` (the names of its findings, a tuple,
    ``()`` for none), ``info_marks`` (as Wireshark's Info column marks the packet,
    ``""`` for none), and ``acks_frame``, ``ack_rtt``, ``bytes_in_flight``,
    ``duplicate_ack_of_frame``, ``duplicate_ack_number``, missing (``<NA>``, NaN)
    where there is none.  ``df[df.analysis.map(lambda e: "retransmission" in e)]``
    picks the retransmissions.
    """
    p, t = a.packets, a.tracking
    addresses = np.array(p.addresses + [""], dtype=object)  # id -1 -> ""
    step_names = np.array([s.name for s in STEPS] + [""], dtype=object)
    direction = np.array(list(DIRECTIONS) + [""], dtype=object)
    df = pd.DataFrame({
        "frame": p.frame,
        "time": p.time,
        "src": addresses[p.src],
        "sport": np.where(p.is_tcp, p.sport, 0),
        "dst": addresses[p.dst],
        "dport": np.where(p.is_tcp, p.dport, 0),
        "flags": FLAG_STRINGS[p.flags & 0x1FF],
        "seq": t.rel_seq,
        "ack": t.rel_ack,
        "len": p.payload_len,
        "window": p.window,
        "raw_seq": p.seq,
        "raw_ack": p.ack,
        "conn": t.conn,
        "direction": direction[t.direction],
        "phase": a.phase,
        "step": step_names[t.step],
    })
    df = df.join(_expert_columns(a))
    if notes:
        df["note"] = [a.note(i) for i in range(len(p))]
        _ = a.lines  # build every line once: lines_of_frame then slices that list
        df["chat"] = [" | ".join(line.text or "(invalid line)" for line in a.lines_of_frame(f))
                      for f in p.frame.tolist()]
    return df


def _expert_columns(a) -> pd.DataFrame:
    """The expert analysis's columns of :func:`packets_df`."""
    x = a.expert
    kinds, inverse = np.unique(x.events, return_inverse=True)  # a few distinct sets of findings
    names = np.empty(len(kinds), dtype=object)
    for k, bits in enumerate(kinds.tolist()):
        names[k] = tuple(name for name in EVENTS if bits & EVENT_BIT[name])
    info = np.full(len(x.events), "", dtype=object)
    for i in np.flatnonzero(x.events).tolist():
        info[i] = x.info(i)
    dup, of_frame, number = x.duplicate_acks.of(np.arange(len(x.events)))
    return pd.DataFrame({
        "analysis": names[inverse],
        "info_marks": info,
        "acks_frame": _missing_unless(x.acks_frame != NO_FRAME, x.acks_frame),
        "ack_rtt": x.ack_rtt(),
        "bytes_in_flight": _missing_unless(x.bytes_in_flight >= 0, x.bytes_in_flight),
        "duplicate_ack_of_frame": _missing_unless(dup, of_frame),
        "duplicate_ack_number": _missing_unless(dup, number),
    })


def _missing_unless(present: np.ndarray, values: np.ndarray) -> pd.Series:
    """Integers, and pandas' missing value (``<NA>``) where there is none."""
    return pd.Series(values, dtype="Int64").where(present)


def connections_df(a) -> pd.DataFrame:
    rows = []
    for c in a.connections:
        rows.append({
            "conn": c.id,
            "client": c.client[0], "client_port": c.client[1],
            "server": c.server[0], "server_port": c.server[1],
            "nick": a.chat.nick_of_conn.get(c.id),
            "isn_client": c.isn[0], "isn_server": c.isn[1],
            "packets_client": c.packets[0], "packets_server": c.packets[1],
            "bytes_client": c.payload_bytes[0], "bytes_server": c.payload_bytes[1],
            "first_frame": c.first_frame, "last_frame": c.last_frame,
            "start": c.start, "duration": c.duration,
            "conn_state": c.conn_state, "history": c.history,
            "close_kind": c.close_kind, "active_closer": c.active_closer,
            "final_state": c.final_state,
        })
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)


def lines_df(a) -> pd.DataFrame:
    return pd.DataFrame([{
        "line": x.id, "conn": x.conn, "direction": "to server" if x.direction == 0 else "to client",
        "kind": x.kind, "nick": x.nick, "recipient": x.recipient, "text": x.text,
        "frame": x.frame, "frames": x.frames, "time": x.time,
    } for x in a.lines])


def messages_df(a) -> pd.DataFrame:
    """One row per delivery (a message nobody received gets one row with no delivery)."""
    rows = []
    for m in a.messages:
        base = {"message": m.id, "kind": m.kind, "conn": m.conn, "sender": m.sender,
                "text": m.text, "to": m.to, "frame": m.frame, "time": m.time}
        if not m.deliveries:
            rows.append(base | {"recipient": None, "recipient_conn": None,
                                "delivery_frame": None, "latency": None})
        for d in m.deliveries:
            rows.append(base | {"recipient": d.recipient, "recipient_conn": d.conn,
                                "delivery_frame": d.frame, "latency": d.latency})
    return pd.DataFrame(rows)
