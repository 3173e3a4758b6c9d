"""Why was it resent?  The two views of a connection, read together (analysis.why, .views).

The lab's stories lose segments on purpose: ``rto`` one chat line, repaired by the
retransmission timer; ``backoff`` every copy of a line for 1.7 s, each resend waiting
twice as long.  A crafted pair of captures covers what the stories do not: a fast
retransmit after duplicate ACKs with SACK, spurious resends (the ACK lost, late, or
just in), a segment neither capture saw, and a tail-loss probe.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scapy.all import IP, TCP

from analysis_helpers import C, S, Talk, write_capture
from tcpchatx.analysis.views import pair_views
from tcpchatx.analysis.why import Fate, Trigger, explain
from tcpchatx.capture import rootless_available

needs_the_lab = pytest.mark.skipif(not rootless_available()[0] or shutil.which("nft") is None,
                                   reason="needs unprivileged user namespaces and nft")


@pytest.fixture(scope="module")
def rto(story_as_root):
    return story_as_root("rto")  # the play test_netlab_stories.py's test_rto[self] reads too


@pytest.fixture(scope="module")
def backoff(story_as_root):
    return story_as_root("backoff")


def explained(outcome: dict):
    return explain(outcome["views"]["client"], outcome["views"]["server"])


def frames_carrying(path, payload: bytes) -> list[int]:
    """Frames of a capture whose TCP payload is ``payload``."""
    from tcpchatx.analysis import analyze

    a = analyze(path)
    return [int(a.packets.frame[i]) for i in range(len(a.packets)) if a.packets.payload(i) == payload]


# --------------------------------------------------------------------------- the stories


@needs_the_lab
def test_rto_the_line_lost_at_the_router_is_resent_by_the_timer(rto):
    line = (rto["line"] + "\n").encode()
    first, resent = frames_carrying(rto["views"]["client"], line)  # the client's view: twice
    (arrived,) = frames_carrying(rto["views"]["server"], line)  # the server's view: once
    (why,) = explained(rto)
    assert (why.view, why.frame, why.repeats) == ("client", resent, (first,))
    assert why.label == "retransmission" and why.end - why.seq == len(line)
    assert why.fate is Fate.LOST and why.lost == (first,) and why.arrived == ()
    assert why.received_as == arrived  # the resend got through
    assert why.trigger is Trigger.TIMEOUT and why.backoff == 0 and why.dup_acks == ()
    assert why.wait >= 0.2  # Linux's smallest RTO
    sentence = why.sentence()
    assert f"frame {resent} (client's view) resends frame {first}" in sentence
    assert "lost between the client and the server" in sentence and "timeout (the RTO)" in sentence


@needs_the_lab
def test_rto_the_views_are_paired(rto):
    pairing = pair_views(rto["views"]["client"], rto["views"]["server"])
    assert len(pairing.connections) == 2 and pairing.only_in == {"client": [], "server": []}
    for pair in pairing.connections:
        assert pair.near == {pair.client: "client", pair.server: "server"}  # the router lowers the TTL
        unmatched = [p for p in pair.packets["client"] if pair.twin_of(p) is None]
        assert len(unmatched) <= 1  # only alice's lost line, in her connection
    assert all(0 <= delay < 0.05 for delay in pairing.transit.values()), pairing.transit


@needs_the_lab
def test_backoff_each_resend_waits_twice_as_long(backoff):
    line = (backoff["line"] + "\n").encode()
    sent = frames_carrying(backoff["views"]["client"], line)
    alices = [why for why in explained(backoff) if why.view == "client"]
    assert [why.frame for why in alices] == sent[1:]  # every resend of her line, none else
    assert all(why.trigger is Trigger.TIMEOUT for why in alices), [why.sentence() for why in alices]
    assert [why.backoff for why in alices] == list(range(len(alices)))  # 0, 1, 2, 3...
    assert len(alices) >= 3
    waits = [why.wait for why in alices]
    assert waits[0] >= 0.2
    assert all(1.5 <= later / earlier <= 2.5 for earlier, later in zip(waits, waits[1:])), waits
    assert all(why.fate is Fate.LOST and why.repeats == tuple(sent[:k + 1]) for k, why in enumerate(alices))
    assert [why.received_as is not None for why in alices] == [False] * (len(alices) - 1) + [True]
    assert "doubled twice: backoff 2" in alices[2].sentence()


@needs_the_lab
def test_backoff_nothing_is_left_unexplained(backoff):
    """Both captures saw everything that reached them: every earlier copy was either
    lost at the router or delivered (the server's resends to bob, whose ACK the broken
    path swallowed, are spurious), and each resend's trigger is known."""
    whys = explained(backoff)
    assert {why.fate for why in whys} <= {Fate.LOST, Fate.DELIVERED}
    assert {why.trigger for why in whys} <= {Trigger.TIMEOUT, Trigger.TAIL_LOSS_PROBE}
    for why in whys:
        if why.fate is Fate.DELIVERED:
            assert why.ack_seen is None or why.ack_seen > why.frame  # its ACK was lost, or late


