"""Where Zeek's connections start and end: its timers, and a reused four-tuple.

Each case is a crafted capture.  Its Zeek connections follow from the rules in
``analysis.zeek_sessions`` (Zeek's ``AttemptTimer``, ``ConnDeleteTimer``,
``ResetTimer``, the inactivity timer and ``IsReuse``, with Zeek's default delays).
Both trackers must find them, and the capture stays what tshark says it is: the
same streams, whatever Zeek cuts inside them.
"""

from __future__ import annotations

import pytest

from analysis_helpers import TSHARK, C, S, Talk, assert_agrees_with_tshark, talk_and_close
from tcpchatx.analysis import analyze, analyze_plainly
from tcpchatx.analysis.export import to_json_header
from tcpchatx.analysis.text import format_summary
from tcpchatx.analysis.zeek_sessions import ZeekSessions

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def zeek_lines(t: Talk, tmp_path) -> list[list[tuple]]:
    """Per stream: Zeek's connections in it, as (first frame, last frame, conn_state,
    history, why it ended), the same by both trackers."""
    path = t.write(tmp_path / "case.pcap")
    found = []
    for read in (analyze, analyze_plainly):
        streams = []
        for c in read(path).connections:
            pieces = c.zeek_connections or []
            if pieces:  # the stream's own labels are its first piece's
                assert (c.conn_state, c.history) == (pieces[0].conn_state, pieces[0].history)
            streams.append([(z.first, z.last, str(z.conn_state), z.history, z.ended_by) for z in pieces]
                           or [(c.first_frame, c.last_frame, str(c.conn_state), c.history, None)])
        found.append(streams)
    fast, plain = found
    assert fast == plain
    return fast


def syn_retries(times: list[float]) -> Talk:
    """A client's SYN, sent again at each of ``times`` (seconds after the first), unanswered."""
    t = Talk()
    t.seg(C, "S", advance=False)
    start = t.time
    for at in times:
        t.seg(C, "S", advance=False, dt=start + at - t.time)
    return t


def chat_after(t: Talk) -> Talk:
    """The server answers the client's (last) SYN, and they talk."""
    t.seg(S, "SA", ack=t.next[C] + 1)
    t.next[C] += 1
    t.ack(C)
    return talk_and_close(t)


def test_an_unanswered_syn_ends_its_attempt_after_5_s(tmp_path):
    """Linux retries a SYN after 1, 3, 7 and 15 s: the attempt timer (5 s after the
    first SYN of each Zeek connection) cuts that into three attempts."""
    assert zeek_lines(syn_retries([1, 3, 7, 15]), tmp_path) == [[
        (1, 3, "S0", "S", "attempt"),
        (4, 4, "S0", "S", "attempt"),
        (5, 5, "S0", "S", None),
    ]]


def test_a_syn_answered_within_5_s_is_one_connection(tmp_path):
    t = chat_after(syn_retries([1, 3, 4.9]))
    assert zeek_lines(t, tmp_path) == [[(1, 11, "SF", "ShADaFf", None)]]


def test_an_answer_after_the_attempt_ended_belongs_to_the_next_connection(tmp_path):
    """The SYN sent again at 6 s starts a new Zeek connection, which the server answers."""
    t = chat_after(syn_retries([6]))
    assert zeek_lines(t, tmp_path) == [[
        (1, 1, "S0", "S", "attempt"),
        (2, 9, "SF", "ShADaFf", None),
    ]]


def closed_talk() -> Talk:
    t = Talk()
    t.handshake()
    return talk_and_close(t)


@pytest.mark.parametrize("after, expected", [
    (4.9, [(1, 9, "SF", "ShADaFf", None)]),
    (5.1, [(1, 8, "SF", "ShADaFf", "closed"), (9, 9, "SH", "F", None)]),
])
def test_a_packet_5_s_after_the_close_starts_a_new_connection(tmp_path, after, expected):
    """Zeek forgets a closed connection 5 s after the last packet of its close (the
    server's FIN here): the server's FIN sent again after that is a connection of its
    own, whose originator is the server (it spoke first)."""
    t = closed_talk()
    close = t.packets[6].time  # the server's FIN
    t.seg(S, "FA", seq=t.next[S] - 1, advance=False, dt=float(close) + after - t.time)
    assert zeek_lines(t, tmp_path) == [expected]


def test_a_reset_after_a_fin_ends_the_connection_5_s_later(tmp_path):
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)
    t.fin(C)
    t.seg(C, "R")  # its own FIN, then a RST: the server never closed
    t.ack(S, dt=6)
    lines = zeek_lines(t, tmp_path)
    assert [line[-1] for line in lines[0]] == ["reset", None]
    assert lines[0][0][2:4] == ("RSTO", "ShADaFR")


