"""Each end's own TCP state, read off the packets: the client's socket and the server's.

Theory of operation
-------------------
:mod:`.states` follows a connection as *one* machine, named after the end that is
furthest along.  Here each *endpoint* gets its own RFC 793 machine, the one its kernel
keeps (and ``/proc/net/tcp`` shows).  A socket changes state when it **sends** a SYN,
a FIN or a RST, and when it **receives** a segment that matters to it: a SYN, a
SYN-ACK, the ACK that completes the handshake, a FIN, the ACK of its own FIN, a RST.

Each packet already has the tracker's :class:`~.states.SegmentKind` (FIN, FIN_ACK,
ACK_OF_FIN, ...).  ``SENT[kind]`` and ``RECEIVED[kind]`` turn it into an :class:`Event`
for its sender and one for its receiver, and ``TABLE[state][event]`` gives the new
state and a note.  A pair missing from the table leaves the state as it was (a repeated
SYN-ACK, data in FIN_WAIT2, ...).  As in :mod:`.states`, the table does not know which
side it plays: client and server obey the same rules.

**When.**  Both changes a packet causes are stamped with its frame and the time the
*capture saw it on the wire*.  On loopback the capture, the sender and the receiver are
one machine and nothing is in flight, so the sender's change (just before the packet
leaves) and the receiver's (microseconds after) both sit at that packet.  Across a real
network the receiver's change would come one trip time later.

**Which copy of a FIN arrived.**  A receiver may drop a FIN it was sent (the
simultaneous-close story makes alice's kernel ignore FINs with a socket filter; a real
network loses them), and the sender sends it again.  The capture shows which copy the
receiver's TCP took: the last one sent before the receiver first acknowledged that FIN
(its packet's kind is ACK_OF_FIN or FIN_ACK), or the first one if it never did.  The
other copies change nothing at the receiver.  A resent copy that is taken still
acknowledges the receiver's own FIN when its ACK number says so (a FIN+ACK whose first
copy was lost).  Every other segment is taken to arrive when it is seen.

**Names.**  States are spelled as Linux spells them in ``/proc/net/tcp`` (``FIN_WAIT1``,
``SYN_RECV``), so they can be held against the kernel's samples
(:mod:`tcpchatx.sockstate`).  CLOSED means "no socket": before the SYN, after the last
ACK of a close, after a RST.  TIME_WAIT ends by a timer (60 s on Linux) that no packet
shows, so here it lasts to the end of the capture.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..tcp_flags import ACK
from .labels import Label
from .states import SegmentKind

if TYPE_CHECKING:
    from .run import Analysis

CLIENT, SERVER = "client", "server"  # the originator (it sent the SYN) and the responder
SIDES = (CLIENT, SERVER)  # indexed by the tracker's direction: 0 = sent by the client


class EndpointState(Label):
    """One socket's RFC 793 state, in Linux's spelling."""

    CLOSED = "CLOSED"
    SYN_SENT = "SYN_SENT"
    SYN_RECV = "SYN_RECV"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT1 = "FIN_WAIT1"
    FIN_WAIT2 = "FIN_WAIT2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"


class Event(Label):
    """What a packet does to one endpoint: it sends it, or it receives it."""

    SEND_SYN = "sends SYN"
    RECEIVE_SYN = "receives SYN"
    RECEIVE_SYN_ACK = "receives SYN-ACK"
    RECEIVE_ACK = "receives ACK"  # any acknowledging segment: only the handshake's last ACK matters
    SEND_FIN = "sends FIN"
    RECEIVE_FIN = "receives FIN"
    RECEIVE_ACK_OF_FIN = "receives ACK of its FIN"
    RECEIVE_FIN_AND_ACK = "receives FIN + ACK of its FIN"
    SEND_RST = "sends RST"
    RECEIVE_RST = "receives RST"
    ALREADY_OPEN = "was already open"  # the capture started after the handshake


class Move(NamedTuple):
    state: EndpointState
    note: str


E, V, K = EndpointState, Event, SegmentKind

# A reset ends the connection in every state that has one (RFC 793, "RST bit").
_ABORT = {
    V.SEND_RST: Move(E.CLOSED, "It aborts with a reset: the socket is gone at once, no TIME_WAIT."),
    V.RECEIVE_RST: Move(E.CLOSED, "The peer's reset aborts the connection: the socket is gone."),
}

TABLE: dict[EndpointState, dict[Event, Move]] = {
    E.CLOSED: {
        V.SEND_SYN: Move(E.SYN_SENT, "connect() sends a SYN and waits for the SYN-ACK."),
        V.RECEIVE_SYN: Move(E.SYN_RECV, "A SYN reaches the listening port; the server answers with a SYN-ACK."),
        V.ALREADY_OPEN: Move(E.ESTABLISHED, "The capture started after the handshake: the connection is open."),
    },
    E.SYN_SENT: {
        V.RECEIVE_SYN_ACK: Move(E.ESTABLISHED, "The SYN-ACK arrives; the client answers with the handshake's ACK."),
        V.SEND_FIN: Move(E.FIN_WAIT1, "It closes before the handshake completed."),
        **_ABORT,
    },
    E.SYN_RECV: {
        V.RECEIVE_ACK: Move(E.ESTABLISHED, "The handshake's last ACK arrives: accept() can return this socket."),
        V.RECEIVE_FIN: Move(E.CLOSE_WAIT, "A FIN completes the handshake and closes the peer's direction at once."),
        V.SEND_FIN: Move(E.FIN_WAIT1, "It closes before the handshake completed."),
        **_ABORT,
    },
    E.ESTABLISHED: {
        V.SEND_FIN: Move(E.FIN_WAIT1, "The application closes first: its FIN goes out (the active close)."),
        V.RECEIVE_FIN: Move(E.CLOSE_WAIT, "The peer's FIN arrives; the application has not closed yet."),
        **_ABORT,
    },
    E.FIN_WAIT1: {
        V.RECEIVE_ACK_OF_FIN: Move(E.FIN_WAIT2, "Its FIN is acknowledged; it waits for the peer's FIN."),
        V.RECEIVE_FIN: Move(E.CLOSING, "The peer's FIN arrives before the ACK of its own: the FINs crossed."),
        V.RECEIVE_FIN_AND_ACK: Move(E.TIME_WAIT, "The peer's FIN also acknowledges its FIN: both directions are closed."),
        **_ABORT,
    },
    E.FIN_WAIT2: {
        V.RECEIVE_FIN: Move(E.TIME_WAIT, "The peer's FIN arrives; it sends the last ACK and waits 2 MSL."),
        **_ABORT,
    },
    E.CLOSE_WAIT: {
        V.SEND_FIN: Move(E.LAST_ACK, "The application closes too: its FIN goes out, the last ACK is awaited."),
        **_ABORT,
    },
    E.CLOSING: {
        V.RECEIVE_ACK_OF_FIN: Move(E.TIME_WAIT, "Its FIN is acknowledged: both directions are closed."),
        **_ABORT,
    },
    E.LAST_ACK: {
        V.RECEIVE_ACK_OF_FIN: Move(E.CLOSED, "The last ACK arrives: the socket is gone (no TIME_WAIT on this side)."),
        **_ABORT,
    },
    E.TIME_WAIT: {
        # RFC 793 lets a RST end TIME_WAIT; so does Linux, unless net.ipv4.tcp_rfc1337 is set.
        V.RECEIVE_RST: Move(E.CLOSED, "A reset ends TIME_WAIT early."),
    },
}

#: What a packet of each kind does to the endpoint that sends it (other kinds: nothing).
SENT: dict[SegmentKind, Event] = {
    K.SYN: V.SEND_SYN,
    K.FIN: V.SEND_FIN, K.FIN_ACK: V.SEND_FIN,  # a side's first FIN (FIN_AGAIN is a copy)
    K.RST: V.SEND_RST, K.RST_ACK: V.SEND_RST,
}
#: What a packet of each kind does to the endpoint that receives it (other kinds: nothing).
RECEIVED: dict[SegmentKind, Event] = {
    K.SYN: V.RECEIVE_SYN,
    K.SYN_ACK: V.RECEIVE_SYN_ACK,
    K.ACK: V.RECEIVE_ACK, K.DATA: V.RECEIVE_ACK, K.DATA_AGAIN: V.RECEIVE_ACK,
    K.ACK_OF_FIN: V.RECEIVE_ACK_OF_FIN,
    K.FIN: V.RECEIVE_FIN, K.FIN_AGAIN: V.RECEIVE_FIN,
    K.FIN_ACK: V.RECEIVE_FIN_AND_ACK,
    K.RST: V.RECEIVE_RST, K.RST_ACK: V.RECEIVE_RST,
}
#: Kinds that carry a copy of the sender's FIN, and kinds that first acknowledge the peer's FIN.
FIN_COPIES = {K.FIN, K.FIN_ACK, K.FIN_AGAIN}
ACKS_PEER_FIN = {K.ACK_OF_FIN, K.FIN_ACK}


class Change(NamedTuple):
    """One endpoint's change of state, stamped with the packet that caused it."""

    conn: int
    side: str  # CLIENT or SERVER
    before: EndpointState
    state: EndpointState
    event: Event
    row: int  # the packet's row in the analysis (its frame is row + 1 in a whole capture)
    frame: int
    time: float  # when the capture saw the packet
    note: str