# --------------------------------------------------------------------------- a crafted pair

ONE_WAY = 0.0005  # seconds from one capture point to the other


class TwoViews:
    """A scripted conversation captured at both ends: each packet is seen where it was
    sent and, unless lost on the way, 0.5 ms later (one TTL lower) where it arrives."""

    def __init__(self) -> None:
        self.talk = Talk()
        self.where: dict[int, str] = {}  # id(packet) -> "lost" (sender's view only) or "neither"

    def lost(self, packet):
        self.where[id(packet)] = "lost"
        return packet

    def unseen(self, packet):
        self.where[id(packet)] = "neither"
        return packet

    def write(self, directory: Path) -> tuple[Path, Path]:
        views: dict[str, list] = {"client": [], "server": []}
        ip_id = {C: 100, S: 900}
        for packet in self.talk.packets:
            side = C if packet[IP].src == self.talk.ends[C][0] else S
            ip_id[side] += 1
            packet[IP].id, packet[IP].ttl = ip_id[side], 64
            near, far = ("client", "server") if side == C else ("server", "client")
            where = self.where.get(id(packet), "both")
            if where != "neither":
                views[near].append(packet)
            if where == "both":
                arrived = packet.copy()
                arrived[IP].ttl, arrived.time = 63, packet.time + ONE_WAY
                views[far].append(arrived)
        paths = []
        for name in ("client", "server"):
            packets = sorted(views[name], key=lambda p: float(p.time))
            paths.append(write_capture(directory / f"crafted-{name}-view.pcapng", packets, fmt="pcapng"))
        return paths[0], paths[1]


def sack(packet, *blocks):
    """Give an ACK SACK blocks (raw sequence numbers)."""
    packet[TCP].options = [("NOP", None), ("NOP", None), ("SAck", tuple(e for b in blocks for e in b))]
    return packet