@pytest.mark.parametrize("silence, pieces", [(299.0, 1), (300.5, 2)])
def test_five_minutes_of_silence_ends_a_connection(tmp_path, silence, pieces):
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)
    t.send(C, b"bob\n", dt=silence)
    t.ack(S)
    t.fin(C)
    t.fin(S)
    t.ack(C)
    lines = zeek_lines(t, tmp_path)[0]
    assert len(lines) == pieces
    if pieces == 2:
        assert lines[0] == (1, 5, "S1", "ShADa", "inactivity")
        # The next one starts with data: no SYN, so a partial connection, roles by its first packet.
        assert lines[1] == (6, 10, "SF", "DaFfA", None)


def test_a_syn_ack_with_a_new_isn_reuses_a_half_open_four_tuple(tmp_path):
    """Backscatter: a server on port 80 answers SYNs it never got from us.  Zeek flips
    the roles (port 80 is a server's), so the client has sent nothing; each SYN-ACK
    with a new sequence number starts a new connection.  Wireshark keeps one stream."""
    t = Talk(server=("10.0.0.2", 80))
    t.seg(S, "SA", ack=1001)
    t.seg(S, "SA", seq=5000, ack=1001)  # the same again: no new connection
    t.seg(S, "SA", seq=90000, ack=1001)
    assert zeek_lines(t, tmp_path) == [[
        (1, 2, "OTH", "^h", "reuse"),
        (3, 3, "OTH", "^h", None),
    ]]


def test_a_four_tuple_reused_after_a_close_is_a_new_connection_to_both(tmp_path):
    """A SYN after a RST (even with the same ISN) or after a FIN close: a new stream to
    Wireshark, and a new connection to Zeek, at once (no timer needed)."""
    t = Talk()
    t.handshake()
    t.seg(S, "R")
    t.next = [1000, 5000]
    chat_after_handshake = closed_talk()
    for packet in chat_after_handshake.packets:
        packet.time = t.time + float(packet.time) - float(chat_after_handshake.packets[0].time) + 1
    t.packets += chat_after_handshake.packets
    assert zeek_lines(t, tmp_path) == [
        [(1, 4, "RSTR", "ShAr", None)],
        [(5, 12, "SF", "ShADaFf", None)],
    ]


@needs_tshark
def test_zeek_cuts_leave_the_streams_as_tshark_numbers_them(tmp_path):
    t = chat_after(syn_retries([6]))
    path = t.write(tmp_path / "case.pcap")
    for read in (analyze, analyze_plainly):
        analysis = read(path)
        assert len(analysis.connections) == 1
        assert assert_agrees_with_tshark(analysis, path) == 9


def test_the_summary_and_json_show_zeeks_pieces(tmp_path):
    path = syn_retries([1, 3, 7, 15]).write(tmp_path / "case.pcap")
    analysis = analyze(path)
    text = format_summary(analysis)
    assert "Zeek logs this stream as 3 connections" in text
    assert "frames 1-3: S0 S, ended: its SYN had no answer for 5 s" in text
    (conn,) = to_json_header(analysis)["connections"]
    assert [z["frames"] for z in conn["zeek_connections"]] == [[1, 3], [4, 4], [5, 5]]
    assert [z["ended_by"] for z in conn["zeek_connections"]] == ["attempt", "attempt", None]


def test_a_timer_fires_before_the_packet_at_its_time():
    """Zeek moves its clock to a packet's time and runs the timers due first: a SYN
    sent again exactly 5 s later already finds the attempt over."""
    sessions = ZeekSessions()
    for index, time in enumerate([0.0, 5.0]):
        sessions.feed(index, time, 0, 0x02, 1000, 0, 65535, 0, 0, 40000, 25000)
    assert [(e.first, e.last, e.ended_by) for e in sessions.entries()] == [(0, 0, "attempt"), (1, 1, None)]


def test_a_syn_after_the_client_spoke_is_not_the_answered_syn(tmp_path):
    """The SYN-ACK came first; the client then sent an ACK, and only then its SYN.  Zeek
    flips the roles for the SYN a first SYN-ACK answered only while the client is still
    silent (``IsReuse``): here the SYN starts a new connection.  Wireshark keeps one stream."""
    t = Talk()
    t.seg(S, "SA", ack=1001)
    t.ack(C, seq=1001)
    t.seg(C, "S", seq=1000, advance=False)
    assert zeek_lines(t, tmp_path) == [[
        (1, 2, "OTH", "Ha", "reuse"),
        (3, 3, "S0", "S", None),
    ]]
