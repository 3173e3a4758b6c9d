"""Every label the analysis prints, defined once with a one-line meaning.

The notebooks, the CLI, the JSON export and the pcapng comments all show these
exact strings, so a student who meets ``RSTO`` or ``three-way`` anywhere can look
it up here.  The Zeek labels copy Zeek's own definitions
(``base/protocols/conn/main.zeek``) word for word where possible, so our
``conn_state`` and ``history`` columns can be compared with a real ``conn.log``.
"""

from __future__ import annotations

import numpy as np

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

# --------------------------------------------------------------------------- Zeek conn_state

#: Zeek's ``conn_state`` values, with Zeek's own one-line definitions.
ZEEK_CONN_STATES: dict[str, str] = {
    "S0": "Connection attempt seen, no reply.",
    "S1": "Connection established, not terminated.",
    "SF": "Normal establishment and termination.",
    "REJ": "Connection attempt rejected.",
    "S2": "Connection established and close attempt by originator seen (but no reply from responder).",
    "S3": "Connection established and close attempt by responder seen (but no reply from originator).",
    "RSTO": "Connection established, originator aborted (sent a RST).",
    "RSTR": "Responder sent a RST.",
    "RSTOS0": "Originator sent a SYN followed by a RST, we never saw a SYN-ACK from the responder.",
    "RSTRH": "Responder sent a SYN ACK followed by a RST, we never saw a SYN from the (purported) originator.",
    "SH": "Originator sent a SYN followed by a FIN, we never saw a SYN ACK from the responder.",
    "SHR": "Responder sent a SYN ACK followed by a FIN, we never saw a SYN from the originator.",
    "OTH": "No SYN seen, just midstream traffic.",
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
}

# --------------------------------------------------------------------------- how it ended

#: How a connection ended, in the words of a TCP lab.
CLOSE_KINDS: dict[str, str] = {
    "four-way": "FIN, ACK, FIN, ACK as four separate segments.",
    "three-way": "The second FIN carried the ACK of the first FIN (FIN+ACK piggybacked), then a final ACK.",
    "simultaneous": "Both sides sent a FIN before either had seen the other's FIN.",
    "reset": "The established connection ended with a RST (active_closer sent it).",
    "refused": "The SYN was answered by a RST: nobody was listening.",
    "half-closed": "One side sent a FIN; the other side never sent its own within the capture.",
    "open": "Established and still open when the capture ended (no FIN, no RST).",
    "incomplete": "The handshake never completed (and was not refused), or the capture started mid-connection.",
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
_FLAG_LETTERS = (("S", 0x02), ("A", 0x10), ("P", 0x08), ("F", 0x01), ("R", 0x04),
                 ("U", 0x20), ("E", 0x40), ("C", 0x80))
#: flags byte -> letters, e.g. 0x12 -> "SA", 0x18 -> "AP"
FLAG_STRINGS = np.array(
    ["".join(letter for letter, bit in _FLAG_LETTERS if value & bit) for value in range(512)],
    dtype=object,
)


def flag_string(flags: int) -> str:
    return FLAG_STRINGS[flags & 0x1FF]
