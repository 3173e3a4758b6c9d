"""The TCP tracker one packet at a time: the version to read first.

It gives exactly what the fast tracker (:mod:`tcpchatx.analysis.tracker`) gives, and
a test holds the two to that on every capture.  The fast one does the same work
with numpy, a whole column at a time; this one says it the slow and obvious way, in
three passes over the TCP packets, in capture order:

1. **Connections** (:func:`group_into_connections`).  Packets between the same two
   endpoints form a *flow*.  A flow holds several connections when a port is
   reused: a SYN (without ACK) starts a new connection unless it repeats the
   flow's last SYN (same sequence number, and no FIN or RST since), or is the SYN
   that the connection's first packet, a SYN-ACK, answered (its ACK number less one).
   The originator is the sender of the connection's first packet, unless that packet
   is a SYN-ACK (the capture missed the SYN, or caught it late): then its receiver
   is; or unless it has no SYN and Zeek would flip it, by its ports
   (:func:`~tcpchatx.analysis.zeek.zeek_flips`: it comes from a likely server port).
2. **Numbers** (:func:`initial_sequence_numbers`).  Relative sequence and
   acknowledgement numbers count from each side's ISN, as Wireshark shows them.
   The ISN is the sequence number of the side's first SYN; without one, one less
   than the first sequence number the side sent, or than the first ACK the peer
   sent, whichever came first.  (This needs the whole connection, hence a pass of
   its own.)
3. **Kinds, steps and labels** (:func:`follow_connection`).  Each packet gets a
   :class:`~tcpchatx.analysis.states.SegmentKind` from its flags, its length,
   whether it resends bytes already sent, and whether its ACK covers the peer's FIN
   for the first time.  ``lookup(state, kind)`` in the state table gives its step
   and the connection's next state; Zeek's endpoint machine
   (:class:`~tcpchatx.analysis.zeek.ZeekConnection`) sees every packet too, through
   :class:`~tcpchatx.analysis.zeek_sessions.ZeekSessions`, which starts a new one where
   Zeek's timers or a reused four-tuple end the last.  At the
   end each connection is summed up (:class:`~tcpchatx.analysis.tracker.Connection`),
   with its close kind (:func:`~tcpchatx.analysis.closing.close_kind_of`, which the
   fast tracker uses as well).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...tcp_flags import ACK, FIN, RST, SYN
from ..checksums import BAD
from ..closing import close_kind_of
from ..packets import Packets
from ..states import STEP_ID, SegmentKind, State, lookup
from ..tracker import COMPLETENESS_BITS, Connection, Tracking
from ..zeek import zeek_flips
from ..zeek_sessions import ZeekSessions


def track_one_by_one(p: Packets, checksums: np.ndarray | None = None) -> Tracking:
    """Connections, relative numbers, kinds and steps of every TCP packet of ``p``.
    ``checksums`` (:mod:`..checksums`, per frame), when given, keeps the segments with a
    wrong one out of Zeek's labels, as Zeek does."""
    connections = group_into_connections(p)
    columns = _Columns(len(p))
    bases, summaries = [], []
    for conn in connections:
        isn = initial_sequence_numbers(p, conn)
        bases.append([base for base, _ in isn])
        summaries.append(follow_connection(p, conn, isn, columns, checksums))
    return columns.tracking(p, connections, bases, summaries)


# --------------------------------------------------------------------------- 1. connections


@dataclass
class OneConnection:
    """One connection's packets (row numbers, in capture order) and its two ends."""

    id: int
    originator: tuple[int, int]  # (address id, port)
    responder: tuple[int, int]
    zeek_flipped: bool = False  # Zeek flipped the roles at the first packet (``^``)
    zeek_swapped: bool = False  # Zeek's originator is our responder (a first SYN-ACK it did not flip)
    rows: list[int] = field(default_factory=list)
    sides: list[int] = field(default_factory=list)  # 0: from the originator, 1: from the responder


@dataclass
class _Flow:
    """What a flow remembers to tell a reused port from a repeated SYN."""

    current: OneConnection
    last_syn_seq: int | None  # the flow's last SYN (without ACK): its sequence number
    closed_since_syn: bool = False  # a FIN or RST since that SYN


