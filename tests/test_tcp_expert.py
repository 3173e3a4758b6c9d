"""Wireshark's TCP expert analysis, plain and fast: every packet as tshark names it.

tshark is the oracle.  For every TCP packet of every capture here - the reference
captures, the crafted close shapes, a busy capture with retransmissions and port
reuse, and crafted stories of loss, duplicate ACKs, windows and keep-alives - the
events (``tcp.analysis.<name>``), the duplicate-ACK count and frame, the frame an ACK
acknowledges, its RTT and the bytes in flight must be what tshark says, and the
numpy twin (``analysis.expert``) must give exactly what the plain loop gives.

And so must what ``tcpchatx annotate`` writes of them, made the fast and the plain
way: every packet's keys in ``--json``, and the marks of the ladder, which must be
the ones tshark's Info column starts with.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.all import TCP
from test_analysis_fastpath import busy_capture
from test_analysis_tcp import SCENARIOS

from analysis_helpers import TSHARK, C, S, Talk
from tcpchatx import plots
from tcpchatx.analysis import analyze, analyze_plainly, expert, format_ladder, write_json
from tcpchatx.analysis.expert import analyse, from_findings
from tcpchatx.analysis.plain.expert import EVENTS, Finding, analyse_one_by_one
from tcpchatx.capture import rootless_available
from tcpchatx.netlab import run_in_lab

REFERENCES = sorted((Path(__file__).resolve().parents[1] / "captures").rglob("*.pcapng"))  # and captures/lab/
NUMBERS = ("duplicate_ack_num", "duplicate_ack_frame", "acks_frame", "ack_rtt", "bytes_in_flight")


def tshark_findings(path) -> dict[int, tuple[list[str], dict[str, str]]]:
    """Frame -> (tshark's events, its numbers as it prints them)."""
    return {frame: finding for frame, (finding, _) in tshark_view(path).items()}


def tshark_view(path) -> dict[int, tuple[tuple[list[str], dict[str, str]], str]]:
    """Frame -> ((tshark's events, its numbers as it prints them), the expert
    analysis's marks its Info column starts with), from one run of tshark."""
    fields = ["frame.number"] + [f"tcp.analysis.{name}" for name in EVENTS + NUMBERS] + ["_ws.col.Info"]
    cmd = [TSHARK, "-r", str(path), "-T", "fields", "-E", "occurrence=f"]
    for name in fields:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        values = line.split("\t") + [""] * len(fields)
        events = sorted(name for name, value in zip(EVENTS, values[1:], strict=False) if value)
        numbers = dict(zip(NUMBERS, values[1 + len(EVENTS):], strict=False))
        rows[int(values[0])] = ((events, numbers), info_marks(values[len(fields) - 1]))
    return rows


def info_marks(info: str) -> str:
    """The expert analysis's marks an Info column starts with: ``"[TCP Dup ACK 5#1]"``
    (the mark of a reused port, which is not a finding of the analysis, left out)."""
    marks = re.match(r"(?:\[TCP [^\]]+\] )*", info).group(0).split("] ")
    return " ".join(f"{mark}]" for mark in marks if mark and mark != "[TCP Port numbers reused")


def as_tshark_prints(finding: Finding) -> tuple[list[str], dict[str, str]]:
    numbers = {name: getattr(finding, name) for name in NUMBERS}
    shown = {name: "" if value is None else (f"{value:.9f}" if name == "ack_rtt" else str(value))
             for name, value in numbers.items()}
    return sorted(finding.events), shown


def assert_fast_is_plain(a, findings) -> None:
    """The numpy twin gives every column the plain loop gives, and the RTT worked
    out from ``acks_frame`` is the one the plain loop measured."""
    fast, plain = analyse(a.packets, a.tracking), from_findings(a.packets, findings)
    assert_same(fast, plain)
    measured = np.full(len(a.packets), np.nan)
    for row, finding in findings.items():
        if finding.ack_rtt is not None:
            measured[row] = finding.ack_rtt
    assert np.array_equal(plain.ack_rtt(), measured, equal_nan=True)


def assert_same(x, y) -> None:
    """Two expert analyses are the same, column by column."""
    for name in ("events", "acks_frame", "bytes_in_flight"):
        assert np.array_equal(getattr(x, name), getattr(y, name)), name
    for name, column in x.duplicate_acks._asdict().items():
        assert np.array_equal(column, getattr(y.duplicate_acks, name)), name


def assert_agrees_with_tshark(path, outputs: bool = False) -> dict[str, int]:
    """Every TCP packet as tshark sees it (the plain loop, and its fast twin alike);
    returns how often each event was seen.  With ``outputs``, what ``tcpchatx
    annotate`` writes of every packet too (:func:`assert_outputs_agree`)."""
    a = analyze(path)
    ours = analyse_one_by_one(a.packets, a.tracking)
    assert_fast_is_plain(a, ours)
    view = tshark_view(path)
    seen: dict[str, int] = {}
    for row, finding in ours.items():
        frame = int(a.packets.frame[row])
        assert as_tshark_prints(finding) == view[frame][0], f"{path.name} frame {frame}"
        for name in finding.events:
            seen[name] = seen.get(name, 0) + 1
    if outputs:
        for analysis in (a, analyze_plainly(path)):
            assert_outputs_agree(analysis, view)
    return seen


def as_tshark_prints_json(packet: dict) -> tuple[list[str], dict[str, str]]:
    """A packet of ``--json`` as tshark prints its expert analysis."""
    dup = packet["duplicate_ack"] or {}
    return as_tshark_prints(Finding(
        events=packet["analysis"], duplicate_ack_num=dup.get("number"), duplicate_ack_frame=dup.get("of_frame"),
        acks_frame=packet["acks_frame"], ack_rtt=packet["ack_rtt"], bytes_in_flight=packet["bytes_in_flight"]))


def assert_outputs_agree(a, view) -> None:
    """Every packet of ``--json`` (every frame, TCP or not) carries the expert
    analysis's keys, its findings in EVENTS order, all as tshark says; the ladder
    marks every packet as tshark's Info column does."""
    out = io.StringIO()
    write_json(a, out)
    packets = json.loads(out.getvalue())["packets"]
    assert [packet["frame"] for packet in packets] == sorted(view)
    for packet in packets:
        frame = packet["frame"]
        assert packet["analysis"] == [name for name in EVENTS if name in packet["analysis"]]
        assert as_tshark_prints_json(packet) == view[frame][0], f"{a.path} frame {frame}"
        assert a.info(frame - 1) == view[frame][1], f"{a.path} frame {frame}"
    ladder = format_ladder(a).splitlines()
    if not ladder[0].startswith("(no ladder"):
        rows = {int(row.split()[0]): row.rsplit("|", 1)[1].strip() for row in ladder[1:] if row[:5].strip().isdigit()}
        assert rows == {frame: view[frame][1] for frame in rows}
        assert len(rows) == int((a.tracking.conn >= 0).sum())


pytestmark = pytest.mark.skipif(TSHARK is None, reason="needs tshark")


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.name)
def test_reference_captures(path):
    assert_agrees_with_tshark(path, outputs=True)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_close_shapes(tmp_path, name):
    t = Talk()
    SCENARIOS[name][0](t)
    assert_agrees_with_tshark(t.write(tmp_path / f"{name}.pcap"), outputs=True)


