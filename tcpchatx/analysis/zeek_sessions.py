"""Where Zeek's connections start and end inside one TCP stream.

Our connections are Wireshark's streams (``tcp.stream``): a four-tuple's packets,
split only where a new SYN starts a new stream.  That keeps the expert analysis
comparable with tshark, stream by stream.  Zeek cuts more finely.  It forgets a
connection on timers, and a packet that comes after that starts a new connection,
with its own line in ``conn.log``.  So one stream can be several Zeek connections,
and this module finds them (:class:`ZeekSessions`), each with its own
``conn_state`` and ``history`` (:class:`~.zeek.ZeekConnection`).

Zeek's rules, with its default settings (``TCPSessionAdapter.cc``, ``init-bare.zeek``):

- **attempt**: ``tcp_attempt_delay`` (5 s) after the originator's SYN, if the
  responder has still sent nothing (its endpoint is INACTIVE), the attempt is over.
  A SYN sent again later is a new connection: a client retrying its SYN at 1, 3, 7
  and 15 s makes three ``S0`` lines.
- **closed**: ``tcp_close_delay`` (5 s) after the close is complete (both sides
  closed, or one reset, or one closed and the other never spoke).  Counted from the
  last packet before both sides had closed.
- **reset**: ``tcp_reset_delay`` (5 s) after a RST from a side that had already sent
  its FIN.
- **inactivity**: ``tcp_inactivity_timeout`` (5 min) with no packet.
- **reuse**: a SYN on a connection that has closed, or a SYN whose sequence number is
  not the originator's first (``IsReuse``), starts a new connection at once.

A timer fires before the first packet at or past its time: Zeek moves its clock to
the packet's time, runs the timers that are due, and then reads the packet.  Each new
connection picks its roles from its own first packet, as the first one did.

Not modelled: ``tcp_session_timer``'s checks of a half-closed connection (they end
it within 6 s of the ``reset`` rule), the partial-close timer (it only raises an
event), and a close that Zeek puts off while data below the FIN is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .zeek import ZeekConnection, zeek_flips

ATTEMPT_DELAY = 5.0  # tcp_attempt_delay
CLOSE_DELAY = 5.0  # tcp_close_delay
RESET_DELAY = 5.0  # tcp_reset_delay
INACTIVITY_TIMEOUT = 300.0  # tcp_inactivity_timeout

#: Why Zeek ended a connection before the stream's next packet.
ENDINGS = {
    "attempt": "its SYN had no answer for 5 s (tcp_attempt_delay)",
    "closed": "5 s after its close (tcp_close_delay)",
    "reset": "5 s after a RST that followed its sender's FIN (tcp_reset_delay)",
    "inactivity": "5 min without a packet (tcp_inactivity_timeout)",
    "reuse": "a SYN reused the four-tuple",
}


@dataclass
class ZeekEntry:
    """One Zeek connection (a line of ``conn.log``) inside a stream."""

    first: int  # the index of its first packet, as the caller numbered them
    last: int
    packets: int
    conn_state: str
    history: str
    ended_by: str | None  # an ENDINGS key: why the next packet starts a new one; None at the stream's end


class ZeekSessions:
    """Feed one stream's packets in capture order; :meth:`entries` gives Zeek's connections."""

    def __init__(self) -> None:
        self.done: list[ZeekEntry] = []
        self.zeek: ZeekConnection | None = None
        self.first = self.last = self.packets = 0
        self.last_time = 0.0  # Zeek's Conn()->LastTime()
        self.attempt_at: float | None = None  # AttemptTimer
        self.end_at: list[tuple[float, str]] = []  # timers that end the connection when due

    def feed(self, index: int, time: float, side: int, flags: int, seq: int, length: int,
             window: int, ack_number: int, captured: int, sport: int, dport: int,
             checksum_ok: bool = True) -> None:
        """One packet: ``side`` is the stream's (0: the tracker's originator), ``sport``
        and ``dport`` its own ports (a new connection picks its roles by them).  A packet
        whose checksum is wrong (``checksum_ok`` False) can still start a connection,
        but then only writes ``c``: Zeek checks the checksum after finding the
        connection, and reads nothing else of the packet."""
        if self.zeek is not None:
            ending = self._due(time)
            if ending is None and self.zeek.is_reuse(flags, seq):
                ending = "reuse"
            if ending is not None:
                self._end(ending)
        if self.zeek is None:
            self._start(index, time, side, flags, sport, dport)
        zeek = self.zeek
        self.last, self.packets = index, self.packets + 1
        if not checksum_ok:
            zeek.corrupt(side)
            return
        if not zeek.both_closed():
            self.last_time = time
        timer = zeek.feed(side, flags, seq, length, window, ack_number=ack_number, captured=captured)
        if timer == "attempt":
            self.attempt_at = time + ATTEMPT_DELAY
        elif timer == "reset":
            self.end_at.append((time + RESET_DELAY, "reset"))
        elif timer == "close":  # CancelTimers, then the delete timer
            self.attempt_at = None
            self.end_at = [(self.last_time + CLOSE_DELAY, "closed")]

    def entries(self) -> list[ZeekEntry]:
        """Every Zeek connection of the stream so far, the open one last."""
        if self.zeek is None:
            return list(self.done)
        return [*self.done, self._entry(None)]

    # ------------------------------------------------------------------ inside

    def _due(self, time: float) -> str | None:
        """The timer that ends the connection before a packet at ``time``, if any
        (the earliest, when several are due)."""
        due = [(at, why) for at, why in self.end_at if at <= time]
        if self.attempt_at is not None and self.attempt_at <= time:
            if self.zeek.attempt_failed():
                due.append((self.attempt_at, "attempt"))
            self.attempt_at = None
        if time - self.last_time >= INACTIVITY_TIMEOUT:
            due.append((self.last_time + INACTIVITY_TIMEOUT, "inactivity"))
        return min(due)[1] if due else None

    def _start(self, index: int, time: float, side: int, flags: int, sport: int, dport: int) -> None:
        """A new Zeek connection: its originator is this packet's sender, unless Zeek
        flips the roles by the ports (``WantConnection``)."""
        flipped = zeek_flips(flags, sport, dport)
        self.zeek = ZeekConnection(flipped=flipped, swapped=bool(side ^ flipped))
        self.first, self.packets, self.last_time = index, 0, time
        self.attempt_at, self.end_at = None, []

    def _end(self, why: str) -> None:
        self.done.append(self._entry(why))
        self.zeek = None

    def _entry(self, why: str | None) -> ZeekEntry:
        return ZeekEntry(self.first, self.last, self.packets, self.zeek.conn_state(), self.zeek.history, why)
