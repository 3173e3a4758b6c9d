"""The link's script, decided without sockets: made-up frames in, delivery times out."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from tcpchatx.netlab.script import Direction, ScriptError, parse, tcp_segment


def frame(payload: bytes = b"", flags: str = "PA", sport: int = 40000, dport: int = 25000, seq: int = 1) -> bytes:
    return bytes(Ether() / IP(src="10.77.1.2", dst="10.77.2.2") / TCP(sport=sport, dport=dport, flags=flags,
                                                                     seq=seq) / payload)


def link(**spec) -> Direction:
    return parse({"to_server": spec})["to_server"]


def test_a_frame_waits_the_delay():
    assert link(delay_ms=25).decide(frame(b"hi\n"), now=10.0) == [pytest.approx(10.025)]
    assert link().decide(frame(b"hi\n"), now=10.0) == [10.0]


def test_the_nth_data_segment_is_dropped_and_acks_do_not_count():
    line = link(events=[{"do": "drop", "data_segment": 3}])
    sent = [frame(b"one\n"), frame(flags="A"), frame(b"two\n"), frame(flags="A"), frame(b"three\n"), frame(b"four\n")]
    delivered = [bool(line.decide(f, now=0.0)) for f in sent]
    assert delivered == [True, True, True, True, False, True]
    assert [entry["event"] for entry in line.log] == ["drop data segment 3"]
    assert line.log[0]["length"] == len(b"three\n")


def test_times_drops_that_many():
    line = link(events=[{"do": "drop", "data_segment": 2, "times": 2}])
    assert [bool(line.decide(frame(b"x"), 0.0)) for _ in range(5)] == [True, False, False, True, True]


def test_the_segment_carrying_a_text_is_dropped_once():
    line = link(events=[{"do": "drop", "text": "secret"}])
    sent = [frame(b"hello\n"), frame(b"my secret\n"), frame(b"my secret\n")]
    assert [bool(line.decide(f, 0.0)) for f in sent] == [True, False, True]  # the resend gets through


def test_the_next_syn_is_dropped_and_the_port_narrows_it():
    line = link(events=[{"do": "drop", "syn": True, "port": 25001}])
    assert line.decide(frame(flags="S", dport=25000), 0.0)
    assert not line.decide(frame(flags="S", dport=25001), 0.0)
    assert line.decide(frame(flags="S", dport=25001), 0.0)  # the SYN sent again


def test_a_held_segment_is_overtaken():
    line = link(delay_ms=10, events=[{"do": "hold", "data_segment": 1, "hold_ms": 5}])
    held = line.decide(frame(b"first\n"), 0.000)
    behind = line.decide(frame(b"second\n"), 0.001)
    assert behind[0] < held[0]
    assert held == [pytest.approx(0.015)] and behind == [pytest.approx(0.011)]


def test_a_duplicated_segment_is_delivered_twice():
    assert len(link(events=[{"do": "duplicate", "data_segment": 1}]).decide(frame(b"x"), 0.0)) == 2


def test_a_break_loses_everything_for_its_time_then_heals():
    line = link(events=[{"do": "break", "text": "now", "for_ms": 100}])
    assert line.decide(frame(b"before\n"), 0.0)
    assert not line.decide(frame(b"now\n"), 1.0)  # the frame that breaks it is lost too
    assert not line.decide(frame(flags="A"), 1.05)  # and everything for 100 ms
    assert not line.decide(frame(b"now\n"), 1.099)  # (a resend of the same line too)
    assert line.decide(frame(b"now\n"), 1.1)  # healed
    assert [entry["event"] for entry in line.log] == ["break the segment carrying 'now': the path breaks for 100 ms"]


def test_random_loss_follows_its_seed():
    frames = [frame(b"x", seq=k) for k in range(5000)]
    one = link(loss=0.02, seed=7)
    first = [not one.decide(f, 0.0) for f in frames]
    again = link(loss=0.02, seed=7)
    assert [not again.decide(f, 0.0) for f in frames] == first  # the same seed loses the same frames
    other = link(loss=0.02, seed=8)
    assert [not other.decide(f, 0.0) for f in frames] != first
    assert 50 <= sum(first) <= 150  # about 2% of 5,000


def test_jitter_never_reorders():
    line = link(delay_ms=20, jitter_ms=15, seed=3)
    times = [line.decide(frame(b"x"), k * 0.001)[0] for k in range(500)]
    assert times == sorted(times)
    gaps = {round(t - k * 0.001, 4) for k, t in enumerate(times)}
    assert len(gaps) > 10 and min(gaps) >= 0.005 - 1e-9  # it does vary, never under delay - jitter


def test_frames_without_tcp_pass_and_count_for_nothing():
    arp = bytes(Ether() / ARP())
    line = link(events=[{"do": "drop", "data_segment": 1}])
    assert tcp_segment(arp) is None and line.decide(arp, 0.0) == [0.0]
    assert not line.decide(frame(b"x"), 0.0)


@pytest.mark.parametrize(("script", "says"), [
    ({"to_sever": {}}, "unknown direction"),
    ({"to_server": {"delay": 5}}, "unknown key"),
    ({"to_server": {"delay_ms": -1}}, "cannot be negative"),
    ({"to_server": {"loss": 2}}, "between 0 and 1"),
    ({"to_server": {"loss": "2%"}}, "is a number"),
    ({"to_server": {"events": [{"do": "lose", "data_segment": 1}]}}, "'do' is one of"),
    ({"to_server": {"events": [{"do": "drop"}]}}, "exactly one of"),
    ({"to_server": {"events": [{"do": "drop", "data_segment": 1, "syn": True}]}}, "exactly one of"),
    ({"to_server": {"events": [{"do": "drop", "data_segment": 0}]}}, "counts from 1"),
    ({"to_server": {"events": [{"do": "hold", "data_segment": 1}]}}, "hold_ms > 0"),
    ({"to_server": {"events": [{"do": "break", "data_segment": 1}]}}, "for_ms > 0"),
    ({"to_server": {"events": [{"do": "drop", "text": ""}]}}, "non-empty"),
    ([1, 2], "mapping of directions"),
])
def test_a_bad_script_says_what_is_wrong(script, says):
    with pytest.raises(ScriptError, match=says):
        parse(script)