def test_busy_capture_with_retransmissions_port_reuse_and_wrap_around(tmp_path):
    seen = assert_agrees_with_tshark(busy_capture(tmp_path / "busy.pcap", "pcap"), outputs=True)
    assert seen.get("retransmission")


def window(packet, value: int):
    packet[TCP].window = value
    return packet


def loss_and_windows(t: Talk) -> None:
    """A lost segment, duplicate ACKs and a fast retransmission, a timeout's
    retransmission, a zero window with its probe, a window update and a keep-alive."""
    t.handshake()
    t.send(C, b"a" * 100)
    t.ack(S)
    lost = t.send(C, b"b" * 100)
    t.send(C, b"c" * 100)
    for _ in range(3):
        t.ack(S, ack=t.next[C] - 200)
    t.send(C, b"b" * 100, seq=t.next[C] - 200, advance=False)
    t.ack(S)
    t.send(C, b"d" * 100)
    t.send(C, b"d" * 100, seq=t.next[C] - 100, advance=False, dt=0.5)
    t.ack(S)
    window(t.ack(S), 0)
    t.send(C, b"e", advance=False)
    window(t.ack(S), 0)
    window(t.ack(S), 1000)
    t.seg(C, "A", seq=t.next[C] - 1, advance=False)
    window(t.ack(S), 1000)
    t.fin(C)
    t.fin(S)
    t.ack(C)
    t.packets.remove(lost)


