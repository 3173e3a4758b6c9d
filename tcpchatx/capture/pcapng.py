"""Just enough pcapng to find and remove our own marker packets.

A pcapng file is a sequence of blocks, each ``type (4 bytes) | total length (4) | body |
total length (4)``; a Section Header Block (type 0x0A0D0D0A) starts each section and
fixes its byte order. Packets live in Enhanced Packet Blocks (type 6). That is all we
need: copy every block, except the packet blocks that carry a given marker token.
"""

from __future__ import annotations

import struct
from pathlib import Path

SECTION_HEADER = 0x0A0D0D0A
PACKET_BLOCKS = {2, 3, 6}  # obsolete Packet, Simple Packet, Enhanced Packet
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
SNAPLEN = 262144  # bytes kept per packet, as dumpcap's default


class MarkerWatch:
    """Tell, cheaply and repeatedly, whether a growing file now contains *token*.

    Reads only what was appended since the last look, keeping a small overlap so a
    token split across two reads is still found.
    """

    def __init__(self, path: Path, token: bytes) -> None:
        self.path = path
        self.token = token
        self._offset = 0
        self._tail = b""

    def seen(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            fresh = f.read()
        self._offset += len(fresh)
        window = self._tail + fresh
        self._tail = window[-(len(self.token) - 1):] if len(self.token) > 1 else b""
        return self.token in window


def copy_without_marker(source: Path, destination: Path, token: bytes | None) -> int:
    """Copy pcapng *source* to *destination*, dropping packet blocks containing *token*.

    With ``token=None`` every block is kept. Returns how many packet blocks were kept.
    """
    data = source.read_bytes()
    kept: list[bytes] = []
    packets = 0
    offset = 0
    order = "<"
    while offset + 12 <= len(data):
        block_type = struct.unpack_from(order + "I", data, offset)[0]
        if block_type == SECTION_HEADER:
            order = _section_byte_order(data, offset)
        length = struct.unpack_from(order + "I", data, offset + 4)[0]
        if length < 12 or offset + length > len(data):
            raise ValueError(f"{source}: truncated or corrupt pcapng block at byte {offset}")
        block = data[offset:offset + length]
        if block_type in PACKET_BLOCKS:
            if token is not None and token in block:
                offset += length
                continue
            packets += 1
        kept.append(block)
        offset += length
    destination.write_bytes(b"".join(kept))
    return packets


def _section_byte_order(data: bytes, offset: int) -> str:
    """Read a Section Header Block's byte-order magic: '<' little or '>' big endian."""
    if struct.unpack_from("<I", data, offset + 8)[0] == _BYTE_ORDER_MAGIC:
        return "<"
    if struct.unpack_from(">I", data, offset + 8)[0] == _BYTE_ORDER_MAGIC:
        return ">"
    raise ValueError(f"not a pcapng section header at byte {offset}")


class PcapngWriter:
    """Write packets as pcapng: one section, one interface, microsecond timestamps.

    The scapy backend uses this instead of scapy's own writers so both backends
    produce the same kind of file (interface name and capture filter included) on
    every scapy version, and a capture with zero packets is still a valid file.
    """

    def __init__(self, path: Path, linktype: int, interface: str, capture_filter: str,
                 application: str = "tcpchatx") -> None:
        self._file = open(path, "wb")
        self._file.write(_block(SECTION_HEADER, struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1),
                                [(4, application.encode())]))
        self._file.write(_block(1, struct.pack("<HHI", linktype, 0, SNAPLEN),
                                [(2, interface.encode()), (11, b"\x00" + capture_filter.encode())]))

    def write(self, data: bytes, timestamp: float) -> None:
        micros = round(timestamp * 1_000_000)
        header = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), len(data))
        self._file.write(_block(6, header + _pad(data)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _block(block_type: int, body: bytes, options: list[tuple[int, bytes]] | None = None) -> bytes:
    """Frame a block: type, total length, body, options (ending with opt_endofopt), length."""
    if options:
        body += b"".join(struct.pack("<HH", code, len(value)) + _pad(value) for code, value in options)
        body += struct.pack("<HH", 0, 0)
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)
