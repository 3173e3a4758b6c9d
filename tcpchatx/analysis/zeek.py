"""Zeek's ``conn_state`` and ``history`` for one connection, computed Zeek's way.

Theory of operation
-------------------
Zeek does not use our whole-connection table (:mod:`.states`).  It keeps one small
state per *endpoint* (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED,
CLOSED, RESET), moves them on SYN, FIN and RST (``TCPSessionAdapter.cc``), and at
the end maps the pair of endpoint states to a ``conn_state`` label
(``conn_state()`` in ``base/protocols/conn/main.zeek``).  This module is a port of
those two pieces, so our labels agree with a real ``conn.log``.  The labels and
their meanings live in :mod:`.labels`.

The history string follows Zeek's rules too (``TCPSessionAdapter::update_history``,
``update_window``, ``update_last_seq``): one letter per event, upper case for the
originator, in the order Zeek writes them for one packet (its flags' letter, then
``w``, then ``t``):

- ``a`` and ``d`` at most once per direction (a pure ACK; payload without SYN, FIN or
  RST); ``i`` (FIN and RST) and ``q`` (SYN with FIN or RST) likewise;
- ``s``, ``h``, ``f``, ``r`` again only when the sequence number differs from the last
  one that side sent with that flag (``f``: the sequence number after its payload),
  counted from the side's StartSeq; a SYN and a SYN-ACK share one mark per side (Zeek's
  ``HIST_SYN_PKT``), so a side that sent one writes the other only at a new number;
- ``t`` (a retransmission: payload that ends at or below the furthest byte that side
  had sent, as Zeek's ``LastSeq`` counts it, SYN and FIN included; not from a side
  already reset) and ``w`` (a zero window: the window field 0, not on a RST, not from a
  side already reset, not after the peer's FIN) are *scaled*: written at the 1st,
  10th, 100th... such packet of each side (``Connection::ScaledHistoryEntry``).

*Roles* (``^``).  Zeek's originator is the sender of a connection's first packet,
unless that packet is not a pure SYN and comes from a *likely server port*
(:data:`LIKELY_SERVER_PORTS`; both ports likely: only a non-SYN packet from the lower
one): then Zeek flips the roles at once, and the history starts with ``^``
(``TCPAnalyzer::WantConnection``).  The tracker's originator follows the same rule,
except for a first SYN-ACK, whose receiver is always the tracker's originator: where
Zeek made the SYN-ACK's sender the originator (``swapped``), its letters are cased by
Zeek's roles, and when the SYN it answers comes, Zeek flips the roles then (``s^``:
``UpdateInactiveState``), and the two agree again.

*Content gaps* (``g``, scaled too): an ACK past the bytes an endpoint's data had
delivered in order, across bytes the capture never saw (:class:`Reassembly`), is one
gap per missing stretch, charged to the data's sender, when both endpoints are
established or closed cleanly after it (``TCP_Reassembler::Gap``).  Zeek finds gaps
only through ACKs: missing data no ACK covers is never one.

Where Zeek's timers or a reused four-tuple cut a stream into several connections,
:mod:`.zeek_sessions` feeds each piece to a ZeekConnection of its own.  Not modelled:
``c`` (checksums).

The plain tracker feeds every packet in; the fast one feeds only the packets that can
change something (control packets, first ACKs and data, and the packets that write a
scaled letter or skip a content gap, which it finds itself and passes in ``scaled``
and ``holes``).
"""

from __future__ import annotations

import re
from enum import IntEnum

from ..tcp_flags import ACK, FIN, RST, SYN
from .labels import ConnState


class Endpoint(IntEnum):
    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