def group_into_connections(p: Packets) -> list[OneConnection]:
    """1. Every TCP packet's connection and side; connections numbered by their first packet."""
    flows: dict[tuple, _Flow] = {}
    connections: list[OneConnection] = []
    for row in np.flatnonzero(p.is_tcp).tolist():
        src = (int(p.src[row]), int(p.sport[row]))
        dst = (int(p.dst[row]), int(p.dport[row]))
        flags, seq = int(p.flags[row]), int(p.seq[row])
        flow = flows.get((min(src, dst), max(src, dst)))  # the same flow both ways
        pure_syn = flags & (SYN | ACK | RST) == SYN
        if flags & (FIN | RST) and flow is not None:
            flow.closed_since_syn = True
        starts_a_connection = flow is None or (pure_syn and (
            flow.last_syn_seq is None  # a SYN after traffic with none: a new connection
            or seq != flow.last_syn_seq or flow.closed_since_syn))
        if starts_a_connection:
            synack = flags & (SYN | ACK) == SYN | ACK  # we missed the SYN (or it comes late)
            flipped = zeek_flips(flags, src[1], dst[1])
            originator, responder = (dst, src) if synack or flipped else (src, dst)
            conn = OneConnection(len(connections), originator, responder, flipped, synack and not flipped)
            connections.append(conn)
            if flow is None:
                flow = flows[(min(src, dst), max(src, dst))] = _Flow(conn, None)
            flow.current = conn
            if synack:  # the SYN it answers, if it comes, belongs to this connection
                flow.last_syn_seq, flow.closed_since_syn = (int(p.ack[row]) - 1) & 0xFFFFFFFF, False
        if pure_syn:  # the next SYN is compared with this one
            flow.last_syn_seq, flow.closed_since_syn = seq, False
        flow.current.rows.append(row)
        flow.current.sides.append(0 if src == flow.current.originator else 1)
    return connections


# --------------------------------------------------------------------------- 2. numbers


def initial_sequence_numbers(p: Packets, conn: OneConnection) -> list[tuple[int, bool]]:
    """2. Each side's ISN (the base of its relative numbers), and whether a SYN gave it."""
    first_syn: list[int | None] = [None, None]  # its sequence number
    first_seq: list[tuple[int, int] | None] = [None, None]  # (position, sequence number)
    first_ack_of: list[tuple[int, int] | None] = [None, None]  # of that side's bytes: (position, ack)
    for position, (row, side) in enumerate(zip(conn.rows, conn.sides, strict=True)):
        flags = int(p.flags[row])
        if flags & SYN and first_syn[side] is None:
            first_syn[side] = int(p.seq[row])
        if first_seq[side] is None:
            first_seq[side] = (position, int(p.seq[row]))
        if flags & ACK and first_ack_of[1 - side] is None:
            first_ack_of[1 - side] = (position, int(p.ack[row]))
    isn = []
    for side in (0, 1):
        if first_syn[side] is not None:
            isn.append((first_syn[side], True))
            continue
        seen, acked = first_seq[side], first_ack_of[side]
        if seen is not None and (acked is None or seen[0] <= acked[0]):
            base = seen[1] - 1  # one before the first byte it sent
        elif acked is not None:
            base = acked[1] - 1  # one before the first byte the peer acknowledged
        else:
            base = 0
        isn.append((base & 0xFFFFFFFF, False))
    return isn


# --------------------------------------------------------------------------- 3. kinds and steps


def segment_kind(flags: int, length: int, resends: bool, fin_count: int, acks_peer_fin_first: bool
                 ) -> SegmentKind:
    """What one packet is, for the state table (the first rule that applies wins)."""
    if flags & RST:
        return SegmentKind.RST_ACK if flags & ACK else SegmentKind.RST
    if flags & SYN:
        return SegmentKind.SYN_ACK if flags & ACK else SegmentKind.SYN
    if acks_peer_fin_first:
        return SegmentKind.FIN_ACK if flags & FIN and fin_count == 1 else SegmentKind.ACK_OF_FIN
    if flags & FIN:
        return SegmentKind.FIN if fin_count == 1 else SegmentKind.FIN_AGAIN
    if resends:
        return SegmentKind.DATA_AGAIN
    if length:
        return SegmentKind.DATA
    return SegmentKind.ACK if flags & ACK else SegmentKind.OTHER


