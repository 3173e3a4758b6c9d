"""Loss and retransmission in a lab story: the two views side by side, what was resent
and why, what arrived out of order, the ACKs' RTT samples, and what the kernel said.

Each helper takes a :class:`~.stories.StoryRun` (and one of its parts) and returns a
small table or plain values, packet numbers included, so that a notebook cell can ask
its question first and check the answer after.  The sender is alice: the stories lose,
hold back or delay *her* chat lines, and her connection is found by her nickname.

Frame numbers are the client's view's (the capture on alice's side of the router)
unless a column says ``server``.  Times are milliseconds since alice's SYN (``_ms``),
on the clock both captures and TCP_INFO are stamped with (one machine's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..analysis.labels import FLAG_STRINGS
from ..analysis.views import ConnectionPair, Packet, Pairing, pair_views
from ..analysis.why import explain_pairing
from ..tcp_flags import ACK, FIN, SYN
from .rtt import MIN_RTO, rfc6298
from .stories import StoryRun, _analyse, file_version

SENDER = "alice"

#: How far from its RTO a retransmission timer may fire.  Linux runs its timers on the
#: ticks of its clock (1/HZ s, 10 ms at most), so a timer may fire up to a tick *before*
#: its RTO is up, counted from the send (the tick it was set in had already begun); and
#: it files a timer set far ahead in a coarser slot of its timer wheel, which fires up
#: to an eighth of the timeout *late* (the wheel is built for that bound).
TICK_MS = 10.0
TIMER_SLACK = 1 / 8


def fired_on_time(wait_ms: float, rto_ms: float) -> bool:
    """Whether a timer set to ``rto_ms`` may have fired after ``wait_ms`` (milliseconds, as
    the tables give them): a tick early at most, an eighth and a tick late at most."""
    return rto_ms - TICK_MS <= wait_ms <= rto_ms * (1 + TIMER_SLACK) + TICK_MS


# --------------------------------------------------------------------------- alice's connection


@dataclass(frozen=True)
class _Story:
    """One part of a story, read once: alice's connection in both views, and where the
    story's own chat lines begin and end."""

    client_view: str
    server_view: str
    pairing: Pairing
    pair: ConnectionPair
    conn: int  # alice's connection id in the client's view
    t0: float  # her SYN's time (client's view), seconds since 1970
    first: Packet  # the first copy of her first chat line (client's view)
    end_seq: int  # just past the last byte of her chat lines
    acked: Packet | None  # the server's first ACK of all of them (client's view)


def _read(story: StoryRun, part: str | None) -> _Story:
    views = story.views(part)
    client_view, server_view = str(views["client"]), str(views["server"])
    return _read_views(client_view, server_view, file_version(client_view), file_version(server_view))


@lru_cache(maxsize=32)  # per version of the files: a story played again writes the same names
def _read_views(client_view: str, server_view: str, *versions: tuple[int, int]) -> _Story:
    a = _analyse(client_view)
    conn = next((c for c, nick in a.chat.nick_of_conn.items() if nick == SENDER), None)
    if conn is None:
        raise LookupError(f"{client_view} has no connection of {SENDER}'s")
    endpoint = a.connections[conn].client
    pairing = pair_views(client_view, server_view)
    pair = next(p for p in pairing.connections if p.client == endpoint)
    lines = [line for line in a.lines if line.conn == conn and line.direction == 0 and line.kind == "message"]
    if not lines:
        raise LookupError(f"{SENDER} sent no chat line in {client_view}")
    frames = {frame for line in lines for frame in line.frames}
    carrying = [p for p in pair.sent_by(pair.client, "client") if p.frame in frames]
    first = min(carrying, key=lambda p: p.frame)
    end_seq = max(p.rel_end for p in carrying)
    acked = next((p for p in pair.sent_by(pair.server, "client")
                  if p.frame > first.frame and p.flags & ACK and p.rel_ack >= end_seq), None)
    return _Story(client_view, server_view, pairing, pair, conn, a.connections[conn].start,
                  first, end_seq, acked)


def connection_of(story: StoryRun, part: str | None = None) -> int:
    """alice's connection id in the client's view (what the figures in ``plots`` take)."""
    return _read(story, part).conn


def _ms(s: _Story, seconds: float) -> float:
    return round((seconds - s.t0) * 1000, 3)


def _from_alice(s: _Story, p: Packet) -> bool:
    return p.sender == s.pair.client


# --------------------------------------------------------------------------- both views


