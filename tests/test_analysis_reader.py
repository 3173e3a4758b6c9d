"""The columnar reader: file formats, byte orders, timestamp precision, link types."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np
import pytest
from scapy.all import IP, raw

from analysis_helpers import (
    T0,
    TSHARK,
    C,
    S,
    Talk,
    assert_agrees_with_tshark,
    swap_pcap_byte_order,
    write_capture,
    write_raw_pcap,
)
from tcpchatx.analysis import CaptureFormatError, analyze, capture_file, read_packets
from tcpchatx.analysis.capture_file import (
    index_pcapng,
    open_buffer,
    read_index,
    release_pages,
    take,
    walk_pcapng,
    walk_pcapng_slowly,
)


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


def test_seconds_of_some_rows_and_the_time_column_made_only_when_asked(tmp_path):
    t = conversation()
    for fmt, nano in (("pcap", False), ("pcapng", True)):
        a = analyze(t.write(tmp_path / f"t.{fmt}", fmt=fmt, nano=nano))
        p = a.packets
        assert "time" not in vars(p)  # the analysis asked for rows only: no 8 bytes a frame
        want = [ticks // tps + ticks % tps / tps for ticks, tps in zip(p.ts_ticks.tolist(), p.ts_tps.tolist())]
        assert p.time.tolist() == want and p.time.dtype == np.float64
        assert p.seconds(np.array([2, 0])).tolist() == [want[2], want[0]] and p.seconds(1) == want[1]


def test_one_address_columns_cost_no_memory_and_mixed_chunks_are_filled(tmp_path, monkeypatch):
    from tcpchatx.analysis import packets as packets_module

    def talk(address, start):
        t = Talk(client=(address, 40000), server=(address, 25000), start=start)
        t.handshake()
        t.send(C, b"hi\n")
        return t

    loopback = read_packets(write_capture(tmp_path / "lo.pcap", talk("127.0.0.1", T0).packets))
    assert loopback.src.strides == loopback.dst.strides == (0,)  # one broadcast view
    assert loopback.src.tolist() == loopback.dst.tolist() == [0] * len(loopback)
    # Chunks of 4 packets: 10.0.0.1 and .2 (ids 0 and 1), then a chunk all 127.0.0.1
    # (id 2), written into the columns once the others showed they are needed.
    monkeypatch.setattr(packets_module, "DECODE_CHUNK", 4)
    t = Talk(start=T0)
    t.handshake()
    t.seg(C, "A")  # four packets between 10.0.0.1 and 10.0.0.2
    mixed = [*t.packets, *talk("127.0.0.1", T0 + 1).packets]
    p = read_packets(write_capture(tmp_path / "mixed.pcap", mixed))
    want = [(pkt[IP].src, pkt[IP].dst) for pkt in mixed]
    assert [(p.addresses[s], p.addresses[d]) for s, d in zip(p.src, p.dst, strict=True)] == want
    assert p.src.strides != (0,) and want[4] == ("127.0.0.1", "127.0.0.1")


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


@pytest.mark.parametrize("tagged_frames", ["all", "some"])
def test_vlan_tagged_frames_decode_like_untagged_ones(tmp_path, tagged_frames):
    """802.1Q (and QinQ) tags move the IP header 4 bytes on; untagged frames in the same file do not move."""
    from scapy.all import Dot1AD, Dot1Q, Ether
    t = conversation()
    reference = read_packets(t.write(tmp_path / "plain.pcap"))
    frames = []
    for i, f in enumerate(t.packets):
        inner = f[Ether].payload.copy()
        if tagged_frames == "all" or i % 3 == 0:
            tag = Dot1AD(vlan=7) / Dot1Q(vlan=42) if i % 2 else Dot1Q(vlan=42)
            frames.append(Ether(src=f[Ether].src, dst=f[Ether].dst) / tag / inner)
        else:
            frames.append(f)
    path = tmp_path / "tagged.pcap"
    write_capture(path, frames)
    p = read_packets(path)
    same_columns(p, reference)  # QinQ frames (two tags) were "not TCP" before
    if TSHARK:
        assert_agrees_with_tshark(analyze(path), path)


def test_a_tcp_header_with_a_bad_data_offset_is_not_tcp_and_the_rest_decode(tmp_path):
    """A data offset under 5 words: that frame is "other"; the frames around it keep their fields."""
    from scapy.all import TCP
    t = conversation()
    bad = t.packets[1].copy()
    bad[TCP].dataofs = 4
    frames = t.packets[:1] + [bad] + t.packets[1:]
    path = tmp_path / "bad-offset.pcap"
    write_capture(path, frames)
    p = read_packets(path)
    assert p.is_tcp.tolist() == [True, False] + [True] * (len(t.packets) - 1)
    tcp = [f for f in frames if f is not bad]
    assert p.sport[p.is_tcp].tolist() == [f[TCP].sport for f in tcp]
    assert p.seq[p.is_tcp].tolist() == [f[TCP].seq for f in tcp]
    assert p.payload_len[p.is_tcp].tolist() == [len(f[TCP].payload) for f in tcp]


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


# --------------------------------------------------------------------------- the pcapng walk
#
# walk_pcapng finds packet blocks with numpy; walk_pcapng_slowly hops block by block.
# They must agree exactly: offsets, sections, interfaces, and the error on bad files.

CAPTURES_DIR = Path(__file__).parent.parent / "captures"
CAPTURES = sorted(CAPTURES_DIR.glob("*.pcapng"))


def both_walks(buf, chunk: int = 1 << 24):
    """Run the plain and the numpy walk; they must give the same result (or error)."""
    def run(walk):
        sections, interfaces = [], []
        try:
            offsets = walk(buf, sections, interfaces)
        except Exception as error:  # noqa: BLE001 - the errors must match too
            return type(error), str(error)
        return list(offsets), sections, interfaces

    plain = run(lambda b, s, i: walk_pcapng_slowly(b, s, i)[0])
    fast = run(lambda b, s, i: walk_pcapng(b, s, i, chunk=chunk).tolist())
    assert fast == plain
    return plain


class Pcapng:
    """Builds a pcapng file block by block, and remembers what each packet should be."""

    def __init__(self):
        self.data = bytearray()
        self.packets = []  # (offset, interface in the whole file, ticks as written, payload)
        self.interfaces = []  # (ticks per second, tsoffset) for the whole file
        self.order, self.first = "<", 0

    def block(self, btype: int, body: bytes) -> int:
        body += b"\0" * (-len(body) % 4)
        blen = 12 + len(body)
        pos = len(self.data)
        self.data += struct.pack(self.order + "II", btype, blen) + body + struct.pack(self.order + "I", blen)
        return pos

    def options(self, *opts: tuple[int, bytes]) -> bytes:
        out = b"".join(struct.pack(self.order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
                       for code, value in opts)
        return out + struct.pack(self.order + "HH", 0, 0) if opts else b""

    def section(self, order: str):
        self.order, self.first = order, len(self.interfaces)
        self.block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                   + self.options((1, b"a section")))

    def interface(self, tsresol: int | None = None, tsoffset: int = 0, linktype: int = 1):
        opts = [(2, b"eth0")]
        if tsresol is not None:
            opts.append((9, bytes([tsresol])))
        if tsoffset:
            opts.append((14, struct.pack(self.order + "q", tsoffset)))
        self.block(1, struct.pack(self.order + "HHI", linktype, 0, 65535) + self.options(*opts))
        tps = 10**6 if tsresol is None else (2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol)
        self.interfaces.append((tps, tsoffset))

    def expect(self, pos: int, iface: int, ticks: int, payload: bytes):
        self.packets.append((pos, self.first + iface, ticks, payload))

    def expected_ticks(self) -> tuple[list[int], list[int]]:
        """Each packet's ticks per second and ticks (if_tsoffset included)."""
        tps, ticks = [], []
        for _, iface, raw_ticks, _ in self.packets:
            per_second, tsoffset = self.interfaces[iface]
            tps.append(per_second)
            ticks.append(raw_ticks + tsoffset * per_second)
        return tps, ticks

    def epb(self, iface: int, ticks: int, payload: bytes, comment: bytes | None = None):
        body = struct.pack(self.order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                           len(payload), len(payload) + 4)
        body += payload + b"\0" * (-len(payload) % 4)
        body += self.options((1, comment)) if comment else b""
        self.expect(self.block(6, body), iface, ticks, payload)

    def pb(self, iface: int, ticks: int, payload: bytes):
        body = struct.pack(self.order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                           len(payload), len(payload))
        self.expect(self.block(2, body + payload), iface, ticks, payload)

    def spb(self, payload: bytes):  # no timestamp; the section's first interface
        self.expect(self.block(3, struct.pack(self.order + "I", len(payload)) + payload), 0, 0, payload)

    def other(self, btype: int):  # name resolution (4), statistics (5), custom blocks...
        self.block(btype, b"\x06\0\0\0" * 3)


