"""Any capture: every link type and wrapper the analysis reads, and a word for every frame it cannot.

Each case is a crafted capture: one chat connection (handshake, a line, its ACK, both
FINs) whose IP packets are wrapped in the headers of one link type or encapsulation
(VLAN, QinQ, MPLS, PPPoE, PBB, VN-Tag, 802.2 LLC/SNAP, FDDI...).  tshark is the
oracle: it must decode the same TCP packets with the same fields as we do, and the
connection must come out as it does over plain Ethernet.  Frames we do not decode
(tunnels, fragments, other protocols, unknown link types) must be counted by kind,
and the fast (numpy) decoder must agree with the plain one (``analysis.plain.frames``)
on every frame of every capture here and every capture the project ships.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.all import (
    ARP,
    GRE,
    ICMP,
    IP,
    TCP,
    UDP,
    Ether,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    raw,
)

from analysis_helpers import (
    TSHARK,
    WELCOME,
    C,
    S,
    Talk,
    assert_agrees_with_tshark,
    talk_and_close,
    tshark_rows,
    write_raw_pcap,
)
from tcpchatx.analysis import analyze, read_packets
from tcpchatx.analysis.capture_file import read_index
from tcpchatx.analysis.plain.frames import decode_frame
from tcpchatx.analysis.skipped import report

REPO = Path(__file__).resolve().parents[1]
MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"  # destination, source
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is the oracle here")


def chat(v6: bool = False) -> Talk:
    t = Talk(client=("2001:db8::1", 40000), server=("2001:db8::2", 25000), v6=True) if v6 else Talk()
    t.handshake()
    t.send(S, WELCOME)
    return talk_and_close(t)


def ip_packets(t: Talk) -> list[bytes]:
    return [raw(p.payload) for p in t.packets]  # each packet without its Ethernet header


def ether(ethertype: int, payload: bytes) -> bytes:
    return MAC + struct.pack(">H", ethertype) + payload


def vlan(vid: int, ethertype: int) -> bytes:
    """A tag's TCI and the EtherType after it (the tag's own type goes before it)."""
    return struct.pack(">HH", vid, ethertype)


def mpls(*labels: int) -> bytes:
    return b"".join(struct.pack(">I", label << 12 | (k == len(labels) - 1) << 8 | 64)
                    for k, label in enumerate(labels))


def pppoe_session(protocol: int, payload: bytes) -> bytes:
    return struct.pack(">BBHHH", 0x11, 0, 0x1234, len(payload) + 2, protocol) + payload


SNAP_IP = b"\xaa\xaa\x03\x00\x00\x00"  # 802.2 LLC (aa aa 03) and SNAP's OUI 0: an EtherType follows

#: name -> (link type, how an IPv4 packet is wrapped)
WRAPPERS = {
    "ethernet": (1, lambda ip: ether(0x0800, ip)),
    "vlan": (1, lambda ip: ether(0x8100, vlan(10, 0x0800) + ip)),
    "qinq": (1, lambda ip: ether(0x88A8, vlan(100, 0x8100) + vlan(10, 0x0800) + ip)),
    "qinq-9100": (1, lambda ip: ether(0x9100, vlan(100, 0x8100) + vlan(10, 0x0800) + ip)),
    "mpls": (1, lambda ip: ether(0x8847, mpls(16) + ip)),
    "mpls-two-labels": (1, lambda ip: ether(0x8847, mpls(16, 17) + ip)),
    "mpls-in-vlan": (1, lambda ip: ether(0x8100, vlan(10, 0x8847) + mpls(16, 17, 18) + ip)),
    "pppoe": (1, lambda ip: ether(0x8864, pppoe_session(0x0021, ip))),
    "pppoe-over-qinq": (1, lambda ip: ether(0x88A8, vlan(100, 0x8100) + vlan(10, 0x8864)
                                            + pppoe_session(0x0021, ip))),
    "pbb": (1, lambda ip: ether(0x88E7, struct.pack(">I", 0x00012345) + MAC + struct.pack(">H", 0x0800) + ip)),
    "pbb-with-a-customer-vlan": (1, lambda ip: ether(0x88E7, struct.pack(">I", 0x00012345) + MAC
                                                     + struct.pack(">H", 0x8100) + vlan(7, 0x0800) + ip)),
    "vn-tag": (1, lambda ip: ether(0x8926, struct.pack(">I", 0x80010002) + struct.pack(">H", 0x0800) + ip)),
    "802.3-llc-snap": (1, lambda ip: MAC + struct.pack(">H", len(ip) + 8) + SNAP_IP
                       + struct.pack(">H", 0x0800) + ip),
    "fddi": (10, lambda ip: b"\x50" + MAC + SNAP_IP + struct.pack(">H", 0x0800) + ip),
    "linux-cooked": (113, lambda ip: struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + ip),
    "linux-cooked-vlan": (113, lambda ip: struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 8, 0x8100)
                          + vlan(10, 0x0800) + ip),
    "linux-cooked-v2": (276, lambda ip: struct.pack(">HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, b"\x02" * 8) + ip),
    "raw-ip": (101, lambda ip: ip),
    "bsd-null": (0, lambda ip: struct.pack("<I", 2) + ip),
}


def wrapped_capture(tmp_path: Path, name: str, t: Talk | None = None) -> Path:
    linktype, wrap = WRAPPERS[name]
    t = t or chat()
    return write_raw_pcap(tmp_path / f"{name}.pcap", [wrap(ip) for ip in ip_packets(t)], linktype,
                          [float(p.time) for p in t.packets])


@pytest.fixture(scope="module")
def over_ethernet(tmp_path_factory):
    return analyze(wrapped_capture(tmp_path_factory.mktemp("ether"), "ethernet"))


@needs_tshark
@pytest.mark.parametrize("name", list(WRAPPERS))
def test_every_wrapper_decodes_as_tshark_does(name, tmp_path, over_ethernet):
    path = wrapped_capture(tmp_path, name)
    a = analyze(path)
    assert a.packets.is_tcp.all() and a.packets.skipped == {}, report(a.packets.skipped)
    assert assert_agrees_with_tshark(a, path) == len(a.packets)
    (mine,), (plain,) = a.connections, over_ethernet.connections
    assert (mine.conn_state, mine.history, mine.payload_bytes) == (plain.conn_state, plain.history,
                                                                   plain.payload_bytes)
    assert [line.text for line in a.lines] == [line.text for line in over_ethernet.lines] == [WELCOME[:-1].decode(),
                                                                                          "alice"]


@needs_tshark
def test_ipv6_extension_headers_are_stepped_over(tmp_path):
    """Hop-by-hop, destination options, routing, an atomic fragment (offset 0, no more)."""
    t = chat(v6=True)
    frames = []
    for p in t.packets:
        ip6 = p[IPv6]
        inner = ip6.payload.copy()
        chain = (IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(addresses=[])
                 / IPv6ExtHdrFragment(offset=0, m=0, id=7) / inner)
        frames.append(ether(0x86DD, raw(IPv6(src=ip6.src, dst=ip6.dst) / chain)))
    path = write_raw_pcap(tmp_path / "v6-extensions.pcap", frames, 1, [float(p.time) for p in t.packets])
    a = analyze(path)
    assert a.packets.is_tcp.all() and set(a.packets.ip_version) == {6}
    assert assert_agrees_with_tshark(a, path) == len(a.packets)
    assert [line.text for line in a.lines if line.direction == 0] == ["alice"]


# --------------------------------------------------------------------------- what is not read, and why


def skipped_kinds(a) -> dict[str, int]:
    return {f"{row['kind']}: {row['what']}": row["frames"] for row in report(a.packets.skipped)}


@needs_tshark
def test_frames_not_read_are_counted_by_kind_and_named(tmp_path):
    t = chat()
    ip = ip_packets(t)
    inner = t.packets[4]  # alice's line, to put inside tunnels and fragments
    frames = [ether(0x0800, p) for p in ip] + [
        raw(Ether() / ARP()),
        raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / inner[IP]),
        raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / inner[IP]),
        raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", proto=4) / inner[IP]),
        raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=50000, dport=4789) / (b"\x08" + b"\0" * 7)
            / Ether() / inner[IP]),
        raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", proto=6) / raw(inner[TCP])[:16]),
        raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP()),
        raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5353, dport=5353) / b"mdns"),
        ether(0x88CC, b"\x02\x07\x04" + b"\0" * 20),  # LLDP
        MAC + struct.pack(">H", 38) + b"\x42\x42\x03" + b"\0" * 35,  # spanning tree: LLC without SNAP
        ether(0x8847, mpls(16) + b"\0\0\0\0" + raw(Ether() / inner[IP])),  # an Ethernet pseudowire
        ether(0x8864, pppoe_session(0xC021, b"\x01\x01\x00\x04")),  # PPP's LCP, not IP
        ether(0x0800, ip[3][:30]),  # cut in the TCP header
    ]
    path = write_raw_pcap(tmp_path / "mixed.pcap", frames, 1, [1_700_000_000 + k / 100 for k in range(len(frames))])
    a = analyze(path)
    assert a.packets.is_tcp.tolist() == [True] * len(ip) + [False] * (len(frames) - len(ip))
    assert skipped_kinds(a) == {
        "not IP: ARP (0x0806)": 1,
        "tunnel not decoded: GRE (IP protocol 47)": 2,
        "tunnel not decoded: IP in IP (IPv4 inside) (IP protocol 4)": 1,
        "tunnel not decoded: VXLAN (UDP port 4789)": 1,
        "IP fragment (not reassembled): IPv4": 1,
        "not TCP: ICMP (1)": 1,
        "not TCP: UDP (17)": 1,
        "not IP: LLDP (0x88cc)": 1,
        "802.2 LLC without SNAP: DSAP 0x42, SSAP 0x42": 1,
        "MPLS payload not IP: a pseudowire (Ethernet over MPLS)": 1,
        "PPPoE, not IP: PPP protocol 0xc021": 1,
        "cut short: the TCP header": 1,
    }
    # tshark agrees that none of these is a TCP segment we could have read in place: the
    # tunnels' TCP is inside a tunnel (tshark decodes GRE, IP in IP and VXLAN; we name them).
    rows = tshark_rows(path)
    protocols = _tshark_protocols(path)
    for k, row in enumerate(rows[len(ip):], start=len(ip)):
        tunnelled = any(name in protocols[k] for name in ("gre", "vxlan", "ip:ip"))
        assert not row["tcp.stream"] or tunnelled, (k + 1, protocols[k])
    assert sum(any(name in p for name in ("gre", "vxlan", "ip:ip")) for p in protocols) == 4


def _tshark_protocols(path) -> list[str]:
    import subprocess

    out = subprocess.run([TSHARK, "-r", str(path), "-T", "fields", "-e", "frame.protocols"],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_an_unknown_link_type_is_named_and_counted(tmp_path):
    frames = [b"\x00" * 40] * 3
    path = write_raw_pcap(tmp_path / "wifi.pcap", frames, 105, [1_700_000_000.0, 1_700_000_000.1, 1_700_000_000.2])
    a = analyze(path)
    assert len(a.packets) == 3 and not a.packets.is_tcp.any() and a.connections == []
    assert skipped_kinds(a) == {"link type not decoded: 802.11 Wi-Fi (105)": 3}


# --------------------------------------------------------------------------- segmentation offload


@needs_tshark
def test_total_length_zero_takes_the_length_from_the_frame(tmp_path):
    """A capture on the sending host holds segments before the card cut them: IP length 0."""
    t = chat()
    big = b"x" * 1808
    t.packets.pop(4)  # alice's line becomes one big segment, captured before segmentation
    t.next[C] -= len(b"alice\n")
    t.send(C, big)
    t.packets.insert(4, t.packets.pop())
    ip = ip_packets(t)
    ip[4] = ip[4][:2] + b"\0\0" + ip[4][4:]  # total length 0, as Linux leaves it under TSO
    frames = [ether(0x0800, p) for p in ip]
    path = write_raw_pcap(tmp_path / "tso.pcap", frames, 1, [float(p.time) for p in t.packets])
    a = analyze(path)
    assert a.packets.payload_len[4] == len(big)
    assert a.packets.length_from_frame.tolist() == [4]
    assert "segmentation offload" in a.note(4) and "length 0" in a.note(4)
    assert "segmentation offload" not in a.note(3)
    assert assert_agrees_with_tshark(a, path) == len(a.packets)  # tshark reads 1808 bytes too


# --------------------------------------------------------------------------- plain and fast agree


def fast_and_plain(path) -> tuple[list, list]:
    """(fast, plain) per frame: is it TCP, its payload's start and length (TCP frames),
    and the frame's reason not to be TCP; plus the skipped counts both ways."""
    p = read_packets(path)
    index = read_index(path)
    plain, counts = [], {}
    for i in range(len(index)):
        start, caplen = int(index.data_offset[i]), int(index.caplen[i])
        frame = bytes(index.buffer[start:start + caplen])
        layers = decode_frame(frame, int(index.linktype[i]), int(index.origlen[i]))
        if layers.skip:
            counts[layers.skip] = counts.get(layers.skip, 0) + 1
            plain.append((False, 0, 0))
        else:
            header = (frame[layers.l4 + 12] >> 4) * 4
            plain.append((True, layers.l4 + header, max(layers.l4_len - header, 0)))
    fast = [(bool(p.is_tcp[i]), int(p.payload_start[i]), int(p.payload_len[i])) for i in range(len(p))]
    return (fast, p.skipped), (plain, counts)


