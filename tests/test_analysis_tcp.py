"""The TCP tracker on crafted conversations: steps, close kinds, Zeek labels, and
tshark as the oracle for flags, relative numbers, lengths and completeness."""

from __future__ import annotations

import pytest

from analysis_helpers import TSHARK, C, S, Talk, assert_agrees_with_tshark, merge, write_capture
from tcpchatx.analysis import CLOSE_KINDS, ZEEK_CONN_STATES, analyze
from tcpchatx.analysis.states import NEXT_STATE, STEPS, TABLE, SegmentKind, State

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def four_way(t: Talk):
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)
    t.send(S, b"--- Welcome, alice! Online: nobody else yet.\n")
    t.ack(C)
    t.fin(C)
    t.ack(S)
    t.fin(S)
    t.ack(C)


def three_way(t: Talk):
    t.handshake()
    t.send(C, b"hi\n")
    t.ack(S)
    t.fin(C)
    t.fin(S)  # its ACK covers the client's FIN: piggybacked
    t.ack(C)


def simultaneous(t: Talk):
    t.handshake()
    c_before, s_before = t.next
    t.fin(C, ack=s_before)
    t.fin(S, ack=c_before)  # sent before the client's FIN arrived
    t.ack(C)
    t.ack(S)


def rst_by_client(t: Talk):
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)
    t.seg(C, "RA")


def rst_by_server(t: Talk):
    t.handshake()
    t.send(C, b"alice\n")
    t.seg(S, "R", ack=0)


def refused(t: Talk):
    t.seg(C, "S")
    t.seg(S, "RA", seq=0)


def syn_only(t: Talk):
    t.seg(C, "S")
    t.seg(C, "S", seq=t.next[C] - 1, dt=1.0)  # the same SYN again, a second later


def half_close(t: Talk):
    t.handshake()
    t.fin(C)
    t.ack(S)
    t.send(S, b"*** still talking\n")
    t.ack(C)


def mid_capture(t: Talk):
    t.send(C, b"hello\n")
    t.ack(S)
    t.send(S, b"<bob> hi\n")
    t.ack(C)


def open_connection(t: Talk):
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)


