"""Wireshark's TCP expert analysis for every packet at once: the fast twin of
:mod:`tcpchatx.analysis.plain.expert` (read that first).

Most connections are *clean*: each direction opens with its SYN, every segment
starts exactly where the one before ended (nothing lost, resent or reordered), no
window is ever 0, every packet but the first SYN carries an ACK, no ACK covers
bytes the capture did not see, and no option but timestamps follows the SYNs (no
SACK blocks).  In a clean connection Wireshark's state reduces to
a few running values that numpy computes a whole column at a time:

- the only events are ``window_update`` and ``duplicate_ack`` (a pure ACK that
  repeats the ACK before it, with a new or the same window) and ``window_full``;
- the segment an ACK acknowledges is the peer's segment ending exactly at the ACK,
  the first time an ACK reaches that far;
- the bytes in flight after a segment run from the peer's furthest ACK so far to the
  segment's end.

Every other connection goes through the plain loop, one packet at a time, which
gives the same answers by definition.  A test holds the two to the same columns on
every capture, and both to tshark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tcp_flags import ACK, FIN, RST, SYN
from .packets import Packets
from .plain.expert import EVENTS, analyse_one_by_one
from .sorting import stable_argsort
from .tracker import Flows

EVENT_BIT = {name: 1 << k for k, name in enumerate(EVENTS)}  # a packet's events as one uint16
NO_FRAME = 0  # "none" in the frame columns (frames count from 1)


@dataclass
class Expert:
    """The expert analysis as columns over all frames (untracked frames: no events)."""

    events: np.ndarray  # uint16: EVENT_BIT bits
    duplicate_ack_num: np.ndarray  # int32, 0: not a duplicate ACK
    duplicate_ack_frame: np.ndarray  # int64, NO_FRAME: none
    acks_frame: np.ndarray  # int64, NO_FRAME: acknowledges no segment exactly
    ack_rtt: np.ndarray  # float64 seconds, nan: none
    bytes_in_flight: np.ndarray  # int64, -1: none

    def names(self, i: int) -> list[str]:
        """Row ``i``'s events, in :data:`EVENTS` order."""
        bits = int(self.events[i])
        return [name for name in EVENTS if bits & EVENT_BIT[name]]


def empty(n: int) -> Expert:
    return Expert(np.zeros(n, np.uint16), np.zeros(n, np.int32), np.zeros(n, np.int64),
                  np.zeros(n, np.int64), np.full(n, np.nan), np.full(n, -1, np.int64))


def from_findings(n: int, findings) -> Expert:
    """The plain loop's findings (row -> Finding) as columns."""
    out = empty(n)
    for row, f in findings.items():
        out.events[row] = sum(EVENT_BIT[name] for name in set(f.events))
        out.duplicate_ack_num[row] = f.duplicate_ack_num or 0
        out.duplicate_ack_frame[row] = f.duplicate_ack_frame or NO_FRAME
        out.acks_frame[row] = f.acks_frame or NO_FRAME
        out.ack_rtt[row] = np.nan if f.ack_rtt is None else f.ack_rtt
        out.bytes_in_flight[row] = -1 if f.bytes_in_flight is None else f.bytes_in_flight
    return out