def both_views(story: StoryRun, part: str | None = None, everything: bool = False):
    """alice's connection as both captures saw it, one row per packet, in the client's
    view's order: from her first chat line of the story to the server's ACK of all of
    them (``everything=True``: the whole connection).

    ``client`` and ``server`` are the packet's numbers in each view, ``client_ms`` and
    ``server_ms`` when each view saw it (``<NA>``, NaN: that view never did: the packet
    was lost between the two); ``sack`` the ACK's SACK blocks, relative like ``seq`` and
    ``ack``; ``client_marks`` and ``server_marks`` what Wireshark's Info column says of
    it in each view.  A packet that only the server's view has (the server's, lost on
    its way to alice) stands where it was sent.
    """
    import pandas as pd

    s = _read(story, part)
    pair = s.pair
    marks = {"client": _analyse(s.client_view), "server": _analyse(s.server_view)}
    rows = []
    for view in ("client", "server"):
        for p in pair.packets[view]:
            twin = pair.twin_of(p)
            if view == "server" and twin is not None:
                continue  # in both views: listed once, from the client's
            client, server = (p, twin) if view == "client" else (None, p)
            rows.append({
                "client": client.frame if client else None,
                "server": server.frame if server else None,
                "client_ms": _ms(s, client.time) if client else None,
                "server_ms": _ms(s, server.time) if server else None,
                "who": f"{SENDER} → server" if _from_alice(s, p) else f"server → {SENDER}",
                "flags": FLAG_STRINGS[p.flags & 0x1FF],
                "seq": p.rel_seq, "ack": p.rel_ack, "len": p.length,
                "sack": sack_text(p),
                "client_marks": marks["client"].info(client.frame - 1) if client else "",
                "server_marks": marks["server"].info(server.frame - 1) if server else "",
            })
    table = pd.DataFrame(rows)
    order = table.client_ms.fillna(table.server_ms)  # the client's clock, or the server's send time
    table = table.loc[order.sort_values(kind="stable").index].reset_index(drop=True)
    for column in ("client", "server"):
        table[column] = table[column].astype("Int64")
    if not everything:
        order = table.client_ms.fillna(table.server_ms)
        last = s.acked.time if s.acked else s.pair.packets["client"][-1].time
        table = table[(order >= _ms(s, s.first.time)) & (order <= _ms(s, last))]
    return table.reset_index(drop=True)


def sack_text(p: Packet) -> str:
    """An ACK's SACK blocks, relative to the acknowledged side's ISN as Wireshark shows
    them (the first byte it has up to just past the last): ``"109-143 177-211"``."""
    base = (p.ack - p.rel_ack) % 2**32  # the peer's ISN: raw ack minus relative ack
    return " ".join(f"{(left - base) % 2**32}-{(right - base) % 2**32}" for left, right in p.sack)


# --------------------------------------------------------------------------- what was resent


def resends(story: StoryRun, part: str | None = None):
    """alice's retransmissions, one row per resend, explained (:mod:`tcpchatx.analysis.why`).

    ``frame`` resends ``repeats`` (earlier copies of its bytes, the first one first)
    carrying ``seq``:``end`` (``bytes`` of them); ``lost`` are those of the earlier
    copies the server's view never saw, carrying ``lost_bytes``; ``sent_up_to`` is
    just past the highest byte alice had sent by then; ``wait_ms`` after the copy before it,
    ``since_first_ms`` after the first; ``asking`` the server's ACKs that asked for
    these bytes meanwhile (their ACK number is ``seq``), ``dup_acks`` those of them
    Wireshark calls duplicate ACKs; ``trigger`` what made alice's kernel resend;
    ``arrived`` this copy's number in the server's view (``<NA>``: lost too);
    ``rto_ms`` and ``backoff`` what TCP_INFO said while alice waited (the last sample
    before the resend; NaN and ``<NA>`` where the story read none); ``why`` the sentence.
    """
    import pandas as pd

    s = _read(story, part)
    samples = _tcp_info(story, part)
    sent = s.pair.sent_by(s.pair.client, "client")
    length = {p.frame: p.length for p in sent}
    rows = []
    for why in explain_pairing(s.pairing):
        if why.view != "client" or why.sender != s.pair.client:
            continue
        previous = why.time - why.wait if why.wait is not None else None
        kernel = _last_before(samples, why.time)
        rows.append({
            "frame": why.frame, "repeats": why.repeats, "seq": why.seq, "end": why.end,
            "bytes": why.end - why.seq, "lost": why.lost, "lost_bytes": sum(length[f] for f in why.lost),
            "sent_up_to": max(p.rel_end for p in sent if p.frame < why.frame), "sent_ms": _ms(s, why.time),
            "wait_ms": why.wait * 1000 if why.wait is not None else None,
            "since_first_ms": why.since_first * 1000 if why.since_first is not None else None,
            "asking": tuple(p.frame for p in s.pair.sent_by(s.pair.server, "client")
                            if previous is not None and previous < p.time < why.time and p.flags & ACK
                            and p.rel_ack == why.seq),
            "dup_acks": why.dup_acks, "trigger": str(why.trigger), "arrived": why.received_as,
            "rto_ms": kernel["rto"] * 1000 if kernel else float("nan"),
            "backoff": kernel["backoff"] if kernel else None,
            "why": why.sentence(),
        })
    columns = ["frame", "repeats", "seq", "end", "bytes", "lost", "lost_bytes", "sent_up_to", "sent_ms",
               "wait_ms", "since_first_ms", "asking", "dup_acks", "trigger", "arrived", "rto_ms", "backoff", "why"]
    table = pd.DataFrame(rows, columns=columns)
    for column in ("arrived", "backoff"):
        table[column] = table[column].astype("Int64")
    return table.round({"sent_ms": 3, "wait_ms": 3, "since_first_ms": 3})