def reordering_and_spurious(t: Talk) -> None:
    """Segments that arrive out of order, one resent after its ACK (spurious), an ACK
    of bytes the capture never saw, and a window filled to its edge."""
    t.handshake()
    first = t.send(C, b"x" * 50)
    second = t.send(C, b"y" * 50)
    first.time, second.time = second.time, first.time
    t.packets[-2:] = [second, first]  # the later one was captured first, the other 1 ms after
    t.ack(S)
    t.send(C, b"y" * 50, seq=t.next[C] - 50, advance=False)  # already acknowledged
    unseen = t.send(C, b"z" * 50)
    t.ack(S)
    t.packets.remove(unseen)
    window(t.ack(S), 1)  # 128 bytes with the SYN's scale of 7
    t.send(C, b"w" * 128)
    t.ack(S)
    t.fin(S)
    t.fin(C)
    t.ack(S)


@pytest.mark.parametrize("story", [loss_and_windows, reordering_and_spurious], ids=lambda s: s.__name__)
def test_crafted_stories(tmp_path, story):
    t = Talk()
    story(t)
    seen = assert_agrees_with_tshark(t.write(tmp_path / "story.pcap"), outputs=True)
    assert len(seen) >= 5, seen  # the story really shows several events


def test_every_event_is_seen_in_the_crafted_stories(tmp_path):
    seen: dict[str, int] = {}
    for story in (loss_and_windows, reordering_and_spurious):
        t = Talk()
        story(t)
        for name, count in assert_agrees_with_tshark(t.write(tmp_path / f"{story.__name__}.pcap")).items():
            seen[name] = seen.get(name, 0) + count
    missing = set(EVENTS) - set(seen)
    assert missing <= {"keep_alive_ack"}, missing  # a keep-alive ACK needs an unchanged window


@pytest.fixture
def numpy_only(monkeypatch):
    """The fast twin may not hand any connection to the plain loop: all are clean."""
    def refuse(p, t, connections, out):
        raise AssertionError(f"connections {connections.tolist()} are not clean")
    monkeypatch.setattr(expert, "_one_by_one", refuse)


def test_fast_and_plain_agree_on_many_interleaved_connections(tmp_path, numpy_only):
    """Copies of the reference chat (fresh ISNs, some wrapping past 2**32, nanosecond
    timestamps): thousands of clean connections, all taken the numpy way."""
    from benchmarks.make_capture import build_copies, write_pcapng

    path = tmp_path / "copies.pcapng"
    write_pcapng(path, *build_copies(REFERENCES[0].with_name("chat.pcapng"), 5_000))
    a = analyze(path)
    assert_fast_is_plain(a, analyse_one_by_one(a.packets, a.tracking))
    assert (analyse(a.packets, a.tracking).acks_frame > 0).sum() > 1000


def test_a_clean_connection_that_fills_the_window(tmp_path, numpy_only):
    """Nothing lost or resent (the numpy way): data up to the edge of a scaled window,
    a duplicate ACK and a window update."""
    t = Talk()
    t.handshake()
    window(t.ack(S), 1)  # 1 << 7 = 128 bytes with the SYNs' scale of 7
    t.send(C, b"w" * 128)  # up to the edge: window full
    window(t.ack(S), 1)
    window(t.ack(S), 1)  # the same ACK again: a duplicate
    window(t.ack(S), 4)  # a bigger window: an update
    t.send(C, b"v" * 512)  # 4 << 7: full again
    t.ack(S)
    t.fin(C)
    t.fin(S)
    t.ack(C)
    path = t.write(tmp_path / "full.pcap")
    a = analyze(path)
    fast = analyse(a.packets, a.tracking)
    assert [fast.names(i) for i in (4, 6, 7, 8)] == [
        ["window_full"], ["duplicate_ack"], ["window_update"], ["window_full"]]
    assert assert_agrees_with_tshark(path) == {"window_full": 2, "duplicate_ack": 1, "window_update": 2}


