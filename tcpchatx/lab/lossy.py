"""A path that loses at random, in a lab story (``random-loss``): what the router
dropped, how TCP repaired each loss, and what Wireshark called each resend.

The helpers take a :class:`~.stories.StoryRun` of a bulk transfer (the client sends,
the server receives) and return plain values or a small table, packet numbers
included, so that a notebook cell can ask its question first and check the answer
after.  Frame numbers are the client's view's unless a column says ``server``; times
are milliseconds since the transfer's SYN (``_ms``).

A *resend* is a data segment of the sender's that carries bytes it had sent before:
a rule on sequence numbers alone.  Wireshark names each one from what its capture
shows (:mod:`tcpchatx.analysis.plain.expert`): ``Fast Retransmission`` when it follows
duplicate ACKs that asked for it (within 20 ms of the last), ``Out-Of-Order`` when it
left less than one round trip (the handshake's) after the newest segment (Wireshark's
guess that the network reordered it, which the sender's own view cannot show), and
``Retransmission`` otherwise.  :mod:`tcpchatx.analysis.why` says, from both views,
what made the sender resend.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any

from ..analysis.plain.expert import INFO
from ..analysis.views import pair_views
from ..analysis.why import RETRANSMISSIONS, Why, explain_pairing
from .congestion import _part, _read, tail_drops
from .stories import StoryRun, file_version

#: Wireshark's name of each kind of resend, as its Info column shows it.
NAMES = {label: INFO[label].strip("[]").removeprefix("TCP ") for label in RETRANSMISSIONS}


def _whys(story: StoryRun, part: str | None) -> list[Why]:
    """The sender's resends of the transfer, explained from both views, in order."""
    views = story.views(_part(story, part))
    client, server = str(views["client"]), str(views["server"])
    sender = _read(story, part).pair.client
    return [why for why in _explain(client, server, file_version(client), file_version(server))
            if why.view == "client" and why.sender == sender]


@lru_cache(maxsize=8)  # per version of the files: a story played again writes the same names
def _explain(client_view: str, server_view: str, *versions: tuple[int, int]) -> tuple[Why, ...]:
    return tuple(explain_pairing(pair_views(client_view, server_view)))


def random_resends(story: StoryRun, part: str | None = None):
    """Every resend of the transfer, one row each: ``frame`` carrying ``seq``:``end``
    (``bytes``) at ``sent_ms``; ``repeats`` the earlier copies of its bytes and ``lost``
    those the server's view never saw; ``wait_ms`` since the copy before; ``trigger``
    what made the sender resend (:class:`tcpchatx.analysis.why.Trigger`);
    ``wireshark`` what Wireshark calls it; ``gap_ms`` since the newest segment left
    (what Wireshark compares with the handshake's round trip to call it Out-Of-Order:
    exact to the nanosecond, as Wireshark compares them)
    and ``sent_up_to`` just past the newest byte sent by then (a resend that ends there
    is never called Out-Of-Order);
    ``arrived`` its number in the server's view (``<NA>``: lost too); ``why`` the sentence."""
    import pandas as pd

    t = _read(story, part)
    sent = t.pair.sent_by(t.pair.client, "client")
    newest_before = _newest_segments(sent)
    by_frame = {p.frame: p for p in sent}
    rows = []
    for why in _whys(story, part):
        newest = newest_before.get(why.frame)
        rows.append({"frame": why.frame, "seq": why.seq, "end": why.end, "bytes": why.end - why.seq,
                     "sent_ms": round((why.time - t.t0) * 1000, 3), "repeats": why.repeats, "lost": why.lost,
                     "wait_ms": round(why.wait * 1000, 3) if why.wait is not None else None,
                     "trigger": str(why.trigger), "wireshark": NAMES[why.label],
                     "gap_ms": (by_frame[why.frame].nanoseconds - newest.nanoseconds) / 1e6 if newest else None,
                     "sent_up_to": newest.rel_end if newest else None,
                     "arrived": why.received_as, "why": why.sentence()})
    table = pd.DataFrame(rows, columns=["frame", "seq", "end", "bytes", "sent_ms", "repeats", "lost", "wait_ms",
                                        "trigger", "wireshark", "gap_ms", "sent_up_to", "arrived", "why"])
    for column in ("sent_up_to", "arrived"):
        table[column] = table[column].astype("Int64")
    return table


