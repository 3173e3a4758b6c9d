"""Outputs: DataFrames, JSON, text summary and ladder, annotated pcapng."""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from scapy.all import ARP, IP, UDP, Ether, Raw

from analysis_helpers import T0, TSHARK, C, S, Talk, tshark_comments, write_capture
from tcpchatx.analysis import (
    CLOSE_KINDS,
    ZEEK_CONN_STATES,
    analyze,
    export,
    format_ladder,
    format_summary,
    read_packets,
    to_json,
    write_annotated,
    write_json,
)
from tcpchatx.analysis.packets import exact_ratio, unique_codes
from tcpchatx.analysis.text import percentile

REFERENCES = Path(__file__).resolve().parents[1] / "captures"


def chat_talk() -> Talk:
    t = Talk()
    t.handshake()
    t.send(S, b"*** Welcome to TCPChatX! Choose a nickname.\n")
    t.send(C, b"alice\n")
    t.send(S, b"--- Welcome, alice! Online: nobody else yet.\n")
    t.send(C, b"hello\n/online\n")
    t.fin(C)
    t.fin(S)
    t.ack(C)
    return t


@pytest.fixture
def capture(tmp_path):
    return chat_talk().write(tmp_path / "chat.pcapng", fmt="pcapng", nano=True)


def test_tables(capture):
    a = analyze(capture)
    packets = a.packets_df()
    assert len(packets) == 10
    assert list(packets.columns[:8]) == ["frame", "time", "src", "sport", "dst", "dport", "flags", "seq"]
    assert list(packets["flags"][:3]) == ["S", "SA", "A"]
    assert packets.step.iloc[-2] == "FIN+ACK (piggybacked ACK of the peer's FIN)"
    assert packets.chat.iloc[4] == "alice"
    assert packets.chat.iloc[6] == "hello | /online"
    conns = a.connections_df()
    assert conns.loc[0, "nick"] == "alice" and conns.loc[0, "close_kind"] == "three-way"
    assert conns.loc[0, "conn_state"] == "SF" and conns.loc[0, "active_closer"] == "originator"
    lines = a.lines_df()
    assert list(lines.kind) == ["notice", "nickname", "reply", "message", "command"]


def test_json(capture):
    a = analyze(capture)
    data = json.loads(json.dumps(to_json(a)))
    assert set(data) == {"format", "capture", "server", "connections", "packets", "lines", "messages"}
    (conn,) = data["connections"]
    assert conn["conn_state_meaning"] == ZEEK_CONN_STATES["SF"]
    assert conn["close_kind_meaning"] == CLOSE_KINDS["three-way"]
    assert data["packets"][0]["step"] == "SYN" and data["packets"][0]["direction"] == "originator"
    assert data["packets"][0]["ts_per_second"] == 10**9
    assert data["messages"][0]["text"] == "hello"
    assert data["packets"][6]["lines"] == [3, 4]


def test_summary_and_ladder(capture):
    a = analyze(capture)
    summary = format_summary(a)
    assert "client 10.0.0.1:40000 (alice) -> server 10.0.0.2:25000" in summary
    assert "close: three-way, closed first by the originator" in summary
    assert "conn_state SF" in summary and "history ShAdDFf" in summary
    ladder = format_ladder(a)
    rows = ladder.splitlines()
    assert rows[0].startswith("frame") and "10.0.0.2:25000" in rows[0]
    assert "-> " not in rows[1] and rows[1].rstrip().endswith(">|")  # SYN: client -> server
    assert "(SYN)" in rows[1] and "<" in rows[2] and "(SYN-ACK)" in rows[2]
    assert '"hello"' in ladder and '"/online"' in ladder
    short = format_ladder(a, max_packets=3)
    assert short.splitlines()[-1] == "... 7 more packets"


