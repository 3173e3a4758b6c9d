"""Zeek's scaled history letters: ``t`` (retransmission) and ``w`` (zero window).

Zeek writes each at the 1st, 10th, 100th... event of each side (``ScaledHistoryEntry``),
in the order its packets came, right after that packet's own flag letter.  Each case
is a crafted capture whose history follows from the rules in ``analysis.zeek`` (from
Zeek's ``TCPSessionAdapter``: ``update_history``, ``update_window``,
``update_last_seq``); the fast tracker and the plain one must both give it.
"""

from __future__ import annotations

import pytest
from scapy.all import TCP

from analysis_helpers import TSHARK, WELCOME, C, S, Talk, assert_agrees_with_tshark
from tcpchatx.analysis import analyze, analyze_plainly
from tcpchatx.analysis.zeek import scaled_events


def histories(t: Talk, tmp_path) -> set[tuple[str, str]]:
    """(conn_state, history) of the capture's one connection, by both trackers."""
    path = t.write(tmp_path / "case.pcap")
    found = set()
    for read in (analyze, analyze_plainly):
        (c,) = read(path).connections
        found.add((str(c.conn_state), c.history))
    return found


def closed(t: Talk) -> Talk:
    t.fin(C)
    t.fin(S)
    t.ack(C)
    return t


def test_the_events_that_write_a_scaled_letter():
    assert [n for n in range(1, 1001) if scaled_events(n)] == [1, 10, 100, 1000]


@pytest.mark.parametrize("resends, letters", [(1, "T"), (9, "T"), (10, "TT"), (99, "TT"), (100, "TTT")])
def test_retransmissions_write_t_at_the_1st_10th_and_100th(tmp_path, resends, letters):
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    for _ in range(resends):
        t.send(C, b"alice\n", seq=t.next[C] - 6)  # the same bytes again
    t.ack(S)
    assert histories(closed(t), tmp_path) == {("SF", f"ShAD{letters}aFf")}


def test_a_keep_alive_with_a_byte_is_a_retransmission_and_one_without_is_not(tmp_path):
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)
    t.ack(C, seq=t.next[C] - 1)  # Linux's keep-alive: one byte before, no payload
    t.send(S, b"x", seq=t.next[S] - 1, advance=False)  # the other kind: the last byte again
    t.ack(C)
    assert histories(closed(t), tmp_path) == {("SF", "ShADadtFf")}  # its own d, then t


def test_out_of_order_data_is_a_retransmission_to_zeek(tmp_path):
    """Zeek counts a segment below the furthest end already sent, whatever the reason."""
    t = Talk()
    t.handshake()
    first = t.next[C]
    t.send(C, b"bob\n", seq=first + 6)  # the second line first
    t.send(C, b"alice\n", seq=first, advance=False)
    t.next[C] = first + 10
    t.ack(S)
    assert histories(closed(t), tmp_path) == {("SF", "ShADTaFf")}


def test_nothing_from_a_side_that_reset_is_a_retransmission(tmp_path):
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    t.seg(C, "RA")
    t.send(C, b"alice\n", seq=t.next[C] - 6)  # after its own RST: not trusted
    assert histories(t, tmp_path) == {("RSTO", "ShADR")}


def test_a_syn_with_data_is_written_t_at_once(tmp_path):
    """A quirk of Zeek's rule: the SYN's own end is its first LastSeq, so its payload
    (TCP Fast Open) looks resent."""
    t = Talk()
    t.seg(C, "S", b"alice\n")
    t.seg(S, "SA")
    t.ack(C)
    assert histories(t, tmp_path) == {("S1", "SThA")}


def zero_window(t: Talk, side: int, count: int) -> None:
    for _ in range(count):
        t.ack(side)[TCP].window = 0


@pytest.mark.parametrize("count, letters", [(1, "w"), (9, "w"), (10, "ww")])
def test_zero_windows_write_w_at_the_1st_and_10th(tmp_path, count, letters):
    t = Talk()
    t.handshake()
    t.send(S, WELCOME)
    t.send(C, b"alice\n")
    zero_window(t, S, count)
    assert histories(closed(t), tmp_path) == {("SF", f"ShAdD{'a' + letters}Ff")}


def test_no_zero_window_on_a_reset_or_after_the_peers_fin(tmp_path):
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    t.fin(C)
    zero_window(t, S, 3)  # the peer (the client) has closed: not counted
    t.seg(S, "RA")[TCP].window = 0  # a RST: not counted
    assert histories(t, tmp_path) == {("RSTR", "ShADFar")}


def test_w_follows_its_packets_own_letter(tmp_path):
    """A zero-window SYN-ACK: its ``h``, then ``w``."""
    t = Talk()
    t.seg(C, "S")
    t.seg(S, "SA")[TCP].window = 0
    t.ack(C)
    assert histories(t, tmp_path) == {("S1", "ShwA")}