def follow_connection(p: Packets, conn: OneConnection, isn: list[tuple[int, bool]],
                      columns: _Columns, checksums: np.ndarray | None = None) -> Connection:
    """3. Every packet of one connection through the state table and Zeek, in order."""
    base = [value for value, _ in isn]
    sent_up_to = [0, 0]  # the furthest relative byte each side has sent
    fins_sent = [0, 0]
    fin_end: list[int | None] = [None, None]  # raw sequence number just past each side's first FIN
    fin_acked = [False, False]  # has the peer acknowledged this side's first FIN?
    state = State.CLOSED
    zeek = ZeekSessions()  # Zeek's connections in this stream: usually one
    times = p.seconds(np.array(conn.rows)).tolist()
    path = []  # (state before, kind, side, frame) of every change of state, and every RST
    packets, payload, completeness = [0, 0], [0, 0], 0
    for row, side, time in zip(conn.rows, conn.sides, times, strict=True):
        peer = 1 - side
        flags, length = int(p.flags[row]), int(p.payload_len[row])
        seq, ack = int(p.seq[row]), int(p.ack[row])
        rel_seq = (seq - base[side]) & 0xFFFFFFFF
        rel_ack = (ack - base[peer]) & 0xFFFFFFFF if flags & ACK else 0

        if flags & FIN:
            fins_sent[side] += 1
        acks_peer_fin_first = False
        if flags & ACK and fin_end[peer] is not None and not fin_acked[peer]:
            if _signed32(ack - fin_end[peer]) >= 0:  # at or past the end of the peer's FIN
                fin_acked[peer] = acks_peer_fin_first = True
        end = rel_seq + length if length else 0
        resends = 0 < end <= sent_up_to[side]
        sent_up_to[side] = max(sent_up_to[side], end)
        kind = segment_kind(flags, length, resends, fins_sent[side], acks_peer_fin_first)
        if flags & FIN and not flags & RST and fin_end[side] is None:
            fin_end[side] = (seq + length + 1) & 0xFFFFFFFF

        step = lookup(state, kind)
        if step.new_state != state or kind in (SegmentKind.RST, SegmentKind.RST_ACK):
            path.append((state, kind, side, int(p.frame[row])))
        step_number = int(STEP_ID[state, kind])  # the step's place in states.STEPS
        columns.put(row, conn.id, side, rel_seq, rel_ack, kind, state, step_number)
        state = step.new_state
        zeek.feed(int(p.frame[row]), time, side, flags, seq, length, int(p.window[row]), ack,
                  int(p.payload_caplen[row]), int(p.sport[row]), int(p.dport[row]),
                  checksums is None or checksums[row] != BAD)

        packets[side] += 1
        payload[side] += length
        bits = _completeness_bits(flags, length)
        if completeness:  # Wireshark counts a SYN only before anything else
            bits &= ~COMPLETENESS_BITS["SYN"]
        completeness |= bits

    close_kind, active_closer = close_kind_of(path, state)
    first, last = conn.rows[0], conn.rows[-1]
    entries = zeek.entries()
    return Connection(
        id=conn.id,
        client=(p.addresses[conn.originator[0]], conn.originator[1]),
        server=(p.addresses[conn.responder[0]], conn.responder[1]),
        isn=tuple(value if from_syn else None for value, from_syn in isn),
        packets=tuple(packets),
        payload_bytes=tuple(payload),
        first_frame=int(p.frame[first]),
        last_frame=int(p.frame[last]),
        start=float(p.seconds(first)),
        duration=float(p.seconds(last) - p.seconds(first)),
        conn_state=entries[0].conn_state,
        history=entries[0].history,
        zeek_connections=entries if len(entries) > 1 else [],
        close_kind=close_kind,
        active_closer=active_closer,
        final_state=State(state).name,
        completeness=completeness,
        handshake_frames=[frame for old, kind, _, frame in path
                          if kind in (SegmentKind.SYN, SegmentKind.SYN_ACK) or old == State.SYN_RECEIVED],
        close_frames=[frame for old, kind, _, frame in path
                      if old >= State.ESTABLISHED and kind not in (SegmentKind.SYN, SegmentKind.SYN_ACK)],
    )


def _signed32(x: int) -> int:
    """A sequence-space difference as a signed 32-bit number (sequence numbers wrap)."""
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def _completeness_bits(flags: int, length: int) -> int:
    """Wireshark's ``tcp.completeness`` bits this packet shows."""
    synack = flags & (SYN | ACK) == SYN | ACK
    bits = 0
    if flags & (SYN | ACK) == SYN:
        bits |= COMPLETENESS_BITS["SYN"]
    if synack:
        bits |= COMPLETENESS_BITS["SYN-ACK"]
    if flags & ACK and not synack:
        bits |= COMPLETENESS_BITS["ACK"]
    if length > 0:
        bits |= COMPLETENESS_BITS["DATA"]
    if flags & FIN:
        bits |= COMPLETENESS_BITS["FIN"]
    if flags & RST:
        bits |= COMPLETENESS_BITS["RST"]
    return bits


# --------------------------------------------------------------------------- the columns


class _Columns:
    """The per-packet results, written one packet at a time into Tracking's columns."""

    def __init__(self, n: int) -> None:
        self.conn = np.full(n, -1, dtype=np.int32)
        self.direction = np.full(n, -1, dtype=np.int8)
        self.rel_seq = np.zeros(n, dtype=np.uint32)
        self.rel_ack = np.zeros(n, dtype=np.uint32)
        self.kind = np.full(n, -1, dtype=np.int8)
        self.state_before = np.full(n, -1, dtype=np.int8)
        self.step = np.full(n, -1, dtype=np.int16)

    def put(self, row, conn, side, rel_seq, rel_ack, kind, state_before, step) -> None:
        self.conn[row], self.direction[row] = conn, side
        self.rel_seq[row], self.rel_ack[row] = rel_seq, rel_ack
        self.kind[row], self.state_before[row], self.step[row] = kind, state_before, step

    def tracking(self, p: Packets, connections: list[OneConnection], bases: list[list[int]],
                 summaries: list[Connection]) -> Tracking:
        return Tracking(
            conn=self.conn, direction=self.direction, rel_seq=self.rel_seq, rel_ack=self.rel_ack,
            isn=np.array(bases, dtype=np.int64).reshape(-1, 2),
            server_address=np.array([c.responder[0] for c in connections], dtype=p.src.dtype),
            server_port=np.array([c.responder[1] for c in connections], dtype=p.sport.dtype),
            kind=self.kind, state_before=self.state_before, step=self.step, connections=summaries,
        )

