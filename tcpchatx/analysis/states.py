"""The TCP connection as a state machine: one table a student can read.

Theory of operation
-------------------
We watch a connection from the wire, so we see *both* ends at once.  Instead of
two RFC 793 machines (one per endpoint) we keep one state for the connection as a
whole, named after the RFC 793 state of the end that is furthest along:

    CLOSED --SYN--> SYN_SENT --SYN-ACK--> SYN_RECEIVED --ACK--> ESTABLISHED
    ESTABLISHED --FIN--> FIN_WAIT_1 --ACK of FIN--> FIN_WAIT_2 --FIN--> LAST_ACK
    LAST_ACK --ACK of FIN--> TIME_WAIT                       (the four-way close)
    FIN_WAIT_1 --FIN+ACK--> LAST_ACK                          (the three-way close)
    FIN_WAIT_1 --FIN--> CLOSING --ACK of FIN--> LAST_ACK      (the simultaneous close)
    any --RST--> RESET

Each packet is first sorted into a :class:`SegmentKind` (by :mod:`.tracker`, from
its flags, its length and whether its ACK covers the peer's FIN).  Then
``TABLE[state][kind]`` says the new state, the step's name, its phase and a note.

Two rules, as in h11's ``_state.py``: everything that moves the state machine is in
this file, and the table does not know which side it is looking at.  It only says
"the sender" and "the peer" (``{Sender}``/``{peer}`` in the notes); the notes are
filled in with "client" for the originator and "server" for the responder.

A pair (state, kind) missing from the table keeps the state, and gets the kind's
plain step name and a generic note (see :func:`lookup`).
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np


class State(IntEnum):
    CLOSED = 0  # nothing seen yet
    SYN_SENT = 1  # the originator sent a SYN
    SYN_RECEIVED = 2  # the responder answered with a SYN-ACK
    ESTABLISHED = 3  # the handshake is complete (or we joined an open connection)
    FIN_WAIT_1 = 4  # one side sent a FIN, not yet acknowledged
    FIN_WAIT_2 = 5  # that FIN was acknowledged; the other side may still send (half-closed)
    CLOSING = 6  # both sides sent a FIN before seeing the other's: neither acknowledged
    LAST_ACK = 7  # both FINs sent, one acknowledged: waiting for the last ACK
    TIME_WAIT = 8  # both FINs acknowledged: closed (the active closer waits 2 MSL)
    RESET = 9  # a RST ended the connection (RFC 793 goes straight to CLOSED)


class SegmentKind(IntEnum):
    SYN = 0  # SYN without ACK: "let's talk, my ISN is ..."
    SYN_ACK = 1  # SYN with ACK: "yes, and my ISN is ..."
    ACK = 2  # no payload, just an acknowledgement
    DATA = 3  # carries payload bytes not sent before
    DATA_AGAIN = 4  # payload bytes that were all sent before: a retransmission
    FIN = 5  # the sender's first FIN
    FIN_ACK = 6  # a FIN whose ACK also acknowledges the peer's FIN for the first time
    FIN_AGAIN = 7  # the sender already sent a FIN: a retransmission
    ACK_OF_FIN = 8  # no FIN, but acknowledges the peer's FIN for the first time
    RST = 9  # reset, without ACK
    RST_ACK = 10  # reset, with ACK
    OTHER = 11  # no ACK bit, no SYN/FIN/RST (odd, e.g. a scan)


class Step(NamedTuple):
    new_state: State
    name: str
    phase: str  # one of labels.PHASES
    note: str  # template: {Sender} {sender} {peer} {isn} {len} {seq} {seq_end} {ack} {port}


S, K = State, SegmentKind
HS, DATA, TD, RESET = "handshake", "data", "teardown", "reset"

_RST = Step(S.RESET, "RST", RESET, "{Sender} aborts the connection with a reset: no more data in either direction.")
_RST_ACK = Step(S.RESET, "RST+ACK", RESET, "{Sender} aborts the connection with a reset (the ACK bit is set too).")
_DATA_AGAIN = "{Sender} sends bytes {seq}..{seq_end} again: a retransmission (they were sent before)."

TABLE: dict[State, dict[SegmentKind, Step]] = {
    S.CLOSED: {
        K.SYN: Step(S.SYN_SENT, "SYN", HS,
                    "{Sender} asks to open a connection to port {port}; its initial sequence number (ISN) is {isn}."),
        K.SYN_ACK: Step(S.SYN_RECEIVED, "SYN-ACK", HS,
                        "{Sender} answers a SYN that was not captured; its ISN is {isn}."),
        K.ACK: Step(S.ESTABLISHED, "ACK", DATA,
                    "The capture started after the handshake: the connection is already open."),
        K.DATA: Step(S.ESTABLISHED, "DATA", DATA,
                     "The capture started after the handshake: {Sender} sends {len} bytes on an open connection."),
        K.FIN: Step(S.FIN_WAIT_1, "FIN", TD,
                    "The capture started mid-connection: {Sender} closes its direction with a FIN."),
        K.RST: _RST,
        K.RST_ACK: _RST_ACK,
    },
    S.SYN_SENT: {
        K.SYN: Step(S.SYN_SENT, "SYN (retransmission)", HS,
                    "No answer yet, so {sender} sends its SYN again (same ISN {isn})."),
        K.SYN_ACK: Step(S.SYN_RECEIVED, "SYN-ACK", HS,
                        "{Sender} accepts: it acknowledges the {peer}'s ISN + 1 and picks its own ISN, {isn}."),
        K.RST_ACK: Step(S.RESET, "RST+ACK", RESET,
                        "{Sender} refuses the connection: nothing listens on port {port} (connection refused)."),
        K.RST: Step(S.RESET, "RST", RESET,
                    "{Sender} gives up the connection attempt with a reset."),
        K.FIN: Step(S.FIN_WAIT_1, "FIN", TD,
                    "{Sender} sends a FIN although the handshake never completed."),
    },
    S.SYN_RECEIVED: {
        K.ACK: Step(S.ESTABLISHED, "ACK (handshake)", HS,
                    "{Sender} acknowledges the SYN-ACK: the three-way handshake is complete, the connection is open."),
        K.DATA: Step(S.ESTABLISHED, "DATA (completes the handshake)", DATA,
                     "{Sender}'s first data ({len} bytes) also acknowledges the SYN-ACK: the connection is open."),
        K.SYN: Step(S.SYN_RECEIVED, "SYN (retransmission)", HS,
                    "{Sender} sends its SYN again; the SYN-ACK may have been lost."),
        K.SYN_ACK: Step(S.SYN_RECEIVED, "SYN-ACK (retransmission)", HS,
                        "{Sender} repeats its SYN-ACK: it has not seen the final ACK yet."),
        K.FIN: Step(S.FIN_WAIT_1, "FIN", TD,
                    "{Sender} closes right after the handshake, before sending any data."),
        K.RST: _RST,
        K.RST_ACK: _RST_ACK,
    },
    S.ESTABLISHED: {
        K.DATA: Step(S.ESTABLISHED, "DATA", DATA,
                     "{Sender} sends {len} bytes (relative seq {seq}..{seq_end})."),
        K.ACK: Step(S.ESTABLISHED, "ACK", DATA,
                    "{Sender} acknowledges every byte before {ack} from the {peer}."),
        K.SYN_ACK: Step(S.ESTABLISHED, "SYN-ACK (retransmission)", HS,
                        "{Sender} repeats its SYN-ACK (the {peer}'s ACK may have been lost)."),
        K.FIN: Step(S.FIN_WAIT_1, "FIN", TD,
                    "{Sender} has nothing more to send and closes its direction (the active close)."),
        K.RST: _RST,
        K.RST_ACK: _RST_ACK,
    },
    S.FIN_WAIT_1: {
        K.ACK_OF_FIN: Step(S.FIN_WAIT_2, "ACK of FIN", TD,
                           "{Sender} acknowledges the {peer}'s FIN; it may still send data of its own."),
        K.FIN_ACK: Step(S.LAST_ACK, "FIN+ACK (piggybacked ACK of the peer's FIN)", TD,
                        "The FIN carries the ACK of the {peer}'s FIN: the 3-segment close."),
        K.FIN: Step(S.CLOSING, "FIN (simultaneous close)", TD,
                    "{Sender} sends its FIN before seeing the {peer}'s: the FINs cross (simultaneous close)."),
        K.FIN_AGAIN: Step(S.FIN_WAIT_1, "FIN (retransmission)", TD,
                          "{Sender} sends its FIN again: it was not acknowledged yet."),
        K.DATA: Step(S.FIN_WAIT_1, "DATA", DATA,
                     "{Sender} sends {len} bytes; the {peer} has closed its direction but still receives."),
        K.ACK: Step(S.FIN_WAIT_1, "ACK", DATA,
                    "{Sender} acknowledges every byte before {ack} (not the FIN yet)."),
        K.RST: _RST,
        K.RST_ACK: _RST_ACK,
    },
    S.FIN_WAIT_2: {
        K.DATA: Step(S.FIN_WAIT_2, "DATA", DATA,
                     "Half-closed: {sender} still sends {len} bytes after the {peer} closed its direction."),
        K.ACK: Step(S.FIN_WAIT_2, "ACK", DATA,
                    "Half-closed: {Sender} acknowledges every byte before {ack}."),
        K.FIN: Step(S.LAST_ACK, "FIN", TD,
                    "{Sender} closes its direction too: the second FIN."),
        K.FIN_AGAIN: Step(S.FIN_WAIT_2, "FIN (retransmission)", TD, "{Sender} sends its FIN again."),
        K.RST: _RST,
        K.RST_ACK: _RST_ACK,
    },
    S.CLOSING: {
        K.ACK_OF_FIN: Step(S.LAST_ACK, "ACK of FIN", TD,
                           "{Sender} acknowledges the {peer}'s FIN; one FIN is still unacknowledged."),
        K.FIN_ACK: Step(S.LAST_ACK, "FIN+ACK (piggybacked ACK of the peer's FIN)", TD,
                        "{Sender} repeats its FIN and acknowledges the {peer}'s FIN."),
        K.FIN_AGAIN: Step(S.CLOSING, "FIN (retransmission)", TD, "{Sender} sends its FIN again."),
        K.ACK: Step(S.CLOSING, "ACK", TD, "{Sender} acknowledges bytes before {ack}, not the FIN yet."),
        K.RST: _RST,
        K.RST_ACK: _RST_ACK,
    },
    S.LAST_ACK: {
        K.ACK_OF_FIN: Step(S.TIME_WAIT, "ACK of FIN", TD,
                           "{Sender} acknowledges the last FIN: the connection is closed "
                           "(the side that sent the first FIN waits in TIME_WAIT; after a simultaneous "
                           "close, both sides do)."),
        K.FIN_AGAIN: Step(S.LAST_ACK, "FIN (retransmission)", TD,
                          "{Sender} sends its FIN again: its ACK has not arrived."),
        K.ACK: Step(S.LAST_ACK, "ACK", TD, "{Sender} acknowledges bytes before {ack}, not the last FIN."),
        K.DATA: Step(S.LAST_ACK, "DATA", TD, "{Sender} sends {len} bytes after the peer's FIN."),
        K.RST: _RST,
        K.RST_ACK: _RST_ACK,
    },
    S.TIME_WAIT: {
        K.ACK: Step(S.TIME_WAIT, "ACK (after close)", TD,
                    "A late ACK: both FINs were already acknowledged."),
        K.FIN_AGAIN: Step(S.TIME_WAIT, "FIN (retransmission)", TD,
                          "{Sender} repeats its FIN: the last ACK was probably lost, so TIME_WAIT answers it again."),
        K.RST: Step(S.TIME_WAIT, "RST (after close)", TD, "A reset after both sides had closed; it changes nothing."),
        K.RST_ACK: Step(S.TIME_WAIT, "RST+ACK (after close)", TD,
                        "A reset after both sides had closed; it changes nothing."),
    },
    S.RESET: {
        K.RST: Step(S.RESET, "RST (again)", RESET, "Another reset: the connection was already aborted."),
        K.RST_ACK: Step(S.RESET, "RST+ACK (again)", RESET, "Another reset: the connection was already aborted."),
    },
}

# The plain name of each kind, used when (state, kind) is not in the table.
SEGMENT_NAMES: dict[SegmentKind, str] = {
    K.SYN: "SYN", K.SYN_ACK: "SYN-ACK", K.ACK: "ACK", K.DATA: "DATA",
    K.DATA_AGAIN: "DATA (retransmission)", K.FIN: "FIN", K.FIN_ACK: "FIN+ACK",
    K.FIN_AGAIN: "FIN (retransmission)", K.ACK_OF_FIN: "ACK of FIN", K.RST: "RST",
    K.RST_ACK: "RST+ACK", K.OTHER: "no flags",
}
_GENERIC_NOTE = {
    K.DATA_AGAIN: _DATA_AGAIN,
    K.DATA: "{Sender} sends {len} bytes while the connection is in state {state}.",
}


def lookup(state: State, kind: SegmentKind) -> Step:
    """The step for ``kind`` in ``state``: from the table, or a same-state default."""
    step = TABLE[state].get(kind)
    if step is not None:
        return step
    if kind in (K.RST, K.RST_ACK):
        phase = RESET
    elif kind in (K.SYN, K.SYN_ACK) or state in (S.SYN_SENT, S.SYN_RECEIVED):
        phase = HS
    elif kind in (K.FIN, K.FIN_ACK, K.FIN_AGAIN, K.ACK_OF_FIN) or state >= S.CLOSING:
        phase = TD if state != S.RESET else RESET
    else:
        phase = DATA
    note = _GENERIC_NOTE.get(kind, "{Sender} sends a " + SEGMENT_NAMES[kind] + " in state {state}.")
    return Step(state, SEGMENT_NAMES[kind], phase, note)


# --------------------------------------------------------------------------- as arrays

#: Every distinct (state, kind) step, numbered, so a packet's step is one small int.
STEPS: list[Step] = []
STEP_ID = np.zeros((len(State), len(SegmentKind)), dtype=np.int16)
NEXT_STATE = np.zeros((len(State), len(SegmentKind)), dtype=np.int8)
for _state in State:
    for _kind in SegmentKind:
        _step = lookup(_state, _kind)
        STEP_ID[_state, _kind] = len(STEPS)
        NEXT_STATE[_state, _kind] = _step.new_state
        STEPS.append(_step)