def fake_epb(order: str, inner: int = 2) -> bytes:
    """Packet data that looks like ``inner`` valid EPBs in a row, to fool the guesses."""
    one = struct.pack(order + "IIIIIII", 6, 32, 0, 0, 0, 0, 0) + struct.pack(order + "I", 32)
    return one * inner


def crafted() -> Pcapng:
    """Three sections (little, big, little endian), several interfaces and block types."""
    w = Pcapng()
    w.section("<")
    w.interface()  # microseconds
    w.interface(tsresol=9, tsoffset=-5)  # nanoseconds, shifted
    for k in range(5):
        w.epb(k % 2, 1_700_000_000_123_456_789 + k, b"hello %d" % k, comment=b"line %d" % k if k % 2 else None)
    w.spb(b"simple")
    w.pb(1, 42, b"obsolete")
    w.other(4)
    w.epb(0, 7, fake_epb("<") + b"after the fake")
    w.other(5)
    w.other(0xB16B00B5)
    w.epb(1, 8, b"x" * 3)
    w.section(">")
    w.interface(tsresol=0x80 | 20)  # 2^-20 s
    w.interface(tsresol=3, tsoffset=10)
    w.epb(1, 9, b"big endian")
    w.epb(0, 10, fake_epb(">", 3))
    w.spb(b"big simple")
    w.pb(0, 11, b"big obsolete")
    w.epb(1, 12, fake_epb("<"))  # little-endian lookalikes in a big-endian section
    w.section("<")
    w.epb(0, 13, b"before its interface")  # interface 0 of the section: the IDB just after
    w.interface(tsresol=6, tsoffset=1)
    w.epb(0, 14, b"back to little")
    w.epb(0, 15, b"")
    return w


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_pcapng_walk_on_the_reference_captures(path):
    buf = open_buffer(path)
    offsets, sections, interfaces = both_walks(buf)
    assert offsets and sections and interfaces
    assert both_walks(buf, chunk=64) == (offsets, sections, interfaces)  # many small chunks


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory) -> Path:
    """200,000 packets of real chat (copies of the reference chat, as the benchmark
    makes them): about 25 MB, so the numpy walk crosses its 16 MB chunks."""
    from benchmarks.make_capture import build_copies, write_pcapng

    path = tmp_path_factory.mktemp("big") / "chat-200000.pcapng"
    write_pcapng(path, *build_copies(CAPTURES_DIR / "chat.pcapng", 200_000))
    return path


