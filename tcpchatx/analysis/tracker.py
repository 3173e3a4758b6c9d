"""Group TCP packets into connections and run the state table over each one.

Theory of operation
-------------------
1. **Connections.**  Packets with the same pair of endpoints form a *flow*.  A flow
   holds several connections when a port is reused: a SYN (without ACK) starts a new
   connection unless it repeats the current connection's SYN (same sequence number,
   and no FIN or RST since).  The originator is the sender of the connection's first
   packet - normally its SYN.  If that first packet is a SYN-ACK (we missed the SYN),
   its *receiver* is the originator; so is the receiver of a first packet without a
   SYN that comes from a port Zeek takes for a server's (:func:`.zeek.zeek_flips`).
2. **Numbers.**  Relative sequence and acknowledgement numbers count from each side's
   ISN, exactly as Wireshark shows them (``tcp.seq``, ``tcp.ack``): when no SYN was
   captured, the ISN is taken to be one less than the first sequence number seen
   from that side, or one less than the first ACK the other side sent, whichever
   came first.
3. **Kinds.**  Each packet gets a :class:`~.states.SegmentKind`: from its flags,
   its length, whether it resends bytes already sent, and whether its ACK covers
   the peer's FIN for the first time.  All of this is computed for every packet at
   once with numpy.
4. **States.**  ``TABLE[state][kind]`` gives each packet's step.  Most packets
   (data and ACKs in ESTABLISHED) do not change the state, so the Python loop only
   visits *candidates* - control packets, first packets, ACKs of FINs - and every
   other packet inherits the state of the candidate before it.  We then check that
   claim: any packet whose (state, kind) would change the state is made a candidate
   and the loop runs again, until nothing changes (usually twice).  The result is
   exactly what a packet-by-packet loop would give, at a fraction of the cost.

:func:`connect` does parts 1 and 2, which the chat layer needs; :func:`label` does
3 and 4, a range of connections at a time, and can run beside the chat layer.
Zeek may cut a connection in several (:mod:`.zeek_sessions`); only where it could
(:func:`_zeek_may_split`) are its packets fed to Zeek one by one to find out.

Read :mod:`tcpchatx.analysis.plain.tracker` first: it does the same one packet at a
time, and a test holds the two to the same columns and connections on every
capture.  Each part below names the plain function it mirrors.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields

import numpy as np

from ..tcp_flags import ACK, FIN, RST, SYN
from .checksums import BAD
from .closing import close_kind_of
from .labels import CloseKind, ConnState
from .packets import Packets, shared_codes
from .sorting import stable_argsort
from .states import NEXT_STATE, STEP_ID, STEPS, SegmentKind, State
from .workers import in_order
from .zeek import (
    LIKELY_SERVER_PORTS,
    SCALING_BASE,
    TOO_LARGE_SEQ_DELTA,
    Reassembly,
    ZeekConnection,
    reassemble,
)
from .zeek import Endpoint as ZeekEndpoint
from .zeek_sessions import ATTEMPT_DELAY, CLOSE_DELAY, INACTIVITY_TIMEOUT, ZeekEntry, ZeekSessions

# Wireshark's tcp.completeness bits (what the connection was seen to contain).
COMPLETENESS_BITS = {"SYN": 1, "SYN-ACK": 2, "ACK": 4, "DATA": 8, "FIN": 16, "RST": 32}


@dataclass
class Connection:
    """One TCP connection, summed up.  Index 0 of a pair is the originator."""

    id: int
    client: tuple[str, int]  # the originator's (address, port)
    server: tuple[str, int]  # the responder's (address, port)
    isn: tuple[int | None, int | None]  # raw ISNs; None when that SYN was not captured
    packets: tuple[int, int]
    payload_bytes: tuple[int, int]  # TCP payload on the wire, retransmissions included
    first_frame: int
    last_frame: int
    start: float  # seconds since 1970
    duration: float
    conn_state: ConnState  # Zeek's label, a str (labels.ZEEK_CONN_STATES says what it means)
    history: str  # Zeek's history string (labels.ZEEK_HISTORY_LETTERS)
    close_kind: CloseKind  # a str too (labels.CLOSE_KINDS says what it means)
    active_closer: str | None  # labels.CLOSERS, or None
    final_state: str  # the table state after the last packet (states.State)
    completeness: int  # Wireshark's tcp.completeness bitmask
    handshake_frames: list[int] = field(default_factory=list)
    close_frames: list[int] = field(default_factory=list)
    # Zeek's connections in this stream, when Zeek's timers or a reused four-tuple cut
    # it in more than one (their first and last are frame numbers); conn_state and
    # history above are the first one's.  Empty: Zeek sees the stream as one connection.
    zeek_connections: list[ZeekEntry] = field(default_factory=list)


@dataclass
class Flows:
    """Parts 1 and 2 for every frame: its connection, its side, its relative numbers.

    That is all the chat layer needs, so it can start on them while :func:`label`
    (parts 3 and 4) runs beside it (:func:`.run.analyze`).
    """

    conn: np.ndarray  # int32 connection id, -1 for frames we do not track
    direction: np.ndarray  # int8: 0 originator, 1 responder, -1 untracked
    rel_seq: np.ndarray  # uint32 (mind: uint32 + 1 wraps; use int() or astype(np.int64))
    rel_ack: np.ndarray  # uint32 (0 when the ACK bit is clear)
    isn: np.ndarray  # int64 [conn, direction] base used for relative numbers
    server_address: np.ndarray  # per connection: the responder's address id (Packets.addresses)
    server_port: np.ndarray


@dataclass
class Connected(Flows):
    """:func:`connect`'s result: the flows, and what :func:`label` needs besides."""

    rows: np.ndarray  # int32 TCP frame rows grouped by connection (held while label() runs)
    starts: np.ndarray  # where each connection's rows start
    first_position: np.ndarray  # each (connection, direction)'s first position in rows, -1: none
    has_syn: np.ndarray


@dataclass
class Tracking(Flows):
    """Per-packet results (arrays over all frames) and the connections."""

    kind: np.ndarray  # int8 states.SegmentKind, -1 untracked
    state_before: np.ndarray  # int8 states.State
    step: np.ndarray  # int16 index into states.STEPS, -1 untracked
    connections: list[Connection]

    def step_of(self, i: int):
        return STEPS[self.step[i]] if self.step[i] >= 0 else None


