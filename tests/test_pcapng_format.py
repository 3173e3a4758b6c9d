"""pcapng's block format (tcpchatx.pcapng_format): blocks built byte for byte, walked
in either byte order, and bad files refused with a message that says where."""

from __future__ import annotations

import struct

import pytest

from tcpchatx import pcapng_format as fmt
from tcpchatx.capture.pcapng import copy_without_marker
from tcpchatx.plots._common import flag_words
from tcpchatx.replay import _flags
from tcpchatx.tcp_flags import ACK, FIN, LETTERS, NAMES, PSH, RST, SYN


def by_hand(order: str, btype: int, body: bytes) -> bytes:
    """A block as the specification draws it, in either byte order (independent of fmt)."""
    body += b"\0" * (-len(body) % 4)
    return struct.pack(order + "II", btype, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))


def test_a_block_is_padded_and_its_length_repeated():
    assert fmt.block(fmt.BLOCK_EPB, b"abcde") == by_hand("<", 6, b"abcde")
    with_comment = fmt.block(fmt.BLOCK_EPB, b"abcde", [(fmt.OPT_COMMENT, b"hi")])
    options = struct.pack("<HH", 1, 2) + b"hi\0\0" + struct.pack("<HH", 0, 0)
    assert with_comment == by_hand("<", 6, b"abcde\0\0\0" + options)
    head, tail = fmt.block_frame(fmt.BLOCK_EPB, 5)  # the same block around an uncopied body
    assert head + b"abcde" + tail == fmt.block(fmt.BLOCK_EPB, b"abcde")


def test_what_is_written_reads_back():
    data = (fmt.section_header([(fmt.OPT_SHB_USERAPPL, b"tcpchatx")])
            + fmt.interface_description(1, 65535, [(fmt.OPT_IF_TSRESOL, bytes([fmt.tsresol_byte(10**9)]))])
            + fmt.block(fmt.BLOCK_EPB, fmt.enhanced_packet_fields(0, 2**40 + 7, 3, 60) + b"abc"))
    blocks = list(fmt.walk_blocks(data))
    assert [(b.type, b.order) for b in blocks] == [(fmt.BLOCK_SHB, "<"), (fmt.BLOCK_IDB, "<"), (fmt.BLOCK_EPB, "<")]
    assert sum(b.length for b in blocks) == len(data)
    idb = blocks[1]
    options = dict(fmt.parse_options(data, idb.offset + 16, idb.offset + idb.length - 4, "<"))
    assert fmt.tsresol_to_tps(options[fmt.OPT_IF_TSRESOL][0]) == 10**9
    assert fmt.tsresol_byte(2**20) == 0x80 | 20 and fmt.tsresol_to_tps(0x80 | 20) == 2**20
    epb = blocks[2].offset
    assert struct.unpack_from("<IIIII", data, epb + 8) == (0, 256, 7, 3, 60)


def test_each_section_sets_its_byte_order():
    little = by_hand("<", fmt.BLOCK_SHB, struct.pack("<IHHq", fmt.BYTE_ORDER_MAGIC, 1, 0, -1))
    big = by_hand(">", fmt.BLOCK_SHB, struct.pack(">IHHq", fmt.BYTE_ORDER_MAGIC, 1, 0, -1))
    data = little + by_hand("<", 6, b"x") + big + by_hand(">", 6, b"y") + by_hand(">", 5, b"")
    assert [(b.type, b.order) for b in fmt.walk_blocks(data)] == [
        (fmt.BLOCK_SHB, "<"), (6, "<"), (fmt.BLOCK_SHB, ">"), (6, ">"), (5, ">")]
    assert [b.order for b in fmt.walk_blocks(data, len(little) + 16 + len(big), ">")] == [">", ">"]


def test_bad_files_are_refused_and_say_where():
    shb = fmt.section_header()
    with pytest.raises(fmt.PcapngError, match="does not start with a Section Header Block"):
        list(fmt.walk_blocks(by_hand("<", 6, b"x") + shb))
    with pytest.raises(fmt.PcapngError, match=f"block at offset {len(shb)} has a bad length 30"):
        list(fmt.walk_blocks(shb + struct.pack("<III", 6, 30, 0)))
    no_magic = shb[:8] + b"\0\0\0\0" + shb[12:]
    with pytest.raises(fmt.PcapngError, match="offset 0 has no byte-order magic"):
        list(fmt.walk_blocks(no_magic))
    walk = fmt.walk_blocks(shb + struct.pack("<III", 6, 8, 0))
    assert next(walk).type == fmt.BLOCK_SHB  # nothing is read before it is asked for
    assert list(fmt.walk_blocks(shb + b"short")) == list(fmt.walk_blocks(shb))  # under 12 bytes: the end


def test_a_copy_refuses_a_block_cut_short(tmp_path):
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(fmt.section_header() + fmt.block(fmt.BLOCK_EPB, b"x" * 40)[:30])
    with pytest.raises(ValueError, match="cut.pcapng: pcapng block at offset 28 is cut short"):
        copy_without_marker(cut, tmp_path / "copy.pcapng", None)


def test_flag_bits_print_as_before():
    assert list(NAMES) == list(LETTERS) == [1 << k for k in range(8)]
    assert flag_words(SYN | ACK) == "SYN,ACK" and flag_words(FIN | PSH | ACK) == "FIN,PSH,ACK"
    assert flag_words(0) == "(none)"
    assert _flags(SYN | ACK) == "SA" and _flags(FIN | ACK) == "FA" and _flags(RST) == "R" and _flags(0) == "."
