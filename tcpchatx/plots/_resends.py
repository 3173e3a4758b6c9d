"""Why was it resent, as far as the sender's view alone can tell: a kind per retransmission.

Wireshark marks a resend ``[TCP Retransmission]``, and ``[TCP Fast Retransmission]``
when it came right after duplicate ACKs asked for it.  The figures draw one more
distinction, the one between a sender that *heard* about a loss and one that heard
nothing (the same traces :mod:`tcpchatx.analysis.why` reads, with one view instead
of two; it says more, and says it better, with both):

- **fast**: Wireshark's fast retransmission (duplicate ACKs, within 20 ms);
- **recovery**: since the previous copy, the peer sent duplicate ACKs or SACK blocks:
  later segments arrived and this one did not (SACK or RACK loss recovery);
- **timeout**: nothing of the kind came back, and the resend came at least 200 ms
  (Linux's smallest RTO) after the previous copy: the retransmission timer ran out;
- **probe**: nothing came back, and it came sooner than any RTO: a tail-loss probe;
- **spurious**: Wireshark's spurious retransmission (its bytes were acknowledged);
- **unknown**: this capture has no earlier copy to measure from.

Wireshark calls a resend ``[TCP Out-Of-Order]`` instead when it comes within one
round trip of the furthest segment sent (its guess that the network reordered it).
In the *sender's* view nothing has been reordered yet: a segment there that repeats
bytes the view saw leave before is a resend, and is counted as one here too.
(In a bulk transfer through a full queue, that is a third of the resends.)
"""

from __future__ import annotations

import numpy as np

from ..analysis.why import MIN_RTO
from ..tcp_flags import FIN, SYN

#: kind -> (colour, marker, a short name, what it means)
KINDS = {
    "fast": ("#d62728", "^", "fast retransmission",
             "after duplicate ACKs asked for it: [TCP Fast Retransmission]"),
    "recovery": ("#9d174d", "v", "resent in SACK/RACK recovery",
                 "duplicate ACKs or SACK blocks came back since the previous copy"),
    "timeout": ("#7e22ce", "s", "resent after a timeout (RTO)",
                f"nothing came back for {MIN_RTO * 1000:.0f} ms or more: the retransmission timer ran out"),
    "probe": ("#ca8a04", "D", "tail-loss probe",
              f"nothing came back, resent sooner than any RTO (< {MIN_RTO * 1000:.0f} ms)"),
    "spurious": ("#854d0e", "o", "spurious retransmission", "its bytes were already acknowledged"),
    "unknown": ("#6b7280", "o", "retransmission", "no earlier copy in this capture to measure from"),
}


def resend_kinds(analysis, rows) -> dict[int, str]:
    """For each of ``rows`` that resends bytes, its kind (see the module docstring):
    the expert analysis's retransmissions, and its out-of-order segments that repeat
    bytes sent before in this view."""
    kinds = {}
    for i in (int(r) for r in rows):
        names = analysis.events(i)
        if "spurious_retransmission" in names:
            kinds[i] = "spurious"
        elif "fast_retransmission" in names:
            kinds[i] = "fast"
        elif "retransmission" in names or _resent_out_of_order(analysis, i, names):
            kinds[i] = _heard_or_not(analysis, i)
    return kinds


def _resent_out_of_order(analysis, i: int, names: list[str]) -> bool:
    """Wireshark said out of order, and this view saw these bytes leave before."""
    return "out_of_order" in names and _previous_copy(analysis, i) is not None


def _heard_or_not(analysis, i: int) -> str:
    """Recovery, timeout, probe or unknown: what came back since the previous copy."""
    p, t = analysis.packets, analysis.tracking
    previous = _previous_copy(analysis, i)
    if previous is None:
        return "unknown"
    between = np.arange(previous + 1, i)
    peer = between[(t.conn[between] == t.conn[i]) & (t.direction[between] != t.direction[i])]
    if any("duplicate_ack" in analysis.events(int(k)) or p.tcp_options(int(k)).get("sack") for k in peer):
        return "recovery"
    waited = float(p.seconds(i) - p.seconds(previous))
    return "timeout" if waited >= MIN_RTO else "probe"


def _previous_copy(analysis, i: int) -> int | None:
    """The last earlier row of the same connection and direction that carried any of
    row ``i``'s sequence numbers (SYN and FIN count one each), or None."""
    p, t = analysis.packets, analysis.tracking
    earlier = np.arange(i)
    same = earlier[(t.conn[earlier] == t.conn[i]) & (t.direction[earlier] == t.direction[i])]
    start = t.rel_seq[same].astype(np.int64)
    end = start + p.payload_len[same] + ((p.flags[same] & (SYN | FIN)) != 0)
    my_start = int(t.rel_seq[i])
    my_end = my_start + int(p.payload_len[i]) + bool(int(p.flags[i]) & (SYN | FIN))
    overlapping = same[(start < my_end) & (my_start < end)]
    return int(overlapping[-1]) if len(overlapping) else None