SHIPPED = sorted(str(path.relative_to(REPO)) for path in (REPO / "captures").rglob("*.pcap*"))


@pytest.mark.parametrize("name", SHIPPED)
def test_plain_and_fast_decoders_agree_on_every_shipped_capture(name):
    (fast, fast_counts), (plain, plain_counts) = fast_and_plain(REPO / name)
    assert fast == plain and fast_counts == plain_counts


def test_plain_and_fast_decoders_agree_on_every_crafted_case(tmp_path):
    paths = [wrapped_capture(tmp_path, name) for name in WRAPPERS]
    t = chat()
    frames = [ether(0x0800, p) for p in ip_packets(t)]
    frames += [ether(0x8100, vlan(1, 0x8100) * 9 + b"\0" * 40),  # more tags than we unwrap
               ether(0x8847, mpls(*range(16, 26)) + b"\x45" + b"\0" * 39),  # a deep label stack, then IPv4
               b"\x02" * 13,  # cut inside the Ethernet header
               ether(0x0800, b"\x45\0"),  # cut inside the IP header
               ether(0x0800, b"\x65" + b"\0" * 39),  # IPv4's EtherType, version 6
               ether(0x86DD, raw(IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=8, m=0) / TCP()))]
    paths.append(write_raw_pcap(tmp_path / "odd.pcap", frames, 1, [1_700_000_000 + k for k in range(len(frames))]))
    for path in paths:
        (fast, fast_counts), (plain, plain_counts) = fast_and_plain(path)
        assert fast == plain and fast_counts == plain_counts, path.name
    assert {f"{row['kind']}: {row['what']}" for row in report(fast_counts)} == {
        "too many headers: 802.1Q VLAN (0x8100)", "not TCP: IP protocol (0)",  # 10 labels popped, then IPv4
        "cut short: the link header", "cut short: the IP header", "bad IP header: version nibble 6",
        "IP fragment (not reassembled): IPv6"}
    assert all(is_tcp for is_tcp, _, _ in fast[:len(ip_packets(t))])


