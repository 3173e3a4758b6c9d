"""Outputs: DataFrames, JSON, text summary and ladder, annotated pcapng."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis_helpers import TSHARK, C, S, Talk, tshark_comments
from tcpchatx.analysis import (
    CLOSE_KINDS,
    ZEEK_CONN_STATES,
    analyze,
    format_ladder,
    format_summary,
    read_packets,
    to_json,
    write_annotated,
)

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


def test_annotated_copy_of_a_microsecond_pcap(tmp_path):
    path = chat_talk().write(tmp_path / "c.pcap")
    out = write_annotated(analyze(path), tmp_path / "c.pcapng")
    after = read_packets(out)
    assert set(after.ts_tps) == {10**6}
    assert list(after.ts_ticks) == list(read_packets(path).ts_ticks)