E = Endpoint
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")
SCALING_BASE = 10  # a scaled letter is written at the 1st, 10th, 100th... event
#: Zeek's default TCP ``likely_server_ports`` (5.x/6.x base scripts: each protocol
#: script's ``redef likely_server_ports += {...}``): FTP, SSH, SMTP, DNS, HTTP and its
#: proxies, Kerberos, DCE-RPC, LDAP, TLS services, Modbus, SOCKS, RDP, XMPP, IRC, IMAP,
#: SMB, DNP3, MQTT.  ``zeek -e 'print likely_server_ports'`` prints a build's own.
LIKELY_SERVER_PORTS = frozenset({
    21, 2811, 22, 25, 587, 53, 80, 81, 631, 1080, 3128, 8000, 8080, 8888, 88, 135, 389, 3268,
    443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223, 502, 3389, 5222, 5269,
    6666, 6667, 6668, 6669, 143, 139, 445, 20000, 1883,
})


def zeek_flips(flags: int, sport: int, dport: int) -> bool:
    """Whether Zeek makes a connection's first packet's *receiver* its originator
    (``TCPAnalyzer::WantConnection``): never for a pure SYN; for anything else when the
    source port is a likely server port and the destination's is not, or, both likely,
    for a non-SYN packet from the lower port."""
    if flags & SYN and not flags & ACK:
        return False
    if sport not in LIKELY_SERVER_PORTS:
        return False
    if dport not in LIKELY_SERVER_PORTS:
        return True
    return not flags & SYN and sport < dport
TOO_LARGE_SEQ_DELTA = 1 << 20  # Zeek's bound on a SYN's or RST's jump in sequence space


def scaled_events(count: int) -> bool:
    """Whether the *count*-th event of a scaled letter writes it (1, 10, 100, ...)."""
    while count % SCALING_BASE == 0:
        count //= SCALING_BASE
    return count == 1


def _delta(a: int, b: int) -> int:
    """``a - b`` in sequence space, as a signed 32-bit number."""
    return (a - b + (1 << 31)) % (1 << 32) - (1 << 31)


class Reassembly:
    """What one endpoint's data looks like to the peer's ACKs (Zeek's ``TCP_Reassembler``,
    as far as its content gaps go): the bytes delivered in order so far, and the captured
    ranges above them.  An ACK past the delivered bytes skips what is missing below it:
    each missing stretch is one content gap (``Undelivered`` -> ``Gap``).

    Positions are sequence numbers relative to the first one seen (ints, wrap-aware).
    """

    def __init__(self) -> None:
        self.anchor: int | None = None  # a raw sequence number: positions count from it
        self.delivered = 0  # the next position to deliver
        self.above: list[tuple[int, int]] = []  # captured ranges above it, (start, end)
        self.fin: int | None = None  # the position of the FIN octet, once a FIN was sent

    def position(self, seq: int) -> int:
        return _delta(seq, self.anchor)

    def start(self, seq: int) -> None:
        """The first byte of data is at raw ``seq`` (after a SYN, or the first packet seen,
        or the peer's first ACK): Zeek's ``init_endpoint`` / ``init_peer``."""
        if self.anchor is None:
            self.anchor = seq
            self.delivered = 0

    def rebase(self, seq: int) -> None:
        """The side's SYN moved its start (a new ISN): its data starts again at raw ``seq``."""
        self.anchor, self.delivered, self.above, self.fin = seq, 0, [], None

    def sent(self, seq: int, length: int, captured: int, fin: bool) -> None:
        """A segment at raw ``seq`` with ``length`` bytes, ``captured`` of them in the file."""
        if self.anchor is None:
            self.start(seq)
        begin = self.position(seq)
        if captured > 0:
            self.above.append((begin, begin + captured))
            self._deliver()
        if fin and self.fin is None:
            self.fin = begin + length

    def acked(self, ack: int) -> int:
        """The peer acknowledged up to raw ``ack``: how many stretches were missing below it."""
        if self.anchor is None:
            return 0
        up_to = self.position(ack)
        if self.fin is not None and up_to > self.fin:
            up_to = self.fin  # the FIN's own octet is no data
        if up_to <= self.delivered:
            return 0
        holes, at = 0, self.delivered
        for begin, end in sorted(self.above):
            if begin >= up_to:
                break
            if begin > at:
                holes += 1
            at = max(at, end)
        if at < up_to:
            holes += 1
        self.delivered = up_to
        self._deliver()
        return holes

    def _deliver(self) -> None:
        """Deliver what is now contiguous; forget what lies below the delivered point."""
        self.above.sort()
        kept = []
        for begin, end in self.above:
            if begin <= self.delivered:
                self.delivered = max(self.delivered, end)
            else:
                kept.append((begin, end))
        self.above = kept