def test_annotate_says_what_it_skipped(tmp_path, capsys):
    """The command a student runs on a capture of their own: the summary and the JSON
    both say which frames were not read, and why."""
    import json

    from tcpchatx.cli import main

    t = chat()
    frames = [b"\x00" * 40] * 2
    wifi = write_raw_pcap(tmp_path / "wifi.pcap", frames, 127, [1_700_000_000.0, 1_700_000_000.5])
    main(["annotate", str(wifi)])
    out = capsys.readouterr().out
    assert "0 TCP connection(s)" in out
    assert "not read as TCP: 2 frame(s): 2 802.11 with radiotap header (127): link type not decoded" in out
    mixed = write_raw_pcap(tmp_path / "mixed.pcap", [ether(0x0800, p) for p in ip_packets(t)]
                           + [raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / t.packets[3][IP])],
                           1, [float(p.time) for p in t.packets] + [float(t.packets[-1].time) + 1])
    main(["annotate", str(mixed), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["capture"]["not_tcp"] == [{"kind": "tunnel not decoded", "what": "GRE (IP protocol 47)", "frames": 1}]
    assert len(data["connections"]) == 1


def test_nothing_past_a_frames_end_is_read(tmp_path):
    """A frame cut right after its IP header: the fast decoder must not read the next
    record's bytes as this frame's (a next header, a UDP port), as the plain one does not."""
    from scapy.all import UDP

    v6 = raw(Ether() / IPv6(src="::1", dst="::2", nh=0, plen=8))[:54]  # hop-by-hop header cut off
    udp = raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))[:34]  # ports cut off
    tcp = raw(Ether() / IPv6(src="::1", dst="::2") / TCP())
    # The next record's timestamp, 0xb5120000 seconds, reads as UDP port 4789 (VXLAN) past the cut.
    path = write_raw_pcap(tmp_path / "cut.pcap", [v6, udp, udp, tcp], 1, [1.0, 2.0, float(0xB5120000), 3.0])
    (fast, fast_counts), (plain, plain_counts) = fast_and_plain(path)
    assert fast == plain and fast_counts == plain_counts
    assert {f"{row['kind']}: {row['what']}" for row in report(fast_counts)} == {
        "not TCP: IP protocol (0)", "not TCP: UDP (17)"}
