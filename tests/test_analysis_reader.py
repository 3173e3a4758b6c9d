"""The columnar reader: file formats, byte orders, timestamp precision, link types."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scapy.all import raw

from analysis_helpers import (
    TSHARK,
    C,
    S,
    Talk,
    assert_agrees_with_tshark,
    swap_pcap_byte_order,
    write_capture,
    write_raw_pcap,
)
from tcpchatx.analysis import CaptureFormatError, analyze, read_packets


def conversation(**kw) -> Talk:
    t = Talk(start=1_700_000_000.123456789, **kw)
    t.handshake()
    t.send(C, b"alice\n", dt=0.000000321)
    t.ack(S)
    t.fin(C)
    t.fin(S)
    t.ack(C)
    return t


def same_columns(a, b):
    for name in ("flags", "seq", "ack", "sport", "dport", "payload_len", "window", "is_tcp"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert [a.addresses[i] for i in a.src] == [b.addresses[i] for i in b.src]


@pytest.mark.parametrize("variant", [
    dict(fmt="pcap"), dict(fmt="pcap", nano=True),
    dict(fmt="pcapng"), dict(fmt="pcapng", nano=True), dict(fmt="pcapng", big_endian=True),
    dict(fmt="pcapng", sections=3), dict(fmt="pcapng", nano=True, big_endian=True, sections=2),
])
def test_formats_give_the_same_columns(tmp_path, variant):
    t = conversation()
    reference = read_packets(t.write(tmp_path / "ref.pcap"))
    path = t.write(tmp_path / "x.cap", **variant)
    p = read_packets(path)
    assert len(p) == len(t.packets) == 8
    same_columns(reference, p)
    assert p.index.kind == variant["fmt"]
    if TSHARK:
        assert_agrees_with_tshark(analyze(path), path)


def pcap_ticks(path) -> list[int]:
    """The record timestamps of a little-endian pcap, read independently with struct."""
    data = path.read_bytes()
    per_second = 10**9 if data[:4] == struct.pack("<I", 0xA1B23C4D) else 10**6
    ticks, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from("<IIII", data, pos)
        ticks.append(sec * per_second + frac)
        pos += 16 + incl
    return ticks


def test_nanosecond_timestamps_are_exact(tmp_path):
    t = conversation()
    p = read_packets(t.write(tmp_path / "ns.pcapng", fmt="pcapng", nano=True))
    assert set(p.ts_tps) == {10**9}
    assert list(p.ts_ticks) == [round(float(pkt.time) * 10**9) for pkt in t.packets]
    assert (p.ts_ticks % 1000 != 0).any()  # sub-microsecond digits survive
    for nano in (True, False):
        path = t.write(tmp_path / f"{nano}.pcap", nano=nano)
        p = read_packets(path)
        assert set(p.ts_tps) == {10**9 if nano else 10**6}
        assert list(p.ts_ticks) == pcap_ticks(path)
        assert abs(p.time[0] - 1_700_000_000.124456789) < 1e-6


def test_big_endian_pcap(tmp_path):
    t = conversation()
    little = t.write(tmp_path / "le.pcap")
    big = swap_pcap_byte_order(little, tmp_path / "be.pcap")
    assert big.read_bytes()[:4] == b"\xa1\xb2\xc3\xd4"
    same_columns(read_packets(little), read_packets(big))
    assert list(read_packets(big).ts_ticks) == list(read_packets(little).ts_ticks)


def test_simple_packet_blocks(tmp_path):
    t = conversation()
    p = read_packets(t.write(tmp_path / "spb.pcapng", fmt="pcapng", simple=True))
    same_columns(read_packets(t.write(tmp_path / "ref.pcap")), p)
    assert not p.ts_ticks.any()  # SPBs carry no timestamp


def _relink(t: Talk, linktype: int, tmp_path, name: str):
    """The same IP packets under another link-layer header."""
    frames = []
    for pkt in t.packets:
        ip = raw(pkt.payload)  # drop the Ethernet header
        v6 = ip[0] >> 4 == 6
        header = {
            0: struct.pack("<I", 30 if v6 else 2),  # NULL: host byte order
            108: struct.pack(">I", 30 if v6 else 2),  # LOOP: network byte order
            101: b"", 228: b"", 229: b"",
            276: struct.pack(">HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 772, 0, 6, b"\0" * 8),
        }[linktype]
        frames.append(header + ip)
    return write_raw_pcap(tmp_path / name, frames, linktype, [float(x.time) for x in t.packets])


@pytest.mark.parametrize("linktype", [0, 108, 101, 228, 276])
def test_link_types(tmp_path, linktype):
    t = conversation()
    path = _relink(t, linktype, tmp_path, f"link{linktype}.pcap")
    p = read_packets(path)
    assert p.is_tcp.all()
    same_columns(read_packets(t.write(tmp_path / "ref.pcap")), p)
    if TSHARK:
        assert_agrees_with_tshark(analyze(path), path)


def test_ipv6_under_null_and_raw(tmp_path):
    t = conversation(client=("2001:db8::1", 40000), server=("2001:db8::2", 25000), v6=True)
    for linktype in (0, 229):
        p = read_packets(_relink(t, linktype, tmp_path, f"v6-{linktype}.pcap"))
        assert p.is_tcp.all() and set(p.ip_version) == {6}
        assert p.addresses == ["2001:db8::1", "2001:db8::2"]


def test_non_tcp_frames_are_kept_as_other(tmp_path):
    from scapy.all import ARP, ICMP, IP, UDP, Ether
    t = conversation()
    frames = [Ether() / ARP()] + t.packets[:3] + [Ether() / IP() / UDP() / b"x",
                                                  Ether() / IP(dst="10.0.0.2") / ICMP()]
    frames += [Ether() / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", proto=6) / raw(t.packets[3][2])]
    path = tmp_path / "mixed.pcap"
    write_capture(path, frames)
    a = analyze(path)
    assert list(a.packets.is_tcp) == [False, True, True, True, False, False, False]
    assert list(a.phase) == ["other", "handshake", "handshake", "handshake", "other", "other", "other"]
    assert list(a.tracking.conn) == [-1, 0, 0, 0, -1, -1, -1]
    if TSHARK:
        assert_agrees_with_tshark(a, path)


def test_truncated_packets_and_files(tmp_path):
    t = conversation()
    path = t.write(tmp_path / "snap.pcap")
    data = bytearray(path.read_bytes())
    # cut the file in the middle of the last record: that record is dropped or shortened
    (tmp_path / "cut.pcap").write_bytes(bytes(data[:-10]))
    p = read_packets(tmp_path / "cut.pcap")
    assert len(p) == 8 and p.payload_caplen[-1] <= p.payload_len[-1]
    (tmp_path / "cut2.pcap").write_bytes(bytes(data[: 24 + 5]))
    assert len(read_packets(tmp_path / "cut2.pcap")) == 0


def test_not_a_capture(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"hello, this is not a capture")
    with pytest.raises(CaptureFormatError, match="unknown magic"):
        read_packets(tmp_path / "x.txt")


def test_syn_options(tmp_path):
    p = read_packets(conversation().write(tmp_path / "o.pcap"))
    assert p.tcp_options(0) == {"mss": 1460, "sack_permitted": True, "wscale": 7}
    assert p.tcp_options(3) == {}
