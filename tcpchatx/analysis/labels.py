"""Every label the analysis prints, defined once with a one-line meaning.

The notebooks, the CLI, the JSON export and the pcapng comments all show these
exact strings, so a student who meets ``RSTO`` or ``three-way`` anywhere can look
it up here.  The Zeek labels copy Zeek's own definitions
(``base/protocols/conn/main.zeek``) word for word where possible, so our
``conn_state`` and ``history`` columns can be compared with a real ``conn.log``.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from ..tcp_flags import ACK, CWR, ECE, FIN, LETTERS, PSH, RST, SYN, URG


class Label(str, Enum):
    """A label that is its own string: ``f"{CloseKind.FOUR_WAY}"``, ``json.dumps`` and
    ``== "four-way"`` all see the plain word, so the JSON and the text stay the same
    whether code holds the member or the string (Python 3.11's ``StrEnum``, for 3.10)."""

    __str__ = str.__str__
    __format__ = str.__format__
    __hash__ = str.__hash__  # a dict keyed by members is looked up by plain strings too


# --------------------------------------------------------------------------- phases

#: What part of a connection's life a packet belongs to.
PHASES: dict[str, str] = {
    "handshake": "Opening the connection: SYN, SYN-ACK and the ACK that completes them.",
    "data": "The connection is open: data segments and their acknowledgements.",
    "teardown": "Closing the connection with FINs and their acknowledgements.",
    "reset": "A RST aborted (or refused) the connection.",
    "other": "Not a TCP segment we track (ARP, UDP, ICMP, a fragment...).",
}
#: The note of a packet in no tracked connection (the step notes are in states.STEPS).
UNTRACKED_NOTE = "Not a TCP segment of a tracked connection."
#: Added to the note of a segment whose IP header said length 0 (``Packets.length_from_frame``).
OFFLOAD_NOTE = ("Its IP header says length 0: it was captured on the sending host before the network card "
                "cut it into packets (segmentation offload), so its length is the frame's, as Wireshark reads it.")

# --------------------------------------------------------------------------- Zeek conn_state

class ConnState(Label):
    """Zeek's ``conn_state`` of a connection (meanings in :data:`ZEEK_CONN_STATES`)."""

    S0 = "S0"
    S1 = "S1"
    SF = "SF"
    REJ = "REJ"
    S2 = "S2"
    S3 = "S3"
    RSTO = "RSTO"
    RSTR = "RSTR"
    RSTOS0 = "RSTOS0"
    RSTRH = "RSTRH"
    SH = "SH"
    SHR = "SHR"
    OTH = "OTH"


#: Zeek's ``conn_state`` values, with Zeek's own one-line definitions.
ZEEK_CONN_STATES: dict[str, str] = {
    ConnState.S0: "Connection attempt seen, no reply.",
    ConnState.S1: "Connection established, not terminated.",
    ConnState.SF: "Normal establishment and termination.",
    ConnState.REJ: "Connection attempt rejected.",
    ConnState.S2: "Connection established and close attempt by originator seen (but no reply from responder).",
    ConnState.S3: "Connection established and close attempt by responder seen (but no reply from originator).",
    ConnState.RSTO: "Connection established, originator aborted (sent a RST).",
    ConnState.RSTR: "Responder sent a RST.",
    ConnState.RSTOS0: "Originator sent a SYN followed by a RST, we never saw a SYN-ACK from the responder.",
    ConnState.RSTRH: "Responder sent a SYN ACK followed by a RST, we never saw a SYN from the (purported) "
                     "originator.",
    ConnState.SH: "Originator sent a SYN followed by a FIN, we never saw a SYN ACK from the responder.",
    ConnState.SHR: "Responder sent a SYN ACK followed by a FIN, we never saw a SYN from the originator.",
    ConnState.OTH: "No SYN seen, just midstream traffic.",
}

#: Zeek ``history`` letters we record.  Upper case: the originator sent it;
#: lower case: the responder did.  Like Zeek, ``a``, ``d``, ``i`` and ``q`` appear at
#: most once per direction; ``s``, ``h``, ``f`` and ``r`` appear again only when the
#: sequence number differs from the last packet with that flag (a retransmission
#: with the same sequence number adds nothing).  Zeek's logarithmic letters
#: ``c`` (bad checksum), ``g`` (content gap), ``t`` (retransmission), ``w`` (zero
#: window), and ``^`` (direction flipped by a port heuristic) are not produced.
ZEEK_HISTORY_LETTERS: dict[str, str] = {
    "s": "a SYN w/o the ACK bit set",
    "h": "a SYN+ACK (\"handshake\")",
    "a": "a pure ACK",
    "d": "packet with payload (\"data\")",
    "f": "packet with FIN bit set",
    "r": "packet with RST bit set",
    "i": "inconsistent packet (e.g. FIN+RST bits set)",
    "q": "multi-flag packet (SYN+FIN or SYN+RST bits set)",
    "g": "a content gap: an ACK across bytes the capture never saw (at the 1st, 10th, 100th... gap)",
    "t": "packet with retransmitted payload (written at the 1st, 10th, 100th... such packet)",
    "w": "packet with a zero window advertisement (written at the 1st, 10th, 100th... such packet)",
}

# --------------------------------------------------------------------------- how it ended

class CloseKind(Label):
    """How a connection ended, in the words of a TCP lab (meanings in :data:`CLOSE_KINDS`)."""

    FOUR_WAY = "four-way"
    THREE_WAY = "three-way"
    SIMULTANEOUS = "simultaneous"
    RESET = "reset"
    REFUSED = "refused"
    HALF_CLOSED = "half-closed"
    OPEN = "open"
    INCOMPLETE = "incomplete"


#: How a connection ended, and what that means.
CLOSE_KINDS: dict[str, str] = {
    CloseKind.FOUR_WAY: "FIN, ACK, FIN, ACK as four separate segments.",
    CloseKind.THREE_WAY: "The second FIN carried the ACK of the first FIN (FIN+ACK piggybacked), then a final ACK.",
    CloseKind.SIMULTANEOUS: "Both sides sent a FIN before either had seen the other's FIN.",
    CloseKind.RESET: "The established connection ended with a RST (active_closer sent it).",
    CloseKind.REFUSED: "The SYN was answered by a RST: nobody was listening.",
    CloseKind.HALF_CLOSED: "One side sent a FIN; the other side never sent its own within the capture.",
    CloseKind.OPEN: "Established and still open when the capture ended (no FIN, no RST).",
    CloseKind.INCOMPLETE: "The handshake never completed (and was not refused), or the capture started "
                          "mid-connection.",
}

#: Who closed first.  ``None`` means nobody closed (open, incomplete).
CLOSERS: dict[str, str] = {
    "originator": "The side that sent the first SYN (the client) closed first.",
    "responder": "The side that answered the SYN (the server) closed first.",
    "both": "Both sides closed at the same time (simultaneous close).",
}

#: The two ends of a connection.  The tracker only ever says these two words;
#: "client" and "server" are the names the chat layer and the notes give them.
ORIGINATOR = "originator"
RESPONDER = "responder"
DIRECTIONS = (ORIGINATOR, RESPONDER)
ROLE_NAMES = {ORIGINATOR: "client", RESPONDER: "server"}

# TCP flag letters, as Wireshark and tcpdump write them.
_FLAG_LETTERS = tuple((LETTERS[bit], bit) for bit in (SYN, ACK, PSH, FIN, RST, URG, ECE, CWR))
#: flags byte -> letters, e.g. 0x12 -> "SA", 0x18 -> "AP"
FLAG_STRINGS = np.array(
    ["".join(letter for letter, bit in _FLAG_LETTERS if value & bit) for value in range(512)],
    dtype=object,
)


def flag_string(flags: int) -> str:
    return FLAG_STRINGS[flags & 0x1FF]
