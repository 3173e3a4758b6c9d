"""Helpers for the analysis tests: craft TCP conversations, write captures, ask tshark.

``Talk`` keeps each side's next sequence number, so a scenario reads like the
ladder diagram it produces::

    t = Talk()
    t.handshake()
    t.send(C, b"alice\\n")
    t.ack(S)
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from scapy.all import IP, TCP, Ether, IPv6, Raw, wrpcap
from scapy.layers.l2 import CookedLinux

C, S = 0, 1  # client (originator) and server (responder)
WELCOME = b"*** Welcome to TCPChatX! Choose a nickname.\n"  # a TCPChatX server's first words
T0 = 1_700_000_000.0
TSHARK = shutil.which("tshark")


class Talk:
    """A scripted TCP conversation between a client and a server."""

    def __init__(self, client=("10.0.0.1", 40000), server=("10.0.0.2", 25000),
                 isn=(1000, 5000), v6=False, start=T0, link="ether"):
        self.ends = (client, server)
        self.next = [isn[0], isn[1]]  # next sequence number each side will use
        self.v6, self.link = v6, link
        self.time = start
        self.packets = []

    def _ip(self, side):
        (src, _), (dst, _) = self.ends[side], self.ends[1 - side]
        return IPv6(src=src, dst=dst) if self.v6 else IP(src=src, dst=dst)

    def seg(self, side, flags, data=b"", seq=None, ack=None, advance=True, dt=0.001):
        """One segment from ``side``; ``ack`` defaults to everything the peer sent."""
        seq = self.next[side] if seq is None else seq
        if ack is None:
            ack = self.next[1 - side] if "A" in flags else 0
        tcp = TCP(sport=self.ends[side][1], dport=self.ends[1 - side][1], flags=flags,
                  seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, window=65535)
        if "S" in flags:
            tcp.options = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
        pkt = self._ip(side) / tcp
        if data:
            pkt = pkt / Raw(data)
        # Fixed MACs: left to scapy, an IPv6 frame's would cost a neighbour lookup on the wire (~1 s).
        macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
        pkt = (CookedLinux() / pkt) if self.link == "sll" else (Ether(src=macs[side], dst=macs[1 - side]) / pkt)
        self.time += dt
        pkt.time = self.time
        self.packets.append(pkt)
        if advance:
            self.next[side] = seq + len(data) + ("S" in flags) + ("F" in flags)
        return pkt

    # the usual moves
    def handshake(self):
        self.seg(C, "S")
        self.seg(S, "SA")
        self.seg(C, "A")

    def send(self, side, data: bytes, **kw):
        return self.seg(side, "PA", data, **kw)

    def ack(self, side, **kw):
        return self.seg(side, "A", **kw)

    def fin(self, side, **kw):
        return self.seg(side, "FA", **kw)

    def write(self, path, **kw):
        write_capture(path, self.packets, **kw)
        return path


def talk_and_close(t: Talk) -> Talk:
    """After the handshake: a line from the client, its ACK, and a four-way close."""
    t.send(C, b"alice\n")
    t.ack(S)
    t.fin(C)
    t.fin(S)
    t.ack(C)
    return t


def merge(*talks):
    """All packets of several conversations, in time order."""
    return sorted((p for t in talks for p in t.packets), key=lambda p: float(p.time))


# --------------------------------------------------------------------------- writing


def write_capture(path, packets, fmt="pcap", nano=False, big_endian=False, simple=False,
                  sections=1):
    """Write ``packets`` as pcap (via scapy) or pcapng (by hand, to choose the details).

    pcapng options: ``nano`` (if_tsresol 9), ``big_endian`` byte order, ``simple``
    (Simple Packet Blocks, no timestamps), ``sections`` (split over N sections).
    """
    path = Path(path)
    if fmt == "pcap":
        wrpcap(str(path), packets, nano=nano)
        if big_endian:
            raise ValueError("scapy writes little-endian pcap; use swap_pcap_byte_order")
        return path
    order = ">" if big_endian else "<"
    resolution = 9 if nano else 6
    linktype = 113 if packets and packets[0].haslayer(CookedLinux) else 1

    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack(order + "II", btype, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))

    out = bytearray()
    per_section = -(-len(packets) // sections) if packets else 0
    for s in range(sections):
        out += block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
        tsresol = struct.pack(order + "HH", 9, 1) + bytes([resolution]) + b"\0\0\0" + b"\0" * 4
        out += block(1, struct.pack(order + "HHI", linktype, 0, 262144) + tsresol)
        for pkt in packets[s * per_section : (s + 1) * per_section]:
            raw = bytes(pkt)
            if simple:
                out += block(3, struct.pack(order + "I", len(raw)) + raw)
                continue
            ticks = round(float(pkt.time) * 10**resolution)
            out += block(6, struct.pack(order + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                        len(raw), len(raw)) + raw)
    path.write_bytes(bytes(out))
    return path


def swap_pcap_byte_order(src, dst):
    """Rewrite a little-endian pcap as big-endian (all header fields swapped)."""
    data = Path(src).read_bytes()
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack_from("<IHHiIII", data, 0)))
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, pos)
        out += struct.pack(">IIII", sec, frac, incl, orig) + data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
    Path(dst).write_bytes(bytes(out))
    return dst


# --------------------------------------------------------------------------- tshark


TSHARK_FIELDS = ("frame.number", "tcp.stream", "tcp.flags", "tcp.seq", "tcp.ack", "tcp.len",
                 "tcp.completeness")


def tshark_rows(path) -> list[dict[str, str]]:
    """tshark's two-pass view of every frame (relative seq/ack are tshark's defaults)."""
    cmd = [TSHARK, "-2", "-r", str(path), "-T", "fields"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append(dict(zip(TSHARK_FIELDS, values + [""] * (len(TSHARK_FIELDS) - len(values)), strict=False)))
    return rows


def assert_agrees_with_tshark(analysis, path) -> int:
    """Every TCP packet's flags, relative seq/ack and length, and every connection's
    completeness bits, must be what tshark says.  Returns how many packets compared."""
    p, t = analysis.packets, analysis.tracking
    rows = tshark_rows(path)
    assert len(rows) == len(p), "tshark and we disagree on the number of frames"
    stream_to_conn: dict[int, int] = {}
    completeness: dict[int, int] = {}
    compared = 0
    for i, row in enumerate(rows):
        assert int(row["frame.number"]) == p.frame[i]
        if not row["tcp.stream"]:
            assert not p.is_tcp[i], f"frame {i + 1}: we decoded TCP, tshark did not"
            continue
        assert p.is_tcp[i], f"frame {i + 1}: tshark decoded TCP, we did not"
        where = f"frame {i + 1}"
        assert int(row["tcp.flags"], 16) == p.flags[i], where
        assert int(row["tcp.seq"]) == t.rel_seq[i], (where, row["tcp.seq"], t.rel_seq[i])
        assert int(row["tcp.ack"] or 0) == t.rel_ack[i], (where, row["tcp.ack"], t.rel_ack[i])
        assert int(row["tcp.len"]) == p.payload_len[i], where
        stream = int(row["tcp.stream"])
        assert stream_to_conn.setdefault(stream, int(t.conn[i])) == t.conn[i], (
            f"{where}: tshark stream {stream} maps to two of our connections")
        completeness[stream] = int(row["tcp.completeness"])
        compared += 1
    assert len(set(stream_to_conn.values())) == len(stream_to_conn)
    for stream, conn in stream_to_conn.items():
        assert analysis.connections[conn].completeness == completeness[stream], (
            f"connection {conn}: completeness {analysis.connections[conn].completeness} "
            f"but tshark says {completeness[stream]}")
    return compared


def tshark_comments(path) -> dict[int, str]:
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-Y", "frame.comment", "-T", "fields",
         "-e", "frame.number", "-e", "frame.comment"],
        capture_output=True, text=True, check=True,
    ).stdout
    comments = {}
    for line in out.splitlines():
        number, _, comment = line.partition("\t")
        comments[int(number)] = comment
    return comments


def write_raw_pcap(path, frames: list[bytes], linktype: int, times: list[float]):
    """A little-endian microsecond pcap of raw frames under any link type."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
    for frame, t in zip(frames, times, strict=True):
        usec = round(t * 1_000_000)
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    Path(path).write_bytes(bytes(out))
    return path