def test_summary_of_a_big_capture_lists_the_first_items_and_counts_the_rest():
    """A million-packet capture's summary was 16 MB; now the first N of each, then counts."""
    a = analyze(REFERENCES / "chat.pcapng")  # 3 connections, 6 messages
    full = format_summary(a, max_items=None)
    assert full == format_summary(a)  # small captures: everything, as before
    short = format_summary(a, max_items=1)
    assert short.count("\nconnection ") == 1 and full.count("\nconnection ") == 3
    assert "... and 2 more connection(s). All 3: close four-way 3; Zeek conn_state SF 3" in short
    assert short.count("\n  frame ") == 1 and full.count("\n  frame ") == len(a.messages) == 6
    deliveries = sum(len(m.deliveries) for m in a.messages)
    assert f"... and 5 more. All 6: {deliveries} deliveries; fan-out latency p50 " in short
    assert short.rstrip().endswith("--json gives everything as JSON)")
    assert short.splitlines()[0] == full.splitlines()[0]


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000, 12345])
def test_the_summary_percentile_is_numpys_bit_for_bit(n):
    rng = np.random.default_rng(n)
    for scale in (1e-3, 1.0, 1e3):
        values = rng.exponential(3.0, n) * scale
        for q in (0, 1, 25, 50, 75, 99, 99.9, 100):
            assert percentile(values, q) == float(np.percentile(values, q)), (n, scale, q)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_annotated_pcapng_shows_comments_in_tshark(capture, tmp_path):
    out = tmp_path / "annotated.pcapng"
    out.write_bytes(b"old")  # replaced atomically
    write_annotated(capture, out)
    comments = tshark_comments(out)
    assert sorted(comments) == list(range(1, 11))
    assert comments[1].startswith("SYN: Client asks to open a connection")
    assert 'chat (nickname): "alice"' in comments[5]
    assert 'chat (message): "hello"' in comments[7] and 'chat (command): "/online"' in comments[7]
    assert "3-segment close" in comments[9]
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []
    # same packets, same nanosecond timestamps
    before, after = read_packets(capture), read_packets(out)
    assert list(after.ts_ticks) == list(before.ts_ticks) and set(after.ts_tps) == {10**9}
    assert list(after.seq) == list(before.seq)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_the_expert_analysis_in_the_tables_text_and_comments(tmp_path):
    """A story of loss and windows (tests/test_tcp_expert.py): every output names
    the findings - the packets' table, the summary's counts, the ladder's and the
    comments' marks as Wireshark's Info column shows them - the fast way and the plain."""
    import pandas as pd
    from test_tcp_expert import loss_and_windows

    from tcpchatx.analysis import analyze_plainly

    t = Talk()
    loss_and_windows(t)
    path = t.write(tmp_path / "story.pcap")
    a = analyze(path)
    df = a.packets_df()
    pd.testing.assert_frame_equal(df, analyze_plainly(path).packets_df())
    dup, fast = df.iloc[6], df.iloc[9]  # frames 7 and 10
    assert (dup.analysis, dup.info_marks) == (("duplicate_ack",), "[TCP Dup ACK 5#1]")
    assert (dup.duplicate_ack_of_frame, dup.duplicate_ack_number) == (5, 1)
    assert fast.analysis == ("retransmission", "fast_retransmission")
    assert (fast.info_marks, fast.bytes_in_flight) == ("[TCP Fast Retransmission]", 200)
    assert (df.acks_frame[1], df.ack_rtt[1]) == (1, 0.001)  # the SYN-ACK acknowledges the SYN
    assert pd.isna(df.acks_frame[0]) and np.isnan(df.ack_rtt[0]) and pd.isna(df.duplicate_ack_number[0])
    assert df.analysis.map(lambda found: "retransmission" in found).sum() == 2
    summary = format_summary(a)
    assert "TCP expert analysis (as in Wireshark): 1 [TCP Retransmission], 1 [TCP Fast Retransmission]," in summary
    assert "3 [TCP Dup ACK]" in summary
    rows = format_ladder(a).splitlines()
    assert rows[7].endswith("-|  [TCP Dup ACK 5#1]") and rows[1].endswith(">|")
    out = write_annotated(a, tmp_path / "story.pcapng")
    comments = tshark_comments(out)
    assert "expert analysis: [TCP ZeroWindowProbeAck] [TCP ZeroWindow]" in comments[17]
    assert "expert analysis" not in comments[1]


def test_annotated_copy_of_a_microsecond_pcap(tmp_path):
    path = chat_talk().write(tmp_path / "c.pcap")
    out = write_annotated(analyze(path), tmp_path / "c.pcapng")
    after = read_packets(out)
    assert set(after.ts_tps) == {10**6}
    assert list(after.ts_ticks) == list(read_packets(path).ts_ticks)


# --------------------------------------------------------------------------- write_json