def lost_copies(story: StoryRun, part: str | None = None) -> list[int]:
    """alice's packets (client's view) that the server's view never saw: lost at the router."""
    s = _read(story, part)
    return [p.frame for p in s.pair.sent_by(s.pair.client, "client") if s.pair.twin_of(p) is None]


# --------------------------------------------------------------------------- out of order


def out_of_order(story: StoryRun, part: str | None = None):
    """alice's segments that reached the server after one she sent later: one row each.

    ``client`` and ``server`` are its numbers in each view, ``overtaken_by`` the client's
    view's numbers of the segments sent after it that arrived first, ``late_ms`` how long
    after the first of those it arrived, ``held_ms`` how much longer its trip from alice's
    view to the server's took than that one's (what the router held it back, give or take
    the machine's jitter: ``late_ms`` is smaller by the time between alice sending it and
    sending that one), ``server_marks`` what Wireshark says of it there.
    """
    import pandas as pd

    s = _read(story, part)
    pair = s.pair
    sent = [p for p in pair.sent_by(pair.client, "client") if p.length and pair.twin_of(p)]
    server_info = _analyse(s.server_view)
    rows = []
    for k, p in enumerate(sent):
        arrived = pair.twin_of(p)
        ahead = [q for q in sent[k + 1:] if pair.twin_of(q).frame < arrived.frame]
        if ahead:
            first = min(ahead, key=lambda q: pair.twin_of(q).time)  # the first to arrive
            first_arrived = pair.twin_of(first).time
            trip, first_trip = arrived.time - p.time, first_arrived - first.time
            rows.append({"client": p.frame, "server": arrived.frame, "seq": p.rel_seq, "len": p.length,
                         "overtaken_by": tuple(q.frame for q in ahead),
                         "late_ms": round((arrived.time - first_arrived) * 1000, 3),
                         "held_ms": round((trip - first_trip) * 1000, 3),
                         "server_marks": server_info.info(arrived.frame - 1)})
    return pd.DataFrame(rows, columns=["client", "server", "seq", "len", "overtaken_by", "late_ms", "held_ms",
                                       "server_marks"])


# --------------------------------------------------------------------------- RTT samples


def ack_rtts(story: StoryRun, part: str | None = None):
    """Every packet of alice's connection (client's view) for which Wireshark gives an
    ``ack_rtt``: the time from the segment it acknowledges (``acks_frame``, which
    carried ``acked``) to it, as this capture saw them, in ``rtt_ms``."""
    import pandas as pd

    s = _read(story, part)
    a = _analyse(s.client_view)
    df = a.packets_df()
    mine = df[(df.conn == s.conn) & df.ack_rtt.notna()]
    by_frame = {p.frame: p for p in s.pair.packets["client"]}
    rows = []
    for row in mine.itertuples():
        acked = by_frame[int(row.acks_frame)]
        rows.append({"frame": int(row.frame), "at_ms": _ms(s, row.time),
                     "who": f"{SENDER} → server" if row.direction == "originator" else f"server → {SENDER}",
                     "ack": int(row.ack), "acks_frame": int(row.acks_frame), "acked": _what(acked),
                     "rtt_ms": round(float(row.ack_rtt) * 1000, 3)})
    return pd.DataFrame(rows, columns=["frame", "at_ms", "who", "ack", "acks_frame", "acked", "rtt_ms"])


def _what(p: Packet) -> str:
    if p.flags & SYN:
        return "SYN"
    if p.length:
        return f"seq {p.rel_seq}:{p.rel_seq + p.length} ({p.length} bytes)" + (" + FIN" if p.flags & FIN else "")
    return "FIN" if p.flags & FIN else "nothing"


