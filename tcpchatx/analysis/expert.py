"""Wireshark's TCP expert analysis for every packet at once: the fast twin of
:mod:`tcpchatx.analysis.plain.expert` (read that first).

Most connections are *clean*: each direction opens with its SYN (and has one),
every packet starts exactly where the one before it ended (nothing lost, resent or
reordered), no window is ever 0, every packet but the first SYN carries an ACK, no
ACK goes back or covers bytes the capture did not see, no data comes before the
peer's SYN, and no option but timestamps follows the SYNs (no SACK blocks).  In a
clean connection what the plain loop remembers of a direction is what its last
packet says, and Wireshark's state reduces to a few values that numpy computes a
whole column at a time:

- the only events are ``window_update`` and ``duplicate_ack`` (a pure ACK that
  repeats the ACK before it, with a new or the same window) and ``window_full``;
- the segment an ACK acknowledges is the peer's segment ending exactly at the ACK,
  the first time an ACK reaches that far;
- the bytes in flight after a segment run from the peer's furthest ACK so far to the
  segment's end.

Every other connection goes through the plain loop, one packet at a time, which
gives the same answers by definition.  A test holds the two to the same columns on
every capture, and both to tshark.

How the columns are worked out
------------------------------
A connection's findings depend on its own packets alone, so the work goes a range
of whole connections at a time (about :data:`RANGE` packets, on two threads:
:mod:`.workers`): a range's temporaries are small enough to stay in the CPU's
cache, where the whole capture's at once took ~420 bytes a packet.  Inside a range
the rows are grouped by connection, in capture order, and every "the packet before
this one" of the plain loop is found by counting (:func:`_last_before`): the last
earlier row of the same connection sent the same way ("mine") or the other way
("the peer's").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..tcp_flags import ACK, FIN, RST, SYN
from .capture_file import is_constant
from .packets import Packets
from .plain.expert import EVENTS, analyse_one_by_one, info, shown_in_info
from .sorting import stable_argsort
from .tracker import Flows, connection_ranges
from .workers import in_order

EVENT_BIT = {name: 1 << k for k, name in enumerate(EVENTS)}  # a packet's events as one uint16
NO_FRAME = 0  # "none" in the frame columns (frames count from 1)
RANGE = 1 << 15  # packets per range of whole connections
SEQ_BITS = 33  # relative sequence numbers (< 2**32) and one more, below a connection's number


class DuplicateAcks(NamedTuple):
    """The duplicate ACKs, in row order (few, so they are listed apart from the columns)."""

    rows: np.ndarray  # int64: the rows that are duplicate ACKs
    of_frame: np.ndarray  # the frame whose ACK each one repeats (NO_FRAME: the ACK never moved)
    number: np.ndarray  # int64: the how-manieth duplicate of that ACK each one is

    @staticmethod
    def joined(parts: list[DuplicateAcks]) -> DuplicateAcks:
        """Several lists as one, in row order."""
        if not parts:
            return NO_DUPLICATES
        rows, of_frame, number = (np.concatenate([np.zeros(0, np.int64), *column]).astype(np.int64)
                                  for column in zip(*parts, strict=True))
        order = np.argsort(rows, kind="stable")
        return DuplicateAcks(rows[order], of_frame[order], number[order])

    def of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each of ``rows``: whether it is a duplicate ACK, its ``of_frame`` and
        ``number`` (0 where it is none)."""
        if not len(self.rows):
            none = np.zeros(len(rows), np.int64)
            return none.astype(bool), none, none
        at = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        found = self.rows[at] == rows
        return found, np.where(found, self.of_frame[at], 0), np.where(found, self.number[at], 0)


