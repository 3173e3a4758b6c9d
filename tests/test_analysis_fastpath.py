"""The fast paths give exactly what the plain, per-packet ways give.

The tracker runs the state table over a few *candidate* packets with numpy doing
the rest (see tracker.py); the plain tracker (``analysis.plain.tracker``), one packet
at a time, must give every column and every connection the same, on crafted
scenarios, on a real chat captured on loopback, and on every reference capture in
``captures/``.  Likewise the numpy record walk against the plain hop
from record to record, and the streaming JSON writer against ``to_json``.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from test_analysis_tcp import SCENARIOS

from analysis_helpers import C, S, Talk, merge, write_capture
from tcpchatx.analysis import analyze, to_json
from tcpchatx.analysis.capture_file import PCAP_MAGIC, open_buffer, walk_pcap, walk_pcap_slowly
from tcpchatx.analysis.export import write_json
from tcpchatx.analysis.packets import read_packets
from tcpchatx.analysis.plain.tracker import track_one_by_one
from tcpchatx.analysis.tracker import connect, connection_ranges, label, track

REFERENCE_CAPTURES = sorted(
    p for p in (Path(__file__).parent.parent / "captures").glob("*") if p.suffix in (".pcap", ".pcapng")
)


# --------------------------------------------------------------------------- the reference


def assert_same_tracking(a) -> None:
    """The fast tracker's every column and connection, as the plain one gives them."""
    fast, plain = a.tracking, track_one_by_one(a.packets)
    for column in fields(fast):
        mine, theirs = getattr(fast, column.name), getattr(plain, column.name)
        if column.name == "connections":
            assert mine == theirs
        else:
            assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), column.name
    assert (fast.step >= 0).sum() == a.packets.is_tcp.sum()  # every TCP packet is labelled


def assert_same_json(a) -> None:
    out = io.StringIO()
    write_json(a, out)
    assert json.loads(out.getvalue()) == json.loads(json.dumps(to_json(a)))


# --------------------------------------------------------------------------- captures


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request, tmp_path):
    t = Talk()
    SCENARIOS[request.param][0](t)
    return t.write(tmp_path / f"{request.param}.pcap")


def busy_capture(path, fmt):
    """Many interleaved connections with retransmissions, port reuse and wrap-around."""
    talks = []
    for k in range(12):
        t = Talk(client=("10.0.0.1", 40000 + k % 5), isn=(2**32 - 40 + k, 7 * k), start=1_700_000_000 + k * 0.01)
        SCENARIOS[sorted(SCENARIOS)[k % len(SCENARIOS)]][0](t)
        if k % 3 == 0:
            t.handshake()
            t.send(C, b"one\n")
            t.send(C, b"one\n", seq=t.next[C] - 4)  # a retransmission
            t.ack(S)
        talks.append(t)
    return write_capture(path, merge(*talks), fmt=fmt)


def test_scenarios_label_like_the_plain_loop(scenario):
    a = analyze(scenario)
    assert_same_tracking(a)
    assert_same_json(a)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_busy_capture_labels_like_the_plain_loop(tmp_path, fmt):
    a = analyze(busy_capture(tmp_path / f"busy.{fmt}", fmt))
    assert len(a.connections) > 10
    assert_same_tracking(a)
    assert_same_json(a)


@pytest.mark.parametrize("chunk", [1, 2, 7, 40])
def test_labels_range_by_range_are_the_labels_of_the_whole_capture(tmp_path, chunk):
    """label() works a range of connections at a time; ranges of one or a few
    connections must give what one range of all of them gives."""
    p = read_packets(busy_capture(tmp_path / "busy.pcap", "pcap"))
    flows = connect(p)
    assert len(connection_ranges(flows.starts, len(flows.rows), chunk)) >= 3
    whole, ranged = (label(p, flows, chunk=size) for size in (10**9, chunk))
    for name in ("conn", "direction", "rel_seq", "rel_ack", "kind", "state_before", "step", "isn"):
        assert np.array_equal(getattr(whole, name), getattr(ranged, name)), name
    assert whole.connections == ranged.connections
    assert [c.id for c in ranged.connections] == list(range(len(ranged.connections)))
    assert np.array_equal(track(p).step, ranged.step)  # both parts in one call


@pytest.mark.parametrize("path", REFERENCE_CAPTURES, ids=[p.name for p in REFERENCE_CAPTURES])
def test_reference_captures_label_like_the_plain_loop(path):
    a = analyze(path)
    assert_same_tracking(a)
    assert_same_json(a)


@pytest.mark.skipif(shutil.which("dumpcap") is None, reason="needs dumpcap")
def test_live_chat_labels_like_the_plain_loop(tmp_path):
    from tcpchatx.capture import CaptureError, LiveCapture
    from tcpchatx.client import ChatClient
    from tcpchatx.protocol import Kind as LineKind
    from tcpchatx.server import ChatServer

    server = ChatServer("127.0.0.1", 0).start()
    try:
        try:
            capture = LiveCapture(server.port, tmp_path / "live.pcapng", backend="dumpcap").start()
        except CaptureError as error:
            pytest.skip(f"cannot capture here: {error}")
        people = [ChatClient.connect("127.0.0.1", server.port, f"p{k}", nodelay=True) for k in range(3)]
        for person in people:
            person.send(f"hello from {person.nick}")
        for person in people:
            person.receive_until(lambda line: line.kind is LineKind.CHAT)
        people[0].send("/msg p1 psst")
        people[1].receive_until(lambda line: line.kind is LineKind.PRIVATE)
        people[2].abort()  # a reset, too
        for person in people[:2]:
            person.quit()
        time.sleep(0.2)
        path = capture.stop().path
    finally:
        server.stop()
    a = analyze(path)
    assert len(a.connections) == 3 and a.messages
    assert_same_tracking(a)
    assert_same_json(a)


# --------------------------------------------------------------------------- the record walk


def test_numpy_record_walk_equals_the_plain_hop(tmp_path):
    path = busy_capture(tmp_path / "busy.pcap", "pcap")
    buf = open_buffer(path)
    order = PCAP_MAGIC[int.from_bytes(bytes(buf[:4]), "little")][0]
    plain = walk_pcap_slowly(buf, order)
    assert walk_pcap(buf, order).tolist() == plain
    # Small chunks, and a record whose seconds' high half changes: still the same walk.
    assert walk_pcap(buf, order, chunk=97).tolist() == plain
    data = bytearray(bytes(buf))
    data[plain[5] + 2 : plain[5] + 4] = b"\xff\xff"
    changed = tmp_path / "changed.pcap"
    changed.write_bytes(bytes(data))
    assert walk_pcap(open_buffer(changed), order).tolist() == plain
    truncated = tmp_path / "truncated.pcap"
    truncated.write_bytes(bytes(data[: plain[-1] + 10]))
    assert walk_pcap(open_buffer(truncated), order).tolist() == plain[:-1]


@pytest.mark.parametrize("raw", [
    b"hello", b"hello\r", b"a\r\r", b"", b"\r", "h\u00e9llo".encode(), b"\xff\xfe", b"x" * 1024,
    b"x" * 1024 + b"\r", b"x" * 1025, b"x" * 1025 + b"\r", b"\xc3",
])
def test_decode_line_is_the_servers_line_splitter(raw):
    from tcpchatx.analysis.chat import decode_line
    from tcpchatx.protocol import Line, LineSplitter

    event = LineSplitter().feed(raw + b"\n")[0]
    assert decode_line(raw) == (event.text if isinstance(event, Line) else None)
