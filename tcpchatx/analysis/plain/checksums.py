"""A TCP checksum checked one segment at a time: the version to read first.

:func:`tcpchatx.analysis.checksums.tcp_checksums` does the same for every segment at
once, and a test holds the two to the same answer on every capture.
"""

from __future__ import annotations

import ipaddress

import numpy as np

from ..checksums import BAD, GOOD, UNCHECKED, checkable
from ..packets import Packets


def checksum_of_one(source: bytes, destination: bytes, segment: bytes) -> int:
    """RFC 793's sum over the pseudo-header and the segment, carries folded in:
    0xFFFF when the segment's checksum field is right."""
    pseudo = source + destination + bytes([0, 6]) + len(segment).to_bytes(2, "big")
    data = pseudo + segment + (b"\0" if len(segment) % 2 else b"")  # an odd last byte: a word's high half
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksums_one_by_one(p: Packets) -> np.ndarray:
    """Per frame: GOOD, BAD, or UNCHECKED (not TCP, or not captured whole)."""
    out = np.full(len(p), UNCHECKED, dtype=np.int8)
    whole = checkable(p)
    for row in np.flatnonzero(whole).tolist():
        header_len = int(p.header_len[row])
        start = int(p.index.data_offset[row]) + int(p.payload_start[row]) - header_len
        segment = bytes(p.buffer[start:start + header_len + int(p.payload_len[row])])
        source = ipaddress.ip_address(p.addresses[p.src[row]]).packed
        destination = ipaddress.ip_address(p.addresses[p.dst[row]]).packed
        out[row] = GOOD if checksum_of_one(source, destination, segment) == 0xFFFF else BAD
    return out
