"""Which TCP segments carry a wrong checksum (RFC 793's ones'-complement sum).

Zeek checks every TCP checksum by default.  A segment whose sum is wrong is written
``c`` in the history (``C`` from the originator, at the 1st, 10th, 100th...) and
otherwise ignored: it moves no state (:mod:`.zeek_sessions`).  Wireshark does not
check them unless asked (``tcp.check_checksum``), and neither does ``tcpchatx
annotate`` unless asked (``--check-checksums``): a capture made on the sending host
holds the checksums *before* the network card filled them in, so every segment that
host sent looks wrong.  Every loopback capture is like that, this project's own too.

The sum covers a pseudo-header (both addresses, the protocol number 6 and the TCP
length), the TCP header and the payload, in 16-bit big-endian words; a right
checksum makes it 0xFFFF once the carries are folded back in.  A segment is checked
only when all of it was captured (as Zeek does).

:func:`tcp_checksums` does that for every segment at once with numpy;
:func:`checksum_of_one` (in :mod:`.plain.checksums`) is the same for one segment, to read first.
"""

from __future__ import annotations

import ipaddress

import numpy as np

from .packets import Packets

UNCHECKED, BAD, GOOD = -1, 0, 1
CHUNK_BYTES = 1 << 20  # segment bytes summed per numpy step


def address_sums(addresses: list[str]) -> np.ndarray:
    """Each address's 16-bit words, summed (its share of the pseudo-header)."""
    sums = []
    for text in addresses:
        packed = ipaddress.ip_address(text).packed
        sums.append(sum(int.from_bytes(packed[i:i + 2], "big") for i in range(0, len(packed), 2)))
    return np.array(sums + [0], dtype=np.int64)  # the extra 0: address id -1 (not IP)


def checkable(p: Packets) -> np.ndarray:
    """The TCP segments captured whole: header, options and payload."""
    return (p.is_tcp & (p.payload_caplen == p.payload_len)
            & (p.options_len.astype(np.int64) + 20 == p.header_len))


def fold(total: np.ndarray) -> np.ndarray:
    """Add the carries back in until the sum fits 16 bits (ones'-complement addition)."""
    while (total > 0xFFFF).any():
        total = (total & 0xFFFF) + (total >> 16)
    return total


def tcp_checksums(p: Packets) -> np.ndarray:
    """Per frame: :data:`GOOD`, :data:`BAD`, or :data:`UNCHECKED` (not TCP, or cut short)."""
    out = np.full(len(p), UNCHECKED, dtype=np.int8)
    rows = np.flatnonzero(checkable(p))
    if not len(rows):
        return out
    header_len = p.header_len[rows].astype(np.int64)
    length = header_len + p.payload_len[rows]  # the TCP length of the pseudo-header
    start = p.index.data_offset[rows] + p.payload_start[rows] - header_len
    sums = address_sums(p.addresses)
    total = sums[p.src[rows]] + sums[p.dst[rows]] + 6 + length
    total += _segment_sums(np.frombuffer(p.buffer, dtype=np.uint8), start, length)
    out[rows] = np.where(fold(total) == 0xFFFF, GOOD, BAD)
    return out


def _segment_sums(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Each segment's bytes as 16-bit big-endian words, summed (an odd last byte is
    the high half of a word), about :data:`CHUNK_BYTES` of them per numpy step."""
    out = np.zeros(len(start), dtype=np.int64)
    ends = np.cumsum(length)
    lo = 0
    while lo < len(start):
        before = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, before + CHUNK_BYTES, "right")), lo + 1)
        n = length[lo:hi]
        firsts = np.r_[0, np.cumsum(n)[:-1]]  # where each segment starts among the gathered bytes
        at = np.arange(int(n.sum())) - np.repeat(firsts, n)  # each byte's place in its segment
        values = buf[np.repeat(start[lo:hi], n) + at].astype(np.int64)
        values <<= 8 * (1 - (at & 1))  # even places are a word's high byte
        out[lo:hi] = np.add.reduceat(values, firsts)
        lo = hi
    return out