# --------------------------------------------------------------------------- roles (^)


def syn_ack_first(server_port: int) -> Talk:
    """A chat whose capture caught the SYN-ACK before the SYN it answers."""
    t = Talk(server=("10.0.0.2", server_port))
    t.handshake()
    t.packets[0].time, t.packets[1].time = t.packets[1].time, t.packets[0].time
    t.packets[0], t.packets[1] = t.packets[1], t.packets[0]
    t.send(S, WELCOME)
    t.send(C, b"alice\n")
    return closed(t)


@pytest.mark.parametrize("server_port, history", [
    (80, "^hSAdDFf"),  # a likely server port: Zeek flips at the SYN-ACK, which the server sent
    (25000, "Hs^AdDFf"),  # not one: the SYN-ACK's sender is Zeek's originator until the SYN comes
])
def test_a_syn_ack_before_its_syn_is_one_connection(tmp_path, server_port, history):
    t = syn_ack_first(server_port)
    path = t.write(tmp_path / "synack-first.pcap")
    for read in (analyze, analyze_plainly):
        a = read(path)
        (c,) = a.connections
        assert (c.client, c.server) == (("10.0.0.1", 40000), ("10.0.0.2", server_port))
        assert (str(c.conn_state), c.history) == ("SF", history)
    if TSHARK:
        assert assert_agrees_with_tshark(analyze(path), path) == len(t.packets)  # one tcp.stream


@pytest.mark.parametrize("ports, first_from, client_port, history", [
    ((40000, 80), S, 40000, "^dDaFf"),  # data from a likely server port: flipped
    ((40000, 7000), S, 7000, "DdAfF"),  # not a likely port: the first sender is the originator
    ((8080, 443), S, 8080, "^dDaFf"),  # both likely: from the lower port, flipped
    ((443, 8080), S, 8080, "DdAfF"),  # both likely, from the higher: not
])
def test_without_a_syn_zeek_decides_the_roles_by_the_ports(tmp_path, ports, first_from, client_port, history):
    t = Talk(client=("10.0.0.1", ports[0]), server=("10.0.0.2", ports[1]))
    t.send(first_from, b"*** hello\n")
    t.send(1 - first_from, b"hi\n")
    t.ack(first_from)
    t.fin(C)
    t.fin(S)
    for read in (analyze, analyze_plainly):
        (c,) = read(t.write(tmp_path / "midstream.pcap")).connections
        assert c.client[1] == client_port
        assert (str(c.conn_state), c.history) == ("SF", history)


@pytest.mark.parametrize("server_port, history", [(80, "^h"), (25000, "H")])
def test_a_syn_ack_alone(tmp_path, server_port, history):
    t = Talk(server=("10.0.0.2", server_port))
    t.seg(S, "SA", ack=1001)
    assert histories(t, tmp_path) == {("OTH", history)}


# --------------------------------------------------------------------------- content gaps (g)


def with_gaps(gaps: int, acked: bool = True) -> Talk:
    """The server sends ``gaps`` pairs of segments whose first the capture missed; the
    client acknowledges each pair (across the bytes it never saw)."""
    t = Talk()
    t.handshake()
    for _ in range(gaps):
        t.send(S, b"x" * 100)
        t.packets.pop()  # not captured
        t.send(S, b"y" * 100)
        if acked:
            t.ack(C)
    return t


@pytest.mark.parametrize("gaps, letters", [(1, "g"), (9, "g"), (10, "gg")])
def test_an_ack_across_bytes_never_seen_is_a_content_gap(tmp_path, gaps, letters):
    """Zeek's example: the server's segment was not captured, its next one was, and the
    client's ACK covers both: a gap, charged to the server (``g``)."""
    assert histories(closed(with_gaps(gaps)), tmp_path) == {("SF", f"ShAd{letters}Ff")}


def test_no_gap_until_an_ack_covers_the_missing_bytes(tmp_path):
    t = with_gaps(1, acked=False)
    t.ack(C, ack=t.next[S] - 200)  # acknowledges only what came before the hole
    assert histories(t, tmp_path) == {("S1", "ShAd")}
    t.fin(C)  # its ACK covers the hole: the gap, right after the FIN's letter
    assert histories(t, tmp_path) == {("S2", "ShAdFg")}


def test_no_gap_in_a_partial_connection_or_on_a_reset(tmp_path):
    partial = Talk()
    partial.send(S, b"x" * 100)
    partial.packets.pop()
    partial.send(S, b"y" * 100)
    partial.ack(C)
    assert histories(partial, tmp_path) == {("OTH", "Da")}  # the first sender is the originator here
    reset = with_gaps(1, acked=False)
    reset.seg(C, "RA")  # its ACK covers the hole, but the client is RESET by then
    assert histories(reset, tmp_path) == {("RSTO", "ShAdR")}


