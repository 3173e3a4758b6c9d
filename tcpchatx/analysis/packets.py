"""Every packet's headers as numpy columns: link, IP and TCP decoded in turn.

Theory of operation
-------------------
:mod:`.capture_file` tells us where each packet's bytes start.  Here we find, for all
packets together, where the IP header starts (it depends on the link type:
:mod:`.link`), then where the TCP header starts (it depends on the IP version and
header length: :mod:`.ip`), then the TCP header's fields (:mod:`.tcp`), each
gathered with :func:`~.capture_file.gather_u32` and friends.  No packet ever
becomes a Python object; a packet *is* a row number in these arrays.

A packet that is not an unfragmented TCP segment over IPv4/IPv6 keeps its row
(so frame numbers match Wireshark) with ``is_tcp`` False, and is counted by its
reason (:mod:`.skipped`: ``Packets.skipped``), never dropped without a word.
"""

from __future__ import annotations

import ipaddress
import operator
import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .capture_file import (
    RecordIndex,
    as_array,
    constant_column,
    is_constant,
    read_index,
    release_pages,
    rows_where,
)
from .ip import IPPROTO_TCP, ip_layer
from .link import link_layer
from .skipped import Skip, reason
from .skipped import count as skipped_count
from .tcp import parse_tcp_options, tcp_headers
from .workers import in_order