SCENARIOS = {
    # name: (script, conn_state, history, close_kind, active_closer)
    "four-way": (four_way, "SF", "ShADadFf", "four-way", "originator"),
    "three-way": (three_way, "SF", "ShADaFf", "three-way", "originator"),
    "simultaneous": (simultaneous, "SF", "ShAFfa", "simultaneous", "both"),
    "rsto": (rst_by_client, "RSTO", "ShADaR", "reset", "originator"),
    "rstr": (rst_by_server, "RSTR", "ShADr", "reset", "responder"),
    "refused": (refused, "REJ", "Sr", "refused", "responder"),
    "syn-only": (syn_only, "S0", "S", "incomplete", None),
    "half-close": (half_close, "S2", "ShAFad", "half-closed", "originator"),
    "mid-capture": (mid_capture, "OTH", "DadA", "incomplete", None),
    "open": (open_connection, "S1", "ShADa", "open", None),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_connection_labels(tmp_path, name):
    script, conn_state, history, close_kind, closer = SCENARIOS[name]
    t = Talk()
    script(t)
    a = analyze(t.write(tmp_path / f"{name}.pcap"))
    (conn,) = a.connections
    assert (conn.conn_state, conn.history, conn.close_kind, conn.active_closer) == (
        conn_state, history, close_kind, closer)
    assert conn.client == ("10.0.0.1", 40000) and conn.server == ("10.0.0.2", 25000)
    assert conn.conn_state in ZEEK_CONN_STATES and conn.close_kind in CLOSE_KINDS


@needs_tshark
@pytest.mark.parametrize("name", SCENARIOS)
def test_agrees_with_tshark(tmp_path, name):
    t = Talk()
    SCENARIOS[name][0](t)
    path = t.write(tmp_path / f"{name}.pcap")
    assert assert_agrees_with_tshark(analyze(path), path) == len(t.packets)


def steps(a):
    return [a.step(i).name for i in range(len(a.packets))]


def test_four_way_steps_and_notes(tmp_path):
    t = Talk(isn=(123, 7000))
    four_way(t)
    a = analyze(t.write(tmp_path / "f.pcap"))
    assert steps(a) == ["SYN", "SYN-ACK", "ACK (handshake)", "DATA", "ACK", "DATA", "ACK",
                        "FIN", "ACK of FIN", "FIN", "ACK of FIN"]
    assert list(a.phase) == ["handshake"] * 3 + ["data"] * 4 + ["teardown"] * 4
    assert a.note(0) == ("Client asks to open a connection to port 25000; "
                         "its initial sequence number (ISN) is 123.")
    assert a.note(1).endswith("picks its own ISN, 7000.")
    assert a.connections[0].isn == (123, 7000)
    assert a.connections[0].final_state == "TIME_WAIT"
    assert list(a.tracking.direction) == [0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0]


def test_three_way_close_is_piggybacked(tmp_path):
    t = Talk()
    three_way(t)
    a = analyze(t.write(tmp_path / "f.pcap"))
    assert steps(a)[-3:] == ["FIN", "FIN+ACK (piggybacked ACK of the peer's FIN)", "ACK of FIN"]
    assert "3-segment close" in a.note(len(a.packets) - 2)
    assert "client's FIN" in a.note(len(a.packets) - 2)


def test_simultaneous_close_goes_through_closing(tmp_path):
    t = Talk()
    simultaneous(t)
    a = analyze(t.write(tmp_path / "f.pcap"))
    assert steps(a)[3:] == ["FIN", "FIN (simultaneous close)", "ACK of FIN", "ACK of FIN"]
    assert [State(s).name for s in a.tracking.state_before[3:]] == [
        "ESTABLISHED", "FIN_WAIT_1", "CLOSING", "LAST_ACK"]


def test_refused_and_reset_phases(tmp_path):
    t = Talk()
    refused(t)
    a = analyze(t.write(tmp_path / "r.pcap"))
    assert steps(a) == ["SYN", "RST+ACK"]
    assert list(a.phase) == ["handshake", "reset"]
    assert "connection refused" in a.note(1)


def test_retransmissions_are_named(tmp_path):
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    t.send(C, b"alice\n", seq=t.next[C] - 6)  # the same bytes again
    t.ack(S)
    t.fin(C)
    t.fin(C, seq=t.next[C] - 1)  # FIN again
    t.ack(S)
    path = t.write(tmp_path / "rx.pcap")
    a = analyze(path)
    assert steps(a)[3:] == ["DATA", "DATA (retransmission)", "ACK", "FIN", "FIN (retransmission)",
                            "ACK of FIN"]
    if TSHARK:
        assert_agrees_with_tshark(a, path)


def test_port_reuse_makes_two_connections(tmp_path):
    first, second = Talk(isn=(1000, 5000)), Talk(isn=(90000, 60000), start=100 + Talk().time)
    four_way(first)
    four_way(second)
    path = tmp_path / "reuse.pcap"
    write_capture(path, merge(first, second))
    a = analyze(path)
    assert [c.conn_state for c in a.connections] == ["SF", "SF"]
    assert [c.first_frame for c in a.connections] == [1, 12]
    if TSHARK:
        assert_agrees_with_tshark(a, path)


def test_same_isn_after_close_is_still_a_new_connection(tmp_path):
    first, second = Talk(), Talk(start=T_LATER)
    four_way(first)
    four_way(second)
    path = tmp_path / "reuse.pcap"
    write_capture(path, merge(first, second))
    assert len(analyze(path).connections) == 2


T_LATER = 1_700_000_500.0


def test_many_connections_interleaved(tmp_path):
    """Several clients at once: each connection is tracked on its own."""
    talks = [Talk(client=("10.0.0.1", 40000 + i), isn=(1000 * i + 1, 77 * i + 5),
                  start=1_700_000_000.0 + i * 0.0003) for i in range(5)]
    for i, talk in enumerate(talks):
        (four_way, three_way, simultaneous, rst_by_client, half_close)[i](talk)
    path = tmp_path / "many.pcap"
    write_capture(path, merge(*talks))
    a = analyze(path)
    assert [c.close_kind for c in a.connections] == [
        "four-way", "three-way", "simultaneous", "reset", "half-closed"]
    if TSHARK:
        assert_agrees_with_tshark(a, path)


def test_ipv6_and_cooked_capture(tmp_path):
    t = Talk(client=("fd00::1", 40000), server=("fd00::2", 25000), v6=True, link="sll")
    four_way(t)
    path = t.write(tmp_path / "v6.pcap")
    a = analyze(path)
    (conn,) = a.connections
    assert conn.client == ("fd00::1", 40000) and conn.conn_state == "SF"
    if TSHARK:
        assert_agrees_with_tshark(a, path)


def test_sequence_numbers_wrap_around(tmp_path):
    t = Talk(isn=(0xFFFFFFF0, 0xFFFFFFFE))
    four_way(t)
    path = t.write(tmp_path / "wrap.pcap")
    a = analyze(path)
    assert a.connections[0].close_kind == "four-way"
    assert a.tracking.rel_seq[3] == 1 and a.tracking.rel_seq[-1] == 8
    if TSHARK:
        assert_agrees_with_tshark(a, path)


def test_table_is_complete_and_consistent():
    """Every state answers every kind; every target state exists; names are unique per pair."""
    for state in State:
        for kind in SegmentKind:
            assert 0 <= NEXT_STATE[state, kind] < len(State)
    for state, row in TABLE.items():
        for kind, step in row.items():
            assert step.phase in ("handshake", "data", "teardown", "reset"), (state, kind)
            assert "{" not in step.name
    assert {s.name for s in STEPS} >= {"SYN", "SYN-ACK", "ACK (handshake)", "DATA", "ACK", "FIN",
                                       "ACK of FIN", "FIN+ACK (piggybacked ACK of the peer's FIN)",
                                       "RST", "RST+ACK"}


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_a_capture_without_tcp_has_no_connections(tmp_path, fmt):
    from scapy.all import IP, UDP, Ether

    path = write_capture(tmp_path / f"udp.{fmt}", [Ether() / IP() / UDP() / b"hi"] * 3, fmt)
    a = analyze(path)
    assert len(a) == 3 and a.connections == [] and a.messages == []
    assert [a.step(i) for i in range(3)] == [None] * 3
