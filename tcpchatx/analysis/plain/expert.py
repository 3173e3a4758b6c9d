"""Wireshark's TCP expert analysis, one packet at a time: retransmissions, duplicate ACKs,
windows, keep-alives, and the RTT each ACK measures.

Wireshark marks a segment as a retransmission, a duplicate ACK or a zero window from
what it has seen so far in each direction of the connection (``packet-tcp.c``,
``tcp_analyze_sequence_number``).  This module does the same, in the same order, and
names each finding as Wireshark's field does (``tcp.analysis.retransmission`` is
``"retransmission"`` here), so that tshark can check every packet.  It follows
Wireshark 4.0 (Debian 12's), the version the tests hold it to; later versions say
"ACKed unseen segment" less often when the same bytes stay unseen.

Per direction it remembers, as Wireshark does:

- ``nextseq``: the sequence number just past the furthest byte sent (0 until the
  first segment), and when and in which frame it advanced;
- ``lastack``, the window and when the last segment was sent, to tell a duplicate ACK
  (same ACK, same window, no data) from a window update (same ACK, new window);
- ``maxseqtobeacked``: how far the sender's bytes are contiguous, to notice an ACK
  for bytes the capture never saw;
- the segments not yet acknowledged, to say which frame an ACK acknowledges, after
  how long (``ack_rtt``), and how many bytes are in flight (less what the peer's
  last packet says it holds beyond a hole, in its SACK blocks).

The rules, each checked in this order for every packet (the first three that say
"stop" end the checks for the packet):

- zero window probe: one byte at ``nextseq`` while the peer's window is 0 (stop);
- zero window: the window is 0 (no SYN, FIN or RST);
- lost segment: the segment starts past ``nextseq`` (the capture missed bytes);
- keep-alive: 0 or 1 byte at ``nextseq - 1``;
- window update: no data, the same ACK, a new non-zero window;
- window full: the data reaches the right edge of the peer's window;
- keep-alive ACK, zero-window-probe ACK: the answer to one of those (stop);
- duplicate ACK: no data, the same ACK and the same non-zero window, counted;
- ACKed unseen segment: the ACK covers bytes never seen from the peer;
- for a segment with data (or SYN/FIN) that does not advance ``nextseq``: spurious
  retransmission (all its bytes were already acknowledged), fast retransmission (it
  starts at the peer's ACK, repeated at least twice, within 20 ms), out of order
  (it came within one handshake RTT of the furthest segment), else retransmission.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...tcp_flags import ACK, FIN, RST, SYN
from ..packets import Packets
from ..tracker import Flows

#: Every finding, as Wireshark's fields name them (``tcp.analysis.<name>``).
EVENTS = (
    "retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order",
    "lost_segment", "ack_lost_segment", "duplicate_ack",
    "zero_window", "zero_window_probe", "zero_window_probe_ack",
    "window_update", "window_full", "keep_alive", "keep_alive_ack",
)
FAST_RETRANSMISSION_WINDOW = 20_000_000  # ns after the last duplicate ACK (Wireshark's 20 ms)
OUT_OF_ORDER_DEFAULT = 3_000_000  # ns, when the handshake's RTT is not known (Wireshark's 3 ms)
MAX_UNACKED = 10_000  # segments remembered per direction (Wireshark's TCP_MAX_UNACKED_SEGMENTS)

#: How Wireshark's Info column shows each finding, in the order it shows them: it
#: puts each in front of the ones before, in the reverse of this order (packet-tcp.c,
#: ``tcp_print_sequence_number_analysis``).  A fast or spurious retransmission is
#: shown as that alone, not also as a "[TCP Retransmission]".
INFO = {
    "zero_window_probe_ack": "[TCP ZeroWindowProbeAck]",
    "zero_window": "[TCP ZeroWindow]",
    "zero_window_probe": "[TCP ZeroWindowProbe]",
    "duplicate_ack": "[TCP Dup ACK {frame}#{number}]",
    "keep_alive_ack": "[TCP Keep-Alive ACK]",
    "keep_alive": "[TCP Keep-Alive]",
    "window_full": "[TCP Window Full]",
    "window_update": "[TCP Window Update]",
    "ack_lost_segment": "[TCP ACKed unseen segment]",
    "lost_segment": "[TCP Previous segment not captured]",
    "out_of_order": "[TCP Out-Of-Order]",
    "spurious_retransmission": "[TCP Spurious Retransmission]",
    "fast_retransmission": "[TCP Fast Retransmission]",
    "retransmission": "[TCP Retransmission]",
}


def shown_in_info(events) -> list[str]:
    """The findings Wireshark's Info column shows, in its order (see :data:`INFO`)."""
    resent_as = {"fast_retransmission", "spurious_retransmission"}
    return [name for name in INFO if name in events
            and not (name == "retransmission" and resent_as & set(events))]