# --------------------------------------------------------------------------- fast and plain, on odd captures


def midstream_older_first(t: Talk) -> None:
    """The capture starts mid-stream, and an earlier segment arrives late."""
    t.send(C, b"B" * 100, seq=1100, advance=False)
    t.send(C, b"A" * 100, seq=1000, advance=False)
    t.ack(S, ack=1200)


def past_4_gib(t: Talk) -> None:
    """A side that sends across 4 GiB of sequence space (its numbers wrap)."""
    t.handshake()
    seq = 1001
    for _ in range(7):
        t.send(C, b"x" * 10, seq=seq & 0xFFFFFFFF)
        seq += 1_000_000_000
    t.ack(S)


def synack_again(t: Talk) -> None:
    """A second SYN-ACK, then a FIN, then data that acknowledges both."""
    t.handshake()
    t.seg(S, "SA")
    t.fin(S)
    t.send(C, b"x" * 60)


def syn_fin_then_synack(t: Talk) -> None:
    """A SYN+FIN first; then a SYN-ACK from the same side past it; then data below its end."""
    t.seg(C, "SF", seq=1001)
    t.send(S, b"hello\n")
    t.seg(C, "SA", seq=1003, ack=t.next[S])
    t.send(C, b"ab", seq=1002)


def bare_ack_ahead(t: Talk) -> None:
    """A bare ACK whose sequence number skips bytes never captured, which the peer then
    acknowledges: a content gap, though no captured segment carried a byte near it."""
    t.handshake()
    t.ack(C, seq=t.next[C] + 38)  # (moves the client's next sequence number on by 38)
    t.ack(S)
    t.send(S, b"hello\n")


def resend_acking_the_fin(t: Talk) -> None:
    """The server closes; the client's next segment sends old bytes again and is the first
    to acknowledge the server's FIN: the state table calls it that, and Zeek a ``t``."""
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)
    t.fin(S)
    t.send(C, b"e\n", seq=t.next[C] - 2, advance=False)


def fin_ahead(t: Talk) -> None:
    """A FIN whose sequence number skips bytes never captured; the peer's FIN acknowledges them."""
    t.handshake()
    t.fin(C, seq=t.next[C] + 34)
    t.seg(S, "FPA", b"bye\n")
    t.ack(S)


@pytest.mark.parametrize("build, expected", [
    (midstream_older_first, ("OTH", "DTa")),  # Zeek: an end at or below the furthest is a t
    (past_4_gib, None),  # positions wrap: no false t, as a signed 32-bit delta sees it
    (synack_again, None),
    (syn_fin_then_synack, None),  # a SYN's or FIN's end counts in Zeek's LastSeq
    (bare_ack_ahead, ("S1", "ShAaGd")),
    (resend_acking_the_fin, ("S3", "ShADafT")),
    (fin_ahead, ("SF", "ShAFfGa")),
])
def test_fast_and_plain_agree_on_odd_sequences(tmp_path, build, expected):
    """Cases a randomised comparison of the two trackers found."""
    t = Talk()
    build(t)
    found = histories(t, tmp_path)
    assert len(found) == 1, found  # one answer: the fast tracker's and the plain one's
    if expected:
        assert found == {expected}


def test_a_syn_ack_with_a_new_isn_from_an_established_side_writes_no_second_h(tmp_path):
    """Zeek counts a SYN's sequence number from the side's StartSeq, which a SYN from an
    established side moves to itself (``init_endpoint``): the new ISN is 0 again, as the
    last one was, so no second ``h``; and the side's bytes count from the new ISN, so the
    client's ACK of it skips nothing (no ``g``)."""
    t = Talk()
    t.seg(C, "S")
    t.seg(S, "SA")
    t.seg(S, "SA", seq=90000, ack=1001)  # a new ISN
    t.next[S] = 90001
    t.ack(C)
    assert histories(closed(t), tmp_path) == {("SF", "ShAFf")}


def test_a_syn_and_a_syn_ack_from_one_side_share_one_mark(tmp_path):
    """A side that sent a SYN writes ``h`` for its SYN-ACK only at a new sequence number
    (Zeek's one ``HIST_SYN_PKT`` mark per side)."""
    t = Talk()
    t.seg(C, "S", advance=False)
    t.seg(C, "SA", ack=5001)  # the same sequence number: no letter
    t.seg(S, "SA")
    t.ack(C)
    assert {history for _, history in histories(t, tmp_path)} == {"ShA"}