def test_duplicate_acks_of_a_clean_connection_are_numbered(tmp_path, numpy_only):
    """Duplicates counted from the ACK they repeat, both ways, again after the ACK
    moves on; the numpy way, as tshark counts them."""
    t = Talk()
    t.handshake()
    t.send(C, b"a" * 10)
    t.ack(S)
    t.ack(S)  # frame 6: Dup ACK 5#1
    t.ack(S)  # frame 7: Dup ACK 5#2
    t.send(S, b"b" * 20)
    t.ack(C)
    t.ack(C)  # frame 10: Dup ACK 9#1
    t.send(C, b"c" * 30)
    t.ack(S)
    t.ack(S)  # frame 13: Dup ACK 12#1
    t.fin(C)
    t.fin(S)
    t.ack(C)
    path = t.write(tmp_path / "dups.pcap")
    a = analyze(path)
    assert [a.info(i) for i in (5, 6, 9, 12)] == [
        "[TCP Dup ACK 5#1]", "[TCP Dup ACK 5#2]", "[TCP Dup ACK 9#1]", "[TCP Dup ACK 12#1]"]
    assert assert_agrees_with_tshark(path, outputs=True) == {"duplicate_ack": 4}


@pytest.mark.parametrize("size", [1, 5, 64])
def test_the_ranges_of_connections_do_not_change_the_columns(monkeypatch, size):
    """However the connections are cut into ranges, the columns are the same (a
    lab capture with loss, the reference chat: plain and numpy connections)."""
    for path in (REFERENCES[0].parent / "lab" / "fast-retransmit-client-view.pcapng",
                 REFERENCES[0].with_name("chat.pcapng")):
        a = analyze(path)
        whole = analyse(a.packets, a.tracking)
        monkeypatch.setattr(expert, "RANGE", size)
        cut = analyse(a.packets, a.tracking)
        monkeypatch.undo()
        assert_same(whole, cut)


@pytest.mark.skipif(not rootless_available()[0], reason="needs unprivileged user namespaces")
def test_real_loss_at_a_bottleneck_agrees_with_tshark_at_both_ends(tmp_path):
    """A megabyte through the lab router's 4 Mbit/s link with a 30 KB queue: the queue
    overflows, and both captures - the sender's view and the receiver's - say what
    tshark says of every packet: retransmissions, holes, SACKed duplicate ACKs."""
    outcome = run_in_lab("tcpchatx.netlab.selftest:bulk_through_bottleneck", {"out_dir": str(tmp_path)})
    assert outcome["received"] == [1_000_000]
    assert outcome["dropped"] > 0, "the router's queue never overflowed: no loss to study"
    sender = assert_agrees_with_tshark(Path(outcome["views"]["client"]))
    receiver = assert_agrees_with_tshark(Path(outcome["views"]["server"]))
    assert sender.get("retransmission") and sender.get("duplicate_ack"), sender
    assert receiver.get("lost_segment") and receiver.get("retransmission"), receiver
    # The kernel's own view, sampled meanwhile on the capture's clock: it retransmitted,
    # and the loss set a slow-start threshold.
    samples = [sample for sample in outcome["tcp_info"] if sample["name"] == "sender"]
    assert samples[-1]["total_retrans"] > 0
    assert min(s["snd_ssthresh"] for s in samples) < 2**31 - 1
    # The router's queue filled up to its limit, and its drops are the ones counted.
    # (It need not be empty at the end: resent copies of delivered bytes may still wait.)
    queue = outcome["queue"]
    assert 0 < max(s["backlog_bytes"] for s in queue) <= 30_000 + 1_514
    assert queue[-1]["dropped"] == outcome["dropped"] > 0
    a = analyze(Path(outcome["views"]["client"]))
    packets = a.packets
    assert packets.seconds(0) - 1 <= samples[0]["time"] and samples[-1]["time"] <= packets.seconds(len(packets) - 1) + 1
    # The figure of it all: every retransmission of the capture, every drop of the queue.
    fig = plots.congestion(samples, queue, analyse(a.packets, a.tracking), a)
    assert fig.tcpchatx["retransmissions"] == sender["retransmission"]
    assert fig.tcpchatx["drops"] == queue[-1]["dropped"] - queue[0]["dropped"]
    assert fig.tcpchatx["samples"] == len(samples) and len(fig.axes) == 3