def info_mark(name: str) -> str:
    """How the Info column marks a finding, without its numbers: ``"[TCP Dup ACK]"``."""
    return INFO[name].replace(" {frame}#{number}", "")


def info(events, duplicate_ack_frame: int | None = None, duplicate_ack_num: int | None = None) -> str:
    """The findings as Wireshark's Info column starts: ``"[TCP Dup ACK 5#2]"``,
    ``"[TCP ZeroWindowProbeAck] [TCP ZeroWindow]"``; ``""`` for none."""
    return " ".join(INFO[name].format(frame=duplicate_ack_frame, number=duplicate_ack_num)
                    for name in shown_in_info(events))


@dataclass
class Finding:
    """What the analysis says of one packet."""

    events: list[str] = field(default_factory=list)
    duplicate_ack_num: int | None = None  # the how-manieth duplicate of its ACK
    duplicate_ack_frame: int | None = None  # the frame whose ACK it repeats
    acks_frame: int | None = None  # the frame whose data this ACK acknowledges exactly
    ack_rtt: float | None = None  # seconds since that frame
    bytes_in_flight: int | None = None  # bytes sent, not yet acknowledged, after this one


@dataclass
class _Unacked:
    seq: int
    nextseq: int
    frame: int
    time: int  # ns


@dataclass
class _Direction:
    """What Wireshark remembers of one direction of a connection."""

    base_seq: int | None = None  # where relative numbers start (Wireshark's base_seq)
    nextseq: int = 0
    nextseq_frame: int = 0
    nextseq_time: int = 0
    lastack: int = 0
    lastack_time: int = 0
    last_non_dup_ack: int = 0  # the frame whose ACK the duplicates repeat
    dupacks: int = 0
    maxseqtobeacked: int = 0
    window: int | None = None  # the last raw window field (None: nothing sent yet)
    win_scale: int = -1  # -1 unknown, -2 no scaling, else the shift
    first_ack: bool = True  # no ACK but a SYN-ACK sent yet: its window is not scaled
    last_events: set[str] = field(default_factory=set)
    unacked: list[_Unacked] = field(default_factory=list)  # newest first, as Wireshark keeps them
    valid_bif: bool = True  # bytes in flight can be told (no loss since the last ACK back)
    sack_blocks: list[tuple[int, int]] = field(default_factory=list)  # its last SACK (first 3 blocks)


def analyse_one_by_one(p: Packets, t: Flows) -> dict[int, Finding]:
    """Row -> what Wireshark's expert analysis says of that TCP packet."""
    directions: dict[tuple[int, int], _Direction] = {}
    syn_time: dict[int, int] = {}  # each connection's latest SYN without ACK (ns)
    first_rtt: dict[int, int] = {}  # the handshake's RTT (tcp.analysis.initial_rtt): SYN to first ACK
    findings: dict[int, Finding] = {}
    for row in np.flatnonzero(t.conn >= 0).tolist():
        conn, side = int(t.conn[row]), int(t.direction[row])
        fwd = directions.setdefault((conn, side), _Direction())
        rev = directions.setdefault((conn, 1 - side), _Direction())
        now = p.nanoseconds(row)
        flags = int(p.flags[row])
        if flags & (SYN | ACK) == SYN:
            syn_time[conn] = now
        elif flags & (SYN | ACK) == ACK and conn in syn_time and conn not in first_rtt:
            first_rtt[conn] = now - syn_time[conn]
        findings[row] = _analyse(p, row, fwd, rev, now, first_rtt.get(conn))
        fwd.sack_blocks = (_sack_blocks(p, row) or [])[:3]  # Wireshark keeps the first 3, per packet
        if flags & SYN:
            _window_scaling(p.tcp_options(row).get("wscale"), bool(flags & ACK), fwd, rev)
        if flags & (SYN | ACK) == ACK:  # a SYN-ACK's window is never scaled: only a later ACK's is
            fwd.first_ack = False
    return findings