def _newest_segments(sent) -> dict[int, Any]:
    """Frame -> the newest segment sent before it: the last one that took the sender
    past every sequence number it had used (Wireshark's ``nextseq``, whose time it
    keeps; a SYN and a FIN use one each)."""
    newest, highest, before = None, None, {}
    for p in sent:  # in capture order
        before[p.frame] = newest
        if p.uses_sequence and (highest is None or p.rel_end > highest):
            newest, highest = p, p.rel_end
    return before


def handshake_rtt_ms(story: StoryRun, part: str | None = None) -> float:
    """The handshake's round trip in the client's view, from the latest SYN (a resent SYN
    starts it again) to the client's ACK of the SYN-ACK: Wireshark's
    ``tcp.analysis.initial_rtt``, its Out-Of-Order threshold (exact to the nanosecond, as
    Wireshark compares it)."""
    from ..tcp_flags import ACK, SYN

    packets = _read(story, part).pair.packets["client"]
    first_ack = next((i for i, p in enumerate(packets) if p.flags & (SYN | ACK) == ACK), None)
    syn = next((p for p in reversed(packets[:first_ack or 0]) if p.flags & (SYN | ACK) == SYN), None)
    if syn is None:
        raise ValueError(f"{story.name}: the client's view has no SYN before its first ACK, so no handshake "
                         "round trip (Wireshark then calls a resend Out-Of-Order within 3 ms)")
    return (packets[first_ack].nanoseconds - syn.nanoseconds) / 1e6


def loss_tally(story: StoryRun, part: str | None = None) -> dict[str, Any]:
    """The transfer's losses and repairs, counted three ways: by the router
    (``router_lost``: frames towards the server it dropped on purpose, of which
    ``router_lost_data`` carried data), by the captures (``lost_segments``: the client's
    data segments the server's view never saw, ``lost_bytes`` their bytes) and by the
    sender (``resends``, ``resent_bytes``; ``not_needed`` of them repeated only bytes
    that had arrived; ``by_wireshark``: how many of each name).  Also ``segments``
    (every data segment the client sent, resends included), ``sack`` and ``loss_rate``
    as played, ``seconds`` and ``goodput_mbit_s``."""
    run = story.part(_part(story, part))
    t = _read(story, part)
    whys = _whys(story, part)
    received = sum(run["received"])
    lost_at_random = run.get("lost_at_random", [])
    return {
        "loss_rate": run.get("loss_rate"), "sack": run.get("sack"),
        "router_lost": len(lost_at_random), "router_lost_data": sum(1 for e in lost_at_random if e["length"]),
        "segments": len(t.data), "lost_segments": len(t.lost), "lost_bytes": sum(p.length for p in t.lost),
        "resends": len(whys), "resent_bytes": sum(why.end - why.seq for why in whys),
        "not_needed": sum(1 for why in whys if not why.lost),
        "by_wireshark": dict(Counter(NAMES[why.label] for why in whys)),
        "seconds": run["seconds"], "goodput_mbit_s": received * 8 / run["seconds"] / 1e6,
    }


def lost_segments(story: StoryRun, part: str | None = None):
    """The data segments the server's view never saw, one row each: ``frame`` carrying
    ``seq``:``end``, sent at ``sent_ms``; ``resent`` the later frames that carried its
    bytes again, ``arrived`` the server's frame of the copy that got through
    (:func:`tcpchatx.lab.tail_drops`' table, without the router's queue)."""
    return tail_drops(story, part).drop(columns=["queue_bytes", "episode"])