def json_text(a, notes: bool = True) -> str:
    """What ``write_json`` must write, the plain way: ``to_json``, then one
    ``json.dumps`` per row, in write_json's layout."""
    data = to_json(a, notes)
    out = ["{\n"]
    for key in ("format", "capture", "server"):
        out.append(f" {json.dumps(key)}: {json.dumps(data[key])},\n")
    for key in ("connections", "packets", "lines", "messages"):
        rows = data[key]
        out.append(f' "{key}": [')
        out.append(",".join("\n  " + json.dumps(row, separators=(",", ":")) for row in rows))
        out.append(("\n " if rows else "") + ("]\n}\n" if key == "messages" else "],\n"))
    return "".join(out)


def written_json(a, notes: bool = True) -> str:
    out = io.StringIO()
    write_json(a, out, notes)
    return out.getvalue()


NUMBER = re.compile(r'("(?:[^"\\]|\\.)*")|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


def assert_writes_what_json_dumps_writes(a, notes: bool = True) -> None:
    """Microsecond captures: the very bytes of ``json_text``.  Finer clocks: the same
    floats (exactly: ``json.loads`` equality) and otherwise the same text; only the
    digits of some floats differ (export._seconds writes a nanosecond time as its
    exact decimal)."""
    written, plain = written_json(a, notes), json_text(a, notes)
    if set(np.unique(a.packets.ts_tps).tolist()) <= {10**k for k in range(7)}:
        assert written == plain
        return
    assert json.loads(written) == json.loads(plain) == to_json(a, notes)
    numbers_as_zero = lambda text: NUMBER.sub(lambda m: m.group(1) or "0", text)  # noqa: E731
    assert numbers_as_zero(written) == numbers_as_zero(plain)


CAPTURES = sorted(REFERENCES.glob("*.pcapng"))


@pytest.mark.parametrize("path", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_write_json_writes_what_json_dumps_writes(path):
    a = analyze(path)
    for notes in (True, False):
        assert_writes_what_json_dumps_writes(a, notes)


def mixed_capture(path, fmt: str, nano: bool) -> Path:
    """Everything the JSON writer treats apart: non-TCP frames, IPv6, invalid lines,
    a private message, a frame carrying three lines, a line over two frames, text
    to escape (and with "%" in it), a timestamp on a whole second."""
    alice = Talk()
    bob = Talk(client=("10.0.0.3", 40001), isn=(7000, 9000), start=T0 + 0.0004)
    carol = Talk(client=("fd00::1", 40002), server=("fd00::2", 25000), v6=True, start=T0 + 0.0007)
    for t in (alice, bob, carol):
        t.handshake()
    alice.send(C, b"alice\n")
    alice.send(S, b"--- Welcome, alice! Online: nobody else yet.\n")
    bob.send(C, b"bob\n")
    bob.send(S, b"--- Welcome, bob! Online: alice.\n")
    carol.send(C, b"carol\n")
    alice.send(C, b'100% "sure" \\ caf\xc3\xa9 %d\n')
    bob.send(S, b'<alice> 100% "sure" \\ caf\xc3\xa9 %d\n')
    alice.send(C, b"/msg bob psst\n/online\nhi all\n")
    bob.send(S, b"*alice* psst\n<alice> hi all\n")
    alice.send(C, b"\xff\xfe\n" + b"x" * 1100 + b"\n")  # not UTF-8; too long
    alice.send(C, b"split ")
    alice.send(C, b"line\n")
    bob.send(S, b"<alice> split line\n")
    carol.send(C, b"%s %d %%\n")
    for t in (alice, bob, carol):
        t.fin(C)
        t.fin(S)
        t.ack(C)
    udp = Ether() / IP(src="10.0.0.9", dst="10.0.0.255") / UDP(sport=5353, dport=5353) / Raw(b"x")
    udp.time = T0  # a whole second: "1700000000.0"
    arp = Ether() / ARP()
    arp.time = T0 + 0.0053
    packets = sorted(alice.packets + bob.packets + carol.packets + [udp, arp], key=lambda p: float(p.time))
    for packet in packets:  # MAC addresses given: scapy need not look them up (slow)
        packet[Ether].src = packet[Ether].dst = "02:00:00:00:00:01"
    return write_capture(path, packets, fmt=fmt, nano=nano)


@pytest.mark.parametrize("fmt, nano", [("pcap", False), ("pcap", True), ("pcapng", True)])
def test_write_json_of_a_mixed_capture(tmp_path, monkeypatch, fmt, nano):
    a = analyze(mixed_capture(tmp_path / f"mixed.{fmt}", fmt, nano))
    assert not a.packets.is_tcp.all() and "fd00::1" in a.packets.addresses
    assert {"invalid", "private"} <= {line.kind for line in a.lines}
    assert max(Counter(line.frame for line in a.lines).values()) == 3
    assert any(len(line.frames) == 2 for line in a.lines)
    assert any(m.kind == "private" and m.deliveries for m in a.messages)
    assert any("%" in m.text for m in a.messages)
    for chunk in (1, 4, export.CHUNK):  # rows and lists cut anywhere
        monkeypatch.setattr(export, "CHUNK", chunk)
        for notes in (True, False):
            assert_writes_what_json_dumps_writes(a, notes)


def test_write_json_of_a_tcp_frame_no_connection_claims(tmp_path):
    """The tracker claims every TCP frame; were one left out, JSON says so (and it is a
    frame whose endpoints the writer must write itself)."""
    a = analyze(chat_talk().write(tmp_path / "chat.pcap"))
    t = a.tracking
    t.step[4] = t.conn[4] = t.direction[4] = -1  # frame 5: "alice\n"
    row = to_json(a)["packets"][4]
    assert (row["phase"], row["step"], row["direction"], row["lines"]) == ("other", None, None, [1])
    assert row["note"] == "Not a TCP segment of a tracked connection."
    assert_writes_what_json_dumps_writes(a)


def test_seconds_are_written_as_repr_writes_them():
    """The shortcut for floats that are a number of ticks (see export._seconds): repr's
    text up to microseconds; for finer clocks the exact decimal, the same float."""
    rng = np.random.default_rng(7)
    for per_second in (1, 10, 1000, 10**6, 10**7, 10**9, 1 << 20):
        top = 2**33 * per_second
        ticks = np.r_[rng.integers(0, min(2 * top, 1 << 62), 3000),
                      rng.integers(0, 10**5, 300) * per_second // 1000,  # trailing zeros
                      0, 1, 99, 100, 1000, top - 1, top, top + 1, -1, -per_second]
        exact = np.array([t / per_second for t in ticks.tolist()])  # Python: rounded once
        split = ticks // per_second + ticks % per_second / per_second  # as packets.time does it
        nudged = np.nextafter(exact, np.inf)
        for values in (exact, split, nudged, -exact):
            part, digits, fast = export._seconds(values, ticks, np.full(len(ticks), per_second))
            got = [p % d if f else p for p, d, f in zip(part, digits.tolist(), fast, strict=True)]
            if per_second <= 10**6:
                assert got == [repr(x) for x in values.tolist()]
                continue
            assert [float(text) for text in got] == values.tolist()
            for text, t, f in zip(got, ticks.tolist(), fast, strict=True):
                if f:  # the exact decimal of t / per_second, trailing zeros dropped
                    assert Decimal(text) == Decimal(t) / per_second and not text.endswith("00")
        if per_second in export.DECIMAL_PLACES:  # the shortcut is really taken
            assert export._seconds(exact, ticks, np.full(len(ticks), per_second))[2].mean() > 0.4


@pytest.mark.parametrize("values", [[5, 3, 5, 4], [7] * 10, [0, 1 << 40, 3], []])
def test_unique_codes_is_numpy_unique(values):
    values = np.array(values, dtype=np.int64)
    distinct, inverse = unique_codes(values)
    want_distinct, want_inverse = np.unique(values, return_inverse=True)
    assert distinct.tolist() == want_distinct.tolist() and inverse.tolist() == want_inverse.tolist()


def test_exact_ratio_divides_as_python_divides_ints():
    """numpy's float division below 2**53, Python's above: both correctly rounded."""
    rng = np.random.default_rng(6)
    ticks = np.r_[rng.integers(-(2**62), 2**62, 2000), rng.integers(-(2**53), 2**53, 2000),
                  2**53 - 1, 2**53, 2**53 + 1, 0]
    per_second = np.r_[rng.choice([10**6, 10**9, 2**30, 3], len(ticks) - 1), 2**53 + 1]
    want = [int(t) / int(s) for t, s in zip(ticks.tolist(), per_second.tolist(), strict=True)]
    assert exact_ratio(ticks, per_second).tolist() == want
