"""The TCP header of every packet at once, and a segment's options on demand.

The fixed 20 bytes (ports, sequence and acknowledgement numbers, data offset,
flags, window) are read for all segments together; the options, which only SYNs
carry with anything to say, are parsed one packet at a time
(:meth:`.packets.Packets.tcp_options`).  The flag bits are
:mod:`tcpchatx.tcp_flags`'s.
"""

from __future__ import annotations

import struct

import numpy as np

from .capture_file import gather
from .skipped import Skip, reason

TCP_HEADER = np.dtype([
    ("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"), ("data_offset", "u1"),
    ("flags", "u1"), ("window", ">u2"), ("checksum", ">u2"), ("urgent", ">u2"),
])


def tcp_headers(data: np.ndarray, l4: np.ndarray, candidates: np.ndarray,
                skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The TCP headers at ``l4[candidates]`` and their lengths (data offset * 4, int64).

    A header whose data offset is under 5 words is not one we can read: its row
    is taken out of ``candidates`` (in place), and of the results, and gets its
    reason in ``skip`` (:mod:`.skipped`), when given.
    """
    tcp = gather(data, l4[candidates], TCP_HEADER)
    doff = (tcp["data_offset"] >> 4).astype(np.int64) * 4
    good = doff >= 20  # a data offset under 5 words: not a TCP header we can read
    if not good.all():
        bad = np.flatnonzero(candidates)[~good]
        candidates[bad] = False
        if skip is not None:
            skip[bad] = reason(Skip.BAD_TCP, doff[~good] // 4)
        tcp, doff = tcp[good], doff[good]
    return tcp, doff


def parse_tcp_options(raw: bytes) -> dict[str, object]:
    """The options we know (MSS, window scale, SACK permitted, timestamps, SACK blocks)
    of one segment's option bytes."""
    options: dict[str, object] = {}
    pos = 0
    while pos < len(raw):
        kind = raw[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= len(raw) or raw[pos + 1] < 2:
            break
        length = raw[pos + 1]
        value = raw[pos + 2 : pos + length]
        if kind == 2 and len(value) == 2:
            options["mss"] = struct.unpack("!H", value)[0]
        elif kind == 3 and len(value) == 1:
            options["wscale"] = value[0]
        elif kind == 4:
            options["sack_permitted"] = True
        elif kind == 8 and len(value) == 8:
            options["tsval"], options["tsecr"] = struct.unpack("!II", value)
        elif kind == 5 and len(value) >= 8:  # SACK: (left edge, right edge) of each block
            edges = struct.unpack(f"!{len(value) // 4}I", value[: len(value) // 8 * 8])
            options["sack"] = list(zip(edges[0::2], edges[1::2], strict=True))
        pos += length
    return options