def _rows_of(analysis: Analysis, connections: Iterable[int] | None) -> list[int]:
    conn = analysis.tracking.conn
    wanted = [c.id for c in analysis.connections] if connections is None else list(connections)
    return np.flatnonzero(np.isin(conn, wanted)).tolist()


def fin_copies_taken(analysis: Analysis, connections: Iterable[int] | None = None) -> dict[tuple[int, int], int]:
    """``(connection, direction) -> row`` of the FIN copy the receiver took (see the module
    docstring): the last copy before the receiver first acknowledged it, else the first."""
    t = analysis.tracking
    latest: dict[tuple[int, int], int] = {}
    first: dict[tuple[int, int], int] = {}
    taken: dict[tuple[int, int], int] = {}
    for i in _rows_of(analysis, connections):
        conn, direction, kind = int(t.conn[i]), int(t.direction[i]), int(t.kind[i])
        peer = (conn, 1 - direction)
        if kind in ACKS_PEER_FIN and peer in latest and peer not in taken:
            taken[peer] = latest[peer]  # the receiver's first ACK of the peer's FIN
        if kind in FIN_COPIES and (conn, direction) not in taken:
            latest[(conn, direction)] = i
            first.setdefault((conn, direction), i)
    return {key: taken.get(key, row) for key, row in first.items()}