def crafted_story(v: TwoViews) -> dict[str, int]:
    """The client's data, lost and resent in every way; returns the sequence numbers
    (relative) each resend starts at, by name."""
    t = v.talk
    t.handshake()
    isn = t.next[C] - 1
    t.send(C, b"a" * 100)
    t.ack(S)
    starts = {}
    # A segment lost on the wire; three later ones get through; three duplicate ACKs
    # with SACK blocks ask for it; the client resends it at once.
    starts["fast"] = t.next[C] - isn
    lost = t.next[C]
    v.lost(t.send(C, b"b" * 100))
    for _ in range(3):
        t.send(C, b"c" * 100)
    for k in range(3):
        sack(t.ack(S, ack=lost), (lost + 100, lost + 200 + 100 * k))
    t.send(C, b"b" * 100, seq=lost, advance=False)
    t.ack(S)
    # Delivered, but its ACK is lost on the way back: resent after a 300 ms timeout.
    starts["ack lost"] = t.next[C] - isn
    t.send(C, b"d" * 100)
    v.lost(t.ack(S))
    t.send(C, b"d" * 100, seq=t.next[C] - 100, advance=False, dt=0.3)
    t.ack(S)
    # Delivered, its ACK late: it crosses the resend.
    starts["ack late"] = t.next[C] - isn
    t.send(C, b"e" * 100)
    t.send(C, b"e" * 100, seq=t.next[C] - 100, advance=False, dt=0.25)
    t.ack(S, dt=0.0001)
    # Delivered, its ACK in just before the timer fired: Wireshark's spurious retransmission.
    starts["ack in"] = t.next[C] - isn
    t.send(C, b"f" * 100)
    t.ack(S, dt=0.2095)
    t.send(C, b"f" * 100, seq=t.next[C] - 100, advance=False, dt=0.0008)
    t.ack(S)
    # Neither capture sees a segment; the next gets through, and duplicate ACKs ask for it.
    starts["unseen"] = t.next[C] - isn
    missing = t.next[C]
    v.unseen(t.send(C, b"g" * 100))
    t.send(C, b"h" * 100)
    for _ in range(2):
        sack(t.ack(S, ack=missing), (missing + 100, missing + 200))
    t.send(C, b"g" * 100, seq=missing, advance=False)
    t.ack(S)
    # The last segment of a burst is lost: resent 30 ms later, with nothing back.
    starts["probe"] = t.next[C] - isn
    v.lost(t.send(C, b"l" * 100))
    t.send(C, b"l" * 100, seq=t.next[C] - 100, advance=False, dt=0.03)
    t.ack(S)
    t.fin(C)
    t.fin(S)
    t.ack(C)
    return starts


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    v = TwoViews()
    starts = crafted_story(v)
    whys = explain(*v.write(tmp_path_factory.mktemp("crafted")))
    by_start = {why.seq: why for why in whys}
    assert len(by_start) == len(whys) == len(starts), [why.sentence() for why in whys]
    return {name: by_start[seq] for name, seq in starts.items()}


def test_duplicate_acks_with_sack_make_a_fast_retransmit(crafted):
    why = crafted["fast"]
    assert why.label == "fast_retransmission" and why.view == "client"
    assert why.fate is Fate.LOST and why.lost == why.repeats and len(why.repeats) == 1
    assert why.trigger is Trigger.DUPLICATE_ACKS and len(why.dup_acks) == 3 and why.sack
    assert why.backoff is None and why.received_as is not None
    assert "after 3 duplicate ACKs" in why.sentence() and "with SACK blocks" in why.sentence()
    assert "a fast retransmit" in why.sentence()


def test_a_delivered_segment_whose_ack_was_lost_is_resent_for_nothing(crafted):
    why = crafted["ack lost"]
    assert why.fate is Fate.DELIVERED and why.lost == () and len(why.arrived) == 1
    assert why.ack is not None and why.ack_seen is None  # the server acknowledged it; the client never heard
    assert why.trigger is Trigger.TIMEOUT and why.backoff == 0
    assert why.wait == pytest.approx(0.3, abs=0.002)
    assert "which was not lost" in why.sentence() and "never reached the client" in why.sentence()


def test_a_late_ack_and_one_just_in_make_spurious_resends(crafted):
    late, just_in = crafted["ack late"], crafted["ack in"]
    assert late.fate is just_in.fate is Fate.DELIVERED
    assert late.label == "retransmission" and late.ack_seen > late.frame  # it came after the resend
    assert just_in.label == "spurious_retransmission" and just_in.ack_seen < just_in.frame
    assert "reached the client only after the resend" in late.sentence()
    assert "had already reached the client" in just_in.sentence()


def test_a_segment_neither_capture_saw_is_missed_by_the_capture(crafted):
    why = crafted["unseen"]
    assert why.fate is Fate.NOT_CAPTURED and why.repeats == () and why.arrived == ()
    # The run of duplicates of its ACK number: the server's answer to the spurious resend
    # just before, and the two asking for it; not the three that asked for "b" earlier.
    assert why.trigger is Trigger.DUPLICATE_ACKS and len(why.dup_acks) == 3
    assert why.wait is None
    assert "no capture saw an earlier copy" in why.sentence()


def test_a_lost_tail_resent_soon_is_a_tail_loss_probe(crafted):
    why = crafted["probe"]
    assert why.fate is Fate.LOST
    assert why.trigger is Trigger.TAIL_LOSS_PROBE and why.backoff is None
    assert why.wait == pytest.approx(0.03, abs=0.002)
    assert "a tail-loss probe" in why.sentence()