def _signed32(x: np.ndarray) -> np.ndarray:
    """Sequence-space difference as a signed 32-bit number (handles wrap-around)."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _group_first(group: np.ndarray, mask: np.ndarray, n_groups: int) -> np.ndarray:
    """Position of the first True in each group (-1 if none)."""
    none = np.iinfo(np.int64).max
    first = np.full(n_groups, none, dtype=np.int64)
    pos = np.flatnonzero(mask)
    np.minimum.at(first, group[pos], pos)  # no sort: one pass (numpy >= 1.25 makes .at quick)
    first[first == none] = -1
    return first


def _running_count(mask: np.ndarray, order_g: np.ndarray, sorted_groups: np.ndarray) -> np.ndarray:
    """How many True values so far in each packet's group, this packet included."""
    total = np.cumsum(mask[order_g])
    group_start = np.r_[True, sorted_groups[1:] != sorted_groups[:-1]] if len(total) else []
    before_group = np.maximum.accumulate(np.where(group_start, total - mask[order_g], 0))
    out = np.zeros(len(mask), dtype=np.int64)
    out[order_g] = total - before_group
    return out


def _endpoint_ids(src_ep: np.ndarray, dst_ep: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Number the distinct endpoints (address id << 16 | port): ids for both columns, and how many.

    With few addresses the endpoints fit a small table indexed by value: mark, then
    count (no sort), for both columns without joining them (:func:`.packets.shared_codes`).
    """
    if not len(src_ep):
        return src_ep, dst_ep, 1
    distinct, (src_id, dst_id) = shared_codes([src_ep, dst_ep], table_limit=1 << 22)
    return src_id, dst_id, len(distinct)


def track(p: Packets) -> Tracking:
    """Connections, relative numbers, kinds and steps of every TCP packet of ``p``."""
    return label(p, connect(p))


def connect(p: Packets) -> Connected:
    """Parts 1 and 2 of the module docstring: connections, sides, relative numbers.

    Each numbered part is one function below; the large temporary arrays of each
    part are freed when it returns.
    """
    n = len(p)
    r, c = _connections(p)  # TCP frame rows grouped by connection, capture order inside
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if len(r) else np.zeros(0, np.int64)
    n_conn = len(starts)
    flags = p.flags[r]  # int16: its bits are tested, never summed
    direction = _directions(p, r, c, starts, flags)
    g = c * 2 + direction  # (connection, direction) group
    base, has_syn, first_pkt, rel_seq, rel_ack = _relative_numbers(g, flags, p.seq[r], p.ack[r], 2 * n_conn)
    del flags, g
    _, (server_address, server_port) = _ends(p, r, starts, direction)
    # Four columns over all frames: each a scatter over every frame, two at once.
    spreads = ((c, -1, np.int32), (direction, -1, np.int8), (rel_seq, 0, np.uint32), (rel_ack, 0, np.uint32))
    conn, direction, rel_seq, rel_ack = in_order(lambda spread: _spread(n, r, *spread), spreads)
    return Connected(
        conn=conn, direction=direction, rel_seq=rel_seq, rel_ack=rel_ack,
        isn=base.reshape(n_conn, 2),
        server_address=server_address,
        server_port=server_port,
        rows=r.astype(np.int32), starts=starts, first_position=first_pkt, has_syn=has_syn,
    )


LABEL_RANGE = 1 << 15  # packets per range of connections in label()


def label(p: Packets, f: Connected, chunk: int | None = None, checksums: np.ndarray | None = None) -> Tracking:
    """Parts 3 and 4: every packet's kind and step, and each connection summed up.

    Each connection is labelled on its own, so this goes a range of connections
    (about ``chunk`` packets, :data:`LABEL_RANGE`) at a time: the temporaries are
    those of one range, which lets it run beside the chat layer within the memory
    budget (see :func:`fits_beside`).  ``checksums`` (:mod:`.checksums`, per frame), when
    given, keeps the segments with a wrong one out of Zeek's labels, as Zeek does.
    """
    chunk = chunk or LABEL_RANGE
    r, starts = f.rows, f.starts
    n, m, n_conn = len(p), len(r), len(starts)
    kind = np.full(n, -1, dtype=np.int8)  # -1: not a TCP packet we track
    state_before = np.full(n, -1, dtype=np.int8)
    step = np.full(n, -1, dtype=np.int16)
    connections: list[Connection] = []
    walks: dict[bytes, _Walk] = {}  # shapes already walked, shared by the ranges
    for c0, c1 in connection_ranges(starts, m, chunk):
        a = int(starts[c0])
        b = int(starts[c1]) if c1 < n_conn else m
        rows = r[a:b].astype(np.int64)
        c = f.conn[rows].astype(np.int64) - c0  # connection ids inside the range
        flags = p.flags[rows].astype(np.int64)
        seq, ack, length = p.seq[rows], p.ack[rows], p.payload_len[rows]
        direction = f.direction[rows].astype(np.int64)
        g = c * 2 + direction
        n_groups = 2 * (c1 - c0)
        first = f.first_position[2 * c0 : 2 * c1]
        first = np.where(first >= 0, first - a, -1)
        kinds, newly_acks_fin = _segment_kinds(g, flags, seq, ack, length,
                                               f.rel_seq[rows].astype(np.int64), n_groups)
        conn_first = rows[starts[c0:c1] - a]  # each connection's first packet
        first_flags = p.flags[conn_first]
        flipped = zeek_flips_all(first_flags, p.sport[conn_first], p.dport[conn_first])
        swapped = ((first_flags & (SYN | ACK)) == (SYN | ACK)) & ~flipped
        roles = (flipped.astype(np.int8) | swapped.astype(np.int8) << 1)[c]  # per packet
        holes = _content_gaps(p, rows, c, direction, flags, seq, length, f.rel_seq[rows].astype(np.int64),
                              f.rel_ack[rows].astype(np.int64), f.has_syn[2 * c0 : 2 * c1])
        runner, state_before[rows], step[rows] = _states(
            g, c, direction, flags, seq, length, kinds, newly_acks_fin, first, n_groups, walks,
            p.window[rows], f.rel_seq[rows].astype(np.int64), roles, holes)
        kind[rows] = kinds
        del newly_acks_fin
        bad = None if checksums is None else checksums[rows] == BAD
        splits = _zeek_splits(p, rows, c, direction, flags, seq, length, starts[c0:c1] - a, bad)
        connections += _summaries(p, rows, starts[c0:c1] - a, direction, g, c1 - c0,
                                  f.isn[c0:c1].ravel(), f.has_syn[2 * c0 : 2 * c1], length, flags,
                                  runner, splits, first_id=c0)
    flows = {column.name: getattr(f, column.name) for column in fields(Flows)}
    return Tracking(**flows, kind=kind, state_before=state_before, step=step, connections=connections)


def _zeek_splits(p, rows, c, direction, flags, seq, length, starts, bad) -> dict[int, list[ZeekEntry]]:
    """Zeek's connections in each stream (ids inside the range) that may differ from
    what the walk over candidates found: those Zeek may cut in several, and those with
    a segment whose checksum is wrong (``bad``, when checked), which Zeek ignores.

    Mirrors the :class:`~.zeek_sessions.ZeekSessions` that the plain tracker feeds
    every packet, run here only where it can matter.
    """
    maybe = _zeek_may_split(p.seconds(rows), c, direction, flags, seq, length, starts)
    if bad is not None:
        maybe[c[bad]] = True
    else:
        bad = np.zeros(len(rows), dtype=bool)
    splits = {}
    ends = np.r_[starts[1:], len(rows)]
    for conn in np.flatnonzero(maybe).tolist():
        at = rows[starts[conn]:ends[conn]]
        mine = slice(starts[conn], ends[conn])
        sessions = ZeekSessions()
        for packet in zip(*(column.tolist() for column in (
                p.frame[at], p.seconds(at), direction[mine], p.flags[at], p.seq[at], p.payload_len[at],
                p.window[at], p.ack[at], p.payload_caplen[at], p.sport[at], p.dport[at], ~bad[mine])),
                strict=True):
            sessions.feed(*packet)
        splits[conn] = sessions.entries()
    return splits


def _zeek_may_split(t, c, direction, flags, seq, length, starts) -> np.ndarray:
    """Per connection: whether Zeek's timers or a reused four-tuple could cut it
    (:mod:`.zeek_sessions`).  Cheap and never wrong the unsafe way: each test below is
    something every cut of its kind needs, so a connection where all fail is one Zeek
    connection.  ``t``: each packet's time in seconds."""
    n_conn = len(starts)
    maybe = np.zeros(n_conn, dtype=bool)
    if not n_conn:
        return maybe
    last_t = t[np.r_[starts[1:], len(t)] - 1]
    # inactivity: a silence of 5 minutes
    silence = (np.diff(t) >= INACTIVITY_TIMEOUT) & (c[1:] == c[:-1])
    maybe[c[1:][silence]] = True
    # closed, reset: a packet 5 s or more after the first FIN or RST
    fin_rst = (flags & (FIN | RST)) != 0
    first = _group_first(c, fin_rst, n_conn)
    has = first >= 0
    maybe[has] |= last_t[has] >= t[first[has]] + CLOSE_DELAY
    # attempt: a packet 5 s or more after a side's first SYN, the other side not yet
    # having sent a SYN, FIN, RST or data by then
    syn = (flags & SYN) != 0
    g = c * 2 + direction
    first_syn = _group_first(g, syn, 2 * n_conn).reshape(n_conn, 2)
    first_word = _group_first(g, syn | fin_rst | (length > 0), 2 * n_conn).reshape(n_conn, 2)
    for side in (0, 1):
        sent = first_syn[:, side] >= 0
        deadline = np.where(sent, t[np.maximum(first_syn[:, side], 0)] + ATTEMPT_DELAY, np.inf)
        other = first_word[:, 1 - side]
        silent = (other < 0) | (t[np.maximum(other, 0)] >= deadline)
        maybe |= sent & silent & (last_t >= deadline)
    # reuse: a SYN after the first packet, unless it is the handshake's second packet
    # or repeats an earlier SYN of its side (same kind, same sequence number), with no
    # FIN or RST before it
    at = np.flatnonzero(syn)
    conn = c[at]
    position = at - starts[conn]
    closes_before = np.cumsum(fin_rst) - fin_rst
    closed = closes_before[at] > closes_before[starts[conn]]
    synack = (flags[at] & ACK) != 0
    side = direction[at]
    opener = starts[conn]
    answers = ((position == 1) & ((flags[opener] & SYN) != 0) & (((flags[opener] & ACK) != 0) != synack)
               & (direction[opener] != side))
    order = np.lexsort((at, seq[at], synack, side, conn))
    keys = np.stack([conn, side, synack, seq[at]])[:, order]
    repeats = np.zeros(len(at), dtype=bool)
    repeats[order[1:]] = (keys[:, 1:] == keys[:, :-1]).all(axis=0)
    reused = (position >= 1) & (closed | ~(answers | repeats))
    maybe[conn[reused]] = True
    return maybe


def fits_beside(f: Connected) -> bool:
    """Whether :func:`label`'s ranges are small enough to run beside the chat layer.

    A connection is labelled in one piece, so the temporaries grow with the longest
    one: a chat of two clients in a long capture would add them all at the chat
    layer's peak, and break the memory budget.  Then labelling goes first, alone.
    """
    longest = int(np.diff(np.r_[f.starts, len(f.rows)]).max()) if len(f.starts) else 0
    return longest <= 4 * LABEL_RANGE


def connection_ranges(starts: np.ndarray, m: int, chunk: int) -> list[tuple[int, int]]:
    """Connections [c0, c1) holding about ``chunk`` of the ``m`` rows each (a bigger
    connection is one range by itself)."""
    cuts = [0]
    for target in range(chunk, m, chunk):
        c = int(np.searchsorted(starts, target))  # the first connection starting there or later
        if cuts[-1] < c < len(starts):
            cuts.append(c)
    if len(starts):
        cuts.append(len(starts))
    return list(zip(cuts[:-1], cuts[1:], strict=False))


def _spread(n: int, rows: np.ndarray, values: np.ndarray, fill, dtype) -> np.ndarray:
    """A column over all ``n`` frames: ``values`` at ``rows``, ``fill`` elsewhere."""
    out = np.full(n, fill, dtype=dtype)
    out[rows] = values
    return out


def _ends(p: Packets, r, starts, direction) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Each connection's originator and responder, as (address ids, ports): the sender
    and the receiver of its first packet, unless the responder sent it (a SYN-ACK)."""
    first = r[starts]
    by_originator = direction[starts] == 0
    client = (np.where(by_originator, p.src[first], p.dst[first]),
              np.where(by_originator, p.sport[first], p.dport[first]))
    server = (np.where(by_originator, p.dst[first], p.src[first]),
              np.where(by_originator, p.dport[first], p.sport[first]))
    return client, server


def _connections(p: Packets) -> tuple[np.ndarray, np.ndarray]:
    """1. Rows of TCP packets grouped by connection (capture order inside), and their connection.

    Mirrors :func:`tcpchatx.analysis.plain.tracker.group_into_connections`.

    Connections are numbered in the order of their first packet.
    """
    rows = np.flatnonzero(p.is_tcp)
    src_ep = p.src[rows].astype(np.int64) << 16 | p.sport[rows]
    dst_ep = p.dst[rows].astype(np.int64) << 16 | p.dport[rows]
    s_id, d_id, n_ep = _endpoint_ids(src_ep, dst_ep)
    del src_ep, dst_ep
    flow_key = np.minimum(s_id, d_id) * n_ep + np.maximum(s_id, d_id)  # the same both ways
    del s_id, d_id
    by_flow = stable_argsort(flow_key)  # grouped by flow, capture order inside
    r = rows[by_flow]
    flow_key = flow_key[by_flow]
    del rows, by_flow
    f = np.cumsum(np.r_[False, flow_key[1:] != flow_key[:-1]]) if len(r) else np.zeros(0, np.int64)
    del flow_key
    flags = p.flags[r]
    pure_syn = (flags & (SYN | ACK | RST)) == SYN
    flow_start = np.r_[True, f[1:] != f[:-1]] if len(r) else np.zeros(0, bool)
    closed_so_far = np.cumsum((flags & (FIN | RST)) != 0)  # FIN/RST count along the flow
    split = np.zeros(len(r), dtype=bool)
    syn_pos = np.flatnonzero(pure_syn)
    if len(syn_pos):
        prev = np.r_[-1, syn_pos[:-1]]
        same_flow = (prev >= 0) & (f[np.maximum(prev, 0)] == f[syn_pos])
        seq = p.seq[r[syn_pos]]
        new_isn = seq != p.seq[r[np.maximum(prev, 0)]]
        closed_between = closed_so_far[syn_pos] - closed_so_far[np.maximum(prev, 0)] > 0
        # The flow's first SYN: a new connection, unless the flow began with the SYN-ACK
        # that answers it (its ACK number less one), with no FIN or RST since.
        flow_starts = np.flatnonzero(flow_start)
        flow_first = flow_starts[np.searchsorted(flow_starts, syn_pos, "right") - 1]
        first_flags = flags[flow_first]
        answered = (((first_flags & (SYN | ACK)) == (SYN | ACK))
                    & (((p.ack[r[flow_first]].astype(np.int64) - 1) & 0xFFFFFFFF) == seq)
                    & (closed_so_far[syn_pos] - closed_so_far[flow_first] == 0))
        split[syn_pos] = np.where(same_flow, new_isn | closed_between, ~flow_start[syn_pos] & ~answered)
    conn_in_flow = np.cumsum(flow_start | split) - 1
    del f, flags, pure_syn, flow_start, closed_so_far, split
    # Number connections in order of their first packet, then sort by connection.
    n_conn = int(conn_in_flow[-1]) + 1 if len(r) else 0
    first_row = np.full(n_conn, np.iinfo(np.int64).max)
    np.minimum.at(first_row, conn_in_flow, r)
    rank = np.empty(n_conn, dtype=np.int64)
    rank[np.argsort(first_row, kind="stable")] = np.arange(n_conn)
    conn_sorted = rank[conn_in_flow]
    del conn_in_flow
    by_conn = stable_argsort(conn_sorted)
    return r[by_conn], conn_sorted[by_conn]


def _directions(p: Packets, r, c, starts, flags) -> np.ndarray:
    """0 for packets from the originator, 1 for packets from the responder (the
    sides of :func:`tcpchatx.analysis.plain.tracker.group_into_connections`): the
    first packet's sender, unless it is a SYN-ACK or Zeek flips it by its ports."""
    src_ep = (p.src[r].astype(np.int64) << 16) | p.sport[r]
    first = r[starts]
    first_src = (p.src[first].astype(np.int64) << 16) | p.sport[first]
    first_dst = (p.dst[first].astype(np.int64) << 16) | p.dport[first]
    first_is_synack = (flags[starts] & (SYN | ACK)) == (SYN | ACK)
    flipped = zeek_flips_all(flags[starts], p.sport[first], p.dport[first])
    orig_ep = np.where(first_is_synack | flipped, first_dst, first_src)
    return (src_ep != orig_ep[c]).astype(np.int64)


def zeek_flips_all(flags, sport, dport) -> np.ndarray:
    """:func:`tcpchatx.analysis.zeek.zeek_flips` of every connection's first packet."""
    pure_syn = ((flags & SYN) != 0) & ((flags & ACK) == 0)
    likely = np.array(sorted(LIKELY_SERVER_PORTS))
    src_likely, dst_likely = np.isin(sport, likely), np.isin(dport, likely)
    return ~pure_syn & src_likely & (~dst_likely | (((flags & SYN) == 0) & (sport < dport)))


def _relative_numbers(g, flags, seq, ack, n_groups):
    """2. Each side's ISN (``base``), and every packet's relative seq and ack.

    Mirrors :func:`tcpchatx.analysis.plain.tracker.initial_sequence_numbers`.
    """
    m = len(g)
    is_ack = (flags & ACK) != 0
    first_syn = _group_first(g, (flags & SYN) != 0, n_groups)
    first_pkt = _group_first(g, np.ones(m, bool), n_groups)
    peer_g = g ^ 1
    first_ack_from_peer = _group_first(peer_g, is_ack, n_groups)  # indexed by receiving group
    base = np.zeros(n_groups, dtype=np.int64)
    has_syn = first_syn >= 0
    base[has_syn] = seq[first_syn[has_syn]]
    # No SYN: one before the first seq seen, or one before the first ACK of it, if earlier.
    big = np.iinfo(np.int64).max
    fp = np.where(first_pkt >= 0, first_pkt, big)
    fa = np.where(first_ack_from_peer >= 0, first_ack_from_peer, big)
    use_seq = ~has_syn & (fp <= fa) & (fp < big)
    use_ack = ~has_syn & (fa < fp)
    base[use_seq] = seq[first_pkt[use_seq]] - 1
    base[use_ack] = ack[first_ack_from_peer[use_ack]] - 1
    base &= 0xFFFFFFFF
    # uint32 arithmetic wraps as sequence numbers do: no int64 temporaries, no masks.
    base32 = base.astype(np.uint32)
    rel_seq = seq.astype(np.uint32, copy=False) - base32[g]
    rel_ack = np.where(is_ack, ack.astype(np.uint32, copy=False) - base32[peer_g], np.uint32(0))
    return base, has_syn, first_pkt, rel_seq, rel_ack


def _segment_kinds(g, flags, seq, ack, length, rel_seq, n_groups):
    """3. Every packet's :class:`~.states.SegmentKind`, and which ACKs first cover the peer's FIN.

    Mirrors :func:`tcpchatx.analysis.plain.tracker.segment_kind` and the loop of
    :func:`~tcpchatx.analysis.plain.tracker.follow_connection` that feeds it.
    """
    m = len(g)
    is_ack = (flags & ACK) != 0
    syn_flag = (flags & SYN) != 0
    fin_flag = (flags & FIN) != 0
    rst_flag = (flags & RST) != 0
    # Retransmitted data: ends at or before the furthest byte this side already sent.
    data_end = np.where(length > 0, rel_seq + length, 0)
    order_g = stable_argsort(g)
    ge = g[order_g]
    offset = ge.astype(np.int64) << 34  # keep each group's running max separate
    running = np.maximum.accumulate(offset + data_end[order_g]) - offset
    del offset
    prev_max = np.r_[0, running[:-1]]
    del running
    prev_max[np.r_[True, ge[1:] != ge[:-1]] if m else []] = 0
    again = np.zeros(m, dtype=bool)
    again[order_g] = (data_end[order_g] > 0) & (data_end[order_g] <= prev_max)
    del prev_max, data_end
    # FINs: the first one per side, and where each side's first FIN ends.
    fin_count = _running_count(fin_flag, order_g, ge)  # 1 for a side's first FIN, 2...
    del order_g, ge
    first_fin = _group_first(g, fin_flag & ~rst_flag, n_groups)
    fin_end = np.full(n_groups, -1, dtype=np.int64)
    has_fin = first_fin >= 0
    fin_end[has_fin] = (seq[first_fin[has_fin]] + length[first_fin[has_fin]] + 1) & 0xFFFFFFFF
    peer_g = g ^ 1
    peer_fin = first_fin[peer_g]
    covers = (
        is_ack & (peer_fin >= 0) & (np.arange(m) > peer_fin)
        & (_signed32(ack - fin_end[peer_g]) >= 0)
    )
    del peer_fin, peer_g
    first_cover = _group_first(g, covers, n_groups)
    newly_acks_fin = np.zeros(m, dtype=bool)
    newly_acks_fin[first_cover[first_cover >= 0]] = True

    kind = np.select(
        [
            rst_flag & is_ack, rst_flag,
            syn_flag & is_ack, syn_flag,
            fin_flag & newly_acks_fin & (fin_count == 1), newly_acks_fin,
            fin_flag & (fin_count == 1), fin_flag,
            again, length > 0, is_ack,
        ],
        [
            SegmentKind.RST_ACK, SegmentKind.RST,
            SegmentKind.SYN_ACK, SegmentKind.SYN,
            SegmentKind.FIN_ACK, SegmentKind.ACK_OF_FIN,
            SegmentKind.FIN, SegmentKind.FIN_AGAIN,
            SegmentKind.DATA_AGAIN, SegmentKind.DATA, SegmentKind.ACK,
        ],
        SegmentKind.OTHER,
    ).astype(np.int8)
    return kind, newly_acks_fin


def _content_gaps(p, rows, c, direction, flags, seq, length, rel_seq, rel_ack, has_syn) -> np.ndarray:
    """Per packet, the content gaps its ACK skips (:class:`tcpchatx.analysis.zeek.Reassembly`).

    Mirrors the reassembly that :class:`~tcpchatx.analysis.zeek.ZeekConnection` does for
    every packet it is fed, run here only over the connections where a gap can be: a
    payload cut short by the capture, data (or a SYN or FIN) that starts past what its
    side sent before (a hole), an ACK past what the peer sent before, a side with no
    SYN, or one that sent a SYN more than once.  Elsewhere (almost every connection of
    a healthy capture) there is none, and nothing runs.
    """
    m = len(rows)
    holes = np.zeros(m, dtype=np.int64)
    if not m:
        return holes
    syn, fin, rst, is_ack = ((flags & bit) != 0 for bit in (SYN, FIN, RST, ACK))
    end = rel_seq + np.where(rst, 0, length) + syn + fin
    offset = c.astype(np.int64) << 40
    sends = (length > 0) | syn | fin  # a bare ACK's sequence number is no byte sent
    reach = []  # per direction: the furthest end it had sent, up to each packet (-1: nothing yet)
    for d in (0, 1):
        mine = np.where((direction == d) & sends, end + 1, 0)
        reach.append(np.maximum.accumulate(offset + mine) - offset - 1)
    reach = np.stack(reach)
    own_before = np.where(direction == 0, np.r_[-1, reach[0][:-1]], np.r_[-1, reach[1][:-1]])
    own_before[np.r_[True, c[1:] != c[:-1]]] = -1
    peer_reach = np.where(direction == 0, reach[1], reach[0])
    suspect = ((p.payload_caplen[rows] < length) | (sends & (own_before >= 0) & (rel_seq > own_before))
               | (is_ack & (rel_ack > peer_reach)))
    partial = ~has_syn.reshape(-1, 2).all(axis=1)
    side_syns, count = np.unique((c * 2 + direction)[syn], return_counts=True)
    synced_again = side_syns[count > 1] // 2  # a side that sent a SYN more than once
    conns = np.unique(np.r_[c[suspect], np.flatnonzero(partial), synced_again]).tolist()
    if not conns:
        return holes
    starts = np.searchsorted(c, conns)
    stops = np.searchsorted(c, conns, "right")
    caplen = p.payload_caplen[rows]
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        data = [Reassembly(), Reassembly()]
        for k in range(a, b):
            side, f, s, n = int(direction[k]), int(flags[k]), int(seq[k]), int(length[k])
            holes[k] = reassemble(data, side, f, s, n, int(p.ack[rows[k]]), int(caplen[k]))
    return holes


def _states(g, c, direction, flags, seq, length, kind, newly_acks_fin, first_pkt, n_groups, walks,
            window, rel_seq, roles, holes):
    """4. The state table, run over candidates only (see the module docstring).

    Mirrors the table and Zeek in :func:`tcpchatx.analysis.plain.tracker.follow_connection`.
    """
    is_ack = (flags & ACK) != 0
    control = (flags & (SYN | FIN | RST)) != 0
    first_ack_only = _group_first(g, is_ack & (length == 0) & ~control, n_groups)
    first_data_only = _group_first(g, (length > 0) & ~control, n_groups)
    candidate = control | newly_acks_fin | (holes > 0)  # an ACK that skips a content gap writes g
    del is_ack, control
    for firsts in (first_pkt, first_ack_only, first_data_only):
        candidate[firsts[firsts >= 0]] = True

    runner = _Runner(flags, seq, length, direction, c, kind, walks, roles, holes)
    position = np.arange(len(g))
    while True:
        runner.run(np.flatnonzero(candidate))
        last = np.maximum.accumulate(np.where(candidate, position, -1))
        state_before = np.where(candidate, runner.state_before, runner.state_after[last])
        moves = NEXT_STATE[state_before, kind] != state_before
        zeek_inactive = runner.zeek_after[last, direction] == ZeekEndpoint.INACTIVE
        violators = ~candidate & (moves | zeek_inactive)
        del moves, zeek_inactive
        if not violators.any():
            break
        candidate |= violators
        del last
    # Zeek's scaled letters (w, t): their events need every packet's endpoint states,
    # which change on candidates only; the packets that write one join the candidates,
    # so that the walk puts the letter where it belongs in the history.
    if _no_scaled_events(flags, length, window, rel_seq, kind, c, direction):
        step = np.where(candidate, runner.step, STEP_ID[state_before, kind])
        return runner, state_before, step
    zeek_before = np.where(candidate[:, None], runner.zeek_before, runner.zeek_after[last])
    letters = _scaled_letters(g, direction, flags, length, window, seq, zeek_before, first_pkt, n_groups)
    if letters.any():
        candidate |= letters != 0
        runner.scaled = letters
        runner.run(np.flatnonzero(candidate))
    step = np.where(candidate, runner.step, STEP_ID[state_before, kind])
    return runner, state_before, step


def _no_scaled_events(flags, length, window, rel_seq, kind, c, direction) -> bool:
    """Whether no packet can be an event of ``w`` or ``t``: no zero window, and no payload
    that could end at or below what its side had sent (a resend the state table saw, or
    payload whose kind hides a resend: on a SYN, FIN or RST, or on the first ACK of the
    peer's FIN; or at or before the side's first sequence number).  Most captures of a
    healthy chat: then the exact count below is skipped."""
    carries = length > 0
    if ((window == 0).any() or (kind == SegmentKind.DATA_AGAIN).any()
            or (carries & (kind == SegmentKind.ACK_OF_FIN)).any()
            or (carries & ((flags & (SYN | FIN | RST)) != 0)).any()
            or (carries & ((rel_seq == 0) | (rel_seq >= 1 << 31))).any()):  # at or before the side's start
        return False
    # Data that ends at or below the end of an earlier SYN or FIN of its side (Zeek's
    # LastSeq counts those too; the state table's resends count data only).
    syn, fin = (flags & SYN) != 0, (flags & FIN) != 0
    end = rel_seq + length + syn + fin
    offset = c.astype(np.int64) << 40
    for d in (0, 1):
        control_end = np.maximum.accumulate(offset + np.where((direction == d) & (syn | fin), end + 1, 0)) - offset - 1
        if (carries & (direction == d) & (end <= control_end)).any():
            return False
    return True


def _scaled_letters(g, direction, flags, length, window, seq, zeek_before, first_pkt, n_groups):
    """Per packet, the scaled letters it writes: 1 for ``w``, 2 for ``t`` (both: 3).

    Mirrors :meth:`tcpchatx.analysis.zeek.ZeekConnection._scaled_letters`, for all
    packets at once: an event is a zero window, or a retransmission (payload ending at
    or below the furthest ``seq + seg_len`` that side had sent, counted over the packets
    Zeek trusts); the 1st, 10th, 100th... event of each side writes its letter.
    """
    m = len(g)
    if not m:
        return np.zeros(0, dtype=np.int8)
    rows = np.arange(m)
    me = zeek_before[rows, direction]
    peer = zeek_before[rows, 1 - direction]
    syn, fin, rst = ((flags & bit) != 0 for bit in (SYN, FIN, RST))
    zero_window = (window == 0) & ~rst & (peer != ZeekEndpoint.CLOSED) & (me != ZeekEndpoint.RESET)
    # Zeek's LastSeq: the furthest end sent, set by each side's first packet (its start,
    # or a SYN's end), raised by every later packet that goes further.  Positions are
    # unwrapped from each side's first sequence number, step by step (each a signed
    # 32-bit difference, as Zeek's seq_delta), so a segment before the first one seen,
    # or past 4 GiB, compares as it does in Zeek.
    order_g = stable_argsort(g)
    ge = g[order_g]
    group_start = np.r_[True, ge[1:] != ge[:-1]] if m else np.zeros(0, dtype=bool)
    raw = seq[order_g].astype(np.int64)
    step = np.r_[0, ((np.diff(raw) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)]
    step[group_start] = 0
    walked = np.cumsum(step)
    position = np.empty(m, dtype=np.int64)
    position[order_g] = walked - walked[np.maximum.accumulate(np.where(group_start, np.arange(m), 0))]
    end = position + np.where(rst, 0, length) + syn + fin
    first = np.zeros(m, dtype=bool)
    first[first_pkt[first_pkt >= 0]] = True
    bias = 1 << 42  # positions are within +-2**41 of a side's first one: made positive
    offset = ge.astype(np.int64) << 44  # keep each group's running max apart
    start = np.where(first, np.where(syn, end, position), -bias)
    trusted = (me != ZeekEndpoint.RESET) | first
    raises = np.where(trusted, end, -bias)
    value = np.maximum(start, raises)[order_g] + bias
    before = np.r_[-1, (np.maximum.accumulate(offset + value) - offset)[:-1]]
    before[group_start] = -1  # nothing before a side's first packet
    last_end = np.empty(m, dtype=np.int64)
    last_end[order_g] = before - bias
    last_end = np.where(first, start, last_end)  # the first packet compares with its own start
    delta = end - last_end
    untrusted = (syn | rst) & (np.abs(delta) > TOO_LARGE_SEQ_DELTA)
    retransmission = (length > 0) & (delta <= 0) & ~untrusted & (me != ZeekEndpoint.RESET)
    letters = np.zeros(m, dtype=np.int8)
    for bit, events in ((1, zero_window), (2, retransmission)):
        count = _running_count(events, order_g, ge)
        letters |= np.where(events & _scaled_count(count), bit, 0).astype(np.int8)
    return letters


def _scaled_count(count: np.ndarray) -> np.ndarray:
    """Whether each count is 1, 10, 100, ...: the events that write a scaled letter."""
    powers = SCALING_BASE ** np.arange(19, dtype=np.int64)
    return np.isin(count, powers)


class _Runner:
    """The packet-by-packet part: the table and Zeek's endpoints, over candidates.

    ``run`` is called with the positions to visit (sorted, every connection's first
    packet included) and fills per-position results plus per-connection facts.

    Connections of a busy chat capture look alike: SYN, SYN-ACK, ACK, data, FIN,
    FIN.  What the loop computes for a connection depends only on a few facts per
    candidate (its kind, side, control flags, whether it carries bytes, whether its
    sequence number repeats the last one Zeek saw for that history letter), so we
    walk each distinct sequence of those facts once (:func:`_walk`) and reuse
    the result for every connection that has the same one.
    """

    def __init__(self, flags, seq, length, direction, conn, kind, walks: dict[bytes, _Walk], roles, holes) -> None:
        m = len(flags)
        self.flags, self.seq, self.length = flags, seq, length
        self.direction, self.conn, self.kind = direction, conn, kind
        self.state_before = np.zeros(m, dtype=np.int8)
        self.state_after = np.zeros(m, dtype=np.int8)
        self.step = np.zeros(m, dtype=np.int16)
        self.zeek_before = np.zeros((m, 2), dtype=np.int8)  # Zeek's endpoint states before each
        self.zeek_after = np.zeros((m, 2), dtype=np.int8)
        self.scaled = np.zeros(m, dtype=np.int8)  # the scaled letters each writes (_scaled_letters)
        self.roles = roles  # its connection's Zeek roles: 1 flipped at the start, 2 swapped
        self.holes = holes  # the content gaps its ACK skips (_content_gaps)
        self.walks = walks  # key: _walk_codes of a connection's candidates
        self.positions = np.zeros(0, dtype=np.int64)  # the last run's candidates
        self.facts: dict[int, tuple[_Walk, int]] = {}  # conn -> (walk, index of its first candidate)

    def run(self, positions: np.ndarray) -> None:
        self.positions = positions
        conn = self.conn[positions]
        codes = _walk_codes(positions, conn, self.flags, self.seq, self.length,
                            self.direction, self.kind, self.scaled, self.roles, self.holes)
        bounds = np.flatnonzero(np.r_[True, conn[1:] != conn[:-1], True]) if len(conn) else np.zeros(1, int)
        walks, self.facts = [], {}
        for a, b, this_conn in zip(bounds[:-1].tolist(), bounds[1:].tolist(),
                                   conn[bounds[:-1]].tolist(), strict=True):
            key = codes[a:b].tobytes()
            walk = self.walks.get(key)
            if walk is None:
                walk = self.walks[key] = _walk(*(c[positions[a:b]].tolist() for c in (
                    self.kind, self.direction, self.flags, self.seq, self.length, self.scaled, self.roles,
                    self.holes)))
            walks.append(walk)
            self.facts[this_conn] = (walk, a)
        if not walks:
            return
        for name in ("state_before", "state_after", "step", "zeek_before", "zeek_after"):
            getattr(self, name)[positions] = np.concatenate([getattr(w, name) for w in walks])


@dataclass
class _Walk:
    """The table and Zeek run over one connection's candidates (see :class:`_Runner`)."""

    state_before: np.ndarray  # per candidate
    state_after: np.ndarray
    step: np.ndarray
    zeek_before: np.ndarray  # (candidates, 2): Zeek's endpoint states before each
    zeek_after: np.ndarray  # (candidates, 2): and after it
    final: str  # the state after the last candidate, by name
    conn_state: str
    history: str
    close_kind: str
    active_closer: str | None
    handshake: list[int]  # candidate indices
    closing: list[int]


SCALED = ["", "w", "t", "wt"]  # _scaled_letters' bits, as letters in the order Zeek writes them


def _walk(kinds, sides, flags, seqs, lengths, scaled, roles, holes) -> _Walk:
    """Feed one connection's candidates through the table and Zeek, in order."""
    step_id, next_state = STEP_ID.tolist(), NEXT_STATE.tolist()
    state_before, state_after, steps, zeek_before, zeek_after, path = [], [], [], [], [], []
    state = State.CLOSED
    zeek = ZeekConnection(flipped=bool(roles[0] & 1), swapped=bool(roles[0] & 2))
    for k, (kind, side, flag, seq, length, letters, gaps) in enumerate(
            zip(kinds, sides, flags, seqs, lengths, scaled, holes, strict=True)):
        new = next_state[state][kind]
        state_before.append(state)
        steps.append(step_id[state][kind])
        if new != state or kind in (SegmentKind.RST, SegmentKind.RST_ACK):
            path.append((state, kind, side, k))
        state = new
        state_after.append(state)
        zeek_before.append(zeek.states_by_side())
        zeek.feed(side, flag, seq, length, scaled=SCALED[letters], holes=gaps)
        zeek_after.append(zeek.states_by_side())
    # path: (state, kind, side, candidate index) of each change of state, and each RST
    close_kind, active_closer = close_kind_of(path, state)
    handshake = [k for old, kind, _, k in path
                 if kind in (SegmentKind.SYN, SegmentKind.SYN_ACK) or old == State.SYN_RECEIVED]
    closing = [k for old, kind, _, k in path
               if old >= State.ESTABLISHED and kind not in (SegmentKind.SYN, SegmentKind.SYN_ACK)]
    return _Walk(np.array(state_before, np.int8), np.array(state_after, np.int8),
                 np.array(steps, np.int16), np.array(zeek_before, np.int8).reshape(-1, 2),
                 np.array(zeek_after, np.int8).reshape(-1, 2),
                 State(state).name, zeek.conn_state(), zeek.history, close_kind, active_closer,
                 handshake, closing)


def _walk_codes(positions, conn, flags, seq, length, direction, kind, scaled, roles, holes) -> np.ndarray:
    """One number per candidate holding everything :func:`_walk` looks at.

    SegmentKind, side, the SYN/FIN/RST/ACK bits and "carries bytes" are read directly.
    Sequence numbers matter only to Zeek's history, which repeats a letter (s, h,
    f or r) when its sequence number differs from the last one seen with that
    letter on that side; so the code keeps just "same as last time" for those.
    """
    f = flags[positions]
    syn, fin, rst, ack = ((f & bit) != 0 for bit in (SYN, FIN, RST, ACK))
    length = length[positions]
    side = direction[positions]
    single = (syn.astype(np.int8) + fin + rst) == 1
    letter = np.select([single & syn & ack, single & syn, single & fin, single & rst],
                       [1, 2, 3, 4], 0)  # h, s, f, r: the letters with a sequence number
    letter_seq = np.where(fin, seq[positions] + length, seq[positions]) & 0xFFFFFFFF
    # "same as the last time this connection's side showed this letter"
    group = (conn.astype(np.int64) * 5 + letter) * 2 + side
    order = np.argsort(group, kind="stable")
    g, s = group[order], letter_seq[order]
    repeat = np.zeros(len(positions), dtype=bool)
    repeat[order[1:]] = (g[1:] == g[:-1]) & (s[1:] == s[:-1])
    repeat &= letter > 0
    return (kind[positions].astype(np.uint32) | side.astype(np.uint32) << 4
            | syn << 5 | fin << 6 | rst << 7 | ack << 8 | (length > 0) << 9 | repeat << 10
            | scaled[positions].astype(np.uint32) << 11 | roles[positions].astype(np.uint32) << 13
            | np.minimum(holes[positions], 0xFFFF).astype(np.uint32) << 16).astype(np.uint32)


def _summaries(p, r, starts, direction, g, n_conn, base, has_syn, length, flags, runner, splits, first_id):
    """One :class:`Connection` per connection (ids from ``first_id``): columns computed
    with numpy, then zipped.  ``splits``: the connections Zeek cuts in several (:func:`_zeek_splits`)."""
    ends = np.r_[starts[1:], len(r)] if n_conn else starts
    pkts = np.bincount(g, minlength=2 * n_conn).reshape(n_conn, 2)
    byts = np.bincount(g, weights=length, minlength=2 * n_conn).reshape(n_conn, 2).astype(np.int64)
    syn = (flags & (SYN | ACK)) == SYN
    synack = (flags & (SYN | ACK)) == (SYN | ACK)
    b = COMPLETENESS_BITS
    bits = (
        syn * b["SYN"] | synack * b["SYN-ACK"] | (((flags & ACK) != 0) & ~synack) * b["ACK"]
        | (length > 0) * b["DATA"] | ((flags & FIN) != 0) * b["FIN"] | ((flags & RST) != 0) * b["RST"]
    )
    # Wireshark counts a SYN only when nothing came before it (a SYN-ACK, an ACK...).
    seen = np.cumsum(bits != 0)
    seen_before = seen - (bits != 0) - np.repeat(seen[starts] - (bits[starts] != 0), np.diff(np.r_[starts, len(r)]))
    bits = np.where(syn & (seen_before > 0), bits & ~b["SYN"], bits)
    completeness = np.bitwise_or.reduceat(bits, starts) if len(starts) else np.zeros(0, np.int64)
    first, last = r[starts], r[ends - 1]
    (client_addr, client_port), (server_addr, server_port) = _ends(p, r, starts, direction)
    isn = np.where(has_syn, base, -1).reshape(n_conn, 2)
    columns = zip(
        range(first_id, first_id + n_conn), client_addr.tolist(), client_port.tolist(), server_addr.tolist(),
        server_port.tolist(), isn.tolist(), pkts.tolist(), byts.tolist(),
        p.frame[first].tolist(), p.frame[last].tolist(), p.seconds(first).tolist(),
        (p.seconds(last) - p.seconds(first)).tolist(), completeness.tolist(), strict=True,
    )
    addresses = p.addresses
    # Every connection's handshake and close frames, looked up in one step.
    facts = [runner.facts[i] for i in range(n_conn)]
    wanted = [a + k for walk, a in facts for k in (*walk.handshake, *walk.closing)]
    frames = iter(p.frame[r[runner.positions[wanted]]].tolist() if wanted else [])
    connections = []
    for (i, c_addr, c_port, s_addr, s_port, (isn_o, isn_r), (pk_o, pk_r), (by_o, by_r),
         first_frame, last_frame, start, duration, complete) in columns:
        walk, _ = facts[i - first_id]
        zeek = splits.get(i - first_id) or [walk]
        handshake = list(itertools.islice(frames, len(walk.handshake)))
        closing = list(itertools.islice(frames, len(walk.closing)))
        connections.append(Connection(
            id=i,
            client=(addresses[c_addr], c_port),
            server=(addresses[s_addr], s_port),
            isn=(None if isn_o < 0 else isn_o, None if isn_r < 0 else isn_r),
            packets=(pk_o, pk_r),
            payload_bytes=(by_o, by_r),
            first_frame=first_frame,
            last_frame=last_frame,
            start=start,
            duration=duration,
            conn_state=zeek[0].conn_state,
            history=zeek[0].history,
            zeek_connections=zeek if len(zeek) > 1 else [],
            close_kind=walk.close_kind,
            active_closer=walk.active_closer,
            final_state=walk.final,
            completeness=complete,
            handshake_frames=handshake,
            close_frames=closing,
        ))
    return connections