def fin_copies_not_taken(analysis: Analysis, connections: Iterable[int] | None = None) -> list[int]:
    """Rows of the FIN copies the receiver's TCP did not take (sent before the one it did)."""
    connections = None if connections is None else list(connections)
    taken = fin_copies_taken(analysis, connections)
    t = analysis.tracking
    return [i for i in _rows_of(analysis, connections)
            if int(t.kind[i]) in FIN_COPIES and i < taken[(int(t.conn[i]), int(t.direction[i]))]]


def _received_event(kind: int, row: int, taken_row: int | None, answered: bool) -> Event | None:
    """The receiver's event, or None when the segment is no news to its TCP."""
    if kind in FIN_COPIES and row != taken_row:
        return None  # a copy the receiver dropped, or a repeat of the one it took
    if kind == K.SYN and not answered:
        return None  # answered with a RST: nothing listened, no socket was made
    return RECEIVED.get(kind)


def endpoint_changes(analysis: Analysis, connections: Iterable[int] | None = None) -> list[Change]:
    """Every change of state of both endpoints of each connection, in packet order.

    ``connections``: the ids to follow (default: all).  A connection whose first packet
    is not a SYN was open before the capture: both ends start ESTABLISHED at it.
    """
    p, t = analysis.packets, analysis.tracking
    connections = None if connections is None else list(connections)
    taken = fin_copies_taken(analysis, connections)
    rows = _rows_of(analysis, connections)
    answered = {int(t.conn[i]) for i in rows if int(t.kind[i]) == K.SYN_ACK}
    state: dict[tuple[int, str], EndpointState] = {}
    changes: list[Change] = []

    def apply(conn: int, side: str, event: Event | None, i: int) -> None:
        before = state[(conn, side)]
        move = TABLE[before].get(event) if event is not None else None
        if move is None or move.state == before:
            return
        state[(conn, side)] = move.state
        changes.append(Change(conn, side, before, move.state, event, i, int(p.frame[i]), float(p.time[i]),
                              move.note))

    fin_end: dict[tuple[int, str], int] = {}  # the sequence number that acknowledges each side's FIN
    for i in rows:
        conn, direction, kind = int(t.conn[i]), int(t.direction[i]), int(t.kind[i])
        if (conn, CLIENT) not in state:  # the connection's first packet
            state[(conn, CLIENT)] = state[(conn, SERVER)] = E.CLOSED
            if kind != K.SYN:
                for side in SIDES:
                    apply(conn, side, V.ALREADY_OPEN, i)
        sender, receiver = SIDES[direction], SIDES[1 - direction]
        if SENT.get(kind) is V.SEND_FIN:
            fin_end[(conn, sender)] = int(t.rel_seq[i]) + int(p.payload_len[i]) + 1
        apply(conn, sender, SENT.get(kind), i)  # the sender changes first, then the packet arrives
        received = _received_event(kind, i, taken.get((conn, direction)), conn in answered)
        if (received is V.RECEIVE_FIN and state[(conn, receiver)] is E.FIN_WAIT1
                and int(p.flags[i]) & ACK and int(t.rel_ack[i]) >= fin_end.get((conn, receiver), 1 << 62)):
            received = V.RECEIVE_FIN_AND_ACK  # a resent FIN+ACK, its first copy lost: it acks our FIN too
        apply(conn, receiver, received, i)
    return changes


def states_of(changes: list[Change], conn: int, side: str) -> list[EndpointState]:
    """The states one endpoint went through, in order, from CLOSED (no socket yet)."""
    mine = [c for c in changes if c.conn == conn and c.side == side]
    return [E.CLOSED] + [c.state for c in mine]