def test_pcapng_walk_on_a_big_capture(big_capture):
    assert big_capture.stat().st_size > 1 << 24  # more than one chunk of the walk
    offsets = both_walks(open_buffer(big_capture))[0]
    assert len(offsets) == len(read_index(big_capture)) == 200_000


@pytest.mark.parametrize("chunk", [1 << 24, 64, 4])
def test_pcapng_walk_on_crafted_sections(tmp_path, chunk):
    w = crafted()
    offsets, sections, interfaces = both_walks(bytes(w.data), chunk)
    assert offsets == [p[0] for p in w.packets]
    assert [(s.order, s.first_interface) for s in sections] == [("<", 0), (">", 2), ("<", 4)]
    assert [i.ticks_per_second for i in interfaces] == [10**6, 10**9, 2**20, 1000, 10**6]
    assert [i.tsoffset for i in interfaces] == [0, -5, 0, 10, 1]
    path = tmp_path / "crafted.pcapng"
    path.write_bytes(w.data)
    assert both_walks(open_buffer(path), chunk)[0] == offsets  # mapped, with pages released

    index = read_index(path)
    assert index.interface.tolist() == [p[1] for p in w.packets]
    assert (index.ts_tps.tolist(), index.ts_ticks.tolist()) == w.expected_ticks()
    starts, lengths = index.data_offset.tolist(), index.caplen.tolist()
    assert [bytes(index.buffer[a : a + n]) for a, n in zip(starts, lengths)] == [p[3] for p in w.packets]