@dataclass
class Packets:
    """One row per frame; every field is a numpy array of the same length.

    Fields that do not apply (TCP fields of a non-TCP frame) hold 0, addresses -1.
    Addresses are integer ids into :attr:`addresses` (strings like ``"10.0.0.1"``);
    in a capture between one address and itself (IPv4 loopback), ``src`` and
    ``dst`` are one read-only broadcast view, as ``ts_tps`` is: read, do not write.
    """

    index: RecordIndex
    frame: np.ndarray  # 1-based frame number, as Wireshark counts (int32 below 2**31 frames)
    ts_ticks: np.ndarray  # exact timestamp in ticks since 1970
    ts_tps: np.ndarray  # ticks per second (1e6 for µs, 1e9 for ns...); read-only view if all equal
    is_tcp: np.ndarray  # bool
    ip_version: np.ndarray  # 0 (not IP), 4 or 6
    src: np.ndarray  # address id, -1 if not IP
    dst: np.ndarray
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    flags: np.ndarray  # int16: TCP flags byte (plus NS as 0x100): tcpchatx.tcp_flags
    seq: np.ndarray  # uint32: raw sequence number (mind wrap-around: uint32 + 1 wraps)
    ack: np.ndarray  # uint32: raw acknowledgement number
    window: np.ndarray  # uint16: raw window field (not scaled)
    payload_start: np.ndarray  # uint16: where the TCP payload starts, counted from the frame's first byte
    payload_len: np.ndarray  # int32: TCP payload length from the IP header (Wireshark's tcp.len)
    payload_caplen: np.ndarray  # int32: how much of it was captured
    header_len: np.ndarray  # uint8: TCP header length (data offset * 4)
    options_len: np.ndarray  # uint8: captured bytes of TCP options (header_len - 20 unless cut)
    addresses: list[str]
    #: Frames not read as TCP, by reason (:mod:`.skipped`): reason code -> how many.
    skipped: dict[int, int] = field(default_factory=dict)
    #: Rows whose IP length was 0 (segmentation offload): their length is the frame's.
    length_from_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def buffer(self):
        return self.index.buffer

    def seconds(self, rows) -> np.ndarray:
        """Float seconds since 1970 of ``rows`` (convenient, not exact: see ``ts_ticks``)."""
        ticks, tps = self.ts_ticks[rows], self.ts_tps
        per_second = tps[0] if is_constant(tps) else tps[rows]  # one for all, usually
        return (ticks // per_second) + (ticks % per_second) / per_second

    def nanoseconds(self, row: int) -> int:
        """Whole nanoseconds since 1970 of one row: exact, as Wireshark compares times."""
        return int(self.ts_ticks[row]) * 10**9 // int(self.ts_tps[row])

    @cached_property
    def time(self) -> np.ndarray:
        """Every frame's :meth:`seconds`, made on first use: the analysis itself asks
        only for the rows it needs, so no float column of every frame is held unasked."""
        return self.seconds(slice(None))

    def payload_offsets(self, rows: np.ndarray) -> np.ndarray:
        """Where the TCP payload of each of ``rows`` starts in the file buffer (int64)."""
        return self.index.data_offset[rows] + self.payload_start[rows]

    def tcp_header_offsets(self, rows: np.ndarray) -> np.ndarray:
        """Where the TCP header of each of ``rows`` starts in the file buffer (int64)."""
        return self.payload_offsets(rows) - self.header_len[rows]

    def payload(self, i: int) -> bytes:
        """The captured TCP payload of row ``i``."""
        start = int(self.payload_offsets(i))
        return bytes(self.buffer[start : start + int(self.payload_caplen[i])])

    def tcp_options(self, i: int) -> dict[str, object]:
        """Parse row ``i``'s TCP options (MSS, window scale, SACK permitted, timestamps).

        Done on demand, per packet: only SYNs carry the interesting ones.
        """
        start = int(self.tcp_header_offsets(i)) + 20  # the options follow the fixed 20 bytes
        return parse_tcp_options(bytes(self.buffer[start : start + int(self.options_len[i])]))


def read_packets(path: str | os.PathLike) -> Packets:
    """Read a pcap or pcapng file into :class:`Packets` columns."""
    return decode(read_index(path))


# --------------------------------------------------------------------------- decoding


DECODE_CHUNK = 1 << 17  # packets decoded together: plenty for numpy, a bounded amount of memory


def decode(index: RecordIndex) -> Packets:
    """Decode every packet's headers into columns, ``DECODE_CHUNK`` packets at a time.

    Working in chunks keeps the temporaries small, and lets the OS drop each part
    of the mapped file from our memory once it is decoded (:func:`release_pages`).
    """
    n = len(index)
    columns = {name: np.zeros(n, dtype) for name, dtype in COLUMN_TYPES.items()}
    book = _AddressBook()
    linktype = index.linktype

    def decode_chunk(lo: int):
        hi = min(n, lo + DECODE_CHUNK)
        return lo, hi, _decode_rows(index, lo, hi, linktype[lo:hi], columns)

    chunks = range(0, n, DECODE_CHUNK)
    one_address: dict[tuple[int, int], int] = {}  # chunks between one address and itself: its id
    skipped: dict[int, int] = {}
    offloaded: list[np.ndarray] = []
    for lo, hi, (addresses, chunk_skipped, chunk_offloaded) in in_order(decode_chunk, chunks):
        for code, count in chunk_skipped.items():
            skipped[code] = skipped.get(code, 0) + count
        offloaded.append(chunk_offloaded + lo)
        # Addresses are numbered in order of first appearance: chunk by chunk, in order.
        src, dst = book.ids(*addresses)  # -1: not IP
        if is_constant(src):  # loopback: written below only if other chunks differ
            one_address[lo, hi] = int(src[0])
        else:
            columns["src"][lo:hi], columns["dst"][lo:hi] = src, dst
        release_pages(index.buffer, int(index.data_offset[lo]),
                      int(index.data_offset[hi - 1] + index.caplen[hi - 1]))
    ids = set(one_address.values())
    if len(one_address) == len(chunks) and len(ids) == 1:
        # A loopback capture: the same address everywhere, one broadcast value, no column.
        columns["src"] = columns["dst"] = constant_column(ids.pop(), n, np.int32)
    else:
        for (lo, hi), address in one_address.items():
            columns["src"][lo:hi] = columns["dst"][lo:hi] = address
    ts_ticks = index.ts_ticks  # int64, shared with the index
    return Packets(
        index=index,
        frame=np.arange(1, n + 1, dtype=np.int32 if n < 2**31 else np.int64),
        ts_ticks=ts_ticks,
        ts_tps=index.ts_tps,
        addresses=book.addresses,
        skipped=skipped,
        length_from_frame=np.concatenate(offloaded) if offloaded else np.zeros(0, dtype=np.int64),
        **columns,
    )


# Narrow types where the field's range allows: these columns are held for the whole
# analysis, so each byte a packet saved here lowers the peak.
COLUMN_TYPES = {
    "is_tcp": bool, "ip_version": np.int8, "src": np.int32, "dst": np.int32,
    "sport": np.uint16, "dport": np.uint16, "flags": np.int16, "seq": np.uint32,
    "ack": np.uint32, "window": np.uint16, "payload_start": np.uint16,
    "payload_len": np.int32, "payload_caplen": np.int32, "header_len": np.uint8,
    "options_len": np.uint8,
}


def _decode_rows(index: RecordIndex, lo: int, hi: int, linktype: np.ndarray, out: dict):
    """Decode packets ``lo`` to ``hi - 1`` into ``out[name][lo:hi]``, all but ``src``
    and ``dst``: for those, return the arguments of :meth:`_AddressBook.ids`; with them,
    the chunk's frames not read as TCP (reason -> count), and the rows (from ``lo``)
    whose IP length was 0."""
    data = as_array(index.buffer)
    start = index.data_offset[lo:hi]
    end = start + index.caplen[lo:hi]
    wire_end = start + index.origlen[lo:hi]

    # The layers in turn: link (where IP starts), IP (where TCP starts), TCP.
    l3, ip_version, skip = link_layer(data, start, end, linktype)
    ip = ip_layer(data, l3, ip_version, wire_end, end)
    skip = np.where(skip == 0, ip.skip, skip)
    l4, l4_len = ip.l4, ip.l4_len
    is_ip = ip_version > 0
    candidates = is_ip & ip.unfragmented & (ip.protocol == IPPROTO_TCP)
    cut = candidates & (l4 + 20 > end)
    skip[cut] = reason(Skip.TRUNCATED, 4)
    candidates &= ~cut
    tcp, doff = tcp_headers(data, l4, candidates, skip)  # takes unreadable ones out of candidates
    t = rows_where(candidates)
    tcp_start = l4[t]
    payload_offset = tcp_start + doff
    payload_len = np.maximum(l4_len[t] - doff, 0)
    out["ip_version"][lo:hi] = ip_version
    t_rows = slice(lo, hi) if isinstance(t, slice) else t + lo  # in the whole capture
    out["is_tcp"][t_rows] = True
    out["sport"][t_rows] = tcp["sport"]
    out["dport"][t_rows] = tcp["dport"]
    out["flags"][t_rows] = tcp["flags"] | (tcp["data_offset"] & 1).astype(np.int16) << 8
    out["seq"][t_rows] = tcp["seq"]
    out["ack"][t_rows] = tcp["ack"]
    out["window"][t_rows] = tcp["window"]
    # Link, IP (with at most eight 2 KiB IPv6 extension headers) and TCP headers: < 64 KiB.
    out["payload_start"][t_rows] = payload_offset - start[t]
    out["payload_len"][t_rows] = payload_len
    out["payload_caplen"][t_rows] = np.clip(end[t] - payload_offset, 0, payload_len)
    out["header_len"][t_rows] = doff
    out["options_len"][t_rows] = np.clip(np.minimum(doff, end[t] - tcp_start) - 20, 0, None)
    addresses = (is_ip, ip.src_hi, ip.src_lo, ip.dst_hi, ip.dst_lo)
    return addresses, skipped_count(skip), np.flatnonzero(ip.length_from_frame & candidates)


def exact_ratio(ticks: np.ndarray, per_second: np.ndarray) -> np.ndarray:
    """``ticks / per_second`` as Python divides two ints: correctly rounded.

    numpy divides floats, which gives the same while both are exact floats (below
    2**53); larger tick counts (a nanosecond clock's timestamps) are divided in Python.
    """
    ratio = ticks / per_second
    big = np.flatnonzero((np.abs(ticks) >= 1 << 53) | (np.abs(per_second) >= 1 << 53))
    if len(big):
        ratio[big] = list(map(operator.truediv, ticks[big].tolist(), per_second[big].tolist()))
    return ratio


def unique_codes(values: np.ndarray, table_limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.unique(values, return_inverse=True)``, without sorting when it can.

    Values in a narrow range (at most ``table_limit`` apart; default four times
    their number) are found with a table indexed by value: mark, then count.
    """
    distinct, (codes,) = shared_codes([values], table_limit)
    return distinct, codes


def shared_codes(columns: list[np.ndarray], table_limit: int | None = None
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`unique_codes` of several columns numbered together (the distinct
    values of all, and each column's codes), without joining them when a table does."""
    n = sum(len(c) for c in columns)
    if n == 0:
        return np.unique(np.concatenate(columns)), [np.zeros(len(c), np.int64) for c in columns]
    low = min(int(c.min()) for c in columns if len(c))
    high = max(int(c.max()) for c in columns if len(c))
    if high - low > (4 * n if table_limit is None else table_limit):
        distinct, codes = np.unique(np.concatenate(columns), return_inverse=True)
        return distinct, np.split(codes.reshape(-1), np.cumsum([len(c) for c in columns])[:-1])
    shifted = [c - low for c in columns]
    seen = np.zeros(high - low + 1, dtype=bool)
    for c in shifted:
        seen[c] = True
    code = np.cumsum(seen) - 1
    return np.flatnonzero(seen) + low, [code[c] for c in shifted]


def factorize(values: np.ndarray, sample: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, uniques)`` with uniques in order of first appearance (like ``pandas.factorize``).

    A capture has few addresses, so the first ``sample`` values usually hold them
    all: we number those, and look every value up among them (a binary search in a
    tiny array).  If some value is missing, we number them all with a sort.
    """
    if len(values) and (values == values[0]).all():  # one address: all of loopback IPv4
        return np.zeros(len(values), dtype=np.int64), values[:1]
    head = values[:sample]
    uniq, first = np.unique(head, return_index=True)
    order = np.argsort(first)  # first-appearance order
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    pos = np.minimum(np.searchsorted(uniq, values), max(len(uniq) - 1, 0))
    if len(uniq) and (uniq[pos] == values).all():
        return rank[pos], uniq[order]
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inverse.reshape(-1)], uniq[order]


class _AddressBook:
    """Integer ids for IP addresses, numbered in the order they first appear.

    Chunk by chunk: each chunk's few distinct addresses are found with
    :func:`factorize`, and only those go through this dict.  Id 0 is the first
    packet's source.
    """

    def __init__(self) -> None:
        self.id_of: dict[tuple[int, int], int] = {}
        self.addresses: list[str] = []  # id -> text, like "10.0.0.1" or "::1"

    def ids(self, is_ip, src_hi, src_lo, dst_hi, dst_lo) -> tuple[np.ndarray, np.ndarray]:
        """(source ids, destination ids) of a chunk's packets; -1 where not IP."""
        rows = rows_where(is_ip)
        hi = np.concatenate([src_hi[rows], dst_hi[rows]])
        lo = np.concatenate([src_lo[rows], dst_lo[rows]])
        half = len(lo) // 2  # sources, then destinations
        lo_codes, lo_values = factorize(lo)
        if (hi == 0).all():
            codes, uniq = lo_codes, [(0, int(v)) for v in lo_values]
        else:
            hi_codes, hi_values = factorize(hi)
            codes, pairs = factorize(hi_codes.astype(np.int64) * len(lo_values) + lo_codes)
            uniq = [
                (int(hi_values[p // len(lo_values)]), int(lo_values[p % len(lo_values)]))
                for p in pairs
            ]
        ids = np.array([self._id(pair) for pair in uniq], dtype=np.int32)
        if len(ids) == 1 and isinstance(rows, slice):  # all IP, one address (loopback IPv4)
            same = constant_column(ids[0], len(is_ip), np.int32)  # read-only, no memory
            return same, same
        src = np.full(len(is_ip), -1, dtype=np.int32)
        dst = np.full(len(is_ip), -1, dtype=np.int32)
        if len(ids) == 1:  # one address (loopback IPv4): no lookups
            src[rows] = dst[rows] = ids[0]
        elif len(ids):
            src[rows] = ids[codes[:half]]
            dst[rows] = ids[codes[half:]]
        return src, dst

    def _id(self, pair: tuple[int, int]) -> int:
        if pair not in self.id_of:
            high, low = pair
            addr = ipaddress.IPv6Address(high << 64 | low)
            self.id_of[pair] = len(self.addresses)
            self.addresses.append(str(addr.ipv4_mapped or addr))
        return self.id_of[pair]