def rtt_samples(story: StoryRun, part: str | None = None):
    """:func:`ack_rtts`, judged: ``use`` is True for the RTT samples alice's kernel may
    take, and ``reason`` says why each row is one or not.

    A sample of alice's round trip is the server's ACK of something alice sent (her own
    ACKs time how long *she* took to acknowledge the server's data); and, by Karn's rule
    (RFC 6298, section 3), not the ACK of bytes she sent more than once, since the ACK
    may answer any of the copies.
    """
    s = _read(story, part)
    table = ack_rtts(story, part)
    resent = [p for p in s.pair.sent_by(s.pair.client, "client") if "retransmission" in p.events]
    acked_up_to = 0  # the highest ACK number from the server so far: what earlier ACKs covered
    by_frame = {p.frame: p for p in s.pair.packets["client"]}
    use, reasons = [], []
    for row in table.itertuples():
        p = by_frame[row.frame]
        if _from_alice(s, p):
            use.append(False)
            reasons.append(f"{SENDER}'s own ACK: how long she took to answer, not her round trip")
            continue
        newly = (acked_up_to, p.rel_ack)
        twice = [q.frame for q in resent if q.frame < p.frame and q.rel_seq < newly[1] and newly[0] < q.rel_end]
        acked_up_to = max(acked_up_to, p.rel_ack)
        if twice:
            use.append(False)
            reasons.append(f"Karn's rule: it acknowledges bytes sent again (packet {_list(twice)})")
        else:
            use.append(True)
            reasons.append(f"a sample: the server's ACK of {row.acked}, sent once")
    table["use"], table["reason"] = use, reasons
    return table


def _list(frames: list[int]) -> str:
    return ", ".join(map(str, frames))


def rfc6298_table(samples_ms: Iterable[float], granularity_ms: float = 1.0,
                  min_rto_ms: float = MIN_RTO * 1000):
    """:func:`tcpchatx.lab.rtt.rfc6298` in milliseconds, one row per sample: the sample,
    SRTT and RTTVAR after it, ``srtt_plus_max_g_k_rttvar_ms`` (SRTT + max(G, 4 RTTVAR))
    and the RTO (that, at least ``min_rto_ms``)."""
    import pandas as pd

    steps = rfc6298([ms / 1000 for ms in samples_ms], granularity=granularity_ms / 1000,
                    min_rto=min_rto_ms / 1000)
    return pd.DataFrame([{"sample_ms": e.sample * 1000, "srtt_ms": e.srtt * 1000, "rttvar_ms": e.rttvar * 1000,
                          "srtt_plus_max_g_k_rttvar_ms": e.formula * 1000, "rto_ms": e.rto * 1000}
                         for e in steps],
                        columns=["sample_ms", "srtt_ms", "rttvar_ms", "srtt_plus_max_g_k_rttvar_ms", "rto_ms"]
                        ).round(6)


# --------------------------------------------------------------------------- what the kernel said


def _tcp_info(story: StoryRun, part: str | None) -> list[dict[str, Any]]:
    return [sample for sample in story.part(part).get("tcp_info", []) if sample.get("name") == SENDER]


def _last_before(samples: list[dict[str, Any]], when: float) -> dict[str, Any] | None:
    earlier = [sample for sample in samples if sample["time"] < when]
    return earlier[-1] if earlier else None


def kernel_before(story: StoryRun, at_ms: float, part: str | None = None) -> dict[str, Any] | None:
    """alice's last TCP_INFO sample before ``at_ms`` (ms since her SYN), or None: the fields
    of :func:`tcpchatx.tcpinfo.tcp_info` (``rtt``, ``rttvar`` and ``rto`` in seconds), and
    ``at_ms``, when it was read."""
    s = _read(story, part)
    sample = _last_before(_tcp_info(story, part), s.t0 + at_ms / 1000)
    return None if sample is None else {**sample, "at_ms": _ms(s, sample["time"])}


def kernel_after(story: StoryRun, at_ms: float, part: str | None = None, *,
                 acked: int | None = None) -> dict[str, Any] | None:
    """alice's first TCP_INFO sample after ``at_ms``, like :func:`kernel_before`; None if the
    story stopped reading TCP_INFO before then.

    With ``acked`` (an ACK's relative number, captured at ``at_ms``): the first sample
    that shows it (``bytes_acked``, which counts the SYN, has reached it).  A capture
    stamps a packet as it arrives, before TCP has handled it, so a sample read a few
    microseconds later may still show the state from before the ACK."""
    s = _read(story, part)
    later = [sample for sample in _tcp_info(story, part) if sample["time"] > s.t0 + at_ms / 1000
             and (acked is None or sample["bytes_acked"] >= acked)]
    return {**later[0], "at_ms": _ms(s, later[0]["time"])} if later else None
