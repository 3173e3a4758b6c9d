"""Just enough pcapng to find and remove our own marker packets, and to write packets.

A pcapng file is a sequence of blocks, each ``type (4 bytes) | total length (4) | body |
total length (4)``; a Section Header Block starts each section and fixes its byte order.
Packets live in Enhanced Packet Blocks (:mod:`tcpchatx.pcapng_format` has the details).
That is all we need: copy every block, except the packet blocks that carry a given
marker token; and write the scapy backend's packets the way dumpcap would.
"""

from __future__ import annotations

from pathlib import Path

from ..pcapng_format import (
    BLOCK_EPB,
    OPT_IF_FILTER,
    OPT_IF_NAME,
    OPT_SHB_USERAPPL,
    PACKET_BLOCKS,
    PcapngError,
    block,
    enhanced_packet_fields,
    interface_description,
    section_header,
    walk_blocks,
)

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
    try:
        for blk in walk_blocks(data):
            if blk.offset + blk.length > len(data):
                raise PcapngError(f"pcapng block at offset {blk.offset} is cut short")
            whole = data[blk.offset:blk.offset + blk.length]
            if blk.type in PACKET_BLOCKS:
                if token is not None and token in whole:
                    continue
                packets += 1
            kept.append(whole)
    except PcapngError as error:
        raise ValueError(f"{source}: {error}") from None
    destination.write_bytes(b"".join(kept))
    return packets


class PcapngWriter:
    """Write packets as pcapng: one section, one interface, microsecond timestamps.

    The scapy backend uses this instead of scapy's own writers so both backends
    produce the same kind of file (interface name and capture filter included) on
    every scapy version, and a capture with zero packets is still a valid file.
    """

    def __init__(self, path: Path, linktype: int, interface: str, capture_filter: str,
                 application: str = "tcpchatx") -> None:
        self._file = open(path, "wb")
        self._file.write(section_header([(OPT_SHB_USERAPPL, application.encode())]))
        self._file.write(interface_description(linktype, SNAPLEN, [
            (OPT_IF_NAME, interface.encode()),
            (OPT_IF_FILTER, b"\x00" + capture_filter.encode()),  # 0: libpcap filter syntax
        ]))

    def write(self, data: bytes, timestamp: float) -> None:
        micros = round(timestamp * 1_000_000)  # no if_tsresol: microseconds, the default
        self._file.write(block(BLOCK_EPB, enhanced_packet_fields(0, micros, len(data), len(data)) + data))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