def test_pcapng_walk_sees_through_fake_blocks_in_packet_data():
    for order in "<>":
        w = Pcapng()
        w.section(order)
        w.interface()
        for k in range(20):
            w.epb(0, k, fake_epb(order, k % 4 + 1) + (b"pad" * k))
        w.epb(0, 99, b"last")
        data = w.data
        assert both_walks(bytes(data))[0] == [p[0] for p in w.packets]
        # A block whose trailing length copy is wrong is not a guess, but the plain walk
        # accepts it; a fake block inside it that ends exactly where it ends is a guess.
        outer, nxt = w.packets[3][0], w.packets[4][0]
        fake_start = outer + 28
        data[nxt - 4 : nxt] = struct.pack(order + "I", nxt - fake_start)
        data[fake_start : fake_start + 8] = struct.pack(order + "II", 6, nxt - fake_start)
        assert both_walks(bytes(data))[0] == [p[0] for p in w.packets]


def test_pcapng_walk_takes_runs_of_packets_in_one_step(monkeypatch):
    """Only the blocks that are not packets are hopped the plain way, in either byte order."""
    hopped = []

    def counting(buf, sections, interfaces, pos=0, stop=None, stop_after_shb=False):
        offsets, end = walk_pcapng_slowly(buf, sections, interfaces, pos, stop, stop_after_shb)
        hopped.append(len(offsets))
        return offsets, end

    monkeypatch.setattr(capture_file, "walk_pcapng_slowly", counting)
    w = Pcapng()
    for order in "<><":
        w.section(order)
        w.interface()
        for k in range(200):
            w.epb(0, k, b"data %d" % k + fake_epb(order, k % 3))
        w.other(5)
    sections, interfaces = [], []
    assert capture_file.walk_pcapng(bytes(w.data), sections, interfaces).tolist() == [p[0] for p in w.packets]
    assert len(sections) == 3 and len(interfaces) == 3
    assert sum(hopped) == 0 and len(hopped) < 10  # SHBs, IDBs and statistics blocks only


def test_pcapng_walk_on_truncated_and_broken_files():
    data = bytes(crafted().data)
    for cut in range(0, len(data) + 1, 3):  # cut anywhere (every remainder mod 4), even in a header
        both_walks(data[:cut])
        both_walks(data[:cut], chunk=8)
    offsets = both_walks(data)[0]
    broken = bytearray(data)
    broken[offsets[4] + 4 : offsets[4] + 8] = struct.pack("<I", 30)  # not a multiple of 4
    assert both_walks(bytes(broken)) == (CaptureFormatError, f"pcapng block at offset {offsets[4]} has a bad length 30")
    broken[offsets[4] + 4 : offsets[4] + 8] = struct.pack("<I", 8)  # shorter than a block
    assert both_walks(bytes(broken))[0] is CaptureFormatError
    assert both_walks(data[offsets[0]:])[0] is CaptureFormatError  # no Section Header first
    with pytest.raises(CaptureFormatError, match="bad length"):
        index_pcapng(bytes(broken))
    no_magic = bytearray(data)
    no_magic[8:12] = b"\0" * 4  # the first section's byte-order magic
    assert both_walks(bytes(no_magic)) == (
        CaptureFormatError, "pcapng Section Header Block at offset 0 has no byte-order magic")


# --------------------------------------------------------------------------- memory


def test_take_keeps_a_constant_column_constant():
    rows = np.array([3, 0, 2])
    index = read_index(CAPTURES[0])
    picked = take(index.ts_tps, rows)
    assert picked.strides == (0,) and picked.tolist() == [int(index.ts_tps[0])] * 3
    assert take(index.caplen, rows).tolist() == index.caplen[rows].tolist()  # others: column[rows]
    assert len(take(index.ts_tps[:0], rows[:0])) == 0


