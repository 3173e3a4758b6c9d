"""pcapng's block format, in one place: for live capture, the analysis and the
benchmarks, which read and write it.

Theory of operation
-------------------
A pcapng file is a sequence of blocks, each::

    block type (4 bytes) | total length (4) | body, padded to 4 bytes | options | total length (4)

The length is repeated at the end so a reader can hop backwards too.  A Section
Header Block (:data:`BLOCK_SHB`) starts each section and fixes its byte order: its
byte-order magic (:data:`BYTE_ORDER_MAGIC`) reads right in one order only.  Then
come Interface Description Blocks (link type, snap length, timestamp resolution)
and the packets, usually in Enhanced Packet Blocks.  Options are ``code (2) |
length (2) | value, padded to 4 bytes``, ended by code 0 (``opt_endofopt``).

Readers take either byte order (:func:`walk_blocks` hops from block to block);
the writers here write little-endian, as dumpcap does on the machines we run on.

No numpy here: live capture imports this too.  The analysis finds packet blocks
with numpy (:func:`tcpchatx.analysis.capture_file.walk_pcapng`), from the
constants below.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

# Block types.
BLOCK_SHB = 0x0A0D0D0A  # Section Header Block: starts a section, fixes its byte order
BLOCK_IDB = 1  # Interface Description Block: one per interface of the section
BLOCK_PB = 2  # Packet Block: obsolete, replaced by the Enhanced Packet Block
BLOCK_SPB = 3  # Simple Packet Block: no timestamp, always the section's interface 0
BLOCK_EPB = 6  # Enhanced Packet Block: interface, timestamp, lengths, packet, options
PACKET_BLOCKS = (BLOCK_EPB, BLOCK_SPB, BLOCK_PB)
BYTE_ORDER_MAGIC = 0x1A2B3C4D  # in the Section Header Block's body

# Option codes (codes 0 and 1 mean the same in every block; the others depend on the block).
OPT_ENDOFOPT = 0  # the end of a block's options
OPT_COMMENT = 1  # opt_comment: UTF-8 text (Wireshark's "packet comments")
OPT_IF_NAME = 2  # if_name (Interface Description Block)
OPT_SHB_USERAPPL = 4  # shb_userappl (Section Header Block): the program that wrote the file
OPT_IF_TSRESOL = 9  # if_tsresol: one byte, 10^-n seconds (2^-n if the high bit is set)
OPT_IF_FILTER = 11  # if_filter: a type byte (0 = libpcap syntax), then the filter
OPT_IF_TSOFFSET = 14  # if_tsoffset: seconds added to every timestamp of the interface

END_OF_OPTIONS = struct.pack("<HH", OPT_ENDOFOPT, 0)


class PcapngError(ValueError):
    """The bytes are not a pcapng file's blocks; the message says where and why."""


# --------------------------------------------------------------------------- writing


def pad(data: bytes) -> bytes:
    """``data`` with zeros up to a multiple of 4 bytes (blocks and options are 32-bit aligned)."""
    return data + b"\0" * (-len(data) % 4)


def option(code: int, value: bytes) -> bytes:
    """One option: code, length, value padded to 4 bytes."""
    return struct.pack("<HH", code, len(value)) + pad(value)


def block(block_type: int, body: bytes, options: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """A whole block: type, total length, ``body`` padded, ``options`` (if any, with
    their end marker), total length again."""
    options = list(options)
    if options:
        body = pad(body) + b"".join(option(code, value) for code, value in options) + END_OF_OPTIONS
    head, tail = block_frame(block_type, len(body))
    return head + body + tail


def block_frame(block_type: int, body_length: int) -> tuple[bytes, bytes]:
    """What goes before and after a block's body of ``body_length`` bytes: type and total
    length; padding and total length.  For writers that pass packet bytes on uncopied."""
    padding = -body_length % 4
    length = 12 + body_length + padding
    return struct.pack("<II", block_type, length), b"\0" * padding + struct.pack("<I", length)


def section_header(options: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """A Section Header Block: byte-order magic, version 1.0, section length unknown (-1)."""
    return block(BLOCK_SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1), options)


def interface_description(linktype: int, snaplen: int, options: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """An Interface Description Block: link type, a reserved zero, snap length."""
    return block(BLOCK_IDB, struct.pack("<HHI", linktype, 0, snaplen), options)


def enhanced_packet_fields(interface: int, ticks: int, caplen: int, origlen: int) -> bytes:
    """The 20 bytes that open an Enhanced Packet Block's body, before the packet: interface,
    timestamp (its ticks since 1970, in the interface's ``if_tsresol``: high and low 32 bits),
    bytes captured, bytes on the wire."""
    return struct.pack("<IIIII", interface, ticks >> 32 & 0xFFFFFFFF, ticks & 0xFFFFFFFF, caplen, origlen)


def tsresol_byte(ticks_per_second: int) -> int:
    """The ``if_tsresol`` value of a clock: 10^-n seconds as n, 2^-n as n with the high bit set."""
    exponent = round(math.log10(ticks_per_second))
    if 10**exponent == ticks_per_second:
        return exponent
    return 0x80 | round(math.log2(ticks_per_second))


# --------------------------------------------------------------------------- reading


def tsresol_to_tps(value: int) -> int:
    """``if_tsresol``: high bit clear = 10^-n seconds, set = 2^-n seconds."""
    return 2 ** (value & 0x7F) if value & 0x80 else 10 ** value


def section_byte_order(data, offset: int) -> str:
    """The byte order of the section whose header block is at ``offset``: ``"<"`` (little
    endian) or ``">"`` (big), the one in which its byte-order magic reads right."""
    for order in "<>":
        if struct.unpack_from(order + "I", data, offset + 8)[0] == BYTE_ORDER_MAGIC:
            return order
    raise PcapngError(f"pcapng Section Header Block at offset {offset} has no byte-order magic")


class Block(NamedTuple):
    """Where a block is, and what its header says."""

    offset: int
    type: int
    length: int  # total length, header and trailer included
    order: str  # "<" or ">": its section's byte order


def walk_blocks(data, pos: int = 0, order: str | None = None) -> Iterator[Block]:
    """Every block from ``pos`` on, one by one, until fewer than 12 bytes are left.

    ``order`` is the byte order of the section ``pos`` is in; ``None`` (the start of
    a file) means no section has started, so the first block must be a Section
    Header Block.  Each Section Header Block sets the order of itself and the blocks
    after it.  A length under 12 or not a multiple of 4 is an error: the walk could
    not go on.  The last block may be cut short: a reader that needs all of it checks
    ``offset + length`` against the file's size.  Nothing is read before it is asked
    for, so a reader may stop anywhere.
    """
    while pos + 12 <= len(data):
        (block_type,) = struct.unpack_from((order or "<") + "I", data, pos)
        if block_type == BLOCK_SHB:
            order = section_byte_order(data, pos)
        elif order is None:
            raise PcapngError("pcapng file does not start with a Section Header Block")
        (length,) = struct.unpack_from(order + "I", data, pos + 4)
        if length < 12 or length % 4:
            raise PcapngError(f"pcapng block at offset {pos} has a bad length {length}")
        yield Block(pos, block_type, length, order)
        pos += length


def parse_options(data, start: int, end: int, order: str) -> Iterator[tuple[int, bytes]]:
    """(code, value bytes) of each option between ``start`` and ``end`` (in byte order ``order``)."""
    pos = start
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", data, pos)
        if code == OPT_ENDOFOPT:
            return
        yield code, bytes(data[pos + 4 : pos + 4 + length])
        pos += 4 + (length + 3) // 4 * 4