def reassemble(data: list[Reassembly], side: int, flags: int, seq: int, length: int, ack_number: int,
               captured: int) -> int:
    """One packet from ``side`` through both endpoints' reassembly (``data``): the content
    gaps its ACK skips in the peer's data (``AckReceived``), then its own data
    (``DataSent``).  Returns the number of gaps."""
    mine, theirs = data[side], data[1 - side]
    mine.start((seq + 1) & 0xFFFFFFFF if flags & SYN else seq)  # init_endpoint
    holes = 0
    if flags & ACK:
        theirs.start(ack_number)  # init_peer: the peer has sent nothing yet
        holes = theirs.acked(ack_number)
    if not flags & RST:
        data_seq = (seq + 1) & 0xFFFFFFFF if flags & SYN else seq
        mine.sent(data_seq, length, min(captured, length), bool(flags & FIN))
    return holes


class ZeekConnection:
    """Two endpoint states and a history string; feed packets in capture order."""

    def __init__(self, flipped: bool = False, swapped: bool = False) -> None:
        """``flipped``: Zeek flipped the roles at the first packet (the history starts
        with ``^``); ``swapped``: Zeek's originator is the caller's responder (a first
        SYN-ACK that Zeek did not flip), until the SYN comes."""
        self.swapped = swapped
        self.state = [E.INACTIVE, E.INACTIVE]  # [originator, responder], Zeek's
        self.prev_state = [E.INACTIVE, E.INACTIVE]
        self.size = [0, 0]  # payload bytes per direction (for the REJ rule)
        self.history = "^" if flipped else ""
        self._seen: set[str] = set()  # Zeek's hist_seen: a letter's kind, cased by role
        self._last_seq = [{}, {}]  # per endpoint: "s" (SYN or SYN-ACK), "f", "r" -> last relative seq
        self.last_end: list[int | None] = [None, None]  # Zeek's LastSeq: the furthest seq + seg_len sent
        self.scaled_count: list[dict[str, int]] = [{}, {}]  # per endpoint: letter -> events so far
        self.data = [Reassembly(), Reassembly()]  # each endpoint's bytes, for its content gaps
        self.start_seq = [0, 0]  # Zeek's StartSeq per endpoint (what IsReuse compares a SYN with)
        self.did_close = [False, False]  # per endpoint: Zeek counted its close (ConnectionClosed)

    # ------------------------------------------------------------------ history

    def _add(self, letter: str, side: int, seq: int | None = None, kind: str | None = None) -> None:
        """Write ``letter`` the first time its ``kind`` (default: itself) shows from
        ``side``; after that, for a letter with a sequence number, whenever ``seq``
        differs from the last one of that kind (``CheckHistory``, ``hist_last_*``)."""
        kind = kind or letter
        code = letter.upper() if side == 0 else letter
        seen = kind.upper() if side == 0 else kind
        if seen not in self._seen:
            self._seen.add(seen)
            self.history += code
        elif seq is not None and self._last_seq[side].get(kind, 0) != seq:
            self.history += code
        if seq is not None:
            self._last_seq[side][kind] = seq

    def _update_history(self, side: int, flags: int, seq: int, length: int) -> None:
        syn, fin, rst = bool(flags & SYN), bool(flags & FIN), bool(flags & RST)
        bits = syn + fin + rst
        relative = (seq - self.start_seq[side]) & 0xFFFFFFFF  # Zeek's rel_seq
        if bits > 1:
            self._add("i" if fin and rst else "q", side)
        elif syn:
            self._add("h" if flags & ACK else "s", side, relative, kind="s")
        elif fin:
            self._add("f", side, (relative + length) & 0xFFFFFFFF)  # a FIN's seq is after its data
        elif rst:
            self._add("r", side, relative)
        elif length:
            self._add("d", side)
        elif flags & ACK:
            self._add("a", side)

    # ------------------------------------------------------------------ endpoint states

    def _set(self, side: int, state: Endpoint) -> None:
        self.prev_state[side] = self.state[side]
        self.state[side] = state

    def _scaled(self, letter: str, side: int) -> None:
        """One event of a scaled letter: written at its 1st, 10th, 100th... event."""
        counts = self.scaled_count[side]
        counts[letter] = counts.get(letter, 0) + 1
        if scaled_events(counts[letter]):
            self.history += letter.upper() if side == 0 else letter

    def _scaled_letters(self, side: int, flags: int, seq: int, length: int, window: int) -> str:
        """Which of ``w`` and ``t`` this packet is an event of (states before it)."""
        found = ""
        me, peer = self.state[side], self.state[1 - side]
        if window == 0 and not flags & RST and peer != E.CLOSED and me != E.RESET:
            found += "w"
        seg_len = (0 if flags & RST else length) + bool(flags & SYN) + bool(flags & FIN)
        end = (seq + seg_len) & 0xFFFFFFFF
        last = self.last_end[side]
        if last is None:  # the side's first packet: Zeek's init_endpoint
            last = self.last_end[side] = end if flags & SYN else seq
        delta = _delta(end, last)
        if flags & (SYN | RST) and abs(delta) > TOO_LARGE_SEQ_DELTA:
            pass  # not trusted
        elif me == E.RESET:
            pass  # nor is anything from a side that reset
        elif delta > 0:
            self.last_end[side] = end
        elif length > 0:
            found += "t"
        return found

    def feed(self, side: int, flags: int, seq: int, length: int, window: int = 1,
             scaled: str | None = None, ack_number: int = 0, captured: int | None = None,
             holes: int | None = None) -> str | None:
        """One packet from ``side`` (0 = originator, 1 = responder): its flags, sequence
        and ACK numbers, payload length (``captured`` of it in the file) and raw window.
        ``scaled`` says which of ``w`` and ``t`` it writes, and ``holes`` how many content
        gaps its ACK skips, for a caller that found them itself (it then need not feed
        every packet); by default both are found here.  ``side`` is the caller's; Zeek's
        is the other one while ``swapped``.

        Returns the timer this packet starts, for :class:`~.zeek_sessions.ZeekSessions`:
        ``"attempt"`` (the originator's SYN), ``"close"`` (the close is complete) or
        ``"reset"`` (a RST after its sender's FIN), else None."""
        side ^= self.swapped
        self._init_start_seqs(side, flags, seq, ack_number)
        if holes is None:
            holes = self._reassemble(side, flags, seq, length, ack_number,
                                     length if captured is None else captured)
        self._update_history(side, flags, seq, length)
        if scaled is None:
            for letter in self._scaled_letters(side, flags, seq, length, window):
                self._scaled(letter, side)
        else:
            for letter in scaled:
                self.history += letter.upper() if side == 0 else letter
        if length and not flags & RST:
            self.size[side] += length
        attempt = side == 0 and flags & SYN and self.state[0] == E.INACTIVE  # AttemptTimer is set
        closes = self._machine(side, flags, length)  # (the one packet that flips roles, a pure SYN, has no ACK)
        if holes and self._clean():
            for _ in range(holes):
                self._scaled("g", 1 - side)  # charged to the data's sender: the ACK's peer
        if closes == "close":
            closes = self._closed(side)
        return closes or ("attempt" if attempt else None)

    def corrupt(self, side: int) -> None:
        """A segment from ``side`` whose TCP checksum is wrong (``ChecksumError``): Zeek
        writes ``c`` (scaled) and reads nothing else of it."""
        self._scaled("c", side ^ self.swapped)

    def _clean(self) -> bool:
        """Both endpoints established, or closed after being so (``is_clean``): only then
        does Zeek write a content gap."""
        return all(state == E.ESTABLISHED or (state == E.CLOSED and prev == E.ESTABLISHED)
                   for state, prev in zip(self.state, self.prev_state, strict=True))

    def _reassemble(self, side: int, flags: int, seq: int, length: int, ack_number: int, captured: int) -> int:
        return reassemble(self.data, side, flags, seq, length, ack_number, captured)

    def _machine(self, side: int, flags: int, length: int) -> str | None:
        """Zeek's endpoint machine (``UpdateStateMachine``) for one packet from ``side``.
        Returns ``"close"`` when Zeek would count a close (its ``do_close``), ``"reset"``
        for a RST after its sender's own close (``ResetTimer``), else None."""
        peer = 1 - side
        me = self.state[side]
        syn, fin, rst, ack = flags & SYN, flags & FIN, flags & RST, flags & ACK

        if me == E.INACTIVE:
            if syn:
                if side == 0:
                    self._set(side, E.SYN_ACK_SENT if ack else E.SYN_SENT)
                elif not ack and self.state[peer] == E.SYN_ACK_SENT:
                    # The SYN that the first packet, a SYN-ACK, answered: Zeek had taken
                    # the SYN-ACK's sender for the originator, and flips the roles now.
                    self._flip()
                    self.state = [E.ESTABLISHED, E.ESTABLISHED]
                    return None
                else:
                    if self.state[peer] == E.SYN_SENT:
                        self._set(peer, E.ESTABLISHED)
                    self._set(side, E.ESTABLISHED)
            if fin:
                self._set(side, E.CLOSED)
            if rst:
                self._set(side, E.RESET)
            if self.state[side] == E.INACTIVE:  # no control flag changed it
                if side == 1 and length == 0 and self.state[0] == E.SYN_SENT:
                    pass  # an ACK of the SYN before the SYN-ACK: not a partial connection
                elif ack and self.state[peer] == E.ESTABLISHED:
                    self._set(side, E.ESTABLISHED)  # we just missed the SYN
                else:
                    self._set(side, E.PARTIAL)
            return "close" if fin or rst else None
        if me in (E.SYN_SENT, E.SYN_ACK_SENT):
            if fin:
                self._set(side, E.CLOSED)
            if rst:
                self._set(side, E.RESET)
            return "close" if fin or rst else None
        if me in (E.ESTABLISHED, E.PARTIAL):
            if syn and me == E.PARTIAL and self.state[peer] == E.INACTIVE and not ack:
                self._set(side, E.SYN_SENT)
            if fin and not rst:
                self._set(side, E.CLOSED)
                if self.state[peer] == E.RESET and self.prev_state[peer] == E.CLOSED:
                    self._set(peer, E.CLOSED)  # the peer's FIN then RST was a normal close
            if rst:
                self._set(side, E.RESET)
            return "close" if fin or rst else None
        if me == E.CLOSED and rst and self.state[peer] != E.CLOSED:
            self._set(side, E.RESET)
            return "reset" if self.did_close[side] else "close"
        return None

    def _closed(self, side: int) -> str | None:
        """``ConnectionClosed``: Zeek counts ``side``'s close once.  Returns ``"close"``
        when that completes the connection's close (a RST, or the peer closed or never
        spoke): Zeek then cancels its timers and forgets the connection ``tcp_close_delay``
        after the last packet."""
        if self.did_close[side]:
            return None
        self.did_close[side] = True
        peer = 1 - side
        complete = self.state[side] == E.RESET or self.did_close[peer] or self.state[peer] == E.INACTIVE
        return "close" if complete else None

    def _init_start_seqs(self, side: int, flags: int, seq: int, ack_number: int) -> None:
        """Zeek's StartSeq of both endpoints (``init_endpoint``, ``init_peer``), before
        the packet moves the states: the sender's from its first packet or a SYN, the
        peer's from an ACK sent before the peer spoke."""
        me, peer = self.state[side], 1 - side
        if me == E.INACTIVE:
            self.start_seq[side] = seq if flags & SYN else (seq - 1) & 0xFFFFFFFF
        elif flags & SYN and seq != self.start_seq[side] and (
                me in (E.SYN_SENT, E.SYN_ACK_SENT, E.ESTABLISHED, E.PARTIAL)
                or (me == E.RESET and self.prev_state[side] == E.INACTIVE)):
            self.start_seq[side] = seq  # a new ISN: Zeek numbers the side's bytes from it
            self.data[side].rebase((seq + 1) & 0xFFFFFFFF)
        if flags & ACK and self.state[peer] == E.INACTIVE:
            self.start_seq[peer] = (ack_number - 1) & 0xFFFFFFFF

    def is_reuse(self, flags: int, seq: int) -> bool:
        """``IsReuse``: whether this packet, for the same four-tuple, starts a new Zeek
        connection.  Only a SYN can: after either side's close, always; before, a SYN
        whose sequence number is not the originator's start (for a SYN-ACK, while the
        originator is silent: the responder's), unless it is the SYN a first SYN-ACK
        answered."""
        if not flags & SYN:
            return False
        conn_orig = 0
        if flags & ACK:
            if self.state[0] != E.INACTIVE:
                return False
            conn_orig = 1
        if any(self.did_close):
            return True
        if seq == self.start_seq[conn_orig]:
            return False
        return not (not flags & ACK and self.state[conn_orig] == E.SYN_ACK_SENT
                    and self.state[1] == E.INACTIVE and seq == self.start_seq[1])

    def attempt_failed(self) -> bool:
        """``AttemptTimer``'s test: the originator sent its SYN and the responder never answered."""
        return self.state[0] in (E.SYN_SENT, E.SYN_ACK_SENT) and self.state[1] == E.INACTIVE

    def both_closed(self) -> bool:
        return all(self.did_close)

    def states_by_side(self) -> tuple[Endpoint, Endpoint]:
        """The two endpoint states, the caller's originator first (Zeek's roles may be swapped)."""
        return (self.state[1], self.state[0]) if self.swapped else (self.state[0], self.state[1])

    def _flip(self) -> None:
        """``Connection::FlipRoles``: the endpoints change roles (the letters written
        so far keep their case), and ``^`` is written."""
        self.swapped = not self.swapped
        for pair in (self.state, self.prev_state, self.size, self.last_end, self.scaled_count, self.data,
                     self.start_seq, self.did_close, self._last_seq):
            pair.reverse()
        self.history += "^"

    # ------------------------------------------------------------------ the label

    def conn_state(self) -> ConnState:
        """``conn_state()`` from Zeek's ``base/protocols/conn/main.zeek``, for TCP."""
        os, rs = self.state
        o_inactive = os in (E.INACTIVE, E.PARTIAL)
        r_inactive = rs in (E.INACTIVE, E.PARTIAL)
        if rs == E.RESET:
            if os in (E.SYN_SENT, E.SYN_ACK_SENT) or (
                os == E.RESET and self.size[0] == 0 and self.size[1] == 0
            ):
                return ConnState.REJ
            return ConnState.RSTRH if o_inactive else ConnState.RSTR
        if os == E.RESET:
            if r_inactive:
                return ConnState.RSTOS0 if _RSTOS0.fullmatch(self.history) else ConnState.OTH
            return ConnState.RSTO
        if rs == E.CLOSED and os == E.CLOSED:
            return ConnState.SF
        if os == E.CLOSED:
            return ConnState.SH if r_inactive else ConnState.S2
        if rs == E.CLOSED:
            return ConnState.SHR if o_inactive else ConnState.S3
        if os == E.SYN_SENT and rs == E.INACTIVE:
            return ConnState.S0
        if os == E.ESTABLISHED and rs == E.ESTABLISHED:
            return ConnState.S1
        return ConnState.OTH