def test_constant_columns_cost_no_memory(tmp_path):
    for path in [CAPTURES[0], conversation().write(tmp_path / "x.pcap")]:
        index = read_index(path)
        for column in (index.ts_tps, index.interface):
            assert column.strides == (0,) and not column.flags.writeable  # a broadcast view
        assert index.interface[np.arange(len(index))].tolist() == [0] * len(index)  # still indexable
        assert index.caplen.dtype == index.origlen.dtype == np.int32
    w = Pcapng()
    w.section("<")
    w.interface()
    w.interface(tsresol=9)
    w.epb(0, 1, b"a")
    w.epb(1, 2, b"b")
    w.data[-12:-8] = struct.pack("<I", 2**32 - 1)  # an origlen that needs 64 bits
    index = index_pcapng(bytes(w.data))
    assert index.interface.tolist() == [0, 1] and index.ts_tps.tolist() == [10**6, 10**9]
    assert index.origlen.dtype == np.int64 and index.origlen.tolist() == [5, 2**32 - 1]


def vm_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists() or not hasattr(mmap, "MADV_DONTNEED"),
                    reason="needs Linux /proc and madvise(MADV_DONTNEED)")
def test_release_pages_lowers_rss_and_keeps_the_data(tmp_path):
    path = tmp_path / "big.bin"
    values = np.arange(16 << 20, dtype=np.uint32)  # 64 MB
    values.tofile(path)
    buf = open_buffer(path)
    mapped = np.frombuffer(buf, dtype=np.uint32)
    step = mmap.PAGESIZE // 4

    def touch():
        assert mapped[::step].sum() == values[::step].sum()  # one read per page maps it

    touch()
    before = vm_rss_kb()
    release_pages(buf)
    assert before - vm_rss_kb() > 56 * 1024  # nearly all 64 MB left the RSS
    assert np.array_equal(mapped, values)  # and the data read back from the page cache
    touch()
    before = vm_rss_kb()
    release_pages(buf, 10, (32 << 20) + 5)  # unaligned bounds are rounded outwards
    assert 30 * 1024 < before - vm_rss_kb() < 40 * 1024
    assert np.array_equal(mapped, values)
    # Harmless elsewhere: plain bytes, a slice of the mapping, empty or past-the-end ranges.
    for other in (b"abc", memoryview(b"abc"), buf[100:], bytearray(b"xyz")):
        release_pages(other)
    release_pages(buf, len(buf) + 4096)
    release_pages(buf, 5000, 10)
    assert np.array_equal(mapped, values)


@pytest.mark.skipif(not Path("/proc/self/status").exists() or not hasattr(mmap, "MADV_DONTNEED"),
                    reason="needs Linux /proc and madvise(MADV_DONTNEED)")
def test_indexers_release_only_what_lies_a_window_behind(tmp_path, monkeypatch):
    """The decoder reads the pages the indexers just read: they keep the last
    KEEP_MAPPED bytes mapped for it, and release what lies further behind."""
    monkeypatch.setattr(capture_file, "KEEP_MAPPED", 16 << 20)
    path = tmp_path / "big.bin"
    values = np.arange(16 << 20, dtype=np.uint32)  # 64 MB
    values.tofile(path)
    buf = open_buffer(path)
    mapped = np.frombuffer(buf, dtype=np.uint32)
    assert mapped[:: mmap.PAGESIZE // 4].sum() == values[:: mmap.PAGESIZE // 4].sum()  # all mapped
    before = vm_rss_kb()
    capture_file.release_behind(buf, 0, 16 << 20)  # nothing is 16 MB behind the first 16 MB yet
    assert abs(before - vm_rss_kb()) < 4 * 1024
    capture_file.release_behind(buf, 16 << 20, 64 << 20)  # up to 48 MB is now behind
    assert 44 * 1024 < before - vm_rss_kb() < 52 * 1024
    assert np.array_equal(mapped, values)


def test_record_chunks_cover_every_record_once():
    rec = np.array([24, 100, 5000, 5001, 9000, 30000, 30010], dtype=np.int64)
    parts = capture_file.record_chunks(rec, 40000, chunk=4096)
    assert [r for part in parts for r in rec[part].tolist()] == rec.tolist()
    assert all(part.stop > part.start for part in parts)  # chunks with no record start are left out
    assert [capture_file._file_span(rec, part, 40000) for part in parts][-1] == (30000, 40000)