def _window_scaling(wscale: int | None, synack: bool, fwd: _Direction, rev: _Direction) -> None:
    """What a SYN's window-scale option says (Wireshark's verify_tcp_window_scaling)."""
    if wscale is not None:
        fwd.win_scale = wscale
    if fwd.win_scale == -1:  # no option: neither side scales
        fwd.win_scale = rev.win_scale = -2
    elif synack and rev.win_scale == -2:
        fwd.win_scale = -2


def _analyse(p: Packets, row: int, fwd: _Direction, rev: _Direction, now: int,
             first_rtt: int | None) -> Finding:
    """One packet, through Wireshark's checks in Wireshark's order."""
    seq, ack = int(p.seq[row]), int(p.ack[row])
    seglen, flags, window = int(p.payload_len[row]), int(p.flags[row]), int(p.window[row])
    frame = int(p.frame[row])
    control = flags & (SYN | FIN | RST)
    found = Finding()
    events = found.events
    if fwd.base_seq is None:
        fwd.base_seq = seq if flags & SYN else (seq - 1) & 0xFFFFFFFF
    if flags & ACK:
        rev.valid_bif = True

    def checks() -> None:  # "return" is Wireshark's "goto finished_fwd"
        if seglen == 1 and seq == fwd.nextseq and rev.window == 0:
            events.append("zero_window_probe")
            return
        if window == 0 and not control:
            events.append("zero_window")
        if fwd.nextseq and _after(seq, fwd.nextseq) and not flags & RST:
            events.append("lost_segment")
            fwd.valid_bif = False
        if seglen in (0, 1) and seq == (fwd.nextseq - 1) & 0xFFFFFFFF and not control:
            events.append("keep_alive")
        same_place = seglen == 0 and seq == fwd.nextseq and ack == fwd.lastack and not control
        if same_place and window and window != fwd.window:
            events.append("window_update")
        if (seglen > 0 and rev.win_scale != -1 and rev.window is not None and not control
                and (seq + seglen) & 0xFFFFFFFF == (rev.lastack + (rev.window << _shift(rev))) & 0xFFFFFFFF):
            events.append("window_full")
        if same_place and window and window == fwd.window and "keep_alive" in rev.last_events:
            events.append("keep_alive_ack")
            return
        if same_place and window == 0 and window == fwd.window and "zero_window_probe" in rev.last_events:
            events.append("zero_window_probe_ack")
            return
        if same_place and window and window == fwd.window:
            fwd.dupacks += 1
            events.append("duplicate_ack")
            found.duplicate_ack_num, found.duplicate_ack_frame = fwd.dupacks, fwd.last_non_dup_ack

    checks()
    new_ack = ack != fwd.lastack
    if new_ack:  # the duplicates start again
        fwd.last_non_dup_ack, fwd.dupacks = frame, 0
    # An ACK of bytes never seen from the peer: said when the ACK moves, not by its
    # repeats (as tshark 4.0 does; its source says "so we don't get this indication again").
    if rev.maxseqtobeacked and _after(ack, rev.maxseqtobeacked) and flags & ACK and new_ack:
        events.append("ack_lost_segment")
        rev.maxseqtobeacked = rev.nextseq
    if (seglen > 0 or flags & (SYN | FIN)) and "keep_alive" not in events:
        _retransmission_kind(seq, seglen, flags, now, fwd, rev, first_rtt, events)

    # What this segment leaves behind, for the packets after it.
    nextseq = (seq + seglen + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
    if (seglen or flags & (SYN | FIN)) and len(fwd.unacked) < MAX_UNACKED:
        fwd.unacked.insert(0, _Unacked(seq, nextseq, frame, now))
    if (_after(nextseq, fwd.nextseq) or not fwd.nextseq) and "zero_window_probe" not in events:
        fwd.nextseq, fwd.nextseq_frame, fwd.nextseq_time = nextseq, frame, now
    if (seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked) and "zero_window_probe" not in events:
        fwd.maxseqtobeacked = fwd.nextseq
    fwd.window, fwd.lastack, fwd.lastack_time = window, ack, now
    fwd.last_events = set(events)
    _acknowledge(ack, now, rev, found)
    found.bytes_in_flight = _in_flight(seglen, flags, fwd, rev)
    return found


def _retransmission_kind(seq, seglen, flags, now, fwd, rev, first_rtt, events) -> None:
    """A segment that does not advance the sequence: which kind of resend it is."""
    not_advanced = bool(fwd.nextseq) and _before(seq, fwd.nextseq)
    if seglen > 1 and (fwd.nextseq - 1) & 0xFFFFFFFF == seq:
        not_advanced = False  # new data right after a zero window probe's byte
    if seglen > 0 and rev.lastack and not _after((seq + seglen) & 0xFFFFFFFF, rev.lastack):
        events.append("spurious_retransmission")
        events.append("retransmission")
        return
    # (Wireshark subtracts the times unsigned: a packet stamped earlier is never "within")
    if (not_advanced and rev.dupacks >= 2 and rev.lastack == seq
            and 0 <= now - rev.lastack_time < FAST_RETRANSMISSION_WINDOW):
        events.append("fast_retransmission")
        events.append("retransmission")
        return
    threshold = first_rtt if first_rtt else OUT_OF_ORDER_DEFAULT
    ends_at = (seq + seglen + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
    if not_advanced and 0 <= now - fwd.nextseq_time < threshold and fwd.nextseq != ends_at:
        events.append("out_of_order")
        return
    if not_advanced:
        events.append("retransmission")


def _acknowledge(ack: int, now: int, rev: _Direction, found: Finding) -> None:
    """Forget the peer's segments this ACK covers; note the one it acknowledges exactly."""
    kept = []
    for segment in rev.unacked:
        if ack == segment.nextseq:
            found.acks_frame = segment.frame
            found.ack_rtt = (now - segment.time) / 1e9
        elif _after(ack, segment.seq) and not _after(ack, segment.nextseq):
            segment.seq = ack  # partly acknowledged
            kept.append(segment)
            continue
        elif _after(segment.nextseq, ack):
            kept.append(segment)
            continue
        # acknowledged: dropped
    rev.unacked = kept


def _in_flight(seglen: int, flags: int, fwd: _Direction, rev: _Direction) -> int | None:
    """Bytes sent and not yet acknowledged, after a segment with data (Wireshark's way):
    from the oldest unacknowledged byte to the newest, less what the peer's last SACK
    says it holds."""
    if not seglen or not fwd.unacked or not fwd.valid_bif:
        return None
    base = fwd.base_seq  # offsets from the start, as sequence numbers wrap
    first = min((s.seq - base) & 0xFFFFFFFF for s in fwd.unacked)
    last = max((s.nextseq - base) & 0xFFFFFFFF for s in fwd.unacked)
    in_flight = last - first
    in_flight = (in_flight - sum((right - left) & 0xFFFFFFFF for left, right in rev.sack_blocks)) & 0xFFFFFFFF
    if not 0 < in_flight < 2_000_000_000:
        return None
    return in_flight - (1 if flags & (SYN | FIN) else 0)


def _sack_blocks(p: Packets, row: int) -> list[tuple[int, int]] | None:
    """The SACK blocks a packet carries, or None (options are read only if they may hold one)."""
    if not int(p.options_len[row]):
        return None
    start = int(p.tcp_header_offsets(row)) + 20
    raw = bytes(p.buffer[start : start + int(p.options_len[row])])
    return p.tcp_options(row).get("sack") if 5 in raw else None


def _shift(d: _Direction) -> int:
    return 0 if d.first_ack or d.win_scale == -2 else d.win_scale


def _after(a: int, b: int) -> bool:
    """``a`` comes after ``b`` in sequence space (which wraps at 2**32)."""
    return 0 < (a - b) & 0xFFFFFFFF < 1 << 31


def _before(a: int, b: int) -> bool:
    return _after(b, a)