def analyse(p: Packets, t: Flows) -> Expert:
    """Every tracked packet's expert analysis (see the module docstring)."""
    out = empty(len(p))
    rows = np.flatnonzero(t.conn >= 0)
    if not len(rows):
        return out
    rows = rows[stable_argsort(t.conn[rows].astype(np.int64))]  # by connection, capture order inside
    c = t.conn[rows].astype(np.int64)
    side = t.direction[rows].astype(np.int64)
    flags = p.flags[rows].astype(np.int64)
    seglen = p.payload_len[rows].astype(np.int64)
    window = p.window[rows].astype(np.int64)
    rel_seq = t.rel_seq[rows].astype(np.int64)
    rel_ack = t.rel_ack[rows].astype(np.int64)
    consumes = (seglen > 0) | ((flags & (SYN | FIN)) != 0)
    end = rel_seq + seglen + ((flags & (SYN | FIN)) != 0)  # the next sequence number after it
    g = c * 2 + side
    n_conn = int(c.max()) + 1

    # ---- which connections are clean
    idx = np.arange(len(rows))  # capture order within each connection
    by_g = stable_argsort(g)  # each direction's packets, in capture order
    gs = g[by_g]
    ends = np.where(consumes, end, -1)
    nextseq_before = _previous(_running_max(ends, by_g, gs), by_g, gs, -1)  # -1: nothing sent yet
    chained = np.where(nextseq_before >= 0, rel_seq == nextseq_before, (flags & SYN) != 0)
    unclean = ~chained | (window == 0)
    # options beyond timestamps (NOP, NOP, TS: 12 bytes) may be SACK blocks, which the
    # bytes in flight must take off: the plain way reads them
    unclean |= (p.options_len[rows] > 12) & ((flags & SYN) == 0)
    unclean |= ((flags & ACK) == 0) & ((flags & SYN) == 0)  # a packet without ACK after the SYN
    unclean |= ((flags & SYN) != 0) & (nextseq_before >= 0)  # a second SYN
    # an ACK beyond what the peer was seen to send (Wireshark: "ACKed unseen segment")
    peer_last = _last_of_peer_before(g, idx, gs, by_g)
    running_end = _running_max(ends, by_g, gs)
    peer_next = np.where(peer_last >= 0, running_end[np.clip(peer_last, 0, len(rows) - 1)], -1)
    unclean |= ((flags & ACK) != 0) & ((flags & SYN) == 0) & (rel_ack > np.maximum(peer_next, 1))
    bad_conn = np.zeros(n_conn, bool)
    bad_conn[c[unclean]] = True
    # both SYNs seen, and before any data, so that the window scaling is settled
    syn_rows = np.flatnonzero((flags & SYN) != 0)
    bad_conn |= np.bincount(c[syn_rows], minlength=n_conn) != 2
    last_syn = np.full(n_conn, -1, np.int64)
    np.maximum.at(last_syn, c[syn_rows], syn_rows)
    data_rows = np.flatnonzero(seglen > 0)
    bad_conn[c[data_rows][data_rows < last_syn[c[data_rows]]]] = True

    # ---- the clean connections, with numpy
    clean = ~bad_conn[c]
    _clean_columns(p, rows, clean, flags, seglen, window, rel_ack, end, consumes, g,
                   (idx, by_g, gs, peer_last), out)

    # ---- the rest, one packet at a time
    if bad_conn.any():
        keep = np.isin(t.conn, np.flatnonzero(bad_conn))
        conn = np.where(keep, t.conn, -1)
        subset = Flows(conn=conn, direction=t.direction, rel_seq=t.rel_seq, rel_ack=t.rel_ack, isn=t.isn,
                       server_address=t.server_address, server_port=t.server_port)
        plain = from_findings(len(p), analyse_one_by_one(p, subset))
        for name in ("events", "duplicate_ack_num", "duplicate_ack_frame", "acks_frame", "ack_rtt",
                     "bytes_in_flight"):
            getattr(out, name)[keep] = getattr(plain, name)[keep]
    return out


