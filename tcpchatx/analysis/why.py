"""Why was it sent again?  Each retransmission explained from both views of its connection.

Wireshark marks a segment ``[TCP Retransmission]``: its bytes were sent before.  One
capture cannot say more.  With the same connection captured at both ends
(:mod:`.views` pairs the packets), three questions have answers:

1. **What does it repair?**  The earlier transmissions of the same bytes, in the
   sender's view: the *copies* it repeats.
2. **Was anything lost?**  (:class:`Fate`)  A copy the sender's view has and the
   receiver's view never saw was lost on the wire, between the two captures (at the
   router, in the lab).  If the receiver's view has an earlier copy, nothing was
   lost: the resend was not needed (a *spurious* retransmission), and the receiver's
   ACK tells why - lost on its way back, or too late.  If neither view has an
   earlier copy, only the capture missed it.
3. **What made the sender resend?**  (:class:`Trigger`)  A capture cannot see the
   sender's timers, but each reason to resend leaves its trace in the sender's view.
   The rules are checked in this order, looking at what the peer sent since the
   previous copy of these bytes:

   - **duplicate ACKs** (RFC 5681, section 3.2, fast retransmit): the receiver keeps
     acknowledging the same byte because later ones arrive and this one does not;
     after three duplicates (fewer with SACK, RFC 6675) the sender resends at once.
     Rule: the peer's latest ACK asks for these bytes (goes no further than their
     start), and the peer repeated it in duplicate ACKs (as the expert analysis names
     them);
   - **RACK** (RFC 8985, section 6): a segment is lost when one sent *after* it has
     been acknowledged and it has not.  Rule: no duplicate ACK, but ACKs that still
     ask for these bytes acknowledge (by their ACK number or a SACK block) a segment
     sent after the previous copy - in a long recovery, most resends are of this kind;
   - **a tail-loss probe** (RFC 8985, section 7): when the last segments of a burst
     are lost, nothing comes back to show it, so the sender resends the last one
     after about two round trips (plus 200 ms for a delayed ACK when it is alone in
     flight; never later than the RTO) to draw an ACK that will.  A probe is not a
     timeout: the timer does not back off after it (section 7.3).  Rule: nothing came
     back, and the resend came sooner than any RTO can (:data:`MIN_RTO`), or the next
     resend of the same bytes waited about as long (less than :data:`DOUBLED` times),
     not twice as long;
   - **a timeout** (RFC 6298): nothing came back before the retransmission timer ran
     out.  Each expiry doubles the timer (section 5.5, exponential *backoff*), so the
     waits of one segment's resends go 0.2, 0.4, 0.8 s...  Rule: nothing came back,
     and it is not a probe.  The *wait* is the time since the previous copy (the
     timer may have started a little later, at the last ACK of new data: section
     5.3), and the *backoff* is how many earlier resends of these bytes were
     timeouts too.

These rules fit Linux, whose smallest RTO is 200 ms.  They cannot tell every probe
from a timeout: a probe with the delayed-ACK allowance waits about as long as the
RTO, so the last resend of a chain, with no successor to compare, is taken for a
timeout.

Only connections both views have are explained (:attr:`.views.Pairing.only_in`
lists the others), and only resends that the *sender's* view marks: the receiver's
view calls a segment a retransmission by what it saw, not by what was sent.  In the
sender's view, a segment Wireshark calls ``[TCP Out-Of-Order]`` is a resend too (a
sender sends its new bytes in order): Wireshark calls a segment that does not advance
the sequence *out of order* rather than a retransmission when it comes less than one
round trip (the handshake's, or 3 ms) after the newest one, and not a fast
retransmission; so a resend soon after new data, in a long recovery, is named so.

    from tcpchatx.analysis.why import explain
    for why in explain("rto-client-view.pcapng", "rto-server-view.pcapng"):
        print(why.sentence())
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..tcp_flags import ACK
from .labels import Label
from .views import VIEWS, ConnectionPair, Endpoint, Packet, Pairing, pair_views

#: The expert analysis's names of a resend, most specific first (plain.expert.EVENTS);
#: ``out_of_order`` only in the sender's own view (see the module's docstring).
RETRANSMISSIONS = ("spurious_retransmission", "fast_retransmission", "retransmission", "out_of_order")
#: Linux's smallest retransmission timeout (TCP_RTO_MIN; RFC 6298 asks for 1 s, 2.4).
MIN_RTO = 0.200
#: A timer that backed off waits twice as long; less than this many times as long is
#: "about as long" (the timer did not back off).
DOUBLED = 1.5
#: Duplicate ACKs that make a fast retransmit without SACK (RFC 5681, 3.2: DupThresh).
DUP_THRESH = 3


class Fate(Label):
    """What became of the earlier copies (meanings in :data:`FATES`)."""

    LOST = "lost"
    DELIVERED = "delivered"
    NOT_CAPTURED = "not captured"


FATES: dict[str, str] = {
    Fate.LOST: "The sender's view has an earlier copy that the receiver's view never saw: "
               "the network lost it between the two captures.",
    Fate.DELIVERED: "The receiver's view has an earlier copy: nothing was lost, the resend was "
                    "spurious (its ACK was lost, or late).",
    Fate.NOT_CAPTURED: "Neither view has an earlier copy: the captures missed it (or it was sent "
                       "before they began).",
}


class Trigger(Label):
    """What made the sender resend (meanings in :data:`TRIGGERS`)."""

    TIMEOUT = "timeout"
    DUPLICATE_ACKS = "duplicate ACKs"
    RACK = "RACK"
    TAIL_LOSS_PROBE = "tail-loss probe"
    UNKNOWN = "unknown"


TRIGGERS: dict[str, str] = {
    Trigger.TIMEOUT: "Nothing came back: the retransmission timer ran out (RFC 6298).",
    Trigger.DUPLICATE_ACKS: "The receiver's duplicate ACKs asked for these bytes (RFC 5681 fast "
                            "retransmit, or SACK/RACK loss detection).",
    Trigger.RACK: "No duplicate ACK, but ACKs showed that a segment sent later had arrived and "
                  "these bytes had not (RFC 8985 RACK).",
    Trigger.TAIL_LOSS_PROBE: "Nothing came back, and the sender probed before an RTO could "
                             "expire, or without backing its timer off (RFC 8985 tail-loss probe).",
    Trigger.UNKNOWN: "Nothing came back, and with no earlier copy in the sender's view there "
                     "is no wait to measure.",
}


@dataclass(frozen=True)
class Why:
    """One retransmission, explained.  Frames are in the sender's view unless named
    otherwise; sequence numbers are relative, as Wireshark shows them."""

    frame: int  # the retransmission
    time: float  # when it was sent, seconds since 1970 on the sender's view's clock
    view: str  # the sender's view ("client" or "server"), captured next to the sender
    peer_view: str  # the receiver's view
    sender: Endpoint
    receiver: Endpoint
    label: str  # the expert analysis's name: retransmission, fast_ or spurious_retransmission, out_of_order
    seq: int  # the bytes it carries: seq up to (not including) end
    end: int
    repeats: tuple[int, ...]  # earlier frames carrying any of these bytes, oldest first
    lost: tuple[int, ...]  # those of them the receiver's view never saw
    arrived: tuple[int, ...]  # the receiver's view: earlier copies that got there
    received_as: int | None  # the receiver's view: this copy (None: lost too)
    fate: Fate
    trigger: Trigger
    wait: float | None  # seconds since the previous copy (None: no earlier copy)
    since_first: float | None  # seconds since the first copy
    backoff: int | None  # timeouts: how often the timer had doubled (earlier timeouts of these bytes)
    dup_acks: tuple[int, ...] = ()  # duplicate ACKs asking for these bytes since the previous copy
    sack: bool = False  # whether any of them carried SACK blocks
    later_acks: tuple[int, ...] = ()  # ACKs of segments sent after the previous copy, asking for these
    ack: int | None = None  # delivered: the receiver's view's first ACK of these bytes
    ack_seen: int | None = None  # delivered: that ACK in the sender's view (None: lost on the way)
    probe_rule: str | None = None  # tail-loss probes: "soon" (< MIN_RTO) or "no backoff"

    def sentence(self) -> str:
        """The explanation in one English sentence."""
        return "".join((self._what(), self._fate(), self._trigger(), self._outcome()))

    def _what(self) -> str:
        bytes_ = f"seq {self.seq}:{self.end}"
        if not self.repeats:
            return f"frame {self.frame} ({self.view}'s view) resends {bytes_}"
        return f"frame {self.frame} ({self.view}'s view) resends {_frames(self.repeats)} ({bytes_})"

    def _fate(self) -> str:
        here, there = self.view, self.peer_view
        them = "them" if len(self.lost) > 1 else "it"
        if self.fate is Fate.LOST and self.lost == self.repeats:
            return f", lost between the {here} and the {there}: the {there}'s view never saw {them}"
        if self.fate is Fate.LOST:  # some of the copies it repeats got there
            was = "were" if len(self.lost) > 1 else "was"
            return (f", of which {_frames(self.lost)} {was} lost between the {here} and the {there}: "
                    f"the {there}'s view never saw {them}")
        if self.fate is Fate.NOT_CAPTURED:
            return f", but no capture saw an earlier copy: the {here}'s capture missed it"
        where = ", ".join(f"frame {frame} there" for frame in self.arrived)
        text = f", which was not lost (a spurious retransmission): the {there}'s view has it ({where})"
        if not self.repeats:
            text += f", though the {here}'s capture missed it"
        if self.ack is None:
            return text + f", and the {there} never acknowledged it"
        if self.ack_seen is None:
            return text + f", and the {there}'s ACK of it (frame {self.ack} there) never reached the {here}"
        if self.ack_seen > self.frame:
            return text + f", and the {there}'s ACK reached the {here} only after the resend (frame {self.ack_seen})"
        return text + f", and the {there}'s ACK had already reached the {here} (frame {self.ack_seen})"

    def _trigger(self) -> str:
        if self.trigger is Trigger.DUPLICATE_ACKS:
            count = len(self.dup_acks)
            acks = "a duplicate ACK" if count == 1 else f"{count} duplicate ACKs"
            sack = ", with SACK blocks" if self.sack else ""
            fast = ": a fast retransmit" if count >= DUP_THRESH else ""
            return f"; sent again after {acks} ({_frames(self.dup_acks)}{sack}) asked for it{fast}"
        if self.trigger is Trigger.RACK:
            acks = (f"the ACK in frame {self.later_acks[0]}" if len(self.later_acks) == 1
                    else f"{len(self.later_acks)} ACKs ({_frames(self.later_acks)})")
            return f"; sent again when {acks} showed that a segment sent after it had arrived (RACK)"
        if self.trigger is Trigger.UNKNOWN:
            return "; with no earlier copy to time it from, what triggered it cannot be told"
        wait = f"{self.wait * 1000:.0f} ms"
        if self.trigger is Trigger.TAIL_LOSS_PROBE and self.probe_rule == "soon":
            return f"; sent again only {wait} later with nothing back, sooner than any RTO: a tail-loss probe"
        if self.trigger is Trigger.TAIL_LOSS_PROBE:
            return (f"; sent again after {wait} with nothing back, and the next resend waited as long, "
                    "not twice as long: a tail-loss probe, not the RTO")
        return f"; sent again after {_a(wait)} {wait} timeout ({_rto(self.backoff)})"

    def _outcome(self) -> str:
        if self.received_as is not None:
            return f"; this copy arrived (the {self.peer_view}'s frame {self.received_as})"
        return "; this copy was lost too" if self.fate is Fate.LOST else "; this copy was lost"


def explain(client_view_path: str | os.PathLike, server_view_path: str | os.PathLike) -> list[Why]:
    """Every retransmission of two views of the same connections, explained, in the
    order they were sent (the captures' clocks are taken to be close)."""
    return explain_pairing(pair_views(client_view_path, server_view_path))


def explain_pairing(pairing: Pairing) -> list[Why]:
    """:func:`explain`, for views already paired (:func:`.views.pair_views`)."""
    whys = []
    for pair in pairing.connections:
        for view in VIEWS:
            resends = [p for p in pair.packets[view] if pair.sender_view(p) == view
                       and ("retransmission" in p.events or "out_of_order" in p.events)]
            whys += _explain_resends(pair, view, resends)
    offset = pairing.clock_offset or 0.0  # the server view's clock minus the client view's
    return sorted(whys, key=lambda why: why.time - offset if why.view == "server" else why.time)


# --------------------------------------------------------------------------- one sender


def _explain_resends(pair: ConnectionPair, view: str, resends: list[Packet]) -> list[Why]:
    """The resends of one sender, seen in its own view ``view``.

    Two passes: the first reads each resend on its own; the second looks at each
    timer-driven resend's successor to tell a tail-loss probe from a timeout, and
    counts the timeouts before each one (the backoff).
    """
    first_pass = [_read_one(pair, view, resend) for resend in resends]
    whys = []
    for k, why in enumerate(first_pass):
        if why.trigger is Trigger.TIMEOUT:
            why = _probe_or_timeout(why, first_pass[k + 1:], whys)
        whys.append(why)
    return whys


def _read_one(pair: ConnectionPair, view: str, resend: Packet) -> Why:
    """Questions 1 and 2, and question 3 as far as one resend shows it: duplicate ACKs,
    RACK, or the timer (probe or timeout: decided by :func:`_probe_or_timeout`)."""
    peer_view = "server" if view == "client" else "client"
    sent = pair.sent_by(resend.sender, view)
    copies = [p for p in sent if p.frame < resend.frame and _overlaps(p, resend)]
    lost = tuple(p.frame for p in copies if pair.twin_of(p) is None)
    arrived = _arrived_before(pair, peer_view, resend)
    fate = _fate(resend, copies, arrived)
    previous = copies[-1] if copies else None
    dup_acks = _duplicate_acks(pair, view, resend, previous)
    later_acks = _acks_of_later_segments(pair, view, resend, previous)
    if dup_acks:
        trigger = Trigger.DUPLICATE_ACKS
    elif later_acks:
        trigger = Trigger.RACK
    else:
        trigger = Trigger.TIMEOUT if previous else Trigger.UNKNOWN
    ack, ack_seen = _receivers_ack(pair, peer_view, resend, arrived) if fate is Fate.DELIVERED else (None, None)
    twin = pair.twin_of(resend)
    return Why(
        frame=resend.frame, time=resend.time, view=view, peer_view=peer_view,
        sender=resend.sender, receiver=resend.receiver,
        label=next(name for name in RETRANSMISSIONS if name in resend.events),
        seq=resend.rel_seq, end=resend.rel_end,
        repeats=tuple(p.frame for p in copies), lost=lost, arrived=tuple(p.frame for p in arrived),
        received_as=twin.frame if twin else None, fate=fate, trigger=trigger,
        wait=resend.time - previous.time if previous else None,
        since_first=resend.time - copies[0].time if copies else None,
        backoff=None, dup_acks=tuple(p.frame for p in dup_acks), sack=any(p.sack for p in dup_acks),
        later_acks=tuple(p.frame for p in later_acks),
        ack=ack.frame if ack else None, ack_seen=ack_seen.frame if ack_seen else None,
    )


def _overlaps(a: Packet, b: Packet) -> bool:
    """The two segments share a sequence number."""
    return a.uses_sequence and a.rel_seq < b.rel_end and b.rel_seq < a.rel_end


def _arrived_before(pair: ConnectionPair, peer_view: str, resend: Packet) -> list[Packet]:
    """The receiver's view: copies of the resend's bytes that arrived before it.

    "Before" is before the resend's own arrival; if it never arrived, before the
    resend's time (the receiver's view's clock is taken to be close)."""
    twin = pair.twin_of(resend)
    deadline = twin.time if twin else resend.time
    return [p for p in pair.sent_by(resend.sender, peer_view) if p.time < deadline and _overlaps(p, resend)]


def _fate(resend: Packet, copies: list[Packet], arrived: list[Packet]) -> Fate:
    """Question 2: delivered if earlier copies that arrived hold all the resend's bytes;
    else lost if the sender's view has an earlier copy; else the captures missed it."""
    if arrived and _covers(arrived, resend.rel_seq, resend.rel_end):
        return Fate.DELIVERED
    if copies:
        return Fate.LOST
    return Fate.NOT_CAPTURED


def _covers(segments: list[Packet], start: int, end: int) -> bool:
    """Together the segments hold every sequence number from start up to end."""
    for segment in sorted(segments, key=lambda p: p.rel_seq):
        if segment.rel_seq > start:
            break  # a gap
        start = max(start, segment.rel_end)
    return start >= end


def _duplicate_acks(pair: ConnectionPair, view: str, resend: Packet, previous: Packet | None) -> list[Packet]:
    """The peer's duplicate ACKs (as the expert analysis names them), in the sender's
    view, since the previous copy (or the connection's start, without one), that repeat
    the peer's latest ACK number - as RFC 5681 counts them, starting again at each new
    ACK - when that number still asks for these bytes (goes no further than their start)."""
    since = previous.frame if previous else 0
    acks = [p for p in pair.sent_by(resend.receiver, view) if since < p.frame < resend.frame and p.flags & ACK]
    if not acks or acks[-1].rel_ack > resend.rel_seq:
        return []
    latest = acks[-1].rel_ack
    return [p for p in acks if "duplicate_ack" in p.events and p.rel_ack == latest]


def _acks_of_later_segments(pair: ConnectionPair, view: str, resend: Packet, previous: Packet | None
                            ) -> list[Packet]:
    """The peer's ACKs, in the sender's view, that still ask for these bytes but
    acknowledge - by their ACK number or a SACK block - a segment sent after the
    previous copy: something sent later got there, and this did not (RACK's test)."""
    if previous is None:
        return []
    sent = pair.sent_by(resend.sender, view)
    later = [p for p in sent if previous.frame < p.frame < resend.frame and p.uses_sequence]
    return [ack for ack in pair.sent_by(resend.receiver, view)
            if previous.frame < ack.frame < resend.frame and ack.rel_ack <= resend.rel_seq
            and any(segment.frame < ack.frame and _acknowledges(ack, segment) for segment in later)]


def _acknowledges(ack: Packet, segment: Packet) -> bool:
    """``ack`` says the peer holds all of ``segment``: by its ACK number, or a SACK block."""
    if segment.rel_end <= ack.rel_ack:
        return True
    isn = (ack.ack - ack.rel_ack) & 0xFFFFFFFF  # the sender's ISN, to make the SACK edges relative
    return any((left - isn) & 0xFFFFFFFF <= segment.rel_seq and segment.rel_end <= (right - isn) & 0xFFFFFFFF
               for left, right in ack.sack)


def _receivers_ack(pair: ConnectionPair, peer_view: str, resend: Packet, arrived: list[Packet]):
    """The receiver's first ACK of all the resend's bytes after they arrived (in its own
    view), and the same ACK in the sender's view, if it got there."""
    got_all = max(p.time for p in arrived)
    ack = next((p for p in pair.sent_by(resend.receiver, peer_view)
                if p.time >= got_all and p.rel_ack >= resend.rel_end), None)
    return ack, (pair.twin_of(ack) if ack else None)


# --------------------------------------------------------------------------- probe or timeout


def _probe_or_timeout(why: Why, later: list[Why], done: list[Why]) -> Why:
    """A timer-driven resend is a tail-loss probe if it came sooner than any RTO, or if
    the next timer-driven resend of the same bytes waited about as long (the timer did
    not back off); otherwise a timeout, whose backoff is the number of timeouts among
    the copies it repeats."""
    if why.wait < MIN_RTO:
        return replace(why, trigger=Trigger.TAIL_LOSS_PROBE, probe_rule="soon")
    after = next((other for other in later if why.frame in other.repeats), None)
    if after is not None and after.trigger is Trigger.TIMEOUT and after.wait < DOUBLED * why.wait:
        return replace(why, trigger=Trigger.TAIL_LOSS_PROBE, probe_rule="no backoff")
    timeouts = sum(1 for other in done if other.frame in why.repeats and other.trigger is Trigger.TIMEOUT)
    return replace(why, backoff=timeouts)


# --------------------------------------------------------------------------- words


def _frames(frames: tuple[int, ...]) -> str:
    """"frame 3", "frames 3 and 5", "frames 3, 5 and 8"; a long list shortened to
    "frames 3, 5, 8, ..., 40"."""
    if len(frames) == 1:
        return f"frame {frames[0]}"
    if len(frames) > 5:
        return f"frames {frames[0]}, {frames[1]}, {frames[2]}, ..., {frames[-1]}"
    listed = ", ".join(str(frame) for frame in frames[:-1])
    return f"frames {listed} and {frames[-1]}"


def _a(number: str) -> str:
    """The article before a number as it is said: "an 832 ms", "an 18 ms", "a 206 ms"."""
    eleven_or_eighteen = number[:2] in ("11", "18") and len(number) in (2, 5)  # and 11,000, 18,000...
    return "an" if number.startswith("8") or eleven_or_eighteen else "a"


def _rto(backoff: int | None) -> str:
    """The RTO, and how often it had doubled."""
    if not backoff:
        return "the RTO"
    times = {1: "once", 2: "twice"}.get(backoff, f"{backoff} times")
    return f"the RTO, doubled {times}: backoff {backoff}"