NO_DUPLICATES = DuplicateAcks(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass
class Expert:
    """The expert analysis over all frames (untracked frames: no findings).

    It is held while the outputs are written, so it is kept small (a million
    packets: 10 MB): an ACK's RTT is worked out when asked, from its timestamp and
    that of the frame it acknowledges, and the duplicate ACKs are listed apart.
    """

    events: np.ndarray  # uint16 per frame: EVENT_BIT bits
    acks_frame: np.ndarray  # per frame (as Packets.frame): the segment it acknowledges exactly, or NO_FRAME
    bytes_in_flight: np.ndarray  # int32 per frame, -1: none (Wireshark reports none from 2**31 on)
    duplicate_acks: DuplicateAcks
    ticks: np.ndarray = field(repr=False)  # every frame's timestamp: the packets' own ts_ticks
    per_second: np.ndarray = field(repr=False)  # and ts_tps (not copies)

    def names(self, i: int) -> list[str]:
        """Row ``i``'s events, in :data:`EVENTS` order."""
        bits = int(self.events[i])
        return [name for name in EVENTS if bits & EVENT_BIT[name]]

    def duplicate_ack(self, i: int) -> tuple[int, int] | None:
        """``(of_frame, number)`` if row ``i`` is a duplicate ACK, else None."""
        found, of_frame, number = self.duplicate_acks.of(np.array([i]))
        return (int(of_frame[0]), int(number[0])) if found[0] else None

    def ack_rtt(self, rows=slice(None)) -> np.ndarray:
        """Seconds from the segment each of ``rows`` acknowledges (``acks_frame``) to
        it, as Wireshark's ``tcp.analysis.ack_rtt`` and the plain loop count them
        (whole nanoseconds / 1e9); NaN where it acknowledges none."""
        acks_frame = self.acks_frame[rows]
        later = np.arange(len(self.events))[rows] if isinstance(rows, slice) else np.asarray(rows)
        acked = acks_frame != NO_FRAME
        earlier = np.where(acked, acks_frame.astype(np.int64) - 1, later)  # frame -> row
        return np.where(acked, _seconds_between(self.ticks, self.per_second, earlier, later), np.nan)

    def info(self, i: int) -> str:
        """Row ``i``'s findings as Wireshark's Info column starts them (``""`` for none)."""
        return info(self.names(i), *(self.duplicate_ack(i) or (None, None)))

    def info_counts(self) -> dict[str, int]:
        """How many packets the Info column marks with each finding (a fast or spurious
        retransmission is not also counted as a retransmission: :data:`~.plain.expert.INFO`),
        in :data:`EVENTS` order; findings never shown left out."""
        kinds, counts = np.unique(self.events[self.events != 0], return_counts=True)  # a few kinds
        shown = dict.fromkeys(EVENTS, 0)
        for bits, count in zip(kinds.tolist(), counts.tolist(), strict=True):
            for name in shown_in_info([name for name in EVENTS if bits & EVENT_BIT[name]]):
                shown[name] += count
        return {name: n for name, n in shown.items() if n}


def empty(p: Packets) -> Expert:
    """No findings for any frame of ``p``."""
    n = len(p)
    return Expert(np.zeros(n, np.uint16), np.zeros(n, p.frame.dtype), np.full(n, -1, np.int32),
                  NO_DUPLICATES, p.ts_ticks, p.ts_tps)


def from_findings(p: Packets, findings) -> Expert:
    """The plain loop's findings (row -> Finding) as columns.  (Its ``ack_rtt`` is
    what :meth:`Expert.ack_rtt` works out from ``acks_frame``: the tests hold them equal.)"""
    out = empty(p)
    duplicates = []
    for row, f in findings.items():
        out.events[row] = sum(EVENT_BIT[name] for name in set(f.events))
        out.acks_frame[row] = f.acks_frame or NO_FRAME
        out.bytes_in_flight[row] = -1 if f.bytes_in_flight is None else f.bytes_in_flight
        if f.duplicate_ack_num:
            duplicates.append((row, f.duplicate_ack_frame or NO_FRAME, f.duplicate_ack_num))
    if duplicates:
        out.duplicate_acks = DuplicateAcks(*(np.array(column, np.int64) for column in zip(*duplicates)))
    return out


def analyse(p: Packets, t: Flows) -> Expert:
    """Every tracked packet's expert analysis (see the module docstring)."""
    rows, starts = _by_connection(t)
    out = empty(p)

    def one_range(connections: tuple[int, int]) -> tuple[np.ndarray, DuplicateAcks]:
        c0, c1 = connections
        lo, hi = int(starts[c0]), int(starts[c1]) if c1 < len(starts) else len(rows)
        return _analyse_range(p, t, rows[lo:hi], out)

    found = list(in_order(one_range, connection_ranges(starts, len(rows), RANGE)))
    duplicates = [duplicate_acks for _, duplicate_acks in found]
    unclean = np.concatenate([np.zeros(0, np.int64), *(ids for ids, _ in found)])
    if len(unclean):
        duplicates.append(_one_by_one(p, t, unclean, out))
    out.duplicate_acks = DuplicateAcks.joined(duplicates)
    return out


def _by_connection(t: Flows) -> tuple[np.ndarray, np.ndarray]:
    """The tracked rows grouped by connection (capture order inside), and where each
    connection's rows start.

    Sorted by ``conn + 1`` over all frames, so the untracked frames (-1) come first,
    to be skipped: with fewer than 2**16 connections that is one radix pass of 16-bit
    keys, and no other array of every frame."""
    n_conn = len(t.isn)
    keys = (t.conn + 1).astype(np.uint16 if n_conn < 2**16 else np.int64)
    counts = np.bincount(keys, minlength=n_conn + 1)
    rows = stable_argsort(keys)[counts[0]:].astype(np.int32 if len(keys) < 2**31 else np.int64)
    starts = np.cumsum(counts[1:]) - counts[1:]
    return rows, starts[counts[1:] > 0]


def _one_by_one(p: Packets, t: Flows, connections: np.ndarray, out: Expert) -> DuplicateAcks:
    """The plain loop's findings for these connections' packets, into ``out``; returns
    their duplicate ACKs."""
    keep = np.isin(t.conn, connections)
    subset = Flows(conn=np.where(keep, t.conn, -1), direction=t.direction, rel_seq=t.rel_seq,
                   rel_ack=t.rel_ack, isn=t.isn, server_address=t.server_address, server_port=t.server_port)
    plain = from_findings(p, analyse_one_by_one(p, subset))
    for name in ("events", "acks_frame", "bytes_in_flight"):
        getattr(out, name)[keep] = getattr(plain, name)[keep]
    return plain.duplicate_acks


def _analyse_range(p: Packets, t: Flows, rows: np.ndarray, out: Expert) -> tuple[np.ndarray, DuplicateAcks]:
    """The clean connections among ``rows`` (whole connections, grouped) into ``out``;
    returns the ids of the others, for the plain loop, and the duplicate ACKs."""
    conn_id = t.conn[rows]
    new_conn = np.r_[True, conn_id[1:] != conn_id[:-1]]
    starts = np.flatnonzero(new_conn)
    conn = np.cumsum(new_conn) - 1  # 0, 1, ... inside the range
    side = t.direction[rows] == 1  # sent by the responder
    flags = p.flags[rows]
    syn, fin, acks = (flags & SYN) != 0, (flags & FIN) != 0, (flags & ACK) != 0
    control = (flags & (SYN | FIN | RST)) != 0
    seglen = p.payload_len[rows].astype(np.int64)
    window = p.window[rows].astype(np.int64)
    rel_seq, rel_ack = t.rel_seq[rows].astype(np.int64), t.rel_ack[rows].astype(np.int64)
    end = rel_seq + seglen + (syn | fin)  # the next sequence number after it
    mine, peers = _last_before(side, starts[conn])  # the packet before it, each way (-1: none)
    reached = np.where(acks, rel_ack, -1)  # how far its ACK reaches (-1: no ACK)

    # ---- which connections are clean (the module docstring): then what the plain loop
    # remembers of a direction is what its last packet says (nextseq: its end, lastack: its ACK)
    odd = syn != (mine < 0)  # each direction opens with its SYN, and has one
    odd |= (mine >= 0) & (rel_seq != _at(end, mine, 0))  # a segment not where the one before ended
    odd |= window == 0
    # options beyond timestamps (NOP, NOP, TS: 12 bytes) may be SACK blocks, which the
    # bytes in flight must take off: the plain way reads them
    odd |= (p.options_len[rows] > 12) & ~syn
    odd |= ~acks & ~syn  # a packet without ACK after the SYN
    odd |= reached < _at(reached, mine, -1)  # an ACK going back
    # an ACK beyond what the peer was seen to send (Wireshark: "ACKed unseen segment")
    odd |= acks & (rel_ack > np.maximum(_at(end, peers, -1), 1))
    # data before the peer's first ACK: the window scaling may not be settled, and the
    # peer's ACK field is no relative number yet (it is read below for "window full")
    odd |= (seglen > 0) & ~_at(acks, peers, False)
    unclean = np.logical_or.reduceat(odd, starts) | (np.add.reduceat(syn, starts, dtype=np.int32) != 2)
    clean = ~unclean[conn]

    # ---- window updates and duplicate ACKs: a pure ACK repeating the ACK before it
    raw_ack = p.ack[rows].astype(np.int64)
    moved = raw_ack != _at(raw_ack, mine, 0)  # Wireshark's lastack starts at 0
    same_place = clean & (seglen == 0) & ~moved & ~control & (window != 0)
    update = same_place & (window != _at(window, mine, -1))
    dup = same_place & ~update
    events = np.where(update, EVENT_BIT["window_update"], 0) | np.where(dup, EVENT_BIT["duplicate_ack"], 0)
    frame = p.frame[rows]
    duplicates = _number_duplicates(dup, moved, mine, side, starts[conn], frame, rows) if dup.any() \
        else NO_DUPLICATES

    # ---- window full: data reaching the right edge of the peer's last advertised window
    full = _window_full(p, rows, clean & (seglen > 0) & ~control, peers, end - rel_ack[peers], window,
                        conn * 2 + side, syn)
    events[full] |= EVENT_BIT["window_full"]
    noted = np.flatnonzero(events)
    out.events[rows[noted]] = events[noted]

    # ---- the segment an ACK acknowledges: the peer's segment ending exactly there,
    # the first time this direction's ACK reaches that far
    first_time = np.flatnonzero(clean & (reached > _at(reached, mine, -1)))
    acked = _segment_ending_at(rel_ack, first_time, peers, end, clean & (end > rel_seq), conn * 2 + side)
    found = acked >= 0
    row, segment = first_time[found], acked[found]
    out.acks_frame[rows[row]] = frame[segment]

    # ---- bytes in flight after a data segment: from the peer's furthest ACK so far
    # (nothing acknowledged yet: from the SYN) to the segment's end
    span = end - np.maximum(_at(reached, peers, 0), 0)
    ok = np.flatnonzero(clean & (seglen > 0) & (span > 0) & (span < 2_000_000_000))
    out.bytes_in_flight[rows[ok]] = (span - (syn | fin))[ok]
    return conn_id[starts][unclean], duplicates


def _last_before(side: np.ndarray, first: np.ndarray, mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the last earlier row of its connection (which starts at row
    ``first``) sent the same way, and the last sent the other way; -1 if none.
    With ``mask``, only rows where it holds count."""
    last = []
    for s in (False, True):
        this_way = side == s if mask is None else mask & (side == s)
        at = np.r_[-1, np.flatnonzero(this_way)]  # the rows sent this way, after a -1
        before = at[np.cumsum(this_way) - this_way]  # picked by how many of them came before
        last.append(np.where(before >= first, before, -1))
    return np.where(side, last[1], last[0]), np.where(side, last[0], last[1])


def _at(values: np.ndarray, index: np.ndarray, fill) -> np.ndarray:
    """``values[index]``, ``fill`` where the index is -1."""
    return np.where(index >= 0, values[index], fill)


def _number_duplicates(dup, moved, mine, side, first, frame, rows) -> DuplicateAcks:
    """Each duplicate ACK's number and the frame it duplicates: counted from the packet
    where this direction's ACK last moved (its frame is the one they duplicate; none
    if it never moved), as the plain loop's ``dupacks`` and ``last_non_dup_ack``."""
    starts_run = moved | (mine < 0)  # a new ACK value, or the direction's first packet
    mine_start, _ = _last_before(side, first, starts_run)
    run_start = np.where(starts_run, np.arange(len(dup)), mine_start)
    count = np.where(side, np.cumsum(dup & side), np.cumsum(dup & ~side))  # this direction's so far
    d = np.flatnonzero(dup)
    start = run_start[d]
    return DuplicateAcks(rows[d], np.where(moved[start], frame[start], NO_FRAME), count[d] - count[start])


def _segment_ending_at(rel_ack, candidates, peers, end, segments, direction) -> np.ndarray:
    """For each candidate ACK, the peer's segment (one of ``segments``) ending exactly
    at it, or -1.  In a clean connection no ACK reaches beyond the peer's last packet,
    whose end it usually is; the others are searched for among the segments sent
    before (a clean direction's segments end ever further)."""
    out = np.full(len(candidates), -1, dtype=np.int64)
    latest = peers[candidates]
    hit = (latest >= 0) & _at(segments, latest, False) & (_at(end, latest, -1) == rel_ack[candidates])
    out[hit] = latest[hit]
    missed = np.flatnonzero(~hit)
    seg = np.flatnonzero(segments)
    if len(missed) and len(seg):
        key = (direction[seg] << SEQ_BITS) | end[seg]
        order = np.argsort(key, kind="stable")
        seg, key = seg[order], key[order]
        ask = candidates[missed]
        want = ((direction[ask] ^ 1) << SEQ_BITS) | rel_ack[ask]
        pos = np.minimum(np.searchsorted(key, want), len(key) - 1)
        ok = (key[pos] == want) & (seg[pos] < ask)
        out[missed[ok]] = seg[pos[ok]]
    return out


def _seconds_between(ticks: np.ndarray, per_second: np.ndarray, earlier: np.ndarray, later: np.ndarray
                     ) -> np.ndarray:
    """Seconds from rows ``earlier`` to rows ``later``, as the plain loop counts them:
    whole nanoseconds (rounded down from the ticks), divided by 1e9."""
    if is_constant(per_second) and 10**9 % int(per_second[0]) == 0:  # a tick is whole ns (µs, ns clocks)
        return (ticks[later] - ticks[earlier]) * (10**9 // int(per_second[0])) / 1e9
    return (_ns(ticks, per_second, later) - _ns(ticks, per_second, earlier)) / 1e9


def _ns(ticks: np.ndarray, per_second: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Timestamps of ``rows`` in whole nanoseconds."""
    ticks, per_second = ticks[rows], per_second[rows]
    return ticks // per_second * 10**9 + ticks % per_second * 10**9 // per_second  # no overflow


def _window_full(p, rows, candidates, peers, beyond_ack, window, direction, syn) -> np.ndarray:
    """Rows (of ``candidates``) whose data reaches the right edge of the peer's last
    advertised window: its ACK plus its window, scaled - unless the peer's last packet
    was its SYN-ACK, whose window is never scaled.  ``beyond_ack``: how far each row's data
    ends beyond the peer's last ACK.  Only data reaching the peer's ACK plus its
    window times a power of two can be full: the window scales (from the SYNs'
    options) are read for those alone."""
    d = np.flatnonzero(candidates & (peers >= 0))
    at = peers[d]
    reach = beyond_ack[d] & 0xFFFFFFFF
    peer_window = window[at]
    # reach / window is exact when it is a power of two (and then only), up to 2**32
    mantissa, exponent = np.frexp(reach / np.maximum(peer_window, 1))
    maybe = (peer_window > 0) & (mantissa == 0.5) & (exponent >= 1)
    d, at, reach, peer_window = d[maybe], at[maybe], reach[maybe], peer_window[maybe]
    if not len(d):
        return d
    shift = _window_scales(p, rows, direction, syn, direction[at])
    shift = np.where(syn[at], 0, shift)  # the peer's last word was its SYN-ACK: a window never scaled
    return d[reach == peer_window << shift]


def _window_scales(p, rows, direction, syn, directions) -> np.ndarray:
    """The window-scale shift of each of ``directions``, both SYNs seen: its own option
    if both SYNs carried one, else 0 (Wireshark's verify_tcp_window_scaling)."""
    wanted = set(directions.tolist()) | set((directions ^ 1).tolist())
    syns = np.flatnonzero(syn & np.isin(direction, list(wanted)))
    option = {int(direction[k]): p.tcp_options(int(rows[k])).get("wscale") for k in syns.tolist()}
    shifts = []
    for d in directions.tolist():
        mine, theirs = option.get(d), option.get(d ^ 1)
        shifts.append(mine if mine is not None and theirs is not None else 0)
    return np.array(shifts, dtype=np.int64)