def _clean_columns(p, rows, clean, flags, seglen, window, rel_ack, end, consumes, g, order, out) -> None:
    """Window updates, duplicate ACKs, window full, ACK RTT and bytes in flight of the
    clean connections' packets (``clean``), from running values per direction.

    Computed over every packet (a connection's values depend only on its own
    packets), kept for the clean ones."""
    idx, by_g, gs, peer_last = order
    frame = p.frame[rows].astype(np.int64)
    ticks, per_second = p.ts_ticks[rows].astype(np.int64), p.ts_tps[rows].astype(np.int64)
    now = ticks // per_second * 10**9 + ticks % per_second * 10**9 // per_second  # ns, no overflow
    first_in_g = np.r_[True, gs[1:] != gs[:-1]]
    events = np.zeros(len(rows), np.uint16)

    # ---- window updates and duplicate ACKs: a pure ACK repeating the ACK before it
    raw_ack = p.ack[rows].astype(np.int64)
    prev_ack = _previous(raw_ack, by_g, gs, 0)  # Wireshark's lastack starts at 0
    control = (flags & (SYN | FIN | RST)) != 0
    same_place = (seglen == 0) & (raw_ack == prev_ack) & ~control
    prev_window = _previous(window, by_g, gs, -1)
    update = same_place & (window != 0) & (window != prev_window)
    dup = same_place & (window != 0) & (window == prev_window)
    events[update] |= EVENT_BIT["window_update"]
    events[dup] |= EVENT_BIT["duplicate_ack"]
    # Duplicates are counted from the packet where the ACK last changed (its frame is
    # the one they duplicate): a run per (direction, ACK value), in capture order.
    changed = (raw_ack != prev_ack)[by_g]
    run_start = np.maximum.accumulate(np.where(changed | first_in_g, np.arange(len(rows)), 0))
    dups = np.r_[0, np.cumsum(dup[by_g])]
    dup_num = np.empty(len(rows), np.int64)
    dup_num[by_g] = dups[1:] - dups[run_start]
    run_frame = np.empty(len(rows), np.int64)
    run_frame[by_g] = np.where(changed, frame[by_g], 0)[run_start]  # 0: it never changed
    keep = dup & clean
    out.duplicate_ack_num[rows[keep]] = dup_num[keep]
    out.duplicate_ack_frame[rows[keep]] = run_frame[keep]

    # ---- the segment an ACK acknowledges: the peer's segment ending exactly there,
    # sent before it, the first time this direction's ACK reaches that far.  (A clean
    # direction's segments end ever further: in direction order they are sorted.)
    seg = by_g[(consumes & clean)[by_g]]
    seg_key = (g[seg] << 40) | end[seg]
    acks = (flags & ACK) != 0
    want = ((g ^ 1) << 40) | rel_ack
    pos = np.clip(np.searchsorted(seg_key, want), 0, max(len(seg_key) - 1, 0))
    match = seg[pos] if len(seg) else np.zeros(len(rows), np.int64)
    found = seg_key[pos] == want if len(seg) else np.zeros(len(rows), bool)
    reach = np.where(acks, rel_ack, -1)
    furthest = _running_max(reach, by_g, gs)
    best_before = _previous(furthest, by_g, gs, -1)
    first_time = clean & acks & found & (match < idx) & (rel_ack > best_before)
    out.acks_frame[rows[first_time]] = frame[match[first_time]]
    out.ack_rtt[rows[first_time]] = (now[first_time] - now[match[first_time]]) / 1e9

    # ---- window full: data reaching the right edge of the peer's last advertised window
    # (scaled, unless every packet of the peer so far went without ACK: its SYN)
    # Only data reaching the peer's ACK plus its window times a power of two can be
    # full: the window scales (from the SYNs' options) are read for those alone.
    at = np.clip(peer_last, 0, len(rows) - 1)
    seq_end = (p.seq[rows].astype(np.int64) + seglen) & 0xFFFFFFFF
    reach_edge = (seq_end - raw_ack[at]) & 0xFFFFFFFF
    peer_window = window[at]
    multiple = (peer_window > 0) & (reach_edge % np.maximum(peer_window, 1) == 0)
    ratio = reach_edge // np.maximum(peer_window, 1)
    maybe = np.flatnonzero((peer_last >= 0) & (seglen > 0) & ~control & multiple & ((ratio & (ratio - 1)) == 0)
                           & (ratio > 0))
    if len(maybe):
        scaled = (flags[at[maybe]] & ACK) != 0
        shift = np.where(scaled, _window_scales(p, rows, g, flags, g[at[maybe]]), 0)
        full = maybe[reach_edge[maybe] == peer_window[maybe] << shift]
        events[full] |= EVENT_BIT["window_full"]
    out.events[rows[clean]] |= events[clean]

    # ---- bytes in flight after a data segment: from the peer's furthest ACK so far
    # (nothing acknowledged yet: from the SYN) to the segment's end
    acked = np.maximum(np.where(peer_last >= 0, furthest[at], -1), 0)
    span = end - acked
    ok = clean & (seglen > 0) & (span > 0) & (span < 2_000_000_000)
    out.bytes_in_flight[rows[ok]] = (span - ((flags & (SYN | FIN)) != 0))[ok]


def _running_max(values, by_g, gs):
    """Each packet's running maximum of ``values`` over its direction, itself included."""
    v = values[by_g]
    run = np.maximum.accumulate(v + (gs << 40)) - (gs << 40)  # the shift keeps directions apart
    out = np.empty_like(values)
    out[by_g] = run
    return out


def _previous(values, by_g, gs, fill):
    """Each packet's predecessor's value in its direction (``fill`` for the first)."""
    v = values[by_g]
    prev = np.r_[fill, v[:-1]]
    prev[np.r_[True, gs[1:] != gs[:-1]]] = fill
    out = np.empty_like(values)
    out[by_g] = prev
    return out


def _last_of_peer_before(g, idx, gs, by_g) -> np.ndarray:
    """For each packet, the index of the peer direction's last packet before it, or -1."""
    peer = g ^ 1
    key = (gs << 40) | idx[by_g]  # each direction's packets in capture order
    pos = np.searchsorted(key, (peer << 40) | idx, "left") - 1
    at = np.clip(pos, 0, len(key) - 1)
    return np.where((pos >= 0) & ((key[at] >> 40) == peer), by_g[at], -1)


def _window_scales(p, rows, g, flags, directions) -> np.ndarray:
    """The window-scale shift of each of ``directions``, both SYNs seen: its own option
    if both SYNs carried one, else 0 (Wireshark's verify_tcp_window_scaling)."""
    wanted = set(directions.tolist()) | set((directions ^ 1).tolist())
    syns = np.flatnonzero(((flags & SYN) != 0) & np.isin(g, list(wanted)))
    option = {int(g[k]): p.tcp_options(int(rows[k])).get("wscale") for k in syns.tolist()}
    shifts = []
    for direction in directions.tolist():
        mine, theirs = option.get(direction), option.get(direction ^ 1)
        shifts.append(mine if mine is not None and theirs is not None else 0)
    return np.array(shifts, dtype=np.int64)
